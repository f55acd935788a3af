//! CHECK: verify that what prevResult describes is still in place — the container interface with
//! its addresses and routes, the host veth on the bridge, the IPAM reservation, the masquerade
//! rule and the attachment's host ports (see `check_fw.rs`).

use std::net::IpAddr;

use ipnet::IpNet;

use super::conf::NetConf;
use super::netlink::Netlink;
use super::{attachment, check_fw, delegate, ipam, link, netns};
use crate::spec::{CniResult, Command, Env, Error, ErrorCode};

fn failed(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::CHECK_FAILED, msg)
}

pub fn check(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<(), Error> {
    let (id, ifname) = attachment(env)?;
    let netns_path = env
        .netns
        .as_deref()
        .ok_or_else(|| Error::env("CNI_NETNS is required for CHECK"))?;
    let prev = conf
        .prev_result
        .clone()
        .ok_or_else(|| Error::config("CHECK requires prevResult"))
        .and_then(CniResult::from_value)?;
    let sandbox = netns_path.to_string_lossy();
    let (idx, ours) = prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == ifname && i.sandbox == sandbox)
        .ok_or_else(|| failed(format!("prevResult has no interface {ifname} in {sandbox}")))?;
    let ips: Vec<IpNet> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(idx))
        .map(|ip| ip.address)
        .collect();

    let ns = netns::open(netns_path)?;
    netns::run_in(&ns, || {
        let mut nl =
            Netlink::open().map_err(link::nl_err("failed to open netlink in the netns"))?;
        let l = nl
            .link_by_name(ifname)
            .map_err(link::nl_err("failed to look up the interface"))?
            .ok_or_else(|| failed(format!("interface {ifname} is missing")))?;
        if !l.up {
            return Err(failed(format!("interface {ifname} is down")));
        }
        if !ours.mac.is_empty() && l.mac.as_deref() != Some(ours.mac.to_lowercase().as_str()) {
            return Err(failed(format!(
                "interface {ifname} has MAC {:?}, expected {}",
                l.mac, ours.mac
            )));
        }
        let have = nl
            .addresses_v4(l.index)
            .map_err(link::nl_err("failed to list addresses"))?;
        for ip in &ips {
            if let IpNet::V4(v4) = ip
                && !have.contains(&(v4.addr(), v4.prefix_len()))
            {
                return Err(failed(format!("address {ip} is missing on {ifname}")));
            }
        }
        let routes = nl
            .routes_v4()
            .map_err(link::nl_err("failed to list routes"))?;
        for r in &prev.routes {
            let (IpNet::V4(dst), gw) = (r.dst, r.gw) else {
                continue;
            };
            let found = routes.iter().any(|have| {
                have.dst == dst.network()
                    && have.len == dst.prefix_len()
                    && match gw {
                        Some(IpAddr::V4(g)) => have.gw == Some(g),
                        _ => true,
                    }
            });
            if !found {
                return Err(failed(format!(
                    "route to {} via {:?} is missing",
                    r.dst, r.gw
                )));
            }
        }
        Ok(())
    })?;

    let mut nl = Netlink::open().map_err(link::nl_err("failed to open netlink"))?;
    let bridge = nl
        .link_by_name(&conf.bridge)
        .map_err(link::nl_err("failed to look up the bridge"))?
        .ok_or_else(|| failed(format!("bridge {} is missing", conf.bridge)))?;
    let host_name = link::host_veth_name(id, ifname);
    let host = nl
        .link_by_name(&host_name)
        .map_err(link::nl_err("failed to look up the host veth"))?
        .ok_or_else(|| failed(format!("host veth {host_name} is missing")))?;
    if host.controller != Some(bridge.index) {
        return Err(failed(format!(
            "host veth {host_name} is not attached to {}",
            conf.bridge
        )));
    }

    if let Some(plugin) = &conf.delegate {
        delegate::run(plugin, Command::Check, env, stdin)?;
    } else {
        let store = ipam::Store::open(&conf.data_dir()?)?;
        let held = store.find(id, ifname)?;
        for ip in &ips {
            if let IpNet::V4(v4) = ip
                && held != Some(v4.addr())
            {
                return Err(failed(format!(
                    "IPAM holds {held:?} for {id}/{ifname}, expected {}",
                    v4.addr()
                )));
            }
        }
    }
    let ip = ips.iter().find_map(|ip| match ip {
        IpNet::V4(v4) => Some(*v4),
        IpNet::V6(_) => None,
    });
    if let Some(ip) = ip {
        // The sources ADD used: the whole range set with the built-in IPAM, else the address's
        // subnet.
        let subnets = match (&conf.delegate, conf.ipam().and_then(|i| i.range_set())) {
            (None, Ok(set)) => set.iter().map(|r| r.subnet).collect(),
            _ => vec![ip.trunc()],
        };
        check_fw::check(&check_fw::Expect {
            conf,
            container_id: id,
            ifname,
            ip: ip.addr(),
            subnets: &subnets,
        })?;
    }
    Ok(())
}
