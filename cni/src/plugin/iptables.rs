//! The iptables fallback for hosts without `nft` (or `ipMasqBackend: "iptables"`, as the reference
//! bridge spells it): the same masquerade and host-port behaviour as the nftables table, in the
//! `nat` table. Rules are added only when `-C` does not find them, so repeating ADD is idempotent;
//! unlike the nft batches the changes are not atomic, and there is no fast path.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::firewall::{fw_err, iptables};
use super::hostports::Request;
use super::link;
use crate::spec::{Error, ValidAttachment};

pub(crate) const HOSTPORTS: &str = "SKIFF-HOSTPORTS";

fn run(args: &[&str]) -> Result<(), Error> {
    match iptables(args)? {
        (true, _) => Ok(()),
        (false, _) => Err(fw_err(format!("iptables {} failed", args.join(" ")))),
    }
}

/// `-t nat -N chain`, tolerating an existing chain.
fn ensure_chain(chain: &str) -> Result<(), Error> {
    if iptables(&["-t", "nat", "-S", chain])?.0 {
        return Ok(());
    }
    run(&["-t", "nat", "-N", chain])
}

/// Append `rule` to `chain` unless `-C` finds it.
fn ensure_rule(chain: &str, rule: &[&str]) -> Result<(), Error> {
    let with = |op: &'static str| -> Vec<&str> {
        ["-t", "nat", op, chain]
            .into_iter()
            .chain(rule.iter().copied())
            .collect()
    };
    if iptables(&with("-C"))?.0 {
        return Ok(());
    }
    run(&with("-A"))
}

pub(crate) fn masq_chain(network: &str) -> String {
    format!("SKIFF-MASQ-{:08x}", link::fnv(network) & 0xffff_ffff)
}

/// `-s <subnet> -j SKIFF-MASQ-<net>` from POSTROUTING; the chain returns for exempt destinations
/// and masquerades the rest.
pub fn ensure_masquerade(
    network: &str,
    subnets: &[Ipv4Net],
    exempt: &[Ipv4Net],
) -> Result<(), Error> {
    let chain = masq_chain(network);
    ensure_chain(&chain)?;
    for net in exempt {
        ensure_rule(&chain, &["-d", &net.to_string(), "-j", "RETURN"])?;
    }
    ensure_rule(&chain, &["-j", "MASQUERADE"])?;
    let comment = format!("skiff-cni {network}");
    for s in subnets {
        ensure_rule(
            "POSTROUTING",
            &[
                "-s",
                &s.trunc().to_string(),
                "-m",
                "comment",
                "--comment",
                &comment,
                "-j",
                &chain,
            ],
        )?;
    }
    Ok(())
}

fn tag(container_id: &str, ifname: &str) -> String {
    format!("hp {}", link::host_veth_name(container_id, ifname))
}

/// Host ports of one attachment (see `hostports.rs` for the nftables twin).
pub fn add_hostports(r: &Request<'_>) -> Result<(), Error> {
    remove_hostports(r.container_id, r.ifname)?;
    ensure_chain(HOSTPORTS)?;
    for hook in ["PREROUTING", "OUTPUT"] {
        ensure_rule(
            hook,
            &["-m", "addrtype", "--dst-type", "LOCAL", "-j", HOSTPORTS],
        )?;
    }
    let dnat = ["-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"];
    let mut localnet = vec!["-s", "127.0.0.0/8"];
    localnet.extend(dnat);
    ensure_rule("POSTROUTING", &localnet)?;
    for s in r.subnets {
        let s = s.trunc().to_string();
        let mut hairpin = vec!["-s", s.as_str(), "-d", s.as_str()];
        hairpin.extend(dnat);
        ensure_rule("POSTROUTING", &hairpin)?;
    }
    let tag = tag(r.container_id, r.ifname);
    for m in r.mappings {
        let (Some(proto), Some(host)) = (m.proto(), m.host_v4()) else {
            continue;
        };
        let (hport, to) = (
            m.host_port.to_string(),
            format!("{}:{}", r.ip, m.container_port),
        );
        let dst = host.map(|h: Ipv4Addr| format!("{h}/32"));
        let mut rule: Vec<&str> = Vec::new();
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
        ensure_rule(HOSTPORTS, &rule)?;
    }
    Ok(())
}

/// Split an `iptables -S` line into arguments (double quotes group words).
fn split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Delete the host-port rules whose tag `keep` rejects.
fn remove_where(drop: impl Fn(&str) -> bool) -> Result<usize, Error> {
    let (ok, listing) = iptables(&["-t", "nat", "-S", HOSTPORTS])?;
    if !ok {
        return Ok(0);
    }
    let mut n = 0;
    for line in listing.lines() {
        let args = split(line);
        let Some(pos) = args.iter().position(|a| a == "--comment") else {
            continue;
        };
        let Some(tag) = args.get(pos + 1) else {
            continue;
        };
        if args.first().map(String::as_str) != Some("-A") || !drop(tag) {
            continue;
        }
        let mut del: Vec<&str> = vec!["-t", "nat", "-D"];
        del.extend(args.iter().skip(1).map(String::as_str));
        run(&del)?;
        n += 1;
    }
    Ok(n)
}

pub fn remove_hostports(container_id: &str, ifname: &str) -> Result<(), Error> {
    let want = tag(container_id, ifname);
    remove_where(|t| t == want).map(|_| ())
}

pub fn gc_hostports(valid: &[ValidAttachment]) -> Result<usize, Error> {
    let keep: Vec<String> = valid
        .iter()
        .map(|v| tag(&v.container_id, &v.ifname))
        .collect();
    remove_where(|t| t.starts_with("hp ") && !keep.iter().any(|k| k == t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_iptables_lines() {
        assert_eq!(
            split(r#"-A SKIFF-HOSTPORTS -p tcp -m comment --comment "hp sk0123" -j DNAT"#),
            vec![
                "-A",
                "SKIFF-HOSTPORTS",
                "-p",
                "tcp",
                "-m",
                "comment",
                "--comment",
                "hp sk0123",
                "-j",
                "DNAT"
            ]
        );
        assert!(masq_chain("a-very-long-network-name-indeed").len() <= 28);
    }
}
