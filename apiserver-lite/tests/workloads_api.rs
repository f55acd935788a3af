//! apps/v1 Deployments and ReplicaSets through the real kubectl 1.32: discovery, defaults, kube's
//! validation errors, the server-side columns and the `scale` subresource. Nothing here needs the
//! controllers: whatever ReplicaSets or pods they may add is not looked at. The ReplicationController test
//! at the end does look at the pods its controller makes.

mod common;

use common::{Server, have};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels: {app: api}
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: main
        image: IMAGE
";

const REPLICA_SET: &str = "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: manual
spec:
  selector:
    matchLabels: {tier: manual}
  template:
    metadata:
      labels: {tier: manual}
    spec:
      containers:
      - name: c
        image: busybox:1.36
";

fn jsonpath(s: &Server, what: &str, path: &str) -> String {
    s.ok(&["get", what, "-o", &format!("jsonpath={path}")])
}

/// The whitespace-split row of `out` whose first word is `name`.
fn row(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|w| w.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{out}"))
}

fn header(out: &str) -> Vec<String> {
    row(out, "NAME")
}

#[test]
fn deployments_and_replica_sets_through_kubectl() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();

    // Discovery.
    let out = s.ok(&["api-resources", "--api-group=apps", "--no-headers"]);
    assert_eq!(
        row(&out, "deployments"),
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    assert_eq!(
        row(&out, "replicasets"),
        ["replicasets", "rs", "apps/v1", "true", "ReplicaSet"]
    );

    // kubectl's generator, defaults, columns.
    // kubectl's typed client sends this one in protobuf; the answer is the created object (generation 1).
    let created = s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
        "-o",
        "jsonpath={.metadata.generation} {.spec.replicas} {.spec.selector.matchLabels.app}",
    ]);
    assert_eq!(created, "1 2 web");
    let rs_file = s.write("rs.yaml", REPLICA_SET);
    s.ok(&["create", "-f", common::path_str(&rs_file)]);
    let d = jsonpath(
        &s,
        "deploy/web",
        "{.spec.strategy.type} {.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds} {.spec.template.spec.restartPolicy} {.spec.template.spec.containers[0].imagePullPolicy}",
    );
    assert_eq!(d, "RollingUpdate 25% 10 600 Always Always");
    assert_eq!(jsonpath(&s, "rs/manual", "{.spec.replicas}"), "1");

    let out = s.ok(&["get", "deploy,rs"]);
    assert_eq!(
        header(&out)[..5],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    let web = row(&out, "deployment.apps/web");
    assert_eq!((web[1].as_str(), web[3].as_str()), ("0/2", "0"), "{out}");
    assert!(
        out.contains("NAME                     DESIRED   CURRENT   READY   AGE")
            || out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]),
        "{out}"
    );
    // DESIRED and READY (a ReplicaSet controller may have made pods, none can be ready without nodes).
    let manual = row(&out, "replicaset.apps/manual");
    assert_eq!(
        (manual[1].as_str(), manual[3].as_str()),
        ("1", "0"),
        "{out}"
    );
    let out = s.ok(&["get", "deploy", "web", "-o", "wide"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(row(&out, "web")[5..], ["nginx", "nginx", "app=web"]);
    let out = s.ok(&["get", "rs", "manual", "-o", "wide"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        row(&out, "manual")[5..],
        ["c", "busybox:1.36", "tier=manual"]
    );
    assert!(s.ok(&["get", "all"]).contains("deployment.apps/web"));
    assert!(
        s.ok(&["describe", "deployment", "web"])
            .contains("RollingUpdateStrategy:  25% max unavailable, 25% max surge")
    );

    // apply, then a re-apply with a new image: one new generation (read from the answers, so that a
    // controller's own writes in between do not count).
    let apply = |image: &str| {
        let args = ["apply", "-f", "-", "-o", "jsonpath={.metadata.generation}"];
        let out = s.kubectl_stdin(&args, Some(&DEPLOYMENT.replace("IMAGE", image)));
        assert!(
            out.status.success(),
            "apply: {out:?}\n{}",
            common::tail(&s.log(), 30)
        );
        String::from_utf8_lossy(&out.stdout)
            .parse::<i64>()
            .expect("generation")
    };
    assert_eq!(apply("nginx:1.26"), 1);
    let before: i64 = jsonpath(&s, "deploy/api", "{.metadata.generation}")
        .parse()
        .expect("generation");
    assert_eq!(apply("nginx:1.27"), before + 1);
    assert_eq!(
        jsonpath(
            &s,
            "deploy/api",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.27"
    );

    // The scale subresource: merge (kubectl scale), JSON and strategic patches, GET as a table.
    let before: i64 = jsonpath(&s, "deploy/web", "{.metadata.generation}")
        .parse()
        .expect("generation");
    s.ok(&["scale", "deployment/web", "--replicas=5"]);
    assert_eq!(
        jsonpath(&s, "deploy/web", "{.spec.replicas} {.metadata.generation}"),
        format!("5 {}", before + 1)
    );
    s.ok(&["scale", "rs/manual", "--replicas=3"]);
    assert_eq!(jsonpath(&s, "rs/manual", "{.spec.replicas}"), "3");
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "--subresource=scale",
        "--type=json",
        "-p",
        r#"[{"op": "replace", "path": "/spec/replicas", "value": 4}]"#,
    ]);
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "--subresource=scale",
        "-p",
        r#"{"spec": {"replicas": 6}}"#,
    ]);
    let out = s.ok(&["get", "deploy", "web", "--subresource=scale"]);
    assert_eq!(header(&out), ["NAME", "DESIRED", "AVAILABLE", "AGE"]);
    assert_eq!(row(&out, "web")[1], "6");
    let scale = s.ok(&["get", "deploy", "web", "--subresource=scale", "-o", "json"]);
    let scale: serde_json::Value = serde_json::from_str(&scale).expect("scale json");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["status"]["selector"], "app=web");
    // A stale resourceVersion on PUT is a conflict; a negative count is kube's 422.
    let mut stale = scale.clone();
    stale["metadata"]["resourceVersion"] = serde_json::json!("1");
    stale["spec"]["replicas"] = serde_json::json!(1);
    let scale_url = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    let err = s.fails(
        &["replace", "--raw", scale_url, "-f", "-"],
        Some(&stale.to_string()),
    );
    let conflict =
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified";
    assert!(err.contains(conflict), "{err}");
    let err = s.fails(
        &[
            "patch",
            "deploy",
            "web",
            "--subresource=scale",
            "--type=merge",
            "-p",
            r#"{"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}}"#,
        ],
        None,
    );
    assert!(err.contains(conflict), "{err}");
    // The current resourceVersion (or none) goes through.
    stale["metadata"]["resourceVersion"] = scale["metadata"]["resourceVersion"].clone();
    stale["spec"]["replicas"] = serde_json::json!(7);
    let put = s.kubectl_stdin(
        &["replace", "--raw", scale_url, "-f", "-"],
        Some(&stale.to_string()),
    );
    assert!(put.status.success(), "{put:?}");
    assert_eq!(jsonpath(&s, "deploy/web", "{.spec.replicas}"), "7");
    let err = s.fails(
        &[
            "patch",
            "deploy",
            "web",
            "--subresource=scale",
            "--type=merge",
            "-p",
            r#"{"spec": {"replicas": -1}}"#,
        ],
        None,
    );
    assert!(
        err.contains("The Scale \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{err}"
    );
    assert_eq!(jsonpath(&s, "deploy/web", "{.spec.replicas}"), "7");

    // kube's validation: selector mismatch (nothing stored), unknown fields, immutable selector.
    let bad = DEPLOYMENT
        .replace("name: api", "name: bad")
        .replace(
            "labels: {app: api}\n    spec",
            "labels: {app: other}\n    spec",
        )
        .replace("IMAGE", "nginx");
    let err = s.fails(&["create", "-f", "-"], Some(&bad));
    assert!(
        err.contains("The Deployment \"bad\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"),
        "{err}"
    );
    let err = s.fails(&["get", "deploy", "bad"], None);
    assert!(err.contains("deployments.apps \"bad\" not found"), "{err}");
    let unknown = DEPLOYMENT
        .replace("name: api", "name: typo")
        .replace("replicas: 2", "replicaz: 2")
        .replace("IMAGE", "nginx");
    let err = s.fails(&["create", "-f", "-"], Some(&unknown));
    assert!(err.contains("unknown field \"spec.replicaz\""), "{err}");
    let err = s.fails(
        &[
            "patch",
            "deploy",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec": {"selector": {"matchLabels": {"app": "x"}}}}"#,
        ],
        None,
    );
    assert!(
        err.contains("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"),
        "{err}"
    );
}

const REPLICATION_CONTROLLER: &str = "apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 3
  template:
    metadata:
      labels: {app: legacy}
    spec:
      containers:
      - name: web
        image: nginx:1.27
";

/// `f` until it answers true, for at most 20 seconds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// core/v1 ReplicationControllers: discovery, defaults, kube's validation, the columns, `kubectl scale`
/// (the `scale` subresource), `describe`, `explain` and a delete whose pods the garbage collector
/// removes. Unlike the test above this one needs the controllers: the server's replication controller
/// creates the pods.
#[test]
fn replication_controllers_through_kubectl() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    let out = s.ok(&["api-resources", "--api-group=", "--no-headers"]);
    assert_eq!(
        row(&out, "replicationcontrollers"),
        [
            "replicationcontrollers",
            "rc",
            "v1",
            "true",
            "ReplicationController"
        ]
    );

    // The selector and labels default to the template's labels.
    let file = s.write("rc.yaml", REPLICATION_CONTROLLER);
    let out = s.ok(&["create", "-f", common::path_str(&file)]);
    assert_eq!(out.trim(), "replicationcontroller/legacy created");
    assert_eq!(
        jsonpath(
            &s,
            "rc/legacy",
            "{.spec.selector.app} {.metadata.labels.app}"
        ),
        "legacy legacy"
    );
    eventually("3 current replicas", || {
        jsonpath(&s, "rc/legacy", "{.status.replicas}") == "3"
    });
    let out = s.ok(&["get", "rc"]);
    assert_eq!(header(&out), ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    assert_eq!(row(&out, "legacy")[1..4], ["3", "3", "0"]);
    let out = s.ok(&["get", "rc", "-o", "wide"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        row(&out, "legacy")[5..],
        ["web", "nginx:1.27", "app=legacy"]
    );
    let pods = s.ok(&["get", "pods", "-l", "app=legacy", "-o", "name"]);
    assert_eq!(pods.lines().count(), 3, "{pods}");

    // kube's validation messages.
    let bad = REPLICATION_CONTROLLER
        .replace("name: legacy", "name: bad")
        .replace(
            "  replicas: 3\n",
            "  replicas: 3\n  selector: {app: other}\n",
        );
    let err = s.fails(&["create", "-f", "-"], Some(&bad));
    assert!(
        err.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"legacy\"}: selector does not match labels in spec.template"),
        "{err}"
    );

    // kubectl scale goes through the scale subresource.
    let out = s.ok(&["scale", "rc/legacy", "--replicas=2"]);
    assert_eq!(out.trim(), "replicationcontroller/legacy scaled");
    assert_eq!(
        jsonpath(&s, "rc/legacy", "{.spec.replicas} {.metadata.generation}"),
        "2 2"
    );
    eventually("2 current replicas", || {
        jsonpath(
            &s,
            "rc/legacy",
            "{.status.replicas} {.status.observedGeneration}",
        ) == "2 2"
    });
    let scale = s.ok(&["get", "rc", "legacy", "--subresource=scale", "-o", "json"]);
    let scale: serde_json::Value = serde_json::from_str(&scale).expect("scale json");
    assert_eq!(scale["status"]["selector"], "app=legacy");

    let described = s.ok(&["describe", "rc", "legacy"]);
    let lines: Vec<String> = described
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for want in [
        "Name: legacy",
        "Selector: app=legacy",
        "Replicas: 2 current / 2 desired",
        "Pods Status: 0 Running / 2 Waiting / 0 Succeeded / 0 Failed",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want:?} in:\n{described}");
    }
    assert!(described.contains("SuccessfulCreate"), "{described}");
    assert!(described.contains("SuccessfulDelete"), "{described}");

    // The schema comes from /openapi/v3.
    let explained = s.ok(&["explain", "rc.spec.selector"]);
    assert!(
        explained.contains("FIELD: selector <map[string]string>"),
        "{explained}"
    );

    // kubectl deletes in the background: the garbage collector removes the pods.
    let out = s.ok(&["delete", "rc", "legacy"]);
    assert_eq!(out.trim(), "replicationcontroller \"legacy\" deleted");
    eventually("the pods are collected", || {
        s.ok(&["get", "pods", "-l", "app=legacy", "-o", "name"])
            .trim()
            .is_empty()
    });
}
