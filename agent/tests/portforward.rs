//! `kubectl port-forward` end to end: real kubectl 1.32 → skiff-apiserver (in this process) → the agent's
//! `/portForward` (the real `skiff-agent` binary) → a busybox httpd in a pod with its own network
//! namespace. Both of kubectl's transports are driven: SPDY tunnelled in WebSocket (the default since
//! 1.31) and the SPDY/3.1 upgrade (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`).
//!
//! The pod network comes from Debian's reference `bridge` + `host-local` plugins on this test's own bridge
//! `skpf77` and subnet 10.246.77.0/24, without masquerading (nothing leaves the host); the bridge is
//! removed at the end. Needs root.

mod support;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::cluster::{self, Cluster, Kubectl, PodCleanup, Setup, tail};
use support::{TempDir, free_port};

const BRIDGE: &str = "skpf77";

fn bridge_args(dir: &TempDir) -> Vec<OsString> {
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "skpf77-net",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "subnet": "10.246.77.0/24",
                      "dataDir": dir.join("ipam")}}
        ]
    });
    let net_d = dir.join("net.d");
    std::fs::create_dir_all(&net_d).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(net_d.join("50-bridge.conflist"), conflist.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    vec![
        "--container-log-dir".into(),
        dir.join("containers").into_os_string(),
    ]
}

/// Removes the test's bridge at the end (the bridge plugin leaves it behind).
struct BridgeCleanup;

impl Drop for BridgeCleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", BRIDGE])
            .stderr(Stdio::null())
            .status();
    }
}

/// A running `kubectl port-forward`, its output lines on channels; killed on drop.
struct Forward {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
}

impl Forward {
    fn start(k: &Kubectl, ports: &[String], websocket: bool) -> Self {
        let mut args = vec!["port-forward", "pod/web"];
        args.extend(ports.iter().map(String::as_str));
        let mut cmd = k.cmd(&args);
        if !websocket {
            cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
        }
        let mut child = cmd
            .arg("-v=4")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("kubectl port-forward: {e}"));
        let lines = |r: Box<dyn Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let out = lines(Box::new(
            child.stdout.take().unwrap_or_else(|| panic!("stdout")),
        ));
        let err = lines(Box::new(
            child.stderr.take().unwrap_or_else(|| panic!("stderr")),
        ));
        Forward { child, out, err }
    }

    /// Waits for `kubectl` to say it listens on `port`.
    fn ready(&self, port: u16) {
        let want = format!("Forwarding from 127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(l) = self.out.recv_timeout(Duration::from_millis(200)) {
                if l.starts_with(&want) {
                    return;
                }
                seen.push(l);
            }
        }
        let errs: Vec<String> = self.err.try_iter().collect();
        panic!("port-forward not ready: {seen:?}\n{}", errs.join("\n"));
    }

    /// stderr lines until one contains `what` (or the timeout); all lines seen.
    fn stderr_until(&self, what: &str, timeout: Duration) -> (bool, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(l) = self.err.recv_timeout(Duration::from_millis(200)) {
                let hit = l.contains(what);
                seen.push(l);
                if hit {
                    return (true, seen);
                }
            }
        }
        (false, seen)
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `GET path` (HTTP/1.0) through the forwarded port.
fn http_body(port: u16, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n").as_bytes())
        .unwrap_or_else(|e| panic!("send: {e}"));
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let start = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(reply.len(), |p| p + 4);
    reply.split_off(start)
}

/// A plain HTTP/1.0 GET through the forwarded port; the whole reply.
fn http_get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
        .unwrap_or_else(|e| panic!("send: {e}"));
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_to_a_pod() {
    let _bridge = BridgeCleanup;
    let Cluster {
        ctrd: _ctrd,
        reg: _reg,
        dir,
        server: _server,
        admin,
        node,
        agent,
        k,
        ..
    } = cluster::start(Setup {
        name: "portforward",
        tag: "pf",
        busybox_dir: "pf-busybox",
        applets: &[
            "sh",
            "echo",
            "mkdir",
            "httpd",
            "sleep",
            "cat",
            "dd",
            "sha256sum",
        ],
        cluster_cidr: "10.246.0.0/16",
        service_cidr: "10.247.0.0/16",
        agent_args: bridge_args,
    });
    let _cleanup = PodCleanup(k.clone(), vec!["web"]);
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  nodeName: {node}\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: httpd\n    image: busybox:test\n    \
         command: [sh, -c, 'mkdir -p /www && echo hello-from-pod > /www/index.html && dd if=/dev/urandom of=/www/big bs=1024 count=6144 2>/dev/null && sha256sum /www/big > /www/big.sum && exec httpd -f -p 80 -h /www']\n"
    );
    let manifest = dir.join("web.yaml");
    std::fs::write(&manifest, pod).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &manifest.to_string_lossy()]);
    k.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=120s"]);
    let ip = k.jsonpath("web", "{.status.podIP}");
    assert!(
        ip.starts_with("10.246.77."),
        "the pod has its own network: {ip:?}"
    );

    for websocket in [true, false] {
        let (local, dead) = (free_port(), free_port());
        let fwd = Forward::start(
            &k,
            &[format!("{local}:80"), format!("{dead}:81")],
            websocket,
        );
        fwd.ready(local);
        // Two sequential connections, each a full HTTP exchange.
        for round in 0..2 {
            let reply = http_get(local);
            assert!(
                reply.starts_with("HTTP/1.") && reply.contains("hello-from-pod"),
                "websocket={websocket} round {round}: {reply:?}\nagent log:\n{}",
                tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 40)
            );
        }
        // 6 MiB of random bytes arrive intact (many frames, both transports).
        let big = http_body(local, "/big");
        let sum = String::from_utf8_lossy(&http_body(local, "/big.sum")).into_owned();
        use sha2::Digest as _;
        let digest = hex::encode(sha2::Sha256::digest(&big));
        assert_eq!(big.len(), 6 * 1024 * 1024, "websocket={websocket}");
        assert!(
            sum.starts_with(&digest),
            "websocket={websocket}: {sum} vs {digest}"
        );
        // Nothing listens on 81 in the pod: the connection closes, kubectl reports the agent's error.
        let mut s = TcpStream::connect(("127.0.0.1", dead)).unwrap_or_else(|e| panic!("{e}"));
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(buf.is_empty(), "no bytes from a closed port: {buf:?}");
        let (found, seen) = fwd.stderr_until("error forwarding port 81", Duration::from_secs(15));
        assert!(
            found,
            "websocket={websocket}: kubectl shows the error: {seen:?}"
        );
        assert_eq!(
            seen.iter().any(|l| l.contains("tunneling_dialer")),
            websocket,
            "the transport used: {seen:?}"
        );
        assert!(
            seen.iter().any(|l| l.contains("connection refused")),
            "the reason is given: {seen:?}"
        );
        // kubectl 1.32 ends the whole session after an error on a forwarding's error stream (client-go
        // portforward.go `handleConnection` closes the connection, as it does against the kubelet): it
        // must exit cleanly with "lost connection to pod", not hang or crash.
        let (lost, seen) = fwd.stderr_until("lost connection to pod", Duration::from_secs(15));
        assert!(
            lost,
            "websocket={websocket}: kubectl reports the end: {seen:?}"
        );
        let mut fwd = fwd;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = None;
        while status.is_none() && Instant::now() < deadline {
            status = fwd.child.try_wait().ok().flatten();
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(1),
            "websocket={websocket}"
        );
        drop(fwd);
    }

    // The agent is unharmed: a fresh port-forward still carries requests.
    let local = free_port();
    let fwd = Forward::start(&k, &[format!("{local}:80")], true);
    fwd.ready(local);
    assert!(http_get(local).contains("hello-from-pod"));
    drop(fwd);

    // The Python client's port-forward: the WebSocket channel protocol (v4.channel.k8s.io).
    let have_python = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .status()
        .is_ok_and(|s| s.success());
    if have_python {
        let script = format!(
            r#"
from kubernetes import client, config
from kubernetes.stream import portforward
config.load_kube_config(config_file="{kc}")
api = client.CoreV1Api()
pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="80,81")
s = pf.socket(80)
s.setblocking(True)
s.sendall(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
data = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    data += d
print(data.decode())
print("port81:", pf.error(81))
"#,
            kc = admin.display()
        );
        let out = Command::new("timeout")
            .args(["60", "python3", "-c", &script])
            .output()
            .unwrap_or_else(|e| panic!("python3: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("hello-from-pod"),
            "python port-forward: {text}
{}
agent log:
{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 30)
        );
        assert!(
            text.contains("connection refused"),
            "port 81's error: {text}"
        );
    } else {
        assert!(
            std::env::var_os("SKIFF_REQUIRE_PYTHON_CLIENT").is_none(),
            "the Python kubernetes client is required"
        );
    }

    // A pod that is not on the node (or does not exist) is refused before any stream opens.
    let out = k.run(
        &[
            "port-forward",
            "pod/nothere",
            &format!("{}:80", free_port()),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
