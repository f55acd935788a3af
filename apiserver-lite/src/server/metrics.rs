//! `GET /metrics`: kube-apiserver's request metrics in the Prometheus text format 0.0.4, for monitoring
//! that scrapes an API server (and `kubectl get --raw /metrics`).
//!
//! - `apiserver_request_total` (counter, with the response code) and `apiserver_request_duration_seconds`
//!   (histogram, kube's buckets) with kube 1.32's labels (`k8s.io/apiserver/pkg/endpoints/metrics`): the verb
//!   as kube reports it (LIST and WATCH apart from GET, APPLY apart from PATCH, POST for a create, CONNECT
//!   for exec, attach, port-forward and proxy), `dry_run`, group, version, resource, subresource, scope
//!   (`resource` for a named object or a create, `namespace`, `cluster`, or empty for a non-resource URL) and
//!   `component="apiserver"`. A path that names no served resource is counted without resource labels, so
//!   clients cannot grow the label set.
//! - `apiserver_current_inflight_requests{request_kind}`: `readOnly` and `mutating` requests being served,
//!   long-running ones (WATCH, CONNECT) left out as kube does.
//! - `apiserver_longrunning_requests`: open watches, until their stream ends. kube also observes a watch's
//!   whole duration when it ends; here WATCH and CONNECT durations are not observed.
//! - `process_*`: the server's resident memory, CPU seconds, start time and open file descriptors.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use http::Method;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::resources::find_resource_version;

/// kube-apiserver's `apiserver_request_duration_seconds` buckets.
const BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// Subresources that are served by a proxy to the node (or a service), not by the REST handlers.
const PROXIED: &[&str] = &["log", "exec", "attach", "portforward", "proxy"];
/// Of those, the ones kube reports as CONNECT.
const CONNECT: &[&str] = &["exec", "attach", "portforward", "proxy"];

/// What a request is, in the terms of kube's metrics labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestInfo {
    pub verb: &'static str,
    pub dry_run: bool,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    pub scope: &'static str,
}

impl RequestInfo {
    /// Classify a request from its method, path, query and content type, as kube's RequestInfoFactory
    /// and `CleanVerb` do.
    pub fn parse(
        method: &Method,
        path: &str,
        query: Option<&str>,
        content_type: &str,
    ) -> RequestInfo {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let param = |name: &str| {
            query.into_iter().flat_map(|q| q.split('&')).find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == name).then_some(v)
            })
        };
        let mut info = RequestInfo {
            verb: match *method {
                Method::GET => "GET",
                Method::HEAD => "HEAD",
                Method::POST => "POST",
                Method::PUT => "PUT",
                Method::PATCH => "PATCH",
                Method::DELETE => "DELETE",
                Method::OPTIONS => "OPTIONS",
                _ => "other",
            },
            dry_run: param("dryRun").is_some_and(|v| !v.is_empty()),
            group: "",
            version: "",
            resource: "",
            subresource: "",
            scope: "",
        };
        let (group, version, mut rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => ("", *v, rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => return info,
        };
        let legacy_watch = rest.first() == Some(&"watch");
        if legacy_watch {
            rest = &rest[1..];
        }
        // `namespaces/<ns>/<resource>…` is in a namespace; `namespaces/<ns>[/status]` is the namespace.
        let mut namespaced = false;
        if rest.len() >= 3
            && rest[0] == "namespaces"
            && find_resource_version(group, version, rest[2]).is_some_and(|d| d.namespaced)
        {
            rest = &rest[2..];
            namespaced = true;
        }
        let Some(def) = rest
            .first()
            .and_then(|r| find_resource_version(group, version, r))
        else {
            return info;
        };
        let named = rest.len() >= 2;
        let sub = rest.get(2).and_then(|s| {
            def.subresources
                .iter()
                .chain(PROXIED)
                .find(|known| *known == s)
                .copied()
        });
        // Paths the router answers 404 stay unlabelled.
        if rest.len() > 3
            || (rest.len() == 3 && sub.is_none())
            || (def.namespaced && !namespaced && named)
        {
            return info;
        }
        info.group = def.group;
        // Each served group-version has its own definition: this is the version the path named.
        info.version = def.version;
        info.resource = def.plural;
        info.subresource = sub.unwrap_or("");
        info.scope = if named || info.verb == "POST" {
            "resource"
        } else if namespaced {
            "namespace"
        } else {
            "cluster"
        };
        let watch = param("watch").is_some_and(|v| !matches!(v, "0" | "false" | "False"));
        info.verb = match info.verb {
            "GET" | "HEAD" if legacy_watch || (!named && watch) => "WATCH",
            "GET" | "HEAD" if !named => "LIST",
            "DELETE" if !named => "DELETECOLLECTION",
            "PATCH" if content_type.starts_with("application/apply-patch") => "APPLY",
            v => v,
        };
        if sub.is_some_and(|s| CONNECT.contains(&s)) {
            info.verb = "CONNECT";
        }
        info
    }

    /// A watch or a connection: not in flight as a request, and no duration is observed.
    fn long_running(&self) -> bool {
        matches!(self.verb, "WATCH" | "CONNECT")
    }

    fn read_only(&self) -> bool {
        matches!(self.verb, "GET" | "LIST" | "HEAD" | "OPTIONS")
    }

    /// `verb="…",dry_run="…",group="…",…` (labels of kube's order).
    fn labels(&self) -> String {
        format!(
            "component=\"apiserver\",dry_run=\"{}\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"",
            if self.dry_run { "All" } else { "" },
            self.group,
            self.resource,
            self.scope,
            self.subresource,
            self.verb,
            self.version,
        )
    }
}

#[derive(Default)]
struct Histogram {
    /// Observations per bucket (not cumulative), the last one past every bound.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += seconds;
    }
}

#[derive(Default)]
struct Recorded {
    totals: BTreeMap<(RequestInfo, u16), u64>,
    durations: BTreeMap<RequestInfo, Histogram>,
    watches: BTreeMap<RequestInfo, i64>,
}

/// The server's request metrics.
#[derive(Default)]
pub struct RequestMetrics {
    recorded: Mutex<Recorded>,
    read_only: AtomicI64,
    mutating: AtomicI64,
}

/// A request being served: [`RequestMetrics::finish`] records it.
pub struct InFlight {
    info: RequestInfo,
    started: Instant,
}

impl RequestMetrics {
    fn inflight(&self, info: &RequestInfo) -> &AtomicI64 {
        if info.read_only() {
            &self.read_only
        } else {
            &self.mutating
        }
    }

    pub fn start(&self, info: RequestInfo) -> InFlight {
        if !info.long_running() {
            self.inflight(&info).fetch_add(1, Ordering::Relaxed);
        }
        InFlight {
            info,
            started: Instant::now(),
        }
    }

    /// Count the answered request; a watch that is being streamed is followed until its body ends.
    pub fn finish(self: &std::sync::Arc<Self>, req: InFlight, resp: Response) -> Response {
        let code = resp.status().as_u16();
        let seconds = req.started.elapsed().as_secs_f64();
        if !req.info.long_running() {
            self.inflight(&req.info).fetch_sub(1, Ordering::Relaxed);
        }
        let Ok(mut r) = self.recorded.lock() else {
            return resp;
        };
        *r.totals.entry((req.info.clone(), code)).or_default() += 1;
        if !req.info.long_running() {
            r.durations
                .entry(req.info.clone())
                .or_default()
                .observe(seconds);
            return resp;
        }
        if req.info.verb != "WATCH" || code != 200 {
            return resp;
        }
        *r.watches.entry(req.info.clone()).or_default() += 1;
        drop(r);
        let watch = Watch {
            metrics: self.clone(),
            info: req.info,
        };
        resp.map(|inner| {
            Body::new(Tracked {
                inner,
                _watch: watch,
            })
        })
    }

    /// The exposition (text format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(r) = self.recorded.lock() else {
            return out;
        };
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        for ((info, code), n) in &r.totals {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{code}\",{}}} {n}",
                info.labels()
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n# TYPE apiserver_request_duration_seconds histogram\n");
        for (info, h) in &r.durations {
            let labels = info.labels();
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(&h.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += h.counts[BUCKETS.len()];
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}\napiserver_request_duration_seconds_sum{{{labels}}} {}\napiserver_request_duration_seconds_count{{{labels}}} {cumulative}",
                h.sum
            );
        }
        out.push_str("# HELP apiserver_longrunning_requests Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.\n# TYPE apiserver_longrunning_requests gauge\n");
        for (info, n) in &r.watches {
            let _ = writeln!(
                out,
                "apiserver_longrunning_requests{{{}}} {n}",
                info.labels()
            );
        }
        drop(r);
        let _ = write!(
            out,
            "# HELP apiserver_current_inflight_requests Maximal number of currently used inflight request limit of this apiserver per request kind in last second.\n# TYPE apiserver_current_inflight_requests gauge\napiserver_current_inflight_requests{{request_kind=\"mutating\"}} {}\napiserver_current_inflight_requests{{request_kind=\"readOnly\"}} {}\n",
            self.mutating.load(Ordering::Relaxed),
            self.read_only.load(Ordering::Relaxed),
        );
        process(&mut out);
        out
    }
}

type Response = http::Response<Body>;

/// An open watch, counted in `apiserver_longrunning_requests` until dropped with its stream.
struct Watch {
    metrics: std::sync::Arc<RequestMetrics>,
    info: RequestInfo,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(mut r) = self.metrics.recorded.lock()
            && let Some(n) = r.watches.get_mut(&self.info)
        {
            *n -= 1;
        }
    }
}

/// A response body that holds its watch's place in the gauge.
struct Tracked {
    inner: Body,
    _watch: Watch,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `process_*` metrics of this process, from `/proc/self`.
fn process(out: &mut String) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces), counted from 3 (`state`).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    // `/proc` counts CPU time in USER_HZ, which Linux fixes at 100 on every architecture it runs here.
    let tick = 100.0;
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        });
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).ok();
    let mut gauge = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            );
        }
    };
    gauge(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        field(14).zip(field(15)).map(|(u, s)| (u + s) / tick),
    );
    gauge(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        rss_kib.map(|kib| kib * 1024.0),
    );
    gauge(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        field(22).zip(boot).map(|(t, b)| b + t / tick),
    );
    gauge(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        fds.map(|n| n.saturating_sub(1) as f64),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, query: Option<&str>) -> RequestInfo {
        RequestInfo::parse(&method, path, query, "application/json")
    }

    #[test]
    fn requests_are_classified_as_kube_labels_them() {
        let list = info(
            Method::GET,
            "/api/v1/namespaces/default/pods",
            Some("limit=500"),
        );
        assert_eq!(
            (
                list.verb,
                list.group,
                list.version,
                list.resource,
                list.scope
            ),
            ("LIST", "", "v1", "pods", "namespace")
        );
        let watch = info(
            Method::GET,
            "/apis/apps/v1/deployments",
            Some("watch=true&resourceVersion=5"),
        );
        assert_eq!((watch.verb, watch.scope), ("WATCH", "cluster"));
        assert_eq!(
            info(
                Method::GET,
                "/api/v1/namespaces/default/pods",
                Some("watch=0")
            )
            .verb,
            "LIST"
        );
        let get = info(Method::GET, "/api/v1/namespaces/default/pods/p/log", None);
        assert_eq!(
            (get.verb, get.subresource, get.scope),
            ("GET", "log", "resource")
        );
        let create = info(
            Method::POST,
            "/api/v1/namespaces/default/pods",
            Some("dryRun=All"),
        );
        assert_eq!(
            (create.verb, create.scope, create.dry_run),
            ("POST", "resource", true)
        );
        let exec = info(Method::POST, "/api/v1/namespaces/default/pods/p/exec", None);
        assert_eq!((exec.verb, exec.subresource), ("CONNECT", "exec"));
        let status = info(
            Method::PUT,
            "/api/v1/namespaces/default/pods/p/status",
            None,
        );
        assert_eq!((status.verb, status.subresource), ("PUT", "status"));
        let namespace = info(Method::DELETE, "/api/v1/namespaces/default", None);
        assert_eq!(
            (namespace.verb, namespace.resource, namespace.scope),
            ("DELETE", "namespaces", "resource")
        );
        let collection = info(
            Method::DELETE,
            "/api/v1/namespaces/default/configmaps",
            None,
        );
        assert_eq!(collection.verb, "DELETECOLLECTION");
        let apply = RequestInfo::parse(
            &Method::PATCH,
            "/api/v1/namespaces/default/configmaps/c",
            Some("fieldManager=kubectl"),
            "application/apply-patch+yaml",
        );
        assert_eq!(apply.verb, "APPLY");
        let legacy = info(Method::GET, "/api/v1/watch/namespaces/default/pods", None);
        assert_eq!((legacy.verb, legacy.resource), ("WATCH", "pods"));
        // Nothing a client makes up becomes a label.
        let unknown = info(Method::GET, "/api/v1/namespaces/default/made-up/x", None);
        assert_eq!(
            (
                unknown.verb,
                unknown.resource,
                unknown.version,
                unknown.scope
            ),
            ("GET", "", "", "")
        );
        let sub = info(
            Method::GET,
            "/api/v1/namespaces/default/pods/p/made-up",
            None,
        );
        assert_eq!(sub.subresource, "");
        let root = info(Method::GET, "/healthz", None);
        assert_eq!((root.verb, root.resource, root.scope), ("GET", "", ""));
    }

    #[test]
    fn totals_and_durations_are_rendered_with_kube_names() {
        let m = std::sync::Arc::new(RequestMetrics::default());
        for code in [200, 200, 404] {
            let req = m.start(info(Method::GET, "/api/v1/namespaces/default/pods/p", None));
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = http::StatusCode::from_u16(code).unwrap_or_default();
            drop(m.finish(req, resp));
        }
        let text = m.render();
        let labels = "component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\"";
        assert!(
            text.contains(&format!(
                "apiserver_request_total{{code=\"200\",{labels}}} 2\n"
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "apiserver_request_total{{code=\"404\",{labels}}} 1\n"
        )));
        assert!(text.contains(&format!(
            "apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "apiserver_request_duration_seconds_count{{{labels}}} 3\n"
        )));
        assert!(
            text.contains("apiserver_current_inflight_requests{request_kind=\"readOnly\"} 0\n")
        );
        assert!(text.contains("\nprocess_resident_memory_bytes "));
    }

    #[test]
    fn an_open_watch_is_counted_until_its_stream_ends() {
        let m = std::sync::Arc::new(RequestMetrics::default());
        let req = m.start(info(
            Method::GET,
            "/api/v1/namespaces/default/pods",
            Some("watch=1"),
        ));
        let open = m.finish(req, Response::new(Body::empty()));
        let gauge = "apiserver_longrunning_requests{component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"namespace\",subresource=\"\",verb=\"WATCH\",version=\"v1\"}";
        assert!(m.render().contains(&format!("{gauge} 1\n")));
        assert!(
            !m.render()
                .contains("apiserver_request_duration_seconds_bucket{")
        );
        drop(open);
        assert!(m.render().contains(&format!("{gauge} 0\n")));
    }
}
