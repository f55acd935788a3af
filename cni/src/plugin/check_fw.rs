//! CHECK of the host firewall state an attachment depends on: the network's masquerade rule and the
//! attachment's host ports (DNAT per mapping, plus the shared dispatch, hairpin and localhost
//! rules), on nftables or on the iptables fallback — whichever ADD would have used. Each failure
//! names what is missing.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::conf::{NetConf, PortMapping};
use super::firewall::{self, iptables, nft};
use super::{hostports, link};
use crate::spec::{Error, ErrorCode};

fn failed(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::CHECK_FAILED, msg)
}

/// What CHECK verifies for one attachment.
pub struct Expect<'a> {
    pub conf: &'a NetConf,
    pub container_id: &'a str,
    pub ifname: &'a str,
    /// The attachment's address (from prevResult).
    pub ip: Ipv4Addr,
    /// The network's pod subnets (masquerade sources, hairpin range).
    pub subnets: &'a [Ipv4Net],
}

pub fn check(e: &Expect<'_>) -> Result<(), Error> {
    let c = e.conf;
    let mappings: Vec<&PortMapping> = c
        .runtime_config
        .port_mappings
        .iter()
        .filter(|m| m.proto().is_some() && m.host_v4().is_some())
        .collect();
    if !c.ip_masq && mappings.is_empty() {
        return Ok(());
    }
    if c.use_iptables() {
        if c.ip_masq {
            check_masq_iptables(e)?;
        }
        return check_ports_iptables(e, &mappings);
    }
    let listing = nft(None, &["list", "table", "ip", &c.nft_table]).map_err(|err| {
        failed(format!(
            "nftables table {} is missing (masquerade and host ports of {})",
            c.nft_table, c.name
        ))
        .with_details(err.details)
    })?;
    let chains = parse_chains(&listing);
    if c.ip_masq {
        check_masq_nft(e, &chains)?;
    }
    check_ports_nft(e, &chains, &mappings)
}

/// `chain name -> rule lines` of an `nft list table` listing (declarations and comments included).
fn parse_chains(listing: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in listing.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("chain ")
            .and_then(|r| r.strip_suffix(" {"))
        {
            current = Some(name.to_string());
            out.entry(name.to_string()).or_default();
        } else if line == "}" {
            current = None;
        } else if let Some(chain) = &current {
            out.entry(chain.clone()).or_default().push(line.to_string());
        }
    }
    out
}

fn check_masq_nft(e: &Expect<'_>, chains: &HashMap<String, Vec<String>>) -> Result<(), Error> {
    let c = e.conf;
    let chain = firewall::masq_chain(&c.name);
    let rules = chains.get(&chain).ok_or_else(|| {
        failed(format!(
            "masquerade chain {chain} of {} is missing in table {}",
            c.name, c.nft_table
        ))
    })?;
    let comment = format!("comment \"skiff-cni {}\"", c.name);
    if !rules
        .iter()
        .any(|r| r.contains(" masquerade") && r.contains(&comment))
    {
        return Err(failed(format!(
            "masquerade rule of {} is missing in chain {chain} of table {}",
            c.name, c.nft_table
        )));
    }
    let forward = c.gateway_mode().then_some(c.bridge.as_str());
    if !firewall::network_ready(&c.nft_table, &c.name, e.subnets, c.cluster_cidr, forward) {
        return Err(failed(format!(
            "masquerade chain {chain} of {} does not match the configuration (subnets {:?}, \
             cluster CIDR {:?})",
            c.name, e.subnets, c.cluster_cidr
        )));
    }
    Ok(())
}

fn check_ports_nft(
    e: &Expect<'_>,
    chains: &HashMap<String, Vec<String>>,
    mappings: &[&PortMapping],
) -> Result<(), Error> {
    if mappings.is_empty() {
        return Ok(());
    }
    let t = &e.conf.nft_table;
    let rules = |chain: &str| -> Result<&Vec<String>, Error> {
        chains.get(chain).ok_or_else(|| {
            failed(format!(
                "host-port chain {chain} is missing in table {t} (host ports of {}/{})",
                e.container_id, e.ifname
            ))
        })
    };
    let need = |chain: &str, what: &str, ok: &dyn Fn(&str) -> bool| -> Result<(), Error> {
        if rules(chain)?.iter().any(|r| ok(r)) {
            Ok(())
        } else {
            Err(failed(format!(
                "{what} rule is missing in chain {chain} of table {t}"
            )))
        }
    };
    let jump = format!("jump {}", hostports::DISPATCH);
    need("hp-prerouting", "host-port dispatch", &|r| {
        r.contains(&jump)
    })?;
    need(
        "hp-output",
        "host-port dispatch (locally generated)",
        &|r| r.contains(&jump),
    )?;
    need("hp-localnet", "localhost host-port masquerade", &|r| {
        r.contains("ct status dnat") && r.contains("127.0.0.0/8") && r.contains("masquerade")
    })?;
    let masq = format!("hp-masq-{}", e.conf.name);
    need(&masq, "hairpin masquerade", &|r| {
        r.contains("ct status dnat") && r.contains("masquerade")
    })?;
    let tag = format!("comment \"{}\"", tag(e));
    let dispatch = rules(hostports::DISPATCH)?;
    for m in mappings {
        let (Some(proto), Some(host)) = (m.proto(), m.host_v4()) else {
            continue;
        };
        let rule = format!(
            "{proto} dport {} dnat to {}:{}",
            m.host_port, e.ip, m.container_port
        );
        let daddr = host.map(|h| format!("ip daddr {h} "));
        let found = dispatch.iter().any(|r| {
            r.contains(&rule)
                && r.contains(&tag)
                && match &daddr {
                    Some(d) => r.starts_with(d.as_str()),
                    None => !r.contains("ip daddr"),
                }
        });
        if !found {
            return Err(failed(format!(
                "host-port DNAT rule for {} is missing in chain {} of table {t}",
                describe(m, e.ip),
                hostports::DISPATCH
            )));
        }
    }
    Ok(())
}

fn tag(e: &Expect<'_>) -> String {
    format!("hp {}", link::host_veth_name(e.container_id, e.ifname))
}

/// `tcp 8080 -> 10.0.0.5:80` (with the host IP when the mapping has one).
fn describe(m: &PortMapping, ip: Ipv4Addr) -> String {
    let host = match m.host_v4() {
        Some(Some(h)) => format!("{h}:"),
        _ => String::new(),
    };
    format!(
        "{} {host}{} -> {ip}:{}",
        m.proto().unwrap_or("?"),
        m.host_port,
        m.container_port
    )
}

/// `iptables -t nat -C <args>`: whether the rule exists.
fn present(args: &[&str]) -> Result<bool, Error> {
    let mut full = vec!["-t", "nat", "-C"];
    full.extend_from_slice(args);
    iptables(&full).map(|(ok, _)| ok)
}

fn check_masq_iptables(e: &Expect<'_>) -> Result<(), Error> {
    let c = e.conf;
    let chain = super::iptables::masq_chain(&c.name);
    let comment = format!("skiff-cni {}", c.name);
    for s in e.subnets {
        let s = s.trunc().to_string();
        let jump = [
            "POSTROUTING",
            "-s",
            &s,
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            &chain,
        ];
        if !present(&jump)? {
            return Err(failed(format!(
                "iptables nat POSTROUTING rule for {s} -> {chain} of {} is missing",
                c.name
            )));
        }
    }
    if !present(&[&chain, "-j", "MASQUERADE"])? {
        return Err(failed(format!(
            "iptables nat MASQUERADE rule of {} is missing in chain {chain}",
            c.name
        )));
    }
    Ok(())
}

fn check_ports_iptables(e: &Expect<'_>, mappings: &[&PortMapping]) -> Result<(), Error> {
    if mappings.is_empty() {
        return Ok(());
    }
    let chain = super::iptables::HOSTPORTS;
    for hook in ["PREROUTING", "OUTPUT"] {
        if !present(&[hook, "-m", "addrtype", "--dst-type", "LOCAL", "-j", chain])? {
            return Err(failed(format!(
                "iptables nat {hook} jump to {chain} is missing"
            )));
        }
    }
    let dnat = ["-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"];
    let mut localnet = vec!["POSTROUTING", "-s", "127.0.0.0/8"];
    localnet.extend(dnat);
    if !present(&localnet)? {
        return Err(failed(
            "iptables nat POSTROUTING localhost host-port masquerade is missing",
        ));
    }
    for s in e.subnets {
        let s = s.trunc().to_string();
        let mut hairpin = vec!["POSTROUTING", "-s", s.as_str(), "-d", s.as_str()];
        hairpin.extend(dnat);
        if !present(&hairpin)? {
            return Err(failed(format!(
                "iptables nat POSTROUTING hairpin masquerade for {s} is missing"
            )));
        }
    }
    let tag = tag(e);
    for m in mappings {
        let (Some(proto), Some(host)) = (m.proto(), m.host_v4()) else {
            continue;
        };
        let (hport, to) = (
            m.host_port.to_string(),
            format!("{}:{}", e.ip, m.container_port),
        );
        let dst = host.map(|h| format!("{h}/32"));
        let mut rule = vec![chain];
        if let Some(d) = &dst {
            rule.extend(["-d", d.as_str()]);
        }
        rule.extend([
            "-p",
            proto,
            "--dport",
            &hport,
            "-m",
            "comment",
            "--comment",
            &tag,
            "-j",
            "DNAT",
            "--to-destination",
            &to,
        ]);
        if !present(&rule)? {
            return Err(failed(format!(
                "iptables host-port DNAT rule for {} is missing in chain {chain}",
                describe(m, e.ip)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_nft_listing() {
        let listing = "table ip t {\n\tchain hostports {\n\t\ttcp dport 8080 dnat to 10.0.0.5:80 \
                       comment \"hp sk1\"\n\t}\n\n\tchain masq-n {\n\t\tcomment \"skiff-cni 01\"\n\t\t\
                       type nat hook postrouting priority srcnat; policy accept;\n\t\tip saddr \
                       10.0.0.0/24 masquerade comment \"skiff-cni n\"\n\t}\n}\n";
        let c = parse_chains(listing);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c["hostports"],
            vec!["tcp dport 8080 dnat to 10.0.0.5:80 comment \"hp sk1\""]
        );
        assert_eq!(c["masq-n"].len(), 3);
    }
}
