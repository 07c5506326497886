//! Length-delimited frames: a 4-byte big-endian length, then that many bytes.
//!
//! The decoder refuses a frame as soon as its header announces more than the
//! limit, before any of its body is buffered, so a peer cannot make us hold
//! more than `max + 4` bytes for one frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::FrameError;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Default hard limit on a frame's payload (64 KiB).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Splits a byte stream into frames and writes frames into a buffer.
///
/// A codec may hold a smaller limit for the first frame only
/// ([`FrameCodec::with_first_frame_limit`]): a server expects a client hello
/// of a known size first, so a connection that has not yet shown it holds the
/// key cannot make the server buffer a large frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max: usize,
    first: Option<usize>,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameCodec {
    /// A codec that refuses payloads longer than `max` bytes.
    pub const fn new(max: usize) -> Self {
        Self { max, first: None }
    }

    /// The same codec, refusing a first frame longer than `first` bytes
    /// (the limit applies to the first frame taken by
    /// [`FrameCodec::decode_next`]; later frames get the normal limit).
    #[must_use]
    pub fn with_first_frame_limit(self, first: usize) -> Self {
        Self { first: Some(first.min(self.max)), ..self }
    }

    /// The payload limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The limit that applies to the next frame [`FrameCodec::decode_next`] takes.
    pub fn next_limit(&self) -> usize {
        self.first.unwrap_or(self.max)
    }

    /// Takes the next frame off the front of `buf`, applying the first-frame
    /// limit until one frame has been taken.
    ///
    /// # Errors
    ///
    /// As [`FrameCodec::decode`].
    pub fn decode_next(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let frame = decode_with(self.next_limit(), buf)?;
        if frame.is_some() {
            self.first = None;
        }
        Ok(frame)
    }

    /// Takes one whole frame off the front of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLarge`] when the header announces more than the limit;
    /// the stream cannot be resynchronised after that and should be closed.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        decode_with(self.max, buf)
    }

    /// Appends `payload` as one frame to `dst`.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLarge`] when the payload is longer than the limit.
    pub fn encode(&self, payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        if payload.len() > self.max {
            return Err(FrameError::TooLarge { len: payload.len(), max: self.max });
        }
        dst.reserve(HEADER_LEN + payload.len());
        dst.put_u32(payload.len() as u32);
        dst.put_slice(payload);
        Ok(())
    }

    /// Appends one frame of `len` bytes to `dst`, its body written by
    /// `fill` straight into the buffer (sealing in place, say) after the
    /// length prefix.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLarge`] when `len` is over the limit (nothing is
    /// appended and `fill` is not called).
    ///
    /// # Panics
    ///
    /// In debug builds, when `fill` appends other than `len` bytes.
    pub fn encode_with(
        &self,
        len: usize,
        dst: &mut Vec<u8>,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), FrameError> {
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        dst.reserve(HEADER_LEN + len);
        dst.extend_from_slice(&(len as u32).to_be_bytes());
        let start = dst.len();
        fill(dst);
        debug_assert_eq!(dst.len() - start, len, "frame body of another length than announced");
        Ok(())
    }

    /// One frame as a fresh buffer.
    ///
    /// # Errors
    ///
    /// As [`FrameCodec::encode`].
    pub fn to_frame(&self, payload: &[u8]) -> Result<Bytes, FrameError> {
        let mut b = BytesMut::with_capacity(HEADER_LEN + payload.len());
        self.encode(payload, &mut b)?;
        Ok(b.freeze())
    }
}

/// Takes one frame of at most `max` bytes off the front of `buf`.
fn decode_with(max: usize, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if buf.len() < HEADER_LEN + len {
        buf.reserve(HEADER_LEN + len - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    Ok(Some(buf.split_to(len).freeze()))
}

#[cfg(feature = "codec")]
mod tokio_codec {
    //! `tokio_util::codec` adapters, so I/O layers can use `Framed*`.
    use super::*;

    /// Error of the `tokio_util` codec adapter.
    #[derive(Debug, thiserror::Error)]
    pub enum CodecError {
        /// Reading or writing the underlying stream failed.
        #[error("I/O error: {0}")]
        Io(#[from] std::io::Error),
        /// The peer sent a frame over the limit.
        #[error(transparent)]
        Frame(#[from] FrameError),
    }

    impl tokio_util::codec::Decoder for FrameCodec {
        type Item = Bytes;
        type Error = CodecError;
        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
            Ok(FrameCodec::decode_next(self, src)?)
        }
    }

    impl<T: AsRef<[u8]>> tokio_util::codec::Encoder<T> for FrameCodec {
        type Error = CodecError;
        fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), CodecError> {
            Ok(FrameCodec::encode(self, item.as_ref(), dst)?)
        }
    }
}

#[cfg(feature = "codec")]
pub use tokio_codec::CodecError;

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let codec = FrameCodec::new(16);
        let whole = frame(b"hello");
        let mut buf = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            assert_eq!(codec.decode(&mut buf), Ok(None), "byte {i}");
            buf.put_u8(*b);
        }
        assert_eq!(codec.decode(&mut buf).ok().flatten().as_deref(), Some(&b"hello"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn concatenated_frames_come_out_in_order() {
        let codec = FrameCodec::new(16);
        let mut buf = BytesMut::new();
        for p in [&b"a"[..], b"", b"bcd"] {
            buf.extend_from_slice(&frame(p));
        }
        let got: Vec<Bytes> = std::iter::from_fn(|| codec.decode(&mut buf).ok().flatten()).collect();
        assert_eq!(got, vec![Bytes::from_static(b"a"), Bytes::new(), Bytes::from_static(b"bcd")]);
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header() {
        let codec = FrameCodec::new(16);
        let mut buf = BytesMut::from(&17u32.to_be_bytes()[..]);
        assert_eq!(codec.decode(&mut buf), Err(FrameError::TooLarge { len: 17, max: 16 }));
        let mut huge = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(codec.decode(&mut huge).is_err());
        let mut out = BytesMut::new();
        assert!(codec.encode(&[0; 17], &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn the_first_frame_has_its_own_limit() {
        let mut codec = FrameCodec::new(1024).with_first_frame_limit(8);
        let mut big = BytesMut::from(&frame(&[1; 9])[..]);
        assert_eq!(codec.decode_next(&mut big), Err(FrameError::TooLarge { len: 9, max: 8 }));
        // Refused from the header alone: nothing of the body is reserved.
        let mut header = BytesMut::from(&1000u32.to_be_bytes()[..]);
        assert!(codec.decode_next(&mut header).is_err());
        assert!(header.capacity() < 64, "reserved {}", header.capacity());
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&frame(&[2; 8]));
        buf.extend_from_slice(&frame(&[3; 900]));
        assert_eq!(codec.decode_next(&mut buf).ok().flatten().map(|b| b.len()), Some(8));
        assert_eq!(codec.next_limit(), 1024);
        assert_eq!(codec.decode_next(&mut buf).ok().flatten().map(|b| b.len()), Some(900));
    }

    #[test]
    fn a_frame_filled_in_place_decodes_and_the_limit_holds() {
        let codec = FrameCodec::new(8);
        let mut v = vec![9u8];
        codec.encode_with(3, &mut v, |b| b.extend_from_slice(b"abc")).expect("fits");
        assert_eq!(v, [9, 0, 0, 0, 3, b'a', b'b', b'c']);
        let mut called = false;
        assert!(codec.encode_with(9, &mut v, |_| called = true).is_err());
        assert!(!called && v.len() == 8);
        let mut buf = BytesMut::from(&v[1..]);
        assert_eq!(codec.decode(&mut buf).ok().flatten().as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let codec = FrameCodec::new(1024);
        let mut buf = BytesMut::new();
        codec.encode(&[7; 1024], &mut buf).expect("fits");
        assert_eq!(buf.len(), 1028);
        assert_eq!(codec.decode(&mut buf).ok().flatten().map(|b| b.len()), Some(1024));
    }
}
