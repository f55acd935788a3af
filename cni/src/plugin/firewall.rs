//! Host firewall state: masquerade for pod traffic leaving the cluster (nftables table `ip
//! skiff-cni`, one postrouting chain per network) and, when the host's filter FORWARD policy is
//! drop, ACCEPT rules for the bridge.
//!
//! The nft work is one atomic `nft -f -` batch that recreates the network's chain, so repeating it
//! is idempotent and concurrent plugins cannot interleave half-built rules.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::spec::{Error, ErrorCode};

fn find_tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn fw_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::FIREWALL, msg)
}

/// The chain that holds one network's masquerade rule.
pub fn masq_chain(network: &str) -> String {
    format!("masq-{network}")
}

/// The destinations that must *not* be masqueraded: the pod subnet, the cluster CIDR and multicast,
/// with nets contained in another one dropped (nft rejects overlapping set elements).
fn exempt(subnet: Ipv4Net, cluster: Option<Ipv4Net>) -> Vec<Ipv4Net> {
    let mut nets: Vec<Ipv4Net> = vec![subnet.trunc()];
    nets.extend(cluster.map(|c| c.trunc()));
    nets.push(Ipv4Net::new(std::net::Ipv4Addr::new(224, 0, 0, 0), 4).unwrap_or_default());
    let all = nets.clone();
    nets.retain(|n| !all.iter().any(|o| o != n && o.contains(n)));
    nets.dedup();
    nets
}

/// The nft batch that (re)creates the network's masquerade chain.
pub fn masquerade_batch(
    table: &str,
    network: &str,
    subnet: Ipv4Net,
    cluster: Option<Ipv4Net>,
) -> String {
    let chain = masq_chain(network);
    let set = exempt(subnet, cluster)
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "add table ip {table}\n\
         add chain ip {table} {chain} {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         flush chain ip {table} {chain}\n\
         add rule ip {table} {chain} ip saddr {} ip daddr != {{ {set} }} masquerade comment \"skiff-cni {network}\"\n",
        subnet.trunc()
    )
}

fn nft(stdin: Option<&str>, args: &[&str]) -> Result<String, Error> {
    let mut child = Command::new(find_tool("nft"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fw_err(format!("failed to run nft: {e}")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| fw_err(format!("failed to feed nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fw_err(format!("failed to wait for nft: {e}")))?;
    if !out.status.success() {
        return Err(fw_err(format!("nft {} failed", args.join(" ")))
            .with_details(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Install (or refresh) the masquerade rule of a network.
pub fn ensure_masquerade(
    table: &str,
    network: &str,
    subnet: Ipv4Net,
    cluster: Option<Ipv4Net>,
) -> Result<(), Error> {
    nft(
        Some(&masquerade_batch(table, network, subnet, cluster)),
        &["-f", "-"],
    )
    .map(|_| ())
}

/// Whether the network's masquerade rule is installed (CHECK).
pub fn masquerade_present(table: &str, network: &str) -> bool {
    nft(None, &["list", "chain", "ip", table, &masq_chain(network)])
        .map(|out| out.contains("masquerade"))
        .unwrap_or(false)
}

/// Remove a network's chain, and the table once it is empty. Not used by DEL (the chain serves
/// every container of the network); tools and tests use it.
pub fn remove_masquerade(table: &str, network: &str) -> Result<(), Error> {
    let chain = masq_chain(network);
    let _ = nft(None, &["delete", "chain", "ip", table, &chain]);
    let listing = nft(None, &["list", "table", "ip", table]).unwrap_or_default();
    if !listing.is_empty() && !listing.contains("chain ") {
        nft(None, &["delete", "table", "ip", table])?;
    }
    Ok(())
}

fn iptables(args: &[&str]) -> Result<(bool, String), Error> {
    let out = Command::new(find_tool("iptables"))
        .args(["-w", "5"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fw_err(format!("failed to run iptables: {e}")))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// If the host's filter FORWARD policy is DROP, make sure traffic from and to the bridge is
/// accepted. A host without iptables has no such policy to work around.
pub fn ensure_forward_accept(bridge: &str) -> Result<(), Error> {
    let Ok((true, listing)) = iptables(&["-S", "FORWARD"]) else {
        return Ok(());
    };
    if !listing.lines().any(|l| l.trim() == "-P FORWARD DROP") {
        return Ok(());
    }
    let comment = format!("skiff-cni {bridge}");
    for dir in ["-i", "-o"] {
        let rule = [
            "FORWARD",
            dir,
            bridge,
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            "ACCEPT",
        ];
        let check: Vec<&str> = std::iter::once("-C").chain(rule).collect();
        if iptables(&check)?.0 {
            continue;
        }
        let insert: Vec<&str> = std::iter::once("-I").chain(rule).collect();
        if !iptables(&insert)?.0 {
            return Err(fw_err(format!(
                "failed to insert FORWARD accept for {bridge}"
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
    fn batch_skips_nested_nets() {
        let b = masquerade_batch(
            "skiff-cni",
            "skiff",
            "10.244.0.0/24".parse().unwrap(),
            Some("10.244.0.0/16".parse().unwrap()),
        );
        assert!(b.contains(
            "ip saddr 10.244.0.0/24 ip daddr != { 10.244.0.0/16, 224.0.0.0/4 } masquerade"
        ));
        let b = masquerade_batch("t", "n", "10.251.3.0/24".parse().unwrap(), None);
        assert!(b.contains("!= { 10.251.3.0/24, 224.0.0.0/4 }"));
        assert!(b.contains("add chain ip t masq-n { type nat hook postrouting priority srcnat;"));
    }
}
