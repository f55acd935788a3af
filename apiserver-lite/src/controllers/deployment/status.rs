//! A Deployment's status (kube's `calculateStatus` and `syncRolloutStatus`): replica counts over its
//! ReplicaSets and the `Available` and `Progressing` conditions that `kubectl rollout status` reads.

use serde_json::{Map, Value, json};

use super::super::object::now_rfc3339;
use super::super::owners::{int_at, seconds, str_at};
use super::rollout::{self, available, ready, replicas, status_replicas};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

pub fn conditions(status: &Value) -> Vec<Value> {
    status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn field<'a>(c: &'a Value, name: &str) -> &'a str {
    c.get(name).and_then(Value::as_str).unwrap_or("")
}

pub fn reason_of(status: &Value, type_: &str) -> Option<String> {
    condition(status, type_).map(|c| field(c, "reason").to_string())
}

/// A new condition, both times now (kube's `NewDeploymentCondition`).
pub fn new_condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    let now = now_rfc3339();
    json!({"type": type_, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
           "reason": reason, "message": message})
}

/// kube's `SetDeploymentCondition`: nothing when status and reason are unchanged; otherwise replace it
/// (at the end), keeping `lastTransitionTime` when the status is the same.
pub fn set_condition(status: &mut Value, mut cond: Value) {
    let type_ = field(&cond, "type").to_string();
    if let Some(current) = condition(status, &type_) {
        if field(current, "status") == field(&cond, "status")
            && field(current, "reason") == field(&cond, "reason")
        {
            return;
        }
        if field(current, "status") == field(&cond, "status")
            && let Some(t) = current.get("lastTransitionTime")
        {
            cond["lastTransitionTime"] = t.clone();
        }
    }
    remove_condition(status, &type_);
    let mut list = conditions(status);
    list.push(cond);
    status["conditions"] = Value::Array(list);
}

pub fn remove_condition(status: &mut Value, type_: &str) {
    let list: Vec<Value> = conditions(status)
        .into_iter()
        .filter(|c| field(c, "type") != type_)
        .collect();
    if let Some(m) = status.as_object_mut() {
        if list.is_empty() {
            m.remove("conditions");
        } else {
            m.insert("conditions".into(), Value::Array(list));
        }
    }
}

/// The counts and `Available` condition (kube's `calculateStatus`), on top of `current`'s conditions
/// and collision count. Zero counts are left out, as kube's `omitempty` does.
pub fn calculate(d: &Value, current: &Value, all: &[&Value], new_rs: Option<&Value>) -> Value {
    let available_now: i64 = all.iter().map(|rs| available(rs)).sum();
    let total: i64 = all.iter().map(|rs| replicas(rs)).sum();
    let mut status = Map::new();
    let counts = [
        (
            "observedGeneration",
            int_at(d, "/metadata/generation").unwrap_or(0),
        ),
        ("replicas", all.iter().map(|rs| status_replicas(rs)).sum()),
        ("updatedReplicas", new_rs.map_or(0, status_replicas)),
        ("readyReplicas", all.iter().map(|rs| ready(rs)).sum()),
        ("availableReplicas", available_now),
        ("unavailableReplicas", (total - available_now).max(0)),
    ];
    for (name, n) in counts {
        if n != 0 {
            status.insert(name.into(), json!(n));
        }
    }
    if let Some(c) = current.get("collisionCount").filter(|c| !c.is_null()) {
        status.insert("collisionCount".into(), c.clone());
    }
    let mut status = Value::Object(status);
    let list = conditions(current);
    if !list.is_empty() {
        status["conditions"] = Value::Array(list);
    }
    let cond = if available_now >= replicas(d) - rollout::max_unavailable(d) {
        new_condition(
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    set_condition(&mut status, cond);
    status
}

fn count(status: &Value, name: &str) -> i64 {
    int_at(status, &format!("/{name}")).unwrap_or(0)
}

/// kube's `DeploymentComplete`.
pub fn complete(d: &Value, status: &Value) -> bool {
    let want = replicas(d);
    count(status, "updatedReplicas") == want
        && count(status, "replicas") == want
        && count(status, "availableReplicas") == want
        && count(status, "observedGeneration") >= int_at(d, "/metadata/generation").unwrap_or(0)
}

/// kube's `DeploymentProgressing`: more updated, ready or available replicas, or fewer old ones.
fn progressing(old: &Value, new: &Value) -> bool {
    let old_old = count(old, "replicas") - count(old, "updatedReplicas");
    let new_old = count(new, "replicas") - count(new, "updatedReplicas");
    count(new, "updatedReplicas") > count(old, "updatedReplicas")
        || new_old < old_old
        || count(new, "readyReplicas") > count(old, "readyReplicas")
        || count(new, "availableReplicas") > count(old, "availableReplicas")
}

pub fn deadline(d: &Value) -> Option<i64> {
    int_at(d, "/spec/progressDeadlineSeconds").filter(|s| *s < i64::from(i32::MAX))
}

/// When the progress deadline of `status` runs out (UNIX seconds), if it is running.
pub fn deadline_at(d: &Value, status: &Value) -> Option<i64> {
    let limit = deadline(d)?;
    let cond = condition(status, PROGRESSING)?;
    if matches!(field(cond, "reason"), NEW_RS_AVAILABLE | TIMED_OUT) {
        return None;
    }
    Some(seconds(field(cond, "lastUpdateTime"))? + limit)
}

/// kube's `syncRolloutStatus` minus the write: `old` is the status the Deployment had, `status` the one
/// being built (conditions set earlier in the sync included).
pub fn rollout(d: &Value, old: &Value, status: &mut Value, new_rs_name: Option<&str>, now: i64) {
    if deadline(d).is_none() {
        remove_condition(status, PROGRESSING);
        return;
    }
    let current = condition(status, PROGRESSING).cloned();
    let done = count(status, "replicas") == count(status, "updatedReplicas")
        && current
            .as_ref()
            .is_some_and(|c| field(c, "reason") == NEW_RS_AVAILABLE);
    if done {
        return;
    }
    if complete(d, status) {
        let msg = match new_rs_name {
            Some(n) => format!("ReplicaSet \"{n}\" has successfully progressed."),
            None => "Deployment has successfully progressed.".to_string(),
        };
        set_condition(
            status,
            new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, &msg),
        );
    } else if progressing(old, status) {
        let msg = match new_rs_name {
            Some(n) => format!("ReplicaSet \"{n}\" is progressing."),
            None => "Deployment is progressing.".to_string(),
        };
        let mut cond = new_condition(PROGRESSING, "True", "ReplicaSetUpdated", &msg);
        // Every progress refreshes lastUpdateTime: that is what the deadline counts from.
        if let Some(c) = &current
            && field(c, "status") == "True"
            && let Some(t) = c.get("lastTransitionTime")
        {
            cond["lastTransitionTime"] = t.clone();
        }
        remove_condition(status, PROGRESSING);
        set_condition(status, cond);
    } else if deadline_at(d, status).is_some_and(|at| at < now)
        || current
            .as_ref()
            .is_some_and(|c| field(c, "reason") == TIMED_OUT)
    {
        let msg = match new_rs_name {
            Some(n) => format!("ReplicaSet \"{n}\" has timed out progressing."),
            None => format!(
                "Deployment \"{}\" has timed out progressing.",
                str_at(d, "/metadata/name")
            ),
        };
        set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, &msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_condition_keeps_times_like_kube() {
        let mut status = json!({"conditions": [{"type": "Available", "status": "False",
            "reason": "MinimumReplicasUnavailable", "lastTransitionTime": "2020-01-01T00:00:00Z",
            "lastUpdateTime": "2020-01-01T00:00:00Z"}]});
        let before = status.clone();
        set_condition(
            &mut status,
            new_condition(AVAILABLE, "False", "MinimumReplicasUnavailable", "m"),
        );
        assert_eq!(status, before, "same status and reason: untouched");
        set_condition(&mut status, new_condition(PROGRESSING, "True", "X", "m"));
        set_condition(&mut status, new_condition(AVAILABLE, "True", "Y", "m"));
        let list = conditions(&status);
        assert_eq!(list[0]["type"], PROGRESSING);
        assert_eq!(list[1]["type"], AVAILABLE);
        assert_ne!(list[1]["lastTransitionTime"], "2020-01-01T00:00:00Z");
    }

    #[test]
    fn rollout_conditions_follow_progress_and_deadline() {
        let d = json!({"metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 600}});
        let old = json!({"replicas": 2, "updatedReplicas": 1});
        let mut status = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
            "conditions": [new_condition(PROGRESSING, "True", "NewReplicaSetCreated", "c")]});
        let now = jiff::Timestamp::now().as_second();
        rollout(&d, &old, &mut status, Some("web-1"), now);
        assert_eq!(
            reason_of(&status, PROGRESSING).as_deref(),
            Some("ReplicaSetUpdated")
        );
        assert_eq!(
            condition(&status, PROGRESSING).expect("cond")["message"],
            "ReplicaSet \"web-1\" is progressing."
        );
        // No progress for longer than the deadline: timed out.
        let stalled = status.clone();
        rollout(&d, &stalled, &mut status, Some("web-1"), now + 700);
        assert_eq!(reason_of(&status, PROGRESSING).as_deref(), Some(TIMED_OUT));
        assert_eq!(
            condition(&status, PROGRESSING).expect("cond")["status"],
            "False"
        );
        // Complete.
        status["availableReplicas"] = json!(2);
        rollout(&d, &stalled, &mut status, Some("web-1"), now + 702);
        assert_eq!(
            reason_of(&status, PROGRESSING).as_deref(),
            Some(NEW_RS_AVAILABLE)
        );
        assert_eq!(
            condition(&status, PROGRESSING).expect("cond")["message"],
            "ReplicaSet \"web-1\" has successfully progressed."
        );
    }

    #[test]
    fn availability_condition() {
        let d = json!({"metadata": {"generation": 1}, "spec": {"replicas": 4,
            "strategy": {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}}});
        let rs = json!({"spec": {"replicas": 4}, "status": {"replicas": 4, "availableReplicas": 2,
            "readyReplicas": 3}});
        let s = calculate(&d, &json!({}), &[&rs], Some(&rs));
        assert_eq!(condition(&s, AVAILABLE).expect("cond")["status"], "False");
        assert_eq!(
            condition(&s, AVAILABLE).expect("cond")["message"],
            "Deployment does not have minimum availability."
        );
        assert_eq!(s["unavailableReplicas"], 2);
        assert_eq!(s["readyReplicas"], 3);
        assert_eq!(s["updatedReplicas"], 4);
        let rs =
            json!({"spec": {"replicas": 4}, "status": {"replicas": 4, "availableReplicas": 3}});
        let s = calculate(&d, &json!({}), &[&rs], Some(&rs));
        assert_eq!(
            condition(&s, AVAILABLE).expect("cond")["reason"],
            "MinimumReplicasAvailable"
        );
        assert!(s.get("unavailableReplicas").is_some());
    }
}
