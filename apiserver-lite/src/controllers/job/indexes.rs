//! Indexed Jobs (kube's `indexed_job_utils.go`): the completion index a pod carries, the interval lists of
//! `status.completedIndexes` / `failedIndexes` (`0-2,4`), and what an indexed pod gets from the
//! controller (name, annotation, label, `JOB_COMPLETION_INDEX`, hostname, per-index failure counts).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::super::owners::{Stored, str_at};

/// The annotation (and label) with a pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The annotation with the failures of the pod's index before this pod (`backoffLimitPerIndex`).
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// The annotation with the failures of the index a pod failure policy ignored.
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";
/// The environment variable every container of an indexed pod gets.
const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// Whether the Job runs in `Indexed` completion mode.
pub fn is_indexed(job: &Value) -> bool {
    str_at(job, "/spec/completionMode") == "Indexed"
}

/// The completion index of `pod` when it is one of `0..completions` (kube's `getCompletionIndex`: the
/// annotation, else the label).
pub fn index_of(pod: &Value, completions: i64) -> Option<i64> {
    let text = [
        format!("/metadata/annotations/{}", escape(COMPLETION_INDEX)),
        format!("/metadata/labels/{}", escape(COMPLETION_INDEX)),
    ]
    .iter()
    .map(|p| str_at(pod, p))
    .find(|t| !t.is_empty())?;
    let i: i64 = text.parse().ok()?;
    (0..completions).contains(&i).then_some(i)
}

/// A JSON pointer token for a key with `/` in it.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn annotation_count(pod: &Value, key: &str) -> i64 {
    str_at(pod, &format!("/metadata/annotations/{}", escape(key)))
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .unwrap_or(0)
}

/// The failures of the pod's index before it (kube's `getIndexFailureCount`).
pub fn failure_count(pod: &Value) -> i64 {
    annotation_count(pod, INDEX_FAILURE_COUNT)
}

/// The ignored failures of the pod's index before it.
pub fn ignored_failure_count(pod: &Value) -> i64 {
    annotation_count(pod, INDEX_IGNORED_FAILURE_COUNT)
}

/// Parse an interval list such as `1,3-5` (kube's `parseIndexesFromString`); indexes outside
/// `0..completions` are dropped, malformed parts skipped.
pub fn parse(text: &str, completions: i64) -> BTreeSet<i64> {
    let mut set = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i64>(), b.parse::<i64>()),
            None => (part.parse::<i64>(), part.parse::<i64>()),
        };
        let (Ok(first), Ok(last)) = (first, last) else {
            continue;
        };
        let last = last.min(completions - 1);
        if first < 0 || first > last {
            continue;
        }
        set.extend(first..=last);
    }
    set
}

/// Format indexes as kube's interval list (`0-2,4`; empty for none).
pub fn format(set: &BTreeSet<i64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    parts.join(",")
}

/// The `count` lowest indexes of `0..completions` not in `taken` (kube's `firstPendingIndexes`).
pub fn first_pending(taken: &BTreeSet<i64>, count: usize, completions: i64) -> Vec<i64> {
    (0..completions)
        .filter(|i| !taken.contains(i))
        .take(count)
        .collect()
}

/// The pods to delete among the active ones of an Indexed Job (kube's `appendDuplicatedIndexPodsForRemoval`):
/// pods without a valid index, of an index already succeeded or failed, and all but one of each index.
pub fn duplicates(
    active: &[Stored],
    done: &BTreeSet<i64>,
    completions: i64,
) -> (Vec<Stored>, Vec<Stored>) {
    let mut remove = Vec::new();
    let mut keep: Vec<Stored> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut ordered: Vec<&Stored> = active.iter().collect();
    // Of a duplicated index, keep the running (then ready) pod.
    ordered.sort_by_key(|p| {
        (
            std::cmp::Reverse(super::pods::phase(p) == "Running"),
            std::cmp::Reverse(super::pods::ready(p)),
        )
    });
    for pod in ordered {
        match index_of(&pod.value, completions) {
            Some(i) if !done.contains(&i) && seen.insert(i) => keep.push(pod.clone()),
            _ => remove.push(pod.clone()),
        }
    }
    (remove, keep)
}

/// Make `pod` (from the template) the pod of index `i`: name, annotation, label, env, hostname and, with
/// `failures`, the per-index failure counts (kube's `addCompletionIndexAnnotation` and friends).
pub fn assign(pod: &mut Value, job: &Value, i: i64, failures: Option<(i64, i64)>) {
    let name = str_at(job, "/metadata/name").to_string();
    let index = i.to_string();
    if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("generateName".into(), json!(format!("{name}-{index}-")));
        let mut annotations = vec![(COMPLETION_INDEX, index.clone())];
        if let Some((count, ignored)) = failures {
            annotations.push((INDEX_FAILURE_COUNT, count.to_string()));
            if ignored > 0 {
                annotations.push((INDEX_IGNORED_FAILURE_COUNT, ignored.to_string()));
            }
        }
        for (key, value) in annotations {
            insert(meta, "annotations", key, &value);
        }
        insert(meta, "labels", COMPLETION_INDEX, &index);
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert("hostname".into(), json!(format!("{name}-{index}")));
    let env = json!({"name": INDEX_ENV, "valueFrom": {"fieldRef": {
        "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}}});
    for list in ["initContainers", "containers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(c) = c.as_object_mut() else { continue };
            let vars = c.entry("env").or_insert_with(|| json!([]));
            if !vars.is_array() {
                *vars = json!([]);
            }
            if let Some(vars) = vars.as_array_mut()
                && !vars.iter().any(|v| v["name"] == INDEX_ENV)
            {
                vars.push(env.clone());
            }
        }
    }
}

/// Set `key` in the map `meta[map]` (made an object if it is not one).
fn insert(meta: &mut Map<String, Value>, map: &str, key: &str, value: &str) {
    let v = meta.entry(map).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    if let Some(m) = v.as_object_mut() {
        m.insert(key.into(), json!(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_lists() {
        let set = parse("0-2,4,7-8", 8);
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 4, 7]);
        assert_eq!(format(&set), "0-2,4,7");
        assert_eq!(format(&BTreeSet::new()), "");
        assert_eq!(
            first_pending(&[0, 2].into_iter().collect(), 2, 5),
            vec![1, 3]
        );
    }

    #[test]
    fn indexed_pods() {
        let job = json!({"metadata": {"name": "idx"}});
        let mut pod = json!({"metadata": {"generateName": "idx-"},
            "spec": {"subdomain": "s", "initContainers": [{"name": "i"}],
                "containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]}});
        assign(&mut pod, &job, 3, Some((2, 0)));
        assert_eq!(pod["metadata"]["generateName"], "idx-3-");
        assert_eq!(pod["metadata"]["annotations"][COMPLETION_INDEX], "3");
        assert_eq!(pod["metadata"]["annotations"][INDEX_FAILURE_COUNT], "2");
        assert_eq!(pod["metadata"]["labels"][COMPLETION_INDEX], "3");
        assert_eq!(pod["spec"]["hostname"], "idx-3");
        assert_eq!(pod["spec"]["subdomain"], "s");
        assert_eq!(
            pod["spec"]["initContainers"][0]["env"][0]["name"],
            INDEX_ENV
        );
        assert_eq!(pod["spec"]["containers"][0]["env"][1]["name"], INDEX_ENV);
        assert_eq!(index_of(&pod, 4), Some(3));
        assert_eq!(index_of(&pod, 3), None);
        assert_eq!(failure_count(&pod), 2);
    }
}
