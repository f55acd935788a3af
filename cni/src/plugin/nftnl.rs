//! One read-only nftables query over netlink (NETLINK_NETFILTER), so that ADD can tell in a few
//! microseconds whether a chain is already in place, instead of running `nft` (a process and a
//! kernel transaction, 5-15 ms) every time: `NFT_MSG_GETCHAIN` for (table, chain), returning the
//! raw reply, whose user data holds the chain's comment.

use std::io;

use rtnetlink::sys::{Socket, SocketAddr};

const NETLINK_NETFILTER: isize = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFPROTO_IPV4: u8 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;

fn put_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// The kernel's NFT_MSG_NEWCHAIN answer for `ip <table> <chain>`, or None when the table or chain
/// does not exist.
pub fn get_chain(table: &str, chain: &str) -> io::Result<Option<Vec<u8>>> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut body = vec![NFPROTO_IPV4, 0, 0, 0];
    put_attr(&mut body, NFTA_CHAIN_TABLE, &cstr(table));
    put_attr(&mut body, NFTA_CHAIN_NAME, &cstr(chain));
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN).to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    socket.send(&msg, 0)?;
    let mut buf = Vec::with_capacity(16 * 1024);
    let n = socket.recv(&mut buf, 0)?;
    let reply = buf.get(..n).unwrap_or_default();
    let header = |at: usize| -> Option<(usize, u16)> {
        let len = u32::from_ne_bytes(reply.get(at..at + 4)?.try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(reply.get(at + 4..at + 6)?.try_into().ok()?);
        Some((len, kind))
    };
    match header(0) {
        Some((len, kind)) if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN => {
            Ok(reply.get(..len).map(<[u8]>::to_vec))
        }
        Some((_, NLMSG_ERROR)) => {
            let errno = reply
                .get(16..20)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_ne_bytes)
                .unwrap_or(0);
            if errno == -libc::ENOENT || errno == 0 {
                Ok(None)
            } else {
                Err(io::Error::from_raw_os_error(-errno))
            }
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected nfnetlink reply",
        )),
    }
}

/// Whether chain `ip <table> <chain>` exists and its raw description contains `marker` (its
/// comment). Any error answers false, so the caller falls back to (re)installing.
pub fn chain_has_marker(table: &str, chain: &str, marker: &str) -> bool {
    match get_chain(table, chain) {
        Ok(Some(raw)) => raw
            .windows(marker.len().max(1))
            .any(|w| w == marker.as_bytes()),
        _ => false,
    }
}
