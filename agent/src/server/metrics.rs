//! `GET /metrics` (Prometheus text format 0.0.4) and `GET /pods` (a `PodList` of the pods bound to this
//! node), both behind the agent API's client-certificate check.
//!
//! Metrics: the process's RSS, CPU seconds, start time and open file descriptors (from `/proc/self`),
//! `kubelet_running_pods` / `kubelet_running_containers` counted from containerd's records and tasks,
//! and `skiff_pod_start_duration_seconds`, a histogram of creation → all containers started for the
//! pods currently bound here (from the API server, taken at scrape time).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::{ApiContext, text_error};
use crate::runtime::TaskStatus;

/// What `/pods` and the pod metrics read from the API server.
#[derive(Clone)]
pub struct NodeView {
    pub client: Option<kube::Client>,
    pub node_name: String,
}

const BUCKETS: [f64; 12] = [
    0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// The pods bound to this node, as the API server has them.
async fn node_pods(view: &NodeView) -> Result<Vec<Pod>, String> {
    let client = view
        .client
        .clone()
        .ok_or_else(|| "the agent has no API client".to_string())?;
    let api: Api<Pod> = Api::all(client);
    let lp = ListParams::default().fields(&format!("spec.nodeName={}", view.node_name));
    api.list(&lp)
        .await
        .map(|l| l.items)
        .map_err(|e| format!("listing the node's pods: {e}"))
}

pub async fn pods(Extension(view): Extension<Arc<NodeView>>) -> Response {
    match node_pods(&view).await {
        Ok(items) => {
            let body = serde_json::json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {},
                "items": items,
            });
            let mut r = axum::Json(body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => text_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// (RSS bytes, CPU seconds, start time in seconds since the epoch, open fds) of this process.
pub fn process_stats() -> (u64, f64, Option<f64>, usize) {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64;
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let num = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // utime = field 14, stime = 15, starttime = 22 (1-based); `fields[0]` is field 3.
    let cpu = (num(11).unwrap_or(0.0) + num(12).unwrap_or(0.0)) / ticks;
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    let start = match (boot, num(19)) {
        (Some(b), Some(st)) => Some(b + st / ticks),
        _ => None,
    };
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    (rss, cpu, start, fds)
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Seconds from creation until every container had started, for pods whose containers all run.
fn start_durations(pods: &[Pod]) -> Vec<f64> {
    pods.iter()
        .filter_map(|p| {
            let created = p.metadata.creation_timestamp.as_ref()?.0;
            let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
            if statuses.is_empty() {
                return None;
            }
            let mut last = None;
            for s in statuses {
                if s.restart_count > 0 {
                    return None;
                }
                let started = s.state.as_ref()?.running.as_ref()?.started_at.as_ref()?.0;
                last = Some(last.map_or(started, |l: jiff::Timestamp| l.max(started)));
            }
            let d = last?.duration_since(created).as_secs_f64();
            Some(d.max(0.0))
        })
        .collect()
}

pub fn histogram(out: &mut String, name: &str, values: &[f64]) {
    for b in BUCKETS {
        let n = values.iter().filter(|v| **v <= b).count();
        let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", values.len());
    let _ = writeln!(out, "{name}_sum {}", values.iter().sum::<f64>());
    let _ = writeln!(out, "{name}_count {}", values.len());
}

pub async fn metrics(
    State(ctx): State<Arc<ApiContext>>,
    Extension(view): Extension<Arc<NodeView>>,
) -> Response {
    let mut out = String::new();
    let (rss, cpu, start, fds) = process_stats();
    metric(
        &mut out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    metric(
        &mut out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    );
    let _ = writeln!(out, "process_cpu_seconds_total {cpu}");
    if let Some(s) = start {
        metric(
            &mut out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        );
        let _ = writeln!(out, "process_start_time_seconds {s}");
    }
    metric(
        &mut out,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    );
    let _ = writeln!(out, "process_open_fds {fds}");

    if let Ok(records) = ctx.runtime.list_containers(None).await {
        // One task list for every container; a failed list counts them all as exited.
        let status = ctx.runtime.task_statuses().await.unwrap_or_default();
        let mut by_state: HashMap<&str, usize> = HashMap::new();
        let mut running_pods = HashSet::new();
        for r in &records {
            let state = match status.get(r.id.as_str()) {
                Some(TaskStatus::Running) | Some(TaskStatus::Paused) => {
                    running_pods.insert(r.meta.pod_uid.as_str());
                    "running"
                }
                Some(TaskStatus::Created) => "created",
                Some(TaskStatus::Stopped) | None => "exited",
                Some(TaskStatus::Unknown) => "unknown",
            };
            *by_state.entry(state).or_default() += 1;
        }
        metric(
            &mut out,
            "kubelet_running_pods",
            "gauge",
            "Number of pods that have a running container.",
        );
        let _ = writeln!(out, "kubelet_running_pods {}", running_pods.len());
        metric(
            &mut out,
            "kubelet_running_containers",
            "gauge",
            "Number of containers currently known to the runtime, by state.",
        );
        for state in ["running", "created", "exited", "unknown"] {
            let n = by_state.get(state).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "kubelet_running_containers{{container_state=\"{state}\"}} {n}"
            );
        }
    }
    if let Ok(pods) = node_pods(&view).await {
        metric(
            &mut out,
            "skiff_pod_start_duration_seconds",
            "histogram",
            "Seconds from a pod's creation until all its containers had started, for the pods now bound to this node whose containers all run without restarts.",
        );
        histogram(
            &mut out,
            "skiff_pod_start_duration_seconds",
            &start_durations(&pods),
        );
    }
    let mut r = (StatusCode::OK, out).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process() {
        let (rss, cpu, start, fds) = process_stats();
        assert!(rss > 1024 * 1024, "rss {rss}");
        assert!(cpu >= 0.0);
        assert!(start.is_some_and(|s| s > 1.6e9), "{start:?}");
        assert!(fds >= 3);
    }

    #[test]
    fn histogram_text() {
        let mut s = String::new();
        histogram(&mut s, "x", &[0.3, 1.5, 400.0]);
        assert!(s.contains("x_bucket{le=\"0.25\"} 0\n"));
        assert!(s.contains("x_bucket{le=\"0.5\"} 1\n"));
        assert!(s.contains("x_bucket{le=\"2\"} 2\n"));
        assert!(s.contains("x_bucket{le=\"+Inf\"} 3\n"));
        assert!(s.contains("x_count 3\n"));
    }

    #[test]
    fn durations_from_pods() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"containerStatuses": [
                {"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}}}]}
        }))
        .unwrap_or_default();
        let waiting: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "b", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"containerStatuses": [
                {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        }))
        .unwrap_or_default();
        assert_eq!(start_durations(&[pod, waiting]), vec![2.0]);
    }
}
