//! batch/v1 Jobs: kube's defaults (`SetDefaults_Job`), the create strategy's generated selector and pod
//! labels, validation (`ValidateJob`, `ValidateJobUpdate`, `ValidateJobUpdateStatus`) and kube 1.32's table
//! columns. The pod template shares the apps/v1 kinds' defaulting and checks (`workloads`).

use serde_json::{Map, Value, json};

use super::validation::validate_labels;
use super::workloads;
use crate::status::FieldError;

/// The label kube 1.27+ selects a Job's pods by (value: the Job's uid).
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label with the Job's name on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The unprefixed labels kube still adds for old clients.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// The finalizer the Job controller keeps on its pods until it has counted them.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

// ---- normalization and defaults ----

/// Round-trip through `k8s_openapi::api::batch::v1::Job` (unknown fields dropped).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let job: k8s_openapi::api::batch::v1::Job =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(job).map_err(|e| e.to_string())
}

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

fn is_set(obj: &Value, key: &str) -> bool {
    obj.get(key).is_some_and(|v| !v.is_null())
}

/// kube's `SetDefaults_Job` (with the pod template's defaults), applied to every version written.
pub fn defaults(obj: &mut Value) {
    if obj.get("spec").is_none_or(|s| !s.is_object()) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    if !is_set(spec, "completions") && !is_set(spec, "parallelism") {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    set_default(spec, "parallelism", json!(1));
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let replacement = if is_set(spec, "podFailurePolicy") {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(spec, "podReplacementPolicy", json!(replacement));
    if spec.get("template").is_none_or(|t| !t.is_object()) {
        spec["template"] = json!({});
    }
    workloads::default_template(&mut spec["template"]);
    copy_template_labels(obj);
}

/// A Job without labels takes its template's (kube does this whenever it decodes a Job, so a Job created
/// without labels shows the generated ones).
fn copy_template_labels(obj: &mut Value) {
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
        .cloned();
    let own_empty = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    if let Some(labels) = template_labels
        && own_empty
        && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("labels".into(), Value::Object(labels));
    }
}

fn manual_selector(obj: &Value) -> bool {
    obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true)
}

/// What kube's create strategy does (after defaulting, once the uid is set): the generated selector and
/// pod labels unless `manualSelector`, and an empty status.
pub fn prepare_create(obj: &mut Value) {
    defaults(obj);
    if !manual_selector(obj) {
        generate_selector(obj);
    }
    copy_template_labels(obj);
    obj["status"] = json!({});
}

/// kube's `generateSelector`: the template gets the job-name and controller-uid labels (both spellings)
/// unless already there, the selector matches `batch.kubernetes.io/controller-uid=<uid>`.
fn generate_selector(obj: &mut Value) {
    let name = str_at(obj, "/metadata/name").to_string();
    let uid = str_at(obj, "/metadata/uid").to_string();
    let template = &mut obj["spec"]["template"];
    if template.get("metadata").is_none_or(|m| !m.is_object()) {
        template["metadata"] = json!({});
    }
    let meta = &mut template["metadata"];
    if meta.get("labels").is_none_or(|l| !l.is_object()) {
        meta["labels"] = json!({});
    }
    if let Some(labels) = meta["labels"].as_object_mut() {
        for (key, value) in [
            (LEGACY_JOB_NAME_LABEL, &name),
            (JOB_NAME_LABEL, &name),
            (LEGACY_CONTROLLER_UID_LABEL, &uid),
            (CONTROLLER_UID_LABEL, &uid),
        ] {
            labels
                .entry(key)
                .or_insert_with(|| Value::String(value.clone()));
        }
    }
    let spec = &mut obj["spec"];
    if spec.get("selector").is_none_or(|s| !s.is_object()) {
        spec["selector"] = json!({});
    }
    let sel = &mut spec["selector"];
    if sel.get("matchLabels").is_none_or(|m| !m.is_object()) {
        sel["matchLabels"] = json!({});
    }
    if let Some(ml) = sel["matchLabels"].as_object_mut() {
        ml.entry(CONTROLLER_UID_LABEL)
            .or_insert_with(|| Value::String(uid));
    }
}

// ---- validation ----

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn int_at(v: &Value, p: &str) -> Option<i64> {
    v.pointer(p).and_then(Value::as_i64)
}

fn nonnegative(spec: &Value, key: &str, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = spec.get(key).and_then(Value::as_i64)
        && n < 0
    {
        errs.push(FieldError::invalid(
            format!("{path}.{key}"),
            &json!(n),
            "must be greater than or equal to 0",
        ));
    }
}

/// kube's `ValidateHasLabel` on the template.
fn has_label(
    template_labels: Option<&Map<String, Value>>,
    key: &str,
    want: &str,
) -> Option<FieldError> {
    let field = format!("spec.template.metadata.labels[{key}]");
    match template_labels.and_then(|l| l.get(key)) {
        None => Some(FieldError::required(field, want)),
        Some(v) if v.as_str() == Some(want) => None,
        Some(_) => Some(workloads::invalid_go(
            field,
            workloads::go_string_map(template_labels),
            &format!("must be '{want}'"),
        )),
    }
}

/// kube's `validateGeneratedSelector`: with a generated selector the template carries the labels it made
/// and the selector picks exactly them.
fn validate_generated_selector(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(sel) = obj.pointer("/spec/selector").filter(|s| !s.is_null()) else {
        return errs;
    };
    if manual_selector(obj) {
        return errs;
    }
    let uid = str_at(obj, "/metadata/uid");
    let name = str_at(obj, "/metadata/name");
    if uid.is_empty() {
        errs.push(FieldError::required("metadata.uid", ""));
    }
    let labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    let expected = [
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (LEGACY_JOB_NAME_LABEL, name),
        (CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
    ];
    errs.extend(expected.iter().filter_map(|(k, v)| has_label(labels, k, v)));
    let expected_labels: Map<String, Value> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    if workloads::validate_label_selector(sel, "spec.selector").is_empty()
        && !workloads::selector_matches(sel, Some(&expected_labels))
    {
        errs.push(workloads::invalid_go(
            "spec.selector",
            workloads::go_selector(sel),
            "`selector` not auto-generated",
        ));
    }
    errs
}

/// The restart policies a Job's pods may have.
fn validate_restart_policy(spec: &Value, errs: &mut Vec<FieldError>) {
    const FIELD: &str = "spec.template.spec.restartPolicy";
    let rp = str_at(spec, "/template/spec/restartPolicy");
    match rp {
        "" | "Always" => errs.push(FieldError::required(
            FIELD,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" | "Never" => {
            if is_set(spec, "podFailurePolicy") && rp != "Never" {
                errs.push(FieldError::invalid(
                    FIELD,
                    &json!(rp),
                    "only \"Never\" is supported when podFailurePolicy is specified",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            FIELD,
            &json!(other),
            &["OnFailure", "Never"],
        )),
    }
}

/// kube's `validateJobSpec` and `ValidateJobSpec` (the pod template through the pod checks).
fn validate_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = validate_template_spec(spec);
    validate_selector(spec, &mut errs);
    errs
}

/// kube's `validateJobSpec`: what a Job's spec and a CronJob's job template share (paths `spec.…`).
pub(crate) fn validate_template_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(spec, key, "spec", &mut errs);
    }
    if is_set(spec, "maxFailedIndexes") && !is_set(spec, "backoffLimitPerIndex") {
        errs.push(FieldError::required(
            "spec.backoffLimitPerIndex",
            "when maxFailedIndexes is specified",
        ));
    }
    let mode = spec
        .get("completionMode")
        .and_then(Value::as_str)
        .unwrap_or("NonIndexed");
    match mode {
        "Indexed" => {
            if !is_set(spec, "completions") {
                errs.push(FieldError::required(
                    "spec.completions",
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = int_at(spec, "/parallelism")
                && p > 100_000
            {
                errs.push(FieldError::invalid(
                    "spec.parallelism",
                    &json!(p),
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
        }
        "NonIndexed" => {
            for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
                if let Some(v) = spec.get(key).filter(|v| !v.is_null()) {
                    errs.push(FieldError::invalid(
                        format!("spec.{key}"),
                        v,
                        "requires indexed completion mode",
                    ));
                }
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.completionMode",
            &json!(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    if mode != "Indexed"
        && let Some(sp) = spec.get("successPolicy").filter(|v| !v.is_null())
    {
        errs.push(FieldError::invalid(
            "spec.successPolicy",
            sp,
            "requires indexed completion mode",
        ));
    }
    if let Some(rp) = spec.get("podReplacementPolicy").and_then(Value::as_str) {
        if is_set(spec, "podFailurePolicy") {
            if rp != "Failed" {
                errs.push(FieldError::not_supported(
                    "spec.podReplacementPolicy",
                    &json!(rp),
                    &["Failed"],
                ));
            }
        } else if !matches!(rp, "Failed" | "TerminatingOrFailed") {
            errs.push(FieldError::not_supported(
                "spec.podReplacementPolicy",
                &json!(rp),
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let template = spec.get("template").cloned().unwrap_or(json!({}));
    if let Some(labels) = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
    {
        errs.extend(validate_labels(labels, "spec.template.metadata.labels"));
    }
    let pod = json!({"spec": template.get("spec").cloned().unwrap_or(json!({}))});
    for mut e in super::pod::validate(&pod) {
        e.field = format!("spec.template.{}", e.field);
        errs.push(e);
    }
    validate_restart_policy(spec, &mut errs);
    errs
}

/// The selector, and whether it matches the template.
fn validate_selector(spec: &Value, errs: &mut Vec<FieldError>) {
    let template = spec.get("template").cloned().unwrap_or(json!({}));
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            let sel_errs = workloads::validate_label_selector(sel, "spec.selector");
            let valid = sel_errs.is_empty();
            errs.extend(sel_errs);
            let labels = template
                .pointer("/metadata/labels")
                .and_then(Value::as_object);
            // kube: an empty selector matches everything.
            if valid
                && !workloads::selector_is_empty(sel)
                && !workloads::selector_matches(sel, labels)
            {
                errs.push(workloads::invalid_go(
                    "spec.template.metadata.labels",
                    workloads::go_string_map(labels),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
}

/// kube's `ValidateJob` (the metadata is checked by the caller): every version written must pass.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_generated_selector(obj);
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    errs.extend(validate_spec(&spec));
    if str_at(&spec, "/completionMode") == "Indexed"
        && let Some(c) = int_at(&spec, "/completions")
        && c > 0
    {
        let host = format!("{}-{}", str_at(obj, "/metadata/name"), c - 1);
        if !super::validation::is_dns1123_label(&host) {
            errs.push(FieldError::invalid(
                "metadata.name",
                &json!(str_at(obj, "/metadata/name")),
                &format!("will not able to create pod with invalid DNS label: {host}"),
            ));
        }
    }
    errs
}

fn immutable(old: &Value, new: &Value, key: &str, errs: &mut Vec<FieldError>) {
    let o = old.get(key).filter(|v| !v.is_null());
    let n = new.get(key).filter(|v| !v.is_null());
    if o != n {
        errs.push(FieldError::invalid(
            format!("spec.{key}"),
            n.unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
}

/// The template with what a suspended, never started Job may change taken from `new` (kube's
/// `AllowMutableSchedulingDirectives`): node selector, tolerations, node affinity, scheduling gates,
/// labels and annotations.
fn with_scheduling_directives(old: &Value, new: &Value) -> Value {
    let mut t = old.clone();
    for p in ["/metadata/labels", "/metadata/annotations"] {
        set_pointer(&mut t, p, new.pointer(p));
    }
    for p in [
        "/spec/nodeSelector",
        "/spec/tolerations",
        "/spec/schedulingGates",
    ] {
        set_pointer(&mut t, p, new.pointer(p));
    }
    let new_na = new.pointer("/spec/affinity/nodeAffinity");
    match (
        new.pointer("/spec/affinity").filter(|a| !a.is_null()),
        t.pointer("/spec/affinity")
            .filter(|a| !a.is_null())
            .cloned(),
    ) {
        (None, Some(mut a)) => {
            if let Some(m) = a.as_object_mut() {
                m.remove("nodeAffinity");
            }
            let empty = a.as_object().is_none_or(Map::is_empty);
            set_pointer(&mut t, "/spec/affinity", (!empty).then_some(&a));
        }
        (Some(_), None) => {
            let a = match new_na {
                Some(na) => json!({"nodeAffinity": na}),
                None => json!({}),
            };
            set_pointer(&mut t, "/spec/affinity", Some(&a));
        }
        (Some(_), Some(_)) => set_pointer(&mut t, "/spec/affinity/nodeAffinity", new_na),
        (None, None) => {}
    }
    t
}

/// Set (or remove, for `None`) the value at a JSON pointer whose parents are objects.
fn set_pointer(v: &mut Value, pointer: &str, value: Option<&Value>) {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return;
    };
    let mut cur = v;
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        if !cur.get(part).is_some_and(Value::is_object) {
            if value.is_none() {
                return;
            }
            cur[part] = json!({});
        }
        cur = &mut cur[part];
    }
    if let Some(m) = cur.as_object_mut() {
        match value.filter(|v| !v.is_null()) {
            Some(x) => {
                m.insert(key.to_string(), x.clone());
            }
            None => {
                m.remove(key);
            }
        }
    }
}

fn condition_true(obj: &Value, type_: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(type_)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// kube's `ValidateJobSpecUpdate`: selector, completions (but for elastic Indexed Jobs), template (but
/// scheduling directives of a suspended Job that never started), completion mode and the policies are
/// immutable; and `ValidateJobStatusUpdate` when the status changes.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let os = old.get("spec").cloned().unwrap_or(json!({}));
    let ns = new.get("spec").cloned().unwrap_or(json!({}));
    let o_sel = os.get("selector").filter(|s| !s.is_null());
    let n_sel = ns.get("selector").filter(|s| !s.is_null());
    if workloads::canonical_selector(o_sel) != workloads::canonical_selector(n_sel)
        || o_sel.is_some() != n_sel.is_some()
    {
        let shown = n_sel.map_or_else(|| "null".to_string(), workloads::go_selector);
        errs.push(workloads::invalid_go(
            "spec.selector",
            shown,
            "field is immutable",
        ));
    }
    if str_at(&ns, "/completionMode") == "Indexed" {
        if os.get("completions") != ns.get("completions")
            && let Some(c) = int_at(&ns, "/completions")
            && Some(c) != int_at(&ns, "/parallelism")
        {
            errs.push(FieldError::invalid(
                "spec.completions",
                &json!(c),
                "can only be modified in tandem with spec.parallelism",
            ));
        }
    } else {
        immutable(&os, &ns, "completions", &mut errs);
    }
    let o_tpl = os.get("template").cloned().unwrap_or(json!({}));
    let n_tpl = ns.get("template").cloned().unwrap_or(json!({}));
    let suspended_unstarted = os.get("suspend").and_then(Value::as_bool) == Some(true)
        && old.pointer("/status/startTime").is_none_or(Value::is_null);
    let allowed = if suspended_unstarted {
        with_scheduling_directives(&o_tpl, &n_tpl)
    } else {
        o_tpl
    };
    if allowed != n_tpl {
        errs.push(FieldError::invalid(
            "spec.template",
            &n_tpl,
            "field is immutable",
        ));
    }
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        immutable(&os, &ns, key, &mut errs);
    }
    if old.get("status") != new.get("status") {
        errs.extend(validate_status_update(old, new));
    }
    errs
}

/// kube's `validateJobStatus` and `ValidateJobStatusUpdate` (the rules kube 1.32 applies with its default
/// feature gates).
fn validate_status_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(st) = new.get("status").filter(|s| s.is_object()) else {
        return errs;
    };
    for key in ["active", "succeeded", "failed", "ready", "terminating"] {
        nonnegative(st, key, "status", &mut errs);
    }
    let mut seen = std::collections::HashSet::new();
    for list in ["succeeded", "failed"] {
        let uids = st
            .pointer(&format!("/uncountedTerminatedPods/{list}"))
            .and_then(Value::as_array);
        for (i, uid) in uids.into_iter().flatten().enumerate() {
            let field = format!("status.uncountedTerminatedPods.{list}[{i}]");
            match uid.as_str() {
                Some("") | None => errs.push(FieldError::invalid(field, uid, "must not be empty")),
                Some(u) if !seen.insert(u.to_string()) => {
                    errs.push(FieldError::duplicate(field, uid))
                }
                Some(_) => {}
            }
        }
    }
    let conditions = |msg: &str| FieldError {
        reason: "FieldValueInvalid",
        field: "status.conditions".into(),
        message: format!("Invalid value: {msg}"),
    };
    let complete = condition_true(new, "Complete");
    let failed = condition_true(new, "Failed");
    let failure_target = condition_true(new, "FailureTarget");
    let criteria_met = condition_true(new, "SuccessCriteriaMet");
    let finished = complete || failed;
    if complete && failed {
        errs.push(conditions(
            "cannot set Complete=True and Failed=true conditions",
        ));
    }
    if complete && failure_target {
        errs.push(conditions(
            "cannot set Complete=True and FailureTarget=true conditions",
        ));
    }
    let completion = st.get("completionTime").filter(|v| !v.is_null());
    if let Some(ct) = completion
        && !complete
    {
        errs.push(FieldError::invalid(
            "status.completionTime",
            ct,
            "cannot set completionTime when there is no Complete=True condition",
        ));
    }
    if completion.is_none() && complete {
        errs.push(FieldError::required(
            "status.completionTime",
            "completionTime is required for Complete jobs",
        ));
    }
    let ts = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
    };
    if let (Some(start), Some(end)) = (ts(st.get("startTime")), ts(completion))
        && end < start
    {
        errs.push(FieldError::invalid(
            "status.completionTime",
            completion.unwrap_or(&Value::Null),
            "completionTime cannot be set before startTime",
        ));
    }
    if failed && !failure_target {
        errs.push(conditions(
            "cannot set Failed=True condition without the FailureTarget=true condition",
        ));
    }
    if complete && !criteria_met {
        errs.push(conditions(
            "cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
        ));
    }
    if finished && int_at(st, "/active").unwrap_or(0) > 0 {
        errs.push(FieldError::invalid(
            "status.active",
            st.get("active").unwrap_or(&Value::Null),
            "active>0 is invalid for finished job",
        ));
    }
    if finished && st.get("startTime").is_none_or(Value::is_null) {
        errs.push(FieldError::required(
            "status.startTime",
            "startTime is required for finished job",
        ));
    }
    let uncounted = ["succeeded", "failed"].iter().any(|l| {
        st.pointer(&format!("/uncountedTerminatedPods/{l}"))
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    });
    if finished && uncounted {
        errs.push(FieldError::invalid(
            "status.uncountedTerminatedPods",
            st.get("uncountedTerminatedPods").unwrap_or(&Value::Null),
            "uncountedTerminatedPods needs to be empty for finished job",
        ));
    }
    if finished && int_at(st, "/terminating").unwrap_or(0) > 0 {
        errs.push(FieldError::invalid(
            "status.terminating",
            st.get("terminating").unwrap_or(&Value::Null),
            "terminating>0 is invalid for finished job",
        ));
    }
    if let Some(ready) = int_at(st, "/ready")
        && ready > int_at(st, "/active").unwrap_or(0)
    {
        errs.push(FieldError::invalid(
            "status.ready",
            &json!(ready),
            "cannot set more ready pods than active",
        ));
    }
    if criteria_met && failed {
        errs.push(conditions(
            "cannot set SuccessCriteriaMet=True and Failed=true conditions",
        ));
    }
    if criteria_met && failure_target {
        errs.push(conditions(
            "cannot set SuccessCriteriaMet=True and FailureTarget=true conditions",
        ));
    }
    for c in ["Failed", "Complete", "FailureTarget"] {
        if condition_true(old, c) && !condition_true(new, c) {
            errs.push(conditions(&format!(
                "cannot disable the terminal {c}=True condition"
            )));
        }
    }
    for counter in ["failed", "succeeded"] {
        let o = int_at(old, &format!("/status/{counter}")).unwrap_or(0);
        let n = int_at(new, &format!("/status/{counter}")).unwrap_or(0);
        if n < o {
            errs.push(FieldError::invalid(
                format!("status.{counter}"),
                &json!(n),
                &format!("cannot decrease the {counter} counter"),
            ));
        }
    }
    let o_ct = old
        .pointer("/status/completionTime")
        .filter(|v| !v.is_null());
    if let (Some(o), Some(n)) = (o_ct, completion)
        && o != n
    {
        errs.push(FieldError::invalid(
            "status.completionTime",
            n,
            "completionTime cannot be mutated",
        ));
    }
    let suspended = new.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let o_start = old.pointer("/status/startTime").filter(|v| !v.is_null());
    if o_start.is_some() && o_start != st.get("startTime").filter(|v| !v.is_null()) && !suspended {
        errs.push(FieldError::required(
            "status.startTime",
            "startTime cannot be removed for unsuspended job",
        ));
    }
    if condition_true(old, "SuccessCriteriaMet") && !criteria_met {
        errs.push(conditions(
            "cannot disable the SuccessCriteriaMet=True condition",
        ));
    }
    errs
}

// ---- table ----

fn col(name: &str, ty: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": desc, "priority": priority})
}

/// kube 1.32's `jobColumnDefinitions`.
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col("Status", "string", "Status of the job.", 0),
        col(
            "Completions",
            "string",
            "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
            0,
        ),
        col(
            "Duration",
            "string",
            "Time required to complete the job.",
            0,
        ),
        age,
        col(
            "Containers",
            "string",
            "Names of each container in the template.",
            1,
        ),
        col(
            "Images",
            "string",
            "Images referenced by each container in the template.",
            1,
        ),
        col(
            "Selector",
            "string",
            "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
            1,
        ),
    ]
}

/// The STATUS column (kube 1.32's `printJob`).
pub fn status_cell(job: &Value) -> &'static str {
    if condition_true(job, "Complete") {
        "Complete"
    } else if condition_true(job, "Failed") {
        "Failed"
    } else if job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating"
    } else if condition_true(job, "Suspended") {
        "Suspended"
    } else if condition_true(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

/// The COMPLETIONS column: `succeeded/completions`, or for a Job without completions `n/1` (`n/1 of p`
/// with parallelism above 1).
pub fn completions_cell(job: &Value) -> String {
    let succeeded = int_at(job, "/status/succeeded").unwrap_or(0);
    match int_at(job, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(job, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// The DURATION column: from startTime to completionTime (or now); empty before the start.
pub fn duration_cell(job: &Value, now: i64) -> String {
    let secs = |p: &str| {
        job.pointer(p)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second())
    };
    match (secs("/status/startTime"), secs("/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => super::table::human_duration(now - start),
        (Some(start), Some(end)) => super::table::human_duration(end - start),
    }
}

/// Row cells (kube's `printJob`, wide).
pub fn cells(job: &Value, name: String, age: String) -> Vec<Value> {
    let (names, images) = workloads::container_cells(job);
    let selector = workloads::selector_string(job.pointer("/spec/selector"));
    vec![
        json!(name),
        json!(status_cell(job)),
        json!(completions_cell(job)),
        json!(duration_cell(job, jiff::Timestamp::now().as_second())),
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

#[cfg(test)]
mod tests;
