//! Container lifecycle end to end: log rotation and `/var/log/containers` symlinks, postStart and preStop
//! hooks, graceful termination. Real kubectl → skiff-apiserver (in this process) → the real `skiff-agent`
//! binary (small `--container-log-max-size`, temp `--container-log-dir`) → a private containerd. Pods use
//! the host network and are bound by `spec.nodeName`, so no bridge, CNI or lab state is touched. Needs root.

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
    let dir = TempDir::new("lc-busybox");
    let deb = busybox_deb(&dir.path);
    let rootfs = dir.join("rootfs");
    support::run(
        "dpkg",
        &["-x", &deb.to_string_lossy(), &rootfs.to_string_lossy()],
    );
    for applet in ["sh", "echo", "sleep", "cat", "true", "false"] {
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
async fn rotation_hooks_and_graceful_stop() {
    support::require_root();
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    push_busybox(&reg);
    let dir = TempDir::new("lifecycle");

    let api_port = free_port();
    let data_dir = dir.join("apiserver");
    let cfg = skiff_apiserver::ServeConfig {
        data_dir: data_dir.clone(),
        bind_address: "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
        secure_port: api_port,
        advertise_address: "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
        cluster_cidr: "10.253.0.0/16".parse().unwrap_or_else(|e| panic!("{e}")),
        node_cidr_mask: 24,
        service_cidr: "10.254.0.0/16".parse().unwrap_or_else(|e| panic!("{e}")),
        token_auth_file: None,
    };
    let server = tokio::spawn(skiff_apiserver::run(cfg));
    let admin = data_dir.join("admin.kubeconfig");
    wait_until("the API server listens", Duration::from_secs(30), || {
        admin.exists() && std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok()
    });
    let node = format!("lc-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
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
        .args(["--containerd-namespace", "skiff-lc-test"])
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
        .args(["--cluster-cidr", "10.253.0.0/16"])
        .args(["--kubelet-port", &kubelet_port.to_string()])
        .args([
            "--container-log-max-size",
            "64Ki",
            "--container-log-max-files",
            "3",
        ])
        .arg("--container-log-dir")
        .arg(dir.join("containers"))
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
    let cleanup = PodCleanup(k.clone(), vec!["chatty", "hooks", "ignore", "badhook"]);
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap_or_else(|e| panic!("{e}"));

    let head = |name: &str, grace: u32| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
             terminationGracePeriodSeconds: {grace}\n  volumes: [{{name: shared, hostPath: {{path: {}}}}}]\n  \
             containers:\n  - name: main\n    image: busybox:test\n    volumeMounts: [{{name: shared, mountPath: /shared}}]\n",
            shared.display()
        )
    };
    // ~1000 lines a second: a 64 KiB log file fills in about a second.
    let chatty = head("chatty", 1)
        + "    command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo line-$i-padding-padding; busybox usleep 1000; done']\n";
    // postStart writes a file the app waits for; preStop writes before the app's SIGTERM trap does.
    let hooks = head("hooks", 30)
        + "    command: [sh, -c, 'trap \"echo term >> /shared/order; exit 0\" TERM; \
           until [ -f /shared/post ]; do busybox usleep 100000; done; echo \"app saw $(cat /shared/post)\"; \
           while true; do busybox usleep 200000; done']\n\
           \x20   lifecycle:\n\
           \x20     postStart: {exec: {command: [sh, -c, 'echo poststart > /shared/post']}}\n\
           \x20     preStop: {exec: {command: [sh, -c, 'echo prestop >> /shared/order']}}\n";
    // PID 1 without a handler ignores SIGTERM: killed when the grace period ends.
    // Its preStop sleeps 2 s of the 3 s grace: the signal still gets the kubelet's minimum of 2 s.
    let ignore = head("ignore", 3)
        + "    command: [sleep, '3600']\n\
           \x20   lifecycle: {preStop: {sleep: {seconds: 2}}}\n";
    let badhook = head("badhook", 1)
        + "    command: [sleep, '3600']\n\
           \x20   lifecycle: {postStart: {exec: {command: ['false']}}}\n";
    for (name, manifest) in [
        ("chatty", chatty),
        ("hooks", hooks),
        ("ignore", ignore),
        ("badhook", badhook),
    ] {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, manifest).unwrap_or_else(|e| panic!("{e}"));
        k.ok(&["create", "-f", &path.to_string_lossy()]);
    }
    for p in ["chatty", "hooks", "ignore"] {
        k.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{p}"),
            "--timeout=120s",
        ]);
    }

    // Rotation: `0.log` plus at most two rotated files, all near the size limit; logs still readable.
    let uid = k.jsonpath("chatty", "{.metadata.uid}");
    let log_dir = dir
        .join("pods")
        .join(format!("default_chatty_{uid}"))
        .join("main");
    let rotated = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("0.log."))
        });
        v
    };
    wait_until(
        "chatty's log rotates twice",
        Duration::from_secs(60),
        || rotated(&log_dir).len() >= 2,
    );
    for _ in 0..10 {
        let files = rotated(&log_dir);
        assert!(files.len() <= 2, "at most 3 files in all: {files:?}");
        for f in &files {
            let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            assert!(len <= 64 * 1024, "{} has {len} bytes", f.display());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = k.ok(&["logs", "chatty", "--tail", "3"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("line-") && l.ends_with("-padding-padding")),
        "{out}"
    );
    // The kubelet's symlink names the current file.
    let cid = k.jsonpath("chatty", "{.status.containerStatuses[0].containerID}");
    let cid = cid.rsplit("://").next().unwrap_or_default().to_string();
    let link = dir
        .join("containers")
        .join(format!("chatty_default_main-{cid}.log"));
    assert_eq!(
        std::fs::read_link(&link).ok(),
        Some(log_dir.join("0.log")),
        "symlink {}",
        link.display()
    );
    // Following survives rotations: a streaming read keeps getting new, increasing lines.
    let mut follow = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .args(["logs", "-f", "chatty", "--tail", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl logs -f: {e}"));
    std::thread::sleep(Duration::from_secs(4));
    let _ = follow.kill();
    let followed = follow.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let nums: Vec<u64> = String::from_utf8_lossy(&followed.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("line-")?.split('-').next()?.parse().ok())
        .collect();
    assert!(
        nums.len() > 500,
        "followed {} lines across rotations",
        nums.len()
    );
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "no gaps or repeats while following"
    );

    // postStart ran and the app saw its file.
    k.wait_for(
        "the app sees the postStart file",
        Duration::from_secs(20),
        |k| {
            String::from_utf8_lossy(&k.run(&["logs", "hooks"]).stdout).contains("app saw poststart")
        },
    );

    // A failing postStart hook: warning event, container killed.
    k.wait_for("FailedPostStartHook event", Duration::from_secs(60), |k| {
        let ev = String::from_utf8_lossy(
            &k.run(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=badhook",
                "-o",
                "json",
            ])
            .stdout,
        )
        .into_owned();
        ev.contains("FailedPostStartHook")
    });
    k.wait_for("badhook restarts", Duration::from_secs(60), |k| {
        k.jsonpath("badhook", "{.status.containerStatuses[0].restartCount}") != "0"
    });

    // preStop, then SIGTERM: the trap exits at once, well within the 30 s grace.
    let t0 = Instant::now();
    k.ok(&["delete", "pod", "hooks", "--timeout=60s"]);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "trapping container stopped in {took:?}"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("order")).unwrap_or_default(),
        "prestop\nterm\n"
    );

    // Ignoring SIGTERM: killed at the end of the grace (2 s preStop, then max(3 - 2, 2) = 2 s).
    let t0 = Instant::now();
    k.ok(&["delete", "pod", "ignore", "--timeout=60s"]);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(20),
        "ignoring container stopped in {took:?}"
    );

    // Removing a container removes its symlink.
    k.ok(&["delete", "pod", "chatty", "--timeout=60s"]);
    assert!(std::fs::symlink_metadata(&link).is_err(), "symlink removed");

    drop(cleanup);
    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
}
