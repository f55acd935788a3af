//! Which PersistentVolume a claim may use (kube's `FindMatchingVolume` and `checkVolumeSatisfyClaim`):
//! storage class, access modes, volume mode, capacity, the claim's label selector, pre-binding and the
//! volume's node affinity. Pure functions over the stored JSON.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::super::owners::{Selector, Stored, labels_at, str_at};
use super::super::scheduler::resources::parse_milli;

/// The beta annotation that names a class and wins over `storageClassName` (kube still honours it).
const ANN_BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// The class a claim asks for: the beta annotation, else `spec.storageClassName`, else "" (no class).
pub fn claim_class(claim: &Value) -> &str {
    match claim
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANN_BETA_CLASS))
        .and_then(Value::as_str)
    {
        Some(class) => class,
        None => str_at(claim, "/spec/storageClassName"),
    }
}

/// The class of a volume, read as [`claim_class`] reads a claim's.
pub fn volume_class(volume: &Value) -> &str {
    claim_class(volume)
}

/// `spec.volumeMode`, `Filesystem` when absent.
pub fn volume_mode(object: &Value) -> &str {
    match str_at(object, "/spec/volumeMode") {
        "" => "Filesystem",
        mode => mode,
    }
}

/// The access modes listed at `pointer`.
pub fn access_modes<'a>(object: &'a Value, pointer: &str) -> BTreeSet<&'a str> {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A quantity at `pointer` (a string, or a number as some clients send) in milli-units; `Some(0)` when
/// absent, `None` when it does not parse.
pub fn quantity_at(object: &Value, pointer: &str) -> Option<i128> {
    match object.pointer(pointer) {
        None | Some(Value::Null) => Some(0),
        Some(Value::String(s)) => parse_milli(s),
        Some(Value::Number(n)) => parse_milli(&n.to_string()),
        Some(_) => None,
    }
}

/// The claim's storage request in milli-units.
pub fn requested(claim: &Value) -> Option<i128> {
    quantity_at(claim, "/spec/resources/requests/storage")
}

/// The volume's storage capacity in milli-units.
pub fn capacity(volume: &Value) -> Option<i128> {
    quantity_at(volume, "/spec/capacity/storage")
}

/// Whether the volume's `claimRef` names this claim (namespace and name, and the uid when it has one):
/// kube's `IsVolumeBoundToClaim`.
pub fn bound_to_claim(volume: &Value, claim: &Value) -> bool {
    let Some(r) = volume.pointer("/spec/claimRef").filter(|r| r.is_object()) else {
        return false;
    };
    let uid = str_at(r, "/uid");
    str_at(r, "/name") == str_at(claim, "/metadata/name")
        && str_at(r, "/namespace") == str_at(claim, "/metadata/namespace")
        && (uid.is_empty() || uid == str_at(claim, "/metadata/uid"))
}

/// The node a volume must be usable on, as its affinity is checked: the name (for `matchFields`) and the
/// labels. A node this controller has not seen (yet) is taken as having only the well-known hostname
/// label, which is what skiff's nodes and the local-path volumes use.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl NodeView {
    pub fn named(name: &str, labels: Option<&BTreeMap<String, String>>) -> NodeView {
        let labels = labels.cloned().unwrap_or_else(|| {
            BTreeMap::from([("kubernetes.io/hostname".to_string(), name.to_string())])
        });
        NodeView {
            name: name.to_string(),
            labels,
        }
    }
}

/// Whether one `NodeSelectorRequirement` holds for `value` (the label or field, if the node has it).
fn requirement_holds(req: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = req
        .get("values")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    match str_at(req, "/operator") {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => matches!((value.and_then(number), values.first().and_then(|v| number(v))),
                         (Some(have), Some(limit)) if have > limit),
        "Lt" => matches!((value.and_then(number), values.first().and_then(|v| number(v))),
                         (Some(have), Some(limit)) if have < limit),
        _ => false,
    }
}

/// Whether a `NodeSelectorTerm` holds: all its expressions and fields; an empty term matches nothing.
fn term_holds(term: &Value, node: &NodeView) -> bool {
    let list = |field: &str| {
        term.get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (exprs, fields) = (list("matchExpressions"), list("matchFields"));
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| {
        let key = str_at(r, "/key");
        requirement_holds(r, node.labels.get(key).map(String::as_str))
    }) && fields.iter().all(|r| {
        let value = (str_at(r, "/key") == "metadata.name").then_some(node.name.as_str());
        requirement_holds(r, value)
    })
}

/// kube's `CheckNodeAffinity`: a volume without `nodeAffinity.required` is usable anywhere; otherwise one
/// of its terms must hold for the node.
pub fn affinity_admits(volume: &Value, node: &NodeView) -> bool {
    match volume.pointer("/spec/nodeAffinity/required") {
        None | Some(Value::Null) => true,
        Some(required) => required
            .get("nodeSelectorTerms")
            .and_then(Value::as_array)
            .is_some_and(|terms| terms.iter().any(|t| term_holds(t, node))),
    }
}

/// The claim's label selector; `Ok(None)` for none (or an empty one, which selects every volume), `Err`
/// when it cannot be understood.
fn claim_selector(claim: &Value) -> Result<Option<Selector>, ()> {
    match claim.pointer("/spec/selector") {
        None | Some(Value::Null) => Ok(None),
        Some(s) => match Selector::parse(Some(s)) {
            Some(sel) if sel.is_empty() => Ok(None),
            Some(sel) => Ok(Some(sel)),
            None => Err(()),
        },
    }
}

/// kube's `checkVolumeSatisfyClaim`, for a claim that names its volume: why the volume does not fit.
pub fn unsatisfied(volume: &Value, claim: &Value) -> Option<String> {
    if super::being_deleted(volume) {
        return Some(format!(
            "the volume is marked for deletion {:?}",
            str_at(volume, "/metadata/name")
        ));
    }
    let small = match (capacity(volume), requested(claim)) {
        (Some(have), Some(want)) => have < want,
        _ => true,
    };
    if small {
        return Some("requested PV is too small".into());
    }
    if volume_class(volume) != claim_class(claim) {
        return Some("storageClassName does not match".into());
    }
    if volume_mode(volume) != volume_mode(claim) {
        return Some("incompatible volumeMode".into());
    }
    if !access_modes(claim, "/spec/accessModes")
        .is_subset(&access_modes(volume, "/spec/accessModes"))
    {
        return Some("incompatible accessMode".into());
    }
    None
}

/// The volume an unbound claim should be bound to (kube's `findBestMatchForClaim`): a volume pre-bound to
/// the claim (its `claimRef` names it) if there is one, else the smallest Available volume of the claim's
/// class whose access modes include the claim's, of the same volume mode, at least as large as the request,
/// whose labels the claim's selector picks and that is not being deleted. Among equal sizes the volume with
/// the fewest access modes wins (kube searches its access-mode index from the smallest set), then the name.
///
/// With `delay_binding` (a `WaitForFirstConsumer` class) only pre-bound volumes are taken unless `node` is
/// given (the claim's selected node), and then only volumes whose node affinity admits that node.
pub fn best_match<'a>(
    claim: &Value,
    volumes: impl Iterator<Item = &'a Stored>,
    node: Option<&NodeView>,
    delay_binding: bool,
) -> Option<&'a Stored> {
    let want = requested(claim)?;
    let class = claim_class(claim);
    let modes = access_modes(claim, "/spec/accessModes");
    let selector = match claim_selector(claim) {
        Ok(s) => s,
        Err(()) => {
            tracing::warn!(claim = %str_at(claim, "/metadata/name"), "claim has an invalid selector");
            return None;
        }
    };
    let mut best: Option<((usize, i128, &str), &'a Stored)> = None;
    for stored in volumes {
        let volume = stored.value.as_ref();
        let volume_modes = access_modes(volume, "/spec/accessModes");
        if !modes.is_subset(&volume_modes) {
            continue;
        }
        let pre_bound = bound_to_claim(volume, claim);
        if !pre_bound
            && volume
                .pointer("/spec/claimRef")
                .is_some_and(Value::is_object)
        {
            continue;
        }
        let Some(size) = capacity(volume).filter(|size| *size >= want) else {
            continue;
        };
        if volume_mode(volume) != volume_mode(claim) || stored.deleting() {
            continue;
        }
        let admitted = node.is_none_or(|n| affinity_admits(volume, n));
        if pre_bound {
            return admitted.then_some(stored);
        }
        if node.is_none() && delay_binding {
            continue;
        }
        if str_at(volume, "/status/phase") != "Available"
            || volume_class(volume) != class
            || !admitted
            || selector
                .as_ref()
                .is_some_and(|s| !s.matches(&labels_at(volume, "/metadata/labels")))
        {
            continue;
        }
        let rank = (volume_modes.len(), size, stored.name());
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, stored));
        }
    }
    best.map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn pv(name: &str, size: &str, modes: &[&str], class: &str, phase: &str) -> Stored {
        Stored {
            value: Arc::new(
                json!({"metadata": {"name": name, "labels": {"tier": "fast"}},
                "spec": {"capacity": {"storage": size}, "accessModes": modes, "storageClassName": class},
                "status": {"phase": phase}}),
            ),
            revision: 1,
        }
    }

    fn claim(size: &str, modes: &[&str], class: Option<&str>) -> Value {
        let mut c = json!({"metadata": {"name": "data", "namespace": "default", "uid": "u1"},
            "spec": {"accessModes": modes, "resources": {"requests": {"storage": size}}}});
        if let Some(class) = class {
            c["spec"]["storageClassName"] = json!(class);
        }
        c
    }

    fn name(found: Option<&Stored>) -> Option<&str> {
        found.map(Stored::name)
    }

    #[test]
    fn the_smallest_fitting_available_volume_wins() {
        let vols = [
            pv("big", "10Gi", &["ReadWriteOnce"], "", "Available"),
            pv("small", "1Gi", &["ReadWriteOnce"], "", "Available"),
            pv("tiny", "500Mi", &["ReadWriteOnce"], "", "Available"),
            pv("bound", "1Gi", &["ReadWriteOnce"], "", "Bound"),
            pv("rox", "1Gi", &["ReadOnlyMany"], "", "Available"),
            pv("classy", "1Gi", &["ReadWriteOnce"], "fast", "Available"),
        ];
        let c = claim("1G", &["ReadWriteOnce"], None);
        assert_eq!(
            name(best_match(&c, vols.iter(), None, false)),
            Some("small")
        );
        // The class must be equal: "" only matches "".
        let c = claim("1G", &["ReadWriteOnce"], Some("fast"));
        assert_eq!(
            name(best_match(&c, vols.iter(), None, false)),
            Some("classy")
        );
        let c = claim("20Gi", &["ReadWriteOnce"], None);
        assert_eq!(name(best_match(&c, vols.iter(), None, false)), None);
        let mut c = claim("1Gi", &["ReadWriteOnce"], None);
        c["spec"]["volumeMode"] = json!("Block");
        assert_eq!(name(best_match(&c, vols.iter(), None, false)), None);
        // Fewer access modes first.
        let both = pv(
            "both",
            "1Gi",
            &["ReadWriteOnce", "ReadOnlyMany"],
            "",
            "Available",
        );
        let one = pv("one", "5Gi", &["ReadWriteOnce"], "", "Available");
        let c = claim("1Gi", &["ReadWriteOnce"], None);
        assert_eq!(
            name(best_match(&c, [&both, &one].into_iter(), None, false)),
            Some("one")
        );
    }

    #[test]
    fn selectors_pre_binding_and_delayed_binding() {
        let vols = [
            pv("a", "1Gi", &["ReadWriteOnce"], "", "Available"),
            pv("b", "2Gi", &["ReadWriteOnce"], "", "Available"),
        ];
        let mut c = claim("1Gi", &["ReadWriteOnce"], None);
        c["spec"]["selector"] = json!({"matchLabels": {"tier": "slow"}});
        assert_eq!(name(best_match(&c, vols.iter(), None, false)), None);
        c["spec"]["selector"] = json!({"matchLabels": {"tier": "fast"}});
        assert_eq!(name(best_match(&c, vols.iter(), None, false)), Some("a"));
        // A volume pre-bound to the claim wins even when larger, and even with delayed binding.
        let mut pre = pv("pre", "5Gi", &["ReadWriteOnce"], "", "Pending");
        Arc::make_mut(&mut pre.value)["spec"]["claimRef"] =
            json!({"namespace": "default", "name": "data"});
        let all = [&vols[0], &vols[1], &pre];
        let c = claim("1Gi", &["ReadWriteOnce"], None);
        assert_eq!(
            name(best_match(&c, all.into_iter(), None, false)),
            Some("pre")
        );
        assert_eq!(name(best_match(&c, vols.iter(), None, true)), None);
        // Another claim's volume is never taken.
        Arc::make_mut(&mut pre.value)["spec"]["claimRef"]["uid"] = json!("other");
        assert_eq!(name(best_match(&c, [&pre].into_iter(), None, false)), None);
    }

    #[test]
    fn node_affinity_limits_delayed_binding() {
        let mut local = pv("local", "1Gi", &["ReadWriteOnce"], "", "Available");
        Arc::make_mut(&mut local.value)["spec"]["nodeAffinity"] = json!({"required": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}});
        let c = claim("1Gi", &["ReadWriteOnce"], None);
        let n1 = NodeView::named("n1", None);
        let n2 = NodeView::named("n2", None);
        assert_eq!(
            name(best_match(&c, [&local].into_iter(), Some(&n1), true)),
            Some("local")
        );
        assert_eq!(
            name(best_match(&c, [&local].into_iter(), Some(&n2), true)),
            None
        );
        let fields = json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]},
            {"matchExpressions": [{"key": "size", "operator": "Gt", "values": ["3"]}]}]}}}});
        assert!(!affinity_admits(&fields, &n1));
        assert!(affinity_admits(&fields, &n2));
        let labels = BTreeMap::from([("size".to_string(), "4".to_string())]);
        assert!(affinity_admits(
            &fields,
            &NodeView::named("n1", Some(&labels))
        ));
        let empty = json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{}]}}}});
        assert!(!affinity_admits(&empty, &n1));
    }

    #[test]
    fn a_named_volume_is_checked_like_kube() {
        let vol = pv("v", "1Gi", &["ReadWriteOnce"], "", "Available");
        let c = claim("2Gi", &["ReadWriteOnce"], None);
        assert_eq!(
            unsatisfied(&vol.value, &c).as_deref(),
            Some("requested PV is too small")
        );
        let c = claim("1Gi", &["ReadWriteMany"], None);
        assert_eq!(
            unsatisfied(&vol.value, &c).as_deref(),
            Some("incompatible accessMode")
        );
        let c = claim("1Gi", &["ReadWriteOnce"], Some("fast"));
        assert_eq!(
            unsatisfied(&vol.value, &c).as_deref(),
            Some("storageClassName does not match")
        );
        let c = claim("1024Mi", &["ReadWriteOnce"], None);
        assert_eq!(unsatisfied(&vol.value, &c), None);
        let mut beta = claim("1Gi", &["ReadWriteOnce"], Some(""));
        beta["metadata"]["annotations"] = json!({ANN_BETA_CLASS: "fast"});
        assert_eq!(claim_class(&beta), "fast");
    }
}
