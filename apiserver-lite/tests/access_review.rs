//! authorization.k8s.io/v1 in discovery and the access reviews through the real kubectl 1.32:
//! `kubectl api-resources` lists the review kinds, `kubectl auth can-i` answers, an admin's
//! SubjectAccessReview / LocalSubjectAccessReview evaluates another user's RBAC, and a user without the
//! permission to create reviews is refused.

mod common;
mod support_authz;

use common::{Server, path_str};
use support_authz::{kubectl_as, kubectl_present, mint, stderr, stdout};

fn sar(user: &str, groups: &[&str], verb: &str, namespace: &str) -> String {
    format!(
        "apiVersion: authorization.k8s.io/v1
kind: SubjectAccessReview
spec:
  user: {user}
  groups: {groups:?}
  resourceAttributes: {{verb: {verb}, resource: configmaps, namespace: {namespace}}}
"
    )
}

#[test]
fn discovery_lists_reviews_and_subject_access_reviews_answer() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let listed = s.ok(&[
        "api-resources",
        "--api-group=authorization.k8s.io",
        "-o",
        "name",
    ]);
    for r in [
        "localsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
        "subjectaccessreviews.authorization.k8s.io",
    ] {
        assert!(listed.lines().any(|l| l == r), "{r} missing in:\n{listed}");
    }
    let groups = s.ok(&["api-versions"]);
    assert!(groups.contains("authorization.k8s.io/v1"), "{groups}");
    assert_eq!(s.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");

    // Give alice read access to configmaps in default, then ask about her as the admin.
    s.ok(&[
        "create",
        "role",
        "cm-reader",
        "--verb=get,list",
        "--resource=configmaps",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "alice-cm",
        "--role=cm-reader",
        "--user=alice",
    ]);
    let ask = |name: &str, body: &str| {
        let file = s.write(name, body);
        s.ok(&[
            "create",
            "-f",
            path_str(&file),
            "-o",
            "jsonpath={.status.allowed}",
        ])
    };
    assert_eq!(
        ask("a.yaml", &sar("alice", &["dev"], "list", "default")),
        "true"
    );
    assert_eq!(
        ask("b.yaml", &sar("alice", &["dev"], "delete", "default")),
        "false"
    );
    assert_eq!(
        ask("c.yaml", &sar("alice", &["dev"], "list", "kube-system")),
        "false"
    );
    assert_eq!(
        ask(
            "d.yaml",
            &sar("bob", &["system:masters"], "delete", "kube-system")
        ),
        "true"
    );
    let local = "apiVersion: authorization.k8s.io/v1
kind: LocalSubjectAccessReview
metadata: {namespace: default}
spec:
  user: alice
  resourceAttributes: {verb: get, resource: configmaps, namespace: default}
";
    assert_eq!(ask("e.yaml", local), "true");
    let mismatch = local.replace(
        "verb: get, resource: configmaps, namespace: default",
        "verb: get, resource: configmaps, namespace: other",
    );
    let file = s.write("f.yaml", &mismatch);
    let err = s.fails(&["create", "-f", path_str(&file)], None);
    assert!(err.contains("must match"), "{err}");
    // kubectl's default strict field validation holds for reviews too (they are never stored).
    let file = s.write(
        "typo.yaml",
        &sar("alice", &[], "list", "default").replace("  user:", "  usr: x\n  user:"),
    );
    let err = s.fails(&["create", "-f", path_str(&file)], None);
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.usr""#),
        "{err}"
    );
    let out = s.ok(&[
        "create",
        "-f",
        path_str(&file),
        "--validate=false",
        "-o",
        "jsonpath={.status.allowed}",
    ]);
    assert_eq!(out, "true", "Ignore answers the review");
    // kubectl explain reads the review's schema from /openapi/v3.
    let explained = s.ok(&["explain", "subjectaccessreview.spec.resourceAttributes"]);
    assert!(
        explained.contains("FIELD: resourceAttributes <ResourceAttributes>"),
        "{explained}"
    );

    // alice herself may ask about herself (can-i) but not about others.
    let alice = mint(&s, "alice", &["dev"]);
    let out = kubectl_as(&s, &alice, &["auth", "can-i", "list", "configmaps"]);
    assert_eq!(stdout(&out), "yes", "{}", stderr(&out));
    let file = s.write("g.yaml", &sar("bob", &[], "list", "default"));
    let out = kubectl_as(&s, &alice, &["create", "-f", path_str(&file)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            r#"subjectaccessreviews.authorization.k8s.io is forbidden: User "alice" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope"#
        ),
        "{}",
        stderr(&out)
    );
}
