//! The LimitRanger's work on one object against one LimitRange, without IO: the container defaults
//! (`PodMutateLimitFunc`), the min / max / ratio checks of containers, pods and claims
//! (`PodValidateLimitFunc`, `PersistentVolumeClaimValidateLimitFunc`) and kube's texts for them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::items;
use super::validation::MAX_MILLI;
use crate::resources::storage::quantity::Quantity;

/// The annotation the plugin records its defaults in.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// A resource list (`requests`, `limits`, `min`, …) by resource name; unparsable entries are left out.
pub type List = BTreeMap<String, Quantity>;

pub fn list(v: Option<&Value>) -> List {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, q)| Some((k.clone(), q.as_str().and_then(Quantity::parse)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The `(defaultRequest, default)` of the `Container` items of `limit_range`
/// (`defaultContainerResourceRequirements`).
fn container_defaults(limit_range: &Value) -> (List, List) {
    let (mut requests, mut limits) = (List::new(), List::new());
    for item in items(limit_range) {
        if item.get("type").and_then(Value::as_str) == Some("Container") {
            requests.extend(list(item.get("defaultRequest")));
            limits.extend(list(item.get("default")));
        }
    }
    (requests, limits)
}

/// Fill the missing entries of `container.resources.<field>` from `defaults`; the names set, sorted.
fn fill(container: &mut Value, field: &str, defaults: &List) -> Vec<String> {
    let mut set = Vec::new();
    for (name, q) in defaults {
        let present = container
            .pointer(&format!("/resources/{field}"))
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(name));
        if present {
            continue;
        }
        if container.get("resources").is_none_or(|r| !r.is_object()) {
            container["resources"] = json!({});
        }
        let resources = &mut container["resources"];
        if resources.get(field).is_none_or(|l| !l.is_object()) {
            resources[field] = Value::Object(Map::new());
        }
        resources[field][name.as_str()] = json!(q.to_string());
        set.push(name.clone());
    }
    set
}

/// Default the requests and limits of the containers and init containers of `pod` from `limit_range`,
/// and record what was set in the annotation (which a later LimitRange that sets something replaces, as
/// kube's). Whether anything was set.
pub fn default_pod(limit_range: &Value, pod: &mut Value) -> bool {
    let (requests, limits) = container_defaults(limit_range);
    let mut notes = Vec::new();
    for (field, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(containers) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let set_limits = fill(c, "limits", &limits);
            let set_requests = fill(c, "requests", &requests);
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {what} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
            }
        }
    }
    if notes.is_empty() {
        return false;
    }
    if pod
        .pointer("/metadata/annotations")
        .is_none_or(|a| !a.is_object())
    {
        pod["metadata"]["annotations"] = json!({});
    }
    pod["metadata"]["annotations"][ANNOTATION] =
        json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    true
}

/// `(request, limit, enforced)` at a common precision (`requestLimitEnforcedValues`): thousandths
/// unless a value is too large for them.
fn observed(
    req: Option<&Quantity>,
    lim: Option<&Quantity>,
    enforced: &Quantity,
) -> (i128, i128, i128) {
    let zero = Quantity::from_milli(0);
    let (req, lim) = (req.unwrap_or(&zero), lim.unwrap_or(&zero));
    if [req, lim, enforced].iter().all(|q| q.value() <= MAX_MILLI) {
        (req.milli_value(), lim.milli_value(), enforced.milli_value())
    } else {
        (req.value(), lim.value(), enforced.value())
    }
}

/// kube's `minConstraint`.
fn min_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    req: &List,
    lim: &List,
) -> Option<String> {
    let (r, l) = (req.get(name), lim.get(name));
    let (rv, lv, ev) = observed(r, l, enforced);
    match (r, l) {
        (None, _) => Some(format!(
            "minimum {name} usage per {kind} is {enforced}.  No request is specified"
        )),
        (Some(r), _) if rv < ev => Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but request is {r}"
        )),
        (_, Some(l)) if lv < ev => Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but limit is {l}"
        )),
        _ => None,
    }
}

/// kube's `maxConstraint`.
fn max_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    req: &List,
    lim: &List,
) -> Option<String> {
    let (r, l) = (req.get(name), lim.get(name));
    let (rv, lv, ev) = observed(r, l, enforced);
    match (r, l) {
        (_, None) => Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No limit is specified"
        )),
        (_, Some(l)) if lv > ev => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but limit is {l}"
        )),
        (Some(r), _) if rv > ev => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {r}"
        )),
        _ => None,
    }
}

/// kube's `maxRequestConstraint` (claims: only the request counts).
fn max_request_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    req: &List,
) -> Option<String> {
    let r = req.get(name);
    let (rv, _, ev) = observed(r, None, enforced);
    match r {
        None => Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No request is specified"
        )),
        Some(r) if rv > ev => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {r}"
        )),
        _ => None,
    }
}

/// kube's `limitRequestRatioConstraint`.
fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    req: &List,
    lim: &List,
) -> Option<String> {
    let (r, l) = (req.get(name), lim.get(name));
    let (rv, lv, _) = observed(r, l, enforced);
    if r.is_none() || rv == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
        ));
    }
    if l.is_none() || lv == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
        ));
    }
    let shown = lv as f64 / rv as f64;
    let (ratio, most) = if enforced.value() <= MAX_MILLI {
        (shown * 1000.0, enforced.milli_value() as f64)
    } else {
        (shown, enforced.value() as f64)
    };
    (ratio > most).then(|| {
        format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {shown:.6}"
        )
    })
}

/// The min, max and ratio checks of one item of type `kind` on `(requests, limits)`.
fn check(item: &Value, kind: &str, req: &List, lim: &List, errs: &mut Vec<String>) {
    for (name, q) in list(item.get("min")) {
        errs.extend(min_constraint(kind, &name, &q, req, lim));
    }
    for (name, q) in list(item.get("max")) {
        errs.extend(max_constraint(kind, &name, &q, req, lim));
    }
    for (name, q) in list(item.get("maxLimitRequestRatio")) {
        errs.extend(ratio_constraint(kind, &name, &q, req, lim));
    }
}

/// `list += more`, keeping the format of the first non-zero value (kube's `Quantity.Add`).
fn add(into: &mut List, more: &List) {
    for (name, q) in more {
        match into.get_mut(name) {
            Some(sum) => {
                if sum.nano == 0 {
                    sum.format = q.format;
                }
                sum.nano += q.nano;
            }
            None => {
                into.insert(name.clone(), *q);
            }
        }
    }
}

/// `list = max(list, other)` per resource (kube's `maxResourceList`).
fn max_into(into: &mut List, other: &List) {
    for (name, q) in other {
        if into.get(name).is_none_or(|cur| q.nano > cur.nano) {
            into.insert(name.clone(), *q);
        }
    }
}

/// What a pod asks for in `field` (`requests` or `limits`): its containers, its sidecars and the
/// largest init container step (kube's `podRequests` / `podLimits`).
fn pod_total(pod: &Value, field: &str) -> List {
    let of = |c: &Value| list(c.pointer(&format!("/resources/{field}")));
    let containers = |key: &str| {
        pod.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut total = List::new();
    for c in containers("containers") {
        add(&mut total, &of(&c));
    }
    let (mut sidecars, mut init) = (List::new(), List::new());
    for c in containers("initContainers") {
        let own = of(&c);
        let step = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            add(&mut total, &own);
            add(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut step = own;
            add(&mut step, &sidecars);
            step
        };
        max_into(&mut init, &step);
    }
    max_into(&mut total, &init);
    total
}

/// kube's `PodValidateLimitFunc`: the violations of `pod` against `limit_range`.
pub fn validate_pod(limit_range: &Value, pod: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    for item in items(limit_range) {
        match item.get("type").and_then(Value::as_str) {
            Some("Container") => {
                for key in ["containers", "initContainers"] {
                    let all = pod
                        .pointer(&format!("/spec/{key}"))
                        .and_then(Value::as_array);
                    for c in all.into_iter().flatten() {
                        let req = list(c.pointer("/resources/requests"));
                        let lim = list(c.pointer("/resources/limits"));
                        check(item, "Container", &req, &lim, &mut errs);
                    }
                }
            }
            Some("Pod") => {
                let (req, lim) = (pod_total(pod, "requests"), pod_total(pod, "limits"));
                check(item, "Pod", &req, &lim, &mut errs);
            }
            _ => {}
        }
    }
    errs
}

/// kube's `PersistentVolumeClaimValidateLimitFunc`: `spec.resources.requests` against the min and max of
/// `PersistentVolumeClaim` items (claims are never defaulted: storage is a required request).
pub fn validate_claim(limit_range: &Value, claim: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let req = list(claim.pointer("/spec/resources/requests"));
    for item in items(limit_range) {
        if item.get("type").and_then(Value::as_str) != Some("PersistentVolumeClaim") {
            continue;
        }
        let kind = "PersistentVolumeClaim";
        for (name, q) in list(item.get("min")) {
            errs.extend(min_constraint(kind, &name, &q, &req, &List::new()));
        }
        for (name, q) in list(item.get("max")) {
            errs.extend(max_request_constraint(kind, &name, &q, &req));
        }
    }
    errs
}

/// kube's aggregate error text: one message as it is, several (duplicates dropped) as `[a, b]`.
pub fn aggregate(errs: &[String]) -> String {
    let mut seen = BTreeSet::new();
    let unique: Vec<&str> = errs
        .iter()
        .filter(|e| seen.insert(e.as_str()))
        .map(String::as_str)
        .collect();
    match unique.as_slice() {
        [one] => (*one).to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}
