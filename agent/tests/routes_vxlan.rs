//! The VXLAN overlay: two "nodes" as network namespaces in different subnets joined by a router
//! namespace (so host-gw is impossible; the router knows no pod CIDR), programmed by the routes
//! reconciler from Node values; a TCP connection from a pod address on node A to a listener on a pod
//! address on node B, without NAT; and removal of everything for a Node that goes away. Needs root.
//!
//! Netns names `skvx-<pid>-*`; subnets 192.168.81.0/24, 192.168.82.0/24 and pod CIDRs 10.244.x.0/24
//! exist only inside those namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, sockopt};
use nix::sys::time::TimeVal;
use serde_json::json;
use skiff_agent::routes::{self, Backend, Mode, vxlan};
use support::TempDir;
use support::cluster::wait_until;

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
        let name = format!("skvx-{}-{tag}", std::process::id());
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

    fn cmd(&self, prog: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.0.as_str(), prog];
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

    fn lines(&self, args: &[&str]) -> Vec<String> {
        self.ip(args)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    fn reconcile(
        &self,
        nodes: &[Node],
        me: &str,
        mode: Mode,
    ) -> (routes::Desired, routes::Applied) {
        let nodes = nodes.to_vec();
        let me = me.to_string();
        self.run(move || routes::reconcile_mode(&nodes, &me, mode).expect("reconcile"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn node(name: &str, cidr: &str, internal_ip: &str, mac: Option<&str>) -> Node {
    let annotations = match mac {
        Some(m) => json!({ vxlan::MAC_ANNOTATION: m }),
        None => json!({}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"podCIDR": cidr},
        "status": {"addresses": [{"type": "InternalIP", "address": internal_ip}]}
    }))
    .expect("node")
}

#[test]
fn auto_mode_picks_host_gw_on_a_shared_link_and_vxlan_otherwise() {
    let subnets = [
        "192.168.81.2/24".parse().expect("net"),
        "10.0.0.5/16".parse().expect("net"),
    ];
    let ip = |s: &str| s.parse::<Ipv4Addr>().expect("ip");
    assert_eq!(
        routes::backend(ip("192.168.81.9"), &subnets, Mode::Auto),
        Backend::HostGw
    );
    assert_eq!(
        routes::backend(ip("10.0.200.1"), &subnets, Mode::Auto),
        Backend::HostGw
    );
    assert_eq!(
        routes::backend(ip("192.168.82.2"), &subnets, Mode::Auto),
        Backend::Vxlan
    );
    assert_eq!(
        routes::backend(ip("192.168.81.2"), &subnets, Mode::Auto),
        Backend::SameHost
    );
    assert_eq!(
        routes::backend(ip("192.168.81.9"), &subnets, Mode::Vxlan),
        Backend::Vxlan
    );
    assert_eq!(
        routes::backend(ip("127.0.0.1"), &subnets, Mode::Vxlan),
        Backend::SameHost
    );
    assert_eq!(
        routes::backend(ip("192.168.82.2"), &subnets, Mode::HostGw),
        Backend::Unreachable
    );

    let mac = "02:42:ac:11:00:02";
    let nodes = [
        node("a", "10.244.1.0/24", "192.168.81.2", None),
        node("near", "10.244.3.0/24", "192.168.81.3", Some(mac)),
        node("far", "10.244.2.0/24", "192.168.82.2", Some(mac)),
        node("far-no-mac", "10.244.4.0/24", "192.168.83.2", None),
        node(
            "far-bad-mac",
            "10.244.5.0/24",
            "192.168.83.3",
            Some("ff:ff:ff:ff:ff:ff"),
        ),
    ];
    let want = routes::desired_mode(&nodes, "a", &subnets, Mode::Auto);
    assert_eq!(want.routes.len(), 1);
    assert_eq!(want.routes[0].dst.to_string(), "10.244.3.0/24");
    assert_eq!(want.vxlan.len(), 1);
    assert_eq!(want.vxlan[0].cidr.to_string(), "10.244.2.0/24");
    assert_eq!(want.vxlan[0].gateway(), ip("10.244.2.0"));
    assert_eq!(want.vxlan[0].vtep, ip("192.168.82.2"));
    assert_eq!(want.unreachable, ["far-bad-mac", "far-no-mac"]);
    assert_eq!(want.local.map(|l| l.ip), Some(ip("192.168.81.2")));

    let all_vxlan = routes::desired_mode(&nodes, "a", &subnets, Mode::Vxlan);
    assert!(all_vxlan.routes.is_empty());
    assert_eq!(all_vxlan.vxlan.len(), 2);
    let host_gw = routes::desired_mode(&nodes, "a", &subnets, Mode::HostGw);
    assert!(host_gw.vxlan.is_empty() && host_gw.local.is_none());
    assert_eq!(host_gw.unreachable.len(), 3);

    assert_eq!(
        vxlan::parse_mac("02:42:AC:11:00:02"),
        Some([2, 0x42, 0xac, 0x11, 0, 2])
    );
    for bad in [
        "",
        "02:42:ac:11:00",
        "02:42:ac:11:00:02:03",
        "01:00:5e:00:00:01",
        "zz:42:ac:11:00:02",
    ] {
        assert_eq!(vxlan::parse_mac(bad), None, "{bad}");
    }
}

/// A TCP connection from `src` (bound first: a pod address, not the device's) to `dst`.
fn connect_from(src: Ipv4Addr, dst: SocketAddrV4) -> std::io::Result<TcpStream> {
    let fd: OwnedFd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let timeout = TimeVal::new(5, 0);
    socket::setsockopt(&fd, sockopt::SendTimeout, &timeout)?;
    socket::setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)?;
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(src, 0)),
    )?;
    socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(dst))?;
    Ok(TcpStream::from(fd))
}

#[test]
fn pods_on_nodes_without_a_shared_link_talk_over_vxlan() {
    // The "pods": an address inside each node's pod CIDR, on a bridge like the CNI's.
    let (_r, a, b) = routed_pair("p", 81, "10.244.1.5", "10.244.2.5");

    // First pass: no node has published its MAC yet; both create their device.
    let bare = [
        node("node-a", "10.244.1.0/24", "192.168.81.2", None),
        node("node-b", "10.244.2.0/24", "192.168.82.2", None),
    ];
    let (want_a, applied_a) = a.reconcile(&bare, "node-a", Mode::Auto);
    assert!(want_a.routes.is_empty(), "no shared link: no host-gw route");
    assert_eq!(want_a.unreachable, ["node-b"]);
    let (_, applied_b) = b.reconcile(&bare, "node-b", Mode::Auto);
    let mac_a = applied_a.overlay.mac.expect("device on a");
    let mac_b = applied_b.overlay.mac.expect("device on b");
    let details = a.ip(&["-d", "link", "show", vxlan::DEVICE]);
    for want in [
        "vxlan id 1 ",
        "local 192.168.81.2 ",
        "dstport 8472 ",
        "nolearning",
        "mtu 1450 ",
    ] {
        assert!(details.contains(want), "{want:?} in {details}");
    }
    assert!(
        a.ip(&["-4", "addr", "show", "dev", vxlan::DEVICE])
            .contains("10.244.1.0/32")
    );

    // The agents published their MACs.
    let nodes = [
        node("node-a", "10.244.1.0/24", "192.168.81.2", Some(&mac_a)),
        node("node-b", "10.244.2.0/24", "192.168.82.2", Some(&mac_b)),
    ];
    let (want, applied) = a.reconcile(&nodes, "node-a", Mode::Auto);
    assert!(want.unreachable.is_empty());
    assert_eq!(applied.overlay.added.len(), 1, "{applied:?}");
    assert!(applied.added.is_empty() && applied.overlay.failed.is_empty());
    let (_, applied) = b.reconcile(&nodes, "node-b", Mode::Auto);
    assert_eq!(applied.overlay.added.len(), 1, "{applied:?}");
    assert_eq!(
        a.lines(&["-4", "route", "show", "proto", "84"]),
        ["10.244.2.0/24 via 10.244.2.0 dev skiff.vxlan onlink"]
    );
    assert!(a.lines(&["-4", "route", "show", "proto", "83"]).is_empty());
    assert_eq!(
        a.lines(&["neigh", "show", "dev", vxlan::DEVICE]),
        [format!("10.244.2.0 lladdr {mac_b} PERMANENT")]
    );
    let fdb = a.cmd("bridge", &["fdb", "show", "dev", vxlan::DEVICE]);
    assert!(
        fdb.contains(&format!("{mac_b} dst 192.168.82.2 self permanent")),
        "{fdb}"
    );

    // Unchanged nodes: nothing to do.
    let (_, again) = a.reconcile(&nodes, "node-a", Mode::Auto);
    assert!(
        again.overlay.added.is_empty() && again.overlay.removed.is_empty(),
        "{again:?}"
    );

    // Pod on A → pod on B, source address kept (no NAT).
    let listener = b.run(|| TcpListener::bind("10.244.2.5:0").expect("bind in b"));
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().expect("accept");
        conn.write_all(b"pong").expect("write");
        peer
    });
    let reply = a.run(move || {
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 244, 2, 5), port);
        let mut conn = connect_from(Ipv4Addr::new(10, 244, 1, 5), dst).expect("connect from a");
        let mut buf = String::new();
        conn.read_to_string(&mut buf).expect("read");
        buf
    });
    assert_eq!(reply, "pong");
    let peer = server.join().expect("server");
    assert_eq!(peer.ip().to_string(), "10.244.1.5");

    // Node C shares A's link: host-gw in auto mode; forcing vxlan moves its CIDR to the overlay in one
    // pass, and back.
    let mut with_c = nodes.to_vec();
    with_c.push(node(
        "node-c",
        "10.244.3.0/24",
        "192.168.81.3",
        Some("02:00:00:00:00:03"),
    ));
    a.reconcile(&with_c, "node-a", Mode::Auto);
    let host_gw = ["10.244.3.0/24 via 192.168.81.3 dev eth0"];
    assert_eq!(a.lines(&["-4", "route", "show", "proto", "83"]), host_gw);
    let (_, moved) = a.reconcile(&with_c, "node-a", Mode::Vxlan);
    assert!(
        moved.overlay.failed.is_empty() && moved.failed.is_empty(),
        "{moved:?}"
    );
    assert!(a.lines(&["-4", "route", "show", "proto", "83"]).is_empty());
    assert_eq!(
        a.lines(&["-4", "route", "show", "proto", "84"]),
        [
            "10.244.2.0/24 via 10.244.2.0 dev skiff.vxlan onlink",
            "10.244.3.0/24 via 10.244.3.0 dev skiff.vxlan onlink"
        ]
    );
    let (_, back) = a.reconcile(&with_c, "node-a", Mode::Auto);
    assert!(
        back.overlay.failed.is_empty() && back.failed.is_empty(),
        "{back:?}"
    );
    assert_eq!(back.overlay.removed.len(), 3, "{back:?}");
    assert_eq!(a.lines(&["-4", "route", "show", "proto", "83"]), host_gw);

    // Node B leaves: its route, neighbour and FDB entry go.
    let (_, gone) = a.reconcile(&nodes[..1], "node-a", Mode::Auto);
    assert_eq!(gone.overlay.removed.len(), 3, "{gone:?}");
    assert!(a.lines(&["-4", "route", "show", "proto", "84"]).is_empty());
    assert!(a.lines(&["neigh", "show", "dev", vxlan::DEVICE]).is_empty());
    let fdb = a.cmd("bridge", &["fdb", "show", "dev", vxlan::DEVICE]);
    assert!(!fdb.contains(&mac_b), "{fdb}");

    // host-gw mode removes the device.
    a.reconcile(&nodes, "node-a", Mode::HostGw);
    let links = a.ip(&["link", "show"]);
    assert!(!links.contains(vxlan::DEVICE), "{links}");
}

/// Two netns-nodes on different subnets joined by a router, the router network: the three namespaces,
/// node A 192.168.<n>.2, node B 192.168.<n+1>.2, router .1 on both. `pod_a`/`pod_b` are /24 addresses on a bridge `pods` of each node.
fn routed_pair(tag: &str, n: u8, pod_a: &str, pod_b: &str) -> (Netns, Netns, Netns) {
    let r = Netns::new(&format!("{tag}r"));
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    let m = n + 1;
    r.ip(&[
        "link", "add", "ra", "type", "veth", "peer", "name", "eth0", "netns", &a.0,
    ]);
    r.ip(&[
        "link", "add", "rb", "type", "veth", "peer", "name", "eth0", "netns", &b.0,
    ]);
    r.ip(&["addr", "add", &format!("192.168.{n}.1/24"), "dev", "ra"]);
    r.ip(&["addr", "add", &format!("192.168.{m}.1/24"), "dev", "rb"]);
    r.ip(&["link", "set", "ra", "up"]);
    r.ip(&["link", "set", "rb", "up"]);
    r.cmd("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    for (ns, net, pod) in [(&a, n, pod_a), (&b, m, pod_b)] {
        ns.ip(&["addr", "add", &format!("192.168.{net}.2/24"), "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&[
            "route",
            "add",
            "default",
            "via",
            &format!("192.168.{net}.1"),
        ]);
        ns.ip(&["link", "add", "pods", "type", "bridge"]);
        ns.ip(&["addr", "add", &format!("{pod}/24"), "dev", "pods"]);
        ns.ip(&["link", "set", "pods", "up"]);
    }
    (r, a, b)
}

/// A thread inside `ns` running `fut` on its own runtime until the returned sender is dropped or fires.
fn run_in<F>(
    ns: &Netns,
    fut: impl FnOnce() -> F + Send + 'static,
) -> (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
)
where
    F: std::future::Future<Output = ()> + 'static,
{
    let path = format!("/run/netns/{}", ns.0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        // Built on this thread: its blocking threads are spawned from here, in this namespace.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            tokio::select! {
                () = fut() => {}
                _ = stopped => {}
            }
        });
    });
    (stop, thread)
}

async fn node_client(kubeconfig: std::path::PathBuf) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

/// The agents' route loops against a real skiff-apiserver (in the router namespace): each publishes
/// its MAC, the overlay follows the Node objects as they join and leave.
#[test]
fn overlay_follows_nodes_from_the_api_server() {
    support::require_root();
    let (r, a, b) = routed_pair("e", 91, "10.246.0.5", "10.246.1.5");
    let dir = TempDir::new("routes-vxlan");
    let data_dir = dir.join("apiserver");
    let port = 16443;
    let cfg = skiff_apiserver::ServeConfig {
        data_dir: data_dir.clone(),
        bind_address: "0.0.0.0".parse().expect("ip"),
        secure_port: port,
        advertise_address: "192.168.91.1".parse().expect("ip"),
        cluster_cidr: "10.246.0.0/16".parse().expect("net"),
        node_cidr_mask: 24,
        service_cidr: "10.98.0.0/16".parse().expect("net"),
        // The agents of these tests serve no cluster DNS.
        cluster_dns: None,
        token_auth_file: None,
    };
    let (stop_server, server) = run_in(&r, move || async move {
        if let Err(e) = skiff_apiserver::run(cfg).await {
            panic!("apiserver: {e:#}");
        }
    });
    let admin = data_dir.join("admin.kubeconfig");
    let kubectl = |args: &[&str], stdin: Option<&str>| -> String {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &r.0, "kubectl", "--kubeconfig"])
            .arg(&admin)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until("the API server listens", Duration::from_secs(30), || {
        admin.exists() && r.run(move || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    });

    // The nodes join (what the agent's node module does), each with its own credentials.
    let pki = skiff_apiserver::pki::Pki::load_or_create(&data_dir).expect("pki");
    let mut agents = Vec::new();
    for (ns, name, ip) in [
        (&a, "node-a", "192.168.91.2"),
        (&b, "node-b", "192.168.92.2"),
    ] {
        kubectl(
            &["create", "-f", "-"],
            Some(
                &json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name}})
                .to_string(),
            ),
        );
        let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
        kubectl(
            &[
                "patch",
                "node",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ],
            None,
        );
        let kc = dir.join(format!("{name}.kubeconfig"));
        pki.write_kubeconfig(
            &kc,
            &format!("https://192.168.91.1:{port}"),
            &format!("system:node:{name}"),
            &["system:nodes".to_string()],
        )
        .expect("node kubeconfig");
        let name = name.to_string();
        agents.push(run_in(ns, move || async move {
            let client = node_client(kc).await;
            routes::run_mode(client, name, Mode::Auto).await;
        }));
    }
    // IPAM gives node-a 10.246.0.0/24 and node-b 10.246.1.0/24 (in creation order).
    let cidr = |n: &str| kubectl(&["get", "node", n, "-o", "jsonpath={.spec.podCIDR}"], None);
    assert_eq!(cidr("node-a"), "10.246.0.0/24");
    assert_eq!(cidr("node-b"), "10.246.1.0/24");

    let jsonpath = "jsonpath={.metadata.annotations.skiff\\.io/vxlan-mac}";
    let mac = |n: &str| kubectl(&["get", "node", n, "-o", jsonpath], None);
    wait_until(
        "both agents publish their MAC",
        Duration::from_secs(30),
        || !mac("node-a").is_empty() && !mac("node-b").is_empty(),
    );
    let mac_b = mac("node-b");
    let dev_b = b.ip(&["link", "show", vxlan::DEVICE]);
    assert!(dev_b.contains(&mac_b), "{mac_b} published for {dev_b}");
    // The resync is 60 s; the MAC annotation arrives as a Node change and triggers the reconcile.
    wait_until(
        "the overlay to B is programmed on A",
        Duration::from_secs(30),
        || {
            a.lines(&["-4", "route", "show", "proto", "84"])
                == ["10.246.1.0/24 via 10.246.1.0 dev skiff.vxlan onlink"]
        },
    );
    wait_until(
        "the overlay to A is programmed on B",
        Duration::from_secs(30),
        || {
            b.lines(&["-4", "route", "show", "proto", "84"])
                == ["10.246.0.0/24 via 10.246.0.0 dev skiff.vxlan onlink"]
        },
    );

    let listener = b.run(|| TcpListener::bind("10.246.1.5:0").expect("bind in b"));
    let lport = listener.local_addr().expect("addr").port();
    let accepted = std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().expect("accept");
        conn.write_all(b"pong").expect("write");
        peer
    });
    let reply = a.run(move || {
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 246, 1, 5), lport);
        let mut conn = connect_from(Ipv4Addr::new(10, 246, 0, 5), dst).expect("connect from a");
        let mut buf = String::new();
        conn.read_to_string(&mut buf).expect("read");
        buf
    });
    assert_eq!(reply, "pong");
    assert_eq!(
        accepted.join().expect("server").ip().to_string(),
        "10.246.0.5"
    );

    // Node B leaves: A drops its route, neighbour and FDB entry.
    kubectl(&["delete", "node", "node-b"], None);
    wait_until("A forgets B", Duration::from_secs(30), || {
        a.lines(&["-4", "route", "show", "proto", "84"]).is_empty()
            && a.lines(&["neigh", "show", "dev", vxlan::DEVICE]).is_empty()
            && !a
                .cmd("bridge", &["fdb", "show", "dev", vxlan::DEVICE])
                .contains(&mac_b)
    });

    for (stop, thread) in agents {
        let _ = stop.send(());
        thread.join().expect("agent thread");
    }
    let _ = stop_server.send(());
    server.join().expect("server thread");
}
