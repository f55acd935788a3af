//! What one sync of an Indexed Job knows about its indexes (kube's `calculateSucceededIndexes`,
//! `calculateFailedIndexes`, `isIndexFailed`, `getNewIndexFailureCounts`), and the pods it creates.

use std::collections::BTreeSet;

use serde_json::Value;

use super::super::owners::{Stored, int_at, str_at};
use super::failure_policy::{Action, match_policy};
use super::indexes::{self, index_of};
use super::pods;
use super::status::Finish;

/// The indexes of an Indexed Job in this sync.
pub(super) struct Indexed {
    pub(super) completions: i64,
    /// `status.completedIndexes` as read.
    previous: BTreeSet<i64>,
    /// The completed indexes, with the pods that newly succeeded.
    pub(super) succeeded: BTreeSet<i64>,
    /// `spec.backoffLimitPerIndex`.
    per_index: Option<i64>,
    /// The failed indexes (only with `backoffLimitPerIndex`), with the pods that newly failed them.
    pub(super) failed: BTreeSet<i64>,
}

impl Indexed {
    /// The indexes of `job` from its status and its `tracked` pods (not counted yet); `None` unless Indexed.
    pub(super) fn new(job: &Value, tracked: &[&Stored], replace_failed_only: bool) -> Option<Self> {
        if !indexes::is_indexed(job) {
            return None;
        }
        let completions = int_at(job, "/spec/completions").unwrap_or(0).max(0);
        let previous = indexes::parse(str_at(job, "/status/completedIndexes"), completions);
        let mut succeeded = previous.clone();
        succeeded.extend(
            tracked
                .iter()
                .filter(|p| pods::phase(p) == "Succeeded")
                .filter_map(|p| index_of(&p.value, completions)),
        );
        let per_index = int_at(job, "/spec/backoffLimitPerIndex");
        let mut failed = BTreeSet::new();
        if let Some(limit) = per_index {
            failed = indexes::parse(str_at(job, "/status/failedIndexes"), completions);
            failed.extend(
                tracked
                    .iter()
                    .filter(|p| pods::failed(p, replace_failed_only))
                    .filter(|p| index_failed(job, &p.value, limit))
                    .filter_map(|p| index_of(&p.value, completions)),
            );
        }
        Some(Indexed {
            completions,
            previous,
            succeeded,
            per_index,
            failed,
        })
    }

    /// Whether a succeeded pod's index was not complete before this sync (one success per index).
    pub(super) fn is_new_success(&self, pod: &Value) -> bool {
        index_of(pod, self.completions).is_some_and(|i| !self.previous.contains(&i))
    }

    pub(super) fn valid(&self, pod: &Value) -> bool {
        index_of(pod, self.completions).is_some()
    }

    /// How the Job fails from its failed indexes, if it does (kube's `MaxFailedIndexesExceeded` and
    /// `FailedIndexes`).
    pub(super) fn finish(&self, job: &Value) -> Option<Finish> {
        self.per_index?;
        let failed = self.failed.len() as i64;
        if int_at(job, "/spec/maxFailedIndexes").is_some_and(|max| failed > max) {
            return Some(Finish::failure(
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes",
            ));
        }
        let done = self.succeeded.union(&self.failed).count() as i64;
        (failed > 0 && done >= self.completions)
            .then(|| Finish::failure("FailedIndexes", "Job has failed indexes"))
    }

    /// The Job's success by its `successPolicy`, if a rule matches (kube's `matchSuccessPolicy`): the
    /// rule's `succeededIndexes` all succeeded (or `succeededCount` of them), or `succeededCount` indexes.
    pub(super) fn success_policy(&self, job: &Value) -> Option<Finish> {
        let rules = job
            .pointer("/spec/successPolicy/rules")
            .and_then(Value::as_array)?;
        if self.succeeded.is_empty() {
            return None;
        }
        let matched = rules.iter().position(|rule| {
            let count = rule.get("succeededCount").and_then(Value::as_i64);
            match rule.get("succeededIndexes").and_then(Value::as_str) {
                Some(text) => {
                    let required = indexes::parse(text, self.completions);
                    let hits = required.intersection(&self.succeeded).count() as i64;
                    !required.is_empty()
                        && match count {
                            None => hits == required.len() as i64,
                            Some(c) => hits >= c,
                        }
                }
                None => count.is_some_and(|c| self.succeeded.len() as i64 >= c),
            }
        })?;
        Some(Finish {
            type_: "SuccessCriteriaMet",
            reason: "SuccessPolicy".into(),
            message: format!("Matched rules at index {matched}"),
        })
    }

    /// The indexes no pod works on any more: succeeded or failed.
    pub(super) fn done(&self) -> BTreeSet<i64> {
        self.succeeded.union(&self.failed).copied().collect()
    }

    /// Pods for the `count` lowest indexes not done and not taken by `busy` pods (kube's
    /// `firstPendingIndexes`), each with its per-index failure counts from `owned`'s failed pods.
    pub(super) fn new_pods(
        &self,
        job: &Value,
        busy: &[&Stored],
        owned: &[Stored],
        count: usize,
    ) -> Vec<Value> {
        let mut taken = self.done();
        taken.extend(
            busy.iter()
                .filter_map(|p| index_of(&p.value, self.completions)),
        );
        indexes::first_pending(&taken, count, self.completions)
            .into_iter()
            .map(|i| {
                let mut pod = pods::from_template(job);
                let failures = self.per_index.map(|_| failure_counts(job, owned, i));
                indexes::assign(&mut pod, job, i, failures);
                pod
            })
            .collect()
    }

    /// Write `completedIndexes` and, with `backoffLimitPerIndex`, `failedIndexes` into the status.
    pub(super) fn write(&self, job: &mut Value) {
        let completed = indexes::format(&self.succeeded);
        // A string with `omitempty`; `failedIndexes` is a pointer and stays when empty.
        let completed = if completed.is_empty() {
            Value::Null
        } else {
            completed.into()
        };
        super::status::set_status(job, "completedIndexes", completed);
        if self.per_index.is_some() {
            let failed = indexes::format(&self.failed);
            super::status::set_status(job, "failedIndexes", failed.into());
        }
    }
}

/// Whether a failed pod fails its index (kube's `isIndexFailed`): a FailIndex rule, or a counted failure
/// when the index had already failed `backoffLimitPerIndex` times.
fn index_failed(job: &Value, pod: &Value, limit: i64) -> bool {
    match match_policy(job, pod) {
        Some(Action::FailIndex) => true,
        Some(Action::Ignore) => false,
        _ => indexes::failure_count(pod) >= limit,
    }
}

/// The failure counts a replacement pod of index `i` carries (kube's `getNewIndexFailureCounts`): those
/// of the index's last failed pod, plus its own failure (as ignored when a policy rule ignored it).
fn failure_counts(job: &Value, owned: &[Stored], i: i64) -> (i64, i64) {
    let completions = int_at(job, "/spec/completions").unwrap_or(0);
    let last = owned
        .iter()
        .filter(|p| pods::phase(p) == "Failed" || p.deleting())
        .filter(|p| index_of(&p.value, completions) == Some(i))
        .max_by_key(|p| {
            (
                indexes::failure_count(&p.value) + indexes::ignored_failure_count(&p.value),
                pods::finished_at(p),
            )
        });
    let Some(last) = last else { return (0, 0) };
    let (count, ignored) = (
        indexes::failure_count(&last.value),
        indexes::ignored_failure_count(&last.value),
    );
    match match_policy(job, &last.value) {
        Some(Action::Ignore) => (count, ignored + 1),
        _ => (count + 1, ignored),
    }
}
