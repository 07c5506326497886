//! Accounts, roles and moderation on the wire (protocol v5,
//! `docs/protocol.md` §4b): what a moderator or admin asks
//! ([`Action`], inside [`crate::message::ClientMessage::Moderate`]; the
//! operator's `server admin` sends the same actions over the admin socket),
//! and the records the server answers with ([`BanEntry`], [`AuditEntry`]).
//!
//! Who may do what is the server's rule (`docs/protocol.md` §4b): admins are
//! granted on the server's machine only; admins make moderators, server-wide
//! or for one room; a room moderator acts within that room.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Shortest account password, in characters.
pub const MIN_ACCOUNT_PASSWORD_CHARS: usize = 8;
/// Longest account password, in bytes (hashing cost is bounded).
pub const MAX_ACCOUNT_PASSWORD_BYTES: usize = 1024;
/// Longest reason attached to a kick, ban or mute, in bytes.
pub const MAX_REASON_BYTES: usize = 300;
/// Longest topic, in bytes.
pub const MAX_TOPIC_BYTES: usize = 300;
/// Most audit entries or bans in one answer.
pub const MAX_LISTED_RECORDS: u32 = 500;

/// A role held by an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, everywhere; granted only on the server's machine
    /// (`server admin grant NAME`).
    Admin,
    /// Moderation server-wide (no room) or in one room.
    Moderator,
}

/// One role an account holds, as the welcome lists them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoleGrant {
    /// The role.
    pub role: Role,
    /// The room a moderator moderates; absent: server-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// A room setting a moderator of the room may change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "setting", content = "value", rename_all = "snake_case")]
pub enum RoomSetting {
    /// Whether its messages are stored.
    History(bool),
    /// Retention in days (0: keep everything).
    HistoryDays(u32),
    /// Whether it carries voice.
    Voice(bool),
    /// Only its member list (and moderators) may join.
    InviteOnly(bool),
}

/// What a moderator, an admin or the operator asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Disconnect a user; their client does not reconnect by itself.
    Kick {
        /// The user.
        name: String,
        /// Why (shown to them and written to the audit log).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Ban an account or a bare name (disconnecting whoever holds it).
    Ban {
        /// The name.
        name: String,
        /// For how long (absent: until unbanned).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_secs: Option<u64>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Ban an address range (`ADDR` or `ADDR/PREFIX`; an IPv6 address
    /// alone means its /64), disconnecting everyone inside it.
    BanIp {
        /// The address or range.
        address: String,
        /// For how long (absent: until unbanned).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_secs: Option<u64>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Lift a ban: a name, an address range as banned, or `#ID` from the
    /// list.
    Unban {
        /// What to lift.
        target: String,
    },
    /// List the bans in force (answered with
    /// [`crate::message::ServerMessage::Bans`]).
    Bans,
    /// Silence a user's text and voice in a room (absent: everywhere).
    Mute {
        /// The user.
        name: String,
        /// The room (absent: server-wide).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// For how long (absent: until unmuted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_secs: Option<u64>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Lift a mute.
    Unmute {
        /// The user.
        name: String,
        /// The room (absent: the server-wide mute).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Set a room's topic.
    Topic {
        /// The room.
        room: String,
        /// The new topic (empty: none).
        topic: String,
    },
    /// Change a room's setting.
    RoomSet {
        /// The room.
        room: String,
        /// The setting and its new value.
        #[serde(flatten)]
        setting: RoomSetting,
    },
    /// Add a name to an invite-only room's member list (or, with `remove`,
    /// take it off).
    Invite {
        /// The room.
        room: String,
        /// The user (an account name or a bare name).
        name: String,
        /// Take the name off the list instead.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        remove: bool,
    },
    /// Grant a role to a registered account.
    Grant {
        /// The account.
        name: String,
        /// The role.
        role: Role,
        /// A moderator's room (absent: server-wide).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Take a role back.
    Revoke {
        /// The account.
        name: String,
        /// The role.
        role: Role,
        /// A moderator's room (absent: server-wide).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Read the audit log, newest first (answered with
    /// [`crate::message::ServerMessage::Audit`]).
    Audit {
        /// At most this many (capped at [`MAX_LISTED_RECORDS`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// Entries older than this entry id (paging).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
    },
}

impl Action {
    /// The action's name on the wire (`kick`, `ban_ip`, …), for answers and
    /// the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Kick { .. } => "kick",
            Action::Ban { .. } => "ban",
            Action::BanIp { .. } => "ban_ip",
            Action::Unban { .. } => "unban",
            Action::Bans => "bans",
            Action::Mute { .. } => "mute",
            Action::Unmute { .. } => "unmute",
            Action::Topic { .. } => "topic",
            Action::RoomSet { .. } => "room_set",
            Action::Invite { .. } => "invite",
            Action::Grant { .. } => "grant",
            Action::Revoke { .. } => "revoke",
            Action::Audit { .. } => "audit",
        }
    }
}

/// What a ban holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanKind {
    /// An account or bare name (compared like names).
    Name,
    /// An address range.
    Address,
}

/// One ban in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanEntry {
    /// Its id (`/unban #ID`).
    pub id: u64,
    /// Name or address.
    pub kind: BanKind,
    /// The name, or the range (`203.0.113.0/24`, `2001:db8::/64`).
    pub target: String,
    /// Why (may be empty).
    #[serde(default)]
    pub reason: String,
    /// Who banned (a name, or `server admin`).
    pub by: String,
    /// When, ms since the Unix epoch.
    pub since_ms: u64,
    /// Until when (absent: until unbanned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its id (increasing).
    pub id: u64,
    /// When, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Who did it (a name, or `server admin`).
    pub actor: String,
    /// What ([`Action::name`], or an account event: `register`,
    /// `unregister`, `password`, `reset_password`).
    pub action: String,
    /// Whom or what it was done to.
    #[serde(default)]
    pub target: String,
    /// The room it concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Why, as given.
    #[serde(default)]
    pub reason: String,
    /// Further detail (a duration, a setting's value).
    #[serde(default)]
    pub detail: String,
}

/// Why a request was denied ([`crate::message::ServerMessage::Denied`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// The asker lacks the role (or the reach: another room's moderator).
    NotAllowed,
    /// Nobody of that name is connected.
    NoSuchUser,
    /// No account has that name.
    NoSuchAccount,
    /// No room has that name.
    NoSuchRoom,
    /// No such ban, mute or role.
    NotFound,
    /// The name is registered already.
    AlreadyRegistered,
    /// The name we use is not registered.
    NotRegistered,
    /// The account password given is wrong.
    WrongPassword,
    /// The new password breaks the rules (too short, too long).
    WeakPassword,
    /// Malformed (an address, a duration, a text).
    Invalid,
    /// Too many attempts; try again later.
    RetryLater,
    /// The store failed; nothing was changed.
    StorageUnavailable,
}

/// Why an account password is not acceptable.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRuleError {
    /// Shorter than [`MIN_ACCOUNT_PASSWORD_CHARS`].
    #[error("an account password has at least {MIN_ACCOUNT_PASSWORD_CHARS} characters")]
    TooShort,
    /// Longer than [`MAX_ACCOUNT_PASSWORD_BYTES`].
    #[error("an account password has at most {MAX_ACCOUNT_PASSWORD_BYTES} bytes")]
    TooLong,
}

/// Checks a new account password against the length rules (NIST SP 800-63B:
/// length, no composition rules).
///
/// # Errors
///
/// The rule broken.
pub fn validate_account_password(password: &str) -> Result<(), PasswordRuleError> {
    if password.len() > MAX_ACCOUNT_PASSWORD_BYTES {
        return Err(PasswordRuleError::TooLong);
    }
    if password.chars().count() < MIN_ACCOUNT_PASSWORD_CHARS {
        return Err(PasswordRuleError::TooShort);
    }
    Ok(())
}

/// Why a duration is not understood.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0:?} is not a duration (e.g. 90s, 30m, 12h, 7d, 2w)")]
pub struct DurationError(pub String);

/// Parses a duration as moderators type it: a number and a unit (`s`, `m`,
/// `h`, `d`, `w`), e.g. `30m`, `7d`; a bare number is minutes. Returns
/// seconds.
///
/// # Errors
///
/// Not a positive number with a known unit, or over 100 years.
pub fn parse_duration(s: &str) -> Result<u64, DurationError> {
    let err = || DurationError(s.to_owned());
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| err())?;
    let scale = match unit {
        "s" => 1,
        "" | "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(err()),
    };
    let secs = n.checked_mul(scale).ok_or_else(err)?;
    if secs == 0 || secs > 100 * 365 * 86_400 {
        return Err(err());
    }
    Ok(secs)
}

/// A duration in seconds written the way [`parse_duration`] reads it, in
/// its largest whole unit (`90s`, `2h`, `7d`).
pub fn format_duration(secs: u64) -> String {
    for (unit, scale) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= scale && secs.is_multiple_of(scale) {
            return format!("{}{unit}", secs / scale);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ClientMessage, decode, encode};

    #[test]
    fn durations_read_as_typed() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("30"), Ok(1800));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        for bad in ["", "0", "0m", "m", "5x", "-5m", "1.5h", "99999999999999999999d", "36600d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        for secs in [90, 1800, 43_200, 604_800, 1_209_600, 61] {
            assert_eq!(parse_duration(&format_duration(secs)), Ok(secs));
        }
    }

    #[test]
    fn password_rules_are_length_only() {
        assert_eq!(validate_account_password("short"), Err(PasswordRuleError::TooShort));
        assert_eq!(validate_account_password("ünïcödé"), Err(PasswordRuleError::TooShort));
        assert_eq!(validate_account_password("correct horse"), Ok(()));
        assert_eq!(validate_account_password(&"x".repeat(2000)), Err(PasswordRuleError::TooLong));
    }

    #[test]
    fn actions_nest_in_client_messages() {
        let msgs = [
            ClientMessage::Moderate(Action::Kick { name: "bob".into(), reason: Some("spam".into()) }),
            ClientMessage::Moderate(Action::Bans),
            ClientMessage::Moderate(Action::RoomSet { room: "dev".into(), setting: RoomSetting::HistoryDays(7) }),
            ClientMessage::Moderate(Action::Grant { name: "carol".into(), role: Role::Moderator, room: None }),
        ];
        for m in msgs {
            let bytes = encode(&m);
            assert_eq!(decode::<ClientMessage>(&bytes), Ok(m), "{}", String::from_utf8_lossy(&bytes));
        }
        let wire = br#"{"type":"moderate","action":"ban_ip","address":"2001:db8::1","duration_secs":600}"#;
        assert_eq!(
            decode::<ClientMessage>(wire),
            Ok(ClientMessage::Moderate(Action::BanIp {
                address: "2001:db8::1".into(),
                duration_secs: Some(600),
                reason: None
            }))
        );
    }
}
