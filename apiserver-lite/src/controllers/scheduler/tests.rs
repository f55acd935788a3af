use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use serde_json::json;

use super::predicates::{self, HostPort};
use super::resources::{self, Resources};
use super::select::{self, NodeView, PodDemand};

fn node(name: &str, extra: serde_json::Value) -> Node {
    let mut value = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "disk": "ssd", "rank": "5"}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut value, extra);
    serde_json::from_value(value).expect("valid node")
}

fn pod(extra: serde_json::Value) -> Pod {
    let mut value = json!({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    merge(&mut value, extra);
    serde_json::from_value(value).expect("valid pod")
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, value) => *slot = value,
    }
}

fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: Some(value.into()),
        effect: effect.into(),
        time_added: None,
    }
}

fn toleration(
    key: Option<&str>,
    op: Option<&str>,
    value: Option<&str>,
    effect: Option<&str>,
) -> Toleration {
    Toleration {
        key: key.map(Into::into),
        operator: op.map(Into::into),
        value: value.map(Into::into),
        effect: effect.map(Into::into),
        toleration_seconds: None,
    }
}

#[test]
fn tolerations_follow_kube_rules() {
    let t = taint("dedicated", "gpu", "NoSchedule");
    assert!(predicates::tolerates(
        &toleration(Some("dedicated"), None, Some("gpu"), None),
        &t
    ));
    assert!(predicates::tolerates(
        &toleration(
            Some("dedicated"),
            Some("Equal"),
            Some("gpu"),
            Some("NoSchedule")
        ),
        &t
    ));
    assert!(!predicates::tolerates(
        &toleration(Some("dedicated"), Some("Equal"), Some("cpu"), None),
        &t
    ));
    assert!(!predicates::tolerates(
        &toleration(Some("dedicated"), Some("Exists"), None, Some("NoExecute")),
        &t
    ));
    assert!(predicates::tolerates(
        &toleration(Some("dedicated"), Some("Exists"), None, None),
        &t
    ));
    assert!(
        predicates::tolerates(&toleration(None, Some("Exists"), None, None), &t),
        "empty key + Exists tolerates all"
    );
    assert!(!predicates::tolerates(
        &toleration(Some("other"), Some("Exists"), None, None),
        &t
    ));
    assert!(!predicates::tolerates(
        &toleration(Some("dedicated"), Some("Bogus"), None, None),
        &t
    ));
}

#[test]
fn only_hard_taints_filter() {
    let n = node(
        "n",
        json!({"spec": {"taints": [
            {"key": "soft", "value": "x", "effect": "PreferNoSchedule"},
            {"key": "hard", "value": "y", "effect": "NoExecute"}
        ]}}),
    );
    let plain = pod(json!({}));
    let found = predicates::untolerated_taint(&plain, &n).expect("hard taint found");
    assert_eq!(
        predicates::taint_reason(found),
        "node(s) had untolerated taint {hard: y}"
    );
    let tolerant = pod(json!({"spec": {"tolerations": [{"key": "hard", "operator": "Exists"}]}}));
    assert!(predicates::untolerated_taint(&tolerant, &n).is_none());
}

#[test]
fn node_selector_and_affinity() {
    let n = node("n1", json!({}));
    assert!(predicates::matches_node_selector(
        &pod(json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
        &n
    ));
    assert!(!predicates::matches_node_selector(
        &pod(json!({"spec": {"nodeSelector": {"disk": "hdd"}}})),
        &n
    ));
    assert!(!predicates::matches_node_selector(
        &pod(json!({"spec": {"nodeSelector": {"zone": "a"}}})),
        &n
    ));
    let affinity = |terms: serde_json::Value| {
        pod(
            json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": terms
            }}}}}),
        )
    };
    let expr = |key: &str, op: &str, values: &[&str]| json!({"matchExpressions": [{"key": key, "operator": op, "values": values}]});
    let cases = [
        (expr("disk", "In", &["ssd", "nvme"]), true),
        (expr("disk", "NotIn", &["ssd"]), false),
        (expr("zone", "NotIn", &["a"]), true),
        (expr("disk", "Exists", &[]), true),
        (expr("disk", "DoesNotExist", &[]), false),
        (expr("rank", "Gt", &["4"]), true),
        (expr("rank", "Lt", &["4"]), false),
        (expr("disk", "Gt", &["4"]), false),
        (
            json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}),
            true,
        ),
        (
            json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}),
            false,
        ),
        (json!({}), false),
    ];
    for (term, expected) in cases {
        assert_eq!(
            predicates::matches_node_selector(&affinity(json!([term.clone()])), &n),
            expected,
            "{term}"
        );
    }
    // Terms are ORed.
    let either = affinity(json!([
        expr("disk", "In", &["hdd"]),
        expr("disk", "In", &["ssd"])
    ]));
    assert!(predicates::matches_node_selector(&either, &n));
}

#[test]
fn host_ports_conflict_on_overlap() {
    let p = pod(
        json!({"spec": {"containers": [{"name": "c", "image": "x", "ports": [
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"},
            {"containerPort": 9000}
        ]}]}}),
    );
    let ports = predicates::host_ports(&p);
    assert_eq!(ports.len(), 2);
    let tcp_any: HostPort = ("TCP".into(), 8080, "0.0.0.0".into());
    let tcp_one: HostPort = ("TCP".into(), 8080, "10.0.0.1".into());
    let udp_other: HostPort = ("UDP".into(), 53, "127.0.0.2".into());
    assert!(predicates::ports_conflict(&ports[0], &tcp_one));
    assert!(predicates::ports_conflict(&tcp_any, &ports[0]));
    assert!(!predicates::ports_conflict(&ports[1], &udp_other));
    assert!(!predicates::ports_conflict(
        &ports[0],
        &("UDP".into(), 8080, "0.0.0.0".into())
    ));
}

fn resources(pairs: &[(&str, i128)]) -> Resources {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn resource_fit_reports_every_shortage() {
    let alloc = resources(&[("cpu", 1000), ("memory", 1000), ("pods", 2000)]);
    let used = resources(&[("cpu", 600), ("memory", 100), ("pods", 1000)]);
    assert!(predicates::insufficient(&resources(&[("cpu", 400)]), &used, &alloc).is_empty());
    assert_eq!(
        predicates::insufficient(&resources(&[("cpu", 401)]), &used, &alloc),
        vec!["Insufficient cpu"]
    );
    let full = resources(&[("cpu", 1000), ("pods", 2000)]);
    assert_eq!(
        predicates::insufficient(
            &resources(&[("cpu", 1), ("nvidia.com/gpu", 1000)]),
            &full,
            &alloc
        ),
        vec![
            "Too many pods",
            "Insufficient cpu",
            "Insufficient nvidia.com/gpu"
        ]
    );
}

#[test]
fn messages_read_like_kube_scheduler() {
    let reasons = BTreeMap::from([(predicates::NOT_READY.to_string(), 1)]);
    assert_eq!(
        predicates::unschedulable_message(1, &reasons),
        "0/1 nodes are available: 1 node(s) were not ready."
    );
    let reasons = BTreeMap::from([
        ("Insufficient cpu".to_string(), 2),
        (predicates::UNSCHEDULABLE.to_string(), 1),
    ]);
    assert_eq!(
        predicates::unschedulable_message(3, &reasons),
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
    );
    assert_eq!(
        predicates::unschedulable_message(0, &BTreeMap::new()),
        "no nodes available to schedule pods"
    );
}

fn view<'a>(name: &'a str, n: &'a Node, used: &[(&str, i128)]) -> NodeView<'a> {
    NodeView {
        name,
        node: n,
        allocatable: resources::node_allocatable(n),
        used: resources(used),
        used_non_zero: resources(used),
        ports: Vec::new(),
    }
}

fn demand(p: &Pod) -> PodDemand<'_> {
    PodDemand {
        pod: p,
        requests: resources::pod_requests(p, false),
        requests_non_zero: resources::pod_requests(p, true),
        ports: predicates::host_ports(p),
        volumes: Default::default(),
    }
}

#[test]
fn choose_prefers_the_least_allocated_feasible_node() {
    let busy = node("busy", json!({}));
    let idle = node("idle", json!({}));
    let cordoned = node("cordoned", json!({"spec": {"unschedulable": true}}));
    let not_ready = node(
        "down",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    );
    let p = pod(json!({}));
    let d = demand(&p);
    let nodes = [
        view("busy", &busy, &[("cpu", 1500), ("pods", 3000)]),
        view("cordoned", &cordoned, &[]),
        view("down", &not_ready, &[]),
        view("idle", &idle, &[("cpu", 100), ("pods", 1000)]),
    ];
    assert_eq!(select::choose(&d, &nodes), Ok("idle"));
    // Equal scores: fewer pods, then name.
    let a = node("a", json!({}));
    let b = node("b", json!({}));
    assert_eq!(
        select::choose(&d, &[view("b", &b, &[]), view("a", &a, &[])]),
        Ok("a")
    );
}

#[test]
fn choose_explains_why_nothing_fits() {
    let down = node(
        "down",
        json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
    );
    let small = node(
        "small",
        json!({"status": {"allocatable": {"cpu": "100m", "memory": "1Gi", "pods": "110"}}}),
    );
    let tainted = node(
        "tainted",
        json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
    );
    let p = pod(
        json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "500m"}}}]}}),
    );
    let d = demand(&p);
    let nodes = [
        view("down", &down, &[]),
        view("small", &small, &[]),
        view("tainted", &tainted, &[]),
    ];
    assert_eq!(
        select::choose(&d, &nodes),
        Err("0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: v}, 1 node(s) were not ready."
            .to_string())
    );
    assert_eq!(
        select::choose(&d, &[]),
        Err(predicates::NO_NODES.to_string())
    );
}

#[test]
fn scoring_spreads_pods_without_requests() {
    let a = node("a", json!({}));
    let b = node("b", json!({}));
    let p = pod(json!({}));
    let d = demand(&p);
    // "a" already holds one request-less pod (counted with scoring defaults), so "b" wins.
    let one_pod = resources::pod_requests(&p, true);
    let mut used = vec![("pods", 1000)];
    used.extend(one_pod.iter().map(|(k, v)| (k.as_str(), *v)));
    assert_eq!(
        select::choose(&d, &[view("a", &a, &used), view("b", &b, &[])]),
        Ok("b")
    );
}

fn sized(name: &str, cpu: &str, memory: &str) -> Node {
    node(
        name,
        json!({"status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}}}),
    )
}

fn requesting(cpu: &str, memory: &str) -> Pod {
    pod(json!({"spec": {"containers": [{"name": "c", "image": "x",
        "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}))
}

const GI: i128 = 1024 * 1024 * 1024 * 1000;

#[test]
fn balanced_allocation_scores_with_numbers() {
    // 4 cpu, 8 GiB; 1 cpu and 5 GiB already requested; the pod asks 1 cpu, 1 GiB.
    // Fractions with the pod: cpu 2/4 = 0.5, memory 6/8 = 0.75; std = |0.5 - 0.75| / 2 = 0.125
    // → (1 - 0.125) × 100 = 87 (truncated like kube-scheduler's int64 conversion).
    let n = sized("n", "4", "8Gi");
    let p = requesting("1", "1Gi");
    let d = demand(&p);
    let v = view("n", &n, &[("cpu", 1000), ("memory", 5 * GI)]);
    assert_eq!(select::balanced_allocation(&d, &v), 87);
    // LeastAllocated on the same node (no scoring defaults apply: the container has requests):
    // cpu (4000 - 2000) × 100 / 4000 = 50, memory (8 - 6) / 8 = 25 → mean 37.
    assert_eq!(select::least_allocated(&d, &v), 37);
    assert_eq!(select::score(&d, &v), 87 + 37);

    // Perfect balance scores 100; fractions are capped at 1.
    let p = requesting("2", "4Gi");
    let d = demand(&p);
    assert_eq!(
        select::balanced_allocation(&d, &view("n", &n, &[])),
        100,
        "0.5 and 0.5"
    );
    let d_big = demand(&p);
    let full = view("n", &n, &[("cpu", 8000), ("memory", 0)]);
    // cpu fraction min(10/4, 1) = 1, memory 4/8 = 0.5 → std 0.25 → 75.
    assert_eq!(select::balanced_allocation(&d_big, &full), 75);

    // A node without memory allocatable is scored on cpu alone: std 0 → 100.
    let cpu_only = node(
        "c",
        json!({"status": {"allocatable": {"cpu": "4", "memory": "0", "pods": "110"}}}),
    );
    assert_eq!(
        select::balanced_allocation(&d, &view("c", &cpu_only, &[])),
        100
    );
}

#[test]
fn balanced_allocation_breaks_least_allocated_ties() {
    // Two 4 cpu / 8 GiB nodes with the same free total in LeastAllocated terms:
    //   "skewed" has 2 cpu and 0 memory requested, "even" 1 cpu and 2 GiB.
    // The pod asks 1 cpu / 2 GiB.
    //   skewed: least = ((4-3)/4 → 25 + (8-2)/8 → 75) / 2 = 50; balanced: 0.75 vs 0.25 → std 0.25 → 75.
    //   even:   least = ((4-2)/4 → 50 + (8-4)/8 → 50) / 2 = 50; balanced: 0.5 vs 0.5 → 100.
    let skewed = sized("skewed", "4", "8Gi");
    let even = sized("even", "4", "8Gi");
    let p = requesting("1", "2Gi");
    let d = demand(&p);
    let views = [
        view("skewed", &skewed, &[("cpu", 2000), ("pods", 1000)]),
        view(
            "even",
            &even,
            &[("cpu", 1000), ("memory", 2 * GI), ("pods", 1000)],
        ),
    ];
    assert_eq!(select::least_allocated(&d, &views[0]), 50);
    assert_eq!(select::least_allocated(&d, &views[1]), 50);
    assert_eq!(select::balanced_allocation(&d, &views[0]), 75);
    assert_eq!(select::balanced_allocation(&d, &views[1]), 100);
    assert_eq!(select::choose(&d, &views), Ok("even"));
}

#[test]
fn the_numbers_of_the_kubectl_scheduler_test() {
    // tests/scheduler.rs: LeastAllocated ties at 49, BalancedAllocation decides (75 vs 99).
    const MI: i128 = 1024 * 1024 * 1000;
    let skewed = sized("aa-skewed", "4", "8Gi");
    let even = sized("zz-even", "4", "8Gi");
    let p = requesting("1", "2Gi");
    let d = demand(&p);
    let views = [
        view(
            "aa-skewed",
            &skewed,
            &[("cpu", 2000), ("memory", MI), ("pods", 1000)],
        ),
        view(
            "zz-even",
            &even,
            &[("cpu", 1000), ("memory", 2148 * MI), ("pods", 1000)],
        ),
    ];
    assert_eq!(select::least_allocated(&d, &views[0]), 49);
    assert_eq!(select::least_allocated(&d, &views[1]), 49);
    assert_eq!(select::balanced_allocation(&d, &views[0]), 75);
    assert_eq!(select::balanced_allocation(&d, &views[1]), 99);
    assert_eq!(select::choose(&d, &views), Ok("zz-even"));
}
