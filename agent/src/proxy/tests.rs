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
    ports_on(services, eps, node, &[])
}

/// [`service_ports`] on a node named `node` with the addresses `addresses`.
fn ports_on(
    services: &[Service],
    eps: &[Endpoints],
    node: &str,
    addresses: &[Ipv4Addr],
) -> Vec<ServicePort> {
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
        addresses,
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
    let nft = rules::render(&ports, None, None);
    assert!(nft.contains("10.96.0.13 . tcp . 81"));
}

/// A LoadBalancer Service in namespace `ns` with `status.loadBalancer.ingress` = `ingress`.
fn load_balancer(name: &str, spec: Value, ingress: &[&str]) -> Service {
    let ingress: Vec<Value> = ingress
        .iter()
        .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
        .collect();
    let mut svc = service(name, spec);
    svc.status = Some(
        serde_json::from_value(json!({"loadBalancer": {"ingress": ingress}})).expect("status"),
    );
    svc
}

const NODE_A: Ipv4Addr = Ipv4Addr::new(192, 168, 5, 10);

#[test]
fn load_balancer_ports_only_with_an_ingress_naming_this_node() {
    let spec = |ip: &str, np: i32| json!({"type": "LoadBalancer", "clusterIP": ip, "ports": [{"port": 80, "nodePort": np}]});
    let services = [
        load_balancer(
            "here",
            spec("10.96.0.20", 30020),
            &["192.168.5.9", "192.168.5.10"],
        ),
        load_balancer("elsewhere", spec("10.96.0.21", 30021), &["192.168.5.9"]),
        load_balancer("pending", spec("10.96.0.22", 30022), &[]),
        // Stale status of a Service that is no longer a LoadBalancer.
        load_balancer(
            "was-lb",
            json!({"type": "NodePort", "clusterIP": "10.96.0.23", "ports": [{"port": 80, "nodePort": 30023}]}),
            &["192.168.5.10"],
        ),
    ];
    let ports = ports_on(&services, &[], "a", &[NODE_A]);
    let lb: Vec<(&str, bool)> = ports
        .iter()
        .map(|p| (p.name.as_str(), p.load_balancer))
        .collect();
    assert_eq!(
        lb,
        [
            ("elsewhere", false),
            ("here", true),
            ("pending", false),
            ("was-lb", false)
        ]
    );
    assert!(ports.iter().all(|p| p.node_port.is_some()), "{ports:?}");
    // Without knowing its addresses, a node serves no load balancer.
    assert!(
        ports_on(&services, &[], "a", &[])
            .iter()
            .all(|p| !p.load_balancer)
    );
    let addrs = [
        k8s_openapi::api::core::v1::NodeAddress {
            type_: "InternalIP".into(),
            address: "192.168.5.10".into(),
        },
        k8s_openapi::api::core::v1::NodeAddress {
            type_: "Hostname".into(),
            address: "10.0.0.1".into(),
        },
        k8s_openapi::api::core::v1::NodeAddress {
            type_: "ExternalIP".into(),
            address: "fd00::1".into(),
        },
    ];
    assert_eq!(node_ips(&addrs), [NODE_A], "IPv4 Internal/ExternalIPs only");
}

#[test]
fn load_balancer_ports_render_as_node_ports_and_give_way_to_them() {
    let services = [
        load_balancer(
            "web",
            json!({"type": "LoadBalancer", "clusterIP": "10.96.0.30", "ports": [
                {"name": "http", "port": 80, "nodePort": 30080},
                {"name": "taken", "port": 30090, "nodePort": 30091},
            ]}),
            &["192.168.5.10"],
        ),
        service(
            "np",
            json!({"type": "NodePort", "clusterIP": "10.96.0.31", "ports": [{"port": 90, "nodePort": 30090}]}),
        ),
        load_balancer(
            "dead",
            json!({"type": "LoadBalancer", "clusterIP": "10.96.0.32", "externalTrafficPolicy": "Local",
                   "ports": [{"port": 443, "protocol": "TCP", "nodePort": 30443}]}),
            &["192.168.5.10"],
        ),
    ];
    let eps = [
        endpoints(
            "web",
            json!([{"addresses": [{"ip": "10.244.0.5"}],
                "ports": [{"name": "http", "port": 8080}, {"name": "taken", "port": 8081}]}]),
        ),
        endpoints(
            "np",
            json!([{"addresses": [{"ip": "10.244.0.6"}], "ports": [{"port": 9090}]}]),
        ),
        // Only a remote endpoint: nothing for externalTrafficPolicy Local on this node.
        endpoints(
            "dead",
            json!([{"addresses": [{"ip": "10.244.1.7"}], "ports": [{"port": 8443}]}]),
        ),
    ];
    let ports = ports_on(&services, &eps, "a", &[NODE_A]);
    let local: ipnet::Ipv4Net = "10.244.0.0/24".parse().expect("cidr");
    let nft = rules::render(&ports, Some(local), None);
    let nodeports = section(&nft, "map service-nodeports {");
    assert!(
        nodeports.contains(
            "elements = { tcp . 80 : goto ext-svc-ns/web/tcp/http, tcp . 30080 : goto ext-svc-ns/web/tcp/http, \
             tcp . 30090 : goto ext-svc-ns/np/tcp/90, tcp . 30091 : goto ext-svc-ns/web/tcp/taken }"
        ),
        "the load balancer port 30090 gives way to np's node port: {nodeports}"
    );
    let dead = section(&nft, "set no-endpoint-nodeports {");
    assert!(
        dead.contains("elements = { tcp . 443, tcp . 30443 }"),
        "{dead}"
    );
    // One external chain for the node port and the load balancer port of `web/http`.
    assert_eq!(
        nft.matches("chain ext-svc-ns/web/tcp/http {").count(),
        1,
        "{nft}"
    );
    assert!(!nft.contains("chain ext-svc-ns/dead"), "{nft}");

    // Once the ingress no longer names this node, only the node ports stay.
    let mut moved = services.clone();
    for svc in &mut moved {
        svc.status = None;
    }
    let nft = rules::render(&ports_on(&moved, &eps, "a", &[NODE_A]), Some(local), None);
    let nodeports = section(&nft, "map service-nodeports {");
    assert!(!nodeports.contains("tcp . 80 :"), "{nodeports}");
    assert!(nodeports.contains("tcp . 30080 : goto ext-svc-ns/web/tcp/http"));
    let dead = section(&nft, "set no-endpoint-nodeports {");
    assert!(dead.contains("elements = { tcp . 30443 }"), "{dead}");
}

#[test]
fn two_load_balancers_on_one_port_make_one_entry_and_dns_is_left_alone() {
    let spec = |ip: &str| json!({"type": "LoadBalancer", "clusterIP": ip, "ports": [{"port": 53, "protocol": "UDP"}]});
    // The controller keeps this from happening; the agent must still write a batch nft accepts.
    let services = [
        load_balancer("a-dns", spec("10.96.0.40"), &["192.168.5.10"]),
        load_balancer("b-dns", spec("10.96.0.41"), &["192.168.5.10"]),
    ];
    let ports = ports_on(&services, &[], "a", &[NODE_A]);
    let dns = Ipv4Addr::new(10, 96, 0, 10);
    let nft = rules::render(&ports, None, Some(dns));
    let dead = section(&nft, "set no-endpoint-nodeports {");
    assert!(dead.contains("elements = { udp . 53 }"), "{dead}");
    // The cluster DNS address (on lo, so local) is neither redirected nor rejected.
    assert_eq!(
        nft.matches("ip daddr != { 127.0.0.0/8, 10.96.0.10 } meta l4proto . th dport")
            .count(),
        2,
        "{nft}"
    );
}

/// The text of `nft` from `start` to the end of that block.
fn section<'a>(nft: &'a str, start: &str) -> &'a str {
    let from = nft
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {nft}"));
    let rest = &nft[from..];
    &rest[..rest.find("\n\t}").unwrap_or(rest.len())]
}

#[test]
fn client_ip_affinity_sets_are_checked_before_the_random_pick() {
    let spec = |affinity: Value| {
        let mut spec = json!({"type": "NodePort", "clusterIP": "10.96.0.50", "externalTrafficPolicy": "Local",
            "ports": [{"name": "http", "port": 80, "nodePort": 30050}]});
        spec.as_object_mut()
            .expect("object")
            .extend(affinity.as_object().cloned().unwrap_or_default());
        spec
    };
    let eps = [endpoints(
        "web",
        json!([{"addresses": [{"ip": "10.244.0.5"}, {"ip": "10.244.0.6"}, {"ip": "10.244.1.7"}],
                "ports": [{"name": "http", "port": 8080}]}]),
    )];
    let local: ipnet::Ipv4Net = "10.244.0.0/24".parse().expect("cidr");
    let sticky = service(
        "web",
        spec(json!({"sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}})),
    );
    let ports = ports_of(std::slice::from_ref(&sticky), &eps, "a");
    assert_eq!(ports[0].affinity, Some(600));
    let nft = rules::render(&ports, Some(local), None);
    let set = |ip: &str| format!("affinity-ns/web/tcp/http__{ip}/8080");
    let chain = |ip: &str| format!("svc-ns/web/tcp/http__{ip}/8080");
    for ip in ["10.244.0.5", "10.244.0.6", "10.244.1.7"] {
        let declared = section(&nft, &format!("set {} {{", set(ip)));
        assert!(
            declared.contains("type ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 600s"),
            "{declared}"
        );
        // The endpoint chain records the client before its DNAT.
        let ep = section(&nft, &format!("chain {} {{", chain(ip)));
        let update = ep
            .find(&format!("update @{} {{ ip saddr }}", set(ip)))
            .expect(ep);
        assert!(update < ep.find("dnat to").expect("dnat"), "{ep}");
    }
    // The service chain: every endpoint's set, then the random pick.
    let svc = section(&nft, "chain svc-ns/web/tcp/http {");
    let checks: Vec<&str> = svc.lines().skip(1).map(str::trim).collect();
    assert_eq!(checks.len(), 4, "{svc}");
    for (check, ip) in checks
        .iter()
        .zip(["10.244.0.5", "10.244.0.6", "10.244.1.7"])
    {
        assert_eq!(*check, format!("ip saddr @{} goto {}", set(ip), chain(ip)));
    }
    assert!(checks[3].starts_with("numgen random mod 3 vmap"), "{svc}");
    // externalTrafficPolicy Local: this node's endpoints only, their sets first.
    let ext = section(&nft, "chain ext-svc-ns/web/tcp/http {");
    let checks: Vec<&str> = ext.lines().skip(1).map(str::trim).collect();
    assert_eq!(
        checks[..2],
        [
            format!(
                "ip saddr @{} goto {}",
                set("10.244.0.5"),
                chain("10.244.0.5")
            ),
            format!(
                "ip saddr @{} goto {}",
                set("10.244.0.6"),
                chain("10.244.0.6")
            ),
        ]
    );
    assert!(checks[2].starts_with("numgen random mod 2 vmap"), "{ext}");
    assert_eq!(checks.len(), 3, "{ext}");

    // Without a config the timeout is kube's default; without affinity nothing of it is written.
    let default = service("web", spec(json!({"sessionAffinity": "ClientIP"})));
    assert_eq!(ports_of(&[default], &eps, "a")[0].affinity, Some(10800));
    let none = ports_of(
        &[service("web", spec(json!({"sessionAffinity": "None"})))],
        &eps,
        "a",
    );
    assert_eq!(none[0].affinity, None);
    let nft = rules::render(&none, Some(local), None);
    assert!(
        !nft.contains("affinity-") && !nft.contains("update @"),
        "{nft}"
    );
    assert!(
        rules::ruleset(&none, Some(local), None)
            .affinity_sets
            .is_empty()
    );
}
