//! One metric of an HPA (kube's `computeStatusForResourceMetric` and the metrics client's view of the
//! pods): each pod's usage from the [`MetricsStore`](crate::metrics::MetricsStore), its request and
//! readiness, fed to the replica calculator.

use serde_json::{Value, json};

use super::Controller;
use super::calc::{self, PodSample, Target};

/// One metric's outcome: its recommendation and `status.currentMetrics` entry, or its error.
pub(super) type Outcome = Result<(i64, Value, String), String>;

pub(super) fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// kube's `--horizontal-pod-autoscaler-cpu-initialization-period` handling of readiness (cpu only).
fn cpu_unready(pod: &Value, now: jiff::Timestamp) -> bool {
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let Some(ready) = ready else { return true };
    let is_ready = ready["status"] == "True";
    let start: Option<jiff::Timestamp> = s(pod, "/status/startTime").parse().ok();
    let transition: Option<jiff::Timestamp> = ready["lastTransitionTime"]
        .as_str()
        .and_then(|t| t.parse().ok());
    let (Some(start), Some(transition)) = (start, transition) else {
        return !is_ready;
    };
    let secs = |d: std::time::Duration| jiff::SignedDuration::from_secs(d.as_secs() as i64);
    if start + secs(calc::CPU_INITIALIZATION) > now {
        !is_ready
    } else {
        !is_ready && transition < start + secs(calc::INITIAL_READINESS_DELAY)
    }
}

/// The pod's request of `resource` in milli-units (`container`: only that one).
fn request(pod: &Value, resource: &str, container: Option<&str>) -> Result<i128, String> {
    let mut total = 0;
    for c in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = c["name"].as_str().unwrap_or("");
        if container.is_some_and(|w| w != name) {
            continue;
        }
        match c
            .pointer(&format!("/resources/requests/{resource}"))
            .and_then(Value::as_str)
        {
            Some(q) => {
                total += crate::resources::storage::quantity::parse(q).map_or(0, |n| n / 1_000_000)
            }
            None => return Err(name.to_string()),
        }
    }
    Ok(total)
}

impl Controller {
    fn samples(
        &self,
        ns: &str,
        pods: &[Value],
        resource: &str,
        container: Option<&str>,
    ) -> Vec<PodSample> {
        let now = jiff::Timestamp::now();
        pods.iter()
            .map(|p| {
                let name = s(p, "/metadata/name").to_string();
                let phase = s(p, "/status/phase");
                let usage = self.metrics.pod(ns, &name).map(|u| {
                    u.containers
                        .iter()
                        .filter(|c| container.is_none_or(|w| w == c.name))
                        .map(|c| {
                            if resource == "cpu" {
                                i128::from(c.cpu_nanocores) / 1_000_000
                            } else {
                                i128::from(c.memory_bytes) * 1000
                            }
                        })
                        .sum()
                });
                PodSample {
                    ignored: p
                        .pointer("/metadata/deletionTimestamp")
                        .is_some_and(|d| !d.is_null())
                        || matches!(phase, "Failed" | "Succeeded"),
                    pending: phase.is_empty() || phase == "Pending",
                    unready: resource == "cpu" && cpu_unready(p, now),
                    usage,
                    request: request(p, resource, container),
                    name,
                }
            })
            .collect()
    }

    /// kube's `computeStatusForResourceMetric`: the recommendation, the current-metric entry and the
    /// metric's name in events.
    pub(super) fn metric(&self, ns: &str, current: i64, pods: &[Value], m: &Value) -> Outcome {
        let ty = s(m, "/type");
        let key = match ty {
            "Resource" => "resource",
            "ContainerResource" => "containerResource",
            other => return Err(format!("metric type {other:?} is not supported by skiff")),
        };
        let src = &m[key];
        let resource = src["name"].as_str().unwrap_or("");
        let container = src["container"].as_str();
        let t = &src["target"];
        let target = match (t["averageUtilization"].as_i64(), t["averageValue"].as_str()) {
            (Some(u), _) => Target::Utilization(u),
            (None, Some(v)) => Target::AverageValue(
                crate::resources::storage::quantity::parse(v).map_or(0, |n| n / 1_000_000),
            ),
            _ => {
                return Err("invalid resource metric source: neither a utilization target nor a value target was set".into());
            }
        };
        let samples = self.samples(ns, pods, resource, container);
        if samples.iter().all(|p| p.usage.is_none()) {
            return Err(format!(
                "failed to get {resource} utilization: unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
            ));
        }
        let rec = calc::replicas(current, &samples, target, resource)
            .map_err(|e| format!("failed to get {resource} utilization: {e}"))?;
        let mut cur = json!({"averageValue": crate::resources::storage::quantity::Quantity::from_milli(rec.average).to_string()});
        if let Some(u) = rec.utilization {
            cur["averageUtilization"] = json!(u);
        }
        let mut status = json!({"name": resource, "current": cur});
        if let Some(c) = container {
            status["container"] = json!(c);
        }
        let label = match (target, ty) {
            (Target::Utilization(_), "Resource") => {
                format!("{resource} resource utilization (percentage of request)")
            }
            (Target::Utilization(_), _) => {
                format!("{resource} container resource utilization (percentage of request)")
            }
            (_, "Resource") => format!("{resource} resource"),
            _ => format!("{resource} container resource"),
        };
        Ok((rec.replicas, json!({"type": ty, key: status}), label))
    }
}
