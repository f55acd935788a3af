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

pub fn find_tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

pub(crate) fn fw_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::FIREWALL, msg)
}

/// Whether the `nft` tool is installed (else the iptables fallback is used).
pub fn nft_available() -> bool {
    find_tool("nft").is_absolute()
}

/// The chain that holds one network's masquerade rule.
pub fn masq_chain(network: &str) -> String {
    format!("masq-{network}")
}

/// The destinations that must *not* be masqueraded: the pod subnet, the cluster CIDR and multicast,
/// with nets contained in another one dropped (nft rejects overlapping set elements).
pub(crate) fn exempt(subnets: &[Ipv4Net], cluster: Option<Ipv4Net>) -> Vec<Ipv4Net> {
    let mut nets: Vec<Ipv4Net> = subnets.iter().map(Ipv4Net::trunc).collect();
    nets.extend(cluster.map(|c| c.trunc()));
    nets.push(Ipv4Net::new(std::net::Ipv4Addr::new(224, 0, 0, 0), 4).unwrap_or_default());
    let all = nets.clone();
    nets.retain(|n| !all.iter().any(|o| o != n && o.contains(n)));
    nets.sort();
    nets.dedup();
    nets
}

/// An nft anonymous set (or a single element) of networks.
fn nft_set(nets: &[Ipv4Net]) -> String {
    match nets {
        [one] => one.to_string(),
        _ => format!(
            "{{ {} }}",
            nets.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The network's masquerade rule (without the `add rule ip <table> <chain>` prefix).
fn masquerade_rule(network: &str, subnets: &[Ipv4Net], cluster: Option<Ipv4Net>) -> String {
    let set = exempt(subnets, cluster)
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut sources: Vec<Ipv4Net> = subnets.iter().map(Ipv4Net::trunc).collect();
    sources.sort();
    sources.dedup();
    format!(
        "ip saddr {} ip daddr != {{ {set} }} masquerade comment \"skiff-cni {network}\"",
        nft_set(&sources)
    )
}

/// The chain comment that marks a network's firewall setup as done for exactly this config (the
/// rule and, when given, the bridge whose FORWARD accept was ensured).
pub fn setup_marker(rule: &str, forward_bridge: Option<&str>) -> String {
    let h = super::link::fnv(&format!("{rule}|{}", forward_bridge.unwrap_or("")));
    format!("skiff-cni {h:016x}")
}

/// The nft batch that (re)creates the network's masquerade chain with `marker` as its comment
/// (a chain's comment cannot be changed in place: delete and add it in the same transaction).
pub fn masquerade_batch(
    table: &str,
    network: &str,
    subnets: &[Ipv4Net],
    cluster: Option<Ipv4Net>,
    marker: &str,
) -> String {
    let chain = masq_chain(network);
    let rule = masquerade_rule(network, subnets, cluster);
    let hook = "type nat hook postrouting priority srcnat; policy accept;";
    format!(
        "add table ip {table}\n\
         add chain ip {table} {chain} {{ {hook} }}\n\
         flush chain ip {table} {chain}\n\
         delete chain ip {table} {chain}\n\
         add chain ip {table} {chain} {{ {hook} comment \"{marker}\"; }}\n\
         add rule ip {table} {chain} {rule}\n"
    )
}

/// Run `nft ARGS` (with `stdin` fed to it); its stdout, or an error whose details hold its stderr.
pub(crate) fn nft(stdin: Option<&str>, args: &[&str]) -> Result<String, Error> {
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

/// Whether the network's masquerade chain (and, with `forward_bridge`, the FORWARD accept for
/// its bridge) is installed for exactly this config: one netlink query for the chain's marker.
pub fn network_ready(
    table: &str,
    network: &str,
    subnets: &[Ipv4Net],
    cluster: Option<Ipv4Net>,
    forward_bridge: Option<&str>,
) -> bool {
    let marker = setup_marker(&masquerade_rule(network, subnets, cluster), forward_bridge);
    super::nftnl::chain_has_marker(table, &masq_chain(network), &marker)
}

/// Install the masquerade rule of a network and, with `forward_bridge`, the FORWARD accept for
/// its bridge: iptables first, then the nft batch that writes the marker last (see
/// [`network_ready`]), so a failure leaves no marker behind.
pub fn ensure_network(
    table: &str,
    network: &str,
    subnets: &[Ipv4Net],
    cluster: Option<Ipv4Net>,
    forward_bridge: Option<&str>,
) -> Result<(), Error> {
    let marker = setup_marker(&masquerade_rule(network, subnets, cluster), forward_bridge);
    if let Some(bridge) = forward_bridge {
        ensure_forward_accept(bridge)?;
    }
    nft(
        Some(&masquerade_batch(table, network, subnets, cluster, &marker)),
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

pub(crate) fn iptables(args: &[&str]) -> Result<(bool, String), Error> {
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
            &["10.244.0.0/24".parse().unwrap()],
            Some("10.244.0.0/16".parse().unwrap()),
            "m",
        );
        assert!(b.contains(
            "ip saddr 10.244.0.0/24 ip daddr != { 10.244.0.0/16, 224.0.0.0/4 } masquerade"
        ));
        let b = masquerade_batch("t", "n", &["10.251.3.0/24".parse().unwrap()], None, "m");
        assert!(b.contains("!= { 10.251.3.0/24, 224.0.0.0/4 }"));
        assert!(b.contains("add chain ip t masq-n { type nat hook postrouting priority srcnat;"));
    }
}
