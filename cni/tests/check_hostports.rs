//! CHECK of the firewall state: after ADD with host ports CHECK passes; after someone deletes the
//! attachment's DNAT rule, or the network's masquerade rule, CHECK fails with code 104 and a
//! message naming what is missing. For every cniVersion that has CHECK, on nftables and on the
//! iptables fallback. Each case runs the plugin inside its own throwaway "host" namespace
//! (`sktest<N>-host`, N = 34..39), so the machine's firewall is never touched. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

fn must(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// CHECK with prevResult; Err((code, msg)) on failure.
fn check(host: &Netns, pod: &Netns, conf: &Value, prev: &Value) -> Result<(), (u64, String)> {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    let r = run_in_host(host, "CHECK", "hp", &pod.path(), &c);
    if r.ok {
        return Ok(());
    }
    let msg = r
        .json
        .as_ref()
        .and_then(|j| j["msg"].as_str())
        .unwrap_or_default()
        .to_string();
    Err((r.code(), msg))
}

fn case(n: u8, version: &str, backend: &str) {
    require_root();
    let host = Netns::new(&format!("sktest{n}-host"));
    let pod = Netns::new(&format!("sktest{n}-a"));
    let net = TestNet::new(n);
    must(host.exec(&["ip", "link", "set", "lo", "up"]), "lo up");
    let mut conf = net.conf(version);
    conf["ipMasqBackend"] = json!(backend);
    conf["runtimeConfig"] = json!({"portMappings": [
        {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 18053, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}
    ]});
    let result = ok(run_in_host(&host, "ADD", "hp", &pod.path(), &conf));
    let ip = result_ip(&result);
    assert_eq!(
        check(&host, &pod, &conf, &result),
        Ok(()),
        "CHECK after ADD"
    );

    // Someone deletes the TCP mapping's DNAT rule.
    if backend == "iptables" {
        let rules = must(
            host.exec(&["iptables", "-t", "nat", "-S", "SKIFF-HOSTPORTS"]),
            "list SKIFF-HOSTPORTS",
        );
        let line = rules
            .lines()
            .find(|l| l.contains("--dport 18080"))
            .unwrap_or_else(|| panic!("no DNAT rule for 18080:\n{rules}"));
        let delete = format!("iptables -t nat {}", line.replacen("-A ", "-D ", 1));
        must(host.exec(&["sh", "-c", &delete]), &delete);
    } else {
        let listing = must(
            host.exec(&["nft", "-a", "list", "chain", "ip", &net.table, "hostports"]),
            "list hostports",
        );
        let handle = listing
            .lines()
            .find(|l| l.contains("dport 18080"))
            .and_then(|l| l.rsplit_once("# handle "))
            .map(|(_, h)| h.trim().to_string())
            .unwrap_or_else(|| panic!("no DNAT rule for 18080:\n{listing}"));
        must(
            host.exec(&[
                "nft",
                "delete",
                "rule",
                "ip",
                &net.table,
                "hostports",
                "handle",
                &handle,
            ]),
            "nft delete rule",
        );
    }
    let (code, msg) = check(&host, &pod, &conf, &result).expect_err("CHECK without the DNAT rule");
    assert_eq!(code, 104, "{msg}");
    assert!(
        msg.contains(&format!("DNAT rule for tcp 18080 -> {ip}:80 is missing")),
        "CHECK names the missing rule: {msg}"
    );
    // The other mapping's rule is still there: a CHECK for it alone passes.
    let mut udp_only = conf.clone();
    udp_only["runtimeConfig"]["portMappings"] =
        json!([{"hostPort": 18053, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]);
    assert_eq!(check(&host, &pod, &udp_only, &result), Ok(()));

    // Someone removes the masquerade rule.
    if backend == "iptables" {
        let nat = must(host.exec(&["iptables", "-t", "nat", "-S"]), "iptables -S");
        let line = nat
            .lines()
            .find(|l| l.starts_with("-A SKIFF-MASQ-") && l.contains("-j MASQUERADE"))
            .unwrap_or_else(|| panic!("no MASQUERADE rule:\n{nat}"));
        let delete = format!("iptables -t nat {}", line.replacen("-A ", "-D ", 1));
        must(host.exec(&["sh", "-c", &delete]), &delete);
    } else {
        must(
            host.exec(&[
                "nft",
                "flush",
                "chain",
                "ip",
                &net.table,
                &format!("masq-{}", net.name),
            ]),
            "flush masq chain",
        );
    }
    let (code, msg) = check(&host, &pod, &udp_only, &result).expect_err("CHECK without masquerade");
    assert_eq!(code, 104, "{msg}");
    assert!(
        msg.contains("MASQUERADE rule") || msg.contains("masquerade rule"),
        "CHECK names the missing masquerade: {msg}"
    );

    ok(run_in_host(&host, "DEL", "hp", &pod.path(), &conf));
    assert!(net.reservations().is_empty());
}

#[test]
fn check_host_ports_nftables_0_4_0() {
    case(34, "0.4.0", "nftables");
}

#[test]
fn check_host_ports_nftables_1_0_0() {
    case(35, "1.0.0", "nftables");
}

#[test]
fn check_host_ports_nftables_1_1_0() {
    case(36, "1.1.0", "nftables");
}

#[test]
fn check_host_ports_iptables_0_4_0() {
    case(37, "0.4.0", "iptables");
}

#[test]
fn check_host_ports_iptables_1_0_0() {
    case(38, "1.0.0", "iptables");
}

#[test]
fn check_host_ports_iptables_1_1_0() {
    case(39, "1.1.0", "iptables");
}
