//! The cluster DNS address on this node: `ip addr add 10.96.0.10/32 dev lo label lo:skiff-dns`. Packets from
//! pods to it arrive over the pod bridge and are delivered locally like those to any of the host's
//! addresses. (NodeLocal DNSCache puts it on a dummy interface; the loopback works on kernels without the
//! dummy driver too, and the label names it as skiff's.) The agent never removes it: pods outlive an agent
//! restart, and `scripts/down.sh` (or uninstall) deletes it with the rest of skiff.

use std::io;
use std::net::Ipv4Addr;

use rtnetlink::AddressMessageBuilder;
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::AddressAttribute;
use skiff_cni::plugin::netlink::Netlink;

/// The label of skiff's addresses on the loopback interface.
pub const LABEL: &str = "lo:skiff-dns";

/// Add `ip`/32 to the loopback interface unless it is there. Idempotent.
pub fn ensure(ip: Ipv4Addr) -> io::Result<()> {
    let mut nl = Netlink::open()?;
    let lo = nl
        .link_by_name("lo")?
        .ok_or_else(|| io::Error::other("no loopback interface"))?
        .index;
    if nl.addresses_v4(lo)?.contains(&(ip, 32)) {
        return Ok(());
    }
    let mut msg = AddressMessageBuilder::<Ipv4Addr>::new()
        .index(lo)
        .address(ip, 32)
        .build();
    msg.attributes.push(AddressAttribute::Label(LABEL.into()));
    match nl.request(
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    ) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("adding {ip}/32 to lo: {e}"),
        )),
    }
}
