//! kube-apiserver's Priority admission plugin, and the delete protection of the system classes.
//!
//! - Pod create: the pod's `spec.priority` and `spec.preemptionPolicy` come from its `priorityClassName`,
//!   or from the global default class (whose name the pod then gets) when it names none, or are 0 and
//!   `PreemptLowerPriority` when there is no default. A missing class, or a priority or preemption
//!   policy the client set to something else, refuses the pod with 403 Forbidden.
//! - Pod update: a body without the priority fields keeps the stored ones (pod validation keeps the spec
//!   otherwise immutable).
//! - PriorityClass create and update: at most one class is the global default.
//! - PriorityClass delete: the system classes stay (kube's `REST.Delete`).

use serde_json::{Value, json};

use super::{PREEMPT_LOWER_PRIORITY, is_system_class};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};

/// kube's `admission.NewForbidden` for `resource` (`pods`, `priorityclasses.scheduling.k8s.io`).
fn forbidden(group: &str, plural: &str, name: &str, why: &str) -> ApiError {
    let resource = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    let mut err = ApiError::forbidden(format!("{resource} {name:?} is forbidden: {why}"));
    let mut details = json!({"name": name, "kind": plural});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    err.details = Some(details);
    err
}

/// The stored class `name`, if any.
async fn class(api: &Api, name: &str) -> ApiResult<Option<Value>> {
    let key = by_kind(Kind::PriorityClass).key(None, name);
    let Some(kv) = api.store.get(&key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&kv.value)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("decoding PriorityClass {name}: {e}")))
}

/// kube's `getDefaultPriorityClass`: of the classes marked global default, the one with the lowest
/// value (more than one can exist after racing writes).
pub async fn default_class(api: &Api) -> ApiResult<Option<Value>> {
    let (kvs, _) = api
        .store
        .list(&by_kind(Kind::PriorityClass).prefix(None))
        .await?;
    let best = kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
        .min_by_key(|c| c.get("value").and_then(Value::as_i64).unwrap_or(0));
    Ok(best)
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The Priority admission of a new pod (after its defaults, before the quota admission, which matches
/// quota scopes against the class name this may set).
pub async fn admit_pod(api: &Api, pod: &mut Value) -> ApiResult<()> {
    let name = str_at(pod, "/metadata/name").to_string();
    let class_name = str_at(pod, "/spec/priorityClassName").to_string();
    let refuse = |why: String| forbidden("", "pods", &name, &why);
    let (class_name, priority, policy) = if class_name.is_empty() {
        match default_class(api).await? {
            Some(c) => (
                str_at(&c, "/metadata/name").to_string(),
                c.get("value").and_then(Value::as_i64).unwrap_or(0),
                c.get("preemptionPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            None => (String::new(), 0, Some(PREEMPT_LOWER_PRIORITY.to_string())),
        }
    } else {
        match class(api, &class_name).await? {
            Some(c) => {
                let value = c.get("value").and_then(Value::as_i64).unwrap_or(0);
                let policy = c.get("preemptionPolicy").and_then(Value::as_str);
                (class_name, value, policy.map(str::to_string))
            }
            None => {
                return Err(refuse(format!(
                    "no PriorityClass with name {class_name} was found"
                )));
            }
        }
    };
    if let Some(sent) = pod.pointer("/spec/priority").filter(|p| !p.is_null())
        && sent.as_i64() != Some(priority)
    {
        return Err(refuse(format!(
            "the integer value of priority ({sent}) must not be provided in pod spec; priority \
             admission controller computed {priority} from the given PriorityClass name"
        )));
    }
    if let Some(policy) = &policy
        && let Some(sent) = pod
            .pointer("/spec/preemptionPolicy")
            .and_then(Value::as_str)
        && sent != policy
    {
        return Err(refuse(format!(
            "the string value of PreemptionPolicy ({sent}) must not be provided in pod spec; priority \
             admission controller computed {policy} from the given PriorityClass name"
        )));
    }
    if !pod.get("spec").is_some_and(Value::is_object) {
        pod["spec"] = json!({});
    }
    let spec = &mut pod["spec"];
    if !class_name.is_empty() {
        spec["priorityClassName"] = json!(class_name);
    }
    spec["priority"] = json!(priority);
    if let Some(policy) = policy {
        spec["preemptionPolicy"] = json!(policy);
    }
    Ok(())
}

/// The update half of the plugin: a pod written without `spec.priority` or `spec.preemptionPolicy`
/// keeps the stored ones, so that clients which drop them do not trip the immutable pod spec.
pub fn keep_on_update(old: &Value, new: &mut Value) {
    for field in ["priority", "preemptionPolicy"] {
        let Some(stored) = old
            .pointer(&format!("/spec/{field}"))
            .filter(|v| !v.is_null())
        else {
            continue;
        };
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
            && spec.get(field).is_none_or(Value::is_null)
        {
            spec.insert(field.into(), stored.clone());
        }
    }
}

/// kube's `validatePriorityClass`, on create and update: a class may be marked global default only when
/// no other one is.
pub async fn admit_class(api: &Api, class: &Value) -> ApiResult<()> {
    if class.get("globalDefault").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let name = str_at(class, "/metadata/name");
    if let Some(current) = default_class(api).await? {
        let current = str_at(&current, "/metadata/name");
        if current != name {
            return Err(forbidden(
                "scheduling.k8s.io",
                "priorityclasses",
                name,
                &format!(
                    "PriorityClass {current} is already marked as default. Only one default can exist"
                ),
            ));
        }
    }
    Ok(())
}

/// kube's `REST.Delete` of priority classes: the system classes cannot be deleted.
pub fn check_delete(name: &str) -> ApiResult<()> {
    if is_system_class(name) {
        return Err(forbidden(
            "scheduling.k8s.io",
            "priorityclasses",
            name,
            "this is a system priority class and cannot be deleted",
        ));
    }
    Ok(())
}
