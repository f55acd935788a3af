//! Shared helpers for the root tests: per-test bridges/subnets/nft tables/IPAM dirs that are
//! removed on drop and running the plugin binary; namespaces and TCP helpers are in `topology.rs`
//! (shared with the agent's CNI tests).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

mod topology;
pub use topology::*;

pub const ALL_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (netns, links, nftables)"
    );
}

/// One test's network: bridge `sktest<n>`, subnet 10.251.<n>.0/24, nft table `sktest<n>`, IPAM dir
/// in a temp dir. Everything is removed on drop.
pub struct TestNet {
    pub n: u8,
    pub name: String,
    pub bridge: String,
    pub table: String,
    pub data_dir: PathBuf,
}

impl TestNet {
    pub fn new(n: u8) -> TestNet {
        require_root();
        let t = TestNet {
            n,
            name: format!("sktest{n}"),
            bridge: format!("sktest{n}"),
            table: format!("sktest{n}"),
            data_dir: std::env::temp_dir()
                .join(format!("skiff-cni-test-{n}-{}", std::process::id())),
        };
        t.cleanup();
        t
    }

    pub fn subnet(&self) -> String {
        format!("10.251.{}.0/24", self.n)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 251, self.n, 1)
    }

    /// The plugin config (not a list) as a runtime would send it.
    pub fn conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version, "name": self.name, "type": "skiff-cni",
            "bridge": self.bridge, "isGateway": true, "ipMasq": true,
            "clusterCIDR": "10.251.0.0/16", "nftTable": self.table,
            "ipam": {"subnet": self.subnet(), "dataDir": self.data_dir},
            "someUnknownKey": {"passes": "through"}
        })
    }

    /// host-local's layout: `<dataDir>/<network name>/<ip>`.
    pub fn ipam_dir(&self) -> PathBuf {
        self.data_dir.join(&self.name)
    }

    pub fn reservations(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.ipam_dir())
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| n.parse::<Ipv4Addr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn cleanup(&self) {
        let _ = sh("ip", &["link", "del", &self.bridge]);
        let _ = sh("nft", &["delete", "table", "ip", &self.table]);
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The plugin's answer.
pub struct Run {
    pub ok: bool,
    pub json: Option<Value>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn code(&self) -> u64 {
        self.json
            .as_ref()
            .and_then(|j| j["code"].as_u64())
            .unwrap_or(0)
    }
}

pub fn plugin_bin() -> &'static str {
    env!("CARGO_BIN_EXE_skiff-cni")
}

/// Run the plugin with the given CNI_* variables and raw stdin.
pub fn run_raw(vars: &[(&str, &str)], stdin: &[u8]) -> Run {
    let mut cmd = Command::new(plugin_bin());
    for k in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = std::time::Instant::now();
    let mut child = cmd.spawn().expect("spawn skiff-cni");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait skiff-cni");
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        ok: out.status.success(),
        json: serde_json::from_str(stdout.trim()).ok(),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed,
    }
}

pub fn run(command: &str, id: &str, netns: Option<&Path>, conf: &Value) -> Run {
    let ns = netns
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut vars = vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    if netns.is_some() {
        vars.push(("CNI_NETNS", ns.as_str()));
    }
    run_raw(&vars, conf.to_string().as_bytes())
}

/// Assert success and return the JSON.
pub fn ok(r: Run) -> Value {
    assert!(
        r.ok,
        "plugin failed: stdout={} stderr={}",
        r.stdout, r.stderr
    );
    r.json.unwrap_or(Value::Null)
}

/// The pod address of a result (first ips[] entry, without the prefix).
pub fn result_ip(result: &Value) -> Ipv4Addr {
    let a = result["ips"][0]["address"]
        .as_str()
        .expect("ips[0].address");
    a.split('/')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("an IPv4 address")
}

/// Run the plugin inside the host namespace (as a runtime on that "host" would).
pub fn run_in_host(host: &Netns, command: &str, id: &str, pod: &Path, conf: &Value) -> Run {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &host.name, plugin_bin()])
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", pod)
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        ok: out.status.success(),
        json: serde_json::from_str(stdout.trim()).ok(),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: Duration::ZERO,
    }
}
