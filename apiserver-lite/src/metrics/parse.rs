//! The part of the Prometheus text format the kubelet's `/metrics/resource` uses, decoded the way
//! metrics-server does (`pkg/scraper/client/resource/decode.go`): node and container CPU counters, working
//! sets and container start times; every other series is skipped.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

/// One sample set of a node or a container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// When the container (or node) started; the CPU counter was zero then. `UNIX_EPOCH` when unknown.
    pub start_time: SystemTime,
    /// When the CPU counter was read.
    pub timestamp: SystemTime,
    /// CPU time used since `start_time`, in nanoseconds.
    pub cumulative_cpu_ns: u64,
    /// Working set, in bytes.
    pub memory_bytes: u64,
}

impl Default for Point {
    fn default() -> Self {
        Point {
            start_time: SystemTime::UNIX_EPOCH,
            timestamp: SystemTime::UNIX_EPOCH,
            cumulative_cpu_ns: 0,
            memory_bytes: 0,
        }
    }
}

/// (namespace, pod name).
pub type PodKey = (String, String);

/// What one node's `/metrics/resource` says.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    pub nodes: HashMap<String, Point>,
    /// Per pod, its containers' points by container name.
    pub pods: HashMap<PodKey, HashMap<String, Point>>,
}

/// A sample line: name, labels, value, timestamp in ms.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    labels: BTreeMap<String, String>,
    value: f64,
    timestamp_ms: Option<i64>,
}

/// Parse `{a="x",b="y\"z"}` (the opening brace already consumed); returns the labels and the rest after `}`.
fn labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut out = BTreeMap::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((out, rest));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim().to_string();
        let mut chars = s[eq + 1..].trim_start().char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("label {key}: value not quoted"));
        }
        let body = s[eq + 1..].trim_start();
        let mut value = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in chars {
            match (escaped, c) {
                (true, 'n') => {
                    value.push('\n');
                    escaped = false;
                }
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("label {key}: unterminated value"))?;
        out.insert(key, value);
        s = &body[end + 1..];
    }
}

fn float(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

fn sample(line: &str) -> Result<Sample<'_>, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or_else(|| format!("no value: {line:?}"))?;
    let name = &line[..name_end];
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(l) => labels(l)?,
        None => (BTreeMap::new(), &line[name_end..]),
    };
    let mut fields = rest.split_whitespace();
    let value = float(fields.next().ok_or_else(|| format!("no value: {line:?}"))?)?;
    let timestamp_ms = fields
        .next()
        .map(|t| t.parse::<i64>().map_err(|_| format!("bad timestamp {t:?}")))
        .transpose()?;
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// The point of the container a sample's labels name.
fn container<'a>(
    pods: &'a mut HashMap<PodKey, HashMap<String, Point>>,
    labels: &BTreeMap<String, String>,
) -> &'a mut Point {
    let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
    pods.entry((label("namespace"), label("pod")))
        .or_default()
        .entry(label("container"))
        .or_default()
}

fn at_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn seconds_to_ns(v: f64) -> u64 {
    // `as` saturates (NaN → 0), as Go's conversion does for these in-range values.
    (v * 1e9) as u64
}

/// Decode one node's answer. `default_time` stands for samples without a timestamp (the scrape's start, as
/// metrics-server). A node appears only with CPU, memory and a timestamp; a pod only when every container
/// listed has both CPU and memory (metrics-server's `checkContainerMetrics`).
pub fn decode(text: &str, default_time: SystemTime, node_name: &str) -> Result<Batch, String> {
    let mut node = Point::default();
    let mut pods: HashMap<PodKey, HashMap<String, Point>> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let s = sample(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let ts = s.timestamp_ms.map(at_ms).unwrap_or(default_time);
        match s.name {
            "node_cpu_usage_seconds_total" => {
                node.cumulative_cpu_ns = seconds_to_ns(s.value);
                node.timestamp = ts;
            }
            "node_memory_working_set_bytes" => {
                node.memory_bytes = s.value as u64;
                node.timestamp = ts;
            }
            "container_cpu_usage_seconds_total" => {
                let p = container(&mut pods, &s.labels);
                p.cumulative_cpu_ns = seconds_to_ns(s.value);
                p.timestamp = ts;
            }
            "container_memory_working_set_bytes" => {
                let p = container(&mut pods, &s.labels);
                p.memory_bytes = s.value as u64;
                p.timestamp = ts;
            }
            "container_start_time_seconds" => {
                container(&mut pods, &s.labels).start_time =
                    SystemTime::UNIX_EPOCH + Duration::from_nanos(seconds_to_ns(s.value));
            }
            _ => {}
        }
    }
    let mut batch = Batch::default();
    if node.timestamp != SystemTime::UNIX_EPOCH
        && node.cumulative_cpu_ns != 0
        && node.memory_bytes != 0
    {
        batch.nodes.insert(node_name.to_string(), node);
    } else {
        tracing::debug!(node = node_name, "incomplete node metrics");
    }
    for (key, containers) in pods {
        if containers
            .values()
            .any(|c| c.cumulative_cpu_ns == 0 || c.memory_bytes == 0)
        {
            tracing::debug!(pod = %format!("{}/{}", key.0, key.1), "incomplete pod metrics");
            continue;
        }
        batch.pods.insert(key, containers);
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kubelet 1.32's `/metrics/resource`, as it answers on a node with CoreDNS.
    pub const KUBELET: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-55cb58b774-7vm9q"} 2.424399 1686743454383
container_cpu_usage_seconds_total{container="sidecar",namespace="kube-system",pod="coredns-55cb58b774-7vm9q"} 0.5 1686743454383
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-55cb58b774-7vm9q"} 1.363968e+07 1686743454383
container_memory_working_set_bytes{container="sidecar",namespace="kube-system",pod="coredns-55cb58b774-7vm9q"} 4096 1686743454383
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="coredns",namespace="kube-system",pod="coredns-55cb58b774-7vm9q"} 1.6867429621e+09 1686742962100
container_start_time_seconds{container="sidecar",namespace="kube-system",pod="coredns-55cb58b774-7vm9q"} 1.6867429621e+09 1686742962100
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 23.415489 1686743451493
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 5.90508032e+08 1686743451493
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="kube-system",pod="coredns-55cb58b774-7vm9q"} 2.924399 1686743450802
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="kube-system",pod="coredns-55cb58b774-7vm9q"} 1.3643776e+07 1686743450802
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
"#;

    fn ms(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn decodes_kubelet_output() {
        let b = decode(KUBELET, ms(1), "n1").unwrap_or_default();
        assert_eq!(
            b.nodes.get("n1"),
            Some(&Point {
                start_time: SystemTime::UNIX_EPOCH,
                timestamp: ms(1_686_743_451_493),
                cumulative_cpu_ns: 23_415_489_000,
                memory_bytes: 590_508_032,
            })
        );
        let pod = b
            .pods
            .get(&(
                "kube-system".to_string(),
                "coredns-55cb58b774-7vm9q".to_string(),
            ))
            .cloned()
            .unwrap_or_default();
        assert_eq!(pod.len(), 2);
        let c = pod.get("coredns").copied().unwrap_or_default();
        assert_eq!(c.cumulative_cpu_ns, 2_424_399_000);
        assert_eq!(c.memory_bytes, 13_639_680);
        assert_eq!(c.timestamp, ms(1_686_743_454_383));
        assert_eq!(c.start_time, ms(1_686_742_962_100));
    }

    #[test]
    fn incomplete_series_are_dropped() {
        let text = "container_cpu_usage_seconds_total{container=\"a\",namespace=\"d\",pod=\"p\"} 1 1000\n\
            container_cpu_usage_seconds_total{container=\"b\",namespace=\"d\",pod=\"p\"} 1 1000\n\
            container_memory_working_set_bytes{container=\"a\",namespace=\"d\",pod=\"p\"} 10 1000\n\
            node_cpu_usage_seconds_total 5\n";
        let b = decode(text, ms(7), "n").unwrap_or_default();
        // Container b has no memory: the whole pod is left out; the node has no memory either.
        assert!(b.pods.is_empty(), "{b:?}");
        assert!(b.nodes.is_empty());
        let text = "node_cpu_usage_seconds_total 5\nnode_memory_working_set_bytes 10\n";
        let b = decode(text, ms(7), "n").unwrap_or_default();
        assert_eq!(b.nodes.get("n").map(|p| p.timestamp), Some(ms(7)));
    }

    #[test]
    fn label_escapes_and_errors() {
        let s = sample(r#"x{a="q\"x\\y",b="1"} NaN"#);
        let s = s.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.labels.get("a").map(String::as_str), Some("q\"x\\y"));
        assert!(s.value.is_nan());
        assert!(decode("node_cpu_usage_seconds_total{a=\"x} 1\n", ms(1), "n").is_err());
        assert!(decode("node_cpu_usage_seconds_total abc\n", ms(1), "n").is_err());
        assert!(decode("node_cpu_usage_seconds_total 1 12x\n", ms(1), "n").is_err());
    }
}
