//! Indexed Jobs, pod failure policies and per-index back-off limits: the Job controller alone against a
//! real store, the tests playing the kubelet (see [`super::job`]).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::condition;
use super::job::{Jobs, job, types};
use crate::handlers::Query;

const INDEX: &str = "batch.kubernetes.io/job-completion-index";
const FAILURES: &str = "batch.kubernetes.io/job-index-failure-count";

fn index(pod: &Value) -> &str {
    pod["metadata"]["annotations"][INDEX].as_str().unwrap_or("")
}

fn name(pod: &Value) -> &str {
    pod["metadata"]["name"].as_str().unwrap_or("")
}

/// The active pod of index `i`.
fn of_index(pods: &[Value], i: &str) -> Value {
    pods.iter()
        .find(|p| index(p) == i)
        .cloned()
        .unwrap_or_else(|| panic!("no pod of index {i}: {pods:#?}"))
}

/// A container exit as the kubelet reports it.
fn exited(code: i64) -> Value {
    json!({"status": {"phase": "Failed", "containerStatuses": [{"name": "main",
        "image": "busybox:1.35", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "reason": "Error",
            "finishedAt": "2026-01-01T00:00:00Z"}}}]}})
}

#[tokio::test]
async fn indexed_job_completes_each_index_once() {
    let t = Jobs::start().await;
    let mut j = job(
        "idx",
        json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}),
    );
    j["spec"]["template"]["spec"]["subdomain"] = json!("workers");
    t.create(j).await;
    let first = t.active("idx", 2).await;
    let mut indexes: Vec<&str> = first.iter().map(index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, ["0", "1"], "the lowest indexes first");
    for p in &first {
        let i = index(p);
        assert!(name(p).starts_with(&format!("idx-{i}-")), "{}", name(p));
        assert_eq!(name(p).len(), format!("idx-{i}-").len() + 5);
        assert_eq!(p["metadata"]["labels"][INDEX], i);
        assert_eq!(p["spec"]["hostname"], format!("idx-{i}"));
        assert_eq!(p["spec"]["subdomain"], "workers");
        let env = &p["spec"]["containers"][0]["env"][0];
        assert_eq!(env["name"], "JOB_COMPLETION_INDEX");
        assert_eq!(
            env["valueFrom"]["fieldRef"]["fieldPath"],
            format!("metadata.annotations['{INDEX}']")
        );
    }
    t.finish(&of_index(&first, "0"), "Succeeded").await;
    t.wait("idx", "index 0 done", |j| {
        j["status"]["completedIndexes"] == "0"
    })
    .await;
    // Index 2 is next; index 1 keeps running.
    let now = t.active("idx", 2).await;
    of_index(&now, "2");
    t.finish(&of_index(&now, "2"), "Succeeded").await;
    t.wait("idx", "indexes 0 and 2", |j| {
        j["status"]["completedIndexes"] == "0,2"
    })
    .await;
    t.finish(&of_index(&now, "1"), "Succeeded").await;
    let done = t
        .wait("idx", "complete", |j| {
            types(j).contains(&"Complete".to_string())
        })
        .await;
    assert_eq!(done["status"]["completedIndexes"], "0-2");
    assert_eq!(done["status"]["succeeded"], 3);
    assert_eq!(t.pods("idx").await.len(), 3);
    t.stop().await;
}

#[tokio::test]
async fn a_fail_job_rule_fails_the_job() {
    let t = Jobs::start().await;
    t.create(job(
        "strict",
        json!({"backoffLimit": 6, "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}]}}),
    ))
    .await;
    let pods = t.active("strict", 1).await;
    // Exit code 1 matches no rule: counted, replaced.
    t.report(&pods[0], exited(1)).await;
    t.wait("strict", "one failure", |j| j["status"]["failed"] == 1)
        .await;
    let pods = t.active("strict", 1).await;
    t.report(&pods[0], exited(42)).await;
    let failed = t
        .wait("strict", "failed", |j| {
            types(j).contains(&"Failed".to_string())
        })
        .await;
    assert_eq!(types(&failed), ["FailureTarget", "Failed"]);
    let c = condition(&failed, "Failed").expect("Failed");
    assert_eq!(c["reason"], "PodFailurePolicy");
    assert_eq!(
        c["message"],
        format!(
            "Container main for pod default/{} failed with exit code 42 matching FailJob rule at index 0",
            name(&pods[0])
        )
    );
    assert_eq!(failed["status"]["failed"], 2);
    t.stop().await;
}

#[tokio::test]
async fn an_evicted_pod_is_ignored_by_an_ignore_rule() {
    let t = Jobs::start().await;
    t.create(job(
        "tolerant",
        json!({"backoffLimit": 0, "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}}),
    ))
    .await;
    let pods = t.active("tolerant", 1).await;
    let evicted = name(&pods[0]).to_string();
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": evicted, "namespace": "default"}});
    crate::eviction::evict(
        &t.api,
        "default",
        &evicted,
        &eviction,
        &Query::default(),
        false,
    )
    .await
    .expect("evict");
    let pod = t
        .pods("tolerant")
        .await
        .into_iter()
        .find(|p| name(p) == evicted)
        .expect("evicted pod kept by its finalizer");
    assert!(pod["metadata"]["deletionTimestamp"].is_string());
    let c = condition(&pod, "DisruptionTarget").expect("DisruptionTarget");
    assert_eq!(c["reason"], "EvictionByEvictionAPI");
    assert_eq!(c["message"], "Eviction API: evicting");
    // The kubelet kills it; the failure is not counted and the pod is replaced.
    t.report(&pod, exited(137)).await;
    let replacement = t.active("tolerant", 1).await;
    assert_ne!(name(&replacement[0]), evicted);
    let j = t.job("tolerant").await.expect("job");
    assert!(j["status"].get("failed").is_none(), "{j:#}");
    assert!(types(&j).is_empty(), "{j:#}");
    // A failure without the condition counts: backoffLimit 0.
    t.report(&replacement[0], exited(1)).await;
    let failed = t
        .wait("tolerant", "failed", |j| {
            types(j).contains(&"Failed".to_string())
        })
        .await;
    assert_eq!(
        condition(&failed, "Failed").expect("Failed")["reason"],
        "BackoffLimitExceeded"
    );
    assert_eq!(failed["status"]["failed"], 1);
    t.stop().await;
}

#[tokio::test]
async fn an_index_fails_after_its_own_backoff_limit() {
    let t = Jobs::start().await;
    t.create(job(
        "per-index",
        json!({"completions": 2, "parallelism": 2, "completionMode": "Indexed",
            "backoffLimitPerIndex": 1}),
    ))
    .await;
    let first = t.active("per-index", 2).await;
    let zero = of_index(&first, "0");
    assert_eq!(zero["metadata"]["annotations"][FAILURES], "0");
    t.report(&zero, exited(1)).await;
    // Replaced after the back-off, with the index's failure count.
    let deadline = Instant::now() + Duration::from_secs(10);
    let retry = loop {
        let active = t.active("per-index", 2).await;
        let candidate = of_index(&active, "0");
        if name(&candidate) != name(&zero) {
            break candidate;
        }
        assert!(Instant::now() < deadline, "index 0 not replaced");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(retry["metadata"]["annotations"][FAILURES], "1");
    t.report(&retry, exited(1)).await;
    let j = t
        .wait("per-index", "index 0 failed", |j| {
            j["status"]["failedIndexes"] == "0"
        })
        .await;
    assert!(types(&j).is_empty(), "{j:#}");
    assert_eq!(j["spec"]["backoffLimit"], i64::from(i32::MAX));
    t.finish(&of_index(&first, "1"), "Succeeded").await;
    let failed = t
        .wait("per-index", "failed", |j| {
            types(j).contains(&"Failed".to_string())
        })
        .await;
    let c = condition(&failed, "Failed").expect("Failed");
    assert_eq!(c["reason"], "FailedIndexes");
    assert_eq!(c["message"], "Job has failed indexes");
    assert_eq!(failed["status"]["completedIndexes"], "1");
    assert_eq!(failed["status"]["failed"], 2);
    t.stop().await;
}
