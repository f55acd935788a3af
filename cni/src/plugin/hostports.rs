//! Host ports (the `portMappings` capability) in skiff-cni's nftables table:
//!
//! - `hostports`: one `dnat` rule per mapping, tagged with the attachment's comment
//!   `hp <host veth name>`, reached from `hp-prerouting` (dstnat) and `hp-output` (locally
//!   generated traffic, so `127.0.0.1:<hostPort>` works) for destinations that are local addresses;
//! - `hp-masq-<network>` (postrouting): DNATed connections from the network's subnets to them are
//!   masqueraded, so a pod reaches itself (hairpin) and its bridge neighbours through a host port
//!   (without it the neighbour would answer directly over the bridge, bypassing the un-DNAT);
//! - `hp-localnet` (postrouting): DNATed connections from 127.0.0.0/8 are masqueraded (with
//!   `route_localnet` on the bridge, set by ADD).
//!
//! Every change is one atomic `nft -f -` batch. Removal finds the attachment's rules by comment.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::conf::PortMapping;
use super::firewall::nft;
use super::link;
use crate::spec::{Error, ValidAttachment};

pub(crate) const DISPATCH: &str = "hostports";

/// One attachment's host ports.
pub struct Request<'a> {
    pub table: &'a str,
    pub network: &'a str,
    /// The network's pod subnets.
    pub subnets: &'a [Ipv4Net],
    pub container_id: &'a str,
    pub ifname: &'a str,
    pub ip: Ipv4Addr,
    pub mappings: &'a [PortMapping],
}

/// The comment that tags an attachment's rules.
fn tag(container_id: &str, ifname: &str) -> String {
    format!("hp {}", link::host_veth_name(container_id, ifname))
}

/// The nft batch that installs the shared chains and the attachment's rules.
pub fn add_batch(r: &Request<'_>) -> String {
    let t = r.table;
    let tag = tag(r.container_id, r.ifname);
    let masq = format!("hp-masq-{}", r.network);
    let nets = format!(
        "{{ {} }}",
        r.subnets
            .iter()
            .map(|n| n.trunc().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut b = format!(
        "add table ip {t}\n\
         add chain ip {t} {DISPATCH}\n\
         add chain ip {t} hp-prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
         add chain ip {t} hp-output {{ type nat hook output priority -100; policy accept; }}\n\
         add chain ip {t} hp-localnet {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         add chain ip {t} {masq} {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         flush chain ip {t} hp-prerouting\n\
         flush chain ip {t} hp-output\n\
         flush chain ip {t} hp-localnet\n\
         flush chain ip {t} {masq}\n\
         add rule ip {t} {masq} ct status dnat ip saddr {nets} ip daddr {nets} masquerade\n\
         add rule ip {t} hp-prerouting fib daddr type local jump {DISPATCH}\n\
         add rule ip {t} hp-output fib daddr type local jump {DISPATCH}\n\
         add rule ip {t} hp-localnet ct status dnat ip saddr 127.0.0.0/8 masquerade\n"
    );
    for m in r.mappings {
        let (Some(proto), Some(host)) = (m.proto(), m.host_v4()) else {
            continue;
        };
        let daddr = host.map(|h| format!("ip daddr {h} ")).unwrap_or_default();
        b.push_str(&format!(
            "add rule ip {t} {DISPATCH} {daddr}{proto} dport {} dnat to {}:{} comment \"{tag}\"\n",
            m.host_port, r.ip, m.container_port
        ));
    }
    b
}

/// Install the attachment's host ports (after removing any it had, so a repeated ADD does not
/// duplicate them).
pub fn add(r: &Request<'_>) -> Result<(), Error> {
    remove(r.table, r.container_id, r.ifname)?;
    nft(Some(&add_batch(r)), &["-f", "-"]).map(|_| ())
}

/// (chain, handle, tag) of every tagged rule in the host-port chains.
fn tagged_rules(table: &str) -> Vec<(&'static str, u64, String)> {
    let mut out = Vec::new();
    for chain in [DISPATCH] {
        // A missing table or chain has no rules to remove.
        let Ok(listing) = nft(None, &["-a", "list", "chain", "ip", table, chain]) else {
            continue;
        };
        for line in listing.lines() {
            let Some((_, after)) = line.split_once("comment \"hp ") else {
                continue;
            };
            let Some((veth, _)) = after.split_once('"') else {
                continue;
            };
            let handle = line
                .rsplit_once("# handle ")
                .and_then(|(_, h)| h.trim().parse::<u64>().ok());
            if let Some(h) = handle {
                out.push((chain, h, format!("hp {veth}")));
            }
        }
    }
    out
}

fn delete(table: &str, rules: &[(&'static str, u64, String)]) -> Result<(), Error> {
    if rules.is_empty() {
        return Ok(());
    }
    let batch: String = rules
        .iter()
        .map(|(chain, h, _)| format!("delete rule ip {table} {chain} handle {h}\n"))
        .collect();
    nft(Some(&batch), &["-f", "-"]).map(|_| ())
}

/// Remove the attachment's host ports; nothing there is success.
pub fn remove(table: &str, container_id: &str, ifname: &str) -> Result<(), Error> {
    let want = tag(container_id, ifname);
    let rules: Vec<_> = tagged_rules(table)
        .into_iter()
        .filter(|(_, _, t)| *t == want)
        .collect();
    delete(table, &rules)
}

/// GC: remove the host ports of every attachment that is not valid.
pub fn gc(table: &str, valid: &[ValidAttachment]) -> Result<usize, Error> {
    let keep: Vec<String> = valid
        .iter()
        .map(|v| tag(&v.container_id, &v.ifname))
        .collect();
    let stale: Vec<_> = tagged_rules(table)
        .into_iter()
        .filter(|(_, _, t)| !keep.contains(t))
        .collect();
    delete(table, &stale)?;
    Ok(stale.len())
}

/// [`add`] on nftables, or the iptables fallback when `legacy`.
pub fn add_for(legacy: bool, r: &Request<'_>) -> Result<(), Error> {
    if legacy {
        super::iptables::add_hostports(r)
    } else {
        add(r)
    }
}

/// [`remove`] on nftables, or the iptables fallback when `legacy`.
pub fn remove_for(
    legacy: bool,
    table: &str,
    container_id: &str,
    ifname: &str,
) -> Result<(), Error> {
    if legacy {
        super::iptables::remove_hostports(container_id, ifname)
    } else {
        remove(table, container_id, ifname)
    }
}

/// [`gc`] on nftables, or the iptables fallback when `legacy`.
pub fn gc_for(legacy: bool, table: &str, valid: &[ValidAttachment]) -> Result<usize, Error> {
    if legacy {
        super::iptables::gc_hostports(valid)
    } else {
        gc(table, valid)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn batch_shape() {
        let maps: Vec<PortMapping> = serde_json::from_str(
            r#"[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},
                {"hostPort":5353,"containerPort":53,"protocol":"UDP","hostIP":"127.0.0.1"},
                {"hostPort":9,"containerPort":9,"hostIP":"fd00::1"}]"#,
        )
        .unwrap();
        let b = add_batch(&Request {
            table: "t",
            network: "n",
            subnets: &["10.0.0.0/24".parse().unwrap()],
            container_id: "c",
            ifname: "eth0",
            ip: Ipv4Addr::new(10, 0, 0, 5),
            mappings: &maps,
        });
        let tag = tag("c", "eth0");
        assert!(b.contains(&format!(
            "add rule ip t hostports tcp dport 8080 dnat to 10.0.0.5:80 comment \"{tag}\""
        )));
        assert!(b.contains("ip daddr 127.0.0.1 udp dport 5353 dnat to 10.0.0.5:53"));
        assert!(!b.contains("dport 9 "), "IPv6 host IP skipped: {b}");
        assert!(b.contains(
            "add rule ip t hp-masq-n ct status dnat ip saddr { 10.0.0.0/24 } ip daddr { 10.0.0.0/24 } masquerade"
        ));
        assert!(b.contains("hp-output fib daddr type local jump hostports"));
    }
}
