//! `metrics.k8s.io/v1beta1` as metrics-server serves it (`pkg/api`): `nodes` (NodeMetrics, cluster-scoped)
//! and `pods` (PodMetrics, namespaced), get and list only. Lists start from the nodes and pods in the store
//! (label selector on their labels, field selector on `metadata.name`/`metadata.namespace`) and keep those
//! with usage; a get of an object without usage is metrics-server's NotFound on `nodemetrics` /
//! `podmetrics`. Also its discovery documents.

use http::Method;
use serde_json::{Map, Value, json};

use super::format;
use super::{NodeUsage, PodUsage};
use crate::auth::UserInfo;
use crate::handlers::Query;
use crate::resources::{Kind, by_kind};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::State;
use crate::status::{ApiError, ApiResult};

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

/// (resource, kind, namespaced).
const RESOURCES: &[(&str, &str, bool)] = &[
    ("nodes", "NodeMetrics", false),
    ("pods", "PodMetrics", true),
];

/// `/apis/metrics.k8s.io`, and its entry in `/apis` (without kind and apiVersion there).
pub fn api_group() -> Value {
    let gv = json!({"groupVersion": GROUP_VERSION, "version": VERSION});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [gv], "preferredVersion": gv})
}

/// The group in aggregated discovery (`/apis` as `APIGroupDiscoveryList`).
pub fn aggregated_group() -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(r, kind, namespaced)| {
            json!({
                "resource": r,
                "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
                "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": "",
                "verbs": ["get", "list"],
            })
        })
        .collect();
    json!({"metadata": {"name": GROUP, "creationTimestamp": null},
        "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}]})
}

/// `/apis/metrics.k8s.io/v1beta1`.
pub fn resource_list() -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(r, kind, namespaced)| {
            json!({"name": r, "singularName": "", "namespaced": namespaced, "kind": kind,
                "verbs": ["get", "list"]})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
        "resources": resources})
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn usage(cpu: u64, memory: u64) -> Value {
    json!({"cpu": format::cpu(cpu), "memory": format::memory(memory)})
}

/// metrics-server's object metadata: name, namespace, the object's labels, and now as creation time.
fn meta(obj: &Value) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(str_at(obj, "/metadata/name")));
    let ns = str_at(obj, "/metadata/namespace");
    if !ns.is_empty() {
        m.insert("namespace".into(), json!(ns));
    }
    m.insert(
        "creationTimestamp".into(),
        json!(crate::handlers::now_rfc3339()),
    );
    if let Some(l) = obj
        .pointer("/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|o| !o.is_empty()))
    {
        m.insert("labels".into(), l.clone());
    }
    Value::Object(m)
}

/// A NodeMetrics of `node` (the stored Node).
pub fn node_metrics(node: &Value, u: &NodeUsage) -> Value {
    json!({
        "metadata": meta(node),
        "timestamp": format::timestamp(u.timestamp),
        "window": format::go_duration(u.window),
        "usage": usage(u.cpu_nanocores, u.memory_bytes),
    })
}

/// A PodMetrics of `pod` (the stored Pod).
pub fn pod_metrics(pod: &Value, u: &PodUsage) -> Value {
    let containers: Vec<Value> = u
        .containers
        .iter()
        .map(|c| json!({"name": c.name, "usage": usage(c.cpu_nanocores, c.memory_bytes)}))
        .collect();
    json!({
        "metadata": meta(pod),
        "timestamp": format::timestamp(u.timestamp),
        "window": format::go_duration(u.window),
        "containers": containers,
    })
}

fn object(kind: &str, mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        let mut out = Map::new();
        out.insert("kind".into(), json!(kind));
        out.insert("apiVersion".into(), json!(GROUP_VERSION));
        out.append(m);
        return Value::Object(out);
    }
    v
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": items})
}

/// Serve `/apis/metrics.k8s.io/v1beta1/<rest>`.
pub async fn serve(
    state: &State,
    user: &UserInfo,
    method: &Method,
    rest: &[&str],
    q: &Query,
) -> ApiResult<Value> {
    if rest.is_empty() {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed(method.as_str()));
        }
        return Ok(resource_list());
    }
    let (resource, ns, name) = match rest {
        ["nodes"] => ("nodes", None, None),
        ["nodes", name] => ("nodes", None, Some(*name)),
        ["pods"] => ("pods", None, None),
        ["namespaces", ns, "pods"] => ("pods", Some(*ns), None),
        ["namespaces", ns, "pods", name] => ("pods", Some(*ns), Some(*name)),
        _ => return Err(ApiError::path_not_found()),
    };
    if method != Method::GET {
        return Err(ApiError::method_not_allowed(method.as_str()));
    }
    let authz_req = crate::authz::Request {
        method,
        group: GROUP,
        resource,
        subresource: None,
        namespace: ns,
        name,
        watch: false,
    };
    state.authz.check(user, &authz_req, &[], "").await?;
    match (resource, name) {
        ("nodes", Some(name)) => get_node(state, name).await,
        ("nodes", None) => list_nodes(state, q).await,
        (_, Some(name)) => get_pod(state, ns.unwrap_or("default"), name).await,
        (_, None) => list_pods(state, ns, q).await,
    }
}

/// metrics-server selects on `metadata.name` (and `metadata.namespace` for pods) only.
fn selectors(q: &Query, namespaced: bool) -> ApiResult<(LabelSelector, FieldSelector)> {
    let l = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
    let fields: &[&str] = if namespaced {
        &["metadata.name", "metadata.namespace"]
    } else {
        &["metadata.name"]
    };
    let f = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), fields)?;
    Ok((l, f))
}

fn field_matches(f: &FieldSelector, obj: &Value) -> bool {
    f.matches(|field| match field {
        "metadata.name" => str_at(obj, "/metadata/name").to_string(),
        "metadata.namespace" => str_at(obj, "/metadata/namespace").to_string(),
        _ => String::new(),
    })
}

async fn get_node(state: &State, name: &str) -> ApiResult<Value> {
    // metrics-server's node lister answers for a node that does not exist.
    let node = state
        .api
        .get(by_kind(Kind::Node), None, name)
        .await
        .map_err(|e| {
            if e.code == 404 {
                ApiError::not_found("", "node", name)
            } else {
                e
            }
        })?;
    let u = state
        .metrics
        .node(name)
        .ok_or_else(|| ApiError::not_found(GROUP, "nodemetrics", name))?;
    Ok(object("NodeMetrics", node_metrics(&node, &u)))
}

async fn list_nodes(state: &State, q: &Query) -> ApiResult<Value> {
    let (l, f) = selectors(q, false)?;
    let (nodes, _) = state
        .api
        .list(by_kind(Kind::Node), None, &l, &FieldSelector::default())
        .await?;
    let mut items: Vec<(String, Value)> = Vec::new();
    for node in nodes.iter().filter(|n| field_matches(&f, n)) {
        let name = str_at(node, "/metadata/name");
        if let Some(u) = state.metrics.node(name) {
            items.push((name.to_string(), node_metrics(node, &u)));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(list(
        "NodeMetricsList",
        items.into_iter().map(|(_, v)| v).collect(),
    ))
}

async fn get_pod(state: &State, ns: &str, name: &str) -> ApiResult<Value> {
    let pod = state.api.get(by_kind(Kind::Pod), Some(ns), name).await?;
    let u = state
        .metrics
        .pod(ns, name)
        .ok_or_else(|| ApiError::not_found(GROUP, "podmetrics", &format!("{ns}/{name}")))?;
    Ok(object("PodMetrics", pod_metrics(&pod, &u)))
}

async fn list_pods(state: &State, ns: Option<&str>, q: &Query) -> ApiResult<Value> {
    let (l, f) = selectors(q, true)?;
    let (pods, _) = state
        .api
        .list(by_kind(Kind::Pod), ns, &l, &FieldSelector::default())
        .await?;
    let mut items: Vec<((String, String), Value)> = Vec::new();
    for pod in pods.iter().filter(|p| field_matches(&f, p)) {
        let (pns, name) = (
            str_at(pod, "/metadata/namespace"),
            str_at(pod, "/metadata/name"),
        );
        if let Some(u) = state.metrics.pod(pns, name) {
            items.push(((pns.to_string(), name.to_string()), pod_metrics(pod, &u)));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(list(
        "PodMetricsList",
        items.into_iter().map(|(_, v)| v).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ContainerUsage;
    use std::time::{Duration, SystemTime};

    #[test]
    fn metrics_server_json() {
        let node = json!({"metadata": {"name": "n1", "labels": {"a": "b"}, "uid": "x"}});
        let u = NodeUsage {
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_millis(1_686_743_451_493),
            window: Duration::from_millis(15_002),
            cpu_nanocores: 156_210_151,
            memory_bytes: 590_508_032,
        };
        let v = object("NodeMetrics", node_metrics(&node, &u));
        assert_eq!(v["kind"], "NodeMetrics");
        assert_eq!(v["apiVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(v["metadata"]["labels"], json!({"a": "b"}));
        assert!(v["metadata"].get("uid").is_none());
        assert!(v["metadata"]["creationTimestamp"].is_string());
        assert_eq!(v["timestamp"], "2023-06-14T11:50:51Z");
        assert_eq!(v["window"], "15.002s");
        assert_eq!(
            v["usage"],
            json!({"cpu": "156210151n", "memory": "576668Ki"})
        );
        let pod = json!({"metadata": {"name": "web", "namespace": "default"}});
        let pu = PodUsage {
            timestamp: u.timestamp,
            window: Duration::from_secs(15),
            containers: vec![ContainerUsage {
                name: "c".into(),
                cpu_nanocores: 1_000_000,
                memory_bytes: 4096,
            }],
        };
        let p = pod_metrics(&pod, &pu);
        assert_eq!(p["metadata"]["namespace"], "default");
        assert!(p["metadata"].get("labels").is_none());
        assert_eq!(p["window"], "15s");
        assert_eq!(
            p["containers"],
            json!([{"name": "c", "usage": {"cpu": "1m", "memory": "4Ki"}}])
        );
    }

    #[test]
    fn discovery_documents() {
        assert_eq!(
            api_group()["preferredVersion"]["groupVersion"],
            GROUP_VERSION
        );
        let l = resource_list();
        assert_eq!(l["resources"][1]["name"], "pods");
        assert_eq!(l["resources"][1]["namespaced"], true);
        assert_eq!(l["resources"][0]["kind"], "NodeMetrics");
        let a = aggregated_group();
        assert_eq!(a["versions"][0]["version"], "v1beta1");
        assert_eq!(a["versions"][0]["resources"][0]["scope"], "Cluster");
        assert_eq!(
            a["versions"][0]["resources"][1]["verbs"],
            json!(["get", "list"])
        );
    }

    #[test]
    fn selectors_are_metrics_servers() {
        let q = Query(vec![("fieldSelector".into(), "spec.nodeName=x".into())]);
        assert!(selectors(&q, true).is_err());
        let q = Query(vec![(
            "fieldSelector".into(),
            "metadata.namespace=x".into(),
        )]);
        assert!(selectors(&q, false).is_err());
        assert!(selectors(&q, true).is_ok());
        let q = Query(vec![("fieldSelector".into(), "metadata.name!=a".into())]);
        let (_, f) = selectors(&q, false).unwrap_or_default();
        assert!(!field_matches(&f, &json!({"metadata": {"name": "a"}})));
        assert!(field_matches(&f, &json!({"metadata": {"name": "b"}})));
    }
}
