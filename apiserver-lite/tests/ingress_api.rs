//! networking.k8s.io/v1 Ingresses and IngressClasses through the real server and kubectl 1.32: discovery,
//! the DefaultIngressClass admission, kube's table and describe output, `kubectl create ingress` (a
//! protobuf body), kube's validation messages with nothing stored, `kubectl explain`, and the edit/view
//! roles.

mod common;
mod support_authz;

use common::{Server, path_str};
use serde_json::Value;
use support_authz::{kubectl_as, kubectl_present, mint, stderr, stdout};

/// kube's docs: an IngressClass marked as the default one.
const CLASS: &str = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx-example
  annotations:
    ingressclass.kubernetes.io/is-default-class: \"true\"
spec:
  controller: k8s.io/ingress-nginx
";

/// kube's docs: the `minimal-ingress` example, without its class.
const MINIMAL: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: minimal-ingress
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  rules:
  - http:
      paths:
      - path: /testpath
        pathType: Prefix
        backend:
          service:
            name: test
            port:
              number: 80
";

fn get_json(s: &Server, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&a)).expect("kubectl JSON")
}

fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} missing in:\n{table}"))
        .split_whitespace()
        .collect()
}

#[test]
fn ingresses_get_the_default_class_and_print_as_kube() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let listed = s.ok(&["api-resources", "--api-group=networking.k8s.io"]);
    assert_eq!(
        row(&listed, "ingresses"),
        [
            "ingresses",
            "ing",
            "networking.k8s.io/v1",
            "true",
            "Ingress"
        ]
    );
    assert_eq!(
        row(&listed, "ingressclasses"),
        [
            "ingressclasses",
            "networking.k8s.io/v1",
            "false",
            "IngressClass"
        ]
    );

    for (name, body) in [("class.yaml", CLASS), ("minimal.yaml", MINIMAL)] {
        let file = s.write(name, body);
        let out = s.ok(&["create", "-f", path_str(&file)]);
        assert!(out.contains("created"), "{out}");
    }
    let ing = get_json(&s, &["get", "ingress", "minimal-ingress"]);
    assert_eq!(ing["spec"]["ingressClassName"], "nginx-example");
    assert_eq!(ing["status"], serde_json::json!({"loadBalancer": {}}));
    assert_eq!(ing["metadata"]["generation"], 1);

    let classes = s.ok(&["get", "ingressclass"]);
    let header: Vec<&str> = classes
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "CONTROLLER", "PARAMETERS", "AGE"],
        "{classes}"
    );
    assert_eq!(
        row(&classes, "nginx-example")[..3],
        ["nginx-example", "k8s.io/ingress-nginx", "<none>"]
    );

    // kubectl's typed generator; its body is protobuf (client-go's default for built-in kinds).
    let out = s.kubectl(&[
        "create",
        "ingress",
        "simple",
        "--rule=foo.com/bar=svc1:8080,tls=my-cert",
        "-v=8",
    ]);
    let (stdout, log) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{log}");
    assert!(
        stdout.contains("ingress.networking.k8s.io/simple created"),
        "{stdout}"
    );
    assert!(
        log.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl sent no protobuf body:\n{log}"
    );
    let simple = get_json(&s, &["get", "ing", "simple"]);
    let rule = &simple["spec"]["rules"][0];
    assert_eq!(rule["host"], "foo.com");
    let path = &rule["http"]["paths"][0];
    assert_eq!(path["path"], "/bar");
    assert_eq!(path["pathType"], "Exact");
    assert_eq!(
        path["backend"]["service"],
        serde_json::json!({"name": "svc1", "port": {"number": 8080}})
    );
    assert_eq!(
        simple["spec"]["tls"],
        serde_json::json!([{"hosts": ["foo.com"], "secretName": "my-cert"}])
    );
    assert_eq!(simple["spec"]["ingressClassName"], "nginx-example");

    let table = s.ok(&["get", "ingress"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        "{table}"
    );
    // ADDRESS is empty until a controller writes the status: the row has one cell fewer.
    assert_eq!(
        row(&table, "minimal-ingress")[..4],
        ["minimal-ingress", "nginx-example", "*", "80"]
    );
    assert_eq!(
        row(&table, "simple")[..5],
        ["simple", "nginx-example", "foo.com", "80,", "443"]
    );

    let described = s.ok(&["describe", "ingress", "simple"]);
    for want in [
        "Name:",
        "Namespace:        default",
        "Ingress Class:    nginx-example",
        "TLS:",
        "my-cert terminates foo.com",
        "Rules:",
        "foo.com",
        "/bar   svc1:8080",
    ] {
        assert!(
            described.contains(want),
            "{want:?} missing in:\n{described}"
        );
    }
}

#[test]
fn invalid_ingresses_get_kubes_messages_and_nothing_is_stored() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let bad = |name: &str, spec: &str| {
        let file = s.write(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\nspec:\n{spec}"
            ),
        );
        s.fails(&["create", "-f", path_str(&file)], None)
    };
    let err = bad("empty", "  tls: []\n");
    assert!(
        err.contains(r#"The Ingress "empty" is invalid: spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"#),
        "{err}"
    );
    let err = bad(
        "relative",
        "  rules:\n  - host: 10.0.0.1\n    http:\n      paths:\n      - path: api\n        pathType: Prefix\n        backend:\n          service:\n            name: web\n            port:\n              number: 0\n",
    );
    for want in [
        r#"spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address"#,
        r#"spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path"#,
        "spec.rules[0].http.paths[0].backend: Required value: port name or number is required",
    ] {
        assert!(err.contains(want), "{want:?} missing in:\n{err}");
    }
    let err = bad(
        "notype",
        "  defaultBackend:\n    resource:\n      kind: Bucket\n      name: b\n  rules:\n  - http:\n      paths:\n      - path: /\n        backend:\n          service:\n            name: web\n            port:\n              name: http\n",
    );
    assert!(
        err.contains(
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"
        ),
        "{err}"
    );
    let file = s.write(
        "badclass.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: bad\nspec:\n  controller: nginx\n",
    );
    let err = s.fails(&["create", "-f", path_str(&file)], None);
    assert!(
        err.contains(r#"spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")"#),
        "{err}"
    );
    assert_eq!(
        s.ok(&["get", "ingress,ingressclass", "-o", "name"]).trim(),
        ""
    );

    // The typed schema: kubectl explain and strict field validation.
    let explained = s.ok(&["explain", "ingress.spec"]);
    assert!(explained.contains("ingressClassName"), "{explained}");
    assert!(explained.contains("defaultBackend"), "{explained}");
    let explained = s.ok(&["explain", "ingress.spec.rules"]);
    assert!(explained.contains("host"), "{explained}");
    let unknown = s.write(
        "unknown.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: unknown\nspec:\n  defaultBackend:\n    service:\n      name: web\n      port:\n        number: 80\n      bogus: 1\n",
    );
    let err = s.fails(&["create", "-f", path_str(&unknown)], None);
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn edit_writes_ingresses_view_reads_them_and_neither_touches_classes() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    s.ok(&["create", "namespace", "team"]);
    for (name, role, user) in [
        ("dev-edit", "edit", "dev"),
        ("viewer-view", "view", "viewer"),
    ] {
        let role = format!("--clusterrole={role}");
        let user = format!("--user={user}");
        s.ok(&["create", "rolebinding", name, &role, &user, "-n", "team"]);
    }
    let can = |kc: &std::path::PathBuf, args: &[&str]| {
        let mut a = vec!["auth", "can-i"];
        a.extend(args);
        stdout(&kubectl_as(&s, kc, &a))
    };
    let dev = mint(&s, "dev", &[]);
    let out = kubectl_as(
        &s,
        &dev,
        &["create", "ingress", "web", "--rule=/=web:80", "-n", "team"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(can(&dev, &["delete", "ingresses", "-n", "team"]), "yes");
    assert_eq!(
        can(
            &dev,
            &["get", "ingresses", "--subresource=status", "-n", "team"]
        ),
        "yes"
    );
    assert_eq!(
        can(
            &dev,
            &["update", "ingresses", "--subresource=status", "-n", "team"]
        ),
        "no"
    );
    assert_eq!(can(&dev, &["create", "ingressclasses"]), "no");

    let viewer = mint(&s, "viewer", &[]);
    let out = kubectl_as(&s, &viewer, &["get", "ing", "-n", "team", "-o", "name"]);
    assert_eq!(stdout(&out), "ingress.networking.k8s.io/web");
    assert_eq!(
        can(
            &viewer,
            &["get", "ingresses", "--subresource=status", "-n", "team"]
        ),
        "yes"
    );
    assert_eq!(can(&viewer, &["create", "ingresses", "-n", "team"]), "no");
    assert_eq!(can(&viewer, &["list", "ingressclasses"]), "no");
}
