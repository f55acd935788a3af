//! The Job controller (kube-controller-manager's job controller, and its ttl-after-finished controller):
//! a Job keeps `parallelism` pods active (never more than the completions still missing), counts the pods
//! that succeed or fail, replaces failed pods after an exponential back-off, and finishes Complete or
//! Failed (`backoffLimit`, `activeDeadlineSeconds`).
//!
//! Pods carry the finalizer `batch.kubernetes.io/job-tracking` until they are counted, so a pod deleted
//! before it finished is still counted (as failed). Counting follows kube's two steps: a finished pod's
//! uid first goes to `status.uncountedTerminatedPods`, then its finalizer is removed, then it moves to
//! `succeeded`/`failed`. Like kube 1.32, the interim conditions `SuccessCriteriaMet`/`FailureTarget` come
//! first and `Complete`/`Failed` only once no pod is left terminating.
//!
//! Jobs and pods are followed with list-then-watch; a sync is not repeated before the views have caught
//! up with the writes of the previous one (kube's expectations), so a lagging watch never makes it create
//! pods twice or count a pod twice.

mod backoff;
mod pods;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::events::{self, EventType, ObjectRef};
use super::owners::{self, Claim, Key, Selector, Stored, int_at, key_of, str_at};
use super::reflector::{Change, Reflector};
use crate::handlers::{Api, DeleteOpts, Propagation};
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};
use crate::store::{Revision, Store};

pub use backoff::{Settings, parse_backoff, set_pod_failure_backoff};

/// The component of the controller's events.
const COMPONENT: &str = "job-controller";
const MANAGER: &str = "kube-controller-manager";
/// At most this many pods are created or deleted in one sync (kube's `MaxPodCreateDeletePerSync`).
const BURST: usize = 500;
/// Failed syncs are tried again this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// At most this many already-delivered changes are folded into one round before syncing.
const BATCH: usize = 512;

/// The store revisions a Job's views must reach before it is synced again.
#[derive(Debug, Default, Clone, Copy)]
struct Expect {
    pods: Revision,
    jobs: Revision,
}

impl Expect {
    fn pod(&mut self, v: &Value) {
        if let Ok(rev) = str_at(v, "/metadata/resourceVersion").parse::<Revision>() {
            self.pods = self.pods.max(rev);
        }
    }
    fn job(&mut self, v: &Value) {
        if let Ok(rev) = str_at(v, "/metadata/resourceVersion").parse::<Revision>() {
            self.jobs = self.jobs.max(rev);
        }
    }
}

struct Cache {
    job_prefix: String,
    jobs: BTreeMap<Key, Stored>,
    pods: BTreeMap<Key, Stored>,
    dirty: BTreeSet<Key>,
    failed: BTreeSet<Key>,
    /// Pods with the tracking finalizer whose Job may be gone or finished.
    orphans: BTreeSet<Key>,
    expect: HashMap<Key, Expect>,
    /// Jobs to look at again at an instant (back-off, active deadline, TTL).
    timers: BTreeMap<Key, Instant>,
    /// Failures since the last success, per Job uid.
    backoff: HashMap<String, backoff::Record>,
    jobs_listed: bool,
    pods_listed: bool,
}

impl Cache {
    fn new() -> Cache {
        Cache {
            job_prefix: by_kind(Kind::Job).prefix(None),
            jobs: BTreeMap::new(),
            pods: BTreeMap::new(),
            dirty: BTreeSet::new(),
            failed: BTreeSet::new(),
            orphans: BTreeSet::new(),
            expect: HashMap::new(),
            timers: BTreeMap::new(),
            backoff: HashMap::new(),
            jobs_listed: false,
            pods_listed: false,
        }
    }

    fn schedule(&mut self, key: &Key, after: Duration) {
        let at = Instant::now() + after;
        let slot = self.timers.entry(key.clone()).or_insert(at);
        if at < *slot {
            *slot = at;
        }
    }

    fn job_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.jobs = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.job_prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.dirty.extend(self.jobs.keys().cloned());
                let known: BTreeSet<String> =
                    self.jobs.values().map(|j| j.uid().to_string()).collect();
                self.backoff.retain(|uid, _| known.contains(uid));
                self.jobs_listed = true;
                let tracked: Vec<Key> = self
                    .pods
                    .iter()
                    .filter(|(_, p)| pods::has_tracking_finalizer(&p.value))
                    .map(|(k, _)| k.clone())
                    .collect();
                self.orphans.extend(tracked);
            }
            Change::Put(kv) => {
                if let Some(key) = key_of(&self.job_prefix, &kv)
                    && let Some(job) = Stored::parse(&kv)
                {
                    if finished(&job.value) {
                        self.backoff.remove(job.uid());
                    }
                    self.jobs.insert(key.clone(), job);
                    self.dirty.insert(key);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.job_prefix, &kv)
                    && let Some(gone) = self.jobs.remove(&key)
                {
                    self.expect.remove(&key);
                    self.timers.remove(&key);
                    self.backoff.remove(gone.uid());
                    // Its pods keep the finalizer until someone removes it.
                    let tracked: Vec<Key> = self
                        .pods
                        .range((key.0.clone(), String::new())..)
                        .take_while(|((ns, _), _)| *ns == key.0)
                        .filter(|(_, p)| {
                            pods::has_tracking_finalizer(&p.value)
                                && p.controller_uid() == Some(gone.uid())
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    self.orphans.extend(tracked);
                }
            }
        }
    }

    /// Requeue the Job controlling `pod` or, for an orphan, every Job of its namespace selecting it; a
    /// tracked pod without a live Job is queued for finalizer removal.
    fn touch_owners_of(&mut self, key: &Key, pod: &Stored, mark_orphan: bool) {
        let owner = owners::controller_ref(&pod.value)
            .filter(|r| r.get("kind").and_then(Value::as_str) == Some("Job"))
            .and_then(|r| r.get("uid")?.as_str());
        let foreign = owners::controller_ref(&pod.value).is_some() && owner.is_none();
        let mut found = false;
        for ((ns, name), job) in self.jobs.range((key.0.clone(), String::new())..) {
            if *ns != key.0 {
                break;
            }
            let wanted = match owner {
                Some(uid) => uid == job.uid(),
                None if foreign => false,
                None => Selector::parse(job.value.pointer("/spec/selector"))
                    .is_some_and(|s| s.matches(&pod.labels())),
            };
            if wanted {
                found = owner.is_some();
                if finished(&job.value) {
                    found = false;
                }
                self.dirty.insert((ns.clone(), name.clone()));
            }
        }
        if mark_orphan && !found && pods::has_tracking_finalizer(&pod.value) {
            self.orphans.insert(key.clone());
        }
    }

    fn pod_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.pods = items
                    .iter()
                    .filter_map(|kv| Some((key_of(super::PODS_PREFIX, kv)?, Stored::parse(kv)?)))
                    .collect();
                let all: Vec<(Key, Stored)> = self
                    .pods
                    .iter()
                    .map(|(k, p)| (k.clone(), p.clone()))
                    .collect();
                for (key, pod) in all {
                    self.touch_owners_of(&key, &pod, true);
                }
                self.pods_listed = true;
            }
            Change::Put(kv) => {
                let Some(key) = key_of(super::PODS_PREFIX, &kv) else {
                    return;
                };
                self.orphans.remove(&key);
                // The previous owner too (the pod may have been released).
                if let Some(old) = self.pods.remove(&key) {
                    self.touch_owners_of(&key, &old, false);
                }
                if let Some(pod) = Stored::parse(&kv) {
                    self.touch_owners_of(&key, &pod, true);
                    self.pods.insert(key, pod);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(super::PODS_PREFIX, &kv)
                    && let Some(old) = self.pods.remove(&key)
                {
                    self.touch_owners_of(&key, &old, false);
                    self.orphans.remove(&key);
                }
            }
        }
    }
}

/// Run the Job controller until `shutdown` turns true, with the back-off of [`set_pod_failure_backoff`].
pub async fn run(
    store: Arc<dyn Store>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    run_with(store, Settings::current(), shutdown).await
}

/// [`run`] with explicit back-off settings.
pub async fn run_with(
    store: Arc<dyn Store>,
    settings: Settings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache::new();
    let mut jobs = Reflector::new(store.clone(), &cache.job_prefix);
    let mut pods = Reflector::new(store, super::PODS_PREFIX);
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        let next_timer = cache
            .timers
            .values()
            .min()
            .copied()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = jobs.next() => cache.job_change(change),
            change = pods.next() => cache.pod_change(change),
            _ = retry.tick() => {
                let failed = std::mem::take(&mut cache.failed);
                cache.dirty.extend(failed);
            }
            _ = tokio::time::sleep_until(next_timer) => {}
        }
        for _ in 0..BATCH {
            match pods.try_next() {
                Some(change) => cache.pod_change(change),
                None => break,
            }
        }
        for _ in 0..BATCH {
            match jobs.try_next() {
                Some(change) => cache.job_change(change),
                None => break,
            }
        }
        if !(cache.jobs_listed && cache.pods_listed) {
            continue;
        }
        let now = Instant::now();
        let due: Vec<Key> = cache
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            cache.timers.remove(&key);
            cache.dirty.insert(key);
        }
        let (seen_pods, seen_jobs) = (pods.revision(), jobs.revision());
        cache
            .expect
            .retain(|_, e| e.pods > seen_pods || e.jobs > seen_jobs);
        let dirty: Vec<Key> = std::mem::take(&mut cache.dirty).into_iter().collect();
        for key in dirty {
            if cache.expect.contains_key(&key) {
                // Synced again once the views have caught up (the loop re-marks it then).
                cache.dirty.insert(key);
                continue;
            }
            let mut expect = Expect::default();
            let result = sync(&api, settings, &mut cache, &key, &mut expect).await;
            if expect.pods > seen_pods || expect.jobs > seen_jobs {
                cache.expect.insert(key.clone(), expect);
            }
            if let Err(err) = result {
                tracing::warn!(job = %format!("{}/{}", key.0, key.1), error = %err.message,
                    "failed to sync job; will retry");
                cache.failed.insert(key);
            }
        }
        let orphans: Vec<Key> = std::mem::take(&mut cache.orphans).into_iter().collect();
        for key in orphans {
            if let Err(err) = release_orphan(&api, &cache, &key).await {
                tracing::warn!(pod = %format!("{}/{}", key.0, key.1), error = %err.message,
                    "failed to remove the job tracking finalizer; will retry");
                cache.orphans.insert(key);
            }
        }
    }
    Ok(())
}

fn condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    job.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn condition_true(job: &Value, type_: &str) -> bool {
    condition(job, type_).and_then(|c| c.get("status")?.as_str()) == Some("True")
}

/// Complete or Failed (kube's `IsJobFinished`).
pub fn finished(job: &Value) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

fn millis(time: &str) -> Option<i64> {
    time.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn until(target_ms: i64) -> Duration {
    Duration::from_millis((target_ms - now_ms()).max(0) as u64)
}

/// A condition as kube's job controller writes it.
fn new_condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    let now = super::object::now_rfc3339();
    let mut c =
        json!({"type": type_, "status": status, "lastProbeTime": now, "lastTransitionTime": now});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

fn conditions_mut(job: &mut Value) -> Option<&mut Vec<Value>> {
    let status = super::object::child(job, "status")?;
    let conditions = status
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !conditions.is_array() {
        *conditions = Value::Array(Vec::new());
    }
    conditions.as_array_mut()
}

/// kube's `ensureJobConditionStatus`: set a condition (a False one is never added); whether it changed.
fn ensure_condition(
    job: &mut Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> bool {
    let Some(conditions) = conditions_mut(job) else {
        return false;
    };
    let same = |c: &Value, k: &str, v: &str| c.get(k).and_then(Value::as_str).unwrap_or("") == v;
    match conditions
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
    {
        Some(c) => {
            if same(c, "status", status) && same(c, "reason", reason) && same(c, "message", message)
            {
                return false;
            }
            *c = new_condition(type_, status, reason, message);
            true
        }
        None if status == "False" => false,
        None => {
            conditions.push(new_condition(type_, status, reason, message));
            true
        }
    }
}

fn event_ref(job: &Value) -> ObjectRef {
    ObjectRef {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        namespace: str_at(job, "/metadata/namespace").into(),
        name: str_at(job, "/metadata/name").into(),
        uid: str_at(job, "/metadata/uid").into(),
        resource_version: str_at(job, "/metadata/resourceVersion").into(),
    }
}

async fn event(api: &Api, job: &Value, type_: EventType, reason: &str, message: &str) {
    let object = event_ref(job);
    if let Err(err) = events::record_about(
        api.store.as_ref(),
        COMPONENT,
        &object,
        type_,
        reason,
        message,
    )
    .await
    {
        tracing::warn!(job = %object.name, error = %err, "failed to record event");
    }
}

/// Remove the tracking finalizer from `pod` (re-reading it on a conflict). `Ok(true)` once the pod has
/// none (or is gone).
async fn remove_finalizer(api: &Api, pod: &Stored, expect: &mut Expect) -> ApiResult<bool> {
    let def = by_kind(Kind::Pod);
    let ns = str_at(&pod.value, "/metadata/namespace");
    let mut current = pod.value.clone();
    for _ in 0..3 {
        if !pods::has_tracking_finalizer(&current) {
            return Ok(true);
        }
        let body = pods::without_tracking_finalizer(&current);
        let opts = super::object::write_opts(MANAGER);
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
async fn release_orphan(api: &Api, cache: &Cache, key: &Key) -> ApiResult<()> {
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
async fn delete_pods(
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

/// Create `count` pods in slow-start batches (1, 2, 4, …), stopping after a batch with an error. Returns
/// how many were created.
async fn create_pods(
    api: &Api,
    job: &Value,
    count: usize,
    expect: &mut Expect,
) -> (usize, Option<ApiError>) {
    let def = by_kind(Kind::Pod);
    let ns = str_at(job, "/metadata/namespace");
    let opts = super::object::write_opts(MANAGER);
    let mut created = 0;
    let mut batch = 1usize;
    while created < count {
        let size = batch.min(count - created);
        let results = join_all(
            (0..size).map(|_| api.create(def, Some(ns), pods::from_template(job), &[], &opts)),
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
async fn write_status(api: &Api, job: &mut Value, expect: &mut Expect) -> ApiResult<()> {
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
            &super::object::write_opts(MANAGER),
        )
        .await?;
    expect.job(&written);
    *job = written;
    Ok(())
}

/// How a finished (or finishing) Job ends.
#[derive(Debug, Clone)]
struct Finish {
    type_: &'static str,
    reason: String,
    message: String,
}

impl Finish {
    fn failure(reason: &str, message: &str) -> Finish {
        Finish {
            type_: "FailureTarget",
            reason: reason.into(),
            message: message.into(),
        }
    }
    fn is_failure(&self) -> bool {
        matches!(self.type_, "FailureTarget" | "Failed")
    }
}

fn uid_list(job: &Value, list: &str) -> Vec<String> {
    job.pointer(&format!("/status/uncountedTerminatedPods/{list}"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| Some(v.as_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn set_status(job: &mut Value, field: &str, v: Value) {
    if let Some(status) = super::object::child(job, "status") {
        if v.is_null() || v == json!(0) && matches!(field, "active" | "succeeded" | "failed") {
            // `omitempty` counters.
            status.remove(field);
        } else {
            status.insert(field.into(), v);
        }
    }
}

/// kube's `cleanUncountedPodsWithoutFinalizers`: uids whose pod no longer has the finalizer move from
/// `uncountedTerminatedPods` to the counters. Whether anything moved.
fn clean_uncounted(job: &mut Value, with_finalizer: &BTreeSet<String>) -> bool {
    let mut changed = false;
    for (list, counter) in [("succeeded", "succeeded"), ("failed", "failed")] {
        let uids = uid_list(job, list);
        let keep: Vec<String> = uids
            .iter()
            .filter(|u| with_finalizer.contains(*u))
            .cloned()
            .collect();
        if keep.len() != uids.len() {
            changed = true;
            let n = int_at(job, &format!("/status/{counter}")).unwrap_or(0)
                + (uids.len() - keep.len()) as i64;
            set_status(job, counter, json!(n));
            set_uncounted(job, list, keep);
        }
    }
    changed
}

fn set_uncounted(job: &mut Value, list: &str, uids: Vec<String>) {
    if let Some(status) = super::object::child(job, "status") {
        let u = status
            .entry("uncountedTerminatedPods")
            .or_insert_with(|| json!({}));
        if !u.is_object() {
            *u = json!({});
        }
        if let Some(m) = u.as_object_mut() {
            if uids.is_empty() {
                m.remove(list);
            } else {
                m.insert(list.into(), json!(uids));
            }
        }
    }
}

/// Sync one Job.
async fn sync(
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
    let mut job = stored.value.clone();
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
    if !matches!(mode, "" | "NonIndexed") {
        tracing::warn!(job = %format!("{}/{}", key.0, key.1), mode, "completion mode not supported; not syncing");
        return Ok(());
    }
    let Some(selector) = Selector::parse(job.pointer("/spec/selector")) else {
        tracing::warn!(job = %format!("{}/{}", key.0, key.1), "invalid selector; not syncing");
        return Ok(());
    };
    let deleting = stored.deleting();
    // Claim the pods of the namespace (adopted ones get the tracking finalizer).
    let candidates: Vec<Stored> = cache
        .pods
        .range((ns.clone(), String::new())..)
        .take_while(|((pod_ns, _), _)| pod_ns == ns)
        .map(|(_, p)| p.clone())
        .collect();
    let pod_def = by_kind(Kind::Pod);
    let opts = super::object::write_opts(MANAGER);
    let mut owned: Vec<Stored> = Vec::new();
    for pod in candidates {
        let next = match owners::claim(&uid, deleting, &selector, &pod) {
            Claim::Owned => {
                owned.push(pod);
                continue;
            }
            Claim::Ignore => continue,
            Claim::Adopt => {
                owners::with_controller(&pod.value, &job).map(|p| pods::with_tracking_finalizer(&p))
            }
            Claim::Release => Some(pods::without_tracking_finalizer(&owners::without_owner(
                &pod.value, &uid,
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
                        value: written,
                        revision: pod.revision,
                    });
                }
            }
            // Gone or changed meanwhile: its watch event brings this Job back.
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }

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
    let new_succeeded: Vec<&Stored> = tracked
        .iter()
        .filter(|p| pods::phase(p) == "Succeeded" && !uncounted_s.iter().any(|u| u == p.uid()))
        .copied()
        .collect();
    let new_failed: Vec<&Stored> = tracked
        .iter()
        .filter(|p| {
            pods::failed(p, replace_failed_only) && !uncounted_f.iter().any(|u| u == p.uid())
        })
        .copied()
        .collect();
    let count = |field: &str| int_at(&job, &format!("/status/{field}")).unwrap_or(0);
    let succeeded = count("succeeded") + (new_succeeded.len() + uncounted_s.len()) as i64;
    let failed = count("failed") + (new_failed.len() + uncounted_f.len()) as i64;

    if job.pointer("/status/startTime").is_none_or(Value::is_null) && !suspended {
        set_status(&mut job, "startTime", json!(super::object::now_rfc3339()));
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
                if active > want {
                    let victims = pods::to_remove(&active_pods, (active - want).min(BURST));
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
                            let (created, err) =
                                create_pods(api, &job, missing.min(BURST), expect).await;
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
                set_status(&mut job, "startTime", json!(super::object::now_rfc3339()));
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
            if !uncounted_s.contains(&uid) {
                uncounted_s.push(uid);
                needs_flush = true;
            }
        } else if (considered_failed || finish.as_ref().is_some_and(Finish::is_failure))
            && !uncounted_f.contains(&uid)
        {
            uncounted_f.push(uid);
            needs_flush = true;
        }
    }
    set_uncounted(&mut job, "succeeded", uncounted_s);
    set_uncounted(&mut job, "failed", uncounted_f);
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

/// kube's ttl-after-finished controller: a finished Job with `ttlSecondsAfterFinished` is deleted
/// (propagation Background, so the garbage collector removes its pods) once the TTL has passed since it
/// finished.
async fn expire(api: &Api, cache: &mut Cache, key: &Key, job: &Value) -> ApiResult<()> {
    let Some(ttl) = job
        .pointer("/spec/ttlSecondsAfterFinished")
        .and_then(Value::as_i64)
    else {
        return Ok(());
    };
    if job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Ok(());
    }
    let finished_ms = millis(str_at(job, "/status/completionTime")).or_else(|| {
        ["Complete", "Failed"]
            .iter()
            .filter(|t| condition_true(job, t))
            .find_map(|t| millis(str_at(condition(job, t)?, "/lastTransitionTime")))
    });
    let Some(finished_ms) = finished_ms else {
        return Ok(());
    };
    let expire_ms = finished_ms.saturating_add(ttl.max(0).saturating_mul(1000));
    if now_ms() < expire_ms {
        cache.schedule(key, until(expire_ms));
        return Ok(());
    }
    let opts = DeleteOpts {
        uid: Some(str_at(job, "/metadata/uid").to_string()),
        propagation: Some(Propagation::Background),
        ..DeleteOpts::default()
    };
    match api
        .delete(by_kind(Kind::Job), Some(&key.0), &key.1, &opts, false)
        .await
    {
        Ok(_) => {
            tracing::info!(job = %format!("{}/{}", key.0, key.1), "deleted finished job after its TTL");
            Ok(())
        }
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
