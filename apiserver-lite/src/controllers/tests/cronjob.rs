//! The CronJob controller alone against a real store, on a clock the tests move (no waiting for real
//! minutes). There is no Job controller here: the tests finish Jobs by writing their status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{Value, json};

use super::opts;
use crate::controllers::bootstrap;
use crate::controllers::cronjob::{Clock, run_with};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::store::redb::tests::TempDir;

struct CronJobs {
    api: Api,
    clock: Clock,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: TempDir,
}

fn cronjob(name: &str, spec: Value) -> Value {
    let mut cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
        "spec": {"schedule": "*/1 * * * *", "jobTemplate": {
            "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox:1.35"}]}}}}}});
    if let (Some(s), Some(extra)) = (cj["spec"].as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    cj
}

/// The start time `n` minutes after the first whole minute after `created`.
fn minute(created: Timestamp, n: i64) -> Timestamp {
    Timestamp::from_second((created.as_second() / 60 + 1 + n) * 60).expect("time")
}

impl CronJobs {
    async fn start() -> CronJobs {
        let dir = TempDir::new();
        let store: Arc<dyn Store> =
            Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
        bootstrap(store.as_ref()).await.expect("bootstrap");
        let clock = Clock::manual(Timestamp::now());
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run_with(store.clone(), clock.clone(), rx));
        CronJobs {
            api: Api::new(store),
            clock,
            shutdown,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("controller stops")
            .expect("controller task")
            .expect("controller ran cleanly");
    }

    /// Create the CronJob; its creation time.
    async fn create(&self, cj: Value) -> Timestamp {
        let (created, _) = self
            .api
            .create(by_kind(Kind::CronJob), Some("default"), cj, &[], &opts())
            .await
            .expect("create cronjob");
        let at: Timestamp = created["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("creationTimestamp");
        self.clock.set(at);
        at
    }

    async fn cronjob(&self, name: &str) -> Value {
        self.api
            .get(by_kind(Kind::CronJob), Some("default"), name)
            .await
            .expect("get cronjob")
    }

    async fn update(&self, cj: Value) {
        let name = cj["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.api
            .update(
                by_kind(Kind::CronJob),
                Some("default"),
                &name,
                None,
                cj,
                &[],
                &opts(),
            )
            .await
            .expect("update cronjob");
    }

    /// Names of the Jobs not being deleted, sorted.
    async fn jobs(&self) -> Vec<String> {
        let (jobs, _) = self
            .api
            .list(
                by_kind(Kind::Job),
                Some("default"),
                &Default::default(),
                &Default::default(),
            )
            .await
            .expect("list jobs");
        let mut names: Vec<String> = jobs
            .iter()
            .filter(|j| j["metadata"]["deletionTimestamp"].is_null())
            .filter_map(|j| j["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    async fn job(&self, name: &str) -> Value {
        self.api
            .get(by_kind(Kind::Job), Some("default"), name)
            .await
            .expect("get job")
    }

    /// Poll until `check` holds.
    async fn wait<T>(&self, what: &str, mut check: impl AsyncFnMut(&CronJobs) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = check(self).await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_jobs(&self, want: &[String]) {
        self.wait(&format!("jobs {want:?}"), async |t| {
            (t.jobs().await == want).then_some(())
        })
        .await;
    }

    /// The messages of the events with `reason`.
    async fn events(&self, reason: &str) -> Vec<String> {
        let (events, _) = self
            .api
            .list(
                by_kind(Kind::Event),
                Some("default"),
                &Default::default(),
                &Default::default(),
            )
            .await
            .expect("list events");
        events
            .iter()
            .filter(|e| e["reason"] == reason && e["involvedObject"]["kind"] == "CronJob")
            .filter_map(|e| e["message"].as_str().map(str::to_string))
            .collect()
    }

    async fn wait_event(&self, reason: &str, message: &str) {
        self.wait(&format!("event {reason} {message}"), async |t| {
            t.events(reason)
                .await
                .iter()
                .any(|m| m == message)
                .then_some(())
        })
        .await;
    }

    /// Finish a Job through `jobs/status` (as its controller would).
    async fn finish(&self, name: &str, complete: bool, at: &str) {
        let mut job = self.job(name).await;
        let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": at, "lastTransitionTime": at});
        job["status"] = if complete {
            json!({"startTime": at, "completionTime": at, "succeeded": 1,
                "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]})
        } else {
            json!({"startTime": at, "failed": 1, "conditions": [cond("FailureTarget"), cond("Failed")]})
        };
        self.api
            .update(
                by_kind(Kind::Job),
                Some("default"),
                name,
                Some("status"),
                job,
                &[],
                &opts(),
            )
            .await
            .expect("finish job");
    }
}

fn job_name(cj: &str, at: Timestamp) -> String {
    format!("{cj}-{}", at.as_second() / 60)
}

fn active_names(cj: &Value) -> Vec<String> {
    cj["status"]["active"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_due_schedule_creates_one_job() {
    let t = CronJobs::start().await;
    let created = t.create(cronjob("hello", json!({}))).await;
    let first = minute(created, 0);
    t.clock.set(
        first
            .checked_add(jiff::SignedDuration::from_secs(5))
            .expect("time"),
    );
    let name = job_name("hello", first);
    t.wait_jobs(std::slice::from_ref(&name)).await;
    let job = t.job(&name).await;
    let cj = t.cronjob("hello").await;
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "CronJob");
    assert_eq!(owner["uid"], cj["metadata"]["uid"]);
    assert_eq!(owner["controller"], true);
    assert_eq!(job["metadata"]["labels"]["team"], "a");
    assert_eq!(job["metadata"]["annotations"]["note"], "x");
    assert_eq!(
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        first.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    t.wait_event("SuccessfulCreate", &format!("Created job {name}"))
        .await;
    let cj = t
        .wait("status", async |t| {
            let cj = t.cronjob("hello").await;
            (active_names(&cj) == [name.clone()]).then_some(cj)
        })
        .await;
    assert_eq!(
        cj["status"]["lastScheduleTime"],
        first.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    // Later in the same minute nothing more happens; the next minute (Allow) starts a second Job.
    t.clock.set(
        first
            .checked_add(jiff::SignedDuration::from_secs(30))
            .expect("time"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.jobs().await, std::slice::from_ref(&name));
    assert_eq!(t.events("SuccessfulCreate").await.len(), 1);
    let second = minute(created, 1);
    t.clock.set(second);
    let mut both = vec![name.clone(), job_name("hello", second)];
    both.sort();
    t.wait_jobs(&both).await;
    t.wait("two active", async |t| {
        (active_names(&t.cronjob("hello").await).len() == 2).then_some(())
    })
    .await;
    t.stop().await;
}

#[tokio::test]
async fn forbid_skips_while_a_job_runs_and_success_is_recorded() {
    let t = CronJobs::start().await;
    let created = t
        .create(cronjob("once", json!({"concurrencyPolicy": "Forbid"})))
        .await;
    t.clock.set(minute(created, 0));
    let first = job_name("once", minute(created, 0));
    t.wait_jobs(std::slice::from_ref(&first)).await;
    t.wait("active", async |t| {
        (!active_names(&t.cronjob("once").await).is_empty()).then_some(())
    })
    .await;
    t.clock.set(minute(created, 1));
    t.wait_event(
        "JobAlreadyActive",
        "Not starting job because prior execution is running and concurrency policy is Forbid",
    )
    .await;
    assert_eq!(t.jobs().await, std::slice::from_ref(&first));
    // Once it completes, the start time it held back runs (as in kube: it is still the most recent).
    let done = minute(created, 1)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    t.finish(&first, true, &done).await;
    t.wait_event(
        "SawCompletedJob",
        &format!("Saw completed job: {first}, condition: Complete"),
    )
    .await;
    let held = job_name("once", minute(created, 1));
    let mut both = vec![first, held.clone()];
    both.sort();
    t.wait_jobs(&both).await;
    let cj = t
        .wait("lastSuccessfulTime", async |t| {
            let cj = t.cronjob("once").await;
            (cj["status"]["lastSuccessfulTime"] == done.as_str()).then_some(cj)
        })
        .await;
    assert_eq!(active_names(&cj), [held]);
    t.stop().await;
}

#[tokio::test]
async fn replace_deletes_the_running_job() {
    let t = CronJobs::start().await;
    let created = t
        .create(cronjob("swap", json!({"concurrencyPolicy": "Replace"})))
        .await;
    t.clock.set(minute(created, 0));
    let first = job_name("swap", minute(created, 0));
    t.wait_jobs(std::slice::from_ref(&first)).await;
    t.wait("active", async |t| {
        (active_names(&t.cronjob("swap").await) == [first.clone()]).then_some(())
    })
    .await;
    t.clock.set(minute(created, 1));
    let second = job_name("swap", minute(created, 1));
    t.wait_jobs(std::slice::from_ref(&second)).await;
    t.wait_event("SuccessfulDelete", &format!("Deleted job {first}"))
        .await;
    t.wait("replaced", async |t| {
        (active_names(&t.cronjob("swap").await) == [second.clone()]).then_some(())
    })
    .await;
    t.stop().await;
}

#[tokio::test]
async fn suspend_holds_and_resume_runs_the_latest_start_time() {
    let t = CronJobs::start().await;
    let created = t.create(cronjob("nap", json!({"suspend": true}))).await;
    t.clock.set(minute(created, 0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.clock.set(minute(created, 2));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(t.jobs().await.is_empty());
    let mut cj = t.cronjob("nap").await;
    cj["spec"]["suspend"] = json!(false);
    t.update(cj).await;
    // Only the most recent missed start time runs.
    t.wait_jobs(&[job_name("nap", minute(created, 2))]).await;
    t.stop().await;
}

#[tokio::test]
async fn starting_deadline_skips_start_times_missed_for_too_long() {
    let t = CronJobs::start().await;
    let created = t
        .create(cronjob("late", json!({"startingDeadlineSeconds": 10})))
        .await;
    // 30 s after the first start time: too late for it.
    t.clock.set(
        minute(created, 0)
            .checked_add(jiff::SignedDuration::from_secs(30))
            .expect("time"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(t.jobs().await.is_empty());
    // 5 s after the second: in time; the first one never runs.
    t.clock.set(
        minute(created, 1)
            .checked_add(jiff::SignedDuration::from_secs(5))
            .expect("time"),
    );
    t.wait_jobs(&[job_name("late", minute(created, 1))]).await;
    t.stop().await;
}

#[tokio::test]
async fn finished_jobs_beyond_the_history_limits_are_deleted() {
    let t = CronJobs::start().await;
    let created = t
        .create(cronjob(
            "tidy",
            json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1, "suspend": true}),
        ))
        .await;
    let cj = t.cronjob("tidy").await;
    let owner = json!({"apiVersion": "batch/v1", "kind": "CronJob", "name": "tidy",
        "uid": cj["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true});
    let mut names = Vec::new();
    for (i, complete) in [(1, true), (2, false), (3, true), (4, false), (5, true)] {
        let name = format!("tidy-{i}");
        let job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "ownerReferences": [owner]},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox:1.35"}]}}}});
        t.api
            .create(by_kind(Kind::Job), Some("default"), job, &[], &opts())
            .await
            .expect("create job");
        let at = minute(created, i)
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        t.finish(&name, complete, &at).await;
        names.push(name);
    }
    // The newest Complete (tidy-5) and the newest Failed (tidy-4) stay.
    t.wait_jobs(&["tidy-4".to_string(), "tidy-5".to_string()])
        .await;
    for gone in ["tidy-1", "tidy-2", "tidy-3"] {
        t.wait_event("SuccessfulDelete", &format!("Deleted job {gone}"))
            .await;
    }
    t.stop().await;
}
