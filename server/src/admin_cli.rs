//! `server admin <command>`: the operator's commands, sent to the running
//! server over its admin socket ([`server::admin`]), answers printed as
//! text or, with `--json`, as the server's JSON line.

use std::path::Path;

use clap::Subcommand;
use protocol::escape::Escaped;
use protocol::moderation::{Action, Role, format_duration, parse_duration};
use server::accounts::format_utc;
use server::admin::{AdminRequest, AdminResponse};
use server::messages::ModReply;

/// An operator's command.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Everyone connected: name, account and roles, address, rooms, voice.
    Who,
    /// Every room: members, voice, history, topic.
    Rooms,
    /// Counts: users, voice, rooms, accounts, bans.
    Stats,
    /// Disconnect a user (their client does not reconnect).
    Kick {
        /// The user.
        name: String,
        /// Why (shown to them).
        reason: Vec<String>,
    },
    /// Ban a name (an account or a bare name), disconnecting whoever holds it.
    Ban {
        /// The name.
        name: String,
        /// How long (`30m`, `12h`, `7d`; a leading word that is not a
        /// duration starts the reason, and the ban lasts until lifted).
        rest: Vec<String>,
    },
    /// Ban an address or range (`203.0.113.7`, `203.0.113.0/24`; an IPv6
    /// address alone is its /64).
    Banip {
        /// The address or range.
        address: String,
        /// How long, then why (as for `ban`).
        rest: Vec<String>,
    },
    /// Lift a ban: a name, an address range as banned, or `#ID` from `bans`.
    Unban {
        /// What to lift.
        target: String,
    },
    /// The bans in force.
    Bans,
    /// Silence a user's text and voice, in one room or everywhere.
    Mute {
        /// The user.
        name: String,
        /// Only in this room.
        #[arg(long)]
        room: Option<String>,
        /// How long, then why (as for `ban`).
        rest: Vec<String>,
    },
    /// Lift a mute.
    Unmute {
        /// The user.
        name: String,
        /// The room of the mute (without: the mute everywhere).
        #[arg(long)]
        room: Option<String>,
    },
    /// Make a registered account an admin (or, with --moderator, a
    /// moderator of the server or of --room).
    Grant {
        /// The account.
        name: String,
        /// A moderator instead of an admin.
        #[arg(long)]
        moderator: bool,
        /// The room a moderator moderates (without: the whole server).
        #[arg(long, requires = "moderator")]
        room: Option<String>,
    },
    /// Take a role back (admin, or with --moderator a moderator role).
    Revoke {
        /// The account.
        name: String,
        /// A moderator role instead of admin.
        #[arg(long)]
        moderator: bool,
        /// The room of that moderator role.
        #[arg(long, requires = "moderator")]
        room: Option<String>,
    },
    /// Give an account a one-time reset code (valid 24 h) in place of its
    /// password, which stops working; the owner logs in with the code and
    /// sets a new password with /password.
    ResetPassword {
        /// The account.
        name: String,
    },
    /// Make an invite link (all a client needs to join: address, key,
    /// fingerprint, room); or list or revoke invites.
    Invite {
        /// How many logins it lets in (default: unlimited).
        #[arg(long)]
        uses: Option<u32>,
        /// How long it works (`30m`, `12h`, `7d`; default: until revoked).
        #[arg(long, value_parser = parse_duration_arg)]
        expires: Option<u64>,
        /// The room the link lands in.
        #[arg(long)]
        room: Option<String>,
        /// `HOST:PORT` the link names (default: `public_address`, else the
        /// address the server listens on).
        #[arg(long)]
        address: Option<String>,
        /// List the invites instead.
        #[arg(long, conflicts_with_all = ["uses", "expires", "room", "address", "revoke"])]
        list: bool,
        /// Revoke invite ID and every key issued through it (their users
        /// are disconnected and told).
        #[arg(long, value_name = "ID")]
        revoke: Option<u64>,
    },
    /// The keys issued to clients (through invites, or after a rotation);
    /// or revoke one.
    Keys {
        /// Revoke issued key ID (its user is disconnected and told).
        #[arg(long, value_name = "ID")]
        revoke_key: Option<u64>,
    },
    /// A new main key in the key file. Clients on the old one keep working
    /// for `key_grace_days` and are issued keys of their own at their next
    /// login; prints a fresh invite link.
    RotateKey {
        /// End the old key at once.
        #[arg(long)]
        now: bool,
    },
    /// The audit log, newest first.
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Entries older than this id (paging).
        #[arg(long)]
        before: Option<u64>,
    },
}

fn parse_duration_arg(s: &str) -> Result<u64, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// `rest` as an optional duration, then a reason.
fn duration_and_reason(rest: Vec<String>) -> (Option<u64>, Option<String>) {
    let mut words = rest.into_iter();
    let first = words.next();
    let (secs, first) = match first.as_deref().map(parse_duration) {
        Some(Ok(s)) => (Some(s), None),
        _ => (None, first),
    };
    let reason: Vec<String> = first.into_iter().chain(words).collect();
    (secs, (!reason.is_empty()).then(|| reason.join(" ")))
}

/// The request a command sends.
pub fn request(cmd: AdminCommand) -> AdminRequest {
    let act = |action| AdminRequest::Act { action };
    let join = |v: Vec<String>| (!v.is_empty()).then(|| v.join(" "));
    match cmd {
        AdminCommand::Who => AdminRequest::Who,
        AdminCommand::Rooms => AdminRequest::Rooms,
        AdminCommand::Stats => AdminRequest::Stats,
        AdminCommand::Kick { name, reason } => act(Action::Kick { name, reason: join(reason) }),
        AdminCommand::Ban { name, rest } => {
            let (duration_secs, reason) = duration_and_reason(rest);
            act(Action::Ban { name, duration_secs, reason })
        }
        AdminCommand::Banip { address, rest } => {
            let (duration_secs, reason) = duration_and_reason(rest);
            act(Action::BanIp { address, duration_secs, reason })
        }
        AdminCommand::Unban { target } => act(Action::Unban { target }),
        AdminCommand::Bans => act(Action::Bans),
        AdminCommand::Mute { name, room, rest } => {
            let (duration_secs, reason) = duration_and_reason(rest);
            act(Action::Mute { name, room, duration_secs, reason })
        }
        AdminCommand::Unmute { name, room } => act(Action::Unmute { name, room }),
        AdminCommand::Grant { name, moderator, room } => {
            let role = if moderator { Role::Moderator } else { Role::Admin };
            act(Action::Grant { name, role, room })
        }
        AdminCommand::Revoke { name, moderator, room } => {
            let role = if moderator { Role::Moderator } else { Role::Admin };
            act(Action::Revoke { name, role, room })
        }
        AdminCommand::ResetPassword { name } => AdminRequest::ResetPassword { name },
        AdminCommand::Invite { list: true, .. } => AdminRequest::Invites,
        AdminCommand::Invite { revoke: Some(id), .. } => AdminRequest::RevokeInvite { id },
        AdminCommand::Invite { uses, expires, room, address, .. } => {
            AdminRequest::Invite { uses, expires_secs: expires, room, address }
        }
        AdminCommand::Keys { revoke_key: Some(id) } => AdminRequest::RevokeKey { id },
        AdminCommand::Keys { revoke_key: None } => AdminRequest::Keys,
        AdminCommand::RotateKey { now } => AdminRequest::RotateKey { now },
        AdminCommand::Audit { limit, before } => act(Action::Audit { limit: Some(limit), before }),
    }
}

/// Sends `cmd` to the server on `data_dir` and prints the answer; the
/// process's exit code (0 done, 1 refused or failed).
pub fn run(data_dir: &Path, cmd: AdminCommand, json: bool) -> u8 {
    let response = match server::admin::request(data_dir, &request(cmd)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("server admin: {e}");
            return 1;
        }
    };
    if json {
        println!("{}", serde_json::to_string(&response).unwrap_or_default());
    } else {
        print_text(&response);
    }
    u8::from(!response.ok)
}

/// Prints what the server said, escaped: names, reasons and topics come
/// from users (protocol::escape: no control, bidi or invisible character
/// reaches the operator's terminal raw).
fn say(text: &str) {
    for line in text.lines() {
        println!("{}", Escaped(line));
    }
}

fn print_text(r: &AdminResponse) {
    if let Some(e) = &r.error {
        eprintln!("server admin: refused ({:?}): {}", e.reason, Escaped(&e.detail));
        return;
    }
    match &r.reply {
        Some(ModReply::Done { detail }) => say(detail),
        Some(ModReply::Bans { bans }) => {
            if bans.is_empty() {
                say("no bans");
            }
            for b in bans {
                let until =
                    b.until_ms.map_or_else(|| "until lifted".to_owned(), |u| format!("until {}", format_utc(u)));
                say(&format!(
                    "#{} {:?} {} {until} by {} since {}: {}",
                    b.id,
                    b.kind,
                    b.target,
                    b.by,
                    format_utc(b.since_ms),
                    b.reason
                ));
            }
        }
        Some(ModReply::Audit { entries, more }) => {
            for e in entries {
                let room = e.room.as_deref().map(|r| format!(" #{r}")).unwrap_or_default();
                let reason = if e.reason.is_empty() { String::new() } else { format!(" ({})", e.reason) };
                let detail = if e.detail.is_empty() { String::new() } else { format!(" [{}]", e.detail) };
                say(&format!(
                    "{} {} {} {} {}{room}{reason}{detail}",
                    e.id,
                    format_utc(e.ts_ms),
                    e.actor,
                    e.action,
                    e.target
                ));
            }
            if *more {
                say(&format!("(older entries: --before {})", entries.last().map_or(0, |e| e.id)));
            }
        }
        Some(ModReply::Who { users }) => {
            for u in users {
                let roles: Vec<String> = u
                    .roles
                    .iter()
                    .map(|g| match (&g.role, &g.room) {
                        (Role::Admin, _) => "admin".to_owned(),
                        (Role::Moderator, None) => "moderator".to_owned(),
                        (Role::Moderator, Some(r)) => format!("moderator of #{r}"),
                    })
                    .collect();
                say(&format!(
                    "{}\t{}\t{}\t{}\trooms: {}\tvoice: {}",
                    u.name,
                    if u.registered { "registered" } else { "guest" },
                    if roles.is_empty() { "-".to_owned() } else { roles.join(", ") },
                    u.address.as_deref().unwrap_or("?"),
                    u.rooms.join(" "),
                    u.voice.as_deref().unwrap_or("-"),
                ));
            }
            say(&format!("{} connected", users.len()));
        }
        Some(ModReply::Rooms { rooms }) => {
            for room in rooms {
                say(&format!(
                    "#{}\t{} members\tvoice {}\thistory {}\t{}",
                    room.name,
                    room.members,
                    if room.voice { "on" } else { "off" },
                    if room.history { "on" } else { "off" },
                    room.topic
                ));
            }
        }
        Some(ModReply::Stats(s)) => {
            say(&format!(
                "users: {}\nin voice: {}\nrooms: {}\naccounts: {}\nbans: {}\nheld for resumption: {}",
                s.users, s.voice_users, s.rooms, s.accounts, s.bans, s.held
            ));
        }
        Some(ModReply::Invite { id, room, detail, .. }) => {
            let room = room.as_deref().map(|r| format!(", lands in #{r}")).unwrap_or_default();
            say(&format!("invite #{id} ({detail}{room}):"));
        }
        Some(ModReply::Invites { invites }) => {
            if invites.is_empty() {
                say("no invites");
            }
            for i in invites {
                let left = i.uses_left.map_or_else(|| "unlimited".to_owned(), |u| format!("{u} left"));
                let until = i.expires_ms.map_or_else(|| "no expiry".to_owned(), |e| format!("until {}", format_utc(e)));
                let room = i.room.as_deref().map(|r| format!(" #{r}")).unwrap_or_default();
                let state = if i.live { "live" } else { "spent" };
                say(&format!("#{} {state} uses {} ({left}) {until}{room}; {} key(s) issued", i.id, i.uses, i.keys));
            }
        }
        Some(ModReply::Keys { keys }) => {
            if keys.is_empty() {
                say("no issued keys");
            }
            for k in keys {
                let via = k.invite.map_or_else(|| "the previous main key".to_owned(), |i| format!("invite #{i}"));
                say(&format!("#{} {} to {} via {via} at {}", k.id, k.key_id, k.name, format_utc(k.created_ms)));
            }
        }
        None => {}
    }
    if let Some(link) = &r.link {
        say(link);
    }
    if let Some(code) = &r.code {
        say(&format!(
            "one-time reset code (valid {}): {code}\nthe owner logs in with it as the account password, then sets a new one with /password",
            format_duration(server::admin::RESET_CODE_TTL.as_secs())
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_duration_is_the_duration_and_the_rest_the_reason() {
        let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(duration_and_reason(words("2h spam and more")), (Some(7200), Some("spam and more".into())));
        assert_eq!(duration_and_reason(words("spam")), (None, Some("spam".into())));
        assert_eq!(duration_and_reason(words("7d")), (Some(604_800), None));
        assert_eq!(duration_and_reason(Vec::new()), (None, None));
    }
}
