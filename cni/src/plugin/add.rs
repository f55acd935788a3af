//! ADD: bridge, veth pair, address from IPAM, default route, masquerade.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::{IpNet, Ipv4Net};

use super::conf::{NetConf, Range};
use super::netlink::{Link, Netlink};
use super::{attachment, firewall, ipam, link, log, netns, sysctl};
use crate::spec::{CniResult, Env, Error, ErrorCode, Interface, IpConfig, Route};

pub fn add(env: &Env, conf: &NetConf) -> Result<CniResult, Error> {
    let (id, ifname) = attachment(env)?;
    let netns_path = env
        .netns
        .as_deref()
        .ok_or_else(|| Error::env("CNI_NETNS is required for ADD"))?;
    let range = conf.ipam()?.range()?;
    let prev = conf
        .prev_result
        .clone()
        .map(CniResult::from_value)
        .transpose()?;
    let ns = netns::open(netns_path)?;

    // §2: an interface of the requested name already in the container is an error; checked before
    // IPAM so that a repeated ADD does not disturb the existing attachment.
    netns::run_in(&ns, || {
        let mut nl =
            Netlink::open().map_err(link::nl_err("failed to open netlink in the netns"))?;
        match nl
            .link_by_name(ifname)
            .map_err(link::nl_err("failed to look up the interface"))?
        {
            Some(_) => Err(Error::new(
                ErrorCode::INTERFACE_EXISTS,
                format!(
                    "interface {ifname} already exists in {}",
                    netns_path.display()
                ),
            )),
            None => Ok(()),
        }
    })?;

    let dir = conf.data_dir()?;
    let ip = ipam::Store::open(&dir)?.allocate(&range, id, ifname)?;
    let host_name = link::host_veth_name(id, ifname);
    match plumb(conf, &range, &ns, netns_path, ifname, &host_name, ip) {
        Ok(ours) => Ok(merge(prev, ours, conf)),
        Err(e) => {
            // Leave nothing behind: the runtime's DEL may never come for a failed ADD.
            if let Ok(mut nl) = Netlink::open()
                && let Err(err) = link::delete_by_name(&mut nl, &host_name)
            {
                log(format!("cleanup after failed ADD: {err}"));
            }
            if let Err(err) = ipam::Store::open(&dir).and_then(|s| s.release(id, ifname)) {
                log(format!("cleanup after failed ADD: {err}"));
            }
            Err(e)
        }
    }
}

fn plumb(
    conf: &NetConf,
    range: &Range,
    ns: &File,
    netns_path: &Path,
    ifname: &str,
    host_name: &str,
    ip: Ipv4Addr,
) -> Result<CniResult, Error> {
    let prefix = range.subnet.prefix_len();
    let gateway = conf.gateway_mode().then_some(range.gateway);
    // The firewall work is two short-lived processes (nft, iptables); run it next to the netlink
    // work instead of after it. Neither needs the links to exist yet.
    let (bridge, host, container) = std::thread::scope(|s| {
        let fw = s.spawn(|| -> Result<(), Error> {
            if conf.ip_masq {
                firewall::ensure_masquerade(
                    &conf.nft_table,
                    &conf.name,
                    range.subnet,
                    conf.cluster_cidr,
                )?;
            }
            if gateway.is_some() {
                firewall::ensure_forward_accept(&conf.bridge)?;
            }
            Ok(())
        });
        let links = links(conf, ns, ifname, host_name, (ip, prefix), gateway);
        let fw = fw
            .join()
            .unwrap_or_else(|_| Err(Error::new(ErrorCode::INTERNAL, "firewall thread panicked")));
        let links = links?;
        fw.map(|()| links)
    })?;

    let iface = |name: &str, mac: Option<String>, sandbox: &str| Interface {
        name: name.to_string(),
        mac: mac.unwrap_or_default(),
        mtu: conf.mtu,
        sandbox: sandbox.to_string(),
        ..Interface::default()
    };
    let address =
        Ipv4Net::new(ip, prefix).map_err(|e| Error::new(ErrorCode::INTERNAL, e.to_string()))?;
    Ok(CniResult {
        cni_version: conf.cni_version.clone(),
        interfaces: vec![
            iface(&conf.bridge, bridge.mac, ""),
            iface(host_name, host.mac, ""),
            iface(ifname, container.mac, &netns_path.to_string_lossy()),
        ],
        ips: vec![IpConfig {
            address: IpNet::V4(address),
            gateway: gateway.map(IpAddr::V4),
            interface: Some(2),
            version: None,
        }],
        routes: gateway
            .map(|g| {
                vec![Route::new(
                    IpNet::V4(Ipv4Net::default()),
                    Some(IpAddr::V4(g)),
                )]
            })
            .unwrap_or_default(),
        dns: conf.dns.clone(),
    })
}

/// Bridge, veth pair, hairpin, and the container side; returns (bridge, host veth, container
/// interface).
fn links(
    conf: &NetConf,
    ns: &File,
    ifname: &str,
    host_name: &str,
    addr: (Ipv4Addr, u8),
    gateway: Option<Ipv4Addr>,
) -> Result<(Link, Link, Link), Error> {
    let mut nl = Netlink::open().map_err(link::nl_err("failed to open netlink"))?;
    let bridge = link::ensure_bridge(
        &mut nl,
        &conf.bridge,
        conf.mtu,
        gateway.map(|g| (g, addr.1)),
    )?;
    if gateway.is_some() {
        sysctl::ensure("net.ipv4.ip_forward", "1")
            .map_err(|e| Error::io("failed to enable ip_forward", &e))?;
    }
    link::create_veth(&mut nl, host_name, ifname, ns, bridge.index, conf.mtu)?;
    let host = nl
        .link_by_name(host_name)
        .map_err(link::nl_err("failed to look up the host veth"))?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::NETLINK,
                format!("{host_name} missing after creation"),
            )
        })?;
    if conf.hairpin_mode {
        link::set_hairpin(&mut nl, host.index)?;
    }
    let container = netns::run_in(ns, || {
        let mut nl =
            Netlink::open().map_err(link::nl_err("failed to open netlink in the netns"))?;
        link::configure_container(&mut nl, ifname, addr, gateway)
    })?;
    Ok((bridge, host, container))
}

/// Amend a chained prevResult with our interfaces, addresses and routes (§2: pass through or amend).
fn merge(prev: Option<CniResult>, mut ours: CniResult, conf: &NetConf) -> CniResult {
    let Some(mut prev) = prev else { return ours };
    let offset = prev.interfaces.len();
    for ip in &mut ours.ips {
        ip.interface = ip.interface.map(|i| i + offset);
    }
    prev.cni_version = conf.cni_version.clone();
    prev.interfaces.append(&mut ours.interfaces);
    prev.ips.append(&mut ours.ips);
    prev.routes.append(&mut ours.routes);
    if prev.dns.is_empty() {
        prev.dns = ours.dns;
    }
    prev
}
