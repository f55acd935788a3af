//! host-gw routes: the reconciler against fake Node objects inside throwaway network namespaces that act
//! as the host, asserted with `ip route`; and a TCP connection from "node B" to a "pod" address behind
//! "node A" over the programmed route. Needs root.
//!
//! Netns names `skroute-<pid>-*`, subnets 192.168.77.0/24, 192.168.78.0/24, pod CIDRs 10.244.x.0/24
//! exist only inside those namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use serde_json::json;
use skiff_agent::routes::{self, Route};

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace removed on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("skroute-{}-{tag}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns(name)
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Run `f` on a thread inside this namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    }

    /// skiff's routes (`proto 83`) as `ip route` prints them.
    fn skiff_routes(&self) -> Vec<String> {
        self.ip(&["-4", "route", "show", "proto", "83"])
            .lines()
            .map(|l| l.trim().to_string())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn node(name: &str, cidr: Option<&str>, internal_ip: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr},
        "status": {"addresses": [
            {"type": "Hostname", "address": name},
            {"type": "InternalIP", "address": internal_ip}
        ]}
    }))
    .expect("node")
}

#[test]
fn desired_routes_follow_nodes() {
    let subnets = ["192.168.77.1/24".parse().expect("net")];
    let nodes = [
        node("a", Some("10.244.0.0/24"), "192.168.77.1"),
        node("b", Some("10.244.1.0/24"), "192.168.77.2"),
        node("c", Some("10.244.2.0/24"), "172.31.5.5"),
        node("d", None, "192.168.77.4"),
        node("e", Some("not-a-cidr"), "192.168.77.5"),
        node("f", Some("10.244.1.0/24"), "192.168.77.6"),
        node("same-host", Some("10.244.9.0/24"), "192.168.77.1"),
    ];
    let want = routes::desired(&nodes, "a", &subnets);
    assert_eq!(
        want.routes,
        [Route {
            dst: "10.244.1.0/24".parse().expect("net"),
            via: "192.168.77.2".parse().expect("ip"),
        }]
    );
    assert_eq!(want.unreachable, ["c"]);
}

#[test]
fn routes_are_reconciled_in_the_host_namespace() {
    let host = Netns::new("host");
    // A veth pair inside the namespace stands for the host's uplink (no dummy module here).
    host.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    host.ip(&["addr", "add", "192.168.77.1/24", "dev", "d0"]);
    host.ip(&["link", "set", "d1", "up"]);
    host.ip(&["link", "set", "d0", "up"]);
    // Not ours: must survive every reconcile, and blocks skiff's route to the same CIDR.
    host.ip(&["route", "add", "10.99.0.0/24", "via", "192.168.77.9"]);

    let reconcile =
        |nodes: Vec<Node>| host.run(move || routes::reconcile(&nodes, "a").expect("reconcile"));
    let (want, applied) = reconcile(vec![
        node("a", Some("10.244.0.0/24"), "192.168.77.1"),
        node("b", Some("10.244.1.0/24"), "192.168.77.2"),
        node("c", Some("10.244.2.0/24"), "172.31.5.5"),
        node("d", Some("10.244.3.0/24"), "192.168.77.4"),
        node("x", Some("10.99.0.0/24"), "192.168.77.8"),
    ]);
    assert_eq!(want.unreachable, ["c"]);
    assert_eq!(applied.added.len(), 2);
    assert_eq!(
        applied.failed.len(),
        1,
        "foreign route to 10.99.0.0/24 kept"
    );
    assert_eq!(
        host.skiff_routes(),
        [
            "10.244.1.0/24 via 192.168.77.2 dev d0",
            "10.244.3.0/24 via 192.168.77.4 dev d0"
        ]
    );

    // Unchanged nodes: nothing to do. Node b moves, d leaves.
    let (_, again) = reconcile(vec![
        node("b", Some("10.244.1.0/24"), "192.168.77.2"),
        node("d", Some("10.244.3.0/24"), "192.168.77.4"),
    ]);
    assert!(again.added.is_empty() && again.removed.is_empty());
    let (_, moved) = reconcile(vec![node("b", Some("10.244.1.0/24"), "192.168.77.3")]);
    assert_eq!(moved.removed.len(), 2);
    assert_eq!(
        host.skiff_routes(),
        ["10.244.1.0/24 via 192.168.77.3 dev d0"]
    );

    let (_, gone) = reconcile(Vec::new());
    assert_eq!(gone.removed.len(), 1);
    assert!(host.skiff_routes().is_empty());
    assert!(
        host.ip(&["-4", "route", "show", "10.99.0.0/24"])
            .contains("via 192.168.77.9"),
        "a route skiff did not create is never touched"
    );
}

#[test]
fn pod_behind_node_a_is_reached_from_node_b() {
    let a = Netns::new("a");
    let b = Netns::new("b");
    let veth_b = format!("skrb{}", std::process::id() % 100_000);
    a.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", &veth_b,
    ]);
    a.ip(&["link", "set", &veth_b, "netns", &b.0]);
    a.ip(&["addr", "add", "192.168.78.1/24", "dev", "eth0"]);
    a.ip(&["link", "set", "eth0", "up"]);
    b.ip(&["addr", "add", "192.168.78.2/24", "dev", &veth_b]);
    b.ip(&["link", "set", &veth_b, "up"]);
    // The "pod" address behind node A; A routes replies to B's pod CIDR via B.
    a.ip(&["addr", "add", "10.244.1.5/32", "dev", "lo"]);
    let nodes = vec![
        node("node-a", Some("10.244.1.0/24"), "192.168.78.1"),
        node("node-b", Some("10.244.2.0/24"), "192.168.78.2"),
    ];
    let for_b = nodes.clone();
    let (_, applied) = b.run(move || routes::reconcile(&for_b, "node-b").expect("reconcile b"));
    assert_eq!(applied.added.len(), 1);
    let (_, applied) = a.run(move || routes::reconcile(&nodes, "node-a").expect("reconcile a"));
    assert_eq!(applied.added.len(), 1);

    let listener = a.run(|| TcpListener::bind("10.244.1.5:0").expect("bind in a"));
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().expect("accept");
        conn.write_all(b"pong").expect("write");
        peer
    });
    let reply = b.run(move || {
        let addr = format!("10.244.1.5:{port}").parse().expect("addr");
        let mut conn =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect from b");
        let mut buf = String::new();
        conn.read_to_string(&mut buf).expect("read");
        buf
    });
    assert_eq!(reply, "pong");
    let peer = server.join().expect("server");
    assert_eq!(peer.ip().to_string(), "192.168.78.2");
}
