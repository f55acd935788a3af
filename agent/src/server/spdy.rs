//! A SPDY/3.1 framer: what `kubectl port-forward` (client-go's spdystream) speaks, either over a raw
//! upgraded HTTP connection (`Upgrade: SPDY/3.1`) or tunnelled in WebSocket binary messages
//! (`SPDY/3.1+portforward.k8s.io`). Only the framing: streams and their life cycle belong to the user.
//!
//! Wire format (SPDY/3 draft §2.2): control frames start with `1 | version(15) | type(16)`, data
//! frames with `0 | stream-id(31)`; both continue with `flags(8) | length(24)`. Header blocks are one
//! zlib stream per direction and connection, primed with the SPDY/3 dictionary (§2.6.10.1); every
//! block ends with a sync flush. Decoding inflates with the dictionary; encoding emits stored
//! (uncompressed) deflate blocks without `FDICT`, which every zlib reader accepts — header blocks here
//! are a few bytes, compression would gain nothing.

use bytes::Bytes;

#[path = "spdy_zlib.rs"]
mod zlib;
use zlib::Inflater;
pub use zlib::{adler32, dictionary};

pub const VERSION: u16 = 3;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;
pub const RST_INTERNAL_ERROR: u32 = 6;

/// Largest control frame accepted (headers of port-forward streams are tiny).
const MAX_CONTROL: usize = 1 << 20;
/// Largest data frame (the 24-bit length field's maximum).
const MAX_DATA: usize = (1 << 24) - 1;

/// Header names are lower case; several values of one name are joined with NUL.
pub type Headers = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        slot: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        /// (flags, id, value)
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("{kind} frame of {len} bytes is malformed")]
    Malformed { kind: &'static str, len: usize },
    #[error("frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("header block: {0}")]
    Header(String),
}

/// Parse an inflated header block: `count`, then `len name len value` pairs.
pub fn parse_header_block(b: &[u8]) -> Result<Headers, SpdyError> {
    let bad = || SpdyError::Header("truncated header block".into());
    let mut r = Reader(b);
    let n = r.u32().ok_or_else(bad)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let len = r.u32().ok_or_else(bad)? as usize;
        let name = r.take(len).ok_or_else(bad)?;
        let len = r.u32().ok_or_else(bad)? as usize;
        let value = r.take(len).ok_or_else(bad)?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| SpdyError::Header("header name is not UTF-8".into()))?;
        out.push((
            name.to_ascii_lowercase(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok(out)
}

pub fn header_block(h: &Headers) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(h.len() as u32).to_be_bytes());
    for (k, v) in h {
        let k = k.to_ascii_lowercase();
        b.extend_from_slice(&(k.len() as u32).to_be_bytes());
        b.extend_from_slice(k.as_bytes());
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

/// The first value of header `name`.
/// Whether the upgrade request lists `protocol` in its `X-Stream-Protocol-Version` headers.
pub fn offers_protocol(headers: &axum::http::HeaderMap, protocol: &str) -> bool {
    headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == protocol)
}

pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
}

/// Turns bytes from the peer into frames.
pub struct Decoder {
    buf: Vec<u8>,
    inflater: Inflater,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            inflater: Inflater::new(),
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, `None` when more bytes are needed. Unknown control frame types are
    /// skipped (SPDY/3 §2.2.1). An error leaves the connection unusable.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        loop {
            if self.buf.len() < 8 {
                return Ok(None);
            }
            let h = &self.buf[..8];
            let len = (usize::from(h[5]) << 16) | (usize::from(h[6]) << 8) | usize::from(h[7]);
            let flags = h[4];
            let control = h[0] & 0x80 != 0;
            let limit = if control { MAX_CONTROL } else { MAX_DATA };
            if len > limit {
                return Err(SpdyError::TooLarge(len));
            }
            if self.buf.len() < 8 + len {
                return Ok(None);
            }
            let head = [h[0], h[1], h[2], h[3]];
            let body: Vec<u8> = self.buf.drain(..8 + len).skip(8).collect();
            if !control {
                let stream_id = u32::from_be_bytes(head) & 0x7fff_ffff;
                return Ok(Some(Frame::Data {
                    stream_id,
                    flags,
                    data: Bytes::from(body),
                }));
            }
            let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
            if version != VERSION {
                return Err(SpdyError::Version(version));
            }
            let kind = u16::from_be_bytes([head[2], head[3]]);
            if let Some(f) = self.control(kind, flags, &body)? {
                return Ok(Some(f));
            }
        }
    }

    fn control(&mut self, kind: u16, flags: u8, body: &[u8]) -> Result<Option<Frame>, SpdyError> {
        let len = body.len();
        let mut r = Reader(body);
        let malformed = |kind| SpdyError::Malformed { kind, len };
        let frame = match kind {
            TYPE_SYN_STREAM => {
                let bad = || malformed("SYN_STREAM");
                let stream_id = r.u32().ok_or_else(bad)? & 0x7fff_ffff;
                let associated_to = r.u32().ok_or_else(bad)? & 0x7fff_ffff;
                let priority = r.u8().ok_or_else(bad)? >> 5;
                let slot = r.u8().ok_or_else(bad)?;
                let headers = self.headers(r.0)?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    slot,
                    flags,
                    headers,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let name = if kind == TYPE_HEADERS {
                    "HEADERS"
                } else {
                    "SYN_REPLY"
                };
                let stream_id = r.u32().ok_or_else(|| malformed(name))? & 0x7fff_ffff;
                let headers = self.headers(r.0)?;
                if kind == TYPE_HEADERS {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                let bad = || malformed("RST_STREAM");
                Frame::RstStream {
                    stream_id: r.u32().ok_or_else(bad)? & 0x7fff_ffff,
                    status: r.u32().ok_or_else(bad)?,
                }
            }
            TYPE_SETTINGS => {
                let bad = || malformed("SETTINGS");
                let n = r.u32().ok_or_else(bad)?;
                if n as usize > len / 8 {
                    return Err(bad());
                }
                let mut entries = Vec::new();
                for _ in 0..n {
                    let fid = r.u32().ok_or_else(bad)?;
                    let value = r.u32().ok_or_else(bad)?;
                    entries.push(((fid >> 24) as u8, fid & 0x00ff_ffff, value));
                }
                Frame::Settings { flags, entries }
            }
            TYPE_PING => Frame::Ping {
                id: r.u32().ok_or_else(|| malformed("PING"))?,
            },
            TYPE_GOAWAY => {
                let bad = || malformed("GOAWAY");
                Frame::GoAway {
                    last_good_stream_id: r.u32().ok_or_else(bad)? & 0x7fff_ffff,
                    // SPDY/2 peers send no status.
                    status: r.u32().unwrap_or(0),
                }
            }
            TYPE_WINDOW_UPDATE => {
                let bad = || malformed("WINDOW_UPDATE");
                Frame::WindowUpdate {
                    stream_id: r.u32().ok_or_else(bad)? & 0x7fff_ffff,
                    delta: r.u32().ok_or_else(bad)? & 0x7fff_ffff,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }

    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let plain = self.inflater.inflate(compressed)?;
        parse_header_block(&plain)
    }
}

/// Turns frames into bytes for the peer.
#[derive(Default)]
pub struct Encoder {
    zlib_started: bool,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// `headers` as the next piece of this direction's zlib stream: stored blocks ending in a sync flush.
    fn compress(&mut self, headers: &Headers) -> Vec<u8> {
        let plain = header_block(headers);
        let mut out = Vec::with_capacity(plain.len() + 16);
        if !self.zlib_started {
            // CMF: deflate, 32 KiB window; FLG: no dictionary, check bits.
            out.extend_from_slice(&[0x78, 0x01]);
            self.zlib_started = true;
        }
        let mut chunks = plain.chunks(0xffff).peekable();
        if chunks.peek().is_none() {
            out.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        }
        for c in chunks {
            let n = c.len() as u16;
            out.push(0x00); // BFINAL=0, BTYPE=00 (stored), padded to the byte
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&(!n).to_le_bytes());
            out.extend_from_slice(c);
        }
        // The sync flush marker: an empty stored block.
        out.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        out
    }

    pub fn encode(&mut self, frame: &Frame) -> Vec<u8> {
        let (kind, flags, body) = match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let mut out = Vec::with_capacity(8 + data.len());
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.push(*flags);
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
                return out;
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                flags,
                headers,
            } => {
                let mut b = Vec::new();
                b.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                b.extend_from_slice(&(associated_to & 0x7fff_ffff).to_be_bytes());
                b.push((priority & 0x07) << 5);
                b.push(*slot);
                b.extend_from_slice(&self.compress(headers));
                (TYPE_SYN_STREAM, *flags, b)
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
            | Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let mut b = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                b.extend_from_slice(&self.compress(headers));
                let kind = if matches!(frame, Frame::Headers { .. }) {
                    TYPE_HEADERS
                } else {
                    TYPE_SYN_REPLY
                };
                (kind, *flags, b)
            }
            Frame::RstStream { stream_id, status } => {
                let mut b = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                b.extend_from_slice(&status.to_be_bytes());
                (TYPE_RST_STREAM, 0, b)
            }
            Frame::Settings { flags, entries } => {
                let mut b = (entries.len() as u32).to_be_bytes().to_vec();
                for (f, id, value) in entries {
                    b.extend_from_slice(
                        &((u32::from(*f) << 24) | (id & 0x00ff_ffff)).to_be_bytes(),
                    );
                    b.extend_from_slice(&value.to_be_bytes());
                }
                (TYPE_SETTINGS, *flags, b)
            }
            Frame::Ping { id } => (TYPE_PING, 0, id.to_be_bytes().to_vec()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let mut b = (last_good_stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                b.extend_from_slice(&status.to_be_bytes());
                (TYPE_GOAWAY, 0, b)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut b = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                b.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
                (TYPE_WINDOW_UPDATE, 0, b)
            }
        };
        let mut out = Vec::with_capacity(8 + body.len());
        out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&body);
        out
    }
}

#[cfg(test)]
#[path = "spdy_tests.rs"]
mod tests;
