//! pods/log, pods/exec, pods/attach and pods/portforward in the API server without an agent: discovery,
//! the container choice and the errors kubectl shows. Proxying to a real agent is tested in
//! agent/tests/logs_exec.rs, portforward.rs and attach.rs.

mod common;
mod support_authz;

use common::{Server, path_str};

const TWO: &str = "apiVersion: v1
kind: Pod
metadata:
  name: two
spec:
  containers:
  - {name: a, image: busybox}
  - {name: b, image: busybox}
";

#[test]
fn log_and_exec_subresources() {
    let s = Server::start();
    assert!(
        s.data_dir()
            .join("pki/apiserver-kubelet-client.crt")
            .exists(),
        "the kubelet client certificate is made at the first start"
    );
    let legacy = s.ok(&["get", "--raw", "/api/v1"]);
    for sub in [
        "\"pods/log\"",
        "\"pods/exec\"",
        "\"pods/attach\"",
        "\"pods/portforward\"",
    ] {
        assert!(legacy.contains(sub), "discovery lacks {sub}: {legacy}");
    }

    let pod = s.write("two.yaml", TWO);
    s.ok(&["create", "-f", path_str(&pod)]);
    // No container named and two to choose from: kube-apiserver's message.
    let err = s.fails(
        &["get", "--raw", "/api/v1/namespaces/default/pods/two/log"],
        None,
    );
    assert!(
        err.contains("a container name must be specified for pod two, choose one of: [a b]"),
        "{err}"
    );
    let err = s.fails(
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/two/log?container=zz",
        ],
        None,
    );
    assert!(
        err.contains("container zz is not valid for pod two"),
        "{err}"
    );
    // The pod is not bound (no nodes): nothing to proxy to.
    let err = s.fails(&["logs", "two", "-c", "a"], None);
    assert!(
        err.contains("pod two does not have a host assigned"),
        "{err}"
    );
    let err = s.fails(&["exec", "two", "-c", "a", "--", "true"], None);
    assert!(err.contains("does not have a host assigned"), "{err}");
    let err = s.fails(&["attach", "two", "-c", "a"], None);
    assert!(err.contains("does not have a host assigned"), "{err}");
    // kubectl itself refuses a pod that is not running; the subresource answers as kube-apiserver does.
    let err = s.fails(&["port-forward", "pod/two", "18099:80"], None);
    assert!(err.contains("pod is not running"), "{err}");
    let empty = s.write("empty.json", "{}");
    let err = s.fails(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods/two/portforward",
            "-f",
            path_str(&empty),
        ],
        None,
    );
    assert!(err.contains("does not have a host assigned"), "{err}");
    let err = s.fails(&["port-forward", "pod/nope", "18099:80"], None);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
    let err = s.fails(&["logs", "nope"], None);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
}

/// pods/portforward needs `create` on the subresource: `view` may read the pod but not forward to it,
/// `edit` may.
#[test]
fn portforward_is_authorized_on_the_subresource() {
    if !support_authz::kubectl_present() {
        return;
    }
    let s = Server::start();
    let pod = s.write("two.yaml", TWO);
    s.ok(&["create", "-f", path_str(&pod)]);
    s.ok(&[
        "create",
        "rolebinding",
        "v",
        "--clusterrole=view",
        "--user=viewer",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "e",
        "--clusterrole=edit",
        "--user=editor",
    ]);
    let empty = s.write("empty.json", "{}");
    let raw = [
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/two/portforward",
        "-f",
        path_str(&empty),
    ];
    let viewer = support_authz::mint(&s, "viewer", &[]);
    let out = support_authz::kubectl_as(&s, &viewer, &["get", "pod", "two"]);
    assert!(out.status.success(), "{}", support_authz::stderr(&out));
    let out = support_authz::kubectl_as(&s, &viewer, &raw);
    let err = support_authz::stderr(&out);
    assert!(
        !out.status.success()
            && err.contains(r#"cannot create resource "pods/portforward" in API group """#),
        "{err}"
    );
    let editor = support_authz::mint(&s, "editor", &[]);
    let out = support_authz::kubectl_as(&s, &editor, &raw);
    let err = support_authz::stderr(&out);
    assert!(err.contains("does not have a host assigned"), "{err}");
}
