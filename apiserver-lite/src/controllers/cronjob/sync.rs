//! One sync of one CronJob (kube's `syncCronJob` and `cleanupFinishedJobs`): reconcile `status.active`
//! with the Jobs, start the Job due now, delete the oldest finished Jobs, write the status.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::super::events::{self, EventType, ObjectRef};
use super::super::owners::{Key, Stored, controller_owner_ref, str_at};
use super::Clock;
use super::times;
use crate::controllers::job::finished;
use crate::handlers::{Api, DeleteOpts, Propagation};
use crate::resources::cronjob::SCHEDULED_TIMESTAMP_ANNOTATION;
use crate::resources::cronjob::schedule::{self, Schedule};
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;

const COMPONENT: &str = "cronjob-controller";
const MANAGER: &str = "kube-controller-manager";

/// `metav1.Time`: RFC 3339, whole seconds, UTC.
fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn time_at(v: &Value, p: &str) -> Option<Timestamp> {
    v.pointer(p)?.as_str()?.parse().ok()
}

fn condition_true(job: &Value, type_: &str) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(type_)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

async fn event(api: &Api, cj: &Value, type_: EventType, reason: &str, message: &str) {
    let object = ObjectRef {
        api_version: "batch/v1".into(),
        kind: "CronJob".into(),
        namespace: str_at(cj, "/metadata/namespace").into(),
        name: str_at(cj, "/metadata/name").into(),
        uid: str_at(cj, "/metadata/uid").into(),
        resource_version: str_at(cj, "/metadata/resourceVersion").into(),
    };
    let store = api.store.as_ref();
    if let Err(err) = events::record_about(store, COMPONENT, &object, type_, reason, message).await
    {
        tracing::warn!(cronjob = %object.name, error = %err, "failed to record event");
    }
}

/// Set (or, with `None`, remove) `status.<key>`.
fn set_status(cj: &mut Value, key: &str, value: Option<Value>) {
    if let Some(st) = super::super::object::child(cj, "status") {
        match value {
            Some(v) => {
                st.insert(key.into(), v);
            }
            None => {
                st.remove(key);
            }
        }
    }
}

fn active(cj: &Value) -> Vec<Value> {
    cj.pointer("/status/active")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn set_active(cj: &mut Value, refs: Vec<Value>) {
    let refs = (!refs.is_empty()).then_some(Value::Array(refs));
    set_status(cj, "active", refs);
}

fn ref_uid(r: &Value) -> &str {
    r.get("uid").and_then(Value::as_str).unwrap_or("")
}

/// kube's `getRef` of a Job.
fn job_ref(job: &Value) -> Value {
    json!({
        "kind": "Job",
        "namespace": str_at(job, "/metadata/namespace"),
        "name": str_at(job, "/metadata/name"),
        "uid": str_at(job, "/metadata/uid"),
        "apiVersion": "batch/v1",
        "resourceVersion": str_at(job, "/metadata/resourceVersion"),
    })
}

/// kube's `getJobFromTemplate2`: the Job for start time `at`.
fn job_for(cj: &Value, at: Timestamp, tz: &jiff::tz::TimeZone) -> Value {
    let name = format!("{}-{}", str_at(cj, "/metadata/name"), at.as_second() / 60);
    let template = cj
        .pointer("/spec/jobTemplate")
        .cloned()
        .unwrap_or(json!({}));
    let labels = template.pointer("/metadata/labels").cloned();
    let mut annotations = template
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let zoned = at.to_zoned(tz.clone());
    let stamp = if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    };
    annotations.insert(SCHEDULED_TIMESTAMP_ANNOTATION.into(), json!(stamp));
    let mut owner = cj.clone();
    owner["apiVersion"] = json!("batch/v1");
    owner["kind"] = json!("CronJob");
    let mut meta = json!({
        "name": name,
        "namespace": str_at(cj, "/metadata/namespace"),
        "annotations": annotations,
        "ownerReferences": [controller_owner_ref(&owner)],
    });
    if let Some(labels) = labels.filter(|l| l.is_object()) {
        meta["labels"] = labels;
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    })
}

/// Delete a Job in the background (kube's `deleteJob`); a Job already gone counts as deleted.
async fn delete_job(api: &Api, cj: &Value, ns: &str, name: &str, uid: &str) -> ApiResult<()> {
    let opts = DeleteOpts {
        uid: Some(uid.to_string()),
        propagation: Some(Propagation::Background),
        ..DeleteOpts::default()
    };
    match api
        .delete(by_kind(Kind::Job), Some(ns), name, &opts, false)
        .await
    {
        Ok(_) => {
            let msg = format!("Deleted job {name}");
            event(api, cj, EventType::Normal, "SuccessfulDelete", &msg).await;
            Ok(())
        }
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => {
            let msg = format!("Deleted job {name}: {}", e.message);
            event(api, cj, EventType::Warning, "FailedDelete", &msg).await;
            Err(e)
        }
    }
}

/// Reconcile `status.active` and `lastSuccessfulTime` with the Jobs (kube's first half of `syncCronJob`).
async fn reconcile_active(api: &Api, cj: &mut Value, children: &[Stored]) -> ApiResult<()> {
    let mut refs = active(cj);
    for job in children {
        let uid = job.uid();
        let found = refs.iter().any(|r| ref_uid(r) == uid);
        if !found && !finished(&job.value) {
            let msg = format!(
                "Saw a job that the controller did not create or forgot: {}",
                job.name()
            );
            event(api, cj, EventType::Warning, "UnexpectedJob", &msg).await;
        } else if finished(&job.value) {
            if found {
                refs.retain(|r| ref_uid(r) != uid);
                let condition = if condition_true(&job.value, "Complete") {
                    "Complete"
                } else {
                    "Failed"
                };
                let msg = format!("Saw completed job: {}, condition: {condition}", job.name());
                event(api, cj, EventType::Normal, "SawCompletedJob", &msg).await;
            }
            if condition_true(&job.value, "Complete")
                && let Some(done) = time_at(&job.value, "/status/completionTime")
                && time_at(cj, "/status/lastSuccessfulTime").is_none_or(|t| done > t)
            {
                set_status(cj, "lastSuccessfulTime", Some(json!(rfc3339(done))));
            }
        }
    }
    // References to Jobs the cache does not know: ask the store (the cache may lag).
    let ns = str_at(cj, "/metadata/namespace").to_string();
    let mut kept = Vec::new();
    for r in refs {
        let uid = ref_uid(&r);
        if children.iter().any(|j| j.uid() == uid) {
            kept.push(r);
            continue;
        }
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        match api.get(by_kind(Kind::Job), Some(&ns), name).await {
            Ok(j) if str_at(&j, "/metadata/uid") == uid => kept.push(r),
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    set_active(cj, kept);
    Ok(())
}

/// kube's `cleanupFinishedJobs`: delete the oldest finished Jobs beyond the history limits.
async fn cleanup(api: &Api, cj: &mut Value, children: &[Stored]) -> ApiResult<()> {
    let limit = |k: &str| cj.pointer(&format!("/spec/{k}")).and_then(Value::as_i64);
    let (ok_limit, failed_limit) = (
        limit("successfulJobsHistoryLimit"),
        limit("failedJobsHistoryLimit"),
    );
    let start = |j: &Stored| {
        (
            time_at(&j.value, "/status/startTime"),
            time_at(&j.value, "/metadata/creationTimestamp"),
            j.name().to_string(),
        )
    };
    let mut done: Vec<&Stored> = children
        .iter()
        .filter(|j| finished(&j.value) && !j.deleting())
        .collect();
    done.sort_by_key(|j| start(j));
    let ns = str_at(cj, "/metadata/namespace").to_string();
    for (complete, limit) in [(true, ok_limit), (false, failed_limit)] {
        let Some(limit) = limit else { continue };
        let these: Vec<&&Stored> = done
            .iter()
            .filter(|j| condition_true(&j.value, "Complete") == complete)
            .collect();
        let extra = these.len().saturating_sub(limit.max(0) as usize);
        for job in &these[..extra] {
            delete_job(api, cj, &ns, job.name(), job.uid()).await?;
            let mut refs = active(cj);
            refs.retain(|r| ref_uid(r) != job.uid());
            set_active(cj, refs);
        }
    }
    Ok(())
}

/// Sync the CronJob `key` whose Jobs are `children`; when to look again.
pub(super) async fn sync(
    api: &Api,
    clock: &Clock,
    key: &Key,
    children: &[Stored],
) -> ApiResult<Option<Timestamp>> {
    let def = by_kind(Kind::CronJob);
    let stored = match api.get(def, Some(&key.0), &key.1).await {
        Ok(v) => v,
        Err(e) if e.code == 404 => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut cj = stored.clone();
    reconcile_active(api, &mut cj, children).await?;
    let next = schedule_job(api, clock, &mut cj).await;
    let next = match next {
        Ok(next) => next,
        Err(e) => {
            write_status(api, &stored, &cj).await?;
            return Err(e);
        }
    };
    if cj
        .pointer("/metadata/deletionTimestamp")
        .is_none_or(Value::is_null)
    {
        cleanup(api, &mut cj, children).await?;
    }
    write_status(api, &stored, &cj).await?;
    Ok(next)
}

async fn write_status(api: &Api, stored: &Value, cj: &Value) -> ApiResult<()> {
    if stored.get("status") == cj.get("status") {
        return Ok(());
    }
    let opts = super::super::object::write_opts(MANAGER);
    let (ns, name) = (
        str_at(cj, "/metadata/namespace"),
        str_at(cj, "/metadata/name"),
    );
    let def = by_kind(Kind::CronJob);
    api.update(def, Some(ns), name, Some("status"), cj.clone(), &[], &opts)
        .await
        .map(|_| ())
}

/// The second half of kube's `syncCronJob`: start the Job due now, if any; when to look again.
async fn schedule_job(api: &Api, clock: &Clock, cj: &mut Value) -> ApiResult<Option<Timestamp>> {
    if cj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Ok(None);
    }
    let zone_name = str_at(cj, "/spec/timeZone").to_string();
    let tz = match schedule::load_zone(&zone_name) {
        Ok(tz) => tz,
        Err(e) => {
            let msg = format!("invalid timeZone: {zone_name:?}: {e}");
            event(api, cj, EventType::Warning, "UnknownTimeZone", &msg).await;
            return Ok(None);
        }
    };
    if cj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let spec = str_at(cj, "/spec/schedule").to_string();
    let sched: Schedule = match schedule::parse(&spec) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("unparseable schedule: {spec:?} : {e}");
            event(api, cj, EventType::Warning, "UnparseableSchedule", &msg).await;
            return Ok(None);
        }
    };
    let now = clock.now();
    let Some(earliest) = time_at(cj, "/status/lastScheduleTime")
        .or_else(|| time_at(cj, "/metadata/creationTimestamp"))
    else {
        return Ok(None);
    };
    let requeue = times::requeue_at(earliest, now, &sched, &tz);
    let deadline = cj
        .pointer("/spec/startingDeadlineSeconds")
        .and_then(Value::as_i64);
    let due = times::due(earliest, deadline, now, &sched, &tz);
    if due.missed > times::TOO_MANY_MISSED {
        let msg = format!(
            "too many missed start times: {}. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            due.missed
        );
        event(api, cj, EventType::Warning, "TooManyMissedTimes", &msg).await;
    }
    let Some(at) = due.most_recent else {
        return Ok(requeue);
    };
    if let Some(secs) = deadline
        && at.as_second() + secs < now.as_second()
    {
        let when = at.strftime("%a, %d %b %Y %H:%M:%S +0000");
        let msg = format!("Missed scheduled time to start a job: {when}");
        event(api, cj, EventType::Warning, "MissSchedule", &msg).await;
        return Ok(requeue);
    }
    let job = job_for(cj, at, &tz);
    let job_name = str_at(&job, "/metadata/name").to_string();
    let refs = active(cj);
    let started = refs
        .iter()
        .any(|r| r.get("name").and_then(Value::as_str) == Some(&job_name))
        || time_at(cj, "/status/lastScheduleTime") == Some(at);
    if started {
        return Ok(requeue);
    }
    match str_at(cj, "/spec/concurrencyPolicy") {
        "Forbid" if !refs.is_empty() => {
            let msg = "Not starting job because prior execution is running and concurrency policy is Forbid";
            event(api, cj, EventType::Normal, "JobAlreadyActive", msg).await;
            return Ok(requeue);
        }
        "Replace" => {
            let ns = str_at(cj, "/metadata/namespace").to_string();
            for r in &refs {
                let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                delete_job(api, cj, &ns, name, ref_uid(r)).await?;
                let mut left = active(cj);
                left.retain(|x| ref_uid(x) != ref_uid(r));
                set_active(cj, left);
            }
        }
        _ => {}
    }
    let ns = str_at(cj, "/metadata/namespace").to_string();
    let opts = super::super::object::write_opts(MANAGER);
    let created = match api
        .create(by_kind(Kind::Job), Some(&ns), job, &[], &opts)
        .await
    {
        Ok((created, _)) => {
            let msg = format!("Created job {job_name}");
            event(api, cj, EventType::Normal, "SuccessfulCreate", &msg).await;
            created
        }
        // Created before (the status write failed): take it if it is ours.
        Err(e) if e.code == 409 => {
            let existing = api.get(by_kind(Kind::Job), Some(&ns), &job_name).await?;
            let ours = super::super::owners::controller_ref(&existing)
                .and_then(|r| r.get("uid")?.as_str())
                == Some(str_at(cj, "/metadata/uid"));
            if !ours {
                return Err(e);
            }
            existing
        }
        Err(e) => {
            let msg = format!("Error creating job: {}", e.message);
            event(api, cj, EventType::Warning, "FailedCreate", &msg).await;
            return Err(e);
        }
    };
    let mut refs = active(cj);
    if !finished(&created) {
        refs.push(job_ref(&created));
    }
    set_active(cj, refs);
    set_status(cj, "lastScheduleTime", Some(json!(rfc3339(at))));
    Ok(requeue)
}
