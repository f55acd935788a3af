//! configMap, secret and projected volumes and env from configMaps/secrets end to end: real kubectl →
//! skiff-apiserver (in this process) → the real `skiff-agent` binary → a private containerd. Pods use the
//! host network and are bound by `spec.nodeName`, so no bridge, CNI or lab state is touched. Needs root.

mod support;

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

fn manifest(dir: &Path, name: &str, text: String) -> String {
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    p.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_maps_and_secrets_in_volumes_and_env() {
    support::require_root();
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    push_busybox(&reg);
    let dir = TempDir::new("cfg-vol");

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
    let node = format!("cv-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
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
        .args(["--containerd-namespace", "skiff-cv-test"])
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
    let cleanups: Vec<PodCleanup> = ["reader", "waiter", "vol-waiter"]
        .into_iter()
        .map(|pod| PodCleanup {
            kubeconfig: admin.clone(),
            cache: dir.join("kube-cache"),
            pod,
        })
        .collect();

    k.ok(
        &[
            "create",
            "configmap",
            "app-config",
            "--from-literal=greeting=hello-from-cm",
            "--from-literal=color=blue",
        ],
        &agent,
    );
    k.ok(
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=s3cret",
        ],
        &agent,
    );
    let reader = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: reader, labels: {{app: reader}}}}\nspec:\n  nodeName: {node}\n  \
         hostNetwork: true\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n    \
         command: [sh, -c, 'echo vol=$(cat /etc/app/greeting); echo item=$(cat /etc/items/c.txt); echo sec=$(cat /etc/creds/password); \
         echo proj=$(cat /etc/proj/pw)/$(cat /etc/proj/name)/$(cat /etc/proj/labels); echo env-pw=$PW; echo env-cm=$CM_color; \
         echo env-mem=$MEM; (echo x > /etc/app/new) 2>/dev/null && echo writable || echo readonly; sleep 3600']\n    \
         env:\n    - {{name: PW, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}\n    \
         - {{name: MISSING, valueFrom: {{configMapKeyRef: {{name: nope, key: k, optional: true}}}}}}\n    \
         - {{name: MEM, valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}}}\n    \
         envFrom:\n    - {{prefix: CM_, configMapRef: {{name: app-config}}}}\n    \
         resources: {{limits: {{memory: 64Mi}}}}\n    \
         volumeMounts:\n    - {{name: app, mountPath: /etc/app}}\n    - {{name: items, mountPath: /etc/items}}\n    \
         - {{name: creds, mountPath: /etc/creds}}\n    - {{name: proj, mountPath: /etc/proj}}\n  \
         volumes:\n  - {{name: app, configMap: {{name: app-config}}}}\n  \
         - {{name: items, configMap: {{name: app-config, items: [{{key: color, path: c.txt, mode: 0400}}]}}}}\n  \
         - {{name: creds, secret: {{secretName: creds, defaultMode: 0400}}}}\n  \
         - name: proj\n    projected:\n      sources:\n      - secret: {{name: creds, items: [{{key: password, path: pw}}]}}\n      \
         - downwardAPI: {{items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}, {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]}}\n      \
         - serviceAccountToken: {{path: token}}\n"
    );
    k.ok(
        &["create", "-f", &manifest(&dir.path, "reader", reader)],
        &agent,
    );
    // A container whose env names a configMap that does not exist yet, and a pod whose volume does.
    let waiter = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: waiter}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n    \
         command: [sh, -c, 'echo late=$LATE; sleep 3600']\n    \
         env:\n    - {{name: LATE, valueFrom: {{configMapKeyRef: {{name: late, key: k}}}}}}\n"
    );
    k.ok(
        &["create", "-f", &manifest(&dir.path, "waiter", waiter)],
        &agent,
    );
    let vol_waiter = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: vol-waiter}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n    \
         command: [sh, -c, 'echo late-vol=$(cat /late/k); sleep 3600']\n    \
         volumeMounts:\n    - {{name: late, mountPath: /late}}\n  volumes:\n  - {{name: late, configMap: {{name: late-vol}}}}\n"
    );
    k.ok(
        &[
            "create",
            "-f",
            &manifest(&dir.path, "vol-waiter", vol_waiter),
        ],
        &agent,
    );

    k.ok(
        &[
            "wait",
            "--for=condition=Ready",
            "pod/reader",
            "--timeout=120s",
        ],
        &agent,
    );
    let mut logs = String::new();
    wait_until("reader printed everything", Duration::from_secs(20), || {
        logs = k.ok(&["logs", "reader"], &agent);
        logs.contains("readonly") || logs.contains("writable")
    });
    for want in [
        "vol=hello-from-cm",
        "item=blue",
        "sec=s3cret",
        "proj=s3cret/reader/app=\"reader\"",
        "env-pw=s3cret",
        "env-cm=blue",
        "env-mem=64",
        "readonly",
    ] {
        assert!(
            logs.lines().any(|l| l == want),
            "{want:?} in the logs:\n{logs}"
        );
    }

    let waiting = |pod: &str| {
        k.ok(
            &["get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}"],
            &agent,
        )
    };
    let mut st = String::new();
    wait_until(
        "waiter shows CreateContainerConfigError",
        Duration::from_secs(60),
        || {
            st = waiting("waiter");
            st.starts_with("CreateContainerConfigError|")
        },
    );
    assert_eq!(
        st,
        "CreateContainerConfigError|configmap \"late\" not found"
    );
    wait_until(
        "vol-waiter shows CreateContainerConfigError",
        Duration::from_secs(60),
        || {
            st = waiting("vol-waiter");
            st.starts_with("CreateContainerConfigError|")
        },
    );
    assert!(st.contains("configmap \"late-vol\" not found"), "{st}");
    let events = k.ok(&["get", "events", "-o", "json"], &agent);
    assert!(
        events.contains("Error: configmap \\\"late\\\" not found"),
        "an event names the missing configMap: {events}"
    );

    k.ok(
        &["create", "configmap", "late", "--from-literal=k=arrived"],
        &agent,
    );
    k.ok(
        &[
            "create",
            "configmap",
            "late-vol",
            "--from-literal=k=mounted",
        ],
        &agent,
    );
    k.ok(
        &[
            "wait",
            "--for=condition=Ready",
            "pod/waiter",
            "pod/vol-waiter",
            "--timeout=60s",
        ],
        &agent,
    );
    wait_until(
        "the late pods print their config",
        Duration::from_secs(20),
        || {
            k.ok(&["logs", "waiter"], &agent).contains("late=arrived")
                && k.ok(&["logs", "vol-waiter"], &agent)
                    .contains("late-vol=mounted")
        },
    );

    // An update of the configMap reaches the mounted files (the periodic re-sync, about a minute).
    k.ok(
        &[
            "patch",
            "configmap",
            "app-config",
            "-p",
            r#"{"data":{"color":"green"}}"#,
        ],
        &agent,
    );
    wait_until(
        "the configMap update reaches the volume",
        Duration::from_secs(120),
        || {
            k.run(&["exec", "reader", "--", "cat", "/etc/items/c.txt"], None)
                .stdout
                == b"green"
        },
    );

    drop(cleanups);
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
