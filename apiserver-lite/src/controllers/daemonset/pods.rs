//! The pod side of the DaemonSet controller: which nodes a daemon pod belongs on (kube's
//! `NodeShouldRunDaemonPod`), the tolerations every daemon pod gets, the node affinity that pins a pod to
//! its node for the scheduler, and the pods made from the template.

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use serde_json::{Map, Value, json};

use super::super::owners::{self, str_at};
use super::super::scheduler::predicates;
use crate::resources::daemonset::template_generation;

/// The pod label with the template's hash (kube's `controller-revision-hash`).
pub const HASH_LABEL: &str = "controller-revision-hash";
/// The pod label with the DaemonSet's template generation.
pub const GENERATION_LABEL: &str = "pod-template-generation";

/// The tolerations kube's `AddOrUpdateDaemonPodTolerations` gives every daemon pod: node problems never
/// evict it and the conditions-based `NoSchedule` taints never keep it off a node. `network-unavailable`
/// only for host-network pods (the others need the pod network).
fn daemon_tolerations(host_network: bool) -> Vec<Value> {
    let mut out = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        out.push(
            json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
            "effect": "NoSchedule"}),
        );
    }
    out
}

/// Add the daemon tolerations to a pod spec; one with the same key, operator, value and effect is
/// replaced (kube's `AddOrUpdateTolerationInPodSpec`), so a user's `tolerationSeconds` on them goes.
pub fn add_daemon_tolerations(spec: &mut Value) {
    let host_network = spec
        .get("hostNetwork")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    let list = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    let Some(list) = list.as_array_mut() else {
        return;
    };
    let same = |a: &Value, b: &Value| {
        ["key", "operator", "effect", "value"]
            .iter()
            .all(|f| str_at(a, &format!("/{f}")) == str_at(b, &format!("/{f}")))
    };
    for toleration in daemon_tolerations(host_network) {
        match list.iter_mut().find(|t| same(t, &toleration)) {
            Some(existing) => *existing = toleration,
            None => list.push(toleration),
        }
    }
}

/// Pin the pod spec to `node` the way kube 1.32 does (`ReplaceDaemonSetPodNodeNameNodeAffinity`): the
/// required node affinity becomes the single term `matchFields metadata.name In [node]`; preferred terms
/// and pod (anti-)affinity stay. The template's own required terms were already checked for the node.
pub fn pin_to_node(spec: &mut Value, node: &str) {
    let required = json!({"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node]}]}]});
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    let affinity = spec.entry("affinity").or_insert_with(|| json!({}));
    if !affinity.is_object() {
        *affinity = json!({});
    }
    let node_affinity = &mut affinity["nodeAffinity"];
    if !node_affinity.is_object() {
        *node_affinity = json!({});
    }
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required;
}

/// The node a daemon pod is for: its `spec.nodeName`, else the `metadata.name In [node]` term of its
/// required node affinity (kube's `GetTargetNodeName`).
pub fn target_node(pod: &Value) -> Option<String> {
    let bound = str_at(pod, "/spec/nodeName");
    if !bound.is_empty() {
        return Some(bound.to_string());
    }
    let terms = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?
        .as_array()?;
    for term in terms {
        for req in term
            .get("matchFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if str_at(req, "/key") == "metadata.name" && str_at(req, "/operator") == "In" {
                let values = req.get("values")?.as_array()?;
                return match values.as_slice() {
                    [one] => one.as_str().map(str::to_string),
                    _ => None,
                };
            }
        }
    }
    None
}

/// The pod spec as the eligibility checks see it (kube's `NewPod`): the template's with the daemon
/// tolerations. `None` when the template does not parse as a pod.
pub fn daemon_pod(ds: &Value) -> Option<Pod> {
    let mut spec = ds
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or(json!({}));
    add_daemon_tolerations(&mut spec);
    serde_json::from_value(json!({"spec": spec})).ok()
}

/// Whether the daemon pod should run on `node`, and whether one already there may keep running (kube's
/// `NodeShouldRunDaemonPod`): the template's `nodeName` (if any), node selector and required node
/// affinity must match; a `NoSchedule`/`NoExecute` taint it does not tolerate keeps new pods off, and
/// only an untolerated `NoExecute` one also removes running pods.
pub fn should_run(pod: &Pod, node: &Node) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or("");
    let wanted_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("");
    if !wanted_name.is_empty() && wanted_name != name {
        return (false, false);
    }
    if !predicates::matches_node_selector(pod, node) {
        return (false, false);
    }
    if predicates::untolerated_taint(pod, node).is_none() {
        return (true, true);
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    let taints: &[Taint] = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let evicting = taints
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .any(|taint| !tolerations.iter().any(|t| predicates::tolerates(t, taint)));
    (false, !evicting)
}

/// A daemon pod for `node` (kube's `CreatePodTemplate` + `GetPodFromTemplate`): the template with the
/// daemon tolerations, the hash and generation labels, pinned to the node, `generateName: <ds>-`, the
/// DaemonSet as controller.
pub fn new_pod(ds: &Value, node: &str, hash: &str) -> Value {
    let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut meta = Map::new();
    meta.insert(
        "generateName".into(),
        format!("{}-", str_at(ds, "/metadata/name")).into(),
    );
    meta.insert("namespace".into(), str_at(ds, "/metadata/namespace").into());
    for field in ["annotations", "finalizers"] {
        if let Some(v) = template.pointer(&format!("/metadata/{field}"))
            && !v.is_null()
        {
            meta.insert(field.into(), v.clone());
        }
    }
    let mut labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(generation) = template_generation(ds) {
        labels.insert(GENERATION_LABEL.into(), generation.to_string().into());
    }
    labels.insert(HASH_LABEL.into(), hash.into());
    meta.insert("labels".into(), Value::Object(labels));
    meta.insert(
        "ownerReferences".into(),
        json!([owners::controller_owner_ref(ds)]),
    );
    let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
    add_daemon_tolerations(&mut spec);
    pin_to_node(&mut spec, node);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

/// Whether the pod runs the DaemonSet's current template (kube's `IsPodUpdated`): its hash label or its
/// template-generation label matches.
pub fn updated(pod: &Value, ds: &Value, hash: &str) -> bool {
    let label = |k: &str| {
        pod.pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
    };
    let by_generation = template_generation(ds)
        .is_some_and(|g| label(GENERATION_LABEL) == Some(g.to_string().as_str()));
    (!hash.is_empty() && label(HASH_LABEL) == Some(hash)) || by_generation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(extra: Value) -> Node {
        let mut n = json!({"metadata": {"name": "n1", "labels": {"disk": "ssd"}}, "spec": {}});
        if let (Some(m), Some(e)) = (n.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if k == "spec" {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        serde_json::from_value(n).expect("node")
    }

    fn ds(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid",
                "annotations": {"deprecated.daemonset.template.generation": "3"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec}}})
    }

    fn taint(key: &str, effect: &str) -> Value {
        json!({"key": key, "effect": effect})
    }

    #[test]
    fn eligibility_follows_selectors_and_taints() {
        let plain =
            daemon_pod(&ds(json!({"containers": [{"name": "c", "image": "i"}]}))).expect("pod");
        assert_eq!(should_run(&plain, &node(json!({}))), (true, true));
        // A NoSchedule taint keeps new pods off but lets running ones stay; NoExecute removes them.
        let no_schedule = node(json!({"spec": {"taints": [taint("dedicated", "NoSchedule")]}}));
        assert_eq!(should_run(&plain, &no_schedule), (false, true));
        let no_execute = node(json!({"spec": {"taints": [taint("dedicated", "NoExecute")]}}));
        assert_eq!(should_run(&plain, &no_execute), (false, false));
        // PreferNoSchedule never matters.
        let prefer = node(json!({"spec": {"taints": [taint("dedicated", "PreferNoSchedule")]}}));
        assert_eq!(should_run(&plain, &prefer), (true, true));
        // The daemon tolerations cover node problems and cordoning.
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ] {
            let n = node(json!({"spec": {"taints": [taint(key, effect)]}}));
            assert_eq!(should_run(&plain, &n), (true, true), "{key}");
        }
        // network-unavailable only for host-network pods.
        let net = node(
            json!({"spec": {"taints": [taint("node.kubernetes.io/network-unavailable", "NoSchedule")]}}),
        );
        assert_eq!(should_run(&plain, &net), (false, true));
        let host = daemon_pod(&ds(json!({"hostNetwork": true, "containers": []}))).expect("pod");
        assert_eq!(should_run(&host, &net), (true, true));
        // A template toleration.
        let tolerant = daemon_pod(&ds(
            json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
        ))
        .expect("pod");
        assert_eq!(should_run(&tolerant, &no_execute), (true, true));
        // Node selector, required affinity and nodeName.
        let ssd = daemon_pod(&ds(json!({"nodeSelector": {"disk": "ssd"}}))).expect("pod");
        assert_eq!(should_run(&ssd, &node(json!({}))), (true, true));
        let hdd = daemon_pod(&ds(json!({"nodeSelector": {"disk": "hdd"}}))).expect("pod");
        assert_eq!(should_run(&hdd, &node(json!({}))), (false, false));
        let affinity = daemon_pod(&ds(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]}}}})))
            .expect("pod");
        assert_eq!(should_run(&affinity, &node(json!({}))), (false, false));
        let named = daemon_pod(&ds(json!({"nodeName": "n2"}))).expect("pod");
        assert_eq!(should_run(&named, &node(json!({}))), (false, false));
    }

    #[test]
    fn tolerations_are_added_or_replaced() {
        let mut spec = json!({"tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "mine", "operator": "Exists"}]});
        add_daemon_tolerations(&mut spec);
        let t = spec["tolerations"].as_array().expect("list");
        assert_eq!(t.len(), 7, "{t:?}");
        assert_eq!(
            t[0],
            json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"})
        );
        assert_eq!(t[1]["key"], "mine");
        assert!(
            !t.iter()
                .any(|t| t["key"] == "node.kubernetes.io/network-unavailable")
        );
        // Idempotent.
        let before = spec.clone();
        add_daemon_tolerations(&mut spec);
        assert_eq!(spec, before);
        let mut host = json!({"hostNetwork": true});
        add_daemon_tolerations(&mut host);
        assert_eq!(host["tolerations"].as_array().map(Vec::len), Some(7));
    }

    #[test]
    fn affinity_merge_pins_the_node_and_keeps_the_rest() {
        let mut spec = json!({"affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference":
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}]},
            "podAntiAffinity": {"x": 1}}});
        pin_to_node(&mut spec, "n7");
        let na = &spec["affinity"]["nodeAffinity"];
        assert_eq!(
            na["requiredDuringSchedulingIgnoredDuringExecution"],
            json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]})
        );
        assert_eq!(
            na["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
            1
        );
        assert_eq!(spec["affinity"]["podAntiAffinity"], json!({"x": 1}));
        let mut bare = json!({});
        pin_to_node(&mut bare, "n1");
        assert_eq!(target_node(&json!({"spec": bare})).as_deref(), Some("n1"));
        assert_eq!(
            target_node(&json!({"spec": {"nodeName": "n2", "affinity": bare["affinity"]}}))
                .as_deref(),
            Some("n2")
        );
        assert_eq!(target_node(&json!({"spec": {}})), None);
    }

    #[test]
    fn pods_carry_owner_labels_and_pinning() {
        let d = ds(json!({"containers": [{"name": "c", "image": "i"}]}));
        let pod = new_pod(&d, "n1", "abc12");
        assert_eq!(pod["metadata"]["generateName"], "agent-");
        assert_eq!(pod["metadata"]["namespace"], "kube-system");
        assert_eq!(
            pod["metadata"]["labels"],
            json!({"app": "agent", "controller-revision-hash": "abc12", "pod-template-generation": "3"})
        );
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["uid"].as_str()),
            (Some("DaemonSet"), Some("ds-uid"))
        );
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
        assert_eq!(target_node(&pod).as_deref(), Some("n1"));
        assert!(updated(&pod, &d, "abc12"));
        // The generation label alone also counts as updated; neither does not.
        assert!(updated(&pod, &d, "other"));
        let mut older = d.clone();
        older["metadata"]["annotations"]["deprecated.daemonset.template.generation"] = json!("4");
        assert!(!updated(&pod, &older, "other"));
    }
}
