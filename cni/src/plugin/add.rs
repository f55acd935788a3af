//! ADD: bridge, veth pair, address from IPAM, default route, masquerade.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::{IpNet, Ipv4Net};

use super::conf::NetConf;
use super::netlink::{Link, Netlink};
use super::{attachment, delegate, firewall, hostports, ipam, iptables, link, log, netns, sysctl};
use crate::spec::{CniResult, Command, Env, Error, ErrorCode, Interface, IpConfig, Route};

pub fn add(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<CniResult, Error> {
    let (id, ifname) = attachment(env)?;
    let netns_path = env
        .netns
        .as_deref()
        .ok_or_else(|| Error::env("CNI_NETNS is required for ADD"))?;
    if conf.ipam.is_none() && conf.delegate.is_none() {
        return Err(Error::config(
            "missing \"ipam\" section with a \"subnet\" or \"ranges\"",
        ));
    }
    let requested = conf.requested_ip(env)?;
    let prev = conf
        .prev_result
        .clone()
        .map(CniResult::from_value)
        .transpose()?;
    let ns = netns::open(netns_path)?;

    let worker = netns::Worker::start(
        ns.try_clone()
            .map_err(|e| Error::io("failed to duplicate the netns handle", &e))?,
    )?;

    // §2: an interface of the requested name already in the container is an error; checked before
    // IPAM so that a repeated ADD does not disturb the existing attachment.
    let (name, shown) = (ifname.to_string(), netns_path.display().to_string());
    worker.run(move |nl| {
        match nl
            .link_by_name(&name)
            .map_err(link::nl_err("failed to look up the interface"))?
        {
            Some(_) => Err(Error::new(
                ErrorCode::INTERFACE_EXISTS,
                format!("interface {name} already exists in {shown}"),
            )),
            None => Ok(()),
        }
    })?;

    let addr = obtain(env, conf, stdin, id, ifname, requested)?;
    let host_name = link::host_veth_name(id, ifname);
    match plumb(
        conf,
        &addr,
        (&ns, &worker),
        netns_path,
        ifname,
        &host_name,
        id,
    ) {
        Ok(ours) => Ok(merge(prev, ours, conf)),
        Err(e) => {
            // Leave nothing behind: the runtime's DEL may never come for a failed ADD.
            if let Ok(mut nl) = Netlink::open()
                && let Err(err) = link::delete_by_name(&mut nl, &host_name)
            {
                log(format!("cleanup after failed ADD: {err}"));
            }
            if !conf.runtime_config.port_mappings.is_empty()
                && let Err(err) =
                    hostports::remove_for(conf.use_iptables(), &conf.nft_table, id, ifname)
            {
                log(format!("cleanup after failed ADD: {err}"));
            }
            if let Err(err) = release(env, conf, stdin, id, ifname) {
                log(format!("cleanup after failed ADD: {err}"));
            }
            Err(e)
        }
    }
}

/// What IPAM gave the attachment.
pub(super) struct Addressing {
    pub ip: Ipv4Addr,
    /// The subnet of the address (its prefix is the address's).
    pub subnet: Ipv4Net,
    /// Every subnet the network hands out from (masquerade sources).
    pub subnets: Vec<Ipv4Net>,
    pub gateway: Ipv4Addr,
    /// Routes for the container, gateways filled in.
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
    pub dns: Option<crate::spec::Dns>,
}

/// Built-in allocation, or IPAM ADD of the delegated plugin.
fn obtain(
    env: &Env,
    conf: &NetConf,
    stdin: &[u8],
    id: &str,
    ifname: &str,
    requested: Option<Ipv4Addr>,
) -> Result<Addressing, Error> {
    if let Some(plugin) = &conf.delegate {
        let result = delegate::add(plugin, env, stdin)?;
        return match from_ipam_result(&result) {
            Ok(a) => Ok(a),
            Err(e) => {
                if let Err(err) = delegate::run(plugin, Command::Del, env, stdin) {
                    log(format!("IPAM DEL after a bad IPAM result: {err}"));
                }
                Err(e)
            }
        };
    }
    let ipam = conf.ipam()?;
    let set = ipam.range_set()?;
    let routes = ipam.routes_v4()?;
    let (ip, range) =
        ipam::Store::open(&conf.data_dir()?)?.allocate(&set, requested, id, ifname)?;
    Ok(Addressing {
        ip,
        subnet: range.subnet,
        subnets: set.iter().map(|r| r.subnet).collect(),
        gateway: range.gateway,
        routes: routes
            .into_iter()
            .map(|(dst, gw)| (dst, gw.unwrap_or(range.gateway)))
            .collect(),
        dns: None,
    })
}

fn from_ipam_result(result: &CniResult) -> Result<Addressing, Error> {
    let bad = |msg: &str| Error::new(ErrorCode::DECODING_FAILURE, msg.to_string());
    let ip = result
        .ips
        .iter()
        .find_map(|ip| match ip.address {
            IpNet::V4(a) => Some((a, ip.gateway)),
            IpNet::V6(_) => None,
        })
        .ok_or_else(|| bad("the IPAM result has no IPv4 address"))?;
    let (address, gw) = ip;
    let subnet = address.trunc();
    let gateway = match gw {
        Some(IpAddr::V4(g)) => g,
        _ => subnet.hosts().next().unwrap_or(address.addr()),
    };
    let routes = result
        .routes
        .iter()
        .filter_map(|r| match (r.dst, r.gw) {
            (IpNet::V4(d), Some(IpAddr::V4(g))) => Some((d.trunc(), g)),
            (IpNet::V4(d), None) => Some((d.trunc(), gateway)),
            _ => None,
        })
        .collect();
    Ok(Addressing {
        ip: address.addr(),
        subnet,
        subnets: vec![subnet],
        gateway,
        routes,
        dns: (!result.dns.is_empty()).then(|| result.dns.clone()),
    })
}

/// Give back what IPAM reserved for the attachment (built-in release or IPAM DEL).
pub(super) fn release(
    env: &Env,
    conf: &NetConf,
    stdin: &[u8],
    id: &str,
    ifname: &str,
) -> Result<(), Error> {
    if let Some(plugin) = &conf.delegate {
        return delegate::run(plugin, Command::Del, env, stdin).map(|_| ());
    }
    if conf.ipam.is_some() {
        ipam::Store::open(&conf.data_dir()?)?.release(id, ifname)?;
    }
    Ok(())
}

fn plumb(
    conf: &NetConf,
    addr: &Addressing,
    ns: (&File, &netns::Worker),
    netns_path: &Path,
    ifname: &str,
    host_name: &str,
    id: &str,
) -> Result<CniResult, Error> {
    let prefix = addr.subnet.prefix_len();
    let gateway = conf.gateway_mode().then_some(addr.gateway);
    let mut routes = addr.routes.clone();
    if let Some(gw) = gateway
        && !routes.iter().any(|(d, _)| d.prefix_len() == 0)
    {
        routes.insert(0, (Ipv4Net::default(), gw));
    }
    let mappings = &conf.runtime_config.port_mappings;
    // The firewall work is short-lived processes (nft, iptables); run it next to the netlink
    // work instead of after it. Neither needs the links to exist yet.
    let forward = gateway.map(|_| conf.bridge.as_str());
    // Fast path (the common case): the network's firewall state is in place (one netlink query)
    // and there are no host ports, so no process needs to run.
    let legacy = conf.use_iptables();
    let masq_pending = conf.ip_masq
        && (legacy
            || !firewall::network_ready(
                &conf.nft_table,
                &conf.name,
                &addr.subnets,
                conf.cluster_cidr,
                forward,
            ));
    let fw_pending = masq_pending || (!conf.ip_masq && forward.is_some()) || !mappings.is_empty();
    let firewall = || -> Result<(), Error> {
        if masq_pending && legacy {
            if let Some(bridge) = forward {
                firewall::ensure_forward_accept(bridge)?;
            }
            iptables::ensure_masquerade(
                &conf.name,
                &addr.subnets,
                &firewall::exempt(&addr.subnets, conf.cluster_cidr),
            )?;
        } else if masq_pending {
            firewall::ensure_network(
                &conf.nft_table,
                &conf.name,
                &addr.subnets,
                conf.cluster_cidr,
                forward,
            )?;
        } else if let (false, Some(bridge)) = (conf.ip_masq, forward) {
            firewall::ensure_forward_accept(bridge)?;
        }
        if !mappings.is_empty() {
            hostports::add_for(
                legacy,
                &hostports::Request {
                    table: &conf.nft_table,
                    network: &conf.name,
                    subnets: &addr.subnets,
                    container_id: id,
                    ifname,
                    ip: addr.ip,
                    mappings,
                },
            )?;
        }
        Ok(())
    };
    let links = || {
        links(
            conf,
            ns,
            ifname,
            host_name,
            (addr.ip, prefix),
            gateway,
            &routes,
        )
    };
    let (bridge, host, container) = if fw_pending {
        // The firewall work is short-lived processes (nft, iptables); run it next to the netlink
        // work instead of after it. Neither needs the links to exist yet.
        std::thread::scope(|s| {
            let fw = s.spawn(firewall);
            let links = links();
            let fw = fw.join().unwrap_or_else(|_| {
                Err(Error::new(ErrorCode::INTERNAL, "firewall thread panicked"))
            });
            let links = links?;
            fw.map(|()| links)
        })?
    } else {
        links()?
    };

    let iface = |name: &str, mac: Option<String>, sandbox: &str| Interface {
        name: name.to_string(),
        mac: mac.unwrap_or_default(),
        mtu: conf.mtu,
        sandbox: sandbox.to_string(),
        ..Interface::default()
    };
    let address = Ipv4Net::new(addr.ip, prefix)
        .map_err(|e| Error::new(ErrorCode::INTERNAL, e.to_string()))?;
    let dns = if conf.dns.is_empty() {
        addr.dns.clone().unwrap_or_default()
    } else {
        conf.dns.clone()
    };
    Ok(CniResult {
        cni_version: conf.cni_version.clone(),
        interfaces: vec![
            iface(&conf.bridge, bridge.mac, ""),
            iface(host_name, host.mac, ""),
            iface(ifname, container.mac, &netns_path.to_string_lossy()),
        ],
        ips: vec![IpConfig {
            address: IpNet::V4(address),
            gateway: Some(IpAddr::V4(addr.gateway)),
            interface: Some(2),
            version: None,
        }],
        routes: routes
            .iter()
            .map(|(d, g)| Route::new(IpNet::V4(*d), Some(IpAddr::V4(*g))))
            .collect(),
        dns,
    })
}

/// Bridge, veth pair, hairpin, and the container side; returns (bridge, host veth, container
/// interface).
fn links(
    conf: &NetConf,
    (ns, worker): (&File, &netns::Worker),
    ifname: &str,
    host_name: &str,
    addr: (Ipv4Addr, u8),
    gateway: Option<Ipv4Addr>,
    routes: &[(Ipv4Net, Ipv4Addr)],
) -> Result<(Link, Link, Link), Error> {
    let mut nl = Netlink::open().map_err(link::nl_err("failed to open netlink"))?;
    let bridge = link::ensure_bridge(
        &mut nl,
        &link::BridgeSpec {
            name: &conf.bridge,
            mtu: conf.mtu,
            gateway: gateway.map(|g| (g, addr.1)),
            promisc: conf.promisc_mode,
        },
    )?;
    if gateway.is_some() {
        sysctl::ensure("net.ipv4.ip_forward", "1")
            .map_err(|e| Error::io("failed to enable ip_forward", &e))?;
    }
    if !conf.runtime_config.port_mappings.is_empty() {
        // DNAT of 127.0.0.1:<hostPort> sends packets with a loopback source out of the bridge.
        sysctl::ensure_iface("net.ipv4.conf", &conf.bridge, "route_localnet", "1")
            .map_err(|e| Error::io("failed to enable route_localnet on the bridge", &e))?;
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
    let (name, routes) = (ifname.to_string(), routes.to_vec());
    let container = worker.run(move |nl| link::configure_container(nl, &name, addr, &routes))?;
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
