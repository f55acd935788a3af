//! ServiceLB through kubectl 1.32 against the real server: a LoadBalancer Service gets the node's address
//! under EXTERNAL-IP (and its class cannot be set afterwards), a younger one asking for the same port
//! stays `<pending>` with a `PortConflict` event, and with `disable-servicelb: true` (config file) nothing
//! is written. No agent runs: the node is a fake one this test registers and marks Ready with an address.

mod common;

use std::time::{Duration, Instant};

use common::{Server, have, path_str};

fn node(s: &Server, name: &str, ip: &str) {
    let yaml = format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n");
    s.ok(&[
        "apply",
        "-f",
        path_str(&s.write(&format!("{name}.yaml"), &yaml)),
    ]);
    let status = format!(
        r#"{{"status":{{"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady","message":"fake node"}}],"addresses":[{{"type":"InternalIP","address":"{ip}"}},{{"type":"Hostname","address":"{name}"}}]}}}}"#
    );
    s.ok(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ]);
}

fn wait_for(s: &Server, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}\n{}",
            s.ok(&["get", "svc", "-o", "wide"]),
            common::tail(&s.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kubectl get svc` rows as (name, type, external-ip).
fn services(s: &Server) -> Vec<(String, String, String)> {
    s.ok(&["get", "svc", "--no-headers"])
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            Some((
                cells.first()?.to_string(),
                cells.get(1)?.to_string(),
                cells.get(3)?.to_string(),
            ))
        })
        .collect()
}

fn external_ip(s: &Server, name: &str) -> Option<String> {
    services(s)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, _, ip)| ip)
}

#[test]
fn node_address_as_external_ip_and_a_port_conflict_pending() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    node(&s, "n1", "192.0.2.11");
    s.ok(&["create", "service", "loadbalancer", "web", "--tcp=80:8080"]);
    wait_for(&s, "web's EXTERNAL-IP", || {
        external_ip(&s, "web").as_deref() == Some("192.0.2.11")
    });
    let status = s.ok(&["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer}"]);
    assert_eq!(
        status,
        r#"{"ingress":[{"ip":"192.0.2.11","ipMode":"VIP"}]}"#
    );
    // A LoadBalancer's class is fixed (kube 1.32): it cannot be taken away from ServiceLB afterwards.
    let refused = s.fails(
        &[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"loadBalancerClass":"example.com/lb"}}"#,
        ],
        None,
    );
    assert!(
        refused.contains(
            r#"The Service "web" is invalid: spec.loadBalancerClass: Invalid value: "example.com/lb": may not change once set"#
        ),
        "{refused}"
    );

    // Created a second later: younger, so port 80 stays web's.
    std::thread::sleep(Duration::from_millis(1100));
    s.ok(&["create", "service", "loadbalancer", "api", "--tcp=80:9090"]);
    wait_for(&s, "the PortConflict event", || {
        s.ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=PortConflict",
            "-o",
            "name",
        ])
        .lines()
        .count()
            == 1
    });
    let rows = services(&s);
    assert!(
        rows.contains(&("web".into(), "LoadBalancer".into(), "192.0.2.11".into())),
        "{rows:?}"
    );
    assert!(
        rows.contains(&("api".into(), "LoadBalancer".into(), "<pending>".into())),
        "{rows:?}"
    );
    let described: Vec<String> = s
        .ok(&["describe", "svc", "api"])
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        described
            .iter()
            .any(|l| l.starts_with("Warning PortConflict")
                && l.ends_with("port 80/TCP is in use by LoadBalancer Service default/web")),
        "{described:#?}"
    );
    let described = s.ok(&["describe", "svc", "web"]);
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("LoadBalancer Ingress:") && l.contains("192.0.2.11")),
        "{described}"
    );

    // web goes: api gets the node.
    s.ok(&["delete", "svc", "web"]);
    wait_for(&s, "api's EXTERNAL-IP", || {
        external_ip(&s, "api").as_deref() == Some("192.0.2.11")
    });
}

#[test]
fn disable_servicelb_in_the_config_file_leaves_load_balancers_pending() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let config = tempfile::tempdir().expect("tempdir");
    let file = config.path().join("apiserver.yaml");
    std::fs::write(&file, "disable-servicelb: true\n").expect("write config");
    let s = Server::start_with(&["--config", path_str(&file)]);
    node(&s, "n1", "192.0.2.11");
    s.ok(&["create", "service", "loadbalancer", "web", "--tcp=80:8080"]);
    // Long enough for ServiceLB's first round (100 ms after the listings) had it run.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(external_ip(&s, "web").as_deref(), Some("<pending>"));
    assert_eq!(
        s.ok(&["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer}"]),
        "{}"
    );
}
