//! Service-account tokens end to end with the real server and kubectl: `kubectl create token`, SA tokens as
//! bearer credentials (`kubectl auth whoami`), tokens bound to pods, ServiceAccount admission on pod create,
//! the `kube-root-ca.crt` publisher, and node credentials asking for tokens of their pods.

mod common;
mod support_authz;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Server, path_str, tail};
use serde_json::Value;
use support_authz::{kubectl_as, kubectl_present, mint, stderr, stdout};

/// A kubeconfig with the server and its CA only: the credential comes from `--token`.
fn bare_kubeconfig(s: &Server) -> PathBuf {
    let ca = s.data_dir().join("pki/ca.crt");
    s.write(
        "bare.kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: {}\n    server: {}\n  name: c\ncontexts:\n- context:\n    cluster: c\n    user: u\n  name: c\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n",
            path_str(&ca),
            s.url("")
        ),
    )
}

fn whoami(s: &Server, token: &str) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(bare_kubeconfig(s))
        .arg("--cache-dir")
        .arg(s.dir.path().join("cache-bare"))
        .args(["--request-timeout=20s", "--token", token])
        .args(["auth", "whoami", "-o", "json"])
        .output()
        .expect("kubectl")
}

/// Wait (up to 10 s) until the token is refused with 401.
fn wait_refused(s: &Server, token: &str, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = whoami(s, token);
        if !out.status.success() {
            assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
            return;
        }
        assert!(Instant::now() < deadline, "token still valid after {after}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn user_info(s: &Server, token: &str) -> Value {
    let out = whoami(s, token);
    assert!(
        out.status.success(),
        "whoami failed: {}\n{}",
        stderr(&out),
        tail(&s.log(), 30)
    );
    let v: Value = serde_json::from_str(&stdout(&out)).expect("whoami JSON");
    v["status"]["userInfo"].clone()
}

fn json_of(s: &Server, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&a)).expect("kubectl JSON")
}

#[test]
fn create_token_and_authenticate_with_it() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let token = s.ok(&["create", "token", "default"]).trim().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let sa = json_of(&s, &["get", "serviceaccount", "default"]);
    let u = user_info(&s, &token);
    assert_eq!(u["username"], "system:serviceaccount:default:default");
    assert_eq!(u["uid"], sa["metadata"]["uid"]);
    let groups: Vec<&str> = u["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for g in [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ] {
        assert!(groups.contains(&g), "{groups:?}");
    }

    // A garbage JWT, a token for another audience and a tampered one are 401s.
    let garbage = whoami(&s, "eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ.AAAA");
    assert!(!garbage.status.success());
    assert!(
        stderr(&garbage).contains("Unauthorized"),
        "{}",
        stderr(&garbage)
    );
    let vault = s
        .ok(&["create", "token", "default", "--audience", "vault"])
        .trim()
        .to_string();
    assert!(!whoami(&s, &vault).status.success());
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = vault.split('.').nth(1).expect("claims").to_string();
    assert!(!whoami(&s, &parts.join(".")).status.success());

    // Spec validation and a missing service account, as kube-apiserver answers them.
    let body = s.write(
        "short.json",
        r#"{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 599}}"#,
    );
    let err = s.fails(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/serviceaccounts/default/token",
            "-f",
            path_str(&body),
        ],
        None,
    );
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let err = s.fails(&["create", "token", "nope"], None);
    assert!(err.contains(r#"serviceaccounts "nope" not found"#), "{err}");

    // Deleting the service account invalidates its tokens; a new `default` has another uid.
    s.ok(&["delete", "serviceaccount", "default"]);
    wait_refused(&s, &token, "SA delete");
}

#[test]
fn pod_bound_token_dies_with_the_pod() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    s.ok(&["run", "web", "--image", "busybox", "--", "sleep", "3600"]);
    let pod = json_of(&s, &["get", "pod", "web"]);
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let token = s
        .ok(&[
            "create",
            "token",
            "default",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "web",
            "--bound-object-uid",
            &uid,
        ])
        .trim()
        .to_string();
    let u = user_info(&s, &token);
    assert_eq!(u["username"], "system:serviceaccount:default:default");
    assert_eq!(
        u["extra"]["authentication.kubernetes.io/pod-name"],
        serde_json::json!(["web"])
    );
    assert_eq!(
        u["extra"]["authentication.kubernetes.io/pod-uid"],
        serde_json::json!([uid])
    );
    // A wrong uid is a conflict.
    let err = s.fails(
        &[
            "create",
            "token",
            "default",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "web",
            "--bound-object-uid",
            "0000",
        ],
        None,
    );
    assert!(err.contains("does not match the UID in record"), "{err}");

    s.ok(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    wait_refused(&s, &token, "the pod is gone");
}

#[test]
fn new_namespace_pods_get_the_api_access_volume_and_root_ca() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    // The pod right after the namespace: the default service account must not race.
    s.ok(&["create", "namespace", "fresh"]);
    s.ok(&[
        "-n", "fresh", "run", "p", "--image", "busybox", "--", "sleep", "3600",
    ]);
    let pod = json_of(&s, &["-n", "fresh", "get", "pod", "p"]);
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    let vols = spec["volumes"].as_array().expect("volumes");
    let vol = vols
        .iter()
        .find(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("kube-api-access-"))
        })
        .expect("kube-api-access volume");
    let name = vol["name"].as_str().expect("name");
    assert_eq!(name.len(), "kube-api-access-".len() + 5);
    let sources = vol["projected"]["sources"].as_array().expect("sources");
    assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(vol["projected"]["defaultMode"], 420);
    assert_eq!(
        spec["containers"][0]["volumeMounts"],
        serde_json::json!([{"name": name, "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}])
    );

    // Opting out on the pod.
    let opt_out = s.write(
        "optout.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: fresh}\nspec:\n  automountServiceAccountToken: false\n  containers: [{name: c, image: busybox}]\n",
    );
    s.ok(&["create", "-f", path_str(&opt_out)]);
    let q = json_of(&s, &["-n", "fresh", "get", "pod", "q"]);
    assert!(q["spec"].get("volumes").is_none_or(Value::is_null), "{q}");
    // A service account that does not exist.
    let missing = s.write(
        "missing.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: r, namespace: fresh}\nspec:\n  serviceAccountName: nope\n  containers: [{name: c, image: busybox}]\n",
    );
    let err = s.fails(&["create", "-f", path_str(&missing)], None);
    assert!(
        err.contains(
            r#"error looking up service account fresh/nope: serviceaccount "nope" not found"#
        ),
        "{err}"
    );

    // kube-root-ca.crt with the cluster CA, in the new namespace too; put back when deleted.
    let ca = std::fs::read_to_string(s.data_dir().join("pki/ca.crt")).expect("ca");
    let wait_cm = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = s.kubectl(&[
                "-n",
                "fresh",
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-o",
                "json",
            ]);
            if out.status.success() {
                let cm: Value = serde_json::from_slice(&out.stdout).expect("json");
                if cm["data"]["ca.crt"] == ca.as_str() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "no kube-root-ca.crt in fresh");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_cm();
    s.ok(&["-n", "fresh", "delete", "configmap", "kube-root-ca.crt"]);
    wait_cm();
}

#[test]
fn node_creates_tokens_only_for_its_pods() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let node = mint(&s, "system:node:n1", &["system:nodes"]);
    let setup = s.write(
        "setup.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: other}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: mine}\nspec:\n  nodeName: n1\n  serviceAccountName: builder\n  containers: [{name: c, image: busybox}]\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: theirs}\nspec:\n  nodeName: n2\n  serviceAccountName: other\n  containers: [{name: c, image: busybox}]\n",
    );
    s.ok(&["create", "-f", path_str(&setup)]);
    let uid_of = |pod: &str| {
        json_of(&s, &["get", "pod", pod])["metadata"]["uid"]
            .as_str()
            .expect("uid")
            .to_string()
    };
    let (mine, theirs) = (uid_of("mine"), uid_of("theirs"));
    let bound = |sa: &str, pod: &str, uid: &str| {
        kubectl_as(
            &s,
            &node,
            &[
                "create",
                "token",
                sa,
                "--bound-object-kind",
                "Pod",
                "--bound-object-name",
                pod,
                "--bound-object-uid",
                uid,
            ],
        )
    };
    let ok = bound("builder", "mine", &mine);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let u = user_info(&s, &stdout(&ok));
    assert_eq!(u["username"], "system:serviceaccount:default:builder");
    assert_eq!(
        u["extra"]["authentication.kubernetes.io/node-name"],
        serde_json::json!(["n1"])
    );

    // Another node's pod and its service account: forbidden by the Node authorizer.
    let denied = bound("other", "theirs", &theirs);
    assert!(!denied.status.success());
    assert!(
        stderr(&denied).contains("Forbidden") || stderr(&denied).contains("forbidden"),
        "{}",
        stderr(&denied)
    );
    // Its own pod's service account, but bound to the other pod or not bound: NodeRestriction.
    let err = stderr(&bound("builder", "theirs", &theirs));
    assert!(err.contains("forbidden"), "{err}");
    let unbound = kubectl_as(&s, &node, &["create", "token", "builder"]);
    assert!(!unbound.status.success());
    assert!(
        stderr(&unbound).contains("node requested token not bound to a pod"),
        "{}",
        stderr(&unbound)
    );
}
