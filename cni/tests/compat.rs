//! Drop-in compatibility with the reference `bridge` + `host-local` configuration, table-driven over
//! the spec versions a conflist for them uses (0.4.0, 1.0.0, 1.1.0); requested addresses; IPAM
//! delegated to another plugin; DEL with the netns gone. Each test owns bridge `sktest<N>`, subnet
//! 10.251.<N>.0/24, nft table `sktest<N>` and netns names `sktest<N>-*`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use serde_json::{Value, json};

const VERSIONS: &[&str] = &["0.4.0", "1.0.0", "1.1.0"];

fn env_run(command: &str, id: &str, ns: &Path, extra: &[(&str, &str)], conf: &Value) -> Run {
    let p = ns.to_string_lossy().into_owned();
    let mut vars = vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_IFNAME", "eth0"),
        ("CNI_NETNS", p.as_str()),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    vars.extend_from_slice(extra);
    run_raw(&vars, conf.to_string().as_bytes())
}

/// A config written for the reference bridge + host-local, with only `type` changed.
fn reference_style(net: &TestNet, version: &str) -> Value {
    let n = net.n;
    json!({
        "cniVersion": version, "name": net.name, "type": "skiff-cni",
        "bridge": net.bridge, "isGateway": true, "isDefaultGateway": true, "ipMasq": true,
        "mtu": 1400, "hairpinMode": false, "promiscMode": true, "nftTable": net.table,
        "ipam": {
            "type": "host-local", "dataDir": net.data_dir,
            "ranges": [[{"subnet": format!("10.251.{n}.0/24"), "rangeStart": format!("10.251.{n}.50"),
                         "rangeEnd": format!("10.251.{n}.60"), "gateway": format!("10.251.{n}.1")}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.0.2.0/24", "gw": format!("10.251.{n}.9")}]
        }
    })
}

fn host_local_config(version: &str, n: u8) {
    let net = TestNet::new(n);
    // ADD on an existing bridge.
    assert!(
        sh("ip", &["link", "add", &net.bridge, "type", "bridge"])
            .status
            .success()
    );
    let ns = Netns::new(&format!("sktest{n}-a"));
    let conf = reference_style(&net, version);
    // Container ids differ per test: the host veth name derives from them.
    let id = format!("ref{n}");
    let r = ok(env_run("ADD", &id, &ns.path(), &[], &conf));
    assert_eq!(r["cniVersion"], version);
    let ip = result_ip(&r);
    assert_eq!(
        ip.to_string(),
        format!("10.251.{n}.50"),
        "rangeStart honoured"
    );
    assert_eq!(r["ips"][0]["gateway"], format!("10.251.{n}.1"));
    assert_eq!(
        net.reservations(),
        vec![ip.to_string()],
        "host-local layout: <dataDir>/<name>/<ip>"
    );
    let routes = ns.ip(&["-4", "route", "show"]);
    assert!(
        routes.contains(&format!("default via 10.251.{n}.1")),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("192.0.2.0/24 via 10.251.{n}.9")),
        "{routes}"
    );
    assert!(ns.ip(&["link", "show", "eth0"]).contains("mtu 1400"));
    let bridge =
        String::from_utf8_lossy(&sh("ip", &["link", "show", &net.bridge]).stdout).into_owned();
    assert!(bridge.contains("PROMISC"), "promiscMode: {bridge}");
    let host_veth = r["interfaces"][1]["name"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(format!("/sys/class/net/{host_veth}/brport/hairpin_mode"))
            .unwrap()
            .trim(),
        "0",
        "hairpinMode false"
    );
    let mut check = conf.clone();
    check["prevResult"] = r.clone();
    ok(env_run("CHECK", &id, &ns.path(), &[], &check));
    // CHECK notices a removed address.
    let _ = ns.ip(&["addr", "del", &format!("{ip}/24"), "dev", "eth0"]);
    assert_eq!(env_run("CHECK", &id, &ns.path(), &[], &check).code(), 104);
    ok(env_run("DEL", &id, &ns.path(), &[], &check));
    assert!(net.reservations().is_empty());
}

#[test]
fn host_local_config_0_4_0() {
    host_local_config(VERSIONS[0], 50);
}
#[test]
fn host_local_config_1_0_0() {
    host_local_config(VERSIONS[1], 51);
}
#[test]
fn host_local_config_1_1_0() {
    host_local_config(VERSIONS[2], 52);
}

#[test]
fn requested_ips_capability_and_args() {
    let net = TestNet::new(53);
    let a = Netns::new("sktest53-a");
    let b = Netns::new("sktest53-b");
    let c = Netns::new("sktest53-c");
    for (i, version) in VERSIONS.iter().enumerate() {
        let mut conf = net.conf(version);
        conf["capabilities"] = json!({"ips": true});
        conf["runtimeConfig"] = json!({"ips": ["10.251.53.77/24"]});
        let r = ok(env_run("ADD", "cap", &a.path(), &[], &conf));
        assert_eq!(result_ip(&r).to_string(), "10.251.53.77", "{version}");
        // The same address for someone else: taken.
        let taken = env_run(
            "ADD",
            "other",
            &b.path(),
            &[("CNI_ARGS", "IgnoreUnknown=1;IP=10.251.53.77")],
            &net.conf(version),
        );
        assert_eq!(taken.code(), 105, "{}", taken.stdout);
        assert!(b.ip(&["link", "show", "eth0"]).is_empty());
        let r = ok(env_run(
            "ADD",
            "arg",
            &b.path(),
            &[("CNI_ARGS", "IgnoreUnknown=1;IP=10.251.53.78")],
            &net.conf(version),
        ));
        assert_eq!(result_ip(&r).to_string(), "10.251.53.78");
        let outside = env_run(
            "ADD",
            "bad",
            &c.path(),
            &[("CNI_ARGS", "IP=10.9.9.9")],
            &net.conf(version),
        );
        assert_eq!(outside.code(), 7, "{}", outside.stdout);
        ok(env_run("DEL", "cap", &a.path(), &[], &conf));
        ok(env_run("DEL", "arg", &b.path(), &[], &net.conf(version)));
        assert!(net.reservations().is_empty(), "round {i}");
    }
}

/// `ipam.type` other than host-local runs that plugin from CNI_PATH: the reference `static`, and a
/// recording fake that shows IPAM DEL after a failed ADD.
#[test]
fn delegated_ipam() {
    let net = TestNet::new(54);
    let ns = Netns::new("sktest54-a");
    for version in VERSIONS {
        let mut conf = net.conf(version);
        conf["ipam"] = json!({"type": "static", "addresses": [{"address": "10.251.54.33/24", "gateway": "10.251.54.1"}],
                              "routes": [{"dst": "198.51.100.0/24"}]});
        if *version == "1.1.0" {
            // Debian's static speaks up to 1.0.0: its error comes back, nothing is left behind.
            let r = env_run("ADD", "static", &ns.path(), &[], &conf);
            assert_eq!(r.code(), 1, "{}", r.stdout);
            assert!(ns.ip(&["link", "show", "eth0"]).is_empty());
            continue;
        }
        let r = ok(env_run("ADD", "static", &ns.path(), &[], &conf));
        assert_eq!(result_ip(&r).to_string(), "10.251.54.33", "{version}");
        let routes = ns.ip(&["-4", "route", "show"]);
        assert!(
            routes.contains("198.51.100.0/24 via 10.251.54.1"),
            "{routes}"
        );
        assert!(routes.contains("default via 10.251.54.1"), "{routes}");
        let mut check = conf.clone();
        check["prevResult"] = r;
        ok(env_run("CHECK", "static", &ns.path(), &[], &check));
        ok(env_run("DEL", "static", &ns.path(), &[], &check));
        assert!(ns.ip(&["link", "show", "eth0"]).is_empty());
    }

    // A recording IPAM plugin; the bridge name is squatted by a veth so ADD fails after IPAM.
    let bin = net.data_dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = net.data_dir.join("ipam.log");
    let script = format!(
        "#!/bin/sh\necho \"$CNI_COMMAND $CNI_CONTAINERID\" >> {}\ncat >/dev/null\n\
         [ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.251.54.40/24\"}}]}}'\nexit 0\n",
        log.display()
    );
    let fake = bin.join("fake-ipam");
    std::fs::write(&fake, script).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let peer = format!("{}p", net.bridge);
    let _ = sh("ip", &["link", "del", &net.bridge]);
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
    let mut conf = net.conf("1.1.0");
    conf["ipam"] = json!({"type": "fake-ipam"});
    let path = format!("/nonexistent:{}", bin.display());
    let failed = env_run("ADD", "fails", &ns.path(), &[("CNI_PATH", &path)], &conf);
    assert_eq!(failed.code(), 7, "{}", failed.stdout);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "ADD fails\nDEL fails\n",
        "IPAM DEL after the failed ADD"
    );
    // STATUS and GC are forwarded to the delegate.
    let _ = sh("ip", &["link", "del", &net.bridge]);
    let s = run_raw(
        &[("CNI_COMMAND", "STATUS"), ("CNI_PATH", &path)],
        conf.to_string().as_bytes(),
    );
    assert!(s.ok, "{}", s.stdout);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    ok(run_raw(
        &[("CNI_COMMAND", "GC"), ("CNI_PATH", &path)],
        gc.to_string().as_bytes(),
    ));
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .ends_with("STATUS \nGC \n")
    );
    // An IPAM plugin that is not on CNI_PATH.
    conf["ipam"] = json!({"type": "no-such-ipam"});
    let missing = env_run("ADD", "x", &ns.path(), &[], &conf);
    assert_eq!(missing.code(), 110, "{}", missing.stdout);
}

/// DEL after the netns was deleted (the runtime lost the pod): success, the address is released
/// and the host veth is gone with its peer.
#[test]
fn del_with_netns_gone_and_unknown_id() {
    let net = TestNet::new(55);
    for version in VERSIONS {
        let ns = Netns::new("sktest55-a");
        let conf = net.conf(version);
        let r = ok(env_run("ADD", "gone", &ns.path(), &[], &conf));
        let host_veth = r["interfaces"][1]["name"].as_str().unwrap().to_string();
        let path = ns.path();
        drop(ns);
        ok(env_run("DEL", "gone", &path, &[], &conf));
        assert!(net.reservations().is_empty(), "{version}");
        assert!(sh("ip", &["link", "show", &host_veth]).stdout.is_empty());
        ok(env_run("DEL", "never-added", &path, &[], &conf));
        ok(run("DEL", "never-added", None, &conf));
    }
}

/// DEL hands the veth deletion to a detached reaper: the name is free at once (ADD right after DEL
/// into the same netns works) and the renamed link is gone shortly after.
#[test]
fn del_frees_the_name_at_once_and_the_link_soon() {
    let net = TestNet::new(56);
    let ns = Netns::new("sktest56-a");
    let conf = net.conf("1.1.0");
    for round in 0..3 {
        let id = format!("again{round}");
        ok(env_run("ADD", &id, &ns.path(), &[], &conf));
        ok(env_run("DEL", &id, &ns.path(), &[], &conf));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let links = ns.ip(&["-o", "link", "show"]);
        if !links.contains("skd") && !links.contains("eth0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "renamed links not reaped: {links}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(net.reservations().is_empty());
}
