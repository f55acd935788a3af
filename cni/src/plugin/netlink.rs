//! A small synchronous rtnetlink client: netlink-packet-route messages (built with rtnetlink's
//! builders) over a blocking netlink-sys socket. The plugin is a short-lived process, so it needs no
//! async runtime (netavark and youki made the same move). A socket stays bound to the network
//! namespace it was created in: open one per namespace, on the thread that is in it.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::{AddressMessageBuilder, LinkUnspec, RouteMessageBuilder};

pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// The facts about a link that the plugin cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<String>,
    pub kind: Option<String>,
    pub up: bool,
    pub promisc: bool,
    pub controller: Option<u32>,
    pub mtu: Option<u32>,
}

impl Netlink {
    /// Open a route netlink socket in the calling thread's current network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Extended acks make kernel error strings possible; failure to enable them is harmless.
        let _ = socket.set_ext_ack(true);
        Ok(Netlink {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Send one request and collect the replies until the ACK (or DONE for dumps). Public so that the
    /// agent's other netlink users (host routes) share this one client.
    pub fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::from(msg);
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            self.buf.clear();
            let n = self.socket.recv(&mut self.buf, 0)?;
            let mut offset = 0;
            while offset < n.min(self.buf.len()) {
                let bytes = &self.buf[offset..];
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "zero-length netlink message",
                    ));
                }
                offset += len.next_multiple_of(4);
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => {
                        replies.push(m);
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn ack(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.request(msg, NLM_F_ACK | flags).map(|_| ())
    }

    /// Create a link (`ip link add`); EEXIST if a link of that name exists.
    pub fn add_link(&mut self, msg: LinkMessage) -> io::Result<()> {
        self.ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Change a link (`ip link set`).
    pub fn set_link(&mut self, msg: LinkMessage) -> io::Result<()> {
        self.ack(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Change an existing link through RTM_NEWLINK without NLM_F_CREATE, which (unlike RTM_SETLINK)
    /// applies IFLA_LINKINFO such as bridge-port data (`ip link set … type bridge_slave …`).
    pub fn change_link(&mut self, msg: LinkMessage) -> io::Result<()> {
        self.ack(RouteNetlinkMessage::NewLink(msg), 0)
    }

    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        self.set_link(LinkUnspec::new_with_index(index).up().build())
    }

    pub fn set_controller(&mut self, index: u32, controller: u32) -> io::Result<()> {
        self.set_link(
            LinkUnspec::new_with_index(index)
                .controller(controller)
                .build(),
        )
    }

    /// Delete a link; Ok(false) when it does not exist.
    pub fn del_link(&mut self, index: u32) -> io::Result<bool> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.ack(RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Look a link up by name; None when it does not exist.
    pub fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_facts(&l)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// IPv4 addresses (address, prefix length) on a link.
    pub fn addresses_v4(&mut self, index: u32) -> io::Result<Vec<(Ipv4Addr, u8)>> {
        let msg = AddressMessageBuilder::<Ipv4Addr>::new().build();
        let replies = self.request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => address_of(&a),
                _ => None,
            })
            .collect())
    }

    /// Add an IPv4 address; Ok(false) when it is already there.
    pub fn add_address_v4(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<bool> {
        let msg = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(ip, prefix)
            .build();
        match self.ack(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Add an IPv4 route in the main table (`ip route add dst/len [via gw] dev index`).
    pub fn add_route_v4(
        &mut self,
        dst: Ipv4Addr,
        len: u8,
        gw: Option<Ipv4Addr>,
        index: u32,
    ) -> io::Result<()> {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst, len)
            .output_interface(index);
        if let Some(gw) = gw {
            b = b.gateway(gw);
        }
        self.ack(
            RouteNetlinkMessage::NewRoute(b.build()),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// IPv4 routes of the main table as (dst, len, gateway, oif).
    pub fn routes_v4(&mut self) -> io::Result<Vec<RouteV4>> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let replies = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if r.header.table == RouteHeader::RT_TABLE_MAIN =>
                {
                    Some(route_of(&r))
                }
                _ => None,
            })
            .collect())
    }
}

/// One IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteV4 {
    pub dst: Ipv4Addr,
    pub len: u8,
    pub gw: Option<Ipv4Addr>,
    pub oif: Option<u32>,
}

fn route_of(r: &RouteMessage) -> RouteV4 {
    let mut out = RouteV4 {
        dst: Ipv4Addr::UNSPECIFIED,
        len: r.header.destination_prefix_length,
        gw: None,
        oif: None,
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => out.dst = *d,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => out.gw = Some(*g),
            RouteAttribute::Oif(i) => out.oif = Some(*i),
            _ => {}
        }
    }
    out
}

fn address_of(a: &AddressMessage) -> Option<(Ipv4Addr, u8)> {
    a.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) => {
            Some((*ip, a.header.prefix_len))
        }
        _ => None,
    })
}

fn link_facts(l: &LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        mac: None,
        kind: None,
        up: l.header.flags.contains(LinkFlags::Up),
        promisc: l.header.flags.contains(LinkFlags::Promisc),
        controller: None,
        mtu: None,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(m) if m.len() == 6 => link.mac = Some(format_mac(m)),
            LinkAttribute::Controller(c) => link.controller = Some(*c),
            LinkAttribute::Mtu(m) => link.mtu = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

pub fn format_mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A file descriptor to hand to the kernel as IFLA_NET_NS_FD.
pub fn ns_fd(f: &std::fs::File) -> std::os::fd::RawFd {
    f.as_raw_fd()
}
