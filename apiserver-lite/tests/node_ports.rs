//! NodePort and LoadBalancer Services through kubectl: node ports from `--service-node-port-range`, kube's
//! errors for taken, out-of-range and exhausted ports, ports kept by apply and replace and freed by delete.

mod common;

use common::{Server, have, refused};

/// The TYPE, EXTERNAL-IP and PORT(S) columns of `kubectl get svc <name>`.
fn columns(s: &Server, name: &str) -> [String; 3] {
    let out = s.ok(&["get", "svc", name, "--no-headers"]);
    let cols: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(cols.len(), 6, "{out}");
    [cols[1], cols[3], cols[4]].map(str::to_string)
}

fn node_port(s: &Server, name: &str) -> u16 {
    let out = s.ok(&[
        "get",
        "svc",
        name,
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    out.parse()
        .unwrap_or_else(|_| panic!("node port of {name}: {out:?}"))
}

/// `kubectl create service nodeport <name> --tcp=<tcp> [--node-port=<port>]`; the error is kubectl's stderr.
fn node_port_service(s: &Server, name: &str, tcp: &str, port: Option<u16>) -> Result<(), String> {
    let tcp = format!("--tcp={tcp}");
    let port = port.map(|p| format!("--node-port={p}"));
    let mut args = vec!["create", "service", "nodeport", name, &tcp];
    args.extend(port.as_deref());
    let out = s.kubectl(&args);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `kubectl <verb> -f -` of `manifest` (`verb` may carry flags).
fn apply(s: &Server, verb: &str, manifest: &str) {
    let mut args: Vec<&str> = verb.split(' ').collect();
    args.extend(["-f", "-"]);
    let out = s.kubectl_stdin(&args, Some(manifest));
    assert!(out.status.success(), "kubectl {verb}: {out:?}\n{}", s.log());
}

const APPLIED: &str = "apiVersion: v1
kind: Service
metadata: {name: applied}
spec:
  type: TYPE
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: TARGET}]
";

#[test]
fn node_ports_as_kubectl_sees_them() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    node_port_service(&s, "web", "80:8080", None).expect("created");
    let np = node_port(&s, "web");
    assert!((30000..=32767).contains(&np), "{np}");
    assert_eq!(
        columns(&s, "web"),
        ["NodePort", "<none>", &format!("80:{np}/TCP")]
    );

    node_port_service(&s, "fixed", "80:8080", Some(30080)).expect("created");
    assert_eq!(columns(&s, "fixed")[2], "80:30080/TCP");
    let err = node_port_service(&s, "again", "81:8080", Some(30080)).expect_err("taken");
    assert!(
        err.contains("Service \"again\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"),
        "{err}"
    );
    let err = node_port_service(&s, "low", "80:8080", Some(80)).expect_err("out of range");
    assert!(
        err.contains("spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{err}"
    );
    // Deleting a Service frees its node port.
    s.ok(&["delete", "service", "fixed"]);
    node_port_service(&s, "again", "81:8080", Some(30080)).expect("freed");

    // Manifests without nodePort keep the one allocated, through apply and replace.
    let manifest = |ty: &str, target: &str| APPLIED.replace("TYPE", ty).replace("TARGET", target);
    apply(&s, "apply", &manifest("NodePort", "8080"));
    let np = node_port(&s, "applied");
    apply(&s, "apply", &manifest("NodePort", "9090"));
    apply(&s, "replace", &manifest("NodePort", "9091"));
    apply(
        &s,
        "apply --server-side --force-conflicts",
        &manifest("NodePort", "9092"),
    );
    assert_eq!(node_port(&s, "applied"), np);
    let target = s.ok(&[
        "get",
        "svc",
        "applied",
        "-o",
        "jsonpath={.spec.ports[0].targetPort}",
    ]);
    assert_eq!(target, "9092");
    // To ClusterIP: the node port is dropped (and freed), as kube does when the client left it unchanged.
    apply(
        &s,
        "apply --server-side --force-conflicts",
        &manifest("ClusterIP", "9092"),
    );
    assert_eq!(
        columns(&s, "applied")[..],
        ["ClusterIP", "<none>", "80/TCP"]
    );
    node_port_service(&s, "reuse", "80", Some(np)).expect("freed");
    let err = s.fails(
        &[
            "patch",
            "svc",
            "applied",
            "-p",
            r#"{"spec":{"ports":[{"port":80,"nodePort":30099}]}}"#,
        ],
        None,
    );
    assert!(
        err.contains(
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        ),
        "{err}"
    );

    // A LoadBalancer is a NodePort Service whose load balancer nobody provides.
    s.ok(&["create", "service", "loadbalancer", "lb", "--tcp=443:8443"]);
    let np = node_port(&s, "lb");
    assert_eq!(
        columns(&s, "lb"),
        ["LoadBalancer", "<pending>", &format!("443:{np}/TCP")]
    );
    let spec = s.ok(&[
        "get",
        "svc",
        "lb",
        "-o",
        "jsonpath={.spec.externalTrafficPolicy} {.spec.allocateLoadBalancerNodePorts} {.status}",
    ]);
    assert_eq!(spec, r#"Cluster true {"loadBalancer":{}}"#);
}

#[test]
fn a_full_node_port_range() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start_with(&["--service-node-port-range", "30000-30002"]);
    for name in ["a", "b", "c"] {
        node_port_service(&s, name, "80", None).expect("created");
    }
    let err = node_port_service(&s, "d", "80", None).expect_err("full");
    assert!(
        err.contains("Internal error occurred: failed to allocate a nodePort: range is full"),
        "{err}"
    );
    let b = node_port(&s, "b");
    s.ok(&["delete", "service", "b"]);
    node_port_service(&s, "d", "80", None).expect("freed");
    assert_eq!(node_port(&s, "d"), b);
}

#[test]
fn bad_node_port_ranges_stop_the_server() {
    let err = refused(&["--service-node-port-range", "32767-30000"]);
    assert!(
        err.contains("invalid value '32767-30000' for '--service-node-port-range")
            && err.contains("end port cannot be less than start port"),
        "{err}"
    );
    let err = refused(&["--service-node-port-range", "30000-70000"]);
    assert!(err.contains("ports must be between 1 and 65535"), "{err}");
}
