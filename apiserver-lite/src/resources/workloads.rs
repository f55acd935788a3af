//! apps/v1 Deployments and ReplicaSets: defaults (kube's apps/v1 `SetDefaults_*`), validation (kube's
//! `ValidateDeployment*` / `ValidateReplicaSet*`) and table columns. The `scale` subresource is in
//! `crate::scale`.

use serde_json::{Map, Value, json};

use super::Kind;
use super::validation::{QUALIFIED_NAME_MSG, is_qualified_name, validate_labels};
use crate::status::FieldError;

// ---- normalization ----

/// Round-trip through the k8s-openapi type. Its `spec.selector` is not optional, so a missing selector
/// would come back as `{}`; it is kept missing, because kube answers the two differently.
pub fn normalize(kind: Kind, v: &Value) -> Result<Value, String> {
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Result<Value, String> {
        let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(t).map_err(|e| e.to_string())
    }
    let mut out = if kind == Kind::Deployment {
        rt::<k8s_openapi::api::apps::v1::Deployment>(v)?
    } else {
        rt::<k8s_openapi::api::apps::v1::ReplicaSet>(v)?
    };
    if v.pointer("/spec/selector").is_none_or(Value::is_null)
        && let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("selector");
    }
    Ok(out)
}

// ---- defaults ----

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

/// The defaults of a pod template's spec (kube's `SetDefaults_PodSpec` and the container defaults), the
/// ones a Deployment or ReplicaSet stores for its template.
pub fn default_template(template: &mut Value) {
    if !template.is_object() {
        *template = json!({});
    }
    if template.get("spec").is_none_or(|s| !s.is_object()) {
        template["spec"] = json!({});
    }
    let spec = &mut template["spec"];
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["initContainers", "containers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                super::pod::default_template_container(c);
            }
        }
    }
}

/// kube's apps/v1 `SetDefaults_Deployment` / `SetDefaults_ReplicaSet`, applied to every version written
/// (create and update).
pub fn defaults(kind: Kind, obj: &mut Value) {
    if obj.get("spec").is_none_or(|s| !s.is_object()) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    set_default(spec, "replicas", json!(1));
    if kind == Kind::Deployment {
        if spec.get("strategy").is_none_or(|s| !s.is_object()) {
            spec["strategy"] = json!({});
        }
        let strategy = &mut spec["strategy"];
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if strategy.get("rollingUpdate").is_none_or(|r| !r.is_object()) {
                strategy["rollingUpdate"] = json!({});
            }
            let ru = &mut strategy["rollingUpdate"];
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "progressDeadlineSeconds", json!(600));
    }
    if spec.get("template").is_none_or(|t| !t.is_object()) {
        spec["template"] = json!({});
    }
    default_template(&mut spec["template"]);
}

/// What kube's create strategy does besides defaulting: the status starts empty.
pub fn reset_status(kind: Kind, obj: &mut Value) {
    obj["status"] = if kind == Kind::ReplicaSet {
        // `replicas` is not omitted when zero.
        json!({"replicas": 0})
    } else {
        json!({})
    };
}

/// Whether an update bumps `metadata.generation`: a spec change, and for Deployments also an annotation
/// change (annotations are copied to the ReplicaSets).
pub fn bumps_generation(kind: Kind, old: &Value, new: &Value) -> bool {
    if old.get("spec") != new.get("spec") {
        return true;
    }
    let ann = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .cloned()
    };
    kind == Kind::Deployment && ann(old) != ann(new)
}

/// kube's status strategies take the metadata of a `status` write from its body except, for
/// Deployments, the labels: the Deployment controller writes the revision annotation this way (so that
/// it is no new generation). skiff takes the annotations (and a ReplicaSet's labels); the other metadata
/// stays as stored.
pub fn status_metadata(kind: Kind, body: &Value, new: &mut Value) {
    let mut fields = vec!["annotations"];
    if kind == Kind::ReplicaSet {
        fields.push("labels");
    }
    let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for f in fields {
        match body
            .pointer(&format!("/metadata/{f}"))
            .filter(|v| !v.is_null())
        {
            Some(v) => {
                meta.insert(f.into(), v.clone());
            }
            None => {
                meta.remove(f);
            }
        }
    }
}

// ---- validation ----

/// Go's `%#v` of a `map[string]string` (kube prints label maps this way in field errors).
pub(crate) fn go_string_map(m: Option<&Map<String, Value>>) -> String {
    match m {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or("")))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// Go's `%#v` of a `v1.LabelSelector`.
pub(crate) fn go_selector(sel: &Value) -> String {
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|e| {
                    let values = match e.get("values").and_then(Value::as_array) {
                        None => "[]string(nil)".to_string(),
                        Some(vs) => format!(
                            "[]string{{{}}}",
                            vs.iter()
                                .map(|v| format!("{:?}", v.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{values}}}",
                        e.get("key").and_then(Value::as_str).unwrap_or(""),
                        e.get("operator").and_then(Value::as_str).unwrap_or("")
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(sel.get("matchLabels").and_then(Value::as_object))
    )
}

/// A field error whose value kube prints with Go's `%#v` (maps and structs).
pub(crate) fn invalid_go(field: impl Into<String>, go_value: String, detail: &str) -> FieldError {
    FieldError {
        reason: "FieldValueInvalid",
        field: field.into(),
        message: format!("Invalid value: {go_value}: {detail}"),
    }
}

pub(crate) fn nonnegative(obj: &Value, pointer: &str, field: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = obj.pointer(pointer).and_then(Value::as_i64)
        && n < 0
    {
        errs.push(FieldError::invalid(
            field,
            &json!(n),
            "must be greater than or equal to 0",
        ));
    }
}

pub(crate) fn selector_is_empty(sel: &Value) -> bool {
    let len = |k: &str| sel.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    let labels = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    labels + len("matchExpressions") == 0
}

/// kube's `ValidateLabelSelector` (strict label values) at `path`.
pub(crate) fn validate_label_selector(sel: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for (i, e) in exprs.iter().enumerate() {
            let p = format!("{path}.matchExpressions[{i}]");
            let values = e
                .get("values")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" | "NotIn" if values == 0 => errs.push(FieldError::required(
                    format!("{p}.values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                )),
                "Exists" | "DoesNotExist" if values > 0 => errs.push(FieldError::forbidden(
                    format!("{p}.values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                op => errs.push(FieldError::invalid(
                    format!("{p}.operator"),
                    &json!(op),
                    "not a valid selector operator",
                )),
            }
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            if !is_qualified_name(key) {
                errs.push(FieldError::invalid(
                    format!("{p}.key"),
                    &json!(key),
                    QUALIFIED_NAME_MSG,
                ));
            }
            for v in e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !v.as_str().is_some_and(super::validation::is_label_value) {
                    errs.push(FieldError::invalid(
                        format!("{p}.values"),
                        v,
                        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    ));
                }
            }
        }
    }
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        errs.extend(validate_labels(ml, &format!("{path}.matchLabels")));
    }
    errs
}

/// Whether the labels satisfy a (valid) `metav1.LabelSelector`.
pub fn selector_matches(sel: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|m| m.get(k)).and_then(Value::as_str);
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object)
        && ml.iter().any(|(k, v)| get(k) != v.as_str())
    {
        return false;
    }
    sel.get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let have = get(key);
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
}

/// kube's `ValidatePodTemplateSpecForReplicaSet`: the template matches the selector, is a valid pod
/// template, restarts Always and has no active deadline.
pub(crate) fn validate_template(template: &Value, selector: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object);
    // A missing selector selects nothing (kube's `labels.Nothing()`); an empty one everything.
    let matches = match selector {
        None => false,
        Some(sel) => selector_is_empty(sel) || selector_matches(sel, labels),
    };
    if !matches {
        errs.push(invalid_go(
            "spec.template.metadata.labels",
            go_string_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(labels) = labels {
        errs.extend(validate_labels(labels, "spec.template.metadata.labels"));
    }
    let pod = json!({"spec": template.get("spec").cloned().unwrap_or(json!({}))});
    for mut e in super::pod::validate(&pod) {
        e.field = format!("spec.template.{}", e.field);
        errs.push(e);
    }
    let rp = template
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            &json!(rp),
            &["Always"],
        ));
    }
    if template
        .pointer("/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
    errs
}

/// The value of an int-or-percent (`getIntOrPercentValue`): the number, or the percentage's number.
pub(crate) fn int_or_percent(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.strip_suffix('%').and_then(|n| n.parse().ok()),
        _ => None,
    }
}

pub(crate) const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

pub(crate) fn valid_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// kube's `ValidateDeploymentStrategy`.
fn validate_strategy(strategy: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = strategy.get("type").and_then(Value::as_str).unwrap_or("");
    let ru = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match ty {
        "Recreate" => {
            if ru.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            let Some(ru) = ru else {
                errs.push(FieldError::required(
                    "spec.strategy.rollingUpdate",
                    "this should be defaulted and never be nil",
                ));
                return errs;
            };
            for f in ["maxUnavailable", "maxSurge"] {
                let path = format!("spec.strategy.rollingUpdate.{f}");
                match ru.get(f) {
                    Some(Value::String(s)) if !valid_percent(s) => {
                        errs.push(FieldError::invalid(&path, &json!(s), PERCENT_MSG))
                    }
                    Some(Value::Number(n)) if n.as_i64().is_none_or(|n| n < 0) => {
                        errs.push(FieldError::invalid(
                            &path,
                            &Value::Number(n.clone()),
                            "must be greater than or equal to 0",
                        ))
                    }
                    _ => {}
                }
            }
            let zero = |f: &str| ru.get(f).and_then(int_or_percent).unwrap_or(0) == 0;
            if zero("maxUnavailable") && zero("maxSurge") {
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    ru.get("maxUnavailable").unwrap_or(&json!(0)),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            if let Some(Value::String(s)) = ru.get("maxUnavailable")
                && valid_percent(s)
                && int_or_percent(&json!(s)).is_some_and(|n| n > 100)
            {
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    &json!(s),
                    "must not be greater than 100%",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.strategy",
            &json!(other),
            &["Recreate", "RollingUpdate"],
        )),
    }
    errs
}

/// kube's `ValidateDeploymentSpec` / `ValidateReplicaSetSpec` and the status checks of
/// `ValidateDeploymentStatus` / `ValidateReplicaSetStatus`; every version written must pass.
pub fn validate(kind: Kind, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    nonnegative(&spec, "/replicas", "spec.replicas", &mut errs);
    if kind == Kind::ReplicaSet {
        nonnegative(&spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
    }
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let mut selector_ok = true;
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            let sel_errs = validate_label_selector(sel, "spec.selector");
            selector_ok = sel_errs.is_empty();
            errs.extend(sel_errs);
            if selector_is_empty(sel) {
                errs.push(invalid_go(
                    "spec.selector",
                    go_selector(sel),
                    "empty selector is invalid for deployment",
                ));
            }
        }
    }
    if selector_ok {
        errs.extend(validate_template(
            spec.get("template").unwrap_or(&json!({})),
            selector,
        ));
    } else if let Some(sel) = selector {
        errs.push(invalid_go(
            "spec.selector",
            go_selector(sel),
            "invalid label selector",
        ));
    }
    if kind == Kind::Deployment {
        errs.extend(validate_strategy(
            spec.get("strategy").unwrap_or(&json!({})),
        ));
        nonnegative(&spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
        nonnegative(
            &spec,
            "/revisionHistoryLimit",
            "spec.revisionHistoryLimit",
            &mut errs,
        );
        if let Some(pds) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
            nonnegative(
                &spec,
                "/progressDeadlineSeconds",
                "spec.progressDeadlineSeconds",
                &mut errs,
            );
            let min_ready = spec
                .get("minReadySeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if pds <= min_ready {
                errs.push(FieldError::invalid(
                    "spec.progressDeadlineSeconds",
                    &json!(pds),
                    "must be greater than minReadySeconds",
                ));
            }
        }
    }
    errs.extend(validate_status(kind, obj));
    errs
}

/// The status counters: non-negative, and none above `status.replicas` (available not above ready).
fn validate_status(kind: Kind, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(status) = obj.get("status").filter(|s| s.is_object()) else {
        return errs;
    };
    let counters: &[&str] = if kind == Kind::Deployment {
        &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
            "observedGeneration",
            "collisionCount",
        ]
    } else {
        &[
            "replicas",
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
            "observedGeneration",
        ]
    };
    for c in counters {
        nonnegative(status, &format!("/{c}"), &format!("status.{c}"), &mut errs);
    }
    let n = |k: &str| status.get(k).and_then(Value::as_i64).unwrap_or(0);
    let bounded: &[&str] = if kind == Kind::Deployment {
        &["updatedReplicas", "readyReplicas", "availableReplicas"]
    } else {
        &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"]
    };
    for c in bounded {
        if n(c) > n("replicas") {
            errs.push(FieldError::invalid(
                format!("status.{c}"),
                &json!(n(c)),
                "cannot be greater than status.replicas",
            ));
        }
    }
    if n("availableReplicas") > n("readyReplicas") {
        errs.push(FieldError::invalid(
            "status.availableReplicas",
            &json!(n("availableReplicas")),
            "cannot be greater than readyReplicas",
        ));
    }
    errs
}

/// A selector with empty parts dropped (kube compares them semantically: nil and empty are equal).
pub(crate) fn canonical_selector(sel: Option<&Value>) -> Value {
    let mut out = Map::new();
    if let Some(sel) = sel {
        if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object)
            && !ml.is_empty()
        {
            out.insert("matchLabels".into(), Value::Object(ml.clone()));
        }
        if let Some(me) = sel.get("matchExpressions").and_then(Value::as_array)
            && !me.is_empty()
        {
            out.insert("matchExpressions".into(), Value::Array(me.clone()));
        }
    }
    Value::Object(out)
}

/// The update rules: the selector of an apps/v1 Deployment or ReplicaSet is immutable.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let o = old.pointer("/spec/selector").filter(|s| !s.is_null());
    let n = new.pointer("/spec/selector").filter(|s| !s.is_null());
    if canonical_selector(o) != canonical_selector(n) || o.is_some() != n.is_some() {
        let shown = match n {
            Some(sel) => go_selector(sel),
            None => "null".into(),
        };
        return vec![invalid_go("spec.selector", shown, "field is immutable")];
    }
    Vec::new()
}

fn col(name: &str, ty: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": desc, "priority": priority})
}

/// The string form of a `metav1.LabelSelector` as kube's `LabelSelectorAsSelector(..).String()`:
/// requirements sorted by key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, joined by commas; ""
/// when the selector is empty or missing.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return String::new();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let k = e
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut vals: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            vals.sort_unstable();
            vals.dedup();
            let s = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => format!("{k} in ({})", vals.join(",")),
                "NotIn" => format!("{k} notin ({})", vals.join(",")),
                "Exists" => k.clone(),
                "DoesNotExist" => format!("!{k}"),
                _ => continue,
            };
            reqs.push((k, s));
        }
    }
    // kube sorts the requirements by key (stable for equal keys).
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(",")
}

fn int(obj: &Value, p: &str) -> i64 {
    obj.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// kube's `layoutContainerCells`: container names and images, comma-joined.
pub(crate) fn container_cells(obj: &Value) -> (String, String) {
    let cs = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let field = |f: &str| {
        cs.iter()
            .map(|c| c.get(f).and_then(Value::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(",")
    };
    (field("name"), field("image"))
}

/// Column definitions (kube's `deploymentColumnDefinitions` / `replicaSetColumnDefinitions`).
pub fn columns(kind: Kind, name: Value, age: Value) -> Vec<Value> {
    let containers = col(
        "Containers",
        "string",
        "Names of each container in the template.",
        1,
    );
    let images = col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
        1,
    );
    if kind == Kind::Deployment {
        vec![
            name,
            col("Ready", "string", "Number of the pod with ready state", 0),
            col(
                "Up-to-date",
                "string",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                0,
            ),
            col(
                "Available",
                "string",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                0,
            ),
            age,
            containers,
            images,
            col(
                "Selector",
                "string",
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
                1,
            ),
        ]
    } else {
        vec![
            name,
            col(
                "Desired",
                "integer",
                "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
                0,
            ),
            col(
                "Current",
                "integer",
                "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
                0,
            ),
            col(
                "Ready",
                "integer",
                "The number of ready replicas for this replica set.",
                0,
            ),
            age,
            containers,
            images,
            col(
                "Selector",
                "string",
                "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
                1,
            ),
        ]
    }
}

/// Row cells (kube's `printDeployment` / `printReplicaSet`, wide).
pub fn cells(kind: Kind, obj: &Value, name: String, age: String) -> Vec<Value> {
    let (names, images) = container_cells(obj);
    let selector = selector_string(obj.pointer("/spec/selector"));
    let desired = int(obj, "/spec/replicas");
    if kind == Kind::Deployment {
        vec![
            json!(name),
            json!(format!("{}/{desired}", int(obj, "/status/readyReplicas"))),
            json!(int(obj, "/status/updatedReplicas")),
            json!(int(obj, "/status/availableReplicas")),
            json!(age),
            json!(names),
            json!(images),
            json!(selector),
        ]
    } else {
        vec![
            json!(name),
            json!(desired),
            json!(int(obj, "/status/replicas")),
            json!(int(obj, "/status/readyReplicas")),
            json!(age),
            json!(names),
            json!(images),
            // kube's `metav1.FormatLabelSelector`.
            json!(if selector.is_empty() {
                "<none>".to_string()
            } else {
                selector
            }),
        ]
    }
}

#[cfg(test)]
mod tests;
