//! Keys in the roster (issue 17): a login through an invite spends one of
//! its uses and is issued a key of its own, as is a login with the previous
//! main key during a rotation's grace; the operator makes, lists and
//! revokes invites and issued keys, and rotates the main key. Revoking ends
//! the sessions that came in with those keys.

use protocol::crypto::{KeyId, Psk, key_id_hex};
use protocol::message::{DisconnectCause, ServerMessage};
use protocol::moderation::DenyReason;
use serde::{Deserialize, Serialize};
use slog::info;

use super::accounts::OPERATOR;
use super::{Roster, now_ms};
use crate::accounts::format_utc;
use crate::archive::Write;
use crate::keyring::{Issued, KeyKind, OLD_MAIN_RECORD, SharedKeyRing};
use crate::messages::{Denial, JoinRefusal, ModReply, ModReplyTo, SessionId, ToSession};

/// An invite as `server admin invite --list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteSummary {
    /// Its number.
    pub id: u64,
    /// The room its link lands in.
    pub room: Option<String>,
    /// Uses left (`None`: unlimited).
    pub uses_left: Option<u32>,
    /// Logins through it so far.
    pub uses: u32,
    /// When it stops working, Unix ms.
    pub expires_ms: Option<u64>,
    /// Whether it still lets anyone in.
    pub live: bool,
    /// Keys issued through it.
    pub keys: usize,
}

/// An issued key as `server admin keys` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySummary {
    /// Its number (`--revoke-key ID`).
    pub id: u64,
    /// Its public id (what a client hello names).
    pub key_id: String,
    /// Whom it was issued to.
    pub name: String,
    /// The invite it came through (`None`: the previous main key).
    pub invite: Option<u64>,
    /// When, Unix ms.
    pub created_ms: u64,
}

fn deny(reason: DenyReason, detail: impl Into<String>) -> Denial {
    Denial { reason, detail: detail.into() }
}

impl Roster {
    /// Shares the key ring with the sessions.
    pub fn with_keys(mut self, keys: SharedKeyRing) -> Self {
        self.keys = Some(keys);
        self
    }

    /// A login with key `key`: an invite spends a use (none left: refused)
    /// and, like the previous main key, gets a key of its own issued.
    pub(super) fn key_login(&mut self, key: &KeyId, name: &str) -> Result<Option<Issued>, JoinRefusal> {
        let Some(ring) = self.keys.clone() else { return Ok(None) };
        let now = now_ms();
        let mut ring = ring.write();
        // Revoked (or used up, expired, past its grace) since the key check.
        if ring.find(key, now).is_none() {
            return Err(JoinRefusal::KeyRevoked);
        }
        let invite = match ring.kind(key) {
            Some(KeyKind::Invite(n)) => {
                let spent = ring.spend(n, now).ok_or(JoinRefusal::InviteSpent)?;
                self.store_quietly(Write::PutKey(spent.record()));
                Some(n)
            }
            Some(KeyKind::OldMain) => None,
            _ => return Ok(None),
        };
        let (issued, replaced) = ring.issue(name, invite, now);
        drop(ring);
        if let Some(old) = replaced {
            self.store_quietly(Write::RemoveKey { kind: "issued".into(), id: old });
        }
        info!(self.log, "key issued"; "key" => issued.id, "invite" => invite, "user" => %protocol::escape::Escaped(name));
        Ok(Some(issued))
    }

    /// Hands session `sid` its issued key (after the welcome).
    pub(super) fn deliver_issued(&self, sid: SessionId, issued: Issued) {
        let msg =
            ServerMessage::KeyIssued { key: issued.key.expose_text().to_owned(), id: key_id_hex(&issued.key.id()) };
        self.deliver_to(sid, &msg);
    }

    /// Ends the sessions that came in with any of `ids`.
    fn end_sessions_with(&self, ids: &[KeyId], detail: &str) -> usize {
        let mut n = 0;
        for m in self.members.values() {
            if m.key_id.is_some_and(|k| ids.contains(&k)) {
                m.mailbox.do_send(ToSession::Removed {
                    cause: DisconnectCause::KeyRevoked,
                    detail: detail.to_owned(),
                    until_ms: None,
                });
                n += 1;
            }
        }
        n
    }

    /// The operator's key requests.
    pub(super) fn key_query(&mut self, q: KeyQuery, reply: ModReplyTo) {
        let Some(ring) = self.keys.clone() else {
            return self.reply(reply, "keys", Err(deny(DenyReason::Invalid, "this server has no key ring")));
        };
        let now = now_ms();
        match q {
            KeyQuery::CreateInvite { uses, expires_secs, room } => {
                if let Some(r) = &room
                    && self.rooms.find(r.trim_start_matches('#')).is_none()
                {
                    let d = deny(DenyReason::NoSuchRoom, format!("there is no room {r}"));
                    return self.reply(reply, "invite", Err(d));
                }
                let room = room.map(|r| r.trim_start_matches('#').to_owned());
                let expires_ms = expires_secs.map(|s| now.saturating_add(s.saturating_mul(1000)));
                let invite = ring.write().invite(room, uses, expires_ms, now);
                let detail = format!(
                    "uses {}, {}",
                    uses.map_or_else(|| "unlimited".to_owned(), |u| u.to_string()),
                    expires_ms.map_or_else(|| "no expiry".to_owned(), |e| format!("until {}", format_utc(e)))
                );
                let (id, key, room) = (invite.id, invite.key.expose_text().to_owned(), invite.room.clone());
                self.commit(Write::PutKey(invite.record()), reply, "invite", move |roster| {
                    roster.audit(OPERATOR, "invite", &format!("#{id}"), room.as_deref(), "", &detail);
                    Ok(ModReply::Invite { id, key: crate::keyring::SecretText(key), room, detail })
                });
            }
            KeyQuery::ListInvites => {
                let ring = ring.read();
                let invites = ring
                    .invites()
                    .map(|i| InviteSummary {
                        id: i.id,
                        room: i.room.clone(),
                        uses_left: i.uses_left,
                        uses: i.uses,
                        expires_ms: i.expires_ms,
                        live: i.live(now),
                        keys: ring.issued().filter(|k| k.invite == Some(i.id)).count(),
                    })
                    .collect();
                self.reply(reply, "invites", Ok(ModReply::Invites { invites }));
            }
            KeyQuery::RevokeInvite { id } => {
                if !ring.read().invites().any(|i| i.id == id) {
                    let d = deny(DenyReason::NotFound, format!("no invite #{id}"));
                    return self.reply(reply, "revoke_invite", Err(d));
                }
                // Stored first (the invite and its issued keys in one
                // write), then gone from the ring: a failed write changes
                // nothing, and a restart brings nothing back.
                self.commit(Write::RemoveKey { kind: "invite".into(), id }, reply, "revoke_invite", move |roster| {
                    let Some((ids, issued)) = roster.keys.as_ref().and_then(|r| r.write().revoke_invite(id)) else {
                        return Err(deny(DenyReason::NotFound, format!("no invite #{id}")));
                    };
                    let ended = roster
                        .end_sessions_with(&ids, "your invite was revoked by the server's operator; ask for a new one");
                    let detail = format!("{} issued key(s) revoked, {ended} session(s) ended", issued.len());
                    roster.audit(OPERATOR, "revoke_invite", &format!("#{id}"), None, "", &detail);
                    Ok(ModReply::Done { detail: format!("invite #{id} revoked: {detail}") })
                });
            }
            KeyQuery::ListKeys => {
                let keys = ring
                    .read()
                    .issued()
                    .map(|k| KeySummary {
                        id: k.id,
                        key_id: key_id_hex(&k.key.id()),
                        name: k.name.clone(),
                        invite: k.invite,
                        created_ms: k.created_ms,
                    })
                    .collect();
                self.reply(reply, "keys", Ok(ModReply::Keys { keys }));
            }
            KeyQuery::RevokeKey { id } => {
                if !ring.read().issued().any(|k| k.id == id) {
                    let d = deny(DenyReason::NotFound, format!("no issued key #{id}"));
                    return self.reply(reply, "revoke_key", Err(d));
                }
                self.commit(Write::RemoveKey { kind: "issued".into(), id }, reply, "revoke_key", move |roster| {
                    let Some(key_id) = roster.keys.as_ref().and_then(|r| r.write().revoke_issued(id)) else {
                        return Err(deny(DenyReason::NotFound, format!("no issued key #{id}")));
                    };
                    let ended = roster.end_sessions_with(&[key_id], "your key was revoked by the server's operator");
                    let detail = format!("{ended} session(s) ended");
                    roster.audit(OPERATOR, "revoke_key", &format!("#{id}"), None, "", &detail);
                    Ok(ModReply::Done { detail: format!("key #{id} revoked; {detail}") })
                });
            }
            KeyQuery::RotateKey { new_key, grace_secs } => {
                let Ok(new) = Psk::parse(&new_key.0) else {
                    return self.reply(reply, "rotate_key", Err(deny(DenyReason::Invalid, "not a key")));
                };
                let until = grace_secs.filter(|s| *s > 0).map(|s| now.saturating_add(s.saturating_mul(1000)));
                // The old key's record is stored first; only then does the
                // ring change (the caller writes the key file after).
                let w = match until {
                    Some(u) => Write::PutKey(ring.read().old_main_record(u)),
                    None => Write::RemoveKey { kind: "old_main".into(), id: OLD_MAIN_RECORD },
                };
                let detail = until.map_or_else(
                    || "the old key stopped working now".to_owned(),
                    |u| format!("the old key works until {} (its users are issued keys of their own)", format_utc(u)),
                );
                self.commit(w, reply, "rotate_key", move |roster| {
                    let Some(ring) = roster.keys.clone() else {
                        return Err(deny(DenyReason::Invalid, "this server has no key ring"));
                    };
                    let ended_ids = ring.write().rotate(new, until);
                    // --now: the old key's sessions end with it.
                    let ended = if until.is_none() {
                        roster.end_sessions_with(&ended_ids, "the server's key was replaced; ask for a new invite")
                    } else {
                        0
                    };
                    roster.audit(OPERATOR, "rotate_key", "main key", None, "", &detail);
                    Ok(ModReply::Done { detail: format!("new main key in place; {detail}; {ended} session(s) ended") })
                });
            }
        }
    }
}

/// The operator's requests about keys and invites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keys", rename_all = "snake_case")]
pub enum KeyQuery {
    /// A new invite.
    CreateInvite {
        /// Uses (`None`: unlimited).
        uses: Option<u32>,
        /// Lifetime in seconds (`None`: until revoked).
        expires_secs: Option<u64>,
        /// The room its link lands in.
        room: Option<String>,
    },
    /// Every invite.
    ListInvites,
    /// End an invite and the keys issued through it.
    RevokeInvite {
        /// Its number.
        id: u64,
    },
    /// Every issued key.
    ListKeys,
    /// End one issued key.
    RevokeKey {
        /// Its number.
        id: u64,
    },
    /// Make `new_key` the main key (the caller wrote the key file).
    RotateKey {
        /// The new key's text form.
        #[serde(skip)]
        new_key: crate::keyring::SecretText,
        /// How long the old key keeps working (`None` or 0: not at all).
        grace_secs: Option<u64>,
    },
}
