//! A cache of the answers the upstream servers give to forwarded queries, as CoreDNS's `cache 30` in the
//! kubeadm Corefile: positive and negative answers (NXDOMAIN, or no records of the type) are kept for their
//! TTL (a negative answer's: the SOA's, RFC 2308), at most [`MAX_TTL`]; a hit is served with the TTLs
//! counted down (none beyond the entry's own life), the client's id and the client's spelling of the name. Failures (SERVFAIL, REFUSED),
//! truncated answers and answers that are not about the question asked are never kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use simple_dns::{Packet, PacketFlag, RCODE, TYPE, rdata::RData};

/// The longest an answer is kept, whatever its TTL.
pub const MAX_TTL: u32 = 30;
/// Entries kept at most; when full, expired entries go first, then the ones closest to expiry.
const CAPACITY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// Lower case, no trailing dot.
    name: String,
    qtype: u16,
    qclass: u16,
    /// Checking disabled (CD): the upstream answers differently, so it is another entry.
    cd: bool,
}

#[derive(Debug)]
struct Entry {
    message: Vec<u8>,
    expires: Instant,
    stored: Instant,
}

#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<Key, Entry>>,
}

/// The key of a query with exactly one question; None for anything else.
fn key(packet: &Packet<'_>) -> Option<Key> {
    let [q] = packet.questions.as_slice() else {
        return None;
    };
    Some(Key {
        name: q
            .qname
            .to_string()
            .trim_end_matches('.')
            .to_ascii_lowercase(),
        qtype: q.qtype.into(),
        qclass: q.qclass.into(),
        cd: packet.has_flags(PacketFlag::CHECKING_DISABLED),
    })
}

/// How long `reply` may be kept (None: not at all): the smallest TTL of its answer and authority records,
/// or for a negative answer the smaller of the SOA's TTL and its minimum; capped at [`MAX_TTL`].
fn lifetime(reply: &Packet<'_>) -> Option<u32> {
    if reply.has_flags(PacketFlag::TRUNCATION) {
        return None;
    }
    let negative = match reply.rcode() {
        RCODE::NoError => reply.answers.is_empty(),
        RCODE::NameError => true,
        _ => return None,
    };
    let ttl = if negative {
        reply
            .name_servers
            .iter()
            .find_map(|r| match &r.rdata {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .unwrap_or(0)
    } else {
        reply
            .answers
            .iter()
            .chain(&reply.name_servers)
            .map(|r| r.ttl)
            .min()
            .unwrap_or(0)
    };
    (ttl > 0).then_some(ttl.min(MAX_TTL))
}

impl Cache {
    /// The cached answer to `query`, made for it (its id and question, TTLs counted down); None if there is
    /// none, it expired, or it is bigger than `limit` bytes.
    pub fn get(&self, query: &[u8], limit: usize) -> Option<Vec<u8>> {
        self.get_at(query, limit, Instant::now())
    }

    fn get_at(&self, query: &[u8], limit: usize, now: Instant) -> Option<Vec<u8>> {
        let q = Packet::parse(query).ok()?;
        let key = key(&q)?;
        let (message, age, left) = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let entry = entries.get(&key)?;
            if entry.expires <= now {
                entries.remove(&key);
                return None;
            }
            (
                entry.message.clone(),
                now.duration_since(entry.stored).as_secs(),
                entry.expires.duration_since(now).as_secs(),
            )
        };
        let mut reply = Packet::parse(&message).ok()?;
        reply.set_id(q.id());
        reply.questions = q.questions.clone();
        let age = u32::try_from(age).unwrap_or(u32::MAX);
        let left = u32::try_from(left).unwrap_or(MAX_TTL).max(1);
        for r in reply
            .answers
            .iter_mut()
            .chain(&mut reply.name_servers)
            .chain(&mut reply.additional_records)
        {
            if r.rdata.type_code() != TYPE::OPT {
                r.ttl = r.ttl.saturating_sub(age).min(left);
            }
        }
        let bytes = reply.build_bytes_vec_compressed().ok()?;
        (bytes.len() <= limit).then_some(bytes)
    }

    /// Keep `reply`, the upstream's answer to `query`, if it may be kept.
    pub fn put(&self, query: &[u8], reply: &[u8]) {
        self.put_at(query, reply, Instant::now());
    }

    fn put_at(&self, query: &[u8], reply: &[u8], now: Instant) {
        let (Ok(q), Ok(r)) = (Packet::parse(query), Packet::parse(reply)) else {
            return;
        };
        let (Some(key), Some(ttl)) = (key(&q), lifetime(&r)) else {
            return;
        };
        // Only an answer to the question asked (by name, case aside, type and class).
        if r.questions.len() != 1
            || r.questions[0].qtype != q.questions[0].qtype
            || r.questions[0].qclass != q.questions[0].qclass
            || !r.questions[0]
                .qname
                .to_string()
                .eq_ignore_ascii_case(&q.questions[0].qname.to_string())
        {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= CAPACITY {
                // The quarter closest to expiry makes room (one scan, then many cheap inserts).
                let mut expiries: Vec<Instant> = entries.values().map(|e| e.expires).collect();
                expiries.sort_unstable();
                let cut = expiries[CAPACITY / 4];
                entries.retain(|_, e| e.expires > cut);
            }
        }
        entries.insert(
            key,
            Entry {
                message: reply.to_vec(),
                expires: now + Duration::from_secs(u64::from(ttl)),
                stored: now,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests;
