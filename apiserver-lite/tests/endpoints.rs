//! The endpoints controller and the `kubernetes` Service seen through kubectl, with pods driven through
//! `pods/status` as an agent drives them.

mod common;

use std::time::{Duration, Instant};

use common::{Server, have, tail};
use serde_json::{Value, json};

const OBJECTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, labels: {team: a}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: web}}
spec:
  schedulerName: nobody
  containers: [{name: c, image: busybox, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: web}}
spec:
  schedulerName: nobody
  containers: [{name: c, image: busybox, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: manual}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: manual}
subsets: [{addresses: [{ip: 192.0.2.1}], ports: [{port: 80}]}]
"#;

fn set_status(s: &Server, pod: &str, ip: &str, ready: bool) {
    let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    s.ok(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
}

/// `(addresses, notReadyAddresses)` of `ep` as `ip:port` / `ip` and the target pod names.
fn addresses(ep: &Value, list: &str) -> Vec<String> {
    ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| {
            let port = s["ports"][0]["port"].as_i64().unwrap_or(0);
            s[list].as_array().into_iter().flatten().map(move |a| {
                format!(
                    "{}:{port}={}",
                    a["ip"].as_str().unwrap_or("?"),
                    a["targetRef"]["name"].as_str().unwrap_or("?")
                )
            })
        })
        .collect()
}

fn get_json(s: &Server, args: &[&str]) -> Option<Value> {
    let out = s.kubectl(&[args, &["-o", "json"]].concat());
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("NotFound"), "kubectl {args:?}: {err}");
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).expect("kubectl JSON"))
}

/// Poll the Endpoints `name` (up to 10 s) until `check` holds for it (`None` = absent).
fn wait_endpoints(s: &Server, name: &str, what: &str, check: impl Fn(Option<&Value>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ep = get_json(s, &["get", "endpoints", name]);
        if check(ep.as_ref()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "endpoints {name}: {what}; last seen {ep:?}\nserver log:\n{}",
            tail(&s.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn endpoints_follow_pods_and_services() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    s.ok(&[
        "apply",
        "-f",
        s.write("objects.yaml", OBJECTS).to_str().expect("path"),
    ]);
    let manual_rv = get_json(&s, &["get", "endpoints", "manual"]).expect("manual endpoints")
        ["metadata"]["resourceVersion"]
        .clone();

    // Created at once, empty: no pod has an address yet.
    wait_endpoints(&s, "web", "created without addresses", |ep| {
        ep.is_some_and(|ep| ep.get("subsets").is_none() && ep["metadata"]["labels"]["team"] == "a")
    });

    set_status(&s, "a", "10.244.0.7", true);
    set_status(&s, "b", "10.244.0.6", true);
    wait_endpoints(&s, "web", "both pods ready", |ep| {
        ep.is_some_and(|ep| {
            addresses(ep, "addresses") == ["10.244.0.6:8080=b", "10.244.0.7:8080=a"]
                && addresses(ep, "notReadyAddresses").is_empty()
        })
    });
    let ep = get_json(&s, &["get", "endpoints", "web"]).expect("web endpoints");
    assert_eq!(
        ep["subsets"][0]["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    let table = s.ok(&["get", "endpoints", "web"]);
    assert!(table.contains("10.244.0.6:8080,10.244.0.7:8080"), "{table}");

    // Not ready any more: moves to notReadyAddresses.
    set_status(&s, "b", "10.244.0.6", false);
    wait_endpoints(&s, "web", "b not ready", |ep| {
        ep.is_some_and(|ep| {
            addresses(ep, "addresses") == ["10.244.0.7:8080=a"]
                && addresses(ep, "notReadyAddresses") == ["10.244.0.6:8080=b"]
        })
    });

    // A deleted pod (never bound, so removed at once) leaves.
    s.ok(&["delete", "pod", "a", "--wait=false"]);
    wait_endpoints(&s, "web", "a gone", |ep| {
        ep.is_some_and(|ep| {
            addresses(ep, "addresses").is_empty()
                && addresses(ep, "notReadyAddresses") == ["10.244.0.6:8080=b"]
        })
    });

    // The Service goes, and its Endpoints with it.
    s.ok(&["delete", "service", "web"]);
    wait_endpoints(&s, "web", "deleted with the service", |ep| ep.is_none());

    // The selector-less Service's Endpoints were never written by the controller.
    let manual = get_json(&s, &["get", "endpoints", "manual"]).expect("manual endpoints kept");
    assert_eq!(manual["metadata"]["resourceVersion"], manual_rv);
    assert_eq!(addresses(&manual, "addresses"), ["192.0.2.1:80=?"]);

    // The `kubernetes` Service, as kube-apiserver makes it.
    let k = get_json(&s, &["get", "service", "kubernetes", "-n", "default"]).expect("kubernetes");
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(k["spec"]["clusterIPs"], json!(["10.96.0.1"]));
    assert_eq!(
        k["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": s.port}])
    );
    assert_eq!(
        k["metadata"]["labels"],
        json!({"component": "apiserver", "provider": "kubernetes"})
    );
    assert!(k["spec"].get("selector").is_none());
    // 127.0.0.1 is not reachable from pods: no Endpoints, said once in the log.
    assert!(get_json(&s, &["get", "endpoints", "kubernetes"]).is_none());
    let log = s.log();
    assert_eq!(
        log.matches("the advertise address is not reachable from pods")
            .count(),
        1,
        "{}",
        tail(&log, 30)
    );
    // Nobody else gets 10.96.0.1.
    let err = s.fails(
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: Service\nmetadata: {name: thief}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 1}]}\n"),
    );
    assert!(err.contains("already allocated"), "{err}");
}

#[test]
fn kubernetes_service_takes_the_first_host_of_the_service_cidr() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start_with(&["--service-cluster-ip-range", "10.100.0.0/16"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let k = loop {
        if let Some(k) = get_json(&s, &["get", "service", "kubernetes"]) {
            break k;
        }
        assert!(Instant::now() < deadline, "no kubernetes service");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(k["spec"]["clusterIP"], "10.100.0.1");
    assert_eq!(k["spec"]["ports"][0]["port"], 443);
}
