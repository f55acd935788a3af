//! The agent's CNI runtime with host ports (`portMappings` capability) and GC of live
//! attachments, against skiff-cni and against Debian's reference bridge + host-local + portmap.
//! Each test runs the runtime (and so every plugin it starts) on a thread inside a throwaway
//! "host" network namespace, so the machine's own firewall is never touched. Needs root.
//!
//! Each test owns bridge `sktest<N>` (N = 60..), subnet 10.251.<N>.0/24, netns names
//! `sktest<N>-*` and a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cni_support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use cni_support::*;
use serde_json::json;
use skiff_agent::cni::{Attachment, CniRuntime, PortMapping};

struct World {
    dir: PathBuf,
    net: Outside,
}

impl World {
    /// A host namespace with `lo` up and an "outside" namespace at 10.252.<n>.2 behind 10.252.<n>.1.
    fn new(n: u8) -> World {
        assert!(nix::unistd::geteuid().is_root(), "needs root");
        let dir = std::env::temp_dir().join(format!("skiff-cniports-{n}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("net.d")).unwrap();
        World {
            dir,
            net: Outside::new(n),
        }
    }
    fn host(&self) -> &Netns {
        &self.net.host
    }
    fn outside(&self) -> &Netns {
        &self.net.outside
    }
    fn host_ip(&self) -> Ipv4Addr {
        self.net.host_ip()
    }
    fn runtime(&self, bins: Vec<PathBuf>) -> CniRuntime {
        CniRuntime::new(self.dir.join("net.d"), bins, self.dir.join("results"))
    }
    fn write_conflist(&self, v: serde_json::Value) {
        std::fs::write(self.dir.join("net.d/10-test.conflist"), v.to_string()).unwrap();
    }
    fn cache_files(&self) -> usize {
        std::fs::read_dir(self.dir.join("results"))
            .map(|rd| rd.count())
            .unwrap_or(0)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn attachment(id: &str, netns: &Path, ports: &[(u16, u16)]) -> Attachment {
    Attachment {
        container_id: id.to_string(),
        netns: netns.to_path_buf(),
        ifname: "eth0".into(),
        args: vec![
            ("K8S_POD_NAMESPACE".into(), "default".into()),
            ("K8S_POD_NAME".into(), id.into()),
            ("K8S_POD_UID".into(), id.into()),
        ],
        port_mappings: ports
            .iter()
            .map(|(h, c)| PortMapping {
                host_port: *h,
                container_port: *c,
                protocol: "tcp".into(),
                host_ip: String::new(),
            })
            .collect(),
    }
}

/// hostPort from the outside, from the host's 127.0.0.1 and removal on DEL, with `chain` as the
/// network's plugin list.
fn host_ports(n: u8, plugins: serde_json::Value, bins: Vec<PathBuf>) {
    let skiff = plugins[0]["type"] == "skiff-cni";
    let w = World::new(n);
    w.write_conflist(
        json!({"cniVersion": "1.0.0", "name": format!("sktest{n}"), "plugins": plugins}),
    );
    let pod = Netns::new(&format!("sktest{n}-pod"));
    let port = 18000 + u16::from(n);
    let att = attachment("hp", &pod.path(), &[(port, 80)]);
    let rt = std::sync::Arc::new(w.runtime(bins));
    let (rt2, att2) = (rt.clone(), att.clone());
    let net = in_netns(
        &w.host().path(),
        move || async move { rt2.add(&att2).await },
    )
    .unwrap_or_else(|e| panic!("ADD: {e}"));
    let cached: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.dir.join(format!("results/sktest{n}-hp-eth0"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        cached["capabilityArgs"]["portMappings"][0]["hostPort"], port,
        "libcni's capabilityArgs in the cache"
    );
    let s = serve(pod.path(), 80, 2, "pod");
    let from_outside = fetch(&w.outside().path(), w.host_ip(), port).unwrap();
    assert_eq!(from_outside, format!("pod saw 10.252.{n}.2"));
    let local = fetch(&w.host().path(), Ipv4Addr::LOCALHOST, port).unwrap();
    assert!(
        local.starts_with("pod saw 10.251."),
        "localhost hostPort: {local}"
    );
    s.join().unwrap();
    assert!(!net.ips.is_empty());

    // CHECK through the runtime: the cached capabilityArgs reach the plugins as runtimeConfig.
    let check = |rt: &std::sync::Arc<CniRuntime>| {
        let (rt, att) = (rt.clone(), att.clone());
        in_netns(
            &w.host().path(),
            move || async move { rt.check(&att).await },
        )
    };
    match check(&rt) {
        Ok(()) => {}
        // Debian's portmap (1.1.1) CHECK looks for ip6tables rules of an IPv4-only attachment:
        // containernetworking/plugins#819. The runtime reports the plugin's error as it is.
        Err(e) if !skiff && format!("{e:#}").contains("portmap CHECK failed") => {
            assert!(format!("{e:#}").contains("ipv6"), "{e:#}");
        }
        Err(e) => panic!("CHECK after ADD: {e:#}"),
    }
    if skiff {
        // Someone deletes the DNAT rule: skiff-cni's CHECK names it.
        let table = format!("sktest{n}");
        let out = w
            .host()
            .exec(&["nft", "-a", "list", "chain", "ip", &table, "hostports"]);
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let handle = listing
            .lines()
            .find(|l| l.contains(&format!("dport {port} ")))
            .and_then(|l| l.rsplit_once("# handle "))
            .map(|(_, h)| h.trim().to_string())
            .unwrap_or_else(|| panic!("no DNAT rule for {port}:\n{listing}"));
        let out = w.host().exec(&[
            "nft",
            "delete",
            "rule",
            "ip",
            &table,
            "hostports",
            "handle",
            &handle,
        ]);
        assert!(out.status.success());
        let err = check(&rt).expect_err("CHECK without the DNAT rule");
        assert!(
            format!("{err:#}").contains(&format!("DNAT rule for tcp {port} -> ")),
            "CHECK names the missing rule: {err:#}"
        );
    }

    // DEL without the port mappings in hand (an orphan teardown): the cached capabilityArgs serve.
    let bare = Attachment {
        port_mappings: Vec::new(),
        ..att
    };
    in_netns(&w.host().path(), move || async move { rt.del(&bare).await }).unwrap();
    assert_eq!(w.cache_files(), 0);
    assert!(
        fetch(&w.outside().path(), w.host_ip(), port).is_err(),
        "host port closed after DEL"
    );
}

#[test]
fn host_ports_skiff_cni() {
    let n = 60;
    host_ports(
        n,
        json!([{"type": "skiff-cni", "bridge": format!("sktest{n}"), "isGateway": true, "ipMasq": true,
                "nftTable": format!("sktest{n}"), "capabilities": {"portMappings": true},
                "ipam": {"type": "host-local", "subnet": format!("10.251.{n}.0/24"),
                         "dataDir": std::env::temp_dir().join(format!("skiff-cniports-{n}-{}/ipam", std::process::id()))}}]),
        vec![skiff_cni_dir()],
    );
}

/// The same agent code drives Debian's reference plugins, portmap included.
#[test]
fn host_ports_reference_bridge_host_local_portmap() {
    let n = 61;
    host_ports(
        n,
        json!([{"type": "bridge", "bridge": format!("sktest{n}"), "isGateway": true, "isDefaultGateway": true,
                "ipMasq": true, "hairpinMode": true,
                "ipam": {"type": "host-local", "subnet": format!("10.251.{n}.0/24"),
                         "dataDir": std::env::temp_dir().join(format!("skiff-cniports-{n}-{}/ipam", std::process::id()))}},
               {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]),
        vec!["/usr/lib/cni".into()],
    );
}

/// The agent's GC: live attachments are the pinned pod sandboxes under `<run-dir>/pods`.
#[test]
fn gc_live_keeps_pinned_pods() {
    let n = 62;
    let w = World::new(n);
    w.write_conflist(json!({"cniVersion": "1.1.0", "name": format!("sktest{n}"), "plugins": [
        {"type": "skiff-cni", "bridge": format!("sktest{n}"), "isGateway": true, "nftTable": format!("sktest{n}"),
         "ipam": {"subnet": format!("10.251.{n}.0/24"), "dataDir": w.dir.join("ipam")}}]}));
    let pods = w.dir.join("pods");
    std::fs::create_dir_all(pods.join("live")).unwrap();
    let a = Netns::new(&format!("sktest{n}-a"));
    let b = Netns::new(&format!("sktest{n}-b"));
    let rt = std::sync::Arc::new(w.runtime(vec![skiff_cni_dir()]));
    let (live, dead) = (
        attachment("live", &a.path(), &[]),
        attachment("dead", &b.path(), &[]),
    );
    let (rt2, l2, d2) = (rt.clone(), live.clone(), dead.clone());
    let ipam = w.dir.join(format!("ipam/sktest{n}"));
    in_netns(&w.host().path(), move || async move {
        rt2.add(&l2).await.unwrap();
        rt2.add(&d2).await.unwrap();
        rt2.status().await.unwrap();
        let found = skiff_agent::cni::live_attachments(&pods).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].container_id, "live");
        rt2.gc_live(&pods).await.unwrap();
        rt2.del(&l2).await.unwrap();
    });
    assert_eq!(w.cache_files(), 0);
    let left = std::fs::read_dir(&ipam)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_str().is_some_and(|s| s.starts_with("10.")))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "GC released the dead pod, DEL the live one");
}
