//! kube's `ValidateJobSpecUpdate`: what of a Job's spec may change, and when its template's scheduling
//! directives may.

use serde_json::{Map, Value, json};

use super::super::workloads;
use super::status::validate_status_update;
use super::{int_at, str_at};
use crate::status::FieldError;

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
