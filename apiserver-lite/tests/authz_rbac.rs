//! RBAC end to end with the real kubectl 1.32: denials worded like kube-apiserver's, grants through Roles,
//! ClusterRoles and their bindings, `kubectl auth can-i` / `--list` / `whoami`, the rbac.authorization.k8s.io
//! kinds as kubectl shows them, privilege-escalation prevention and impersonation.

mod common;
mod support_authz;

use common::Server;
use common::path_str;
use serde_json::json;
use support_authz::{kubectl_as, kubectl_present, mint, stderr, stdout};

#[test]
fn rbac_denies_then_grants_with_kubectl() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let alice = mint(&s, "alice", &["dev"]);

    // No binding: denied with kube-apiserver's wording.
    let out = kubectl_as(&s, &alice, &["get", "pods"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
        ),
        "{}",
        stderr(&out)
    );
    let out = kubectl_as(&s, &alice, &["auth", "can-i", "list", "pods"]);
    assert_eq!(stdout(&out), "no", "{}", stderr(&out));
    assert!(!out.status.success());
    // Discovery works for every authenticated user (kubectl needed it above to map "pods").
    let out = kubectl_as(
        &s,
        &alice,
        &["api-resources", "--api-group=rbac.authorization.k8s.io"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for r in [
        "roles",
        "clusterroles",
        "rolebindings",
        "clusterrolebindings",
    ] {
        assert!(stdout(&out).contains(r), "{}", stdout(&out));
    }

    // The admin grants alice read access to pods in `default` with a Role and a RoleBinding.
    s.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "alice-reads",
        "--role=pod-reader",
        "--user=alice",
    ]);
    let out = kubectl_as(&s, &alice, &["get", "pods"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let can = |args: &[&str]| {
        let mut a = vec!["auth", "can-i"];
        a.extend_from_slice(args);
        stdout(&kubectl_as(&s, &alice, &a))
    };
    assert_eq!(can(&["list", "pods"]), "yes");
    assert_eq!(can(&["watch", "pods"]), "yes");
    assert_eq!(can(&["delete", "pods"]), "no");
    assert_eq!(can(&["list", "pods", "-n", "kube-system"]), "no");
    assert_eq!(can(&["list", "pods", "-A"]), "no");
    assert_eq!(
        can(&["get", "pods", "--subresource=status"]),
        "no",
        "a rule for pods does not reach pods/status"
    );
    let out = kubectl_as(&s, &alice, &["delete", "pod", "x"]);
    assert!(
        stderr(&out)
            .contains(r#"pods "x" is forbidden: User "alice" cannot delete resource "pods""#),
        "{}",
        stderr(&out)
    );

    // `kubectl auth whoami` (SelfSubjectReview).
    let out = kubectl_as(&s, &alice, &["auth", "whoami", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).expect("whoami json");
    assert_eq!(who["status"]["userInfo"]["username"], "alice");
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        json!(["dev", "system:authenticated"])
    );

    // `kubectl auth can-i --list` (SelfSubjectRulesReview).
    let out = kubectl_as(&s, &alice, &["auth", "can-i", "--list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{list}"
    );
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );

    // `kubectl apply` of RBAC manifests (client-side apply: openapi, get, create, then patch).
    let manifest = s.write(
        "rbac.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-reader}
rules:
- apiGroups: [\"\"]
  resources: [configmaps]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-cm}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
",
    );
    s.ok(&["apply", "-f", path_str(&manifest)]);
    assert_eq!(can(&["get", "configmaps"]), "yes");
    assert_eq!(can(&["create", "configmaps"]), "no");
    let out = s.ok(&["apply", "-f", path_str(&manifest)]);
    assert!(out.contains("unchanged"), "{out}");

    // Group subjects and ClusterRoles: `view` bound to group dev cluster-wide.
    s.ok(&[
        "create",
        "clusterrolebinding",
        "dev-view",
        "--clusterrole=view",
        "--group=dev",
    ]);
    assert_eq!(can(&["list", "pods", "-A"]), "yes");
    assert_eq!(can(&["get", "namespaces"]), "yes");
    assert_eq!(can(&["get", "secrets", "-n", "kube-system"]), "no");
    assert_eq!(can(&["create", "pods"]), "no");

    // The kinds as kubectl shows them.
    let roles = s.ok(&["get", "clusterroles"]);
    assert!(roles.contains("CREATED AT"), "{roles}");
    for r in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:basic-user",
    ] {
        assert!(
            roles.lines().any(|l| l.starts_with(&format!("{r} "))),
            "{r}: {roles}"
        );
    }
    let rb = s.ok(&["get", "rolebindings"]);
    assert!(rb.contains("ROLE") && rb.contains("AGE"), "{rb}");
    assert!(rb.contains("Role/pod-reader"), "{rb}");
    let wide = s.ok(&["get", "clusterrolebinding", "dev-view", "-o", "wide"]);
    assert!(
        wide.contains("ClusterRole/view") && wide.contains("dev"),
        "{wide}"
    );
    let yaml = s.ok(&["get", "role", "pod-reader", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Role") && yaml.contains("- pods"),
        "{yaml}"
    );
    // roleRef cannot change.
    let err = s.fails(
        &[
            "patch",
            "rolebinding",
            "alice-reads",
            "--type=merge",
            "-p",
            r#"{"roleRef":{"name":"other"}}"#,
        ],
        None,
    );
    assert!(err.contains("cannot change roleRef"), "{err}");
    // Revoking a binding revokes the access it gave.
    s.ok(&["delete", "clusterrolebinding", "dev-view"]);
    assert_eq!(can(&["list", "pods", "-A"]), "no");
    assert_eq!(
        can(&["list", "pods"]),
        "yes",
        "still through the RoleBinding"
    );
    s.ok(&["delete", "rolebinding", "alice-reads"]);
    assert_eq!(can(&["list", "pods"]), "no");
}

#[test]
fn rbac_prevents_privilege_escalation() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let bob = mint(&s, "bob", &[]);
    // bob is `admin` of namespace default: he may manage roles and bindings there, but not escalate.
    s.ok(&[
        "create",
        "rolebinding",
        "bob-admin",
        "--clusterrole=admin",
        "--user=bob",
    ]);
    let out = kubectl_as(
        &s,
        &bob,
        &[
            "create",
            "role",
            "pods",
            "--verb=get,delete",
            "--resource=pods",
        ],
    );
    assert!(out.status.success(), "held rules: {}", stderr(&out));
    let out = kubectl_as(
        &s,
        &bob,
        &["create", "role", "nodes", "--verb=get", "--resource=nodes"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("attempting to grant RBAC permissions not currently held"),
        "{}",
        stderr(&out)
    );
    let out = kubectl_as(
        &s,
        &bob,
        &[
            "create",
            "rolebinding",
            "carol-admin",
            "--clusterrole=cluster-admin",
            "--user=carol",
        ],
    );
    assert!(
        !out.status.success(),
        "binding cluster-admin must be refused"
    );
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
    let out = kubectl_as(
        &s,
        &bob,
        &[
            "create",
            "rolebinding",
            "carol-edit",
            "--clusterrole=edit",
            "--user=carol",
        ],
    );
    assert!(
        out.status.success(),
        "edit is within admin: {}",
        stderr(&out)
    );
    // bob may not touch cluster-scoped RBAC at all.
    let out = kubectl_as(
        &s,
        &bob,
        &[
            "create",
            "clusterrole",
            "x",
            "--verb=get",
            "--resource=pods",
        ],
    );
    assert!(
        stderr(&out).contains(
            r#"clusterroles.rbac.authorization.k8s.io is forbidden: User "bob" cannot create resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn impersonation_needs_the_impersonate_verb() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    s.ok(&[
        "create",
        "rolebinding",
        "dana-view",
        "--clusterrole=view",
        "--user=dana",
    ]);
    // The admin (system:masters) may act as anyone: the answers are dana's.
    let can_as = |args: &[&str]| {
        let mut a = vec!["auth", "can-i"];
        a.extend_from_slice(args);
        let out = s.kubectl(&a);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(can_as(&["list", "pods", "--as=dana"]), "yes");
    assert_eq!(can_as(&["delete", "pods", "--as=dana"]), "no");
    assert_eq!(
        can_as(&["delete", "pods", "--as=dana", "--as-group=system:masters"]),
        "yes"
    );
    let err = s.fails(&["delete", "pod", "x", "--as=dana"], None);
    assert!(
        err.contains(r#"pods "x" is forbidden: User "dana" cannot delete resource "pods""#),
        "{err}"
    );
    // dana may not impersonate anybody.
    let dana = mint(&s, "dana", &[]);
    // (`--raw`: kubectl's discovery client hides the message of a refused discovery request.)
    let out = kubectl_as(
        &s,
        &dana,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods",
            "--as=erin",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            r#"users "erin" is forbidden: User "dana" cannot impersonate resource "users" in API group "" at the cluster scope"#
        ),
        "{}",
        stderr(&out)
    );
    // Unless granted, for that user only.
    s.ok(&[
        "create",
        "clusterrole",
        "imp-erin",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=erin",
    ]);
    s.ok(&[
        "create",
        "clusterrolebinding",
        "dana-imp",
        "--clusterrole=imp-erin",
        "--user=dana",
    ]);
    let out = kubectl_as(&s, &dana, &["auth", "whoami", "--as=erin", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"username\": \"erin\""),
        "{}",
        stdout(&out)
    );
    let out = kubectl_as(&s, &dana, &["auth", "whoami", "--as=frank"]);
    assert!(!out.status.success());
}
