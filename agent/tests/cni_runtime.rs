//! The agent's CNI runtime against real plugins in real network namespaces: skiff-cni (built from
//! this workspace) and Debian's reference bridge + host-local + loopback. Needs root.
//!
//! Each test owns bridge `sktest<N>` (N = 40..), subnet 10.251.<N>.0/24, nft table `sktest<N>`,
//! netns names `sktest<N>-*` and a temp dir for conf, cache and IPAM, and removes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cni_support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cni_support::*;
use serde_json::json;
use skiff_agent::cni::{Attachment, CniError, CniRuntime};
use skiff_agent::sandbox;

/// Per-test world: temp dir with conf/, cache/, ipam/; bridge and nft table removed on drop.
struct World {
    n: u8,
    dir: PathBuf,
}

impl World {
    fn new(n: u8) -> World {
        assert!(
            nix::unistd::geteuid().is_root(),
            "CNI runtime tests need root"
        );
        let dir = std::env::temp_dir().join(format!("skiff-cnirt-{n}-{}", std::process::id()));
        let w = World { n, dir };
        w.cleanup();
        std::fs::create_dir_all(w.conf_dir()).unwrap();
        w
    }
    fn conf_dir(&self) -> PathBuf {
        self.dir.join("net.d")
    }
    fn cache_dir(&self) -> PathBuf {
        self.dir.join("results")
    }
    fn ipam_dir(&self) -> PathBuf {
        self.dir.join("ipam")
    }
    fn bridge(&self) -> String {
        format!("sktest{}", self.n)
    }
    fn write_conflist(&self, file: &str, v: serde_json::Value) {
        std::fs::write(self.conf_dir().join(file), v.to_string()).unwrap();
    }
    /// A skiff-cni list for this world.
    fn skiff_list(&self) -> serde_json::Value {
        json!({"cniVersion": "1.1.0", "name": format!("sktest{}", self.n), "plugins": [{
            "type": "skiff-cni", "bridge": self.bridge(), "isGateway": true, "ipMasq": true,
            "clusterCIDR": "10.251.0.0/16", "nftTable": self.bridge(),
            "ipam": {"subnet": format!("10.251.{}.0/24", self.n), "dataDir": self.ipam_dir()}
        }]})
    }
    fn skiff_runtime(&self) -> CniRuntime {
        self.write_conflist("10-test.conflist", self.skiff_list());
        CniRuntime::new(
            self.conf_dir(),
            vec![skiff_cni_dir(), "/usr/lib/cni".into()],
            self.cache_dir(),
        )
    }
    fn cache_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.cache_dir())
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
    /// host-local's layout: `<dataDir>/<network>/<ip>`.
    fn reservations(&self) -> usize {
        std::fs::read_dir(self.ipam_dir().join(format!("sktest{}", self.n)))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_str()
                            .is_some_and(|n| n.parse::<Ipv4Addr>().is_ok())
                    })
                    .count()
            })
            .unwrap_or(0)
    }
    fn cleanup(&self) {
        let _ = sh("ip", &["link", "del", &self.bridge()]);
        let _ = sh("nft", &["delete", "table", "ip", &self.bridge()]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn attachment(id: &str, netns: &Path) -> Attachment {
    Attachment {
        container_id: id.to_string(),
        netns: netns.to_path_buf(),
        ifname: "eth0".into(),
        args: vec![
            ("K8S_POD_NAMESPACE".into(), "default".into()),
            ("K8S_POD_NAME".into(), id.into()),
            ("K8S_POD_UID".into(), id.into()),
        ],
        port_mappings: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn skiff_cni_add_cache_del() {
    let w = World::new(40);
    let rt = w.skiff_runtime();
    rt.ready().unwrap();
    rt.status().await.unwrap();
    let ns = Netns::new("sktest40-a");
    let att = attachment("pod-a", &ns.path());

    let net = rt.add(&att).await.unwrap();
    assert_eq!(net.ips, vec![IpAddr::from([10, 251, 40, 2])]);
    assert_eq!(net.network, "sktest40");
    assert!(
        ns.ip(&["-4", "-o", "addr", "show", "eth0"])
            .contains("10.251.40.2/24")
    );
    assert_eq!(
        tcp_roundtrip(&ns.path(), net.ips[0], 7040).unwrap(),
        "hello-from-pod"
    );

    // libcni's cache layout.
    assert_eq!(w.cache_files(), vec!["sktest40-pod-a-eth0"]);
    let cached: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.cache_dir().join("sktest40-pod-a-eth0")).unwrap())
            .unwrap();
    assert_eq!(cached["kind"], "cniCacheV1");
    assert_eq!(cached["containerId"], "pod-a");
    assert_eq!(cached["ifName"], "eth0");
    assert_eq!(cached["networkName"], "sktest40");
    assert_eq!(cached["cniArgs"][0], json!(["IgnoreUnknown", "1"]));
    assert_eq!(cached["cniArgs"][2], json!(["K8S_POD_NAME", "pod-a"]));
    assert_eq!(cached["result"]["ips"][0]["address"], "10.251.40.2/24");
    assert!(
        cached["config"].as_str().is_some_and(|c| !c.is_empty()),
        "config is base64 of the list"
    );

    rt.check(&att).await.unwrap();
    let _ = ns.ip(&["route", "del", "default"]);
    let drift = rt.check(&att).await.unwrap_err();
    assert_eq!(drift.code(), Some(104), "{drift}");

    // Restart adoption reads the cache.
    assert_eq!(rt.cached(&att).await.unwrap().ips, net.ips);
    let fresh = CniRuntime::new(w.conf_dir(), vec![skiff_cni_dir()], w.cache_dir());
    assert_eq!(fresh.cached(&att).await.unwrap().ips, net.ips);

    rt.del(&att).await.unwrap();
    assert!(w.cache_files().is_empty(), "cache removed after DEL");
    assert!(ns.ip(&["link", "show", "eth0"]).is_empty());
    assert_eq!(w.reservations(), 0);
    assert!(rt.cached(&att).await.is_none());
    assert!(matches!(
        rt.check(&att).await,
        Err(CniError::NotAdded { .. })
    ));
    rt.del(&att).await.unwrap();
    // DEL after the netns is gone.
    drop(ns);
    rt.del(&att).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_plugins_bridge_host_local_loopback() {
    let w = World::new(41);
    // cniVersions offers 1.1.0 too; the reference plugins answer VERSION with at most 1.0.0, so the
    // runtime must settle on 1.0.0.
    w.write_conflist(
        "10-ref.conflist",
        json!({"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"], "name": "sktest41", "plugins": [
            {"type": "bridge", "bridge": w.bridge(), "isGateway": true, "isDefaultGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "subnet": "10.251.41.0/24", "dataDir": w.ipam_dir()}},
            {"type": "loopback"}
        ]}),
    );
    let rt = CniRuntime::new(w.conf_dir(), vec!["/usr/lib/cni".into()], w.cache_dir());
    rt.ready().unwrap();
    let ns = Netns::new("sktest41-a");
    let att = attachment("ref-a", &ns.path());
    let net = rt.add(&att).await.unwrap();
    assert_eq!(net.result.cni_version, "1.0.0");
    assert_eq!(net.ips, vec![IpAddr::from([10, 251, 41, 2])]);
    assert!(
        ns.ip(&["route", "show", "default"])
            .contains("via 10.251.41.1")
    );
    assert!(ns.ip(&["link", "show", "lo"]).contains("UP"));
    assert_eq!(
        tcp_roundtrip(&ns.path(), net.ips[0], 7041).unwrap(),
        "hello-from-pod"
    );
    assert_eq!(w.cache_files(), vec!["sktest41-ref-a-eth0"]);
    rt.check(&att).await.unwrap();

    rt.del(&att).await.unwrap();
    rt.del(&att).await.unwrap();
    assert!(w.cache_files().is_empty());
    assert!(ns.ip(&["link", "show", "eth0"]).is_empty());
    // host-local's reservation files live in <dataDir>/<network>.
    let left = std::fs::read_dir(w.ipam_dir().join("sktest41"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("10.")))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "host-local released the address");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_add_then_del_and_error_codes() {
    let w = World::new(42);
    let rt = w.skiff_runtime();
    let att = attachment("pod-x", Path::new("/run/netns/sktest42-missing"));
    match rt.add(&att).await {
        Err(e @ CniError::Plugin { .. }) => assert_eq!(e.code(), Some(8), "{e}"),
        other => panic!("expected a plugin error, got {other:?}"),
    }
    assert!(
        w.cache_files().is_empty(),
        "nothing cached for a failed ADD"
    );
    rt.del(&att).await.unwrap();
    assert_eq!(w.reservations(), 0);

    // A broken conflist is reported as config error 6, and nothing runs.
    std::fs::write(w.conf_dir().join("00-broken.conflist"), b"{nope").unwrap();
    let e = rt.add(&att).await.unwrap_err();
    assert!(matches!(e, CniError::Config { .. }), "{e}");
    assert_eq!(e.code(), Some(6));
    assert!(rt.ready().is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_deletes_stale_attachments() {
    let w = World::new(43);
    let rt = w.skiff_runtime();
    let a = Netns::new("sktest43-a");
    let b = Netns::new("sktest43-b");
    let att_a = attachment("keep", &a.path());
    let att_b = attachment("stale", &b.path());
    rt.add(&att_a).await.unwrap();
    rt.add(&att_b).await.unwrap();
    // A reservation that no cache entry knows about (e.g. an agent crash mid-ADD): only the
    // plugin-level GC can find it.
    std::fs::write(
        w.ipam_dir().join("sktest43/10.251.43.200"),
        "orphan\r\neth0",
    )
    .unwrap();
    assert_eq!(w.reservations(), 3);

    rt.gc(std::slice::from_ref(&att_a)).await.unwrap();
    assert_eq!(w.cache_files(), vec!["sktest43-keep-eth0"]);
    assert!(
        b.ip(&["link", "show", "eth0"]).is_empty(),
        "synthesized DEL removed the stale interface"
    );
    assert!(!a.ip(&["link", "show", "eth0"]).is_empty());
    assert_eq!(w.reservations(), 1, "plugin GC freed the orphan");
    rt.del(&att_a).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_adds_get_distinct_ips() {
    let w = World::new(44);
    let rt = std::sync::Arc::new(w.skiff_runtime());
    let nss: Vec<Netns> = (0..6)
        .map(|i| Netns::new(&format!("sktest44-{i}")))
        .collect();
    let mut tasks = Vec::new();
    for (i, ns) in nss.iter().enumerate() {
        let rt = rt.clone();
        let att = attachment(&format!("c{i}"), &ns.path());
        tasks.push(tokio::spawn(
            async move { rt.add(&att).await.map(|n| n.ips[0]) },
        ));
    }
    let gc = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.gc(&[]).await })
    };
    let mut ips = Vec::new();
    for t in tasks {
        ips.push(t.await.unwrap().unwrap());
    }
    gc.await.unwrap().unwrap();
    // GC ran exclusively, either before or after each ADD: whatever it removed was cached before it.
    for (i, ns) in nss.iter().enumerate() {
        rt.del(&attachment(&format!("c{i}"), &ns.path()))
            .await
            .unwrap();
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 6, "distinct addresses: {ips:?}");
    assert_eq!(w.reservations(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_timeout_and_missing_plugin() {
    let w = World::new(45);
    let bin = w.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let slow = bin.join("slow");
    std::fs::write(&slow, "#!/bin/sh\nexec sleep 30\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.write_conflist(
        "10-slow.conflist",
        json!({"cniVersion": "1.0.0", "name": "slow", "plugins": [{"type": "slow"}]}),
    );
    let rt = CniRuntime::new(w.conf_dir(), vec![bin.clone()], w.cache_dir())
        .with_timeout(Duration::from_millis(300));
    let att = attachment("t", Path::new("/run/netns/none"));
    let started = std::time::Instant::now();
    let e = rt.add(&att).await.unwrap_err();
    assert!(matches!(e, CniError::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));

    w.write_conflist(
        "05-missing.conflist",
        json!({"cniVersion": "1.0.0", "name": "m", "plugins": [{"type": "nope"}]}),
    );
    assert!(matches!(rt.ready(), Err(CniError::PluginNotFound { .. })));
}

#[test]
fn default_conflist_and_ready() {
    let w = World::new(46);
    std::fs::remove_dir_all(w.conf_dir()).unwrap();
    let rt = CniRuntime::new(w.conf_dir(), vec![skiff_cni_dir()], w.cache_dir());
    assert!(matches!(rt.ready(), Err(CniError::NoConfig(_))));
    rt.ensure_default_conflist("10.244.3.0/24", "10.244.0.0/16")
        .unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.conf_dir().join("10-skiff.conflist")).unwrap())
            .unwrap();
    assert_eq!(written["plugins"][0]["ipam"]["subnet"], "10.244.3.0/24");
    assert_eq!(written["plugins"][0]["bridge"], "skiff0");
    rt.ready().unwrap();
    // A second call leaves the existing list alone.
    rt.ensure_default_conflist("10.244.9.0/24", "10.244.0.0/16")
        .unwrap();
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.conf_dir().join("10-skiff.conflist")).unwrap())
            .unwrap();
    assert_eq!(again, written);
    assert!(
        rt.ensure_default_conflist("bogus", "10.244.0.0/16")
            .is_err()
    );
}

/// The production path: pinned pod namespaces, CNI against the pinned netns, teardown.
#[tokio::test(flavor = "multi_thread")]
async fn pinned_sandbox_with_cni() {
    let w = World::new(47);
    let rt = w.skiff_runtime();
    let pod_dir = w.dir.join("pods/uid-47");
    let dir = pod_dir.clone();
    let sb = tokio::task::spawn_blocking(move || sandbox::pin(&dir, "web-47"))
        .await
        .unwrap()
        .unwrap();
    let att = attachment("uid-47", &sb.net);
    let net = rt.add(&att).await.unwrap();
    assert_eq!(
        tcp_roundtrip(&sb.net, net.ips[0], 7047).unwrap(),
        "hello-from-pod"
    );
    rt.del(&att).await.unwrap();
    let dir = pod_dir.clone();
    tokio::task::spawn_blocking(move || sandbox::unpin(&dir))
        .await
        .unwrap()
        .unwrap();
    let mounts =
        String::from_utf8_lossy(&sh("findmnt", &["-rn", "-o", "TARGET"]).stdout).into_owned();
    assert!(
        !mounts.contains(pod_dir.to_str().unwrap()),
        "no mounts left: {mounts}"
    );
    assert!(!pod_dir.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_runtime_add_del() {
    let w = World::new(48);
    let rt = w.skiff_runtime();
    let mut add = Vec::new();
    let mut del = Vec::new();
    for i in 0..10 {
        let ns = Netns::new(&format!("sktest48-{i}"));
        let att = attachment(&format!("b{i}"), &ns.path());
        let t = std::time::Instant::now();
        rt.add(&att).await.unwrap();
        add.push(t.elapsed());
        let t = std::time::Instant::now();
        rt.del(&att).await.unwrap();
        del.push(t.elapsed());
    }
    add.sort();
    del.sort();
    eprintln!(
        "runtime+skiff-cni ADD: min {:?} median {:?} max {:?}",
        add[0], add[5], add[9]
    );
    eprintln!(
        "runtime+skiff-cni DEL: min {:?} median {:?} max {:?}",
        del[0], del[5], del[9]
    );
}

/// The runtime drives skiff-cni at every spec version it supports.
#[tokio::test(flavor = "multi_thread")]
async fn skiff_cni_every_version() {
    let w = World::new(49);
    for (i, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        .iter()
        .enumerate()
    {
        let mut list = w.skiff_list();
        list["cniVersion"] = json!(version);
        w.write_conflist("10-test.conflist", list);
        let rt = CniRuntime::new(w.conf_dir(), vec![skiff_cni_dir()], w.cache_dir());
        let ns = Netns::new(&format!("sktest49-{i}"));
        let att = attachment(&format!("v{i}"), &ns.path());
        let net = rt
            .add(&att)
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(net.result.cni_version, *version);
        assert_eq!(net.ips.len(), 1);
        let cached: serde_json::Value = serde_json::from_slice(
            &std::fs::read(w.cache_dir().join(format!("sktest49-v{i}-eth0"))).unwrap(),
        )
        .unwrap();
        assert_eq!(cached["result"]["cniVersion"], *version);
        // CHECK is skipped below 0.4.0 and runs from then on.
        rt.check(&att)
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        rt.del(&att).await.unwrap();
        assert!(w.cache_files().is_empty());
        assert_eq!(w.reservations(), 0);
    }
}
