//! What the Job controller writes through the REST API: events, the tracking finalizer's removal (also
//! from orphans), pod deletions and creations, and the Job's status.

use futures::future::join_all;
use serde_json::Value;

use super::super::events::{self, EventType, ObjectRef};
use super::super::object;
use super::super::owners::{self, Key, Stored, str_at};
use super::cache::{Cache, Expect};
use super::status::finished;
use super::{COMPONENT, MANAGER, pods};
use crate::handlers::{Api, DeleteOpts};
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};

pub(super) async fn event(api: &Api, job: &Value, type_: EventType, reason: &str, message: &str) {
    let object = ObjectRef::of("batch/v1", "Job", job);
    events::record_for(
        api.store.as_ref(),
        COMPONENT,
        &object,
        type_,
        reason,
        message,
    )
    .await;
}

/// Remove the tracking finalizer from `pod` (re-reading it on a conflict). `Ok(true)` once the pod has
/// none (or is gone).
pub(super) async fn remove_finalizer(
    api: &Api,
    pod: &Stored,
    expect: &mut Expect,
) -> ApiResult<bool> {
    let def = by_kind(Kind::Pod);
    let ns = str_at(&pod.value, "/metadata/namespace");
    let mut current = Value::clone(&pod.value);
    for _ in 0..3 {
        if !pods::has_tracking_finalizer(&current) {
            return Ok(true);
        }
        let body = pods::without_tracking_finalizer(&current);
        let opts = object::write_opts(MANAGER);
        match api
            .update(def, Some(ns), pod.name(), None, body, &[], &opts)
            .await
        {
            Ok((written, _, _)) => {
                expect.pod(&written);
                return Ok(true);
            }
            Err(e) if e.code == 404 => return Ok(true),
            Err(e) if e.code == 409 => match api.get(def, Some(ns), pod.name()).await {
                Ok(fresh) if str_at(&fresh, "/metadata/uid") == pod.uid() => current = fresh,
                Ok(_) => return Ok(true),
                Err(e) if e.code == 404 => return Ok(true),
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::modified("", "pods", pod.name()))
}

/// A tracked pod whose Job is gone, finished or someone else: drop the finalizer (kube's orphan queue).
pub(super) async fn release_orphan(api: &Api, cache: &Cache, key: &Key) -> ApiResult<()> {
    let Some(pod) = cache.pods.get(key) else {
        return Ok(());
    };
    if !pods::has_tracking_finalizer(&pod.value) {
        return Ok(());
    }
    if let Some(r) = owners::controller_ref(&pod.value) {
        let kind = r.get("kind").and_then(Value::as_str);
        let api_version = r.get("apiVersion").and_then(Value::as_str);
        if kind != Some("Job") || api_version != Some("batch/v1") {
            // Another kind of controller owns the finalizer now.
            return Ok(());
        }
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        let uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
        // The cache may lag: ask the store whether the Job is really gone or finished.
        match api.get(by_kind(Kind::Job), Some(&key.0), name).await {
            Ok(job) if str_at(&job, "/metadata/uid") == uid && !finished(&job) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    remove_finalizer(api, pod, &mut Expect::default())
        .await
        .map(|_| ())
}

/// Delete `victims` through the REST delete (graceful), each guarded by its uid; with `release`, drop the
/// tracking finalizer first (the pods are then not counted). Returns the pods deleted and how many of them
/// were ready, and the first error.
pub(super) async fn delete_pods(
    api: &Api,
    job: &Value,
    victims: &[Stored],
    release: bool,
    expect: &mut Expect,
) -> (usize, usize, Option<ApiError>) {
    let def = by_kind(Kind::Pod);
    let ns = str_at(job, "/metadata/namespace");
    let mut error = None;
    let mut deleted = 0;
    let mut deleted_ready = 0;
    for pod in victims {
        if release && let Err(e) = remove_finalizer(api, pod, expect).await {
            error.get_or_insert(e);
            continue;
        }
        let opts = DeleteOpts {
            uid: Some(pod.uid().to_string()),
            ..DeleteOpts::default()
        };
        match api.delete(def, Some(ns), pod.name(), &opts, false).await {
            Ok(gone) => {
                expect.pod(&gone);
                event(
                    api,
                    job,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {}", pod.name()),
                )
                .await;
            }
            Err(e) if e.code == 404 => {}
            Err(e) => {
                event(
                    api,
                    job,
                    EventType::Warning,
                    "FailedDelete",
                    &format!("Error deleting: {}", e.message),
                )
                .await;
                error.get_or_insert(e);
                continue;
            }
        }
        deleted += 1;
        if pods::ready(pod) {
            deleted_ready += 1;
        }
    }
    (deleted, deleted_ready, error)
}

/// Create the pods `bodies` in slow-start batches (1, 2, 4, …), stopping after a batch with an error.
/// Returns how many were created.
pub(super) async fn create_pods(
    api: &Api,
    job: &Value,
    bodies: Vec<Value>,
    expect: &mut Expect,
) -> (usize, Option<ApiError>) {
    let def = by_kind(Kind::Pod);
    let ns = str_at(job, "/metadata/namespace");
    let opts = object::write_opts(MANAGER);
    let count = bodies.len();
    let mut bodies = bodies.into_iter();
    let mut created = 0;
    let mut batch = 1usize;
    while created < count {
        let size = batch.min(count - created);
        let results = join_all(
            bodies
                .by_ref()
                .take(size)
                .map(|body| api.create(def, Some(ns), body, &[], &opts)),
        )
        .await;
        let mut error = None;
        for result in results {
            match result {
                Ok((pod, _)) => {
                    created += 1;
                    expect.pod(&pod);
                    event(
                        api,
                        job,
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("Created pod: {}", str_at(&pod, "/metadata/name")),
                    )
                    .await;
                }
                Err(e) => {
                    event(
                        api,
                        job,
                        EventType::Warning,
                        "FailedCreate",
                        &format!("Error creating: {}", e.message),
                    )
                    .await;
                    error.get_or_insert(e);
                }
            }
        }
        if error.is_some() {
            return (created, error);
        }
        batch = batch.saturating_mul(2);
    }
    (created, None)
}

/// Write the status through `jobs/status`; `job` becomes the written object.
pub(super) async fn write_status(api: &Api, job: &mut Value, expect: &mut Expect) -> ApiResult<()> {
    let ns = str_at(job, "/metadata/namespace").to_string();
    let name = str_at(job, "/metadata/name").to_string();
    let (written, _, _) = api
        .update(
            by_kind(Kind::Job),
            Some(&ns),
            &name,
            Some("status"),
            job.clone(),
            &[],
            &object::write_opts(MANAGER),
        )
        .await?;
    expect.job(&written);
    *job = written;
    Ok(())
}
