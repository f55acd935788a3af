//! `GET /metrics/resource`: the kubelet's resource metrics (what metrics-server, and skiff-apiserver's
//! scraper, read for `kubectl top` and the HPA), in the Prometheus text format kubelet 1.32 writes:
//! families sorted by name, `[STABLE]` help, samples sorted by label values, values as Go's `%g`, CPU and
//! memory samples stamped with the time of their read in ms.
//!
//! Covered: the node (`/proc/stat`, the root memory cgroup), every pod of this node with a running
//! container (its `<parent>/pod<uid>` cgroup) and each running container (its own cgroup); names come from
//! the containers' labels. A cgroup that vanished between the listing and the read (the container just
//! exited) is left out. See [`crate::runtime::usage`] for the figures.
//!
//! Error reporting: the kubelet 1.32 serves `resource_scrape_error` and hides the deprecated
//! `scrape_error` (deprecated in 1.29); both are written here, 1 when containerd could not be listed or a
//! cgroup could not be read for another reason than its removal.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiContext;
use crate::runtime::labels::{self, ContainerMeta};
use crate::runtime::usage::{self, Sources, Usage, UsageError};
use crate::runtime::{Runtime, TaskStatus, cgroups};

/// A container whose task runs (or is paused), as the agent's containerd records have it.
#[derive(Debug, Clone)]
pub struct RunningContainer {
    pub id: String,
    pub meta: ContainerMeta,
    /// When it started (the start-time label, else the record's creation).
    pub started_at: Option<jiff::Timestamp>,
}

/// One cgroup's figures and when they were read (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub usage: Usage,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    pub namespace: String,
    pub pod: String,
    pub point: Point,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSample {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub point: Point,
    pub started_at: Option<jiff::Timestamp>,
}

/// Everything one scrape reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// (CPU ns, ms) and (working set bytes, ms) of the node.
    pub node_cpu: Option<(u64, i64)>,
    pub node_memory: Option<(u64, i64)>,
    /// Sorted by (namespace, pod).
    pub pods: Vec<PodSample>,
    /// Sorted by (container, namespace, pod).
    pub containers: Vec<ContainerSample>,
    pub error: bool,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A usage read: `Some` with its time, `None` if the cgroup is gone; other failures are logged and set
/// `error`.
fn read_point(src: &Sources, rel: &str, error: &mut bool) -> Option<Point> {
    match usage::cgroup_usage(src, rel) {
        Ok(usage) => Some(Point {
            usage,
            at_ms: now_ms(),
        }),
        Err(UsageError::Vanished { .. }) => None,
        Err(e) => {
            tracing::warn!(cgroup = rel, error = %e, "resource metrics: cannot read cgroup");
            *error = true;
            None
        }
    }
}

/// Read the node and the cgroups of `running` (blocking). `listing_failed`: containerd could not be asked,
/// so the scrape is an error whatever else is read.
pub fn collect(src: &Sources, running: &[RunningContainer], listing_failed: bool) -> Snapshot {
    let mut snap = Snapshot {
        error: listing_failed,
        ..Snapshot::default()
    };
    match usage::node_cpu_ns(src) {
        Ok(ns) => snap.node_cpu = Some((ns, now_ms())),
        Err(e) => {
            tracing::warn!(error = %e, "resource metrics: node CPU");
            snap.error = true;
        }
    }
    match usage::node_working_set(src) {
        Ok(b) => snap.node_memory = Some((b, now_ms())),
        Err(e) => {
            tracing::warn!(error = %e, "resource metrics: node memory");
            snap.error = true;
        }
    }
    let mut pods: HashMap<&str, &ContainerMeta> = HashMap::new();
    for c in running {
        pods.entry(c.meta.pod_uid.as_str()).or_insert(&c.meta);
        let rel = cgroups::cgroups_path(&c.meta.pod_uid, &c.id);
        if let Some(point) = read_point(src, &rel, &mut snap.error) {
            snap.containers.push(ContainerSample {
                namespace: c.meta.pod_namespace.clone(),
                pod: c.meta.pod_name.clone(),
                container: c.meta.container_name.clone(),
                point,
                started_at: c.started_at,
            });
        }
    }
    for (uid, meta) in pods {
        let rel = format!("{}/pod{uid}", cgroups::parent());
        if let Some(point) = read_point(src, &rel, &mut snap.error) {
            snap.pods.push(PodSample {
                namespace: meta.pod_namespace.clone(),
                pod: meta.pod_name.clone(),
                point,
            });
        }
    }
    // Label sets must be unique in an exposition; a pod recreated under the same name while the old one's
    // containers still run would repeat one: keep one of them.
    snap.pods
        .sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
    snap.pods
        .dedup_by(|a, b| a.namespace == b.namespace && a.pod == b.pod);
    fn key(c: &ContainerSample) -> (&str, &str, &str) {
        (&c.container, &c.namespace, &c.pod)
    }
    snap.containers.sort_by(|a, b| key(a).cmp(&key(b)));
    snap.containers.dedup_by(|a, b| key(a) == key(b));
    snap
}

/// The containers whose tasks run, with their start times; `Err` when containerd cannot be listed.
async fn running_containers(rt: &Runtime) -> Result<Vec<RunningContainer>, String> {
    let records = rt.list_containers(None).await.map_err(|e| e.to_string())?;
    let status = rt.task_statuses().await.map_err(|e| e.to_string())?;
    Ok(records
        .into_iter()
        .filter(|r| {
            matches!(
                status.get(&r.id),
                Some(TaskStatus::Running | TaskStatus::Paused)
            )
        })
        .map(|r| RunningContainer {
            started_at: r
                .labels
                .get(labels::STARTED_AT)
                .and_then(|s| s.parse().ok())
                .or(r.created_at),
            id: r.id,
            meta: r.meta,
        })
        .collect())
}

pub async fn resource_metrics(State(ctx): State<Arc<ApiContext>>) -> Response {
    let (running, failed) = match running_containers(&ctx.runtime).await {
        Ok(r) => (r, false),
        Err(e) => {
            tracing::warn!(error = %e, "resource metrics: cannot list containers");
            (Vec::new(), true)
        }
    };
    let src = Sources::host(ctx.runtime.cgroup_v2);
    let snap = tokio::task::spawn_blocking(move || collect(&src, &running, failed))
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "resource metrics: collection failed");
            Snapshot {
                error: true,
                ..Snapshot::default()
            }
        });
    let mut r = (StatusCode::OK, render(&snap)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// A float as Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which the Prometheus text encoder uses: the
/// shortest digits that round-trip, in exponent form (`1.253376e+07`) when the exponent is below -4 or
/// 6 and above.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{v:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return v.to_string();
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return v.to_string();
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

/// A label value escaped for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64, at_ms: Option<i64>) {
    out.push_str(name);
    if !labels.is_empty() {
        let pairs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = write!(out, "{{{}}}", pairs.join(","));
    }
    let _ = write!(out, " {}", go_float(value));
    if let Some(ms) = at_ms {
        let _ = write!(out, " {ms}");
    }
    out.push('\n');
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

const CPU_HELP: &str = "Cumulative cpu time consumed by the";
const MEM_HELP: &str = "Current working set of the";
const ERROR_HELP: &str = "1 if there was an error while getting container metrics, 0 otherwise";

/// The labels of a container series, in the kubelet's (sorted) order.
fn container_labels(s: &ContainerSample) -> [(&'static str, &str); 3] {
    [
        ("container", s.container.as_str()),
        ("namespace", s.namespace.as_str()),
        ("pod", s.pod.as_str()),
    ]
}

fn pod_labels(p: &PodSample) -> [(&'static str, &str); 2] {
    [("namespace", p.namespace.as_str()), ("pod", p.pod.as_str())]
}

/// The exposition of `snap`, as the kubelet's registry writes it (families with no sample are left out).
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::new();
    let containers = &snap.containers;
    if !containers.is_empty() {
        let name = "container_cpu_usage_seconds_total";
        let help = format!("[STABLE] {CPU_HELP} container in core-seconds");
        family(&mut out, name, "counter", &help);
        for s in containers {
            let v = seconds(s.point.usage.cpu_ns);
            sample(&mut out, name, &container_labels(s), v, Some(s.point.at_ms));
        }
        let name = "container_memory_working_set_bytes";
        let help = format!("[STABLE] {MEM_HELP} container in bytes");
        family(&mut out, name, "gauge", &help);
        for s in containers {
            let v = s.point.usage.working_set as f64;
            sample(&mut out, name, &container_labels(s), v, Some(s.point.at_ms));
        }
    }
    // The kubelet leaves out start times at or before the epoch, and stamps none.
    let started: Vec<(&ContainerSample, f64)> = containers
        .iter()
        .filter_map(|s| {
            let t = s.started_at.filter(|t| t.as_second() > 0)?;
            Some((s, t.as_nanosecond() as f64 / 1e9))
        })
        .collect();
    if !started.is_empty() {
        let name = "container_start_time_seconds";
        let help = "[STABLE] Start time of the container since unix epoch in seconds";
        family(&mut out, name, "gauge", help);
        for (s, v) in started {
            sample(&mut out, name, &container_labels(s), v, None);
        }
    }
    if let Some((ns, at)) = snap.node_cpu {
        let name = "node_cpu_usage_seconds_total";
        let help = format!("[STABLE] {CPU_HELP} node in core-seconds");
        family(&mut out, name, "counter", &help);
        sample(&mut out, name, &[], seconds(ns), Some(at));
    }
    if let Some((bytes, at)) = snap.node_memory {
        let name = "node_memory_working_set_bytes";
        let help = format!("[STABLE] {MEM_HELP} node in bytes");
        family(&mut out, name, "gauge", &help);
        sample(&mut out, name, &[], bytes as f64, Some(at));
    }
    if !snap.pods.is_empty() {
        let name = "pod_cpu_usage_seconds_total";
        let help = format!("[STABLE] {CPU_HELP} pod in core-seconds");
        family(&mut out, name, "counter", &help);
        for p in &snap.pods {
            let v = seconds(p.point.usage.cpu_ns);
            sample(&mut out, name, &pod_labels(p), v, Some(p.point.at_ms));
        }
        let name = "pod_memory_working_set_bytes";
        let help = format!("[STABLE] {MEM_HELP} pod in bytes");
        family(&mut out, name, "gauge", &help);
        for p in &snap.pods {
            let v = p.point.usage.working_set as f64;
            sample(&mut out, name, &pod_labels(p), v, Some(p.point.at_ms));
        }
    }
    let error = if snap.error { 1.0 } else { 0.0 };
    let name = "resource_scrape_error";
    family(&mut out, name, "gauge", &format!("[STABLE] {ERROR_HELP}"));
    sample(&mut out, name, &[], error, None);
    let name = "scrape_error";
    let help = format!("[ALPHA] (Deprecated since 1.29.0) {ERROR_HELP}");
    family(&mut out, name, "gauge", &help);
    sample(&mut out, name, &[], error, None);
    out
}

#[cfg(test)]
#[path = "resource_metrics_tests.rs"]
mod tests;
