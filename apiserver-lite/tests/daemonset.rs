//! apps/v1 DaemonSets through kubectl against the real server (its controllers and scheduler). No agent
//! runs: the nodes are fake ones this test registers and marks Ready, and the test plays the kubelet by
//! patching pod status Ready.

mod common;

use std::time::{Duration, Instant};

use common::{Server, have, path_str};

fn node(s: &Server, name: &str, taints: &str) {
    let yaml = format!(
        "apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{kubernetes.io/hostname: {name}}}
spec:
  taints: {taints}
"
    );
    s.ok(&[
        "apply",
        "-f",
        path_str(&s.write(&format!("{name}.yaml"), &yaml)),
    ]);
    s.ok(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"capacity":{"cpu":"4","memory":"8Gi","pods":"110"},"allocatable":{"cpu":"4","memory":"8Gi","pods":"110"},"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"fake node"}]}}"#,
    ]);
}

const DAEMONSET: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: 127.0.0.1:5000/library/busybox:1.35
        command: [sleep, '3600']
";

fn wait_for(s: &Server, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}\n{}",
            s.ok(&["get", "ds,pods,events", "-o", "wide"]),
            common::tail(&s.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `<pod> <node>` lines of the DaemonSet's pods, sorted by node.
fn pods_by_node(s: &Server) -> Vec<(String, String)> {
    let out = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=agent",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{"\n"}{end}"#,
    ]);
    let mut pods: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(p, n)| (n.to_string(), p.to_string()))
        .collect();
    pods.sort();
    pods
}

/// `<revision> <change-cause>` rows of `kubectl rollout history daemonset/agent`.
fn history_rows(s: &Server) -> Vec<String> {
    s.ok(&["rollout", "history", "daemonset/agent"])
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| {
            let (rev, cause) = l.trim().split_once(char::is_whitespace)?;
            Some(format!("{rev} {}", cause.trim()))
        })
        .collect()
}

/// Play the kubelet (finish deletions, mark pods Ready) until both pods run `image`.
fn roll_to(s: &Server, image: &str) {
    wait_for(s, &format!("both pods on {image}"), || {
        let out = s.ok(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp} {.status.phase} {.spec.containers[0].image}{"\n"}{end}"#,
        ]);
        let mut current = 0;
        for line in out.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let [pod, deleting, phase, pod_image] = fields[..] else {
                continue;
            };
            if !deleting.is_empty() {
                s.ok(&["delete", "pod", pod, "--grace-period=0", "--force"]);
            } else if phase != "Running" {
                s.ok(&[
                    "patch",
                    "pod",
                    pod,
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
                ]);
            } else if pod_image == image {
                current += 1;
            }
        }
        current == 2 && out.lines().count() == 2
    });
}

#[test]
fn daemonset_with_kubectl() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    let resources = s.ok(&["api-resources", "--api-group=apps", "--no-headers"]);
    let ds_line: Vec<&str> = resources
        .lines()
        .find(|l| l.starts_with("daemonsets "))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        ds_line,
        ["daemonsets", "ds", "apps/v1", "true", "DaemonSet"],
        "{resources}"
    );

    node(&s, "n1", "[]");
    node(&s, "n2", "[]");
    node(
        &s,
        "gpu",
        "[{key: dedicated, value: gpu, effect: NoSchedule}]",
    );
    let f = s.write("ds.yaml", DAEMONSET);
    s.ok(&["apply", "-f", path_str(&f)]);

    // One pod per Ready untainted node, bound by the scheduler; none on the tainted node.
    wait_for(&s, "pods bound to n1 and n2", || {
        let nodes: Vec<String> = pods_by_node(&s).into_iter().map(|(n, _)| n).collect();
        nodes == ["n1", "n2"]
    });
    let pods = pods_by_node(&s);
    for (node, pod) in &pods {
        assert!(
            pod.starts_with("agent-") && pod.len() == "agent-".len() + 5,
            "{pod}"
        );
        let owner = s.ok(&[
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].values[0]}",
        ]);
        assert_eq!(owner, format!("DaemonSet/agent {node}"));
    }

    // `kubectl get ds`: kube's columns; the counts once the status has caught up.
    let header = s.ok(&["get", "ds"]);
    let header: Vec<&str> = header
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE",
            "SELECTOR",
            "AGE"
        ]
    );
    wait_for(&s, "2 desired, 2 current, 2 up to date", || {
        let row = s.ok(&["get", "ds", "agent", "--no-headers"]);
        row.split_whitespace().take(7).collect::<Vec<_>>()
            == ["agent", "2", "2", "0", "2", "0", "<none>"]
    });
    let wide = s.ok(&["get", "ds", "agent", "-o", "wide", "--no-headers"]);
    let wide: Vec<&str> = wide.split_whitespace().collect();
    assert_eq!(
        wide[wide.len() - 3..],
        ["agent", "127.0.0.1:5000/library/busybox:1.35", "app=agent"]
    );

    // The kubelet's part: the pods are Ready. Then the rollout is complete.
    for (_, pod) in &pods {
        s.ok(&[
            "patch",
            "pod",
            pod,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
        ]);
    }
    let rolled = s.ok(&["rollout", "status", "daemonset/agent", "--timeout=20s"]);
    assert!(
        rolled.contains("daemon set \"agent\" successfully rolled out"),
        "{rolled}"
    );
    let row = s.ok(&["get", "ds", "agent", "--no-headers"]);
    assert_eq!(
        row.split_whitespace().take(6).collect::<Vec<_>>(),
        ["agent", "2", "2", "2", "2", "2"]
    );

    let described = s.ok(&["describe", "ds", "agent"]);
    assert!(
        described.contains("Pods Status:  2 Running / 0 Waiting / 0 Succeeded / 0 Failed"),
        "{described}"
    );
    assert!(described.contains("SuccessfulCreate"), "{described}");

    // History: each template is a ControllerRevision; `kubectl rollout history/undo` read them.
    s.ok(&[
        "annotate",
        "ds",
        "agent",
        "kubernetes.io/change-cause=image 1.36",
    ]);
    s.ok(&[
        "set",
        "image",
        "daemonset/agent",
        "agent=127.0.0.1:5000/library/busybox:1.36",
    ]);
    roll_to(&s, "127.0.0.1:5000/library/busybox:1.36");
    wait_for(&s, "revisions 1 and 2", || {
        history_rows(&s) == ["1 <none>", "2 image 1.36"]
    });
    let revisions = s.ok(&["get", "controllerrevisions"]);
    let rows: Vec<Vec<&str>> = revisions
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "CONTROLLER", "REVISION", "AGE"]);
    assert!(
        rows[1..]
            .iter()
            .all(|r| r[0].starts_with("agent-") && r[1] == "daemonset.apps/agent"),
        "{revisions}"
    );
    let first = s.ok(&["rollout", "history", "daemonset/agent", "--revision=1"]);
    assert!(
        first.contains("Image:\t127.0.0.1:5000/library/busybox:1.35")
            || first.contains("Image:      127.0.0.1:5000/library/busybox:1.35"),
        "{first}"
    );
    let undone = s.ok(&["rollout", "undo", "daemonset/agent"]);
    assert!(
        undone.contains("daemonset.apps/agent rolled back"),
        "{undone}"
    );
    roll_to(&s, "127.0.0.1:5000/library/busybox:1.35");
    wait_for(&s, "revision 1 is now 3", || {
        history_rows(&s) == ["2 image 1.36", "3 <none>"]
    });

    // Validation answers like kube's.
    let bad = DAEMONSET
        .replace("name: agent\nspec", "name: bad\nspec")
        .replace("labels: {app: agent}", "labels: {app: other}");
    let err = s.fails(&["apply", "-f", "-"], Some(&bad));
    assert!(
        err.contains("The DaemonSet \"bad\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"),
        "{err}"
    );

    // Deleting the DaemonSet: its pods go with it (the garbage collector; graceful, so without a kubelet
    // they stay terminating).
    s.ok(&["delete", "ds", "agent", "--wait=false"]);
    wait_for(&s, "the DaemonSet is gone", || {
        s.ok(&["get", "ds", "-o", "name"]).trim().is_empty()
    });
    wait_for(&s, "its pods are being deleted", || {
        let out = s.ok(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={range .items[*]}{.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ]);
        out.lines().count() == 2 && out.lines().all(|l| !l.is_empty())
    });
}
