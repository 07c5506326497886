//! Bans and mutes, sans-IO: what is in force, for whom, until when.
//!
//! A name ban holds a name's look-alike keys (an account's, or a bare
//! name's); an address ban a range ([`IpRange`], an IPv6 address alone is
//! its /64). Mutes hold a name and a room (or none: everywhere). Times are
//! Unix milliseconds passed in.

use std::collections::BTreeMap;
use std::net::IpAddr;

use protocol::message::{NameKeys, name_keys};
use protocol::moderation::{BanEntry, BanKind};

use crate::accounts::room_key;
use crate::archive::SanctionRecord;

/// An address range: an address and how many leading bits count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    /// The first address (host bits cleared).
    pub addr: IpAddr,
    /// Leading bits that count.
    pub prefix: u8,
}

/// Why an address range is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address or range (e.g. 203.0.113.7, 203.0.113.0/24, 2001:db8::1, 2001:db8::/48)")]
pub struct RangeError(pub String);

impl IpRange {
    /// Parses `ADDR` or `ADDR/PREFIX`. An IPv4 address alone is itself
    /// (/32); an IPv6 address alone is its /64 (one host's or one home's
    /// addresses: banning a single IPv6 address bans nothing).
    ///
    /// # Errors
    ///
    /// [`RangeError`] for anything else (a prefix over the address's width).
    pub fn parse(s: &str) -> Result<Self, RangeError> {
        let err = || RangeError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().map_err(|_| err())?, Some(p.parse::<u8>().map_err(|_| err())?)),
            None => (s.trim().parse::<IpAddr>().map_err(|_| err())?, None),
        };
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        let (width, default) = match addr {
            IpAddr::V4(_) => (32, 32),
            IpAddr::V6(_) => (128, 64),
        };
        let prefix = prefix.unwrap_or(default);
        if prefix > width {
            return Err(err());
        }
        Ok(Self { addr: mask(addr, prefix), prefix })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        matches!((ip, self.addr), (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)))
            && mask(ip, self.prefix) == self.addr
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `ip` with all but the first `prefix` bits cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// What a sanction does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// No login under this name (or one that counts as the same).
    BanName(NameKeys),
    /// No login from this range.
    BanAddress(IpRange),
    /// No text or voice from this name in a room (a room key; `None`:
    /// anywhere).
    Mute(NameKeys, Option<String>),
}

/// One ban or mute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanction {
    /// Its id.
    pub id: u64,
    /// What it does.
    pub kind: Kind,
    /// The name or range as shown.
    pub target: String,
    /// The room as shown (mutes).
    pub room: Option<String>,
    /// Why (may be empty).
    pub reason: String,
    /// Who imposed it.
    pub by: String,
    /// Since when, Unix ms.
    pub since_ms: u64,
    /// Until when (`None`: until lifted).
    pub until_ms: Option<u64>,
}

impl Sanction {
    fn in_force(&self, now_ms: u64) -> bool {
        self.until_ms.is_none_or(|u| now_ms < u)
    }

    /// Its stored form.
    pub fn record(&self) -> SanctionRecord {
        let kind = match self.kind {
            Kind::BanName(_) => "ban_name",
            Kind::BanAddress(_) => "ban_address",
            Kind::Mute(..) => "mute",
        };
        SanctionRecord {
            id: self.id,
            kind: kind.to_owned(),
            target: self.target.clone(),
            room: self.room.clone(),
            reason: self.reason.clone(),
            by: self.by.clone(),
            since_ms: self.since_ms,
            until_ms: self.until_ms,
        }
    }

    /// Back from its stored form (`None`: a record this server does not
    /// understand, which is skipped).
    pub fn from_record(r: SanctionRecord) -> Option<Self> {
        let kind = match r.kind.as_str() {
            "ban_name" => Kind::BanName(name_keys(&r.target)),
            "ban_address" => Kind::BanAddress(IpRange::parse(&r.target).ok()?),
            "mute" => Kind::Mute(name_keys(&r.target), r.room.as_deref().map(room_key)),
            _ => return None,
        };
        Some(Self {
            id: r.id,
            kind,
            target: r.target,
            room: r.room,
            reason: r.reason,
            by: r.by,
            since_ms: r.since_ms,
            until_ms: r.until_ms,
        })
    }

    /// As a ban list shows it (`None` for a mute).
    pub fn ban_entry(&self) -> Option<BanEntry> {
        let kind = match self.kind {
            Kind::BanName(_) => BanKind::Name,
            Kind::BanAddress(_) => BanKind::Address,
            Kind::Mute(..) => return None,
        };
        Some(BanEntry {
            id: self.id,
            kind,
            target: self.target.clone(),
            reason: self.reason.clone(),
            by: self.by.clone(),
            since_ms: self.since_ms,
            until_ms: self.until_ms,
        })
    }
}

/// Every ban and mute in force.
#[derive(Debug, Default)]
pub struct Sanctions {
    by_id: BTreeMap<u64, Sanction>,
    next_id: u64,
}

impl Sanctions {
    /// The sanctions found in the store; new ids follow the highest.
    pub fn load(records: Vec<SanctionRecord>) -> Self {
        let mut me = Self { by_id: BTreeMap::new(), next_id: 1 };
        for r in records {
            me.next_id = me.next_id.max(r.id.saturating_add(1));
            if let Some(s) = Sanction::from_record(r) {
                me.by_id.insert(s.id, s);
            }
        }
        me
    }

    /// A fresh id for a new sanction.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id.max(1);
        self.next_id = id + 1;
        id
    }

    /// Adds one. A sanction on the same target (and room) replaces the old
    /// one, whose id is returned (to be removed from the store).
    pub fn insert(&mut self, s: Sanction) -> Option<u64> {
        let old = self.by_id.values().find(|o| o.kind == s.kind).map(|o| o.id);
        if let Some(id) = old {
            self.by_id.remove(&id);
        }
        self.by_id.insert(s.id, s);
        old
    }

    /// Removes one by id.
    pub fn remove(&mut self, id: u64) -> Option<Sanction> {
        self.by_id.remove(&id)
    }

    /// The sanctions past their end, removed (to be removed from the
    /// store).
    pub fn expire(&mut self, now_ms: u64) -> Vec<u64> {
        let gone: Vec<u64> = self.by_id.values().filter(|s| !s.in_force(now_ms)).map(|s| s.id).collect();
        for id in &gone {
            self.by_id.remove(id);
        }
        gone
    }

    /// The ban in force on a name that counts as the same as `keys`.
    pub fn name_ban(&self, keys: &NameKeys, now_ms: u64) -> Option<&Sanction> {
        self.by_id.values().find(|s| s.in_force(now_ms) && matches!(&s.kind, Kind::BanName(k) if k.collides(keys)))
    }

    /// The ban in force on a range holding `ip`.
    pub fn address_ban(&self, ip: IpAddr, now_ms: u64) -> Option<&Sanction> {
        self.by_id.values().find(|s| s.in_force(now_ms) && matches!(&s.kind, Kind::BanAddress(r) if r.contains(ip)))
    }

    /// The mute in force on `keys` in room `room` (a room key; a mute
    /// everywhere counts in every room; `None` asks about private
    /// messages, which only a mute everywhere silences).
    pub fn mute(&self, keys: &NameKeys, room: Option<&str>, now_ms: u64) -> Option<&Sanction> {
        self.by_id.values().find(|s| {
            s.in_force(now_ms)
                && matches!(&s.kind, Kind::Mute(k, r) if k.collides(keys) && (r.is_none() || r.as_deref() == room))
        })
    }

    /// The ban whose target is written `target` (a name or a range as
    /// banned), or `#ID`.
    pub fn find_ban(&self, target: &str) -> Option<&Sanction> {
        if let Some(id) = target.strip_prefix('#').and_then(|n| n.parse::<u64>().ok()) {
            return self.by_id.get(&id).filter(|s| s.ban_entry().is_some());
        }
        let range = IpRange::parse(target).ok();
        let keys = name_keys(target);
        self.by_id.values().find(|s| match &s.kind {
            Kind::BanName(k) => k.collides(&keys),
            Kind::BanAddress(r) => Some(*r) == range,
            Kind::Mute(..) => false,
        })
    }

    /// The mute on `keys` in exactly `room` (a room key; `None`: the mute
    /// everywhere).
    pub fn find_mute(&self, keys: &NameKeys, room: Option<&str>) -> Option<&Sanction> {
        self.by_id.values().find(|s| matches!(&s.kind, Kind::Mute(k, r) if k.collides(keys) && r.as_deref() == room))
    }

    /// The bans in force, newest first.
    pub fn bans(&self, now_ms: u64) -> Vec<BanEntry> {
        self.by_id.values().rev().filter(|s| s.in_force(now_ms)).filter_map(Sanction::ban_entry).collect()
    }

    /// How many sanctions there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn ranges_parse_and_contain() {
        let one = IpRange::parse("203.0.113.7").expect("v4");
        assert_eq!(one.to_string(), "203.0.113.7/32");
        assert!(one.contains(ip("203.0.113.7")) && !one.contains(ip("203.0.113.8")));
        assert!(one.contains(ip("::ffff:203.0.113.7")), "a v4-mapped address is the v4 one");
        let net = IpRange::parse("203.0.113.77/24").expect("v4 net");
        assert_eq!(net.to_string(), "203.0.113.0/24");
        assert!(net.contains(ip("203.0.113.200")) && !net.contains(ip("203.0.114.1")));
        let v6 = IpRange::parse("2001:db8:1:2:3:4:5:6").expect("v6");
        assert_eq!(v6.to_string(), "2001:db8:1:2::/64", "an IPv6 address alone is its /64");
        assert!(v6.contains(ip("2001:db8:1:2:ffff::1")) && !v6.contains(ip("2001:db8:1:3::1")));
        assert!(!v6.contains(ip("203.0.113.7")));
        assert!(IpRange::parse("2001:db8::1/128").expect("host").contains(ip("2001:db8::1")));
        for bad in ["", "nonsense", "203.0.113.7/33", "2001:db8::/129", "1.2.3.4/x"] {
            assert!(IpRange::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn sanction(s: &mut Sanctions, kind: Kind, target: &str, until_ms: Option<u64>) -> u64 {
        let id = s.next_id();
        let room = match &kind {
            Kind::Mute(_, r) => r.clone(),
            _ => None,
        };
        s.insert(Sanction {
            id,
            kind,
            target: target.into(),
            room,
            reason: "r".into(),
            by: "mod".into(),
            since_ms: 0,
            until_ms,
        });
        id
    }

    #[test]
    fn bans_hold_until_their_end_and_find_look_alikes() {
        let mut s = Sanctions::load(Vec::new());
        sanction(&mut s, Kind::BanName(name_keys("Mallory")), "Mallory", Some(1000));
        assert!(s.name_ban(&name_keys("MALLORY"), 999).is_some());
        assert!(s.name_ban(&name_keys("mallory"), 1000).is_none(), "over at its end");
        assert!(s.name_ban(&name_keys("alice"), 0).is_none());
        sanction(&mut s, Kind::BanAddress(IpRange::parse("198.51.100.0/24").expect("r")), "198.51.100.0/24", None);
        assert!(s.address_ban(ip("198.51.100.9"), u64::MAX - 1).is_some());
        assert_eq!(s.bans(0).len(), 2);
        assert_eq!(s.expire(2000).len(), 1);
        assert_eq!(s.bans(0).len(), 1);
        assert!(s.find_ban("198.51.100.0/24").is_some() && s.find_ban("#2").is_some() && s.find_ban("#1").is_none());
    }

    #[test]
    fn mutes_reach_their_room_or_everywhere() {
        let mut s = Sanctions::load(Vec::new());
        sanction(&mut s, Kind::Mute(name_keys("eve"), Some(room_key("dev"))), "eve", None);
        assert!(s.mute(&name_keys("Eve"), Some("dev"), 0).is_some());
        assert!(s.mute(&name_keys("eve"), Some("general"), 0).is_none());
        assert!(s.mute(&name_keys("eve"), None, 0).is_none(), "private messages stay open");
        sanction(&mut s, Kind::Mute(name_keys("eve"), None), "eve", None);
        assert!(
            s.mute(&name_keys("eve"), Some("general"), 0).is_some() && s.mute(&name_keys("eve"), None, 0).is_some()
        );
        // The same target again replaces, not duplicates.
        let old = s.find_mute(&name_keys("eve"), None).map(|m| m.id);
        let id = s.next_id();
        let replaced = s.insert(Sanction {
            id,
            kind: Kind::Mute(name_keys("eve"), None),
            target: "eve".into(),
            room: None,
            reason: String::new(),
            by: "m".into(),
            since_ms: 5,
            until_ms: None,
        });
        assert_eq!(replaced, old);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn records_round_trip() {
        let mut s = Sanctions::load(Vec::new());
        sanction(&mut s, Kind::BanAddress(IpRange::parse("2001:db8::/48").expect("r")), "2001:db8::/48", Some(9));
        sanction(&mut s, Kind::Mute(name_keys("eve"), Some(room_key("dev"))), "eve", None);
        let records: Vec<SanctionRecord> = s.by_id.values().map(Sanction::record).collect();
        let back = Sanctions::load(records);
        assert_eq!(back.by_id, s.by_id);
        assert_eq!(Sanctions::load(vec![]).next_id, 1);
    }
}
