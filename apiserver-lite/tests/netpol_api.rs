//! networking.k8s.io/v1 NetworkPolicies through the real server and kubectl 1.32: discovery and the short
//! name, kube's docs examples created with `kubectl create -f`, the defaults stored, the table, kube's
//! validation messages, and who may read and write them (edit/view, and the agents' ClusterRole bound to
//! `system:nodes`).

mod common;
mod support_authz;

use common::{Server, path_str};
use serde_json::Value;
use support_authz::{kubectl_as, kubectl_present, mint, stderr, stdout};

/// kube's docs: "Default deny all ingress traffic".
const DEFAULT_DENY: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-ingress
spec:
  podSelector: {}
  policyTypes:
  - Ingress
";

/// kube's docs: the `test-network-policy` example (ipBlock with except, namespace and pod selectors).
const TEST_POLICY: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
";

/// kube's docs: namespace and pod selector in one peer, a port range; no policyTypes, no protocol.
const AND_PEER: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: alice-clients
spec:
  podSelector:
    matchLabels:
      app: web
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          user: alice
      podSelector:
        matchLabels:
          role: client
    ports:
    - port: 32000
      endPort: 32768
  egress:
  - ports:
    - port: dns
      protocol: UDP
";

fn get_json(s: &Server, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&a)).expect("kubectl JSON")
}

#[test]
fn docs_examples_are_created_defaulted_and_listed() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let listed = s.ok(&["api-resources", "--api-group=networking.k8s.io"]);
    let line = listed
        .lines()
        .find(|l| l.starts_with("networkpolicies"))
        .unwrap_or_else(|| panic!("networkpolicies missing in:\n{listed}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "networkpolicies",
            "netpol",
            "networking.k8s.io/v1",
            "true",
            "NetworkPolicy"
        ]
    );

    for (name, body) in [
        ("deny.yaml", DEFAULT_DENY),
        ("test.yaml", TEST_POLICY),
        ("and.yaml", AND_PEER),
    ] {
        let file = s.write(name, body);
        let out = s.ok(&["create", "-f", path_str(&file)]);
        assert!(out.contains("created"), "{out}");
    }

    let table = s.ok(&["get", "netpol"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "POD-SELECTOR", "AGE"], "{table}");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("{name} missing in:\n{table}"))
            .clone()
    };
    assert_eq!(row("default-deny-ingress")[1], "<none>");
    assert_eq!(row("test-network-policy")[1], "role=db");
    assert_eq!(row("alice-clients")[1], "app=web");

    // The defaults kube stores: policyTypes from the rules present, ports without protocol are TCP.
    let p = get_json(&s, &["get", "networkpolicy", "alice-clients"]);
    assert_eq!(
        p["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert_eq!(p["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(p["spec"]["ingress"][0]["ports"][0]["endPort"], 32768);
    assert_eq!(p["spec"]["egress"][0]["ports"][0]["protocol"], "UDP");
    assert_eq!(p["metadata"]["generation"], 1);
    let p = get_json(&s, &["get", "netpol", "test-network-policy"]);
    assert_eq!(
        p["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"][0],
        "172.17.1.0/24"
    );

    // A spec change bumps the generation; the defaults apply to updates too.
    s.ok(&[
        "patch",
        "netpol",
        "default-deny-ingress",
        "--type=merge",
        "-p",
        r#"{"spec":{"policyTypes":null,"egress":[{"ports":[{"port":53}]}]}}"#,
    ]);
    let p = get_json(&s, &["get", "netpol", "default-deny-ingress"]);
    assert_eq!(p["metadata"]["generation"], 2);
    assert_eq!(
        p["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert_eq!(p["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");

    s.ok(&["delete", "netpol", "--all"]);
    assert_eq!(s.ok(&["get", "netpol", "-o", "name"]).trim(), "");
}

#[test]
fn invalid_policies_get_kubes_messages() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let bad = |name: &str, spec: &str| {
        let file = s.write(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\nspec:\n{spec}"
            ),
        );
        s.fails(&["create", "-f", path_str(&file)], None)
    };
    let err = bad(
        "outside",
        "  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock:\n        cidr: 10.0.0.0/16\n        except: [10.1.0.0/24]\n",
    );
    assert!(
        err.contains(
            r#"The NetworkPolicy "outside" is invalid: spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`"#
        ),
        "{err}"
    );
    let err = bad(
        "range",
        "  podSelector: {}\n  egress:\n  - ports:\n    - port: http\n      endPort: 90\n",
    );
    assert!(
        err.contains("spec.egress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric"),
        "{err}"
    );
    let err = bad(
        "peer",
        "  podSelector: {}\n  ingress:\n  - from:\n    - {}\n",
    );
    assert!(
        err.contains("spec.ingress[0].from[0]: Required value: must specify a peer"),
        "{err}"
    );
    let err = bad("types", "  podSelector: {}\n  policyTypes: [Sideways]\n");
    assert!(
        err.contains(r#"spec.policyTypes[0]: Unsupported value: "Sideways": supported values: "Ingress", "Egress""#),
        "{err}"
    );
    assert_eq!(s.ok(&["get", "netpol", "-o", "name"]).trim(), "");
}

#[test]
fn edit_writes_view_reads_and_nodes_read_every_namespace() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    s.ok(&["create", "namespace", "team"]);
    s.ok(&[
        "create",
        "rolebinding",
        "dev-edit",
        "--clusterrole=edit",
        "--user=dev",
        "-n",
        "team",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "viewer-view",
        "--clusterrole=view",
        "--user=viewer",
        "-n",
        "team",
    ]);
    let can = |kc: &std::path::PathBuf, args: &[&str]| {
        let mut a = vec!["auth", "can-i"];
        a.extend(args);
        stdout(&kubectl_as(&s, kc, &a))
    };
    let dev = mint(&s, "dev", &[]);
    let file = s.write("deny.yaml", DEFAULT_DENY);
    let out = kubectl_as(&s, &dev, &["create", "-f", path_str(&file), "-n", "team"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(can(&dev, &["delete", "netpol", "-n", "team"]), "yes");

    let viewer = mint(&s, "viewer", &[]);
    let out = kubectl_as(&s, &viewer, &["get", "netpol", "-n", "team", "-o", "name"]);
    assert_eq!(
        stdout(&out),
        "networkpolicy.networking.k8s.io/default-deny-ingress"
    );
    let out = kubectl_as(
        &s,
        &viewer,
        &["delete", "netpol", "default-deny-ingress", "-n", "team"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));

    // The agents' ClusterRole, bound to system:nodes: policies, namespaces and pods of every namespace.
    let node = mint(&s, "system:node:n1", &["system:nodes"]);
    for args in [
        ["list", "networkpolicies", "-A"],
        ["watch", "networkpolicies", "-A"],
        ["list", "namespaces", ""],
        ["watch", "pods", "-A"],
    ] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        assert_eq!(can(&node, &args), "yes", "{args:?}");
    }
    assert_eq!(
        can(&node, &["create", "networkpolicies", "-n", "team"]),
        "no"
    );
    let out = kubectl_as(&s, &node, &["get", "netpol", "-A", "-o", "name"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "networkpolicy.networking.k8s.io/default-deny-ingress"
    );
    let binding = get_json(
        &s,
        &["get", "clusterrolebinding", "skiff:network-policy-agent"],
    );
    assert_eq!(binding["roleRef"]["name"], "skiff:network-policy-agent");
    assert_eq!(binding["subjects"][0]["name"], "system:nodes");
}
