//! The links skiff-cni manages: the host bridge and the veth pair of each attachment.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::netlink::{Link, Netlink};
use super::sysctl;
use crate::spec::{Error, ErrorCode};

pub(crate) fn nl_err(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let op = op.into();
    move |e| Error::new(ErrorCode::NETLINK, op).with_details(e.to_string())
}

/// FNV-1a: a stable, dependency-free hash for interface and MAC names.
pub(crate) fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The host-side veth name of an attachment: stable, so DEL can find it without the netns.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    format!(
        "sk{:012x}",
        fnv(&format!("{container_id}/{ifname}")) & 0xffff_ffff_ffff
    )
}

/// A stable locally administered MAC for the bridge, so that it does not change as ports come and
/// go (a bridge without an explicit address takes its lowest port's).
fn bridge_mac(bridge: &str) -> Vec<u8> {
    let h = fnv(bridge).to_be_bytes();
    vec![0x0a, 0x58, h[0], h[1], h[2], h[3]]
}

/// The bridge as the config wants it.
pub struct BridgeSpec<'a> {
    pub name: &'a str,
    pub mtu: Option<u32>,
    /// Gateway mode: this address with this prefix on the bridge.
    pub gateway: Option<(Ipv4Addr, u8)>,
    pub promisc: bool,
}

/// Make sure the bridge exists, is up, promiscuous if asked and (in gateway mode) carries
/// `gateway/prefix`.
pub fn ensure_bridge(nl: &mut Netlink, spec: &BridgeSpec<'_>) -> Result<Link, Error> {
    let (name, mtu, gateway) = (spec.name, spec.mtu, spec.gateway);
    let link = match nl
        .link_by_name(name)
        .map_err(nl_err(format!("failed to look up {name}")))?
    {
        Some(l) => l,
        None => {
            let mut b = LinkBridge::new(name).address(bridge_mac(name));
            if let Some(mtu) = mtu {
                b = b.mtu(mtu);
            }
            match nl.add_link(b.build()) {
                Ok(()) => {}
                // a concurrent ADD created it first
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(nl_err(format!("failed to create bridge {name}"))(e)),
            }
            nl.link_by_name(name)
                .map_err(nl_err(format!("failed to look up {name}")))?
                .ok_or_else(|| Error::new(ErrorCode::NETLINK, format!("bridge {name} vanished")))?
        }
    };
    if link.kind.as_deref() != Some("bridge") {
        return Err(Error::config(format!(
            "{name} exists and is not a bridge (kind {:?})",
            link.kind.as_deref().unwrap_or("none")
        )));
    }
    if !link.up {
        nl.set_up(link.index)
            .map_err(nl_err(format!("failed to set {name} up")))?;
    }
    if spec.promisc && !link.promisc {
        nl.set_link(
            LinkUnspec::new_with_index(link.index)
                .promiscuous(true)
                .build(),
        )
        .map_err(nl_err(format!("failed to set {name} promiscuous")))?;
    }
    if let Some((gw, prefix)) = gateway {
        nl.add_address_v4(link.index, gw, prefix)
            .map_err(nl_err(format!("failed to add {gw}/{prefix} to {name}")))?;
    }
    Ok(link)
}

/// Create the veth pair from the host side: the host end joins the bridge and comes up, the peer is
/// created directly inside the container's namespace under its final name (one netlink call, no
/// temporary names).
pub fn create_veth(
    nl: &mut Netlink,
    host_name: &str,
    ifname: &str,
    netns: &File,
    bridge_index: u32,
    mtu: Option<u32>,
) -> Result<(), Error> {
    if let Some(stale) = nl
        .link_by_name(host_name)
        .map_err(nl_err("failed to look up host veth"))?
    {
        // A leftover of an earlier attachment with the same (container id, ifname).
        nl.del_link(stale.index)
            .map_err(nl_err(format!("failed to delete stale {host_name}")))?;
    }
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(ifname.to_string())
        .setns_by_fd(netns.as_raw_fd());
    let mut host = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host_name.to_string())
        .controller(bridge_index)
        .up();
    if let Some(mtu) = mtu {
        peer = peer.mtu(mtu);
        host = host.mtu(mtu);
    }
    let msg = host
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .build();
    nl.add_link(msg).map_err(|e| {
        let code = if e.raw_os_error() == Some(libc::EEXIST) {
            ErrorCode::INTERFACE_EXISTS
        } else {
            ErrorCode::NETLINK
        };
        Error::new(
            code,
            format!("failed to create veth pair {host_name}/{ifname}"),
        )
        .with_details(e.to_string())
    })
}

/// Let traffic leave the bridge port it came in on, so a pod can reach itself through a service
/// address that is DNATed back to it (the kubelet's hairpin-veth mode).
pub fn set_hairpin(nl: &mut Netlink, port_index: u32) -> Result<(), Error> {
    nl.change_link(LinkBridgePort::new(port_index).hairpin(true).build())
        .map_err(nl_err("failed to enable hairpin mode on the host veth"))
}

/// Inside the container namespace: `lo` up, DAD off, address, link up, routes (dst via gw).
pub fn configure_container(
    nl: &mut Netlink,
    ifname: &str,
    addr: (Ipv4Addr, u8),
    routes: &[(Ipv4Net, Ipv4Addr)],
) -> Result<Link, Error> {
    if let Some(lo) = nl
        .link_by_name("lo")
        .map_err(nl_err("failed to look up lo"))?
        && !lo.up
    {
        nl.set_up(lo.index).map_err(nl_err("failed to set lo up"))?;
    }
    let link = nl
        .link_by_name(ifname)
        .map_err(nl_err(format!("failed to look up {ifname}")))?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::NETLINK,
                format!("{ifname} missing after creation"),
            )
        })?;
    // No duplicate address detection waits: addresses are usable at once.
    sysctl::ensure_iface("net.ipv6.conf", ifname, "accept_dad", "0")
        .map_err(|e| Error::io(format!("failed to disable DAD on {ifname}"), &e))?;
    nl.add_address_v4(link.index, addr.0, addr.1)
        .map_err(nl_err(format!(
            "failed to add {}/{} to {ifname}",
            addr.0, addr.1
        )))?;
    nl.set_up(link.index)
        .map_err(nl_err(format!("failed to set {ifname} up")))?;
    for (dst, gw) in routes {
        match nl.add_route_v4(dst.network(), dst.prefix_len(), Some(*gw), link.index) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(nl_err(format!("failed to add route {dst} via {gw}"))(e)),
        }
    }
    Ok(link)
}

/// Delete a link by name; missing is success.
pub fn delete_by_name(nl: &mut Netlink, name: &str) -> Result<bool, Error> {
    match nl
        .link_by_name(name)
        .map_err(nl_err(format!("failed to look up {name}")))?
    {
        Some(l) => nl
            .del_link(l.index)
            .map_err(nl_err(format!("failed to delete {name}"))),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_short() {
        let a = host_veth_name("0123456789abcdef0123456789abcdef", "eth0");
        assert_eq!(
            a,
            host_veth_name("0123456789abcdef0123456789abcdef", "eth0")
        );
        assert_ne!(
            a,
            host_veth_name("0123456789abcdef0123456789abcdef", "eth1")
        );
        assert!(a.len() <= 15);
        assert_eq!(
            bridge_mac("skiff0")[0] & 0x03,
            0x02,
            "locally administered unicast"
        );
    }
}
