//! The VXLAN overlay for nodes that share no link with this host (the idea of flannel's vxlan backend):
//! one device [`DEVICE`] (VNI [`VNI`], UDP [`PORT`], `local` = this node's InternalIP, no learning,
//! MTU = uplink − 50) carrying the network address of this node's podCIDR as /32. For every remote node:
//! a permanent neighbour entry (its podCIDR's network address → its device MAC, which it publishes in the
//! Node annotation [`MAC_ANNOTATION`]), an FDB entry (that MAC → its InternalIP) and the route
//! `<podCIDR> via <network address> dev skiff.vxlan onlink proto 84`. The device is skiff's alone: every
//! neighbour/FDB entry on it that no node calls for is removed, and so is every route with [`PROTO`].

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkVxlan, RouteMessageBuilder};
use skiff_cni::plugin::netlink::{Netlink, format_mac};

/// Name of the overlay device.
pub const DEVICE: &str = "skiff.vxlan";
/// VXLAN network identifier of the cluster.
pub const VNI: u32 = 1;
/// UDP port of the overlay (the Linux default, also flannel's).
pub const PORT: u16 = 8472;
/// Node annotation holding the node's overlay device MAC (`aa:bb:cc:dd:ee:ff`), written by its agent.
pub const MAC_ANNOTATION: &str = "skiff.io/vxlan-mac";
/// The `rtm_protocol` of overlay routes (`ip route show proto 84`), distinct from host-gw's 83.
pub const PROTO: u8 = 0x54;
/// Outer IPv4 + UDP + VXLAN + inner Ethernet headers.
const OVERHEAD: u32 = 50;

/// This node's end of the overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    pub ip: Ipv4Addr,
    pub cidr: Ipv4Net,
}

/// A remote node reached over the overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    pub cidr: Ipv4Net,
    /// The remote node's InternalIP (outer destination).
    pub vtep: Ipv4Addr,
    /// The remote node's device MAC.
    pub mac: [u8; 6],
}

impl Peer {
    /// The next hop of the peer's pod CIDR: the CIDR's network address (the address of its device).
    pub fn gateway(&self) -> Ipv4Addr {
        self.cidr.network()
    }
}

/// Parse `aa:bb:cc:dd:ee:ff` (a unicast MAC); None for anything else.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.trim().split(':');
    for byte in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() || out[0] & 1 == 1 || out == [0; 6] {
        return None;
    }
    Some(out)
}

/// What [`apply`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// MAC of this node's device, to publish in [`MAC_ANNOTATION`]; None when there is no device.
    pub mac: Option<String>,
    pub added: Vec<Peer>,
    /// Stale entries removed, as `ip`/`bridge` would describe them.
    pub removed: Vec<String>,
    pub failed: Vec<(String, String)>,
}

fn link_message(nl: &mut Netlink, name: &str) -> io::Result<Option<LinkMessage>> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    match nl.request(RouteNetlinkMessage::GetLink(msg), 0) {
        Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

fn link_mtu(nl: &mut Netlink, index: u32) -> io::Result<Option<u32>> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    let replies = nl.request(RouteNetlinkMessage::GetLink(msg), 0)?;
    Ok(replies.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(l) => l.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        }),
        _ => None,
    }))
}

/// The index of the link that holds `ip`.
fn link_with_address(nl: &mut Netlink, ip: Ipv4Addr) -> io::Result<Option<u32>> {
    let replies = nl.request(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        NLM_F_DUMP,
    )?;
    Ok(replies.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewAddress(a)
            if a.attributes
                .iter()
                .any(|x| matches!(x, AddressAttribute::Local(IpAddr::V4(v)) if *v == ip)) =>
        {
            Some(a.header.index)
        }
        _ => None,
    }))
}

/// Whether an existing device is the one `local` calls for.
fn matches(link: &LinkMessage, local: &Local) -> bool {
    let Some(infos) = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => Some(i),
        _ => None,
    }) else {
        return false;
    };
    let Some(vx) = infos.iter().find_map(|i| match i {
        LinkInfo::Data(InfoData::Vxlan(v)) => Some(v),
        _ => None,
    }) else {
        return false;
    };
    let has = |want: &InfoVxlan| vx.iter().any(|v| v == want);
    has(&InfoVxlan::Id(VNI))
        && has(&InfoVxlan::Local(local.ip))
        && has(&InfoVxlan::Port(PORT))
        && has(&InfoVxlan::Learning(false))
}

/// Create or repair the overlay device for `local`; returns its index and MAC.
pub fn ensure_device(nl: &mut Netlink, local: &Local) -> io::Result<(u32, String)> {
    let uplink = link_with_address(nl, local.ip)?;
    let mtu = match uplink {
        Some(i) => link_mtu(nl, i)?.unwrap_or(1500),
        None => 1500,
    }
    .saturating_sub(OVERHEAD)
    .max(576);
    let addr = local.cidr.network();
    if let Some(link) = link_message(nl, DEVICE)? {
        let index = link.header.index;
        let addrs = nl.addresses_v4(index)?;
        if matches(&link, local) && addrs.iter().all(|a| *a == (addr, 32)) {
            nl.set_link(
                rtnetlink::LinkUnspec::new_with_index(index)
                    .mtu(mtu)
                    .up()
                    .build(),
            )?;
            nl.add_address_v4(index, addr, 32)?;
            return device_facts(nl);
        }
        nl.del_link(index)?;
    }
    let mut builder = LinkVxlan::new(DEVICE, VNI)
        .port(PORT)
        .local(local.ip)
        .learning(false)
        .mtu(mtu);
    if let Some(i) = uplink {
        builder = builder.dev(i);
    }
    nl.add_link(builder.build())?;
    let (index, _) = device_facts(nl)?;
    nl.add_address_v4(index, addr, 32)?;
    nl.set_up(index)?;
    device_facts(nl)
}

fn device_facts(nl: &mut Netlink) -> io::Result<(u32, String)> {
    let link = nl
        .link_by_name(DEVICE)?
        .ok_or_else(|| io::Error::other(format!("{DEVICE} vanished")))?;
    let mac = link
        .mac
        .ok_or_else(|| io::Error::other(format!("{DEVICE} has no MAC")))?;
    Ok((link.index, mac))
}

/// The overlay device's index and MAC, if it exists.
pub fn device(nl: &mut Netlink) -> io::Result<Option<(u32, String)>> {
    Ok(nl
        .link_by_name(DEVICE)?
        .and_then(|l| Some((l.index, l.mac?))))
}

/// Remove the overlay device (its neighbours, FDB entries and routes go with it); Ok(false) if absent.
pub fn remove_device(nl: &mut Netlink) -> io::Result<bool> {
    match nl.link_by_name(DEVICE)? {
        Some(link) => nl.del_link(link.index),
        None => Ok(false),
    }
}

fn neighbour(family: AddressFamily, index: u32) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg
}

/// `ip neigh replace <gw> lladdr <mac> dev <index> nud permanent`
fn arp_entry(index: u32, ip: Ipv4Addr, mac: &[u8]) -> NeighbourMessage {
    let mut msg = neighbour(AddressFamily::Inet, index);
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg
}

/// `bridge fdb replace <mac> dev <index> dst <ip> self permanent`
fn fdb_entry(index: u32, mac: &[u8], dst: Ipv4Addr) -> NeighbourMessage {
    let mut msg = neighbour(AddressFamily::Bridge, index);
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
    msg
}

/// Entries of `family` on the device, as (IPv4 address, MAC).
fn entries(
    nl: &mut Netlink,
    family: AddressFamily,
    index: u32,
) -> io::Result<Vec<(Ipv4Addr, Vec<u8>)>> {
    let mut req = NeighbourMessage::default();
    req.header.family = family;
    let replies = nl.request(RouteNetlinkMessage::GetNeighbour(req), NLM_F_DUMP)?;
    Ok(replies
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewNeighbour(n) if n.header.ifindex == index => {
                let mut ip = None;
                let mut mac = None;
                for a in &n.attributes {
                    match a {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => ip = Some(*v),
                        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                            if let Ok(b) = <[u8; 4]>::try_from(b.as_slice()) {
                                ip = Some(Ipv4Addr::from(b));
                            }
                        }
                        NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                            mac = Some(l.clone())
                        }
                        _ => {}
                    }
                }
                Some((ip?, mac?))
            }
            _ => None,
        })
        .collect())
}

/// An overlay route: destination, gateway, output interface.
type RouteKey = (Ipv4Net, Option<Ipv4Addr>, Option<u32>);

/// Overlay routes (main table, [`PROTO`]).
fn routes(nl: &mut Netlink) -> io::Result<Vec<RouteKey>> {
    let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let replies = nl.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
    Ok(replies
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r)
                if r.header.table == RouteHeader::RT_TABLE_MAIN
                    && u8::from(r.header.protocol) == PROTO =>
            {
                let mut dst = Ipv4Addr::UNSPECIFIED;
                let (mut gw, mut oif) = (None, None);
                for a in &r.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                        RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(*g),
                        RouteAttribute::Oif(i) => oif = Some(*i),
                        _ => {}
                    }
                }
                let dst = Ipv4Net::new(dst, r.header.destination_prefix_length).ok()?;
                Some((dst, gw, oif))
            }
            _ => None,
        })
        .collect())
}

fn route(dst: Ipv4Net, gw: Option<Ipv4Addr>, oif: Option<u32>) -> RouteMessage {
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst.addr(), dst.prefix_len())
        .protocol(RouteProtocol::from(PROTO));
    if let Some(gw) = gw {
        b = b.gateway(gw).onlink();
    }
    if let Some(oif) = oif {
        b = b.output_interface(oif);
    }
    b.build()
}

/// Make the overlay entries on device `index` exactly those of `want`, and the [`PROTO`] routes exactly
/// `want`'s routes through that device.
pub fn apply(nl: &mut Netlink, index: u32, want: &[Peer]) -> io::Result<Applied> {
    let mut out = Applied::default();
    let outcome = |what: String, r: io::Result<()>, out: &mut Applied| match r {
        Ok(()) => out.removed.push(what),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => {}
        Err(e) => out.failed.push((what, e.to_string())),
    };
    for (dst, gw, oif) in routes(nl)? {
        let wanted = oif == Some(index)
            && want
                .iter()
                .any(|p| p.cidr.trunc() == dst && Some(p.gateway()) == gw);
        if !wanted {
            let r = nl.request(
                RouteNetlinkMessage::DelRoute(route(dst, gw, oif)),
                NLM_F_ACK,
            );
            let what = format!("route {dst} via {gw:?}");
            outcome(what, r.map(|_| ()), &mut out);
        }
    }
    for (ip, mac) in entries(nl, AddressFamily::Inet, index)? {
        if !want
            .iter()
            .any(|p| p.gateway() == ip && p.mac[..] == mac[..])
        {
            let r = nl.request(
                RouteNetlinkMessage::DelNeighbour(arp_entry(index, ip, &mac)),
                NLM_F_ACK,
            );
            let what = format!("neigh {ip} lladdr {}", format_mac(&mac));
            outcome(what, r.map(|_| ()), &mut out);
        }
    }
    for (dst, mac) in entries(nl, AddressFamily::Bridge, index)? {
        if !want.iter().any(|p| p.vtep == dst && p.mac[..] == mac[..]) {
            let r = nl.request(
                RouteNetlinkMessage::DelNeighbour(fdb_entry(index, &mac, dst)),
                NLM_F_ACK,
            );
            let what = format!("fdb {} dst {dst}", format_mac(&mac));
            outcome(what, r.map(|_| ()), &mut out);
        }
    }
    let have = routes(nl)?;
    for peer in want {
        let what = format!("peer {} via {}", peer.cidr, peer.vtep);
        let step = (|| {
            let flags = NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
            nl.request(
                RouteNetlinkMessage::NewNeighbour(fdb_entry(index, &peer.mac, peer.vtep)),
                flags,
            )?;
            nl.request(
                RouteNetlinkMessage::NewNeighbour(arp_entry(index, peer.gateway(), &peer.mac)),
                flags,
            )?;
            let gw = Some(peer.gateway());
            if have.contains(&(peer.cidr.trunc(), gw, Some(index))) {
                return Ok(false);
            }
            nl.request(
                RouteNetlinkMessage::NewRoute(route(peer.cidr.trunc(), gw, Some(index))),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )?;
            Ok::<bool, io::Error>(true)
        })();
        match step {
            Ok(true) => out.added.push(*peer),
            Ok(false) => {}
            Err(e) => out.failed.push((what, e.to_string())),
        }
    }
    Ok(out)
}
