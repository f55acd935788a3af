//! The byte layout of values and history records in the redb tables.
//!
//! A stored value is `create_revision (i64 LE) | mod_revision (i64 LE) | value bytes`.
//! A history record is `kind (u8) | key length (u32 LE) | key | value | has_prev (u8) | [prev value]`,
//! where a value inside a record is `create_revision | mod_revision | length (u32 LE) | bytes`.

use crate::store::{KeyValue, Revision, StoreError, WatchEvent};

const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;

/// Encode the value stored under a key in the `kv` table.
pub(super) fn encode_value(
    create_revision: Revision,
    mod_revision: Revision,
    value: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create_revision.to_le_bytes());
    out.extend_from_slice(&mod_revision.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// Decode a `kv` table value stored under `key`.
pub(super) fn decode_value(key: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    let mut reader = Reader { bytes, pos: 0 };
    let create_revision = reader.i64()?;
    let mod_revision = reader.i64()?;
    Ok(KeyValue {
        key: key.to_string(),
        value: reader.rest().to_vec(),
        create_revision,
        mod_revision,
    })
}

/// Encode a change for the `history` table (keyed by its revision).
pub(super) fn encode_event(event: &WatchEvent) -> Vec<u8> {
    let (kind, kv, prev) = match event {
        WatchEvent::Put { kv, prev } => (KIND_PUT, kv, prev.as_ref()),
        WatchEvent::Delete { kv } => (KIND_DELETE, kv, None),
    };
    let mut out =
        Vec::with_capacity(64 + kv.key.len() + kv.value.len() + prev.map_or(0, |p| p.value.len()));
    out.push(kind);
    put_bytes(&mut out, kv.key.as_bytes());
    put_record_value(&mut out, kv);
    match prev {
        Some(prev) => {
            out.push(1);
            put_record_value(&mut out, prev);
        }
        None => out.push(0),
    }
    out
}

/// Decode a `history` record.
pub(super) fn decode_event(bytes: &[u8]) -> Result<WatchEvent, StoreError> {
    let mut reader = Reader { bytes, pos: 0 };
    let kind = reader.u8()?;
    let key = String::from_utf8(reader.bytes()?.to_vec())
        .map_err(|_| corrupt("history key is not UTF-8"))?;
    let kv = reader.record_value(&key)?;
    let prev = match reader.u8()? {
        0 => None,
        1 => Some(reader.record_value(&key)?),
        _ => return Err(corrupt("bad prev flag in history record")),
    };
    match kind {
        KIND_PUT => Ok(WatchEvent::Put { kv, prev }),
        KIND_DELETE => Ok(WatchEvent::Delete { kv }),
        _ => Err(corrupt("unknown history record kind")),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Values are bounded far below 4 GiB by the API server's request size limit.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_record_value(out: &mut Vec<u8>, kv: &KeyValue) {
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    put_bytes(out, &kv.value);
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt record: {what}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| corrupt("truncated"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, StoreError> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(buf))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let mut buf = [0u8; 4];
        buf.copy_from_slice(self.take(4)?);
        let len = u32::from_le_bytes(buf) as usize;
        self.take(len)
    }

    fn record_value(&mut self, key: &str) -> Result<KeyValue, StoreError> {
        let create_revision = self.i64()?;
        let mod_revision = self.i64()?;
        let value = self.bytes()?.to_vec();
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision,
            mod_revision,
        })
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &[u8], c: Revision, m: Revision) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.to_vec(),
            create_revision: c,
            mod_revision: m,
        }
    }

    #[test]
    fn value_round_trip() {
        let bytes = encode_value(3, 7, b"hello");
        assert_eq!(
            decode_value("/k", &bytes).ok(),
            Some(kv("/k", b"hello", 3, 7))
        );
    }

    #[test]
    fn event_round_trip() {
        let events = [
            WatchEvent::Put {
                kv: kv("/a", b"x", 2, 2),
                prev: None,
            },
            WatchEvent::Put {
                kv: kv("/a", b"y", 2, 5),
                prev: Some(kv("/a", b"x", 2, 2)),
            },
            WatchEvent::Delete {
                kv: kv("/a", b"", 2, 9),
            },
        ];
        for event in events {
            assert_eq!(decode_event(&encode_event(&event)).ok(), Some(event));
        }
    }

    #[test]
    fn truncated_records_are_errors() {
        let bytes = encode_event(&WatchEvent::Put {
            kv: kv("/a", b"xyz", 2, 2),
            prev: None,
        });
        for len in 0..bytes.len() {
            assert!(
                decode_event(&bytes[..len]).is_err(),
                "prefix of length {len} decoded"
            );
        }
        assert!(decode_value("/a", &[1, 2, 3]).is_err());
    }
}
