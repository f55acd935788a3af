//! Deployments through the real kubectl: create, rollout status, set image, rollout history and undo,
//! scale. There is no agent: a thread plays it, marking every pod Ready through `pods/status` as the
//! agent does once the pod's containers run.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Server, have};

/// `(name, ready)` of the pods not being deleted.
fn pods(s: &Server) -> Vec<(String, bool)> {
    let out = s.ok(&[
        "get",
        "pods",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name},{.metadata.deletionTimestamp},{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
    ]);
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split(',');
            let name = parts.next()?.to_string();
            let deleting = !parts.next()?.is_empty();
            let ready = parts.next() == Some("True");
            (!deleting).then_some((name, ready))
        })
        .collect()
}

/// The agent's part: every pod that is not Ready yet becomes Running and Ready.
fn play_agent(s: &Server, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        for (name, ready) in pods(s) {
            if ready {
                continue;
            }
            let now = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let patch = format!(
                r#"{{"status":{{"phase":"Running","conditions":[{{"type":"Ready","status":"True","lastTransitionTime":"{now}"}}]}}}}"#
            );
            // The pod may be gone meanwhile (scaled down); the next round sees that.
            let _ = s.kubectl(&[
                "patch",
                "pod",
                &name,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch,
            ]);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `name image replicas` of each ReplicaSet.
fn replica_sets(s: &Server) -> Vec<(String, String, String)> {
    let out = s.ok(&[
        "get",
        "rs",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.spec.template.spec.containers[0].image} {.spec.replicas}{"\n"}{end}"#,
    ]);
    out.lines()
        .filter_map(|l| {
            let p: Vec<&str> = l.split_whitespace().collect();
            Some((
                p.first()?.to_string(),
                p.get(1)?.to_string(),
                p.get(2)?.to_string(),
            ))
        })
        .collect()
}

fn rollout_status(s: &Server) {
    let out = s.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
}

#[test]
fn deployment_rollout_with_kubectl() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Arc::new(Server::start());
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1",
        "--replicas=2",
    ]);
    wait_for("2 pods", || pods(&s).len() == 2);
    let owners = s.ok(&[
        "get",
        "pods",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {end}"#,
    ]);
    let first_rs = replica_sets(&s)[0].0.clone();
    assert!(first_rs.starts_with("web-"), "{first_rs}");
    assert_eq!(
        owners.split_whitespace().collect::<Vec<_>>(),
        [
            format!("ReplicaSet/{first_rs}"),
            format!("ReplicaSet/{first_rs}")
        ]
    );

    let stop = Arc::new(AtomicBool::new(false));
    let agent = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || play_agent(&s, &stop))
    };
    rollout_status(&s);
    let row = s.ok(&["get", "deploy", "web", "--no-headers"]);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[..4], ["web", "2/2", "2", "2"], "{row}");
    // The controller's revision annotation is no new generation (it goes through the status, as kube's
    // does), and the template kubectl sent in protobuf carries no `generation: 0`.
    let meta = s.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        r#"jsonpath={.metadata.generation} {.status.observedGeneration} {.metadata.annotations.deployment\.kubernetes\.io/revision} [{.spec.template.metadata.generation}]"#,
    ]);
    assert_eq!(meta, "1 1 1 []", "{meta}");

    s.ok(&["set", "image", "deployment/web", "nginx=nginx:2"]);
    rollout_status(&s);
    let sets = replica_sets(&s);
    assert_eq!(sets.len(), 2, "{sets:?}");
    let new = sets.iter().find(|rs| rs.1 == "nginx:2").expect("new set");
    assert_eq!(new.2, "2");
    assert!(
        sets.iter().any(|rs| rs.0 == first_rs && rs.2 == "0"),
        "{sets:?}"
    );

    let history = s.ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    let undo = s.ok(&["rollout", "undo", "deployment/web"]);
    assert!(undo.contains("rolled back"), "{undo}");
    rollout_status(&s);
    let sets = replica_sets(&s);
    assert_eq!(sets.len(), 2, "the first set is reused: {sets:?}");
    assert!(
        sets.iter().any(|rs| rs.0 == first_rs && rs.2 == "2"),
        "{sets:?}"
    );
    let history = s.ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");

    s.ok(&["scale", "deployment/web", "--replicas=3"]);
    wait_for("3 pods", || pods(&s).len() == 3);
    rollout_status(&s);
    stop.store(true, Ordering::Relaxed);
    agent.join().expect("agent thread");
}
