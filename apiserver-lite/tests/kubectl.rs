//! The real skiff-apiserver driven by the real kubectl 1.32 (fresh cache dir, admin kubeconfig).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{POD, Server, have, path_str};
use serde_json::Value;

fn kubectl_present() -> bool {
    if have("kubectl") && have("curl") {
        return true;
    }
    eprintln!("kubectl or curl not installed; skipping");
    false
}

#[test]
fn create_get_describe_and_duplicates() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let pod = s.write("pod.yaml", POD);
    let out = s.ok(&["create", "-f", path_str(&pod)]);
    assert!(out.contains("pod/web created"), "{out}");

    let wide = s.ok(&["get", "pods", "-o", "wide"]);
    let header = wide.lines().next().unwrap_or("");
    for col in [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED NODE",
        "READINESS GATES",
    ] {
        assert!(header.contains(col), "missing column {col}: {wide}");
    }
    let row = wide.lines().nth(1).unwrap_or("");
    assert!(
        row.starts_with("web") && row.contains("0/1") && row.contains("Pending"),
        "{wide}"
    );

    let json: Value =
        serde_json::from_str(&s.ok(&["get", "pod", "web", "-o", "json"])).expect("pod json");
    assert_eq!(json["kind"], "Pod");
    assert_eq!(json["metadata"]["namespace"], "default");
    assert!(
        json["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    assert!(
        json["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    assert_eq!(json["spec"]["restartPolicy"], "Always");
    assert_eq!(json["spec"]["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(json["status"]["phase"], "Pending");

    let err = s.fails(&["create", "-f", path_str(&pod)], None);
    assert!(
        err.contains("AlreadyExists") && err.contains("pods \"web\" already exists"),
        "{err}"
    );

    let ns = s.ok(&["get", "ns"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(n), "{ns}");
    }
    assert!(ns.lines().next().unwrap_or("").contains("STATUS"), "{ns}");

    let d = s.ok(&["describe", "pod", "web"]);
    assert!(
        d.contains("Name:") && d.contains("web") && d.contains("Events:"),
        "{d}"
    );

    // Short names and categories come from discovery.
    assert!(s.ok(&["get", "po"]).contains("web"));
    assert!(s.ok(&["get", "all"]).contains("web"));

    // dry-run=server does not persist.
    let dry = POD.replace("name: web", "name: dry");
    let p = s.write("dry.yaml", &dry);
    s.ok(&["create", "--dry-run=server", "-f", path_str(&p)]);
    assert!(!s.kubectl(&["get", "pod", "dry"]).status.success());
}

#[test]
fn validation_and_strict_decoding() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let bad = s.write(
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers: [{name: c}]\n",
    );
    let err = s.fails(&["create", "-f", path_str(&bad)], None);
    assert!(
        err.contains("The Pod \"bad\" is invalid")
            && err.contains("spec.containers[0].image: Required value"),
        "{err}"
    );

    let bad_name = s.write("badname.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers: [{name: c, image: x}]\n");
    let err = s.fails(&["create", "-f", path_str(&bad_name)], None);
    assert!(
        err.contains("is invalid") && err.contains("metadata.name"),
        "{err}"
    );

    // A volume with two sources is refused with kube's message; its mount then names no valid volume,
    // as kube reports too. Nothing is stored.
    let two = s.write(
        "two.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: two}\nspec:\n  containers: [{name: c, image: x, volumeMounts: [{name: v, mountPath: /v}]}]\n  volumes: [{name: v, emptyDir: {}, hostPath: {path: /tmp}}]\n",
    );
    let err = s.fails(&["create", "-f", path_str(&two)], None);
    assert!(
        err.contains(
            "The Pod \"two\" is invalid: \n* spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type\n* spec.containers[0].volumeMounts[0].name: Not found: \"v\""
        ),
        "{err}"
    );
    assert!(!s.kubectl(&["get", "pod", "two"]).status.success());
    // The same volume with one source is stored with kube's volume defaults.
    let one = s.write(
        "one.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: one}\nspec:\n  containers: [{name: c, image: x}]\n  volumes: [{name: v, hostPath: {path: /tmp}}, {name: c, configMap: {name: cm}}, {name: e}]\n",
    );
    s.ok(&["create", "-f", path_str(&one)]);
    let vols = s.ok(&["get", "pod", "one", "-o", "jsonpath={.spec.volumes}"]);
    let vols: Value = serde_json::from_str(&vols).expect("volumes json");
    assert_eq!(vols[0]["hostPath"]["type"], "", "{vols}");
    assert_eq!(vols[1]["configMap"]["defaultMode"], 420, "{vols}");
    assert_eq!(vols[2]["emptyDir"], serde_json::json!({}), "{vols}");

    let unknown = s.write(
        "unknown.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: unk}\nspec:\n  foo: 1\n  containers: [{name: c, image: x}]\n",
    );
    let err = s.fails(&["create", "-f", path_str(&unknown)], None);
    assert!(
        err.contains("strict decoding error: unknown field \"spec.foo\""),
        "{err}"
    );
    // With validation off kubectl sends fieldValidation=Ignore: the field is dropped.
    s.ok(&["create", "--validate=false", "-f", path_str(&unknown)]);
    let json: Value =
        serde_json::from_str(&s.ok(&["get", "pod", "unk", "-o", "json"])).expect("json");
    assert!(json["spec"].get("foo").is_none());

    // Namespace must exist.
    let err = s.fails(
        &[
            "create",
            "-n",
            "nope",
            "-f",
            path_str(&s.write("p.yaml", POD)),
        ],
        None,
    );
    assert!(err.contains("namespaces \"nope\" not found"), "{err}");
}

#[test]
fn replace_with_stale_resource_version_conflicts() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    s.ok(&["create", "-f", path_str(&s.write("pod.yaml", POD))]);
    let old = s.ok(&["get", "pod", "web", "-o", "yaml"]);
    s.ok(&["label", "pod", "web", "tier=front"]);
    let stale = s.write("stale.yaml", &old);
    let err = s.fails(&["replace", "-f", path_str(&stale)], None);
    assert!(
        err.contains("Conflict") && err.contains("the object has been modified; please apply your changes to the latest version and try again"),
        "{err}"
    );
    // A fresh copy replaces fine; changing a forbidden spec field is rejected.
    let fresh = s.ok(&["get", "pod", "web", "-o", "yaml"]);
    let f = s.write("fresh.yaml", &fresh.replace("nginx:latest", "nginx:1.27"));
    s.ok(&["replace", "-f", path_str(&f)]);
    let fresh = s.ok(&["get", "pod", "web", "-o", "yaml"]);
    let f = s.write(
        "forbidden.yaml",
        &fresh.replace("restartPolicy: Always", "restartPolicy: Never"),
    );
    let err = s.fails(&["replace", "-f", path_str(&f)], None);
    assert!(
        err.contains("pod updates may not change fields other than"),
        "{err}"
    );
}

#[test]
fn apply_patch_and_server_side_apply() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let p = s.write("pod.yaml", POD);
    assert!(s.ok(&["apply", "-f", path_str(&p)]).contains("created"));
    let p2 = s.write(
        "pod2.yaml",
        &POD.replace("app: web", "app: web, extra: 'yes'"),
    );
    assert!(s.ok(&["apply", "-f", path_str(&p2)]).contains("configured"));
    let labels = s.ok(&[
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.metadata.labels.extra}",
    ]);
    assert_eq!(labels, "yes");
    s.ok(&[
        "patch",
        "pod",
        "web",
        "-p",
        r#"{"spec":{"containers":[{"name":"nginx","image":"127.0.0.1:5000/library/nginx:1.0"}]}}"#,
    ]);
    let img = s.ok(&[
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.spec.containers[0].image} {.spec.containers[0].ports[0].containerPort}",
    ]);
    assert_eq!(img, "127.0.0.1:5000/library/nginx:1.0 80");
    s.ok(&[
        "patch",
        "pod",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/annotations","value":{"a":"b"}}]"#,
    ]);
    s.ok(&[
        "patch",
        "pod",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"annotations":{"c":"d"}}}"#,
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.a}{.metadata.annotations.c}"
        ]),
        "bd"
    );
    let ssa = s.write("api.yaml", &POD.replace("name: web", "name: api"));
    assert!(
        s.ok(&["apply", "--server-side", "-f", path_str(&ssa)])
            .contains("serverside-applied")
    );
    assert!(s.ok(&["get", "pods"]).contains("api"));
    // Status is only written through the subresource.
    s.ok(&[
        "patch",
        "pod",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running","podIP":"10.244.0.9"}}"#,
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.status.phase} {.status.podIP}"
        ]),
        "Running 10.244.0.9"
    );
    s.ok(&[
        "patch",
        "pod",
        "web",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Failed"}}"#,
    ]);
    assert_eq!(
        s.ok(&["get", "pod", "web", "-o", "jsonpath={.status.phase}"]),
        "Running"
    );
}

/// Client-side apply of a manifest from which a container, an env var and a port were removed: kubectl 1.32
/// computes its strategic merge patch from the server's OpenAPI v3 schemas, so without kube's merge keys
/// there it sent whole lists that the server merged into the old ones, and nothing was removed. What
/// another writer added (`kubectl set env`) stays, as with kube's three-way merge.
#[test]
fn apply_removes_what_the_manifest_no_longer_has() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let deployment = |containers: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 1\n  \
             selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    \
             spec:\n      containers:\n{containers}"
        )
    };
    let both = deployment(
        "      - {name: a, image: busybox, env: [{name: A, value: '1'}, {name: B, value: '2'}], \
         ports: [{containerPort: 80}, {containerPort: 81}]}\n      - {name: b, image: busybox}\n",
    );
    let one = deployment(
        "      - {name: a, image: busybox, env: [{name: A, value: '1'}], ports: [{containerPort: 80}]}\n",
    );
    assert!(
        s.ok(&["apply", "-f", path_str(&s.write("both.yaml", &both))])
            .contains("created")
    );
    s.ok(&["set", "env", "deployment/web", "-c", "a", "C=3"]);
    let out = s.kubectl(&["apply", "-f", path_str(&s.write("one.yaml", &one))]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "apply: {stderr}");
    assert!(!stderr.contains("warning"), "kubectl warned: {stderr}");
    let get = |path: &str| {
        s.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    assert_eq!(get("{.spec.template.spec.containers[*].name}"), "a");
    assert_eq!(
        get("{.spec.template.spec.containers[0].env[*].name}"),
        "A C"
    );
    assert_eq!(
        get("{.spec.template.spec.containers[0].ports[*].containerPort}"),
        "80"
    );
}

/// `kubectl apply --prune -l`: kubectl looks up every kind of its default prune allow-list (ReplicationController
/// and Ingress among them), so it must find them served; objects of the label that left the manifests are
/// deleted, the others and unlabelled ones stay.
#[test]
fn apply_prune_deletes_what_left_the_manifests() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let cm = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, labels: {{app: pr}}}}\n"
        )
    };
    let dir = s.dir.path().join("manifests");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for name in ["a", "b"] {
        std::fs::write(dir.join(format!("{name}.yaml")), cm(name)).expect("write");
    }
    s.ok(&["create", "configmap", "unlabelled"]);
    let apply = || {
        let out = s.kubectl(&["apply", "-f", path_str(&dir), "--prune", "-l", "app=pr"]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "apply --prune: {stderr}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = apply();
    assert!(
        first.contains("configmap/a created") && first.contains("configmap/b created"),
        "{first}"
    );
    std::fs::remove_file(dir.join("b.yaml")).expect("rm");
    let second = apply();
    assert!(second.contains("configmap/b pruned"), "{second}");
    let left = s.ok(&["get", "configmaps", "-o", "name"]);
    assert!(
        left.contains("configmap/a") && left.contains("configmap/unlabelled"),
        "{left}"
    );
    assert!(!left.contains("configmap/b"), "{left}");
}

#[test]
fn delete_unbound_and_graceful_bound() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    s.ok(&["create", "-f", path_str(&s.write("pod.yaml", POD))]);
    let start = Instant::now();
    assert!(
        s.ok(&["delete", "pod", "web"])
            .contains("pod \"web\" deleted")
    );
    assert!(start.elapsed() < Duration::from_secs(15));
    assert!(!s.kubectl(&["get", "pod", "web"]).status.success());

    // A pod bound to a node terminates gracefully.
    let node = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n";
    s.ok(&["create", "-f", path_str(&s.write("node.yaml", node))]);
    let bound = POD.replace("spec:\n", "spec:\n  nodeName: n1\n");
    s.ok(&["create", "-f", path_str(&s.write("bound.yaml", &bound))]);
    s.ok(&["delete", "pod", "web", "--wait=false"]);
    let row = s.ok(&["get", "pod", "web"]);
    assert!(row.contains("Terminating"), "{row}");
    let grace = s.ok(&[
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.metadata.deletionGracePeriodSeconds}",
    ]);
    assert_eq!(grace, "30");
    s.ok(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    assert!(!s.kubectl(&["get", "pod", "web"]).status.success());
}

#[test]
fn namespace_lifecycle() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    s.ok(&[
        "create",
        "-f",
        path_str(&s.write(
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: tmp}\n",
        )),
    ]);
    s.ok(&[
        "create",
        "-n",
        "tmp",
        "-f",
        path_str(&s.write("pod.yaml", POD)),
    ]);
    s.ok(&["delete", "ns", "tmp", "--wait=false"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.kubectl(&["get", "ns", "tmp"]).status.success() {
        assert!(Instant::now() < deadline, "namespace tmp was not removed");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(s.ok(&["get", "pods", "-n", "tmp"]).is_empty());
    let err = s.fails(&["delete", "ns", "default"], None);
    assert!(err.contains("Forbidden"), "{err}");
}

#[test]
fn anonymous_requests_are_unauthorized() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let out = s.curl(&["/api/v1/namespaces/default/pods"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("401"), "{text}");
    assert!(
        text.contains("\"kind\":\"Status\"") && text.contains("Unauthorized"),
        "{text}"
    );
    for open in ["/healthz", "/livez", "/readyz", "/version"] {
        let out = s.curl(&[open]);
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .trim_end()
                .ends_with("200"),
            "{open}"
        );
    }
}

#[test]
fn token_auth_and_minted_kubeconfig() {
    if !kubectl_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.csv");
    // alice is a cluster admin here: this test is about authentication (RBAC is tested in tests/authz_rbac.rs).
    std::fs::write(&tokens, "s3cret,alice,1000,\"dev,system:masters\"\n").expect("tokens");
    let s = Server::start_with(&["--token-auth-file", path_str(&tokens)]);
    let out = s.curl(&["/api/v1/namespaces", "-H", "Authorization: Bearer s3cret"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.trim_end().ends_with("200") && text.contains("NamespaceList"),
        "{text}"
    );
    // Bodies over 3 MiB are refused with 413.
    let big = s.write(
        "big.json",
        &format!("{{\"x\":\"{}\"}}", "a".repeat(4 * 1024 * 1024)),
    );
    let data = format!("@{}", path_str(&big));
    let out = s.curl(&[
        "/api/v1/namespaces/default/pods",
        "-H",
        "Authorization: Bearer s3cret",
        "-H",
        "Content-Type: application/json",
        "--http1.1",
        "--data-binary",
        &data,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.trim_end().ends_with("413"),
        "{}",
        common::tail(&text, 2)
    );
    let out = s.curl(&["/api/v1/namespaces", "-H", "Authorization: Bearer wrong"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim_end()
            .ends_with("401")
    );

    // `kubeconfig` signs a client certificate offline; the server accepts it.
    let kc = s.dir.path().join("node.kubeconfig");
    let st = Command::new(env!("CARGO_BIN_EXE_skiff-apiserver"))
        .args([
            "kubeconfig",
            "--data-dir",
            path_str(&s.data_dir()),
            "--user",
            "system:node:n1",
            "--group",
            "system:nodes",
        ])
        .args(["--server", &s.url(""), "--out", path_str(&kc)])
        .status()
        .expect("kubeconfig");
    assert!(st.success());
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
        .arg("--cache-dir")
        .arg(s.dir.path().join("cache2"))
        .args(["get", "nodes", "-o", "name"])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A node credential may list nodes (the Node authorizer); there are none yet.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
}

#[test]
fn watch_sees_added_modified_deleted() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let mut w = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .arg("--cache-dir")
        .arg(&s.cache_dir)
        .args(["get", "pods", "-w", "--output-watch-events", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl watch");
    // A table watch in parallel, as `kubectl get pods -w` does.
    let mut t = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .arg("--cache-dir")
        .arg(s.dir.path().join("cache-t"))
        .args(["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl table watch");
    std::thread::sleep(Duration::from_millis(1500));
    s.ok(&["create", "-f", path_str(&s.write("pod.yaml", POD))]);
    s.ok(&["label", "pod", "web", "x=y"]);
    s.ok(&["delete", "pod", "web"]);
    std::thread::sleep(Duration::from_millis(1000));
    let _ = w.kill();
    let _ = t.kill();
    let mut out = String::new();
    w.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    let mut table = String::new();
    t.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut table)
        .expect("read");
    let _ = w.wait();
    let _ = t.wait();
    for ty in ["\"ADDED\"", "\"MODIFIED\"", "\"DELETED\""] {
        assert!(out.contains(ty), "missing {ty} in watch output:\n{out}");
    }
    let first = table.lines().next().unwrap_or("");
    assert!(
        first.contains("READY") && first.contains("STATUS"),
        "table watch:\n{table}"
    );
    assert!(
        table.lines().filter(|l| l.starts_with("web")).count() >= 2,
        "table watch:\n{table}"
    );
}

#[test]
fn leases_events_and_nodes() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let lease = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: n1, namespace: kube-node-lease}\nspec: {holderIdentity: n1, leaseDurationSeconds: 40}\n";
    s.ok(&["create", "-f", path_str(&s.write("lease.yaml", lease))]);
    let out = s.ok(&["get", "leases", "-A"]);
    assert!(out.contains("HOLDER") && out.contains("n1"), "{out}");
    let node = "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {node-role.kubernetes.io/worker: ''}}\nstatus:\n  conditions: [{type: Ready, status: 'True'}]\n  addresses: [{type: InternalIP, address: 10.0.0.5}]\n  nodeInfo: {kubeletVersion: v1.32.0-skiff, osImage: Debian, kernelVersion: '6.1', containerRuntimeVersion: containerd://1.7, architecture: amd64, bootID: x, machineID: x, kubeProxyVersion: '', operatingSystem: linux, systemUUID: x}\n";
    s.ok(&["create", "-f", path_str(&s.write("node.yaml", node))]);
    let out = s.ok(&["get", "nodes", "-o", "wide"]);
    assert!(
        out.contains("INTERNAL-IP")
            && out.contains("10.0.0.5")
            && out.contains("worker")
            && out.contains("Ready"),
        "{out}"
    );
    let ev = "apiVersion: v1\nkind: Event\nmetadata: {name: web.1, namespace: default}\ninvolvedObject: {kind: Pod, name: web, namespace: default}\nreason: Pulled\nmessage: pulled it\ntype: Normal\n";
    s.ok(&["create", "-f", path_str(&s.write("ev.yaml", ev))]);
    let out = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web,reason=Pulled",
    ]);
    assert!(
        out.contains("pod/web") && out.contains("pulled it"),
        "{out}"
    );
    let out = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=other",
    ]);
    assert!(!out.contains("pod/web"), "{out}");
    let err = s.fails(&["get", "events", "--field-selector", "spec.bogus=1"], None);
    assert!(err.contains("field label not supported"), "{err}");
}

#[test]
fn typed_commands_send_protobuf() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    // `kubectl create namespace` and `kubectl run` send application/vnd.kubernetes.protobuf bodies.
    assert!(
        s.ok(&["create", "namespace", "team"])
            .contains("namespace/team created")
    );
    let out = s.ok(&[
        "run",
        "p1",
        "-n",
        "team",
        "--image=127.0.0.1:5000/library/busybox:1.35",
        "--port=80",
        "--labels=a=b",
        "--",
        "sleep",
        "1000",
    ]);
    assert!(out.contains("pod/p1 created"), "{out}");
    let json: Value =
        serde_json::from_str(&s.ok(&["get", "pod", "p1", "-n", "team", "-o", "json"]))
            .expect("json");
    assert_eq!(json["metadata"]["labels"]["a"], "b");
    let c = &json["spec"]["containers"][0];
    assert_eq!(c["image"], "127.0.0.1:5000/library/busybox:1.35");
    assert_eq!(c["args"], serde_json::json!(["sleep", "1000"]));
    assert_eq!(c["ports"][0]["containerPort"], 80);
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");

    // generateName gets a random suffix.
    let generated = POD.replace("name: web", "generateName: web-");
    let out = s.ok(&[
        "create",
        "-o",
        "name",
        "-f",
        path_str(&s.write("gen.yaml", &generated)),
    ]);
    let name = out.trim().trim_start_matches("pod/");
    assert!(name.starts_with("web-") && name.len() == 9, "{out}");
}
