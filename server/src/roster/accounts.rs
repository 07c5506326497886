//! Accounts in the roster: what a login must prove (bans, a registered
//! name's password), registering, changing the password, giving the name
//! back, and the stored private conversations of two accounts.
//!
//! Password work (argon2id) never happens here: sessions hash and verify on
//! the [`crate::accounts::hasher`] pool and bring the results.

use actix::prelude::*;
use protocol::escape::Escaped;
use protocol::message::{NameKeys, ServerMessage, name_keys};
use protocol::moderation::{AuditEntry, DenyReason};
use slog::{info, warn};

use super::{Roster, deliver_raw, now_ms};
use crate::accounts::{Account, format_utc};
use crate::archive::{AccountField, DirectQuery, Write, WriteOutcome};
use crate::messages::{AccountChange, AccountOf, AccountOp, BanNotice, Credentials, LoginCheck, SessionId};

/// Who the audit log names for the operator's actions.
pub(super) const OPERATOR: &str = "server admin";

impl Roster {
    /// The ban that stops a login under `keys` from `addr`, if one does.
    pub(super) fn ban_check(&self, keys: &NameKeys, addr: Option<std::net::IpAddr>) -> Result<(), BanNotice> {
        let now = now_ms();
        let ban = self.sanctions.name_ban(keys, now).or_else(|| addr.and_then(|a| self.sanctions.address_ban(a, now)));
        match ban {
            None => Ok(()),
            Some(b) => Err(BanNotice { text: ban_text(&b.target, &b.reason, b.until_ms), until_ms: b.until_ms }),
        }
    }

    /// The account session `sid` logged in to.
    pub(super) fn account_of(&self, sid: SessionId) -> Option<&Account> {
        self.members.get(&sid).and_then(|m| m.account.as_deref()).and_then(|k| self.accounts.get(k))
    }

    /// A login used the account's one-time reset code: it is spent (the
    /// store first), and the user is asked for a new password.
    pub(super) fn spend_reset_code(&mut self, sid: SessionId, key: &str) {
        self.accounts.apply(key, &AccountField::ResetSpent);
        self.store_quietly(Write::UpdateAccount { key: key.to_owned(), field: AccountField::ResetSpent });
        let text = "you logged in with a one-time reset code, which is now spent: set a new account password \
                    with /password before you leave, or ask the operator for another code"
            .to_owned();
        self.deliver_to(sid, &ServerMessage::Notice { text });
    }

    /// Answers session `sid` that `action` was done.
    pub(super) fn tell_done(&self, sid: SessionId, action: &str, detail: String) {
        self.deliver_to(sid, &ServerMessage::Done { action: action.to_owned(), detail });
    }

    /// Answers session `sid` that `action` was refused.
    pub(super) fn tell_denied(&self, sid: SessionId, action: &str, reason: DenyReason, detail: String) {
        self.deliver_to(sid, &ServerMessage::Denied { action: action.to_owned(), reason, detail });
    }

    /// Adds an entry for the audit log; it is written with the answer to
    /// the request ([`Roster::flush_audit`], or a moderation answer).
    pub(super) fn audit(
        &mut self,
        actor: &str,
        action: &str,
        target: &str,
        room: Option<&str>,
        reason: &str,
        detail: &str,
    ) {
        info!(self.log, "audit"; "actor" => %Escaped(actor), "action" => action, "target" => %Escaped(target),
            "room" => room.map(|r| Escaped(r).to_string()), "reason" => %Escaped(reason), "detail" => %Escaped(detail));
        self.unlogged.push(AuditEntry {
            id: 0,
            ts_ms: now_ms(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            room: room.map(str::to_owned),
            reason: reason.to_owned(),
            detail: detail.to_owned(),
        });
    }

    /// Writes the audit entries made so far (a failure is logged).
    pub(super) fn flush_audit(&mut self) {
        for e in std::mem::take(&mut self.unlogged) {
            self.store_quietly(Write::Audit(e));
        }
    }

    fn register(&mut self, sid: SessionId, phc: String) {
        const ACTION: &str = "register";
        let Some(m) = self.members.get(&sid) else { return };
        if m.account.is_some() || self.accounts.find(&m.key).is_some() {
            let detail = format!("the name {} is registered already", Escaped(&m.name));
            return self.tell_denied(sid, ACTION, DenyReason::AlreadyRegistered, detail);
        }
        let account = Account::new(&m.name, phc, now_ms());
        self.store_then(Write::PutAccount(account.record()), move |roster, result| {
            let name = account.name.clone();
            if let Err(e) = result {
                warn!(roster.log, "could not store a new account"; "error" => %e);
                let detail = "the server could not store the account; try again later".into();
                return roster.tell_denied(sid, ACTION, DenyReason::StorageUnavailable, detail);
            }
            // Someone else may have registered a look-alike meanwhile (two
            // sessions cannot hold the same name, but could look-alikes
            // ever): the first one stored wins.
            if roster.accounts.find(&account.keys).is_some() {
                let detail = format!("the name {} is registered already", Escaped(&name));
                return roster.tell_denied(sid, ACTION, DenyReason::AlreadyRegistered, detail);
            }
            let key = account.key().to_owned();
            roster.accounts.insert(account);
            if let Some(m) = roster.members.get_mut(&sid) {
                m.account = Some(key);
            }
            roster.audit(&name, ACTION, &name, None, "", "");
            let detail = format!("{} is registered: from now on it needs its account password", Escaped(&name));
            roster.flush_audit();
            roster.tell_done(sid, ACTION, detail);
        });
    }

    fn set_password(&mut self, sid: SessionId, phc: String) {
        const ACTION: &str = "password";
        let Some((key, name)) = self.account_of(sid).map(|a| (a.key().to_owned(), a.name.clone())) else {
            let detail = "you are not logged in to a registered name".into();
            return self.tell_denied(sid, ACTION, DenyReason::NotRegistered, detail);
        };
        let field = AccountField::Password(phc);
        self.store_then(Write::UpdateAccount { key: key.clone(), field: field.clone() }, move |roster, result| {
            match result {
                Ok(WriteOutcome::NotFound) => {
                    let detail = "the account is gone".into();
                    return roster.tell_denied(sid, ACTION, DenyReason::NotRegistered, detail);
                }
                Ok(_) => {}
                Err(_) => {
                    let detail = "the server could not store the new password; the old one still works".into();
                    return roster.tell_denied(sid, ACTION, DenyReason::StorageUnavailable, detail);
                }
            }
            roster.accounts.apply(&key, &field);
            if let Some(m) = roster.members.get_mut(&sid) {
                m.reset_login = false;
            }
            roster.audit(&name, ACTION, &name, None, "", "");
            roster.flush_audit();
            roster.tell_done(sid, ACTION, "your account password is changed".into());
        });
    }

    fn unregister(&mut self, sid: SessionId) {
        const ACTION: &str = "unregister";
        let Some(account) = self.account_of(sid).cloned() else {
            let detail = "you are not logged in to a registered name".into();
            return self.tell_denied(sid, ACTION, DenyReason::NotRegistered, detail);
        };
        let key = account.key().to_owned();
        self.store_then(Write::RemoveAccount { key: key.clone() }, move |roster, result| {
            if result.is_err() {
                let detail = "the server could not remove the account; try again later".into();
                return roster.tell_denied(sid, ACTION, DenyReason::StorageUnavailable, detail);
            }
            roster.accounts.remove(&key);
            // Off every invite list: whoever registers the name next is
            // someone else.
            let lists: Vec<String> =
                roster.rooms.iter().filter(|r| r.invited.contains_key(&key)).map(|r| r.name.clone()).collect();
            for room in lists {
                if let Some(rid) = roster.rooms.find(&room)
                    && let Some(r) = roster.rooms.get_mut(rid)
                {
                    r.invited.remove(&key);
                }
                roster.store_quietly(Write::RemoveInvite { room, key: key.clone() });
            }
            for m in roster.members.values_mut() {
                if m.account.as_deref() == Some(key.as_str()) {
                    m.account = None;
                }
            }
            roster.audit(&account.name, ACTION, &account.name, None, "", "");
            let detail = format!(
                "{} is no longer registered: the name is first come, first served again, and your stored private \
                 messages are gone",
                Escaped(&account.name)
            );
            roster.flush_audit();
            roster.tell_done(sid, ACTION, detail);
        });
    }

    /// Sends session `sid` a page of its stored private conversation with
    /// account `with` (both must be accounts: the asker's own login proves
    /// it is one of the two).
    pub(super) fn send_direct_history(
        &self,
        sid: SessionId,
        with: String,
        before: Option<u64>,
        after: Option<u64>,
        limit: u32,
    ) {
        let end = |with: String, more| ServerMessage::HistoryEnd { room: String::new(), with: Some(with), more };
        let (Some(m), Some(archive)) = (self.members.get(&sid), &self.archive) else { return };
        let Some(mine) = m.account.clone() else {
            let text = "private messages are stored only between registered names: register yours first".into();
            self.deliver_to(sid, &ServerMessage::Notice { text });
            return self.deliver_to(sid, &end(with, false));
        };
        let Some(other) = self.accounts.find(&name_keys(&with)) else {
            let text = format!("{} is not a registered name: nothing of it is stored", Escaped(&with));
            self.deliver_to(sid, &ServerMessage::Notice { text });
            return self.deliver_to(sid, &end(with, false));
        };
        let with = other.name.clone();
        let q = DirectQuery {
            a: mine,
            b: other.key().to_owned(),
            before,
            after,
            limit: limit.clamp(1, protocol::message::MAX_HISTORY_PAGE),
        };
        let (outbox, mailbox, log) = (m.outbox.clone(), m.mailbox.clone(), self.log.clone());
        archive.direct_history(
            q,
            Box::new(move |page| {
                let send = |msg: &ServerMessage| {
                    deliver_raw(&log, sid, &outbox, &mailbox, protocol::message::encode(msg).into())
                };
                let more = match page {
                    Ok(page) => {
                        for d in page.messages {
                            let msg = ServerMessage::Message {
                                id: d.id,
                                from: d.sender,
                                text: d.text,
                                ts_ms: d.ts_ms,
                                room: None,
                                to: Some(d.recipient),
                                history: true,
                                edited: d.edited,
                            };
                            if !send(&msg) {
                                return;
                            }
                        }
                        page.more
                    }
                    Err(e) => {
                        warn!(log, "private history read failed"; "error" => %e);
                        send(&ServerMessage::Notice { text: "stored private messages cannot be read now".into() });
                        true
                    }
                };
                send(&end(with, more));
            }),
        );
    }
}

/// What a banned user reads.
pub(super) fn ban_text(target: &str, reason: &str, until_ms: Option<u64>) -> String {
    let until = until_ms.map_or_else(|| "until it is lifted".to_owned(), |u| format!("until {}", format_utc(u)));
    let why = if reason.is_empty() { String::new() } else { format!(": {reason}") };
    format!("{} is banned {until}{why}", Escaped(target))
}

impl Handler<LoginCheck> for Roster {
    type Result = Result<Option<Credentials>, BanNotice>;
    fn handle(&mut self, msg: LoginCheck, _: &mut Context<Self>) -> Self::Result {
        let keys = name_keys(&msg.name);
        self.ban_check(&keys, msg.addr)?;
        let now = now_ms();
        Ok(self.accounts.find(&keys).map(|a| Credentials {
            key: a.key().to_owned(),
            phc: a.phc.clone(),
            reset_phc: a.reset.as_ref().filter(|(_, until)| now < *until).map(|(p, _)| p.clone()),
        }))
    }
}

impl Handler<AccountOf> for Roster {
    type Result = Option<Credentials>;
    fn handle(&mut self, msg: AccountOf, _: &mut Context<Self>) -> Option<Credentials> {
        let reset_login = self.members.get(&msg.id).is_some_and(|m| m.reset_login);
        self.account_of(msg.id).map(|a| Credentials {
            key: a.key().to_owned(),
            // No current password to check only for the session that came
            // in with the reset code; for any other, one that never matches.
            phc: if reset_login { None } else { Some(a.phc.clone().unwrap_or_default()) },
            reset_phc: None,
        })
    }
}

impl Handler<AccountChange> for Roster {
    type Result = ();
    fn handle(&mut self, msg: AccountChange, _: &mut Context<Self>) {
        match msg.op {
            AccountOp::Register(phc) => self.register(msg.id, phc),
            AccountOp::SetPassword(phc) => self.set_password(msg.id, phc),
            AccountOp::Unregister => self.unregister(msg.id),
        }
    }
}
