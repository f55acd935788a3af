//! The container runtime against a real containerd 1.6 (private to each test): a busybox container in
//! pinned pod namespaces, its exit code and CRI log file, and a graceful stop. Needs root.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skiff_agent::images::{ImageService, PullPolicy, PulledImage, RegistryConfig};
use skiff_agent::runtime::cgroups::{self, Resources};
use skiff_agent::runtime::events::{self, RuntimeEvent};
use skiff_agent::runtime::labels::{ContainerKind, ContainerMeta};
use skiff_agent::runtime::spec::{self, Security, SpecInput};
use skiff_agent::runtime::stdio::{Output, StdioConfig};
use skiff_agent::runtime::{CreateRequest, Runtime, TaskStatus, logs};
use support::{TempDir, TestContainerd, TestRegistry};
use tokio::sync::mpsc;

/// Each fixture's containerd namespace: its own, so that runc's state directory for it can go with it.
fn namespace() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("skiff-runtime-test-{}-{n}", std::process::id())
}

/// A busybox image built from Debian's busybox-static, with a user `app` (1234:4321) in /etc/passwd for
/// the image-user test, pushed to the test registry.
fn push_busybox(reg: &TestRegistry) {
    let etc = |rootfs: &Path| {
        std::fs::create_dir_all(rootfs.join("etc")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321::/:/bin/sh\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nstaff:x:50:app\n")
            .unwrap_or_else(|e| panic!("{e}"));
    };
    let applets = [
        "sh", "echo", "sleep", "hostname", "readlink", "cat", "true", "id", "stty", "tty",
    ];
    support::cluster::push_busybox_with(reg, "busybox", &applets, etc, Some("sh"));
}

struct Fixture {
    ns: String,
    _ctrd: TestContainerd,
    _reg: TestRegistry,
    dir: TempDir,
    runtime: Runtime,
    image: PulledImage,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
}

async fn fixture() -> Fixture {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    push_busybox(&reg);
    let dir = TempDir::new("runtime");
    let regcfg = dir.join("registries.yaml");
    std::fs::write(
        &regcfg,
        format!(
            "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n",
            reg.host()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ns = namespace();
    let cd = ctrd.connect(&ns).await;
    let images = ImageService::new(
        cd.clone(),
        RegistryConfig::load(&regcfg).unwrap_or_else(|e| panic!("{e}")),
    );
    let image = images
        .ensure("busybox:test", PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_or_else(|e| panic!("pull: {e}"));
    let runtime = Runtime::new(cd, dir.join("run"));
    let (tx, mut rx) = mpsc::unbounded_channel();
    events::spawn(runtime.clone(), tx);
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(RuntimeEvent::Resync)) => {}
        other => panic!("event stream did not connect: {other:?}"),
    }
    // The subscription is in flight; give containerd a moment to register it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Fixture {
        ns,
        _ctrd: ctrd,
        _reg: reg,
        dir,
        runtime,
        image,
        events: rx,
    }
}

impl Drop for Fixture {
    /// runc's state directory for the namespace stays behind, empty, once every container is deleted.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(std::path::Path::new("/run/containerd/runc").join(&self.ns));
    }
}

struct Pod {
    uid: String,
    sandbox: skiff_agent::sandbox::PodSandbox,
    sandbox_dir: PathBuf,
}

fn pod(f: &Fixture, name: &str) -> Pod {
    let uid = uuid::Uuid::new_v4().to_string();
    let sandbox_dir = f.dir.join("run").join("pods").join(&uid);
    let sandbox =
        skiff_agent::sandbox::pin(&sandbox_dir, name).unwrap_or_else(|e| panic!("pin: {e}"));
    Pod {
        uid,
        sandbox,
        sandbox_dir,
    }
}

fn request(f: &Fixture, p: &Pod, name: &str, args: &[&str]) -> CreateRequest {
    request_with(f, p, name, args, StdioConfig::default())
}

fn request_with(
    f: &Fixture,
    p: &Pod,
    name: &str,
    args: &[&str],
    stdio: StdioConfig,
) -> CreateRequest {
    let meta = ContainerMeta {
        pod_uid: p.uid.clone(),
        pod_namespace: "default".into(),
        pod_name: "pod-a".into(),
        container_name: name.into(),
        attempt: 0,
        kind: ContainerKind::App,
    };
    let input = SpecInput {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        additional_gids: vec![],
        hostname: "pod-a".into(),
        net_ns: p.sandbox.net.clone(),
        ipc_ns: p.sandbox.ipc.clone(),
        uts_ns: p.sandbox.uts.clone(),
        host_network: false,
        host_pid: false,
        host_ipc: false,
        mounts: vec![],
        cgroups_path: cgroups::cgroups_path(&p.uid, &meta.container_id()),
        cgroup_v2: f.runtime.cgroup_v2,
        resources: Resources {
            cpu_shares: 256,
            cpu_quota: Some(50_000),
            cpu_period: 100_000,
            memory_limit: Some(64 << 20),
        },
        security: Security::default(),
        terminal: stdio.tty,
    };
    let log_path = logs::log_path(&f.dir.join("logs"), "default", "pod-a", &p.uid, name, 0);
    CreateRequest {
        meta,
        image_ref: f.image.reference.clone(),
        chain_id: f.image.chain_id.clone(),
        spec: spec::build(&input).unwrap_or_else(|e| panic!("spec: {e}")),
        log_path,
        stdio,
    }
}

async fn wait_exit(f: &mut Fixture, id: &str) -> u32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, f.events.recv()).await {
            Ok(Some(RuntimeEvent::Exit {
                container_id,
                exit_status,
                ..
            })) if container_id == id => return exit_status,
            Ok(Some(_)) => {}
            other => panic!("no exit event for {id}: {other:?}"),
        }
    }
}

async fn wait_log(path: &Path, lines: usize) -> String {
    for _ in 0..100 {
        let s = tokio::fs::read_to_string(path).await.unwrap_or_default();
        if s.lines().count() >= lines {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::fs::read_to_string(path).await.unwrap_or_default()
}

/// Everything the container writes from now until its output ends, as (stdout, stderr).
async fn collect_output(rx: &mut tokio::sync::broadcast::Receiver<Output>) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(Output::Data(logs::Stream::Stdout, b))) => out.extend_from_slice(&b),
            Ok(Ok(Output::Data(logs::Stream::Stderr, b))) => err.extend_from_slice(&b),
            Ok(Ok(Output::End)) => break,
            other => panic!(
                "output did not end: {other:?}; so far {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// Start the container and join its live output before sending it anything.
async fn start_attached(
    f: &Fixture,
    req: CreateRequest,
) -> (
    String,
    std::sync::Arc<skiff_agent::runtime::stdio::ContainerIo>,
    tokio::sync::broadcast::Receiver<Output>,
) {
    let started = f
        .runtime
        .create_and_start(req)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let io = f
        .runtime
        .container_io(&started.id)
        .unwrap_or_else(|| panic!("no live stdio for {}", started.id));
    let rx = io
        .subscribe()
        .unwrap_or_else(|| panic!("output ended before anything was sent"));
    (started.id, io, rx)
}

fn cleanup(p: &Pod) {
    let _ = skiff_agent::sandbox::unpin(&p.sandbox_dir);
    cgroups::remove_pod_cgroups(&p.uid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_logs_and_pod_namespaces() {
    let mut f = fixture().await;
    let p = pod(&f, "pod-a");
    let req = request(
        &f,
        &p,
        "main",
        &[
            "sh",
            "-c",
            "echo hello; echo oops >&2; hostname; readlink /proc/self/ns/net; exit 3",
        ],
    );
    let log_path = req.log_path.clone();
    let started = f
        .runtime
        .create_and_start(req)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let code = wait_exit(&mut f, &started.id).await;
    assert_eq!(code, 3);
    let deleted = f
        .runtime
        .delete_task(&started.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deleted.map(|d| d.0), Some(3));

    let log = wait_log(&log_path, 4).await;
    let records: Vec<(String, String)> = log
        .lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let ts = parts.next().unwrap_or_default();
            assert!(
                ts.parse::<jiff::Timestamp>().is_ok(),
                "bad timestamp in {l:?}"
            );
            let stream = parts.next().unwrap_or_default().to_string();
            assert_eq!(parts.next(), Some("F"), "tag in {l:?}");
            (stream, parts.next().unwrap_or_default().to_string())
        })
        .collect();
    let net_ino = std::fs::metadata(&p.sandbox.net)
        .map(|m| m.ino())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        records.contains(&("stdout".into(), "hello".into())),
        "{log}"
    );
    assert!(records.contains(&("stderr".into(), "oops".into())), "{log}");
    assert!(
        records.contains(&("stdout".into(), "pod-a".into())),
        "hostname: {log}"
    );
    assert!(
        records.contains(&("stdout".into(), format!("net:[{net_ino}]"))),
        "netns: {log}"
    );

    assert!(f.runtime.remove(&started.id).await.is_empty());
    let left = f
        .runtime
        .list_containers(Some(&p.uid))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(left.is_empty(), "container record left behind");
    cleanup(&p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_running_container_stops_on_sigterm() {
    let mut f = fixture().await;
    let p = pod(&f, "pod-b");
    let req = request(
        &f,
        &p,
        "sleeper",
        &[
            "sh",
            "-c",
            "trap 'echo bye; exit 143' TERM; echo up; while true; do sleep 0.1; done",
        ],
    );
    let log_path = req.log_path.clone();
    let started = f
        .runtime
        .create_and_start(req)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    wait_log(&log_path, 1).await;
    let state = f
        .runtime
        .task_state(&started.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.map(|s| s.status), Some(TaskStatus::Running));
    // The one-call task list (relist, /metrics) names the task by its container's id.
    let tasks = f
        .runtime
        .list_tasks()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let listed_task = tasks.iter().find(|t| t.id == started.id);
    assert_eq!(
        listed_task.map(|t| t.status),
        Some(TaskStatus::Running),
        "task list: {tasks:?}"
    );
    let listed = f
        .runtime
        .list_containers(Some(&p.uid))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].meta.container_name, "sleeper");

    f.runtime
        .kill(&started.id, 15)
        .await
        .unwrap_or_else(|e| panic!("kill: {e}"));
    let code = wait_exit(&mut f, &started.id).await;
    assert_eq!(code, 143);
    let log = wait_log(&log_path, 2).await;
    assert!(log.lines().any(|l| l.ends_with(" stdout F bye")), "{log}");
    assert!(f.runtime.remove(&started.id).await.is_empty());
    cleanup(&p);
}

/// The socket of the shim serving container `id` (containerd keeps it in the task's bundle).
fn shim_socket(f: &Fixture, id: &str) -> PathBuf {
    let path = f
        ._ctrd
        .dir
        .join("state/io.containerd.runtime.v2.task")
        .join(&f.ns)
        .join(id)
        .join("address");
    let address =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    PathBuf::from(
        address
            .trim()
            .strip_prefix("unix://")
            .unwrap_or_else(|| panic!("shim address {address:?}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_one_pod_share_a_shim_and_pods_do_not() {
    let mut f = fixture().await;
    let p = pod(&f, "pod-s");
    let q = pod(&f, "pod-t");
    let mut ids = Vec::new();
    for (pod, name) in [(&p, "a"), (&p, "b"), (&q, "c")] {
        let req = request(&f, pod, name, &["sleep", "60"]);
        let started = f
            .runtime
            .create_and_start(req)
            .await
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        ids.push(started.id);
    }
    let shims: Vec<PathBuf> = ids.iter().map(|id| shim_socket(&f, id)).collect();
    assert!(shims[0].exists(), "{}", shims[0].display());
    assert_eq!(shims[0], shims[1], "one pod, one shim");
    assert_ne!(shims[0], shims[2], "another pod, another shim");

    // The container that started the shim goes first; the shim keeps serving the other one.
    f.runtime
        .kill(&ids[0], 9)
        .await
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert_eq!(wait_exit(&mut f, &ids[0]).await, 137);
    assert!(f.runtime.remove(&ids[0]).await.is_empty());
    let state = f
        .runtime
        .task_state(&ids[1])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.map(|s| s.status), Some(TaskStatus::Running));
    f.runtime
        .kill(&ids[1], 9)
        .await
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert_eq!(wait_exit(&mut f, &ids[1]).await, 137);
    assert!(f.runtime.remove(&ids[1]).await.is_empty());
    // With its last container gone the pod's shim exits (and removes its socket).
    let gone = async {
        while shims[0].exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .unwrap_or_else(|_| panic!("shim {} still there", shims[0].display()));
    assert!(f.runtime.remove(&ids[2]).await.is_empty());
    cleanup(&p);
    cleanup(&q);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_user_names_resolve_from_the_image() {
    let mut f = fixture().await;
    let (passwd, group) = f
        .runtime
        .image_user_db(&f.image.chain_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(passwd.contains("app:x:1234:4321"), "{passwd}");
    let resolved = skiff_agent::runtime::userdb::resolve("app:staff", &passwd, &group);
    assert_eq!(resolved.as_deref(), Ok("1234:50"));
    assert!(skiff_agent::runtime::userdb::resolve("nobody-here", &passwd, &group).is_err());

    let p = pod(&f, "pod-c");
    let mut req = request(&f, &p, "whoami", &["sh", "-c", "id -u; id -g"]);
    if let Some(proc_) = req.spec.process_mut() {
        proc_.set_user(
            oci_spec::runtime::UserBuilder::default()
                .uid(1234u32)
                .gid(50u32)
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let log_path = req.log_path.clone();
    let started = f
        .runtime
        .create_and_start(req)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    assert_eq!(wait_exit(&mut f, &started.id).await, 0);
    let log = wait_log(&log_path, 2).await;
    assert!(log.lines().any(|l| l.ends_with(" stdout F 1234")), "{log}");
    assert!(log.lines().any(|l| l.ends_with(" stdout F 50")), "{log}");
    assert!(f.runtime.remove(&started.id).await.is_empty());
    cleanup(&p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_once_and_a_terminal_for_the_main_process() {
    let mut f = fixture().await;
    let p = pod(&f, "pod-io");

    // stdin + stdinOnce, no tty: input arrives, closing stdin gives the process end of file.
    let once = StdioConfig {
        stdin: true,
        stdin_once: true,
        tty: false,
    };
    let req = request_with(
        &f,
        &p,
        "reader",
        &["sh", "-c", "read l; echo got:$l; cat; echo eof >&2"],
        once,
    );
    let (id, io, mut rx) = start_attached(&f, req).await;
    io.write_stdin(b"hi\nrest\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.runtime.close_stdin(&id, &io).await;
    let (out, err) = collect_output(&mut rx).await;
    assert_eq!(out, "got:hi\nrest\n");
    assert_eq!(err, "eof\n");
    assert_eq!(wait_exit(&mut f, &id).await, 0);
    // The last log copier drops the entry right after the output ends (the exit event can come first).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while f.runtime.container_io(&id).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the live stdio outlived the task's output"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(f.runtime.remove(&id).await.is_empty());

    // A terminal: one output stream, the size set through containerd, TERM set, a pts device.
    let req = request_with(
        &f,
        &p,
        "term",
        &["sh", "-c", "read x; stty size; echo x=$x term=$TERM; tty"],
        StdioConfig { tty: true, ..once },
    );
    let log_path = req.log_path.clone();
    let (id, io, mut rx) = start_attached(&f, req).await;
    f.runtime.resize_pty(&id, 100, 40).await;
    io.write_stdin(b"go\r")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (out, err) = collect_output(&mut rx).await;
    assert!(err.is_empty(), "a terminal has no stderr: {err:?}");
    assert!(out.contains("40 100\r\n"), "stty size: {out:?}");
    assert!(out.contains("x=go term=xterm\r\n"), "{out:?}");
    assert!(out.contains("/dev/pts/"), "tty: {out:?}");
    assert_eq!(wait_exit(&mut f, &id).await, 0);
    let log = wait_log(&log_path, 3).await;
    assert!(
        log.lines().any(|l| l.contains(" stdout F x=go term=xterm")),
        "{log}"
    );
    assert!(f.runtime.remove(&id).await.is_empty());
    cleanup(&p);
}
