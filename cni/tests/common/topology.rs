//! Network-namespace topology for root tests, shared by skiff-cni's tests (`common/mod.rs`) and the
//! agent's CNI tests (agent/tests/cni_support, which includes this file by path): throwaway
//! namespaces, a "host" namespace wired to an "outside" one, and TCP servers and clients that run
//! inside a namespace. Uses only std and nix.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::Duration;

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

    /// `ip -n <ns> <args>` stdout (failures give whatever was printed).
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        String::from_utf8_lossy(&sh("ip", &full).stdout).into_owned()
    }

    /// `ip -n <ns> <args>`, which must succeed.
    pub fn ip_ok(&self, args: &[&str]) {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        let out = sh("ip", &full);
        assert!(
            out.status.success(),
            "ip {full:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run a command inside the namespace (`ip netns exec`).
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        sh("ip", &full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.name]);
    }
}

/// A "host" namespace (`sktest<n>-host`, lo up) linked to an "outside" one (`sktest<n>-out`) by a
/// veth: `skout<n>` 10.252.<n>.1/24 on the host, `eth0` 10.252.<n>.2/24 outside. The outside has
/// no route to pod subnets, so it only answers pods that were masqueraded.
pub struct Outside {
    pub n: u8,
    pub host: Netns,
    pub outside: Netns,
}

impl Outside {
    pub fn new(n: u8) -> Outside {
        let host = Netns::new(&format!("sktest{n}-host"));
        let outside = Netns::new(&format!("sktest{n}-out"));
        host.ip_ok(&["link", "set", "lo", "up"]);
        outside.ip_ok(&["link", "set", "lo", "up"]);
        let veth = format!("skout{n}");
        host.ip_ok(&[
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &outside.name,
        ]);
        host.ip_ok(&["addr", "add", &format!("10.252.{n}.1/24"), "dev", &veth]);
        host.ip_ok(&["link", "set", &veth, "up"]);
        outside.ip_ok(&["addr", "add", &format!("10.252.{n}.2/24"), "dev", "eth0"]);
        outside.ip_ok(&["link", "set", "eth0", "up"]);
        Outside { n, host, outside }
    }

    /// The host's address on the outside link.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 252, self.n, 1)
    }

    /// The outside namespace's address.
    pub fn outside_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 252, self.n, 2)
    }
}

/// Move the calling thread into the network namespace at `ns`.
pub fn enter(ns: &Path) {
    let f = std::fs::File::open(ns).unwrap();
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}

/// Accept `count` connections on `port` inside `ns`; each gets `<tag> saw <peer ip>`. Returns once
/// the socket listens.
pub fn serve(ns: PathBuf, port: u16, count: usize, tag: &'static str) -> JoinHandle<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        enter(&ns);
        let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap();
        tx.send(()).unwrap();
        for _ in 0..count {
            let (mut s, peer) = l.accept().unwrap();
            let _ = s.write_all(format!("{tag} saw {}", peer.ip()).as_bytes());
        }
    });
    rx.recv().unwrap();
    h
}

/// Connect from inside `ns` and read the whole answer.
pub fn fetch(ns: &Path, ip: Ipv4Addr, port: u16) -> Result<String, String> {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        enter(&ns);
        connect_read(IpAddr::V4(ip), port)
    })
    .join()
    .unwrap()
}

fn connect_read(ip: IpAddr, port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(3))
        .map_err(|e| format!("connect {ip}:{port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Serve one TCP connection inside `netns` (it answers `hello-from-pod`) and connect to it from
/// the calling thread's namespace: proves host → pod reachability.
pub fn tcp_roundtrip(netns: &Path, ip: IpAddr, port: u16) -> Result<String, String> {
    let ns = netns.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let server = std::thread::spawn(move || -> Result<(), String> {
        let f = std::fs::File::open(&ns).map_err(|e| e.to_string())?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
        let l = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
            Ok(l) => {
                let _ = tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return Err(e.to_string());
            }
        };
        let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
        s.write_all(b"hello-from-pod").map_err(|e| e.to_string())
    });
    rx.recv().map_err(|e| e.to_string())??;
    let answer = connect_read(ip, port)?;
    server.join().map_err(|_| "server panicked".to_string())??;
    Ok(answer)
}
