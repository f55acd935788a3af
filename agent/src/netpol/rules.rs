//! The NetworkPolicy ruleset, as one `nft -f -` batch that replaces table `inet skiff-netpol` atomically:
//!
//! - sets `in-<ns>/<policy>/<rule>` and `out-…`: the peer addresses of one policy rule (pods the
//!   selectors pick, `ipBlock`s minus their exceptions), as non-overlapping intervals; sets
//!   `out-…/<port>`: `address . protocol . port` of the peer pods that have an egress rule's named port;
//! - one chain per selected local pod and direction (`pod-in-<ns>/<pod>`, `pod-out-…`): the pod's own
//!   traffic to itself, then the allow lines of every selecting policy (their union), then `drop`;
//! - maps `ingress-pods` and `egress-pods`: pod address → `jump` to its chain;
//! - base chain `forward` (priority `filter`, after the service proxy's DNAT in prerouting): replies of
//!   allowed connections (`ct state established,related`) and traffic from the node's own addresses pass,
//!   then the source's egress chain, then the destination's ingress chain.
//!
//! Pods no policy selects have no map entry and are untouched. Traffic the node sends to its pods leaves
//! through the output hook, which this table does not filter (probes always pass, as with kube's
//! plugins); pod traffic to the node's own addresses (cluster DNS, node ports) arrives through the input
//! hook and is not filtered either.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use super::model::{Compiled, Line, PodChain};
use super::ranges;
use crate::proxy::Protocol;

/// The nftables table (family `inet`) the NetworkPolicy enforcement owns.
pub const TABLE: &str = "skiff-netpol";

/// The whole batch for `nft -f -`: create-or-keep the table, delete it, and define it again, in one
/// transaction.
pub fn render(c: &Compiled) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table inet {TABLE}");
    let _ = writeln!(out, "delete table inet {TABLE}");
    let _ = writeln!(out, "table inet {TABLE} {{");
    for (name, members) in &c.peer_sets {
        let elems: Vec<String> = members.iter().map(|r| ranges::element(*r)).collect();
        let _ = writeln!(
            out,
            "\tset {} {{\n\t\ttype ipv4_addr; flags interval;\n\t\telements = {{ {} }}\n\t}}",
            ident(name),
            elems.join(", ")
        );
    }
    for (name, members) in &c.port_sets {
        let elems: Vec<String> = members
            .iter()
            .map(|(ip, p, port)| format!("{ip} . {} . {port}", proto(*p)))
            .collect();
        let _ = writeln!(
            out,
            "\tset {} {{\n\t\ttype ipv4_addr . inet_proto . inet_service;\n\t\telements = {{ {} }}\n\t}}",
            ident(name),
            elems.join(", ")
        );
    }
    let mut maps = [(true, Vec::new()), (false, Vec::new())];
    for (ingress, chains) in [(true, &c.ingress), (false, &c.egress)] {
        for pc in chains {
            let chain = ident(&format!(
                "pod-{}-{}/{}",
                if ingress { "in" } else { "out" },
                pc.namespace,
                pc.name
            ));
            chain_text(&mut out, &chain, pc, ingress);
            let entries = &mut maps[usize::from(!ingress)].1;
            entries.push(format!("{} : jump {chain}", pc.ip));
        }
    }
    for (ingress, entries) in &maps {
        let name = if *ingress {
            "ingress-pods"
        } else {
            "egress-pods"
        };
        let _ = write!(out, "\tmap {name} {{\n\t\ttype ipv4_addr : verdict;\n");
        if !entries.is_empty() {
            let _ = writeln!(out, "\t\telements = {{ {} }}", entries.join(", "));
        }
        out.push_str("\t}\n");
    }
    out.push_str(
        "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tct state established,related accept\n\
         \t\tfib saddr type local accept\n\
         \t\tip saddr vmap @egress-pods\n\
         \t\tip daddr vmap @ingress-pods\n\t}\n",
    );
    out.push_str("}\n");
    out
}

/// A batch that deletes the table (nothing if it is not there).
pub fn remove() -> String {
    format!("table inet {TABLE}\ndelete table inet {TABLE}\n")
}

/// One pod's chain: allowed traffic ends the chain (`accept` for ingress, the last check; `return` for
/// egress, so the destination's ingress chain still runs), anything else is dropped.
fn chain_text(out: &mut String, chain: &str, pc: &PodChain, ingress: bool) {
    let (own, peer, verdict) = if ingress {
        ("saddr", "saddr", "accept")
    } else {
        ("daddr", "daddr", "return")
    };
    let _ = writeln!(out, "\tchain {chain} {{");
    // A pod cannot block traffic to itself (kube: "pods cannot block localhost access"), hairpin included.
    let _ = writeln!(out, "\t\tip {own} {} {verdict}", pc.ip);
    for line in &pc.lines {
        let _ = writeln!(out, "\t\t{} {verdict}", matches(line, peer));
    }
    out.push_str("\t\tdrop\n\t}\n");
}

/// The match expressions of one allow line.
fn matches(line: &Line, peer: &str) -> String {
    let mut parts = Vec::new();
    if let Some(set) = &line.peers {
        parts.push(format!("ip {peer} @{}", ident(set)));
    }
    match line.proto {
        Some((p, None)) => parts.push(format!("meta l4proto {}", proto(p))),
        Some((p, Some((lo, hi)))) if lo == hi => {
            parts.push(format!("meta l4proto {} th dport {lo}", proto(p)));
        }
        Some((p, Some((lo, hi)))) => {
            parts.push(format!("meta l4proto {} th dport {lo}-{hi}", proto(p)));
        }
        None => {}
    }
    if let Some(set) = &line.named {
        parts.push(format!(
            "ip daddr . meta l4proto . th dport @{}",
            ident(set)
        ));
    }
    if parts.is_empty() {
        // Everyone, every port: a rule with neither peers nor ports.
        parts.push("meta nfproto ipv4".into());
    }
    parts.join(" ")
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// Longest name used as is; nft allows 256 bytes for chain and set names.
const MAX_NAME: usize = 200;

/// `name` as an nft identifier: Kubernetes names only hold `[a-z0-9.-]`, which nft accepts after a
/// letter; very long ones are cut and given a hash of the whole name so they stay distinct.
pub fn ident(name: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_string();
    }
    let digest = Sha256::digest(name.as_bytes());
    let mut cut = MAX_NAME - 17;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{}", &name[..cut], hex::encode(&digest[..8]))
}

/// Counts for the log.
pub fn summary(c: &Compiled) -> [(&'static str, usize); 4] {
    [
        ("ingress-isolated pods", c.ingress.len()),
        ("egress-isolated pods", c.egress.len()),
        ("peer sets", c.peer_sets.len()),
        ("named-port sets", c.port_sets.len()),
    ]
}
