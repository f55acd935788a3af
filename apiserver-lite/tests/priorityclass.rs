//! scheduling.k8s.io/v1 PriorityClasses and the Priority admission through kubectl 1.32 against the real
//! server: the system classes it creates at start-up, `kubectl create priorityclass` (typed client, may
//! send protobuf), `kubectl get pc`, `kubectl explain`, and pods whose priority comes from their class.
//!
//! API-level test: no agent or node; pods stay Pending.

mod common;

use common::{Server, have, path_str};

fn pod(name: &str, class: Option<&str>) -> String {
    let class = class
        .map(|c| format!("  priorityClassName: {c}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
{class}  containers:
  - name: c
    image: 127.0.0.1:5000/library/busybox:1.35
"
    )
}

/// The table `kubectl get` printed, as rows of cells (columns are separated by at least two spaces).
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

fn priority(s: &Server, pod: &str) -> String {
    s.ok(&[
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.spec.priorityClassName} {.spec.priority} {.spec.preemptionPolicy}",
    ])
}

#[test]
fn priority_classes_resolve_pod_priorities() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    let out = s.ok(&[
        "api-resources",
        "--api-group=scheduling.k8s.io",
        "--no-headers",
    ]);
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == [
                "priorityclasses",
                "pc",
                "scheduling.k8s.io/v1",
                "false",
                "PriorityClass"
            ]),
        "{out}"
    );

    // The system classes exist from the start.
    let table = rows(&s.ok(&["get", "pc"]));
    assert_eq!(
        table[0],
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
        "{table:?}"
    );
    let names: Vec<&str> = table[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        ["system-cluster-critical", "system-node-critical"],
        "{table:?}"
    );
    assert_eq!(table[2][1..3], ["2000001000", "false"], "{table:?}");
    assert_eq!(table[2][4], "PreemptLowerPriority", "{table:?}");
    let err = s.fails(&["delete", "pc", "system-node-critical"], None);
    assert!(
        err.contains(
            "priorityclasses.scheduling.k8s.io \"system-node-critical\" is forbidden: this is a \
             system priority class and cannot be deleted"
        ),
        "{err}"
    );

    // kubectl's typed generator.
    let created = s.ok(&[
        "create",
        "priorityclass",
        "high",
        "--value=1000",
        "--global-default=false",
        "--description=x",
        "-o",
        "jsonpath={.value} {.description} {.preemptionPolicy}",
    ]);
    assert_eq!(created, "1000 x PreemptLowerPriority");
    let err = s.fails(
        &["create", "priorityclass", "huge", "--value=1000000001"],
        None,
    );
    assert!(
        err.contains("maximum allowed value of a user defined priority is 1000000000"),
        "{err}"
    );

    s.ok(&[
        "apply",
        "-f",
        path_str(&s.write("a.yaml", &pod("a", Some("high")))),
    ]);
    assert_eq!(priority(&s, "a"), "high 1000 PreemptLowerPriority");
    s.ok(&[
        "apply",
        "-f",
        path_str(&s.write("crit.yaml", &pod("crit", Some("system-node-critical")))),
    ]);
    assert_eq!(
        priority(&s, "crit"),
        "system-node-critical 2000001000 PreemptLowerPriority"
    );
    s.ok(&[
        "apply",
        "-f",
        path_str(&s.write("plain.yaml", &pod("plain", None))),
    ]);
    assert_eq!(priority(&s, "plain"), " 0 PreemptLowerPriority");

    // A class that does not exist: refused, nothing stored.
    let err = s.fails(
        &[
            "apply",
            "-f",
            path_str(&s.write("m.yaml", &pod("m", Some("missing")))),
        ],
        None,
    );
    assert!(
        err.contains("pods \"m\" is forbidden: no PriorityClass with name missing was found"),
        "{err}"
    );
    let err = s.fails(&["get", "pod", "m"], None);
    assert!(err.contains("pods \"m\" not found"), "{err}");

    // A global default class applies to pods that name none.
    s.ok(&[
        "create",
        "priorityclass",
        "fallback",
        "--value=10",
        "--global-default=true",
        "--preemption-policy=Never",
    ]);
    let err = s.fails(
        &[
            "create",
            "priorityclass",
            "second",
            "--value=20",
            "--global-default=true",
        ],
        None,
    );
    assert!(
        err.contains(
            "PriorityClass fallback is already marked as default. Only one default can exist"
        ),
        "{err}"
    );
    s.ok(&["apply", "-f", path_str(&s.write("d.yaml", &pod("d", None)))]);
    assert_eq!(priority(&s, "d"), "fallback 10 Never");
    let table = rows(&s.ok(&["get", "pc", "fallback", "--no-headers"]));
    assert_eq!(table[0][..3], ["fallback", "10", "true"], "{table:?}");

    // The default class itself may be changed (client-side apply: a strategic merge patch).
    let manifest = "apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: fallback
value: 10
globalDefault: true
preemptionPolicy: Never
description: the fallback
";
    let file = s.write("fallback.yaml", manifest);
    s.ok(&["apply", "-f", path_str(&file)]);
    let description = s.ok(&["get", "pc", "fallback", "-o", "jsonpath={.description}"]);
    assert_eq!(description, "the fallback");

    // Value is immutable.
    let err = s.fails(
        &[
            "patch",
            "pc",
            "high",
            "--type=merge",
            "-p",
            r#"{"value":5}"#,
        ],
        None,
    );
    assert!(
        err.contains("value: Forbidden: may not be changed in an update."),
        "{err}"
    );

    let explain = s.ok(&["explain", "pc.value"]);
    assert!(
        explain.contains("GROUP:      scheduling.k8s.io"),
        "{explain}"
    );
    assert!(
        explain.contains("value represents the integer value of this priority class"),
        "{explain}"
    );
}
