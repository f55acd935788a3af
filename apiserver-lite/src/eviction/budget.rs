//! The PodDisruptionBudget check of an eviction (kube's `EvictionREST.Create` after `canIgnorePDB`,
//! `getPodDisruptionBudgets` and `checkAndDecrement`), with kube's messages.

use serde_json::{Value, json};

use super::{RETRIES, success};
use crate::controllers::disruption::status::{is_ready, set_allowed_condition};
use crate::handlers::{Api, DeleteOpts, WriteOpts};
use crate::resources::workloads::{selector_is_empty, selector_matches};
use crate::resources::{Kind, by_kind};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::strict::FieldValidation;

/// kube's `MaxDisruptedPodSize`: evictions the disruption controller has not confirmed yet, at most.
const MAX_DISRUPTED_PODS: usize = 2000;

const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// A 429 with a `DisruptionBudget` cause (kube's `NewTooManyRequests` + cause); `retry_after` 0 is
/// omitted, as kube's `omitempty`.
pub(crate) fn too_many_requests(cause: String, retry_after: u64) -> ApiError {
    let mut e = ApiError::new(429, "TooManyRequests", VIOLATION);
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if retry_after > 0 {
        details["retryAfterSeconds"] = json!(retry_after);
    }
    e.details = Some(details);
    e
}

/// kube's `createTooManyRequestsError`: the budget's status does not reflect its spec yet.
fn still_processing(pdb_name: &str) -> ApiError {
    too_many_requests(
        format!("The disruption budget {pdb_name} is still being processed by the server."),
        10,
    )
}

fn forbidden(pdb_name: &str, why: &str) -> ApiError {
    let mut e = ApiError::forbidden(format!(
        "poddisruptionbudget.policy {pdb_name:?} is forbidden: {why}"
    ));
    e.details = Some(json!({"name": pdb_name, "group": "policy", "kind": "poddisruptionbudget"}));
    e
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The budgets of `ns` whose selector picks `pod`. A budget without a selector, or with an empty one,
/// picks nothing here (kube: "it should match nothing, not everything").
async fn budgets_of(api: &Api, ns: &str, pod: &Value) -> ApiResult<Vec<Value>> {
    let (all, _) = api
        .list(
            by_kind(Kind::PodDisruptionBudget),
            Some(ns),
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .await?;
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    Ok(all
        .into_iter()
        .filter(|pdb| {
            pdb.pointer("/spec/selector")
                .filter(|s| s.is_object() && !selector_is_empty(s))
                .is_some_and(|s| selector_matches(s, labels))
        })
        .collect())
}

/// Evict a running (or unknown-phase) pod that is not being deleted, under its budget.
pub(super) async fn evict_guarded(
    api: &Api,
    ns: &str,
    name: &str,
    pod: &Value,
    opts: &DeleteOpts,
    dry_run: bool,
) -> ApiResult<Value> {
    let mut budgets = budgets_of(api, ns, pod).await?;
    if budgets.len() > 1 {
        return Err(ApiError::new(
            500,
            "",
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        ));
    }
    let Some(pdb) = budgets.pop() else {
        super::delete_disrupted(api, ns, name, opts, dry_run).await?;
        return Ok(success());
    };
    let pdb_name = name_of(&pdb).to_string();
    if !is_ready(pod) {
        // An unhealthy pod does not count towards the budget: it may go without taking a disruption
        // if the policy says so, or if the budget is met without it.
        let always = pdb.pointer("/spec/unhealthyPodEvictionPolicy") == Some(&json!("AlwaysAllow"));
        let desired = int(&pdb, "/status/desiredHealthy");
        if always || (int(&pdb, "/status/currentHealthy") >= desired && desired > 0) {
            let mut guarded = opts.clone();
            let added = guarded.resource_version.is_none();
            if added {
                // Only the version judged unhealthy may go: not one that has become Ready since.
                guarded.resource_version = pod
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            return match super::delete_disrupted(api, ns, name, &guarded, dry_run).await {
                Ok(_) => Ok(success()),
                Err(e) if e.code == 409 && added => Err(still_processing(&pdb_name)),
                Err(e) => Err(e),
            };
        }
    }
    take_disruption(api, ns, name, pdb, dry_run).await?;
    super::delete_disrupted(api, ns, name, opts, dry_run).await?;
    Ok(success())
}

/// kube's `checkAndDecrement` under `RetryOnConflict`: refuse when the budget allows no disruption,
/// else decrement `disruptionsAllowed` and record the pod in `disruptedPods` in one status write with
/// the resourceVersion read; a conflict re-reads the budget and tries again.
async fn take_disruption(
    api: &Api,
    ns: &str,
    pod_name: &str,
    mut pdb: Value,
    dry_run: bool,
) -> ApiResult<()> {
    let def = by_kind(Kind::PodDisruptionBudget);
    let pdb_name = name_of(&pdb).to_string();
    for attempt in 0..RETRIES {
        if attempt > 0 {
            pdb = api.get(def, Some(ns), &pdb_name).await?;
        }
        let next = decremented(&pdb, pod_name, dry_run)?;
        if dry_run {
            return Ok(());
        }
        let opts = WriteOpts {
            dry_run: false,
            field_validation: FieldValidation::Ignore,
            field_manager: None,
            apply: false,
        };
        match api
            .update(def, Some(ns), &pdb_name, Some("status"), next, &[], &opts)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::new(
        504,
        "Timeout",
        format!("couldn't update PodDisruptionBudget {pdb_name:?} due to conflicts"),
    ))
}

/// The budget after taking one disruption for `pod_name`, or kube's refusal.
pub(crate) fn decremented(pdb: &Value, pod_name: &str, dry_run: bool) -> ApiResult<Value> {
    let pdb_name = name_of(pdb);
    if int(pdb, "/status/observedGeneration") < int(pdb, "/metadata/generation") {
        return Err(still_processing(pdb_name));
    }
    let allowed = int(pdb, "/status/disruptionsAllowed");
    if allowed < 0 {
        return Err(forbidden(pdb_name, "pdb disruptions allowed is negative"));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(forbidden(
            pdb_name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(
            format!(
                "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                int(pdb, "/status/desiredHealthy"),
                int(pdb, "/status/currentHealthy")
            ),
            0,
        ));
    }
    let mut next = pdb.clone();
    let status = &mut next["status"];
    status["disruptionsAllowed"] = json!(allowed - 1);
    if allowed == 1 {
        set_allowed_condition(status);
    }
    if !dry_run {
        if !status.get("disruptedPods").is_some_and(Value::is_object) {
            status["disruptedPods"] = json!({});
        }
        status["disruptedPods"][pod_name] = json!(crate::handlers::now_rfc3339());
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": 2}, "spec": {"minAvailable": 2}, "status": status})
    }

    #[test]
    fn refusals_carry_kubes_messages() {
        let e = decremented(
            &pdb(
                json!({"observedGeneration": 2, "disruptionsAllowed": 0, "desiredHealthy": 2,
                "currentHealthy": 2}),
            ),
            "p",
            false,
        )
        .expect_err("no disruption allowed");
        assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
        assert_eq!(e.message, VIOLATION);
        let details = e.details.expect("details");
        assert_eq!(
            details["causes"][0],
            json!({"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"})
        );
        assert!(details.get("retryAfterSeconds").is_none());

        let e = decremented(
            &pdb(json!({"observedGeneration": 1, "disruptionsAllowed": 3})),
            "p",
            false,
        )
        .expect_err("stale status");
        assert_eq!(e.code, 429);
        let details = e.details.expect("details");
        assert_eq!(
            details["causes"][0]["message"],
            "The disruption budget web is still being processed by the server."
        );
        assert_eq!(details["retryAfterSeconds"], 10);

        let e = decremented(
            &pdb(json!({"observedGeneration": 2, "disruptionsAllowed": -1})),
            "p",
            false,
        )
        .expect_err("negative");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative"
        );
    }

    #[test]
    fn a_disruption_is_taken_and_recorded() {
        let next = decremented(
            &pdb(
                json!({"observedGeneration": 2, "disruptionsAllowed": 1, "desiredHealthy": 2,
                "currentHealthy": 3}),
            ),
            "p1",
            false,
        )
        .expect("allowed");
        assert_eq!(next["status"]["disruptionsAllowed"], 0);
        assert!(next["status"]["disruptedPods"]["p1"].is_string());
        let cond = &next["status"]["conditions"][0];
        assert_eq!(
            (&cond["status"], &cond["reason"]),
            (&json!("False"), &json!("InsufficientPods"))
        );

        let dry = decremented(
            &pdb(json!({"observedGeneration": 2, "disruptionsAllowed": 2})),
            "p1",
            true,
        )
        .expect("allowed");
        assert_eq!(dry["status"]["disruptionsAllowed"], 1);
        assert!(dry["status"].get("disruptedPods").is_none());
        assert!(dry["status"].get("conditions").is_none());
    }
}
