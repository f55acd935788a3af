//! One sync of a Job: claim its pods, count the finished ones, decide whether it ends, keep `parallelism`
//! pods active, and write the status (kube's `syncJob` with `trackJobStatusAndRemoveFinalizers`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::super::events::EventType;
use super::super::object;
use super::super::owners::{self, Claim, Key, Selector, Stored, int_at, str_at};
use super::cache::{Cache, Expect};
use super::failure_policy::{fail_job_message, match_policy};
use super::indexed::Indexed;
use super::indexes;
use super::status::{
    Finish, clean_uncounted, condition, condition_true, ensure_condition, finished, millis, now_ms,
    set_status, set_uncounted, uid_list, until,
};
use super::ttl::expire;
use super::writes::{create_pods, delete_pods, event, remove_finalizer, write_status};
use super::{BURST, MANAGER, Settings, pods};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};

/// Sync one Job.
pub(super) async fn sync(
    api: &Api,
    settings: Settings,
    cache: &mut Cache,
    key: &Key,
    expect: &mut Expect,
) -> ApiResult<()> {
    let Some(stored) = cache.jobs.get(key).cloned() else {
        return Ok(());
    };
    let (ns, _) = key;
    let uid = stored.uid().to_string();
    let mut job = Value::clone(&stored.value);
    let owned_now = |cache: &Cache| -> Vec<Stored> {
        cache
            .pods
            .range((ns.clone(), String::new())..)
            .take_while(|((pod_ns, _), _)| pod_ns == ns)
            .map(|(_, p)| p.clone())
            .filter(|p| p.controller_uid() == Some(uid.as_str()))
            .collect()
    };
    if finished(&job) {
        cache.backoff.remove(&uid);
        // A backup for pods counted before the Job finished (kube's `cleanupPodFinalizers`).
        for pod in owned_now(cache) {
            if pods::has_tracking_finalizer(&pod.value) {
                remove_finalizer(api, &pod, expect).await?;
            }
        }
        return expire(api, cache, key, &job).await;
    }
    let mode = str_at(&job, "/spec/completionMode");
    if !matches!(mode, "" | "NonIndexed" | "Indexed") {
        tracing::warn!(job = %format!("{}/{}", key.0, key.1), mode, "completion mode not supported; not syncing");
        return Ok(());
    }
    let Some(selector) = Selector::parse(job.pointer("/spec/selector")) else {
        tracing::warn!(job = %format!("{}/{}", key.0, key.1), "invalid selector; not syncing");
        return Ok(());
    };
    let deleting = stored.deleting();
    // Claim the pods of the namespace (adopted ones get the tracking finalizer).
    let owned = claim(api, cache, key, &stored, &selector, expect).await?;

    let spec = job.get("spec").cloned().unwrap_or(json!({}));
    let suspended = spec.get("suspend").and_then(Value::as_bool) == Some(true);
    let replace_failed_only = str_at(&spec, "/podReplacementPolicy") == "Failed"
        || spec.get("podFailurePolicy").is_some_and(|p| !p.is_null());
    let completions = spec.get("completions").and_then(Value::as_i64);
    let parallelism = spec
        .get("parallelism")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    let backoff_limit = spec
        .get("backoffLimit")
        .and_then(Value::as_i64)
        .unwrap_or(6);

    let active_pods: Vec<Stored> = owned.iter().filter(|p| pods::active(p)).cloned().collect();
    let mut active = active_pods.len();
    let mut ready = active_pods.iter().filter(|p| pods::ready(p)).count();
    let mut terminating = owned.iter().filter(|p| pods::terminating(p)).count();
    let uncounted_s = uid_list(&job, "succeeded");
    let uncounted_f = uid_list(&job, "failed");
    let tracked: Vec<&Stored> = owned
        .iter()
        .filter(|p| pods::has_tracking_finalizer(&p.value))
        .collect();
    let indexed = Indexed::new(&job, &tracked, replace_failed_only);
    // A failure counts unless a pod failure policy rule ignores it or its index is not valid.
    let counts_failure = |p: &Stored| {
        indexed.as_ref().is_none_or(|ix| ix.valid(&p.value))
            && match_policy(&stored.value, &p.value).is_none_or(|a| a.counts())
    };
    let new_succeeded: Vec<&Stored> = tracked
        .iter()
        .filter(|p| pods::phase(p) == "Succeeded" && !uncounted_s.iter().any(|u| u == p.uid()))
        .filter(|p| {
            indexed
                .as_ref()
                .is_none_or(|ix| ix.is_new_success(&p.value))
        })
        .copied()
        .collect();
    let new_failed: Vec<&Stored> = tracked
        .iter()
        .filter(|p| {
            pods::failed(p, replace_failed_only) && !uncounted_f.iter().any(|u| u == p.uid())
        })
        .filter(|p| counts_failure(p))
        .copied()
        .collect();
    let count = |field: &str| int_at(&job, &format!("/status/{field}")).unwrap_or(0);
    let succeeded = match &indexed {
        // One success per index.
        Some(ix) => ix.succeeded.len() as i64,
        None => count("succeeded") + (new_succeeded.len() + uncounted_s.len()) as i64,
    };
    let failed = count("failed") + (new_failed.len() + uncounted_f.len()) as i64;

    if job.pointer("/status/startTime").is_none_or(Value::is_null) && !suspended {
        set_status(&mut job, "startTime", json!(object::now_rfc3339()));
    }
    let finish_times = |ps: &[&Stored]| ps.iter().map(|p| pods::finished_at(p)).collect::<Vec<_>>();
    let record = cache.backoff.get(&uid).copied().unwrap_or_default();
    let new_record = record.next(&finish_times(&new_succeeded), &finish_times(&new_failed));

    // How the Job ends, if it does now.
    let mut finish: Option<Finish> = None;
    if let Some(c) =
        condition(&job, "SuccessCriteriaMet").filter(|_| condition_true(&job, "SuccessCriteriaMet"))
    {
        finish = Some(Finish {
            type_: "SuccessCriteriaMet",
            reason: str_at(c, "/reason").into(),
            message: str_at(c, "/message").into(),
        });
    } else if let Some(c) =
        condition(&job, "FailureTarget").filter(|_| condition_true(&job, "FailureTarget"))
    {
        finish = Some(Finish {
            type_: "Failed",
            reason: str_at(c, "/reason").into(),
            message: str_at(c, "/message").into(),
        });
    } else if let Some(message) = fail_job_message(&job, &owned, replace_failed_only) {
        finish = Some(Finish::failure("PodFailurePolicy", &message));
    } else {
        let on_failure = str_at(&spec, "/template/spec/restartPolicy") == "OnFailure";
        let restarts = if on_failure {
            pods::restarts(&owned)
        } else {
            0
        };
        let past_restarts = on_failure
            && if backoff_limit == 0 {
                restarts > 0
            } else {
                restarts >= backoff_limit
            };
        let start_ms = millis(str_at(&job, "/status/startTime"));
        let deadline_ms = spec
            .get("activeDeadlineSeconds")
            .and_then(Value::as_i64)
            .zip(start_ms)
            .filter(|_| !suspended)
            .map(|(ads, start)| start.saturating_add(ads.saturating_mul(1000)));
        if failed > backoff_limit || past_restarts {
            finish = Some(Finish::failure(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ));
        } else if deadline_ms.is_some_and(|d| now_ms() >= d) {
            finish = Some(Finish::failure(
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ));
        } else if let Some(d) = deadline_ms {
            cache.schedule(key, until(d));
        }
        if finish.is_none()
            && let Some(ix) = &indexed
        {
            finish = ix.finish(&job).or_else(|| ix.success_policy(&job));
        }
    }

    let mut manage_error: Option<ApiError> = None;
    if finish.is_some() {
        let (deleted, deleted_ready, err) =
            delete_pods(api, &job, &active_pods, false, expect).await;
        if deleted != active_pods.len() {
            // Not finished while some pod could not be deleted.
            finish = None;
        }
        active -= deleted;
        terminating += deleted;
        ready -= deleted_ready;
        manage_error = err;
    } else {
        let mut managed = false;
        if !deleting {
            managed = true;
            if suspended {
                let (removed, removed_ready, err) =
                    delete_pods(api, &job, &active_pods, true, expect).await;
                active -= removed;
                terminating += removed;
                ready -= removed_ready;
                manage_error = err;
            } else {
                let want = match completions {
                    None if succeeded > 0 => active as i64,
                    None => parallelism,
                    Some(c) => (c - succeeded).min(parallelism).max(0),
                } as usize;
                // Of an Indexed Job: pods of indexes done or taken twice go first.
                let (mut victims, kept) = match &indexed {
                    Some(ix) => indexes::duplicates(&active_pods, &ix.done(), ix.completions),
                    None => (Vec::new(), active_pods.clone()),
                };
                if kept.len() > want {
                    victims.extend(pods::to_remove(&kept, kept.len() - want));
                }
                victims.truncate(BURST);
                if !victims.is_empty() {
                    let (removed, removed_ready, err) =
                        delete_pods(api, &job, &victims, true, expect).await;
                    active -= removed;
                    terminating += removed;
                    ready -= removed_ready;
                    manage_error = err;
                } else {
                    let waiting = if replace_failed_only { terminating } else { 0 };
                    let missing = want.saturating_sub(waiting + active);
                    if missing > 0 {
                        let remaining = new_record.remaining(settings, now_ms());
                        if remaining > Duration::ZERO {
                            cache.schedule(key, remaining);
                        } else {
                            let n = missing.min(BURST);
                            let bodies = match &indexed {
                                Some(ix) => {
                                    let busy: Vec<&Stored> = owned
                                        .iter()
                                        .filter(|p| {
                                            pods::active(p)
                                                || replace_failed_only && pods::terminating(p)
                                        })
                                        .collect();
                                    ix.new_pods(&job, &busy, &owned, n)
                                }
                                None => (0..n).map(|_| pods::from_template(&job)).collect(),
                            };
                            let (created, err) = create_pods(api, &job, bodies, expect).await;
                            active += created;
                            manage_error = err;
                        }
                    }
                }
            }
        }
        let complete = match completions {
            None => succeeded > 0 && active == 0,
            Some(c) => succeeded >= c && active == 0,
        };
        if complete {
            finish = Some(Finish {
                type_: "SuccessCriteriaMet",
                reason: String::new(),
                message: String::new(),
            });
        } else if managed {
            if suspended {
                if ensure_condition(
                    &mut job,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                ) {
                    event(api, &job, EventType::Normal, "Suspended", "Job suspended").await;
                }
            } else if ensure_condition(&mut job, "Suspended", "False", "JobResumed", "Job resumed")
            {
                event(api, &job, EventType::Normal, "Resumed", "Job resumed").await;
                // The active deadline counts from the resumption.
                set_status(&mut job, "startTime", json!(object::now_rfc3339()));
            }
        }
    }
    set_status(&mut job, "active", json!(active));
    set_status(&mut job, "ready", json!(ready));
    set_status(&mut job, "terminating", json!(terminating));

    // Count finished pods: uncounted first, then the finalizer goes, then the counters.
    let mut with_finalizer: BTreeSet<String> =
        tracked.iter().map(|p| p.uid().to_string()).collect();
    let mut needs_flush = clean_uncounted(&mut job, &with_finalizer);
    let mut uncounted_s = uid_list(&job, "succeeded");
    let mut uncounted_f = uid_list(&job, "failed");
    let mut to_release: Vec<Stored> = Vec::new();
    let mut new_indexes = std::collections::BTreeSet::new();
    for pod in &tracked {
        let considered_failed = pods::failed(pod, replace_failed_only);
        let removable =
            deleting || finish.is_some() || pods::phase(pod) == "Succeeded" || considered_failed;
        if !removable {
            continue;
        }
        to_release.push((*pod).clone());
        let uid = pod.uid().to_string();
        if pods::phase(pod) == "Succeeded" && !uncounted_f.contains(&uid) {
            // Of an Indexed Job, only the first success of an index counts.
            let fresh = indexed.as_ref().is_none_or(|ix| {
                ix.is_new_success(&pod.value)
                    && new_indexes.insert(indexes::index_of(&pod.value, ix.completions))
            });
            if fresh && !uncounted_s.contains(&uid) {
                uncounted_s.push(uid);
                needs_flush = true;
            }
        } else if (considered_failed || finish.as_ref().is_some_and(Finish::is_failure))
            && !uncounted_f.contains(&uid)
            && counts_failure(pod)
        {
            uncounted_f.push(uid);
            needs_flush = true;
        }
    }
    set_uncounted(&mut job, "succeeded", uncounted_s);
    set_uncounted(&mut job, "failed", uncounted_f);
    if let Some(ix) = &indexed {
        ix.write(&mut job);
    }
    if let Some(f) = finish.as_mut() {
        if f.type_ == "FailureTarget" {
            ensure_condition(&mut job, "FailureTarget", "True", &f.reason, &f.message);
            needs_flush = true;
            f.type_ = "Failed";
        } else if f.type_ == "SuccessCriteriaMet" {
            if !condition_true(&job, "SuccessCriteriaMet") {
                ensure_condition(
                    &mut job,
                    "SuccessCriteriaMet",
                    "True",
                    &f.reason,
                    &f.message,
                );
                needs_flush = true;
            }
            f.type_ = "Complete";
        }
    }
    if needs_flush {
        write_status(api, &mut job, expect).await?;
        cache.backoff.insert(uid.clone(), new_record);
    }
    let mut release_error = None;
    for pod in &to_release {
        match remove_finalizer(api, pod, expect).await {
            Ok(_) => {
                with_finalizer.remove(pod.uid());
            }
            Err(e) => {
                release_error.get_or_insert(e);
            }
        }
    }
    clean_uncounted(&mut job, &with_finalizer);
    if let Some(e) = release_error {
        if job.get("status") != stored.value.get("status") {
            write_status(api, &mut job, expect).await?;
        }
        return Err(e);
    }
    // Finished once every pod is counted and none is terminating.
    let mut ended = None;
    if let Some(f) = &finish {
        let uncounted =
            !uid_list(&job, "succeeded").is_empty() || !uid_list(&job, "failed").is_empty();
        if !uncounted && terminating == 0 {
            ensure_condition(&mut job, f.type_, "True", &f.reason, &f.message);
            if f.type_ == "Complete"
                && let Some(t) = condition(&job, "Complete")
                    .and_then(|c| c.get("lastTransitionTime"))
                    .cloned()
            {
                set_status(&mut job, "completionTime", t);
            }
            ended = Some(f.clone());
        }
    }
    if job.get("status") != stored.value.get("status") || ended.is_some() {
        write_status(api, &mut job, expect).await?;
    }
    if let Some(f) = ended {
        cache.backoff.remove(&uid);
        if f.type_ == "Complete" {
            if completions.is_some_and(|c| int_at(&job, "/status/succeeded").unwrap_or(0) > c) {
                event(
                    api,
                    &job,
                    EventType::Warning,
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                )
                .await;
            }
            event(api, &job, EventType::Normal, "Completed", "Job completed").await;
        } else {
            event(api, &job, EventType::Warning, &f.reason, &f.message).await;
        }
        // The TTL starts now.
        if let Some(ttl) = job
            .pointer("/spec/ttlSecondsAfterFinished")
            .and_then(Value::as_i64)
        {
            cache.schedule(key, Duration::from_secs(ttl.max(0) as u64));
        }
    }
    match manage_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Claim the Job's pods among its namespace's: adopted ones get the tracking finalizer, released ones lose
/// it.
async fn claim(
    api: &Api,
    cache: &Cache,
    key: &Key,
    stored: &Stored,
    selector: &Selector,
    expect: &mut Expect,
) -> ApiResult<Vec<Stored>> {
    let (ns, _) = key;
    let uid = stored.uid();
    let job = &stored.value;
    let deleting = stored.deleting();
    let candidates: Vec<Stored> = cache
        .pods
        .range((ns.clone(), String::new())..)
        .take_while(|((pod_ns, _), _)| pod_ns == ns)
        .map(|(_, p)| p.clone())
        .collect();
    let pod_def = by_kind(Kind::Pod);
    let opts = object::write_opts(MANAGER);
    let mut owned: Vec<Stored> = Vec::new();
    for pod in candidates {
        let next = match owners::claim(uid, deleting, selector, &pod) {
            Claim::Owned => {
                owned.push(pod);
                continue;
            }
            Claim::Ignore => continue,
            Claim::Adopt => {
                owners::with_controller(&pod.value, job).map(|p| pods::with_tracking_finalizer(&p))
            }
            Claim::Release => Some(pods::without_tracking_finalizer(&owners::without_owner(
                &pod.value, uid,
            ))),
        };
        let Some(next) = next else { continue };
        let adopt = owners::controller_ref(&next).is_some();
        match api
            .update(pod_def, Some(ns), pod.name(), None, next, &[], &opts)
            .await
        {
            Ok((written, _, _)) => {
                expect.pod(&written);
                if adopt {
                    owned.push(Stored {
                        value: std::sync::Arc::new(written),
                        revision: pod.revision,
                    });
                }
            }
            // Gone or changed meanwhile: its watch event brings this Job back.
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(owned)
}
