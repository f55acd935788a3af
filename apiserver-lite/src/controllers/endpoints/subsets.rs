//! The pure part of the endpoints controller: which pods back a Service, on which ports, grouped the way
//! kube-controller-manager's `RepackSubsets` groups them (one subset per distinct port list).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Set (empty) on the Endpoints of a headless Service, as kube-controller-manager does.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The selector of a Service whose Endpoints the controller owns; `None` for selector-less Services
/// (their Endpoints are the user's) and ExternalName Services.
pub fn managed_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Equality-based selection, the only kind `spec.selector` has.
pub fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The labels of the Service's Endpoints: the Service's, plus the headless marker when it is headless.
pub fn endpoints_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

fn pod_ip(pod: &Pod) -> Option<&str> {
    let status = pod.status.as_ref()?;
    status
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .or_else(|| {
            status
                .pod_ips
                .as_ref()?
                .first()
                .map(|p| p.ip.as_str())
                .filter(|ip| !ip.is_empty())
        })
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// kube's `ShouldPodBeInEndpoints`: an address, not finished, and not deleting (unless the Service
/// publishes not-ready addresses, which includes terminating ones).
fn is_candidate(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    if pod_ip(pod).is_none() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// kube's `FindPort`: a number as is, a name through the pod's container ports of the same protocol.
fn target_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None | Some(IntOrString::Int(0)) => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name.as_str())
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol
            })
            .map(|p| p.container_port),
    }
}

fn address(svc: &Service, pod: &Pod, ip: &str) -> EndpointAddress {
    let svc_name = svc.metadata.name.as_deref().unwrap_or("");
    let spec = pod.spec.as_ref();
    let hostname = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
        .filter(|_| {
            spec.and_then(|s| s.subdomain.as_deref()) == Some(svc_name)
                && pod.metadata.namespace == svc.metadata.namespace
        });
    EndpointAddress {
        ip: ip.to_string(),
        hostname: hostname.map(str::to_string),
        node_name: spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
    }
}

fn by_ip(a: &EndpointAddress, b: &EndpointAddress) -> Ordering {
    let uid = |x: &EndpointAddress| x.target_ref.as_ref().and_then(|r| r.uid.clone());
    let name = |x: &EndpointAddress| x.target_ref.as_ref().and_then(|r| r.name.clone());
    a.ip.cmp(&b.ip)
        .then_with(|| name(a).cmp(&name(b)))
        .then_with(|| uid(a).cmp(&uid(b)))
}

type PortKey = Vec<(Option<String>, i32, Option<String>, Option<String>)>;

#[derive(Default)]
struct Group {
    ports: Vec<EndpointPort>,
    ready: Vec<EndpointAddress>,
    not_ready: Vec<EndpointAddress>,
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// The subsets of `svc`'s Endpoints given `pods` (any namespace; others are ignored). Deterministic:
/// subsets are ordered by their port lists, addresses by IP, so the same input gives the same JSON.
pub fn compute(svc: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let (Some(selector), Some(spec)) = (managed_selector(svc), svc.spec.as_ref()) else {
        return Vec::new();
    };
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let service_ports = spec.ports.as_deref().unwrap_or_default();
    let mut groups: BTreeMap<PortKey, Group> = BTreeMap::new();
    for pod in pods {
        if pod.metadata.namespace != svc.metadata.namespace
            || !selects(selector, pod)
            || !is_candidate(pod, publish_not_ready)
        {
            continue;
        }
        let Some(ip) = pod_ip(pod) else {
            continue;
        };
        let ports: Vec<EndpointPort> = service_ports
            .iter()
            .filter_map(|sp| {
                Some(EndpointPort {
                    name: sp.name.clone().filter(|n| !n.is_empty()),
                    port: target_port(pod, sp)?,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        // A pod none of whose ports resolve backs nothing; only a headless Service without ports lists
        // bare addresses.
        if ports.is_empty() && !(service_ports.is_empty() && is_headless(svc)) {
            continue;
        }
        let key: PortKey = ports
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.port,
                    p.protocol.clone(),
                    p.app_protocol.clone(),
                )
            })
            .collect();
        let group = groups.entry(key).or_insert_with(|| Group {
            ports: ports.clone(),
            ..Group::default()
        });
        let addr = address(svc, pod, ip);
        if publish_not_ready || is_ready(pod) {
            group.ready.push(addr);
        } else {
            group.not_ready.push(addr);
        }
    }
    groups
        .into_values()
        .map(|mut g| {
            g.ready.sort_by(by_ip);
            g.not_ready.sort_by(by_ip);
            EndpointSubset {
                addresses: non_empty(g.ready),
                not_ready_addresses: non_empty(g.not_ready),
                ports: non_empty(g.ports),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn svc(spec: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "labels": {"tier": "front"}},
            "spec": spec,
        }))
        .expect("service")
    }

    fn pod(name: &str, ip: Option<&str>, ready: bool) -> Pod {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "labels": {"app": "web", "pod": name}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i",
                     "ports": [{"name": "http", "containerPort": 8080},
                               {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        });
        if let Some(ip) = ip {
            p["status"]["podIP"] = json!(ip);
        }
        serde_json::from_value(p).expect("pod")
    }

    fn web(ports: Value) -> Service {
        svc(json!({"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ports": ports}))
    }

    /// A subset as `(ports as (name, port), ready IPs, not-ready IPs)`.
    type Summary<'a> = (Vec<(Option<&'a str>, i32)>, Vec<&'a str>, Vec<&'a str>);

    fn ips(addrs: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        addrs
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect::<Vec<_>>()
    }

    #[test]
    fn ready_and_not_ready_pods_with_their_references() {
        let s = web(json!([{"port": 80, "targetPort": 8080}]));
        let (a, b, c) = (
            pod("a", Some("10.244.0.5"), true),
            pod("b", Some("10.244.0.4"), false),
            pod("c", None, true),
        );
        let got = compute(&s, &[&a, &b, &c]);
        assert_eq!(got.len(), 1);
        assert_eq!(ips(&got[0].addresses), ["10.244.0.5"]);
        assert_eq!(ips(&got[0].not_ready_addresses), ["10.244.0.4"]);
        let v = serde_json::to_value(&got[0]).expect("json");
        assert_eq!(
            v["addresses"][0],
            json!({"ip": "10.244.0.5", "nodeName": "n1",
                   "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}})
        );
        assert_eq!(v["ports"], json!([{"port": 8080, "protocol": "TCP"}]));
    }

    #[test]
    fn publish_not_ready_addresses_lists_every_pod_as_ready_even_terminating() {
        let s = svc(
            json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
                          "ports": [{"port": 80}]}),
        );
        let a = pod("a", Some("10.244.0.1"), false);
        let mut b = pod("b", Some("10.244.0.2"), true);
        b.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).expect("time"));
        let got = compute(&s, &[&a, &b]);
        assert_eq!(ips(&got[0].addresses), ["10.244.0.1", "10.244.0.2"]);
        assert!(got[0].not_ready_addresses.is_none());
        assert_eq!(got[0].ports.as_ref().expect("ports")[0].port, 80);
    }

    #[test]
    fn terminal_deleting_other_namespace_and_unselected_pods_are_left_out() {
        let s = web(json!([{"port": 80}]));
        let mut done = pod("done", Some("10.244.0.1"), false);
        done.status.as_mut().expect("status").phase = Some("Succeeded".into());
        let mut failed = pod("failed", Some("10.244.0.2"), true);
        failed.status.as_mut().expect("status").phase = Some("Failed".into());
        let mut deleting = pod("deleting", Some("10.244.0.3"), true);
        deleting.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).expect("time"));
        let mut elsewhere = pod("elsewhere", Some("10.244.0.4"), true);
        elsewhere.metadata.namespace = Some("other".into());
        let mut unlabelled = pod("unlabelled", Some("10.244.0.5"), true);
        unlabelled.metadata.labels = None;
        let ok = pod("ok", Some("10.244.0.6"), true);
        let got = compute(
            &s,
            &[&done, &failed, &deleting, &elsewhere, &unlabelled, &ok],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(ips(&got[0].addresses), ["10.244.0.6"]);
        assert!(got[0].not_ready_addresses.is_none());
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_group_by_port_list() {
        let s = web(json!([
            {"name": "web", "port": 80, "targetPort": "http", "appProtocol": "http"},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
            {"name": "raw", "port": 9000},
        ]));
        let a = pod("a", Some("10.244.0.1"), true);
        // b calls its http port differently: the `web` port is left out for it.
        let mut b = pod("b", Some("10.244.0.2"), true);
        b.spec.as_mut().expect("spec").containers[0]
            .ports
            .as_mut()
            .expect("ports")[0]
            .name = Some("other".into());
        // c has `dns` only over TCP: the UDP `dns` port does not resolve.
        let mut c = pod("c", Some("10.244.0.3"), false);
        c.spec.as_mut().expect("spec").containers[0]
            .ports
            .as_mut()
            .expect("ports")[1]
            .protocol = Some("TCP".into());
        let d = pod("d", Some("10.244.0.0"), true);
        let got = compute(&s, &[&a, &b, &c, &d]);
        let summary: Vec<Summary<'_>> = got
            .iter()
            .map(|s| {
                (
                    s.ports
                        .iter()
                        .flatten()
                        .map(|p| (p.name.as_deref(), p.port))
                        .collect(),
                    ips(&s.addresses),
                    ips(&s.not_ready_addresses),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    vec![(Some("dns"), 5353), (Some("raw"), 9000)],
                    vec!["10.244.0.2"],
                    vec![]
                ),
                (
                    vec![
                        (Some("web"), 8080),
                        (Some("dns"), 5353),
                        (Some("raw"), 9000)
                    ],
                    vec!["10.244.0.0", "10.244.0.1"],
                    vec![]
                ),
                (
                    vec![(Some("web"), 8080), (Some("raw"), 9000)],
                    vec![],
                    vec!["10.244.0.3"]
                ),
            ]
        );
        let web_port = &got[1].ports.as_ref().expect("ports")[0];
        assert_eq!(web_port.app_protocol.as_deref(), Some("http"));
        assert_eq!(
            got[1].ports.as_ref().expect("ports")[1].protocol.as_deref(),
            Some("UDP")
        );
    }

    #[test]
    fn a_pod_whose_only_port_does_not_resolve_is_left_out() {
        let s = web(json!([{"port": 80, "targetPort": "missing"}]));
        let a = pod("a", Some("10.244.0.1"), true);
        assert!(compute(&s, &[&a]).is_empty());
    }

    #[test]
    fn deterministic_whatever_the_pod_order() {
        let s = web(json!([{"port": 80, "targetPort": "http"}]));
        let pods: Vec<Pod> = (0..8)
            .map(|i| pod(&format!("p{i}"), Some(&format!("10.244.1.{i}")), i % 3 != 0))
            .collect();
        let forward: Vec<&Pod> = pods.iter().collect();
        let backward: Vec<&Pod> = pods.iter().rev().collect();
        let a = serde_json::to_string(&compute(&s, &forward)).expect("json");
        let b = serde_json::to_string(&compute(&s, &backward)).expect("json");
        assert_eq!(a, b);
        assert_eq!(compute(&s, &forward), compute(&s, &backward));
    }

    #[test]
    fn unmanaged_services_and_labels() {
        let bare = svc(json!({"ports": [{"port": 80}]}));
        assert!(managed_selector(&bare).is_none());
        let external = svc(json!({"type": "ExternalName", "externalName": "x.example",
                                 "selector": {"app": "web"}}));
        assert!(managed_selector(&external).is_none());
        let a = pod("a", Some("10.244.0.1"), true);
        assert!(compute(&bare, &[&a]).is_empty());
        let headless = svc(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let got = compute(&headless, &[&a]);
        assert_eq!(ips(&got[0].addresses), ["10.244.0.1"]);
        assert!(got[0].ports.is_none());
        assert_eq!(
            endpoints_labels(&headless),
            BTreeMap::from([
                ("tier".to_string(), "front".to_string()),
                (HEADLESS_LABEL.to_string(), String::new())
            ])
        );
        assert_eq!(
            endpoints_labels(&web(json!([]))),
            BTreeMap::from([("tier".to_string(), "front".to_string())])
        );
    }

    #[test]
    fn hostname_only_for_the_pods_subdomain() {
        let s = web(json!([{"port": 80}]));
        let mut a = pod("a", Some("10.244.0.1"), true);
        a.spec.as_mut().expect("spec").hostname = Some("a-host".into());
        a.spec.as_mut().expect("spec").subdomain = Some("web".into());
        let mut b = pod("b", Some("10.244.0.2"), true);
        b.spec.as_mut().expect("spec").hostname = Some("b-host".into());
        let got = compute(&s, &[&a, &b]);
        let addrs = got[0].addresses.as_ref().expect("addresses");
        assert_eq!(addrs[0].hostname.as_deref(), Some("a-host"));
        assert_eq!(addrs[1].hostname, None);
    }
}
