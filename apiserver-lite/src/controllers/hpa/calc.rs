//! kube's replica calculator (`pkg/controller/podautoscaler/replica_calculator.go`) for `Resource` and
//! `ContainerResource` metrics: usage against requests (Utilization) or a per-pod average (AverageValue),
//! with kube's tolerance and its handling of pods without metrics and of unready pods.

use std::time::Duration;

/// kube's `--horizontal-pod-autoscaler-tolerance`.
pub const TOLERANCE: f64 = 0.1;
/// kube's `--horizontal-pod-autoscaler-cpu-initialization-period`.
pub const CPU_INITIALIZATION: Duration = Duration::from_secs(300);
/// kube's `--horizontal-pod-autoscaler-initial-readiness-delay`.
pub const INITIAL_READINESS_DELAY: Duration = Duration::from_secs(30);

/// What the calculator needs of one pod (amounts in milli-units).
#[derive(Debug, Clone)]
pub struct PodSample {
    pub name: String,
    /// Deleted, Failed or Succeeded: left out entirely.
    pub ignored: bool,
    /// Pending: counted as unready whether or not it has metrics.
    pub pending: bool,
    /// (cpu) not Ready within the initialization window: counted as unready.
    pub unready: bool,
    /// The usage, when the metrics store has one.
    pub usage: Option<i128>,
    /// The request; `Err(container)` names the first container lacking it.
    pub request: Result<i128, String>,
}

/// The target of a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Percent of the request.
    Utilization(i64),
    /// Milli-units per pod.
    AverageValue(i128),
}

/// A computed recommendation and the current value (utilization in percent, or the average in milli).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recommendation {
    pub replicas: i64,
    pub utilization: Option<i64>,
    pub average: i128,
}

fn ceil(x: f64) -> i64 {
    x.ceil() as i64
}

/// The usage ratio against the target over `(usage, request)` pairs; the current utilization (percent)
/// and average usage.
fn ratio(samples: &[(i128, i128)], target: Target) -> Result<(f64, Option<i64>, i128), String> {
    let n = samples.len().max(1) as i128;
    let used: i128 = samples.iter().map(|s| s.0).sum();
    let average = used / n;
    match target {
        Target::Utilization(t) => {
            let requested: i128 = samples.iter().map(|s| s.1).sum();
            if requested == 0 {
                return Err("no metrics returned matched known pods".into());
            }
            let util = (used * 100 / requested) as i64;
            Ok((util as f64 / t as f64, Some(util), average))
        }
        Target::AverageValue(t) => Ok((average as f64 / t.max(1) as f64, None, average)),
    }
}

/// kube's `GetResourceReplicas` / `GetRawResourceReplicas`.
pub fn replicas(
    current: i64,
    pods: &[PodSample],
    target: Target,
    resource: &str,
) -> Result<Recommendation, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let counted: Vec<&PodSample> = pods.iter().filter(|p| !p.ignored).collect();
    let mut ready = Vec::new();
    let (mut missing, mut unready) = (Vec::new(), 0usize);
    for p in &counted {
        match (p.usage, p.unready) {
            _ if p.pending => unready += 1,
            (None, _) => missing.push(*p),
            (Some(_), true) => unready += 1,
            (Some(u), false) => {
                let req = match (&p.request, target) {
                    (Ok(r), _) => *r,
                    (Err(c), Target::Utilization(_)) => {
                        return Err(format!(
                            "missing request for {resource} in container {c} of Pod {}",
                            p.name
                        ));
                    }
                    (Err(_), Target::AverageValue(_)) => 0,
                };
                ready.push((u, req));
            }
        }
    }
    if ready.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let (r, utilization, average) = ratio(&ready, target)?;
    let scale_up_with_unready = unready > 0 && r > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if (1.0 - r).abs() <= TOLERANCE {
            return Ok(Recommendation {
                replicas: current,
                utilization,
                average,
            });
        }
        return Ok(Recommendation {
            replicas: ceil(r * ready.len() as f64),
            utilization,
            average,
        });
    }
    let mut all = ready.clone();
    for p in &missing {
        let req = p.request.as_ref().map(|r| *r).unwrap_or(0);
        let assumed = match target {
            Target::Utilization(_) if r < 1.0 => req,
            Target::AverageValue(t) if r < 1.0 => t,
            _ => 0,
        };
        all.push((assumed, req));
    }
    if scale_up_with_unready {
        for p in counted
            .iter()
            .filter(|p| p.pending || (p.unready && p.usage.is_some()))
        {
            all.push((0, p.request.as_ref().map(|r| *r).unwrap_or(0)));
        }
    }
    let (new_r, _, _) = ratio(&all, target)?;
    if (1.0 - new_r).abs() <= TOLERANCE || (r < 1.0 && new_r > 1.0) || (r > 1.0 && new_r < 1.0) {
        return Ok(Recommendation {
            replicas: current,
            utilization,
            average,
        });
    }
    let n = ceil(new_r * all.len() as f64);
    if (new_r < 1.0 && n > current) || (new_r > 1.0 && n < current) {
        return Ok(Recommendation {
            replicas: current,
            utilization,
            average,
        });
    }
    Ok(Recommendation {
        replicas: n,
        utilization,
        average,
    })
}

#[cfg(test)]
mod tests;
