//! pods/log and pods/exec in the API server without an agent: discovery, the container choice and the
//! errors kubectl shows. Proxying to a real agent is tested in agent/tests/logs_exec.rs.

mod common;

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
    for sub in ["\"pods/log\"", "\"pods/exec\""] {
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
    let err = s.fails(&["logs", "nope"], None);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
}
