//! The Job controller alone against a real store, with a short pod failure back-off. There is no kubelet
//! here: the tests play it by writing the pods' phase through `pods/status`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{condition, opts};
use crate::controllers::bootstrap;
use crate::controllers::job::{Settings, run_with};
use crate::handlers::{Api, DeleteOpts};
use crate::resources::{Kind, by_kind};
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::store::redb::tests::TempDir;

const BACKOFF: Duration = Duration::from_millis(200);

pub(super) struct Jobs {
    pub(super) api: Api,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: TempDir,
}

impl Jobs {
    pub(super) async fn start() -> Jobs {
        let dir = TempDir::new();
        let store: Arc<dyn Store> =
            Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
        bootstrap(store.as_ref()).await.expect("bootstrap");
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let settings = Settings {
            base: BACKOFF,
            max: Duration::from_secs(2),
        };
        let task = tokio::spawn(run_with(store.clone(), settings, rx));
        Jobs {
            api: Api::new(store),
            shutdown,
            task,
            _dir: dir,
        }
    }

    pub(super) async fn stop(self) {
        let _ = self.shutdown.send(true);
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("controller stops")
            .expect("controller task")
            .expect("controller ran cleanly");
    }

    pub(super) async fn create(&self, job: Value) -> Value {
        self.api
            .create(by_kind(Kind::Job), Some("default"), job, &[], &opts())
            .await
            .expect("create job")
            .0
    }

    pub(super) async fn job(&self, name: &str) -> Option<Value> {
        match self
            .api
            .get(by_kind(Kind::Job), Some("default"), name)
            .await
        {
            Ok(j) => Some(j),
            Err(e) if e.code == 404 => None,
            Err(e) => panic!("get job: {}", e.message),
        }
    }

    /// Poll the Job until `check` holds.
    pub(super) async fn wait(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let job = self.job(name).await.expect("job exists");
            if check(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "timed out: {what}: {job:#}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(super) async fn pods(&self, job: &str) -> Vec<Value> {
        let (pods, _) = self
            .api
            .list(
                by_kind(Kind::Pod),
                Some("default"),
                &Default::default(),
                &Default::default(),
            )
            .await
            .expect("list pods");
        pods.into_iter()
            .filter(|p| p["metadata"]["labels"]["job-name"] == job)
            .collect()
    }

    /// The pods of `job` still running, once there are `n`.
    pub(super) async fn active(&self, job: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let active: Vec<Value> = self
                .pods(job)
                .await
                .into_iter()
                .filter(|p| {
                    p["metadata"]["deletionTimestamp"].is_null()
                        && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                })
                .collect();
            if active.len() == n {
                return active;
            }
            assert!(
                Instant::now() < deadline,
                "{} active pods of {job}, want {n}: {active:#?}",
                active.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// What the kubelet writes when the pod's containers exit.
    pub(super) async fn finish(&self, pod: &Value, phase: &str) {
        self.report(pod, json!({"status": {"phase": phase}})).await;
    }

    /// A failure with the container's finish time (metav1.Time has whole seconds; this kubelet rounds
    /// up, so the back-off counted from it is never shorter than measured from now).
    pub(super) async fn fail_now(&self, pod: &Value) {
        let at = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 1)
            .expect("time")
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let status = json!({"status": {"phase": "Failed", "containerStatuses": [{"name": "main",
            "image": "busybox:1.35", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": at}}}]}});
        self.report(pod, status).await;
    }

    pub(super) async fn report(&self, pod: &Value, status: Value) {
        self.api
            .patch(
                by_kind(Kind::Pod),
                Some("default"),
                pod["metadata"]["name"].as_str().expect("name"),
                Some("status"),
                crate::patch::PatchType::Merge,
                status,
                &[],
                &opts(),
                false,
            )
            .await
            .expect("pod status");
    }

    /// The event reasons about `job` once `reason` is among them (events follow the status write).
    pub(super) async fn reasons_with(&self, job: &str, reason: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let reasons = self.reasons(job).await;
            if reasons.iter().any(|r| r == reason) {
                return reasons;
            }
            assert!(Instant::now() < deadline, "no {reason} event: {reasons:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(super) async fn reasons(&self, job: &str) -> Vec<String> {
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
            .filter(|e| e["involvedObject"]["name"] == job)
            .filter_map(|e| e["reason"].as_str().map(str::to_string))
            .collect()
    }
}

pub(super) fn job(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox:1.35"}]}});
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec})
}

pub(super) fn types(job: &Value) -> Vec<String> {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .filter_map(|c| c["type"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn parallel_job_runs_to_completion() {
    let t = Jobs::start().await;
    t.create(job("batch", json!({"completions": 3, "parallelism": 2})))
        .await;
    let first = t.active("batch", 2).await;
    for p in &first {
        assert_eq!(
            p["metadata"]["finalizers"],
            json!(["batch.kubernetes.io/job-tracking"])
        );
        assert!(
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("batch-"))
        );
    }
    let running = t
        .wait("batch", "active 2", |j| j["status"]["active"] == 2)
        .await;
    assert!(running["status"]["startTime"].is_string());
    assert_eq!(running["status"]["ready"], 0);
    t.finish(&first[0], "Succeeded").await;
    // One success: a third pod, never more than the completions left.
    let j = t
        .wait("batch", "one counted", |j| j["status"]["succeeded"] == 1)
        .await;
    assert!(
        j["status"]["uncountedTerminatedPods"]
            .as_object()
            .is_none_or(|u| u.is_empty())
    );
    let now = t.active("batch", 2).await;
    t.finish(&now[0], "Succeeded").await;
    t.finish(&now[1], "Succeeded").await;
    let done = t
        .wait("batch", "complete", |j| {
            types(j).contains(&"Complete".to_string())
        })
        .await;
    assert_eq!(types(&done), ["SuccessCriteriaMet", "Complete"]);
    assert_eq!(done["status"]["succeeded"], 3);
    assert!(done["status"].get("active").is_none());
    assert!(done["status"]["completionTime"].is_string());
    // Three pods in all, every one counted and released.
    let pods = t.pods("batch").await;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| p["metadata"]["finalizers"].is_null()));
    let reasons = t.reasons_with("batch", "Completed").await;
    assert_eq!(
        reasons.iter().filter(|r| *r == "SuccessfulCreate").count(),
        3
    );
    t.stop().await;
}

#[tokio::test]
async fn failures_back_off_then_fail_the_job() {
    let t = Jobs::start().await;
    t.create(job("flaky", json!({"backoffLimit": 2}))).await;
    let mut failed_at = Vec::new();
    for _ in 0..2 {
        let pods = t.active("flaky", 1).await;
        if let Some(at) = failed_at.last() {
            let waited = Instant::now().duration_since(*at);
            assert!(waited >= BACKOFF, "replaced after {waited:?}");
        }
        failed_at.push(Instant::now());
        t.fail_now(&pods[0]).await;
    }
    // The second replacement waits twice as long as the first.
    let third = t.active("flaky", 1).await;
    let waited = Instant::now().duration_since(failed_at[1]);
    assert!(waited >= BACKOFF * 2, "replaced after {waited:?}");
    let j = t.job("flaky").await.expect("job");
    assert_eq!(j["status"]["failed"], 2);
    assert!(types(&j).is_empty(), "{j:#}");
    t.finish(&third[0], "Failed").await;
    let failed = t
        .wait("flaky", "failed", |j| {
            types(j).contains(&"Failed".to_string())
        })
        .await;
    assert_eq!(types(&failed), ["FailureTarget", "Failed"]);
    let c = condition(&failed, "Failed").expect("Failed condition");
    assert_eq!(c["reason"], "BackoffLimitExceeded");
    assert_eq!(c["message"], "Job has reached the specified backoff limit");
    assert_eq!(failed["status"]["failed"], 3);
    assert!(failed["status"]["completionTime"].is_null());
    assert_eq!(t.pods("flaky").await.len(), 3);
    let reasons = t.reasons_with("flaky", "BackoffLimitExceeded").await;
    assert!(
        reasons.contains(&"SuccessfulCreate".to_string()),
        "{reasons:?}"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_pod_deleted_early_is_counted_as_failed() {
    let t = Jobs::start().await;
    t.create(job("gone", json!({"backoffLimit": 0}))).await;
    let pods = t.active("gone", 1).await;
    let name = pods[0]["metadata"]["name"].as_str().expect("name");
    // Deleted before it finished: the tracking finalizer keeps it until the controller counted it.
    t.api
        .delete(
            by_kind(Kind::Pod),
            Some("default"),
            name,
            &DeleteOpts::default(),
            false,
        )
        .await
        .expect("delete pod");
    let failed = t
        .wait("gone", "failed", |j| {
            types(j).contains(&"Failed".to_string())
        })
        .await;
    assert_eq!(failed["status"]["failed"], 1);
    assert_eq!(
        condition(&failed, "Failed").expect("Failed")["reason"],
        "BackoffLimitExceeded"
    );
    assert!(
        t.pods("gone").await.is_empty(),
        "the pod is released and gone"
    );
    t.stop().await;
}

#[tokio::test]
async fn suspend_resume_and_deadline() {
    let t = Jobs::start().await;
    t.create(job("later", json!({"suspend": true}))).await;
    let j = t
        .wait("later", "suspended", |j| {
            types(j).contains(&"Suspended".to_string())
        })
        .await;
    assert!(j["status"]["startTime"].is_null());
    assert!(t.pods("later").await.is_empty());
    let mut resumed = j.clone();
    resumed["spec"]["suspend"] = json!(false);
    t.api
        .update(
            by_kind(Kind::Job),
            Some("default"),
            "later",
            None,
            resumed,
            &[],
            &opts(),
        )
        .await
        .expect("resume");
    t.active("later", 1).await;
    let j = t
        .wait("later", "resumed", |j| {
            condition(j, "Suspended").is_some_and(|c| c["status"] == "False")
        })
        .await;
    assert_eq!(
        condition(&j, "Suspended").expect("Suspended")["reason"],
        "JobResumed"
    );
    // Suspending again deletes the active pod without counting it.
    let mut again = j.clone();
    again["spec"]["suspend"] = json!(true);
    t.api
        .update(
            by_kind(Kind::Job),
            Some("default"),
            "later",
            None,
            again,
            &[],
            &opts(),
        )
        .await
        .expect("suspend");
    t.wait("later", "suspended again", |j| {
        types(j).contains(&"Suspended".to_string())
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.pods("later").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "pod of the suspended job not deleted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let j = t.job("later").await.expect("job");
    assert!(j["status"].get("failed").is_none(), "{j:#}");

    t.create(job("slow", json!({"activeDeadlineSeconds": 1})))
        .await;
    t.active("slow", 1).await;
    let failed = t
        .wait("slow", "deadline", |j| {
            types(j).contains(&"Failed".to_string())
        })
        .await;
    assert_eq!(
        condition(&failed, "Failed").expect("Failed")["reason"],
        "DeadlineExceeded"
    );
    assert_eq!(failed["status"]["failed"], 1);
    t.stop().await;
}

#[tokio::test]
async fn finished_jobs_expire_after_their_ttl() {
    let t = Jobs::start().await;
    t.create(job("brief", json!({"ttlSecondsAfterFinished": 1})))
        .await;
    let pods = t.active("brief", 1).await;
    t.finish(&pods[0], "Succeeded").await;
    t.wait("brief", "complete", |j| {
        types(j).contains(&"Complete".to_string())
    })
    .await;
    assert!(t.job("brief").await.is_some(), "kept until the TTL passes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.job("brief").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "finished job not deleted after its TTL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.stop().await;
}
