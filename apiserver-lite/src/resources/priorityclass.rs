//! scheduling.k8s.io/v1 PriorityClasses: normalization, kube's default (`SetDefaults_PriorityClass`),
//! validation (kube's `ValidatePriorityClass` and `ValidatePriorityClassUpdate`), table columns
//! (`printPriorityClass`) and the two system classes the API server creates at start-up
//! (`storage_scheduling.go`'s post-start hook). The Priority admission plugin, which resolves every new
//! pod's `spec.priority` from its class, lives in `admission`.
//!
//! The node agent ranks pods for node-pressure eviction by the resolved `spec.priority` and never evicts
//! pods at `system-cluster-critical`'s value or above.

pub mod admission;

use serde_json::{Value, json};

use crate::resources::{Kind, by_kind};
use crate::status::FieldError;
use crate::store::{Store, StoreError};

/// Names starting with this are reserved for the system classes.
pub const SYSTEM_PREFIX: &str = "system-";
/// kube's `HighestUserDefinablePriority`: the largest value of a class not named `system-…`.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;
/// kube's `SystemCriticalPriority`, the value of `system-cluster-critical`.
pub const SYSTEM_CRITICAL_PRIORITY: i64 = 2_000_000_000;
/// The default preemption policy, of classes and of pods without a class.
pub const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";
/// The preemption policies kube accepts.
pub const PREEMPTION_POLICIES: &[&str] = &[PREEMPT_LOWER_PRIORITY, "Never"];

/// One of kube's built-in classes (`SystemPriorityClasses`).
pub struct SystemClass {
    pub name: &'static str,
    pub value: i64,
    pub description: &'static str,
}

/// The classes every cluster has, as kube creates them (neither is the global default).
pub const SYSTEM_CLASSES: &[SystemClass] = &[
    SystemClass {
        name: "system-node-critical",
        value: SYSTEM_CRITICAL_PRIORITY + 1000,
        description: "Used for system critical pods that must not be moved from their current node.",
    },
    SystemClass {
        name: "system-cluster-critical",
        value: SYSTEM_CRITICAL_PRIORITY,
        description: "Used for system critical pods that must run in the cluster, but can be moved to \
                      another node if necessary.",
    },
];

/// Whether `name` is one of the system classes (which cannot be deleted).
pub fn is_system_class(name: &str) -> bool {
    SYSTEM_CLASSES.iter().any(|c| c.name == name)
}

/// Round-trip through the k8s-openapi type (unknown fields dropped). kube's `value` is a plain int32, so
/// a class without one has value 0 (k8s-openapi would refuse it as missing).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut()
        && m.get("value").is_none_or(Value::is_null)
    {
        m.insert("value".into(), json!(0));
    }
    let t: k8s_openapi::api::scheduling::v1::PriorityClass =
        serde_json::from_value(v).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// kube's `SetDefaults_PriorityClass` (applied to every version written): no preemption policy means
/// `PreemptLowerPriority`.
pub fn defaults(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get("preemptionPolicy").is_none_or(Value::is_null)
    {
        m.insert("preemptionPolicy".into(), json!(PREEMPT_LOWER_PRIORITY));
    }
}

fn value_of(obj: &Value) -> i64 {
    obj.get("value").and_then(Value::as_i64).unwrap_or(0)
}

fn global_default(obj: &Value) -> bool {
    obj.get("globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// kube's `IsKnownSystemPriorityClass`: `Ok` for a system class with its own value and globalDefault.
fn known_system_class(name: &str, value: i64, global: bool) -> Result<(), String> {
    let Some(class) = SYSTEM_CLASSES.iter().find(|c| c.name == name) else {
        return Err(format!("{name} is not a known system priority class"));
    };
    if class.value != value {
        return Err(format!(
            "value of {} PriorityClass must be {}",
            class.name, class.value
        ));
    }
    if global {
        return Err(format!(
            "globalDefault of {} PriorityClass must be false",
            class.name
        ));
    }
    Ok(())
}

/// kube's `ValidatePriorityClass` (object metadata is checked by the caller): `system-` names are the
/// system classes' only, other classes stay at or below `HighestUserDefinablePriority`, and the
/// preemption policy is one kube knows.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = value_of(obj);
    if name.starts_with(SYSTEM_PREFIX) {
        if let Err(why) = known_system_class(name, value, global_default(obj)) {
            errs.push(FieldError::forbidden(
                "metadata.name",
                &format!(
                    "priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use \
                     only. error: {why}"
                ),
            ));
        }
    } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errs.push(FieldError::forbidden(
            "value",
            &format!(
                "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
            ),
        ));
    }
    match obj.get("preemptionPolicy") {
        None | Some(Value::Null) => {}
        Some(Value::String(p)) if p.is_empty() => {
            errs.push(FieldError::required("preemptionPolicy", ""))
        }
        Some(p) if p.as_str().is_some_and(|p| PREEMPTION_POLICIES.contains(&p)) => {}
        Some(p) => errs.push(FieldError::not_supported(
            "preemptionPolicy",
            p,
            PREEMPTION_POLICIES,
        )),
    }
    errs
}

/// kube's `ValidatePriorityClassUpdate`: `value` and `preemptionPolicy` never change.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if value_of(old) != value_of(new) {
        errs.push(FieldError::forbidden(
            "value",
            "may not be changed in an update.",
        ));
    }
    let policy = |o: &Value| o.get("preemptionPolicy").cloned().unwrap_or(Value::Null);
    if policy(old) != policy(new) {
        errs.push(FieldError::invalid(
            "preemptionPolicy",
            &policy(new),
            "field is immutable",
        ));
    }
    errs
}

fn col(name: &str, ty: &str, desc: &str) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": desc, "priority": 0})
}

/// Table columns (kube's `priorityClassColumnDefinitions`; kubectl prints them upper-case).
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col(
            "Value",
            "integer",
            "value represents the integer value of this priority class. This is the actual priority \
             that pods receive when they have the name of this class in their pod spec.",
        ),
        col(
            "Global-Default",
            "boolean",
            "globalDefault specifies whether this PriorityClass should be considered as the default \
             priority for pods that do not have any priority class. Only one PriorityClass can be marked \
             as `globalDefault`. However, if more than one PriorityClasses exists with their \
             `globalDefault` field set to true, the smallest value of such global default \
             PriorityClasses will be used as the default priority.",
        ),
        age,
        col(
            "PreemptionPolicy",
            "string",
            "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, \
             PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.",
        ),
    ]
}

/// Row cells (kube's `printPriorityClass`).
pub fn cells(obj: &Value, name: String, age: String) -> Vec<Value> {
    let policy = obj
        .get("preemptionPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    vec![
        json!(name),
        json!(value_of(obj)),
        json!(global_default(obj)),
        json!(age),
        json!(policy),
    ]
}

/// A system class as the API server creates it.
pub fn system_class_object(class: &SystemClass) -> Value {
    json!({
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {
            "name": class.name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": crate::handlers::now_rfc3339(),
            "generation": 1,
        },
        "value": class.value,
        "description": class.description,
        "preemptionPolicy": PREEMPT_LOWER_PRIORITY,
    })
}

/// Create the system classes that do not exist (kube's post-start hook). Safe on every start and
/// concurrently; returns the names created.
pub async fn ensure_system_classes(store: &dyn Store) -> Result<Vec<&'static str>, StoreError> {
    let def = by_kind(Kind::PriorityClass);
    let mut created = Vec::new();
    for class in SYSTEM_CLASSES {
        let key = def.key(None, class.name);
        if store.get(&key).await?.is_some() {
            continue;
        }
        let bytes = serde_json::to_vec(&system_class_object(class))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        match store.create(&key, bytes).await {
            Ok(_) => {
                tracing::info!(priorityclass = class.name, "created system priority class");
                created.push(class.name);
            }
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests;
