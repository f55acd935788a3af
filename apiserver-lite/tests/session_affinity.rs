//! `spec.sessionAffinity` through kubectl: `ClientIP` gets kube's default timeout, a bad timeout kube's 422,
//! and `None` drops the config.

mod common;

use common::{Server, have};

const STICKY: &str = "apiVersion: v1
kind: Service
metadata: {name: NAME}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  CONFIG
  ports: [{port: 80, targetPort: 8080}]
";

fn manifest(name: &str, config: &str) -> String {
    STICKY.replace("NAME", name).replace("CONFIG", config)
}

fn affinity(s: &Server, name: &str) -> String {
    s.ok(&[
        "get",
        "svc",
        name,
        "-o",
        "jsonpath={.spec.sessionAffinity} {.spec.sessionAffinityConfig}",
    ])
}

#[test]
fn client_ip_affinity_as_kubectl_sees_it() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(&manifest("sticky", "")));
    assert!(out.status.success(), "{out:?}\n{}", s.log());
    assert_eq!(
        affinity(&s, "sticky"),
        r#"ClientIP {"clientIP":{"timeoutSeconds":10800}}"#
    );

    let short = "sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}";
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(&manifest("short", short)));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        affinity(&s, "short"),
        r#"ClientIP {"clientIP":{"timeoutSeconds":60}}"#
    );

    let bad = "sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}";
    let err = s.fails(&["create", "-f", "-"], Some(&manifest("bad", bad)));
    assert!(
        err.contains(
            "The Service \"bad\" is invalid: spec.sessionAffinityConfig.clientIP.timeoutSeconds: \
             Invalid value: 86401: must be greater than 0 and less than 86400"
        ),
        "{err}"
    );
    let err = s.fails(
        &[
            "patch",
            "svc",
            "sticky",
            "-p",
            r#"{"spec":{"sessionAffinity":"Sticky"}}"#,
        ],
        None,
    );
    assert!(
        err.contains(
            "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\""
        ),
        "{err}"
    );

    // Back to None: the config goes with it.
    s.ok(&[
        "patch",
        "svc",
        "short",
        "-p",
        r#"{"spec":{"sessionAffinity":"None"}}"#,
    ]);
    assert_eq!(affinity(&s, "short"), "None ");
}
