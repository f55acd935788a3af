//! Real traffic through skiff-cni, with the whole topology inside a throwaway "host" network
//! namespace so the machine's own firewall and routes are never touched:
//!
//! ```text
//!   pod A ─┐                        host ns (sktest<N>-host)                  outside ns
//!          ├─ bridge sktest<N> 10.251.<N>.1/24 ── routing + nft ── skout<N> 10.252.<N>.1 ── 10.252.<N>.2
//!   pod B ─┘   (hostPort 18080 -> B:80)
//! ```
//! The outside namespace has no route to the pod subnet: it only answers pods that were
//! masqueraded. Every server replies with the peer address it saw, so the tests see NAT at work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::path::Path;

use common::*;
use serde_json::json;

#[test]
fn pod_traffic_masquerade_and_host_ports_nftables() {
    pod_traffic_masquerade_and_host_ports(30, "nftables");
}

/// The iptables fallback (used when `nft` is missing; forced here with `ipMasqBackend`).
#[test]
fn pod_traffic_masquerade_and_host_ports_iptables() {
    pod_traffic_masquerade_and_host_ports(32, "iptables");
}

fn pod_traffic_masquerade_and_host_ports(n: u8, backend: &str) {
    require_root();
    let world = Outside::new(n);
    let (host, out) = (&world.host, &world.outside);
    let a = Netns::new(&format!("sktest{n}-a"));
    let b = Netns::new(&format!("sktest{n}-b"));
    let net = TestNet::new(n);
    let (host_ip, outside) = (world.host_ip(), world.outside_ip());
    let mut conf = net.conf("1.1.0");
    conf["ipMasqBackend"] = json!(backend);
    let ra = ok(run_in_host(host, "ADD", "pod-a", &a.path(), &conf));
    let mut conf_b = conf.clone();
    conf_b["runtimeConfig"] = json!({"portMappings": [
        {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 18081, "containerPort": 80, "protocol": "tcp", "hostIP": host_ip.to_string()}
    ]});
    let rb = ok(run_in_host(host, "ADD", "pod-b", &b.path(), &conf_b));
    let (ip_a, ip_b) = (result_ip(&ra), result_ip(&rb));
    let gw = net.gateway();

    // pod -> pod over the bridge, no NAT.
    let s = serve(b.path(), 80, 1, "b");
    assert_eq!(fetch(&a.path(), ip_b, 80).unwrap(), format!("b saw {ip_a}"));
    s.join().unwrap();

    // pod -> host (the host's address on another interface and the gateway), no NAT.
    let s = serve(host.path(), 9000, 2, "host");
    assert_eq!(
        fetch(&a.path(), host_ip, 9000).unwrap(),
        format!("host saw {ip_a}")
    );
    assert_eq!(
        fetch(&a.path(), gw, 9000).unwrap(),
        format!("host saw {ip_a}")
    );
    s.join().unwrap();

    // pod -> outside: masqueraded to the host's address (the outside has no route back to pods).
    let s = serve(out.path(), 9001, 1, "outside");
    assert_eq!(
        fetch(&a.path(), outside, 9001).unwrap(),
        format!("outside saw {host_ip}")
    );
    s.join().unwrap();

    // hostPort: from outside to the host's address, from the host to 127.0.0.1 (localhost DNAT),
    // from another pod, and from pod B to itself (hairpin).
    let s = serve(b.path(), 80, 5, "b");
    assert_eq!(
        fetch(&out.path(), host_ip, 18080).unwrap(),
        format!("b saw {outside}"),
        "outside -> hostPort"
    );
    let local = fetch(&host.path(), Ipv4Addr::LOCALHOST, 18080).unwrap();
    assert_eq!(
        local,
        format!("b saw {gw}"),
        "localhost -> hostPort, masqueraded"
    );
    assert_eq!(
        fetch(&a.path(), host_ip, 18080).unwrap(),
        format!("b saw {gw}"),
        "pod -> a neighbour's hostPort, masqueraded so the answer comes back through the host"
    );
    assert_eq!(
        fetch(&b.path(), host_ip, 18080).unwrap(),
        format!("b saw {gw}"),
        "hairpin: pod -> its own hostPort, masqueraded"
    );
    assert_eq!(
        fetch(&out.path(), host_ip, 18081).unwrap(),
        format!("b saw {outside}"),
        "hostIP-limited mapping"
    );
    s.join().unwrap();
    assert!(
        fetch(&host.path(), Ipv4Addr::LOCALHOST, 18081).is_err(),
        "18081 is limited to the host's outside address"
    );

    // DEL removes the host ports (twice is fine), and the port is closed afterwards.
    ok(run_in_host(host, "DEL", "pod-b", &b.path(), &conf_b));
    ok(run_in_host(host, "DEL", "pod-b", &b.path(), &conf_b));
    let in_host = |args: &[&str]| String::from_utf8_lossy(&host.exec(args).stdout).into_owned();
    let table = in_host(&["nft", "list", "table", "ip", &net.table]);
    assert!(!table.contains("dnat to"), "host ports removed: {table}");
    let nat = in_host(&["iptables", "-t", "nat", "-S"]);
    assert!(
        !nat.contains("--to-destination"),
        "host ports removed: {nat}"
    );
    if backend == "iptables" {
        assert!(nat.contains("MASQUERADE"), "{nat}");
        assert!(!table.contains("masquerade"), "{table}");
    }
    assert!(fetch(&out.path(), host_ip, 18080).is_err());
    ok(run_in_host(host, "DEL", "pod-a", &a.path(), &conf));
    assert!(net.reservations().is_empty());
}

/// GC removes host-port rules of attachments that are no longer valid.
#[test]
fn gc_removes_stale_host_ports() {
    require_root();
    let host = Netns::new("sktest31-host");
    let a = Netns::new("sktest31-a");
    let net = TestNet::new(31);
    let mut conf = net.conf("1.1.0");
    conf["runtimeConfig"] = json!({"portMappings": [{"hostPort": 18090, "containerPort": 80}]});
    ok(run_in_host(&host, "ADD", "gone", &a.path(), &conf));
    let list = || {
        String::from_utf8_lossy(
            &sh(
                "ip",
                &[
                    "netns", "exec", &host.name, "nft", "list", "table", "ip", &net.table,
                ],
            )
            .stdout,
        )
        .into_owned()
    };
    assert!(list().contains("dnat to"));
    let mut gc = net.conf("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    let r = run_in_host(&host, "GC", "", Path::new(""), &gc);
    ok(r);
    assert!(!list().contains("dnat to"), "{}", list());
    assert!(net.reservations().is_empty());
}
