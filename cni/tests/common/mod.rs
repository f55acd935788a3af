//! Shared helpers for the root tests: throwaway network namespaces, per-test bridges/subnets/nft
//! tables/IPAM dirs that are removed on drop, running the plugin binary, and TCP into a netns.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const ALL_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (netns, links, nftables)"
    );
}

pub fn sh(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"))
}

/// A network namespace created with `ip netns add`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        let _ = sh("ip", &["netns", "del", name]);
        let out = sh("ip", &["netns", "add", name]);
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Netns {
            name: name.to_string(),
        }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// `ip -n <ns> <args>` stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        String::from_utf8_lossy(&sh("ip", &full).stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.name]);
    }
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

/// Serve one TCP connection inside `netns` (socket created after setns, so it lives there) and
/// connect to it from the host: proves host → pod reachability through the bridge.
pub fn tcp_roundtrip(netns: &Path, ip: Ipv4Addr, port: u16) -> Result<String, String> {
    let ns = std::fs::File::open(netns).map_err(|e| e.to_string())?;
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let server = std::thread::spawn(move || -> Result<(), String> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
        let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(|e| e.to_string());
        let l = match l {
            Ok(l) => {
                let _ = tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
        s.write_all(b"hello-from-pod").map_err(|e| e.to_string())
    });
    rx.recv().map_err(|e| e.to_string())??;
    let mut s = TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    server.join().map_err(|_| "server panicked".to_string())??;
    Ok(buf)
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
