//! Invite links: all a client needs to join, in one line (issue 17).
//!
//! ```text
//! chatroom://HOST:PORT[,HOST:PORT…]/?v=1&key=KEY&fp=FINGERPRINT[&room=ROOM]
//! ```
//!
//! - `HOST:PORT`: where the server listens (a DNS name, an IPv4 address, or
//!   an IPv6 address in brackets); several, comma-separated, are tried in
//!   order.
//! - `key`: the invite's key in its text form (URL-safe base64, the `=`
//!   padding left out).
//! - `fp`: the server identity's fingerprint without its `SHA256:` prefix,
//!   in URL-safe base64 (the client pins it: no trust question).
//! - `room`: the room to land in (percent-encoded UTF-8), optional.
//!
//! Unknown parameters are ignored (later versions may add some); `v` other
//! than 1 is refused.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use thiserror::Error;

use crate::crypto::{Fingerprint, Psk};

/// The scheme of an invite link.
pub const SCHEME: &str = "chatroom://";

/// A parsed invite link.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteLink {
    /// Where to connect (`HOST:PORT`), in order.
    pub addresses: Vec<String>,
    /// The invite's key (text form; a secret).
    pub key: String,
    /// The server's identity.
    pub fingerprint: Fingerprint,
    /// The room to land in.
    pub room: Option<String>,
}

impl std::fmt::Debug for InviteLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteLink")
            .field("addresses", &self.addresses)
            .field("fingerprint", &self.fingerprint)
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

/// Why a link is not an invite.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InviteError {
    /// It does not start with `chatroom://`.
    #[error("an invite link starts with chatroom://")]
    Scheme,
    /// No address, or one without a port.
    #[error("the invite link has no HOST:PORT address")]
    Address,
    /// `key` missing or not a key.
    #[error("the invite link holds no valid key")]
    Key,
    /// `fp` missing or not a fingerprint.
    #[error("the invite link holds no valid server fingerprint")]
    Fingerprint,
    /// A version this client does not know.
    #[error("the invite link is of a newer version ({0}); update your client")]
    Version(String),
    /// Bad percent-encoding or UTF-8.
    #[error("the invite link is garbled")]
    Garbled,
}

impl InviteLink {
    /// Parses a link (surrounding whitespace ignored).
    ///
    /// # Errors
    ///
    /// The first thing wrong with it.
    pub fn parse(text: &str) -> Result<Self, InviteError> {
        let rest = text.trim().strip_prefix(SCHEME).ok_or(InviteError::Scheme)?;
        let (hosts, query) = match rest.split_once('/') {
            Some((h, q)) => (h, q.strip_prefix('?').unwrap_or(q)),
            None => return Err(InviteError::Key),
        };
        let addresses: Vec<String> = hosts.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect();
        if addresses.is_empty() || addresses.iter().any(|a| !has_port(a)) {
            return Err(InviteError::Address);
        }
        let (mut key, mut fp, mut room, mut version) = (None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v)?;
            match k {
                "key" => key = Some(v),
                "fp" => fp = Some(v),
                "room" => room = Some(v),
                "v" => version = Some(v),
                _ => {}
            }
        }
        if let Some(v) = version
            && v != "1"
        {
            return Err(InviteError::Version(v));
        }
        let key = key.ok_or(InviteError::Key)?;
        // Padding back on, as the key file form has it.
        let raw = URL_SAFE_NO_PAD.decode(key.trim_end_matches('=')).map_err(|_| InviteError::Key)?;
        let key = base64::engine::general_purpose::URL_SAFE.encode(raw);
        Psk::parse(&key).map_err(|_| InviteError::Key)?;
        let fp_raw =
            URL_SAFE_NO_PAD.decode(fp.ok_or(InviteError::Fingerprint)?).map_err(|_| InviteError::Fingerprint)?;
        let fingerprint = Fingerprint::parse(&format!("SHA256:{}", STANDARD_NO_PAD.encode(fp_raw)))
            .map_err(|_| InviteError::Fingerprint)?;
        let room = room.map(|r| r.trim_start_matches('#').to_owned()).filter(|r| !r.is_empty());
        Ok(Self { addresses, key, fingerprint, room })
    }
}

impl std::fmt::Display for InviteLink {
    /// The link (it holds the key: share it like one).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = self.key.trim_end_matches('=');
        let fp = self.fingerprint.to_string();
        let fp_raw = STANDARD_NO_PAD.decode(fp.trim_start_matches("SHA256:")).unwrap_or_default();
        write!(f, "{SCHEME}{}/?v=1&key={key}&fp={}", self.addresses.join(","), URL_SAFE_NO_PAD.encode(fp_raw))?;
        if let Some(room) = &self.room {
            write!(f, "&room={}", percent_encode(room))?;
        }
        Ok(())
    }
}

/// Whether `a` ends in `:PORT` (after a bracketed IPv6 address, if any).
fn has_port(a: &str) -> bool {
    let port = match a.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => port,
        _ => return false,
    };
    port.parse::<u16>().is_ok_and(|p| p != 0)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Result<String, InviteError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or(InviteError::Garbled)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| InviteError::Garbled)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| InviteError::Garbled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InviteLink {
        InviteLink {
            addresses: vec!["chat.example.org:7878".into(), "[2001:db8::1]:7878".into()],
            key: Psk::generate(),
            fingerprint: Fingerprint::of_der(b"some identity"),
            room: Some("café".into()),
        }
    }

    #[test]
    fn links_round_trip() {
        let link = sample();
        let text = link.to_string();
        assert!(text.starts_with("chatroom://chat.example.org:7878,[2001:db8::1]:7878/?v=1&key="), "{text}");
        assert!(!text.contains('=') || text.matches('=').count() == 4, "no padding: {text}");
        assert!(text.contains("&room=caf%C3%A9"), "{text}");
        assert_eq!(InviteLink::parse(&format!("  {text}\n")), Ok(link));
        let bare = InviteLink { room: None, ..sample() };
        assert_eq!(InviteLink::parse(&bare.to_string()).map(|l| l.room), Ok(None));
    }

    #[test]
    fn bad_links_say_what_is_wrong() {
        let good = sample().to_string();
        assert_eq!(InviteLink::parse("https://x:1/?key=a"), Err(InviteError::Scheme));
        assert_eq!(InviteLink::parse(&good.replace(":7878,", ",")), Err(InviteError::Address));
        assert_eq!(InviteLink::parse("chatroom://h:1/?fp=abc"), Err(InviteError::Key));
        let no_fp = good.split("&fp=").next().unwrap_or_default().to_owned();
        assert_eq!(InviteLink::parse(&no_fp), Err(InviteError::Fingerprint));
        assert_eq!(InviteLink::parse(&good.replace("v=1", "v=2")), Err(InviteError::Version("2".into())));
        assert_eq!(InviteLink::parse(&good.replace("caf%C3%A9", "%ZZ")), Err(InviteError::Garbled));
        // Unknown parameters are fine.
        assert!(InviteLink::parse(&format!("{good}&later=1")).is_ok());
    }
}
