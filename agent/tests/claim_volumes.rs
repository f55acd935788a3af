//! persistentVolumeClaim volumes end to end: real kubectl → skiff-apiserver (in this process) → the real
//! `skiff-agent` binary → a private containerd. PersistentVolumes are hostPath directories in the test's
//! temp dir, pre-bound to their claims; the agent's `--storage-dir` is the test's own. Pods use the host
//! network and are bound by `spec.nodeName`, so no bridge, CNI or lab state is touched. Needs root.

mod support;

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use support::cluster::{self, Cluster, Kubectl, PodCleanup, Setup, wait_until};

fn create(k: &Kubectl, dir: &Path, name: &str, text: String) {
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &p.to_string_lossy()]);
}

fn claim_phase(k: &Kubectl, claim: &str) -> String {
    String::from_utf8_lossy(
        &k.run(
            &["get", "pvc", claim, "-o", "jsonpath={.status.phase}"],
            None,
        )
        .stdout,
    )
    .into_owned()
}

/// A hostPath PersistentVolume pre-bound to `claim` (uid included), then waits for the API server's volume
/// binder to bind the pair.
fn bind(k: &Kubectl, dir: &Path, pv: &str, claim: &str, class: &str, path: &Path) {
    let uid = k.ok(&["get", "pvc", claim, "-o", "jsonpath={.metadata.uid}"]);
    create(
        k,
        dir,
        pv,
        format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {pv}}}\nspec:\n  storageClassName: \"{class}\"\n  \
             capacity: {{storage: 1Mi}}\n  accessModes: [ReadWriteOnce]\n  persistentVolumeReclaimPolicy: Retain\n  \
             claimRef: {{namespace: default, name: {claim}, uid: {uid}}}\n  \
             hostPath: {{path: {}, type: DirectoryOrCreate}}\n",
            path.display()
        ),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline && claim_phase(k, claim) != "Bound" {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        claim_phase(k, claim),
        "Bound",
        "the volume binder did not bind claim {claim} to {pv} within 20 s"
    );
}

fn claim_manifest(name: &str, class: &str, volume: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n  storageClassName: \"{class}\"\n  \
         volumeName: {volume}\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Mi}}}}\n"
    )
}

fn pod_manifest(node: &str, name: &str, claim: &str, read_only: bool, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  securityContext: {{fsGroup: 4321}}\n  \
         volumes: [{{name: data, persistentVolumeClaim: {{claimName: {claim}, readOnly: {read_only}}}}}]\n  \
         containers:\n  - name: main\n    image: busybox:test\n    command: [sh, -c, '{script}']\n    \
         volumeMounts: [{{name: data, mountPath: /data}}]\n"
    )
}

/// Containers containerd has for the pod (ids start with the pod's uid).
fn containers_of(socket: &Path, namespace: &str, pod_uid: &str) -> Vec<String> {
    let out = std::process::Command::new("ctr")
        .args(["--address", &socket.to_string_lossy(), "-n", namespace])
        .args(["containers", "ls", "-q"])
        .output()
        .unwrap_or_else(|e| panic!("ctr: {e}"));
    assert!(
        out.status.success(),
        "ctr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(pod_uid))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_bound_to_host_path_volumes() {
    let Cluster {
        ctrd,
        reg,
        dir,
        server,
        node,
        agent,
        k,
        ..
    } = cluster::start(Setup {
        name: "claim-vol",
        tag: "pv",
        busybox_dir: "pv-busybox",
        applets: &["sh", "echo", "sleep", "cat"],
        cluster_cidr: "10.231.0.0/16",
        service_cidr: "10.232.0.0/16",
        agent_args: cluster::no_agent_args,
    });
    // Restarted below: assigned, not shadowed, so it outlives the pod clean-up declared later.
    let mut agent = agent;
    let _cleanup = PodCleanup(k.clone(), vec!["writer", "reader", "waiting"]);
    let storage = dir.join("storage");

    // A claim bound to a hostPath volume: what the container writes is on the host.
    create(&k, &dir.path, "data", claim_manifest("data", "", "pv-data"));
    let host = dir.join("volumes/pv-data");
    bind(&k, &dir.path, "pv-data", "data", "", &host);
    create(
        &k,
        &dir.path,
        "writer",
        pod_manifest(
            &node,
            "writer",
            "data",
            false,
            "echo hello > /data/out; sleep 3600",
        ),
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/writer",
        "--timeout=90s",
    ]);
    wait_until(
        "the written file on the host",
        Duration::from_secs(10),
        || std::fs::read_to_string(host.join("out")).is_ok_and(|s| s == "hello\n"),
    );
    let meta = std::fs::metadata(&host).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        meta.mode() & 0o7777,
        0o755,
        "DirectoryOrCreate made as the kubelet"
    );
    assert_ne!(meta.gid(), 4321, "fsGroup does not chown host-path volumes");

    // The same claim read-only: readable, not writable.
    create(
        &k,
        &dir.path,
        "reader",
        pod_manifest(
            &node,
            "reader",
            "data",
            true,
            "cat /data/out; (echo x > /data/ro) 2>/dev/null && echo writable || echo readonly; sleep 3600",
        ),
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/reader",
        "--timeout=60s",
    ]);
    wait_until("the reader's output", Duration::from_secs(20), || {
        k.ok(&["logs", "reader"]).trim_end() == "hello\nreadonly"
    });
    assert!(!host.join("ro").exists());

    // A claim that is not bound: FailedMount, the pod waits in ContainerCreating, no container exists.
    create(
        &k,
        &dir.path,
        "pending",
        claim_manifest("pending", "none-such", "pv-late"),
    );
    create(
        &k,
        &dir.path,
        "waiting",
        pod_manifest(
            &node,
            "waiting",
            "pending",
            false,
            "echo late > /data/out; sleep 3600",
        ),
    );
    let want = "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], \
                failed to process volumes=[data]: error processing PVC default/pending: PVC is not bound";
    let mut events = String::new();
    wait_until("a FailedMount event", Duration::from_secs(60), || {
        events = k.ok(&[
            "get",
            "events",
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.name}|{.reason}|{.message}{\"\\n\"}{end}",
        ]);
        events.contains(&format!("waiting|FailedMount|{want}"))
    });
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "waiting",
            "-o",
            "jsonpath={.status.phase}|{.status.containerStatuses[0].state.waiting.reason}",
        ]),
        "Pending|ContainerCreating"
    );
    let waiting_uid = k.ok(&["get", "pod", "waiting", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        containers_of(&ctrd.socket, "skiff-pv-test", &waiting_uid),
        Vec::<String>::new()
    );
    // Once bound, the next retry starts it.
    let late = dir.join("volumes/pv-late");
    bind(&k, &dir.path, "pv-late", "pending", "none-such", &late);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/waiting",
        "--timeout=60s",
    ]);
    wait_until("the late pod's file", Duration::from_secs(10), || {
        std::fs::read_to_string(late.join("out")).is_ok_and(|s| s == "late\n")
    });

    // Clean-up of the storage dir, at the agent's start: a directory whose volume does not exist goes;
    // one whose claim a pod of the node uses stays, and so does anything not of the provisioner's shape.
    let uid = |n: u8| format!("6d0f3a52-1c7e-4b8a-9f7d-2a4c5e6b7c{n:02x}");
    let gone = storage.join(format!("pvc-{}_default_gone", uid(1)));
    let used = storage.join(format!("pvc-{}_default_data", uid(2)));
    let link = storage.join(format!("pvc-{}_default_link", uid(3)));
    let other = storage.join("not-a-volume");
    let outside = dir.join("outside");
    for d in [
        gone.join("sub"),
        used.clone(),
        other.clone(),
        outside.clone(),
    ] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(gone.join("sub/file"), "x").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(outside.join("file"), "x").unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&outside, gone.join("link")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&outside, &link).unwrap_or_else(|e| panic!("{e}"));
    agent = cluster::restart_agent(agent, false);
    wait_until(
        "the restarted agent removes the leftover directory",
        Duration::from_secs(60),
        || !gone.exists(),
    );
    assert!(used.is_dir(), "the directory of a claim in use is kept");
    assert!(link.is_symlink() && other.is_dir() && outside.join("file").exists());
    let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
    assert!(
        log.contains("removed the directory of a deleted PersistentVolume"),
        "{}",
        cluster::tail(&log, 30)
    );
    // The pods using that claim go: so does its directory, at a later pass (every 60 s).
    k.ok(&[
        "delete",
        "pod",
        "writer",
        "reader",
        "--grace-period=1",
        "--timeout=60s",
    ]);
    wait_until(
        "the unused directory is removed",
        Duration::from_secs(90),
        || !used.exists(),
    );
    // The volumes' own directories are not the agent's to remove (their PersistentVolumes exist).
    assert_eq!(
        std::fs::read_to_string(host.join("out")).ok().as_deref(),
        Some("hello\n")
    );

    drop(_cleanup);
    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
}
