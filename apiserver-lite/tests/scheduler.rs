//! The scheduler inside the real server, and `pods/binding`, through kubectl. No agent runs: the two nodes
//! are fake ones this test registers and marks Ready (API-level test; pods need not run to be placed).

mod common;

use std::time::{Duration, Instant};

use common::{Server, path_str};

fn node(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{kubernetes.io/hostname: {name}}}
"
    )
}

fn pod(name: &str, node: Option<&str>, cpu: &str, memory: &str) -> String {
    let node_line = node
        .map(|n| format!("  nodeName: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
{node_line}  containers:
  - name: c
    image: 127.0.0.1:5000/library/busybox:1.35
    resources:
      requests: {{cpu: \"{cpu}\", memory: \"{memory}\"}}
"
    )
}

fn ready(s: &Server, name: &str) {
    s.ok(&[
        "apply",
        "-f",
        path_str(&s.write(&format!("{name}.yaml"), &node(name))),
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

fn node_of(s: &Server, pod: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = s.ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"]);
        if !n.is_empty() {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{pod} was not scheduled:\n{}",
            s.ok(&["get", "events"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Both nodes have 4 cpu / 8 GiB. With the new pod (1 cpu, 2 GiB) placed, LeastAllocated scores both 49
/// (aa-skewed: cpu 25 + memory 74; zz-even: cpu 50 + memory 48; halved), so without BalancedAllocation the
/// tie would go to the first name. BalancedAllocation scores aa-skewed 75 (fractions 0.75 and 0.25) and
/// zz-even 99 (0.5 and 0.51), so the pod goes to zz-even.
#[test]
fn balanced_allocation_decides_between_equally_free_nodes() {
    let s = Server::start();
    ready(&s, "aa-skewed");
    ready(&s, "zz-even");
    // Already placed: 2 cpu / 1 MiB on aa-skewed, 1 cpu / 2148 MiB on zz-even.
    for (name, node, cpu, mem) in [
        ("on-skewed", "aa-skewed", "2", "1Mi"),
        ("on-even", "zz-even", "1", "2148Mi"),
    ] {
        let f = s.write(&format!("{name}.yaml"), &pod(name, Some(node), cpu, mem));
        s.ok(&["apply", "-f", path_str(&f)]);
    }
    let f = s.write("new.yaml", &pod("new", None, "1", "2Gi"));
    s.ok(&["apply", "-f", path_str(&f)]);
    assert_eq!(node_of(&s, "new"), "zz-even");
    let scheduled = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=new,reason=Scheduled",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        scheduled.contains("Successfully assigned default/new to zz-even"),
        "{scheduled}"
    );
}

/// `pods/binding`: a Binding places an unscheduled pod; binding it again is a 409 Conflict.
#[test]
fn binding_subresource_binds_once() {
    let s = Server::start();
    // Unschedulable by the scheduler (no node is Ready), so only the Binding places it.
    let f = s.write("p.yaml", &pod("manual", None, "100m", "10Mi"));
    s.ok(&["apply", "-f", path_str(&f)]);
    let binding = s.write(
        "binding.json",
        r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"manual"},"target":{"apiVersion":"v1","kind":"Node","name":"n-manual"}}"#,
    );
    let path = "/api/v1/namespaces/default/pods/manual/binding";
    s.ok(&["create", "--raw", path, "-f", path_str(&binding)]);
    assert_eq!(
        s.ok(&["get", "pod", "manual", "-o", "jsonpath={.spec.nodeName}"]),
        "n-manual"
    );
    let scheduled = s.ok(&[
        "get",
        "pod",
        "manual",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].status}",
    ]);
    assert_eq!(scheduled, "True");
    let err = s.fails(&["create", "--raw", path, "-f", path_str(&binding)], None);
    assert!(
        err.contains("is already assigned to node") && err.contains("Conflict"),
        "{err}"
    );
}
