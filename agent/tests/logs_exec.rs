//! `kubectl logs` and `kubectl exec` end to end: real kubectl → skiff-apiserver (in this process, own data
//! dir and port) → the agent's API (the real `skiff-agent` binary, own port) → a private containerd.
//! Pods use the host network and are bound by `spec.nodeName`, so no bridge, CNI or lab state is touched.
//! Needs root.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{TempDir, TestContainerd, TestRegistry, free_port};

/// The busybox-static .deb: from the lab cache, or downloaded with apt into `dir`.
fn busybox_deb(dir: &Path) -> PathBuf {
    if let Ok(entries) = std::fs::read_dir("/var/cache/skiff/debs") {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with("busybox-static_")
            {
                return e.path();
            }
        }
    }
    support::run(
        "sh",
        &[
            "-c",
            &format!("cd {} && apt-get download busybox-static", dir.display()),
        ],
    );
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("no .deb downloaded"))
}

/// busybox (sh, cat, echo, sleep) as `<registry>/library/busybox:test`.
fn push_busybox(reg: &TestRegistry) {
    let dir = TempDir::new("lx-busybox");
    let deb = busybox_deb(&dir.path);
    let rootfs = dir.join("rootfs");
    support::run(
        "dpkg",
        &["-x", &deb.to_string_lossy(), &rootfs.to_string_lossy()],
    );
    for applet in ["sh", "echo", "sleep", "cat", "true", "tty", "stty"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let layout = dir.join("oci");
    let image = format!("{}:test", layout.display());
    support::run("umoci", &["init", "--layout", &layout.to_string_lossy()]);
    support::run("umoci", &["new", "--image", &image]);
    support::run(
        "umoci",
        &["insert", "--image", &image, &rootfs.to_string_lossy(), "/"],
    );
    support::run(
        "umoci",
        &["config", "--image", &image, "--config.env", "PATH=/bin"],
    );
    let src = format!("oci:{}:test", layout.display());
    let dst = format!("docker://{}/library/busybox:test", reg.host());
    support::run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            &src,
            &dst,
        ],
    );
}

struct Agent {
    child: Child,
    log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        c
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.cmd(args);
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn kubectl: {e}"));
        if let Some(input) = stdin {
            use std::io::Write;
            let mut w = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
            w.write_all(input.as_bytes())
                .unwrap_or_else(|e| panic!("write stdin: {e}"));
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("kubectl: {e}"))
    }

    fn ok(&self, args: &[&str], agent: &Agent) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 40),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_and_exec_through_the_agent_api() {
    support::require_root();
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    push_busybox(&reg);
    let dir = TempDir::new("logs-exec");

    // The API server, in this process.
    let api_port = free_port();
    let data_dir = dir.join("apiserver");
    let cfg = skiff_apiserver::ServeConfig {
        data_dir: data_dir.clone(),
        bind_address: "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
        secure_port: api_port,
        advertise_address: "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
        cluster_cidr: "10.251.0.0/16".parse().unwrap_or_else(|e| panic!("{e}")),
        node_cidr_mask: 24,
        service_cidr: "10.252.0.0/16".parse().unwrap_or_else(|e| panic!("{e}")),
        token_auth_file: None,
    };
    let server = tokio::spawn(skiff_apiserver::run(cfg));
    let admin = data_dir.join("admin.kubeconfig");
    wait_until("the API server listens", Duration::from_secs(30), || {
        admin.exists() && std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok()
    });
    let node = format!("lx-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let node_kc = dir.join("node.kubeconfig");
    skiff_apiserver::pki::Pki::load_or_create(&data_dir)
        .and_then(|p| {
            p.write_kubeconfig(
                &node_kc,
                &format!("https://127.0.0.1:{api_port}"),
                &format!("system:node:{node}"),
                &["system:nodes".to_string()],
            )
        })
        .unwrap_or_else(|e| panic!("node kubeconfig: {e}"));
    let regcfg = dir.join("registries.yaml");
    std::fs::write(
        &regcfg,
        format!(
            "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n",
            reg.host()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // The agent binary, with its API on a free port.
    let kubelet_port = free_port();
    let log = dir.join("agent.log");
    let child = Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
        .arg("--kubeconfig")
        .arg(&node_kc)
        .args(["--node-name", &node, "--node-ip", "127.0.0.1"])
        .arg("--containerd-socket")
        .arg(&ctrd.socket)
        .args(["--containerd-namespace", "skiff-lx-test"])
        .arg("--root-dir")
        .arg(dir.join("agent"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--pod-log-dir")
        .arg(dir.join("pods"))
        .arg("--cni-conf-dir")
        .arg(dir.join("net.d"))
        .arg("--cni-cache-dir")
        .arg(dir.join("cni-cache"))
        .args(["--cni-bin-dir", "/usr/lib/cni"])
        .arg("--registry-config")
        .arg(&regcfg)
        .args(["--cluster-cidr", "10.251.0.0/16"])
        .args(["--kubelet-port", &kubelet_port.to_string()])
        .env("RUST_LOG", "skiff_agent=debug,info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}")))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn skiff-agent: {e}"));
    let agent = Agent { child, log };
    let k = Kubectl {
        kubeconfig: admin.clone(),
        cache: dir.join("kube-cache"),
    };
    // Dropped before the agent (also on a failed assertion): the agent tears the pod down.
    let _cleanup = PodCleanup {
        kubeconfig: admin.clone(),
        cache: dir.join("kube-cache"),
        pod: "talker",
    };

    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: talker}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n    \
         command: [sh, -c, 'echo hello; echo oops >&2; i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done']\n"
    );
    let manifest = dir.join("pod.yaml");
    std::fs::write(&manifest, pod).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &manifest.to_string_lossy()], &agent);
    // A container that exits at once and is restarted (after the 10 s back-off) for `logs --previous`.
    let crasher = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: crasher}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox:test\n    \
         command: [sh, -c, 'echo attempt-output; sleep 1; exit 1']\n"
    );
    let crasher_manifest = dir.join("crasher.yaml");
    std::fs::write(&crasher_manifest, crasher).unwrap_or_else(|e| panic!("{e}"));
    k.ok(
        &["create", "-f", &crasher_manifest.to_string_lossy()],
        &agent,
    );
    let _cleanup_crasher = PodCleanup {
        kubeconfig: admin.clone(),
        cache: dir.join("kube-cache"),
        pod: "crasher",
    };
    k.ok(
        &[
            "wait",
            "--for=condition=Ready",
            "pod/talker",
            "--timeout=120s",
        ],
        &agent,
    );
    let node_json = k.ok(&["get", "node", &node, "-o", "json"], &agent);
    assert!(
        node_json.contains(&format!("\"Port\": {kubelet_port}")),
        "the node reports its kubelet port: {node_json}"
    );

    // The agent's API: /healthz open on localhost; anonymous callers and nodes are refused.
    let pki =
        skiff_apiserver::pki::Pki::load_or_create(&data_dir).unwrap_or_else(|e| panic!("pki: {e}"));
    let (crt, key) = pki
        .client_cert(
            &format!("system:node:{node}"),
            &["system:nodes".to_string()],
        )
        .unwrap_or_else(|e| panic!("node cert: {e}"));
    std::fs::write(dir.join("node.crt"), crt).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("node.key"), key).unwrap_or_else(|e| panic!("{e}"));
    let curl = |path: &str, extra: &[&str]| -> String {
        let out = Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(extra)
            .arg(format!("https://127.0.0.1:{kubelet_port}{path}"))
            .output()
            .unwrap_or_else(|e| panic!("curl: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("/healthz", &[]), "200");
    assert_eq!(curl("/containerLogs/default/talker/main", &[]), "401");
    let (node_crt, node_key) = (dir.join("node.crt"), dir.join("node.key"));
    let node_cert = [
        "--cert".to_string(),
        node_crt.to_string_lossy().into_owned(),
        "--key".to_string(),
        node_key.to_string_lossy().into_owned(),
    ];
    let node_cert: Vec<&str> = node_cert.iter().map(String::as_str).collect();
    assert_eq!(
        curl("/containerLogs/default/talker/main", &node_cert),
        "403"
    );
    let kc = [
        "--cert",
        "apiserver-kubelet-client.crt",
        "--key",
        "apiserver-kubelet-client.key",
    ]
    .map(|f| {
        if f.starts_with("--") {
            f.to_string()
        } else {
            data_dir.join("pki").join(f).to_string_lossy().into_owned()
        }
    });
    let kc: Vec<&str> = kc.iter().map(String::as_str).collect();
    assert_eq!(curl("/containerLogs/default/talker/main", &kc), "200");
    assert_eq!(curl("/containerLogs/default/nobody/main", &kc), "404");

    // kubectl logs: plain, with --tail, with --timestamps, --previous refused.
    wait_until("three ticks are logged", Duration::from_secs(20), || {
        k.ok(&["logs", "talker"], &agent).contains("tick-2")
    });
    let logs = k.ok(&["logs", "talker"], &agent);
    let head: Vec<&str> = logs.lines().take(3).collect();
    assert!(
        head.contains(&"hello") && head.contains(&"oops"),
        "stdout and stderr lines: {logs:?}"
    );
    let last = k.ok(&["logs", "talker", "--tail=1"], &agent);
    assert!(
        last.starts_with("tick-") && last.lines().count() == 1,
        "tail: {last:?}"
    );
    let stamped = k.ok(
        &["logs", "talker", "--timestamps", "--limit-bytes=200"],
        &agent,
    );
    assert!(
        stamped.len() <= 200
            && stamped.lines().any(|l| l.ends_with(" hello"))
            && stamped.lines().take(3).all(|l| l
                .split(' ')
                .next()
                .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok())),
        "timestamps: {stamped:?}"
    );
    let limited = k.ok(&["logs", "talker", "--limit-bytes=3"], &agent);
    assert_eq!(limited.len(), 3, "limit-bytes: {limited:?}");
    let prev = k.run(&["logs", "talker", "--previous"], None);
    assert!(!prev.status.success());
    assert!(
        String::from_utf8_lossy(&prev.stderr)
            .contains("previous terminated container \"main\" in pod \"talker\" not found"),
        "previous: {}",
        String::from_utf8_lossy(&prev.stderr)
    );

    // kubectl logs -f: new lines keep arriving.
    let mut follow = k
        .cmd(&["logs", "-f", "talker", "--tail=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl logs -f: {e}"));
    let out = follow.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.len() < 4 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            seen.push(l);
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen.len() >= 4, "logs -f streamed only {seen:?}");
    let n = |l: &String| l.strip_prefix("tick-").and_then(|x| x.parse::<u32>().ok());
    let nums: Vec<u32> = seen.iter().filter_map(n).collect();
    assert!(
        nums.len() == seen.len() && nums.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive ticks: {seen:?}"
    );

    // Following survives a rotation: the file is renamed away and a new one appears.
    let mut follow = k
        .cmd(&["logs", "-f", "talker", "--tail=0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl logs -f: {e}"));
    let out = follow.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10));
    assert!(first.is_ok(), "logs -f before the rotation: {first:?}");
    let log_dir = std::fs::read_dir(dir.join("pods"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("default_talker_"))
        })
        .unwrap_or_else(|| panic!("no log directory of talker"))
        .join("main");
    std::fs::rename(log_dir.join("0.log"), log_dir.join("0.log.20261127-000000"))
        .unwrap_or_else(|e| panic!("rotate: {e}"));
    std::fs::write(
        log_dir.join("0.log"),
        "2026-11-27T08:00:00.000000001Z stdout F after-rotation\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rotated = false;
    while !rotated && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            rotated = l == "after-rotation";
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(rotated, "logs -f did not follow the rotated file");

    // kubectl exec -it under a pseudo-terminal.
    let inner = format!(
        "kubectl --kubeconfig {} --cache-dir {} exec -it talker -- sh -c 'tty; stty size; exit 4'",
        admin.display(),
        dir.join("kube-cache").display()
    );
    let tty = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("script: {e}"));
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains("/dev/pts/"), "exec -it: {shown:?}");
    assert_eq!(tty.status.code(), Some(4), "exec -it exit code: {shown:?}");

    // kubectl exec: output and exit code.
    let out = k.run(
        &["exec", "talker", "--", "sh", "-c", "echo hi; exit 3"],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "exec exit code; stderr: {}\nagent log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 30),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = k.run(
        &[
            "exec",
            "talker",
            "--",
            "sh",
            "-c",
            "echo to-out; echo to-err >&2",
        ],
        None,
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-err"));

    // kubectl exec -i: stdin reaches the process and its end closes it.
    let out = k.run(
        &["exec", "-i", "talker", "--", "cat"],
        Some("from stdin\nsecond line\n"),
    );
    assert!(
        out.status.success(),
        "exec -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from stdin\nsecond line\n"
    );

    // The agent directly, as the API server calls it, with the older v4 subprotocol: a terminal, a
    // resize before the input, stdin, and the final Status on channel 3.
    let frames = direct_exec_v4(&data_dir, kubelet_port).await;
    let text: String = frames
        .iter()
        .filter(|(ch, _)| *ch == 1)
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect();
    assert!(
        text.contains("30 100"),
        "stty size after the resize: {text:?}"
    );
    assert!(text.contains("got-abc"), "stdin: {text:?}");
    let status = frames
        .iter()
        .find(|(ch, _)| *ch == 3)
        .map(|(_, d)| d.clone());
    let status: serde_json::Value = serde_json::from_slice(&status.unwrap_or_default())
        .unwrap_or_else(|e| panic!("status JSON: {e}"));
    assert_eq!(
        status,
        serde_json::json!({"metadata": {}, "status": "Success"})
    );

    // Errors: an unknown container, a command that does not exist.
    let bad = k.run(&["exec", "talker", "-c", "nope", "--", "true"], None);
    assert!(!bad.status.success());
    let missing = k.run(&["exec", "talker", "--", "no-such-command"], None);
    assert!(!missing.status.success());

    // logs --previous: the restarted container's last attempt.
    wait_until("crasher restarts", Duration::from_secs(60), || {
        k.run(
            &[
                "get",
                "pod",
                "crasher",
                "-o",
                "jsonpath={.status.containerStatuses[0].restartCount}",
            ],
            None,
        )
        .stdout
        .first()
        .is_some_and(|c| *c != b'0')
    });
    let prev = k.ok(&["logs", "crasher", "--previous"], &agent);
    assert_eq!(prev, "attempt-output\n");

    // Clean up: the agent tears the pod down, then everything stops.
    k.ok(
        &[
            "delete",
            "pod",
            "talker",
            "--grace-period=1",
            "--timeout=60s",
        ],
        &agent,
    );
    drop(_cleanup_crasher);
    drop(_cleanup);
    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
}

struct PodCleanup {
    kubeconfig: PathBuf,
    cache: PathBuf,
    pod: &'static str,
}

impl Drop for PodCleanup {
    fn drop(&mut self) {
        let k = Kubectl {
            kubeconfig: self.kubeconfig.clone(),
            cache: self.cache.clone(),
        };
        let _ = k.run(
            &[
                "delete",
                "pod",
                self.pod,
                "--grace-period=1",
                "--timeout=60s",
                "--ignore-not-found",
            ],
            None,
        );
    }
}

/// Exec `read x; stty size; echo got-$x` with a tty over `v4.channel.k8s.io`, straight to the agent with
/// the API server's kubelet client certificate. Returns the frames received as (channel, data).
async fn direct_exec_v4(data_dir: &Path, port: u16) -> Vec<(u8, Vec<u8>)> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let pki = data_dir.join("pki");
    let read =
        |f: &str| std::fs::read_to_string(pki.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let client = skiff_apiserver::proxy::KubeletClient::new(
        &read("apiserver-kubelet-client.crt"),
        &read("apiserver-kubelet-client.key"),
    )
    .unwrap_or_else(|e| panic!("client: {e}"));
    let uri = "/exec/default/talker/main?command=sh&command=-c&command=read+x%3B+stty+size%3B+echo+got-%24x&stdin=true&stdout=true&tty=true";
    let req = http::Request::get(uri)
        .header("host", format!("127.0.0.1:{port}"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "v4.channel.k8s.io")
        .body(axum::body::Body::empty())
        .unwrap_or_else(|e| panic!("request: {e}"));
    let resp = client
        .send(
            "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
            port,
            req,
        )
        .await
        .unwrap_or_else(|e| panic!("send: {}", e.message));
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("v4.channel.k8s.io")
    );
    let upgraded = hyper::upgrade::on(resp)
        .await
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        hyper_util::rt::TokioIo::new(upgraded),
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let mut resize = vec![4u8];
    resize.extend_from_slice(br#"{"Width":100,"Height":30}"#);
    let mut input = vec![0u8];
    input.extend_from_slice(b"abc\n");
    for m in [resize, input] {
        ws.send(Message::Binary(m.into()))
            .await
            .unwrap_or_else(|e| panic!("ws send: {e}"));
    }
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                if let Some((ch, d)) = b.split_first() {
                    frames.push((*ch, d.to_vec()));
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) => break,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("ws: {e}; frames so far {frames:?}"),
            Err(_) => panic!("no close within 15 s; frames {frames:?}"),
        }
    }
    frames
}
