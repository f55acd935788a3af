//! Probes end to end: real kubectl → skiff-apiserver (in this process, own data dir and port) → the real
//! `skiff-agent` binary → a private containerd. Pods use the host network and are bound by
//! `spec.nodeName`, so no bridge, CNI or lab state is touched. Needs root.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{TempDir, TestContainerd, TestRegistry, free_port};

/// The busybox-static .deb: from the lab cache (read only), or downloaded with apt into `dir`.
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

/// busybox (sh, cat, sleep; anything else through `busybox <applet>`) as `<registry>/library/busybox:test`.
fn push_busybox(reg: &TestRegistry) {
    let dir = TempDir::new("pr-busybox");
    let deb = busybox_deb(&dir.path);
    let rootfs = dir.join("rootfs");
    support::run(
        "dpkg",
        &["-x", &deb.to_string_lossy(), &rootfs.to_string_lossy()],
    );
    for applet in ["sh", "echo", "sleep", "cat", "true"] {
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

#[derive(Clone)]
struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
    log: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("kubectl: {e}"))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 60),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn jsonpath(&self, pod: &str, path: &str) -> String {
        let out = self.run(&["get", "pod", pod, "-o", &format!("jsonpath={path}")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ready(&self, pod: &str) -> String {
        self.jsonpath(pod, "{.status.conditions[?(@.type==\"Ready\")].status}")
    }

    fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut(&Kubectl) -> bool) {
        let deadline = Instant::now() + timeout;
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "{what} within {timeout:?}\nagent log:\n{}",
                tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 60)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
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

/// Deletes the test's pods before the agent stops (also on a failed assertion).
struct PodCleanup(Kubectl, Vec<&'static str>);

impl Drop for PodCleanup {
    fn drop(&mut self) {
        let mut args = vec!["delete", "pod"];
        args.extend(self.1.iter().copied());
        args.extend(["--grace-period=1", "--timeout=60s", "--ignore-not-found"]);
        let _ = self.0.run(&args);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_drive_readiness_and_restarts() {
    support::require_root();
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    push_busybox(&reg);
    let dir = TempDir::new("probes");

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
    let node = format!("pr-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
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

    let kubelet_port = free_port();
    let log = dir.join("agent.log");
    let child = Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
        .arg("--kubeconfig")
        .arg(&node_kc)
        .args(["--node-name", &node, "--node-ip", "127.0.0.1"])
        .arg("--containerd-socket")
        .arg(&ctrd.socket)
        .args(["--containerd-namespace", "skiff-pr-test"])
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
    let agent = Agent { child };
    let k = Kubectl {
        kubeconfig: admin.clone(),
        cache: dir.join("kube-cache"),
        log,
    };
    let cleanup = PodCleanup(k.clone(), vec!["toggle", "live", "web", "slow", "nostart"]);

    let head = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
             terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n"
        )
    };
    // Readiness follows a file; a startup probe gates it.
    let toggle = head("toggle")
        + "    command: [sh, -c, 'echo > /ready; exec sleep 3600']\n\
           \x20   startupProbe: {exec: {command: [cat, /ready]}, periodSeconds: 1}\n\
           \x20   readinessProbe: {exec: {command: [cat, /ready]}, periodSeconds: 1, failureThreshold: 1}\n";
    // Alive for 4 s, then the liveness file goes away.
    let live = head("live")
        + "    command: [sh, -c, 'echo > /alive; sleep 4; busybox rm /alive; exec sleep 3600']\n\
           \x20   livenessProbe: {exec: {command: [cat, /alive]}, periodSeconds: 1, failureThreshold: 2}\n";
    // busybox httpd on a named port (host network: a free port of this machine).
    let http_port = free_port();
    let web = head("web")
        + &format!(
            "    command: [sh, -c, 'busybox mkdir -p /www; echo ok > /www/index.html; exec busybox httpd -f -p {http_port} -h /www']\n\
             \x20   ports: [{{name: http, containerPort: {http_port}}}]\n\
             \x20   readinessProbe: {{httpGet: {{path: /index.html, port: http, httpHeaders: [{{name: X-Test, value: probe}}]}}, periodSeconds: 1}}\n\
             \x20   livenessProbe: {{tcpSocket: {{port: http}}, periodSeconds: 1}}\n"
        );
    // An exec probe that outlives its timeout is a failure and never makes the pod ready.
    let slow = head("slow")
        + "    command: [sleep, '3600']\n\
           \x20   readinessProbe: {exec: {command: [sleep, '5']}, periodSeconds: 1, timeoutSeconds: 1}\n";
    // A startup probe that never passes: the container is killed and restarted, never started or ready.
    let nostart = head("nostart")
        + "    command: [sleep, '3600']\n\
           \x20   startupProbe: {exec: {command: [cat, /never]}, periodSeconds: 1, failureThreshold: 2}\n\
           \x20   readinessProbe: {exec: {command: ['true']}, periodSeconds: 1}\n";
    for (name, manifest) in [
        ("nostart", nostart),
        ("toggle", toggle),
        ("live", live),
        ("web", web),
        ("slow", slow),
    ] {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, manifest).unwrap_or_else(|e| panic!("{e}"));
        k.ok(&["create", "-f", &path.to_string_lossy()]);
    }

    // Readiness: ready once the probe passes, unready when the file goes, ready again when it is back.
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/toggle",
        "--timeout=120s",
    ]);
    assert_eq!(
        k.jsonpath("toggle", "{.status.containerStatuses[0].started}"),
        "true"
    );
    k.ok(&["exec", "toggle", "--", "busybox", "rm", "/ready"]);
    k.wait_for("toggle becomes unready", Duration::from_secs(20), |k| {
        k.ready("toggle") == "False"
    });
    assert_eq!(
        k.jsonpath(
            "toggle",
            "{.status.conditions[?(@.type==\"ContainersReady\")].status}"
        ),
        "False"
    );
    assert_eq!(
        k.jsonpath("toggle", "{.status.containerStatuses[0].ready}"),
        "false"
    );
    assert_eq!(
        k.jsonpath("toggle", "{.status.containerStatuses[0].restartCount}"),
        "0",
        "readiness never restarts"
    );
    k.ok(&["exec", "toggle", "--", "sh", "-c", "echo > /ready"]);
    k.wait_for("toggle becomes ready again", Duration::from_secs(20), |k| {
        k.ready("toggle") == "True"
    });

    // httpGet on a named port.
    k.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);

    // Liveness: the container is killed and restarted, and the events say why.
    k.wait_for("live is restarted once", Duration::from_secs(60), |k| {
        k.jsonpath("live", "{.status.containerStatuses[0].restartCount}") == "1"
    });
    let events = k.ok(&["get", "events", "-o", "json"]);
    let events: serde_json::Value =
        serde_json::from_str(&events).unwrap_or_else(|e| panic!("events: {e}"));
    let of_live: Vec<(String, String, String)> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == "live")
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        of_live.iter().any(|(t, r, m)| t == "Normal"
            && r == "Killing"
            && m == "Container main failed liveness probe, will be restarted"),
        "Killing event: {of_live:?}"
    );
    assert!(
        of_live.iter().any(|(t, r, m)| t == "Warning"
            && r == "Unhealthy"
            && m.starts_with("Liveness probe failed: ")
            && m.contains("/alive")),
        "Unhealthy event with the probe output: {of_live:?}"
    );
    let last = k.jsonpath(
        "live",
        "{.status.containerStatuses[0].lastState.terminated.exitCode}",
    );
    assert_eq!(
        last, "137",
        "killed after the grace period (sleep ignores SIGTERM as PID 1)"
    );

    // The web pod's tcpSocket liveness probe passes: never restarted.
    assert_eq!(
        k.jsonpath("web", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    let slow_events: Vec<String> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == "slow" && e["reason"] == "Unhealthy")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        slow_events
            .iter()
            .any(|m| m.starts_with("Readiness probe failed: ") && m.contains("timed out")),
        "timeout event: {slow_events:?}"
    );
    assert_eq!(k.ready("slow"), "False");
    assert_eq!(
        k.jsonpath("slow", "{.status.containerStatuses[0].started}"),
        "true",
        "no startup probe: started as soon as it runs"
    );

    let nostart: Vec<(String, String)> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == "nostart")
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        nostart.iter().any(|(r, m)| r == "Killing"
            && m == "Container main failed startup probe, will be restarted"),
        "startup Killing event: {nostart:?}"
    );
    assert!(
        nostart
            .iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with("Startup probe failed: ")),
        "startup Unhealthy event: {nostart:?}"
    );
    assert_eq!(k.ready("nostart"), "False");
    assert_ne!(
        k.jsonpath("nostart", "{.status.containerStatuses[0].started}"),
        "true"
    );

    drop(cleanup);
    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
}
