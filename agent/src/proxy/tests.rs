use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use serde_json::{Value, json};

use super::*;

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": name}, "spec": spec}))
        .expect("service")
}

fn endpoints(name: &str, subsets: Value) -> Endpoints {
    serde_json::from_value(
        json!({"metadata": {"namespace": "ns", "name": name}, "subsets": subsets}),
    )
    .expect("endpoints")
}

fn ports_of(services: &[Service], eps: &[Endpoints], node: &str) -> Vec<ServicePort> {
    let by_name: BTreeMap<(String, String), &Endpoints> = eps
        .iter()
        .map(|e| {
            let m = &e.metadata;
            (
                (
                    m.namespace.clone().unwrap_or_default(),
                    m.name.clone().unwrap_or_default(),
                ),
                e,
            )
        })
        .collect();
    let mut ports = service_ports(
        services.iter(),
        |ns, name| {
            by_name
                .get(&(ns.to_string(), name.to_string()))
                .map(|e| std::sync::Arc::new((*e).clone()))
        },
        node,
    );
    rules::order(&mut ports);
    ports
}

fn ep(ip: [u8; 4], port: u16) -> (Ipv4Addr, u16) {
    (Ipv4Addr::from(ip), port)
}

#[test]
fn ports_match_endpoints_by_name_and_protocol() {
    let svc = service(
        "web",
        json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]}),
    );
    let eps = endpoints(
        "web",
        json!([
            {"addresses": [{"ip": "10.244.1.7", "nodeName": "b"}, {"ip": "10.244.0.5", "nodeName": "a"}],
             "notReadyAddresses": [{"ip": "10.244.0.9", "nodeName": "a"}],
             "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
            {"addresses": [{"ip": "10.244.2.2", "nodeName": "c"}],
             "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "TCP"}]},
        ]),
    );
    let ports = ports_of(&[svc], &[eps], "a");
    assert_eq!(ports.len(), 2);
    let http = ports.iter().find(|p| p.port == 80).expect("http");
    assert_eq!(http.protocol, Protocol::Tcp);
    assert_eq!(http.port_name, "http");
    assert_eq!(
        http.endpoints,
        vec![
            ep([10, 244, 0, 5], 8080),
            ep([10, 244, 1, 7], 8080),
            ep([10, 244, 2, 2], 9090)
        ],
        "ready addresses only, sorted"
    );
    // The only `dns` endpoint port is TCP: the UDP service port has none.
    let dns = ports.iter().find(|p| p.port == 53).expect("dns");
    assert_eq!(dns.protocol, Protocol::Udp);
    assert!(dns.endpoints.is_empty());
}

#[test]
fn headless_external_name_and_local_traffic_policy() {
    let services = [
        service(
            "headless",
            json!({"clusterIP": "None", "ports": [{"port": 80}]}),
        ),
        service(
            "ext",
            json!({"type": "ExternalName", "externalName": "example.org"}),
        ),
        service(
            "local",
            json!({"clusterIP": "10.96.0.12", "internalTrafficPolicy": "Local", "ports": [{"port": 80, "targetPort": 8080}]}),
        ),
        service(
            "missing",
            json!({"clusterIP": "10.96.0.13", "ports": [{"port": 81}]}),
        ),
    ];
    let eps = [endpoints(
        "local",
        json!([{"addresses": [{"ip": "10.244.0.5", "nodeName": "a"}, {"ip": "10.244.1.7", "nodeName": "b"}],
                "ports": [{"port": 8080, "protocol": "TCP"}]}]),
    )];
    let ports = ports_of(&services, &eps, "a");
    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["local", "missing"]);
    assert_eq!(
        ports[0].port_name, "80",
        "an unnamed port is named by its number"
    );
    assert_eq!(ports[0].endpoints, vec![ep([10, 244, 0, 5], 8080)]);
    assert!(
        ports[1].endpoints.is_empty(),
        "no Endpoints object: rejected"
    );
    let nft = rules::render(&ports, None);
    assert!(nft.contains("10.96.0.13 . tcp . 81"));
}
