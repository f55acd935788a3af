//! Just enough synchronous rtnetlink for host-gw routes: the host's IPv4 addresses, and the routes of the
//! main table that carry skiff's protocol number. A socket stays bound to the namespace of the thread
//! that opened it, so open it on the thread that is in the host's namespace (any tokio blocking thread).

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteProtocol};

use super::Route;

/// skiff-cni's synchronous netlink client, with the few route operations host-gw needs.
pub struct Netlink(skiff_cni::plugin::netlink::Netlink);

impl Netlink {
    /// Open a route netlink socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        skiff_cni::plugin::netlink::Netlink::open().map(Netlink)
    }

    /// The underlying client, for the overlay's link/neighbour operations.
    pub(super) fn inner(&mut self) -> &mut skiff_cni::plugin::netlink::Netlink {
        &mut self.0
    }

    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.0.request(msg, flags)
    }

    /// This namespace's IPv4 addresses with their prefix (`ip -4 addr`), loopback excluded.
    pub fn subnets_v4(&mut self) -> io::Result<Vec<Ipv4Net>> {
        let replies = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => subnet_of(a),
                _ => None,
            })
            .filter(|net| !net.addr().is_loopback())
            .collect())
    }

    /// The routes of the main table with protocol `proto`.
    pub fn routes_v4(&mut self, proto: u8) -> io::Result<Vec<Route>> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let replies = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if r.header.table == RouteHeader::RT_TABLE_MAIN
                        && u8::from(r.header.protocol) == proto =>
                {
                    let mut dst = Ipv4Addr::UNSPECIFIED;
                    let mut via = None;
                    for a in &r.attributes {
                        match a {
                            RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                            RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = Some(*g),
                            _ => {}
                        }
                    }
                    let dst = Ipv4Net::new(dst, r.header.destination_prefix_length).ok()?;
                    Some(Route { dst, via: via? })
                }
                _ => None,
            })
            .collect())
    }

    /// `ip route add <dst> via <via> proto <proto>`; EEXIST if a route to `dst` exists.
    pub fn add(&mut self, route: &Route, proto: u8) -> io::Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(route.dst.addr(), route.dst.prefix_len())
            .gateway(route.via)
            .protocol(RouteProtocol::from(proto))
            .build();
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(|_| ())
    }

    /// `ip route del <dst> via <via> proto <proto>`: only that exact route.
    pub fn delete(&mut self, route: &Route, proto: u8) -> io::Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(route.dst.addr(), route.dst.prefix_len())
            .gateway(route.via)
            .protocol(RouteProtocol::from(proto))
            .build();
        self.request(RouteNetlinkMessage::DelRoute(msg), NLM_F_ACK)
            .map(|_| ())
    }
}

fn subnet_of(a: &AddressMessage) -> Option<Ipv4Net> {
    a.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Local(IpAddr::V4(ip)) => Ipv4Net::new(*ip, a.header.prefix_len).ok(),
        _ => None,
    })
}
