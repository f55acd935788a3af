//! Root tests of the skiff-cni binary against real network namespaces, table-driven over every
//! supported spec version. Each test owns bridge `sktest<N>`, subnet 10.251.<N>.0/24, nft table
//! `sktest<N>` and netns names `sktest<N>-*`, and removes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

/// The whole lifecycle at one spec version.
fn lifecycle(version: &str, n: u8) {
    let net = TestNet::new(n);
    let ns = Netns::new(&format!("sktest{n}-a"));
    let conf = net.conf(version);
    let id = format!("lifecycle-{n}");

    let result = ok(run("ADD", &id, Some(&ns.path()), &conf));
    assert_eq!(result["cniVersion"], version);
    let ip = result_ip(&result);
    assert_eq!(
        ip,
        std::net::Ipv4Addr::new(10, 251, n, 2),
        "first address after the gateway"
    );
    let ifaces = result["interfaces"].as_array().expect("interfaces");
    let idx = result["ips"][0]["interface"]
        .as_u64()
        .expect("ips[0].interface") as usize;
    assert_eq!(ifaces[idx]["name"], "eth0");
    assert_eq!(ifaces[idx]["sandbox"], ns.path().to_string_lossy().as_ref());
    if version.starts_with("0.") {
        assert_eq!(
            result["ips"][0]["version"], "4",
            "0.x results carry ips[].version"
        );
    } else {
        assert!(result["ips"][0].get("version").is_none());
    }
    assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
    assert_eq!(result["routes"][0]["gw"], net.gateway().to_string());

    // The interface, its address, the default route and lo, as the kernel sees them.
    let addr = ns.ip(&["-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains(&format!("{ip}/24")), "eth0 address: {addr}");
    let route = ns.ip(&["-4", "route", "show", "default"]);
    assert!(
        route.contains(&format!("default via {}", net.gateway())),
        "routes: {route}"
    );
    assert!(ns.ip(&["link", "show", "lo"]).contains("UP"), "lo is up");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );
    assert_eq!(
        std::fs::read_to_string(net.ipam_dir().join(ip.to_string())).unwrap(),
        format!("{id}\r\neth0")
    );

    let host_veth = ifaces
        .iter()
        .find(|i| i.get("sandbox").is_none() && i["name"] != net.bridge.as_str())
        .unwrap();
    let hairpin = format!(
        "/sys/class/net/{}/brport/hairpin_mode",
        host_veth["name"].as_str().unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(hairpin).unwrap().trim(),
        "1",
        "hairpin on the bridge port"
    );

    // Host → pod over the bridge.
    assert_eq!(
        tcp_roundtrip(&ns.path(), ip.into(), 7000 + u16::from(n)).unwrap(),
        "hello-from-pod"
    );

    // CHECK exists from 0.4.0 on.
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = result.clone();
    let check = run("CHECK", &id, Some(&ns.path()), &check_conf);
    if version == "0.3.0" || version == "0.3.1" {
        assert!(!check.ok);
        assert_eq!(check.code(), 1, "CHECK below 0.4.0: {}", check.stdout);
    } else {
        ok(check);
    }

    // DEL, DEL again, DEL without a netns: all succeed and leave nothing.
    let mut del_conf = conf.clone();
    del_conf["prevResult"] = result.clone();
    ok(run("DEL", &id, Some(&ns.path()), &del_conf));
    assert!(ns.ip(&["link", "show", "eth0"]).is_empty(), "eth0 gone");
    assert!(net.reservations().is_empty(), "IPAM released");
    ok(run("DEL", &id, Some(&ns.path()), &del_conf));
    ok(run("DEL", &id, None, &conf));
}

#[test]
fn lifecycle_0_3_0() {
    lifecycle("0.3.0", 10);
}
#[test]
fn lifecycle_0_3_1() {
    lifecycle("0.3.1", 11);
}
#[test]
fn lifecycle_0_4_0() {
    lifecycle("0.4.0", 12);
}
#[test]
fn lifecycle_1_0_0() {
    lifecycle("1.0.0", 13);
}
#[test]
fn lifecycle_1_1_0() {
    lifecycle("1.1.0", 14);
}

#[test]
fn existing_interface_is_an_error_and_repeat_add_keeps_the_ip() {
    let net = TestNet::new(15);
    let a = Netns::new("sktest15-a");
    let b = Netns::new("sktest15-b");
    let conf = net.conf("1.1.0");
    let first = ok(run("ADD", "same", Some(&a.path()), &conf));
    let again = run("ADD", "same", Some(&a.path()), &conf);
    assert!(!again.ok);
    assert_eq!(again.code(), 101, "{}", again.stdout);
    assert_eq!(
        net.reservations().len(),
        1,
        "the failed ADD did not touch the reservation"
    );
    // Same (containerID, ifname) again, e.g. after the runtime lost track: same address.
    let second = ok(run("ADD", "same", Some(&b.path()), &conf));
    assert_eq!(result_ip(&first), result_ip(&second));
    ok(run("DEL", "same", Some(&b.path()), &conf));
    assert!(net.reservations().is_empty());
}

#[test]
fn ipam_exhaustion_and_status() {
    let net = TestNet::new(16);
    let mut conf = net.conf("1.1.0");
    conf["ipam"]["rangeStart"] = json!("10.251.16.10");
    conf["ipam"]["rangeEnd"] = json!("10.251.16.11");
    let nss: Vec<Netns> = (0..3)
        .map(|i| Netns::new(&format!("sktest16-{i}")))
        .collect();
    ok(run("STATUS", "", None, &conf));
    ok(run("ADD", "c0", Some(&nss[0].path()), &conf));
    ok(run("ADD", "c1", Some(&nss[1].path()), &conf));
    let status = run("STATUS", "", None, &conf);
    assert_eq!(
        status.code(),
        50,
        "exhausted range is not ready: {}",
        status.stdout
    );
    let full = run("ADD", "c2", Some(&nss[2].path()), &conf);
    assert!(!full.ok);
    assert_eq!(full.code(), 102, "{}", full.stdout);
    assert!(
        full.json.as_ref().unwrap()["msg"]
            .as_str()
            .unwrap()
            .contains("no IP addresses available")
    );
    assert!(
        nss[2].ip(&["link", "show", "eth0"]).is_empty(),
        "no interface left by the failed ADD"
    );
    assert_eq!(net.reservations(), vec!["10.251.16.10", "10.251.16.11"]);
    // DEL after a failed ADD is fine.
    ok(run("DEL", "c2", Some(&nss[2].path()), &conf));
    for (i, ns) in nss.iter().enumerate().take(2) {
        ok(run("DEL", &format!("c{i}"), Some(&ns.path()), &conf));
    }
    ok(run("STATUS", "", None, &conf));
}

#[test]
fn gc_releases_stale_reservations() {
    let net = TestNet::new(17);
    let conf = net.conf("1.1.0");
    let a = Netns::new("sktest17-a");
    let b = Netns::new("sktest17-b");
    let ra = ok(run("ADD", "keep", Some(&a.path()), &conf));
    ok(run("ADD", "stale", Some(&b.path()), &conf));
    assert_eq!(net.reservations().len(), 2);

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    ok(run_raw(
        &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/usr/lib/cni")],
        gc.to_string().as_bytes(),
    ));
    assert_eq!(net.reservations(), vec![result_ip(&ra).to_string()]);

    // GC needs a 1.1 config, and refuses to guess without the list.
    let mut old = gc.clone();
    old["cniVersion"] = json!("1.0.0");
    assert_eq!(
        run_raw(&[("CNI_COMMAND", "GC")], old.to_string().as_bytes()).code(),
        1
    );
    assert_eq!(
        run_raw(&[("CNI_COMMAND", "GC")], conf.to_string().as_bytes()).code(),
        7
    );
    assert_eq!(net.reservations().len(), 1);
    ok(run("DEL", "keep", Some(&a.path()), &conf));
    ok(run("DEL", "stale", Some(&b.path()), &conf));
}

#[test]
fn check_detects_drift() {
    let net = TestNet::new(18);
    let ns = Netns::new("sktest18-a");
    let conf = net.conf("1.0.0");
    let result = ok(run("ADD", "drift", Some(&ns.path()), &conf));
    let mut check = conf.clone();
    check["prevResult"] = result;
    ok(run("CHECK", "drift", Some(&ns.path()), &check));
    let _ = ns.ip(&["route", "del", "default"]);
    let r = run("CHECK", "drift", Some(&ns.path()), &check);
    assert_eq!(r.code(), 104, "missing route detected: {}", r.stdout);
    let _ = ns.ip(&["addr", "flush", "dev", "eth0"]);
    let r = run("CHECK", "drift", Some(&ns.path()), &check);
    assert_eq!(r.code(), 104, "missing address detected: {}", r.stdout);
    assert_eq!(
        run("CHECK", "drift", Some(&ns.path()), &conf).code(),
        7,
        "CHECK needs prevResult"
    );
    ok(run("DEL", "drift", Some(&ns.path()), &conf));
}

#[test]
fn version_and_bad_input() {
    let v = ok(run_raw(
        &[("CNI_COMMAND", "VERSION")],
        br#"{"cniVersion":"0.4.0"}"#,
    ));
    assert_eq!(
        v,
        json!({"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]})
    );
    let v = ok(run_raw(&[("CNI_COMMAND", "VERSION")], b""));
    assert_eq!(v["cniVersion"], "1.1.0");

    let net = TestNet::new(19);
    let ns = Netns::new("sktest19-a");
    let add = |stdin: &[u8]| {
        let p = ns.path();
        run_raw(
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "bad"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", p.to_str().unwrap()),
            ],
            stdin,
        )
    };
    let expect = |r: Run, code: u64| {
        assert!(!r.ok, "must fail: {}", r.stdout);
        let j = r
            .json
            .as_ref()
            .unwrap_or_else(|| panic!("error JSON on stdout, got {:?}", r.stdout));
        assert_eq!(j["code"].as_u64(), Some(code), "{}", r.stdout);
        assert!(j["msg"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(!r.stderr.contains('{') || !r.stdout.is_empty());
    };
    expect(add(b"{not json"), 6);
    expect(add(b""), 6);
    expect(
        add(br#"{"cniVersion":"1.1.0","name":"x","ipam":{"subnet":"bogus"}}"#),
        7,
    );
    expect(
        add(br#"{"cniVersion":"1.1.0","name":"x","ipam":{"subnet":"10.251.19.0/24"},"mtu":"big"}"#),
        7,
    );
    expect(add(br#"{"cniVersion":"1.1.0","name":"x"}"#), 7);
    let mut old = net.conf("0.2.0");
    expect(add(old.to_string().as_bytes()), 1);
    old["cniVersion"] = json!("1.1.0");
    expect(
        run_raw(
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "bad"),
                ("CNI_IFNAME", "eth0"),
            ],
            old.to_string().as_bytes(),
        ),
        4,
    );
    expect(
        run_raw(&[("CNI_COMMAND", "BOGUS")], old.to_string().as_bytes()),
        4,
    );
    expect(
        run(
            "ADD",
            "bad",
            Some(std::path::Path::new("/run/netns/sktest19-missing")),
            &old,
        ),
        8,
    );
    // Nothing was created by any of the failures.
    assert!(
        sh("ip", &["link", "show", &net.bridge]).stdout.is_empty(),
        "no bridge created"
    );
    assert!(net.reservations().is_empty());
    // DEL of something never added, with a netns that does not exist: success.
    ok(run(
        "DEL",
        "bad",
        Some(std::path::Path::new("/run/netns/sktest19-missing")),
        &old,
    ));
}

#[test]
fn masquerade_rules_are_idempotent() {
    let net = TestNet::new(20);
    let a = Netns::new("sktest20-a");
    let b = Netns::new("sktest20-b");
    let conf = net.conf("1.1.0");
    ok(run("ADD", "m1", Some(&a.path()), &conf));
    ok(run("ADD", "m2", Some(&b.path()), &conf));
    let table = String::from_utf8_lossy(&sh("nft", &["list", "table", "ip", &net.table]).stdout)
        .into_owned();
    assert!(table.contains("chain masq-sktest20"), "{table}");
    assert!(
        table.contains("type nat hook postrouting priority srcnat; policy accept;"),
        "{table}"
    );
    assert!(
        table.contains(
            "ip saddr 10.251.20.0/24 ip daddr != { 10.251.0.0/16, 224.0.0.0/4 } masquerade"
        ),
        "{table}"
    );
    assert_eq!(
        table.matches("masquerade").count(),
        1,
        "one rule after two ADDs: {table}"
    );
    ok(run("DEL", "m1", Some(&a.path()), &conf));
    ok(run("DEL", "m2", Some(&b.path()), &conf));
}

#[test]
fn failed_add_cleans_up_and_del_still_works() {
    let net = TestNet::new(21);
    let ns = Netns::new("sktest21-a");
    // A non-bridge link squatting on the bridge name makes ADD fail after IPAM allocated.
    let peer = format!("{}p", net.bridge);
    assert!(
        sh(
            "ip",
            &[
                "link",
                "add",
                &net.bridge,
                "type",
                "veth",
                "peer",
                "name",
                &peer
            ]
        )
        .status
        .success()
    );
    let conf = net.conf("1.1.0");
    let r = run("ADD", "fail", Some(&ns.path()), &conf);
    assert!(!r.ok);
    assert_eq!(r.code(), 7, "{}", r.stdout);
    assert!(
        net.reservations().is_empty(),
        "IPAM released after the failed ADD"
    );
    assert!(ns.ip(&["link", "show", "eth0"]).is_empty());
    let status = run("STATUS", "", None, &conf);
    assert_eq!(status.code(), 50, "{}", status.stdout);
    ok(run("DEL", "fail", Some(&ns.path()), &conf));
}

#[test]
fn forward_accept_when_policy_is_drop() {
    // In a throwaway "host" namespace so that the real host's FORWARD policy is not touched.
    require_root();
    let host = Netns::new("sktest22-host");
    let pod = Netns::new("sktest22-pod");
    let net = TestNet::new(22);
    assert!(
        sh(
            "ip",
            &[
                "netns", "exec", &host.name, "iptables", "-P", "FORWARD", "DROP"
            ]
        )
        .status
        .success()
    );
    let conf = net.conf("1.1.0");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &host.name, plugin_bin()])
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "fwd")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", pod.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(conf.to_string().as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rules = String::from_utf8_lossy(
        &sh(
            "ip",
            &["netns", "exec", &host.name, "iptables", "-S", "FORWARD"],
        )
        .stdout,
    )
    .into_owned();
    assert!(
        rules.contains(&format!("-A FORWARD -i {} ", net.bridge)),
        "{rules}"
    );
    assert!(
        rules.contains(&format!("-A FORWARD -o {} ", net.bridge)),
        "{rules}"
    );
    // The bridge lives in the throwaway host namespace; deleting it removes everything.
    assert!(sh("ip", &["link", "show", &net.bridge]).stdout.is_empty());
    drop(pod);
    drop(host);
}

#[test]
fn bench_add_del() {
    let net = TestNet::new(23);
    let conf = net.conf("1.1.0");
    let rounds = 10;
    let (mut add, mut del) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let ns = Netns::new(&format!("sktest23-{i}"));
        let id = format!("bench{i}");
        let r = run("ADD", &id, Some(&ns.path()), &conf);
        add.push(r.elapsed);
        ok(r);
        let r = run("DEL", &id, Some(&ns.path()), &conf);
        del.push(r.elapsed);
        ok(r);
    }
    let stats = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        let sum: std::time::Duration = v.iter().sum();
        format!(
            "min {:?} median {:?} max {:?} mean {:?}",
            v[0],
            v[v.len() / 2],
            v[v.len() - 1],
            sum / v.len() as u32
        )
    };
    eprintln!(
        "skiff-cni ADD ({rounds} runs, debug build, incl. exec + nft): {}",
        stats(&mut add)
    );
    eprintln!(
        "skiff-cni DEL ({rounds} runs, debug build): {}",
        stats(&mut del)
    );
}

/// Unknown keys in the plugin config are ignored, not rejected.
#[test]
fn unknown_fields_pass() {
    let net = TestNet::new(24);
    let mut conf: Value = net.conf("1.1.0");
    conf["runtimeConfig"] = json!({"portMappings": []});
    conf["args"] = json!({"cni": {"x": 1}});
    ok(run("STATUS", "", None, &conf));
}
