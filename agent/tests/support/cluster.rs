//! A one-node cluster for the agent's end-to-end tests: a private containerd, a local registry holding
//! busybox, skiff-apiserver in this process (own data dir and port) and the real `skiff-agent` binary (own
//! port), driven with real kubectl. Pods use the host network and are bound by `spec.nodeName`, so no
//! bridge, CNI or lab state is touched. Needs root.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{TempDir, TestContainerd, TestRegistry, free_port};

/// The busybox-static .deb: from the lab cache (read only), or downloaded with apt into `dir`.
pub fn busybox_deb(dir: &Path) -> PathBuf {
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
    super::run(
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

/// busybox with `applets` linked into /bin (anything else through `busybox <applet>`) as
/// `<registry>/library/busybox:test`, built in a temp dir named after `prefix`.
pub fn push_busybox(reg: &TestRegistry, prefix: &str, applets: &[&str]) {
    push_busybox_with(reg, prefix, applets, |_| {}, None);
}

/// [`push_busybox`], with `prepare` run on the unpacked rootfs before it is packed (extra files such as
/// /etc/passwd) and an optional image `Cmd`.
pub fn push_busybox_with(
    reg: &TestRegistry,
    prefix: &str,
    applets: &[&str],
    prepare: impl FnOnce(&Path),
    cmd: Option<&str>,
) {
    let dir = TempDir::new(prefix);
    let deb = busybox_deb(&dir.path);
    let rootfs = dir.join("rootfs");
    super::run(
        "dpkg",
        &["-x", &deb.to_string_lossy(), &rootfs.to_string_lossy()],
    );
    prepare(&rootfs);
    for applet in applets {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let layout = dir.join("oci");
    let image = format!("{}:test", layout.display());
    super::run("umoci", &["init", "--layout", &layout.to_string_lossy()]);
    super::run("umoci", &["new", "--image", &image]);
    super::run(
        "umoci",
        &["insert", "--image", &image, &rootfs.to_string_lossy(), "/"],
    );
    let mut config = vec!["config", "--image", &image, "--config.env", "PATH=/bin"];
    if let Some(cmd) = cmd {
        config.extend(["--config.cmd", cmd]);
    }
    super::run("umoci", &config);
    let src = format!("oci:{}:test", layout.display());
    let dst = format!("docker://{}/library/busybox:test", reg.host());
    super::run(
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

/// The running `skiff-agent` binary; SIGTERM (then SIGKILL after 10 s) on drop.
pub struct Agent {
    pub child: Child,
    pub log: PathBuf,
    /// A cgroup parent the harness chose for this agent, removed (when empty) once it has stopped.
    pub cgroup_parent: Option<String>,
    /// The agent's containerd namespace: once the agent has stopped, runc's (empty) state directory for
    /// it, `/run/containerd/runc/<namespace>`, is removed.
    pub namespace: Option<String>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        super::stop(&mut self.child);
        if let Some(name) = &self.cgroup_parent {
            super::remove_cgroup_parent(name);
        }
        if let Some(ns) = &self.namespace {
            let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(ns));
        }
    }
}

/// An agent stopped by [`stop_agent`]: what it needs to start again the same way.
pub struct StoppedAgent {
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    log: PathBuf,
    cgroup_parent: Option<String>,
    namespace: Option<String>,
}

/// Stop the agent (`kill -9` when `hard`, else SIGTERM), remembering its arguments and environment.
pub fn stop_agent(mut agent: Agent, hard: bool) -> StoppedAgent {
    use std::os::unix::ffi::OsStrExt as _;
    let pid = agent.child.id();
    let read = |what: &str| -> Vec<Vec<u8>> {
        std::fs::read(format!("/proc/{pid}/{what}"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/{what}: {e}"))
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let os = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_os_string();
    let argv = read("cmdline").iter().map(|a| os(a)).collect();
    let env = read("environ")
        .iter()
        .filter_map(|kv| {
            let eq = kv.iter().position(|c| *c == b'=')?;
            Some((os(&kv[..eq]), os(&kv[eq + 1..])))
        })
        .collect();
    let signal = if hard {
        nix::sys::signal::Signal::SIGKILL
    } else {
        nix::sys::signal::Signal::SIGTERM
    };
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
    let _ = agent.child.wait();
    let log = agent.log.clone();
    let cgroup_parent = agent.cgroup_parent.take();
    let namespace = agent.namespace.take();
    // The child is reaped; dropping `agent` would signal a PID that may be reused by now.
    std::mem::forget(agent);
    StoppedAgent {
        argv,
        env,
        log,
        cgroup_parent,
        namespace,
    }
}

impl StoppedAgent {
    /// [`StoppedAgent::start`] with some `--flag value` pairs set anew (replaced where already given).
    #[allow(dead_code)] // not every test binary restarts with new arguments
    pub fn start_with(mut self, pairs: &[(&str, &str)]) -> Agent {
        for (flag, value) in pairs {
            match self.argv.iter().position(|a| a == flag) {
                Some(i) if i + 1 < self.argv.len() => self.argv[i + 1] = value.into(),
                _ => self
                    .argv
                    .extend([OsString::from(flag), OsString::from(value)]),
            }
        }
        self.start()
    }

    /// Start the same binary again with the same arguments and environment, log appended.
    pub fn start(self) -> Agent {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("agent log: {e}"));
        let child = Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
            .args(self.argv.iter().skip(1))
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("respawn skiff-agent: {e}"));
        Agent {
            child,
            log: self.log,
            cgroup_parent: self.cgroup_parent,
            namespace: self.namespace,
        }
    }
}

/// [`stop_agent`] then [`StoppedAgent::start`]: pods must keep running meanwhile.
pub fn restart_agent(agent: Agent, hard: bool) -> Agent {
    stop_agent(agent, hard).start()
}

/// Real kubectl with the admin kubeconfig; failures show the tail of the agent's log.
#[derive(Clone)]
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    pub cache: PathBuf,
    pub log: PathBuf,
}

impl Kubectl {
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
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

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 60),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn jsonpath(&self, pod: &str, path: &str) -> String {
        let out = self.run(
            &["get", "pod", pod, "-o", &format!("jsonpath={path}")],
            None,
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ready(&self, pod: &str) -> String {
        self.jsonpath(pod, "{.status.conditions[?(@.type==\"Ready\")].status}")
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut(&Kubectl) -> bool) {
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

/// Wait until the Node exists and its Ready condition is True (`kubectl wait` fails at once while the
/// agent has not registered it yet).
pub fn wait_node_ready(k: &Kubectl, node: &str, timeout: Duration) {
    k.wait_for(&format!("node {node} Ready"), timeout, |k| {
        let out = k.run(
            &[
                "get",
                "node",
                node,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
            None,
        );
        String::from_utf8_lossy(&out.stdout) == "True"
    });
}

/// Deletes the given pods (one kubectl call) before the agent stops (also on a failed assertion).
pub struct PodCleanup(pub Kubectl, pub Vec<&'static str>);

impl Drop for PodCleanup {
    fn drop(&mut self) {
        let mut args = vec!["delete", "pod"];
        args.extend(self.1.iter().copied());
        args.extend(["--grace-period=1", "--timeout=60s", "--ignore-not-found"]);
        let _ = self.0.run(&args, None);
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What differs between the tests' clusters.
pub struct Setup<'a> {
    /// Temp dir prefix for the cluster's files.
    pub name: &'a str,
    /// Short tag: node name `<tag>-<random>`, containerd namespace `skiff-<tag>-test`.
    pub tag: &'a str,
    /// Temp dir prefix for building the busybox image, and the applets linked into its /bin.
    pub busybox_dir: &'a str,
    pub applets: &'a [&'a str],
    /// The API server's cluster CIDR (also passed to the agent) and service CIDR.
    pub cluster_cidr: &'a str,
    pub service_cidr: &'a str,
    /// Extra agent arguments, appended after `--kubelet-port`; given the cluster's temp dir.
    pub agent_args: fn(&TempDir) -> Vec<OsString>,
}

/// scripts/up.sh's default `--eviction-hard`.
pub const LAB_EVICTION_HARD: &str =
    "memory.available<100Mi,nodefs.available<1Gi,nodefs.inodesFree<5%,imagefs.available<1Gi";

/// No extra agent arguments.
pub fn no_agent_args(_: &TempDir) -> Vec<OsString> {
    Vec::new()
}

/// No extra agent arguments, but a CNI conflist (Debian's `loopback` plugin) in the agent's conf dir, so
/// the node's network is ready and the Node turns Ready (host-network pods never call CNI). Without it
/// the Node stays NotReady and the node lifecycle controller marks every pod on it not Ready.
pub fn ready_network(dir: &TempDir) -> Vec<OsString> {
    let conf = dir.join("net.d");
    std::fs::create_dir_all(&conf).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        conf.join("05-loopback.conflist"),
        r#"{"cniVersion":"1.0.0","name":"lo-only","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Vec::new()
}

/// A running cluster. Destructure it in the order of the fields so that locals drop as before: the agent
/// first, then the temp dir, the registry and containerd.
pub struct Cluster {
    pub ctrd: TestContainerd,
    pub reg: TestRegistry,
    pub dir: TempDir,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub admin: PathBuf,
    pub data_dir: PathBuf,
    pub node: String,
    pub kubelet_port: u16,
    pub agent: Agent,
    pub k: Kubectl,
}

/// Starts containerd, the registry (with busybox pushed), the API server (on this tokio runtime) and the
/// agent binary. Call from a multi-thread tokio test.
pub fn start(s: Setup<'_>) -> Cluster {
    super::require_root();
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    push_busybox(&reg, s.busybox_dir, s.applets);
    let dir = TempDir::new(s.name);

    // The API server, in this process.
    let api_port = free_port();
    let data_dir = dir.join("apiserver");
    let cfg = skiff_apiserver::ServeConfig {
        data_dir: data_dir.clone(),
        bind_address: "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
        secure_port: api_port,
        advertise_address: "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
        cluster_cidr: s.cluster_cidr.parse().unwrap_or_else(|e| panic!("{e}")),
        node_cidr_mask: 24,
        service_cidr: s.service_cidr.parse().unwrap_or_else(|e| panic!("{e}")),
        // The agents of these tests serve no cluster DNS.
        cluster_dns: None,
        token_auth_file: None,
    };
    let server = tokio::spawn(skiff_apiserver::run(cfg));
    let admin = data_dir.join("admin.kubeconfig");
    wait_until("the API server listens", Duration::from_secs(30), || {
        admin.exists() && std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok()
    });
    let node = format!(
        "{}-{}",
        s.tag,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
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
    let mut extra = (s.agent_args)(&dir);
    // Never the host's /var/log/containers: links left there would dangle once the temp dir is gone.
    if !extra.iter().any(|a| a == "--container-log-dir") {
        extra.extend([
            "--container-log-dir".into(),
            dir.join("containers").into_os_string(),
        ]);
    }
    // Never the host's /var/lib/skiff/storage: the agent removes directories there whose PersistentVolume
    // this test's API server does not know, which would be the lab's volumes.
    if !extra.iter().any(|a| a == "--storage-dir") {
        extra.extend(["--storage-dir".into(), dir.join("storage").into_os_string()]);
    }
    // A cgroup parent of the test's own, not the lab's `skiff`, named as its containerd namespace.
    let namespace = format!("skiff-{}-test", s.tag);
    let cgroup_parent = (!extra.iter().any(|a| a == "--cgroup-parent")).then(|| {
        let name = namespace.clone();
        extra.extend(["--cgroup-parent".into(), name.clone().into()]);
        name
    });
    // The disk floors of a development lab (scripts/up.sh): the kubelet's 10 % / 15 % of a large shared
    // disk can be crossed on a build machine, and a crossed threshold evicts and refuses pods.
    if !extra.iter().any(|a| a == "--eviction-hard") {
        extra.extend(["--eviction-hard".into(), LAB_EVICTION_HARD.into()]);
    }
    // No service proxy in the host's nftables unless a test asks (service variables still work).
    if !extra.iter().any(|a| a == "--proxy-mode") {
        extra.extend(["--proxy-mode".into(), "none".into()]);
    }
    // No NetworkPolicy table in the host's nftables unless a test asks: `inet skiff-netpol` is the lab's, and
    // agents of tests running side by side would overwrite each other's.
    if !extra
        .iter()
        .any(|a| a.to_string_lossy().starts_with("--network-policy"))
    {
        extra.extend(["--network-policy".into(), "false".into()]);
    }
    // No cluster DNS address on the host's interfaces unless a test asks (it would be the lab's).
    if !extra.iter().any(|a| a == "--cluster-dns") {
        extra.extend(["--cluster-dns".into(), "none".into()]);
    }
    // Image GC, in percentages of that disk too, is off as in the lab unless a test sets it.
    if !extra.iter().any(|a| a == "--image-gc-high-threshold") {
        extra.extend(["--image-gc-high-threshold".into(), "100".into()]);
    }
    let child = Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
        .arg("--kubeconfig")
        .arg(&node_kc)
        .args(["--node-name", &node, "--node-ip", "127.0.0.1"])
        .arg("--containerd-socket")
        .arg(&ctrd.socket)
        .args(["--containerd-namespace", &namespace])
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
        .args(["--cluster-cidr", s.cluster_cidr])
        .args(["--kubelet-port", &kubelet_port.to_string()])
        .args(extra)
        .env("RUST_LOG", "skiff_agent=debug,info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}")))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn skiff-agent: {e}"));
    let k = Kubectl {
        kubeconfig: admin.clone(),
        cache: dir.join("kube-cache"),
        log: log.clone(),
    };
    let agent = Agent {
        child,
        log,
        cgroup_parent,
        namespace: Some(namespace),
    };
    Cluster {
        ctrd,
        reg,
        dir,
        server,
        admin,
        data_dir,
        node,
        kubelet_port,
        agent,
        k,
    }
}
