//! The last two scrapes of every node and container, and the usage between them (metrics-server's
//! `pkg/storage`): CPU is the rate of the cumulative counter over the window between the two points, memory
//! the latest working set. A container that restarted, or a point not newer than the stored one, starts the
//! pair over.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::parse::{Batch, PodKey, Point};
use super::{ContainerUsage, NodeUsage, PodUsage};

/// A container younger than this gets no synthetic first point at its start time: its few first seconds
/// of CPU make a poor rate (metrics-server's `freshContainerMinMetricsResolution`).
const FRESH_CONTAINER_MIN: Duration = Duration::from_secs(10);

/// CPU rate and window between two points of one series; `None` when the pair cannot make one (a counter
/// that went down, a start time that moved back, no time between them).
pub fn rate(last: &Point, prev: &Point) -> Option<(u64, SystemTime, Duration)> {
    if last.start_time < prev.start_time || last.cumulative_cpu_ns < prev.cumulative_cpu_ns {
        return None;
    }
    let window = last.timestamp.duration_since(prev.timestamp).ok()?;
    if window.is_zero() {
        return None;
    }
    let used = (last.cumulative_cpu_ns - prev.cumulative_cpu_ns) as f64;
    let nanocores = (used / window.as_secs_f64()) as u64;
    Some((nanocores, last.timestamp, window))
}

/// The stored pairs.
#[derive(Debug, Default)]
pub struct Points {
    resolution: Duration,
    last_nodes: HashMap<String, Point>,
    prev_nodes: HashMap<String, Point>,
    last_pods: HashMap<PodKey, HashMap<String, Point>>,
    prev_pods: HashMap<PodKey, HashMap<String, Point>>,
}

impl Points {
    pub fn new(resolution: Duration) -> Self {
        Points {
            resolution,
            ..Default::default()
        }
    }

    /// Take a scrape of all nodes: what it lacks is forgotten.
    pub fn store(&mut self, batch: Batch) {
        let mut prev_nodes = HashMap::new();
        for (name, new) in &batch.nodes {
            let Some(last) = self.last_nodes.get(name) else {
                continue;
            };
            if new.timestamp > last.timestamp {
                prev_nodes.insert(name.clone(), *last);
            } else if let Some(prev) = self.prev_nodes.get(name)
                && prev.timestamp < new.timestamp
            {
                prev_nodes.insert(name.clone(), *prev);
            }
        }
        let mut prev_pods = HashMap::new();
        for (key, containers) in &batch.pods {
            let mut prev_containers = HashMap::new();
            for (cname, new) in containers {
                let age = new.timestamp.duration_since(new.start_time).ok();
                if age.is_some_and(|a| {
                    !a.is_zero() && a < self.resolution && a >= FRESH_CONTAINER_MIN
                }) {
                    // Started within the last resolution: its counter was zero at its start.
                    let start = Point {
                        timestamp: new.start_time,
                        cumulative_cpu_ns: 0,
                        ..*new
                    };
                    prev_containers.insert(cname.clone(), start);
                    continue;
                }
                let Some(last) = self.last_pods.get(key).and_then(|p| p.get(cname)) else {
                    continue;
                };
                // A start after the stored point is a restart: the pair starts over.
                if new.start_time >= last.timestamp {
                    continue;
                }
                if new.timestamp > last.timestamp {
                    prev_containers.insert(cname.clone(), *last);
                } else if let Some(prev) = self.prev_pods.get(key).and_then(|p| p.get(cname))
                    && prev.timestamp < new.timestamp
                {
                    prev_containers.insert(cname.clone(), *prev);
                }
            }
            if !prev_containers.is_empty() {
                prev_pods.insert(key.clone(), prev_containers);
            }
        }
        self.last_nodes = batch.nodes;
        self.prev_nodes = prev_nodes;
        self.last_pods = batch.pods;
        self.prev_pods = prev_pods;
    }

    /// Usage of every node with two points.
    pub fn nodes(&self) -> HashMap<String, NodeUsage> {
        let mut out = HashMap::new();
        for (name, last) in &self.last_nodes {
            let Some(prev) = self.prev_nodes.get(name) else {
                continue;
            };
            let Some((cpu, timestamp, window)) = rate(last, prev) else {
                tracing::debug!(node = %name, "skipping node usage: counter went back");
                continue;
            };
            out.insert(
                name.clone(),
                NodeUsage {
                    timestamp,
                    window,
                    cpu_nanocores: cpu,
                    memory_bytes: last.memory_bytes,
                },
            );
        }
        out
    }

    /// Usage of every pod whose containers all have two points; the pod's timestamp and window are its
    /// earliest container's.
    pub fn pods(&self) -> HashMap<PodKey, PodUsage> {
        let mut out = HashMap::new();
        for (key, last) in &self.last_pods {
            let Some(prev) = self.prev_pods.get(key) else {
                continue;
            };
            let mut containers = Vec::new();
            let mut earliest: Option<(SystemTime, Duration)> = None;
            let mut complete = true;
            for (name, l) in last {
                let Some(p) = prev.get(name) else {
                    complete = false;
                    break;
                };
                let Some((cpu, ts, window)) = rate(l, p) else {
                    continue;
                };
                containers.push(ContainerUsage {
                    name: name.clone(),
                    cpu_nanocores: cpu,
                    memory_bytes: l.memory_bytes,
                });
                if earliest.is_none_or(|(t, _)| t > ts) {
                    earliest = Some((ts, window));
                }
            }
            if !complete {
                continue;
            }
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            let (timestamp, window) = earliest.unwrap_or((SystemTime::UNIX_EPOCH, Duration::ZERO));
            out.insert(
                key.clone(),
                PodUsage {
                    timestamp,
                    window,
                    containers,
                },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn point(start_ms: u64, ts_ms: u64, cpu_ns: u64, mem: u64) -> Point {
        Point {
            start_time: at(start_ms),
            timestamp: at(ts_ms),
            cumulative_cpu_ns: cpu_ns,
            memory_bytes: mem,
        }
    }

    fn batch(node: Option<Point>, containers: &[(&str, Point)]) -> Batch {
        let mut b = Batch::default();
        if let Some(n) = node {
            b.nodes.insert("n1".into(), n);
        }
        if !containers.is_empty() {
            b.pods.insert(
                ("default".into(), "web".into()),
                containers
                    .iter()
                    .map(|(n, p)| (n.to_string(), *p))
                    .collect(),
            );
        }
        b
    }

    fn web(p: &Points) -> Option<PodUsage> {
        p.pods()
            .get(&("default".to_string(), "web".to_string()))
            .cloned()
    }

    #[test]
    fn rate_between_the_last_two_scrapes() {
        let mut p = Points::new(Duration::from_secs(15));
        p.store(batch(
            Some(point(0, 100_000, 10_000_000_000, 500)),
            &[("a", point(1_000, 100_000, 1_000_000_000, 64))],
        ));
        assert!(p.nodes().is_empty(), "one point makes no rate");
        assert!(web(&p).is_none());
        // 15.002 s later: the node used 3.0004 s of CPU (0.2 cores), the container 0.15002 s (10m).
        p.store(batch(
            Some(point(0, 115_002, 13_000_400_000, 700)),
            &[("a", point(1_000, 115_002, 1_150_020_000, 80))],
        ));
        let n = p
            .nodes()
            .get("n1")
            .cloned()
            .unwrap_or_else(|| panic!("no node usage"));
        assert_eq!(
            (n.timestamp, n.window, n.memory_bytes),
            (at(115_002), Duration::from_millis(15_002), 700)
        );
        assert!(n.cpu_nanocores.abs_diff(200_000_000) <= 1, "{n:?}");
        let u = web(&p).unwrap_or_else(|| panic!("no pod usage"));
        assert_eq!(u.window, Duration::from_millis(15_002));
        assert!(
            u.containers[0].cpu_nanocores.abs_diff(10_000_000) <= 1,
            "{u:?}"
        );
        assert_eq!(u.containers[0].memory_bytes, 80);
        // Gone from the next scrape: dropped.
        p.store(batch(None, &[]));
        assert!(p.nodes().is_empty());
        assert!(web(&p).is_none());
    }

    #[test]
    fn counter_reset_and_restart_start_over() {
        let mut p = Points::new(Duration::from_secs(15));
        p.store(batch(
            Some(point(0, 0, 9_000, 1)),
            &[("a", point(1, 1_000, 5_000, 1))],
        ));
        p.store(batch(
            Some(point(0, 15_000, 1_000, 1)),
            &[("a", point(10_000, 16_000, 100, 1))],
        ));
        // The node counter went down: no usage now, the next scrape pairs with the low point.
        assert!(p.nodes().is_empty());
        // The container restarted after the stored point: no pair.
        assert!(web(&p).is_none());
        p.store(batch(
            Some(point(0, 30_000, 1_000 + 15_000_000_000, 1)),
            &[("a", point(10_000, 31_000, 100 + 1_500_000_000, 1))],
        ));
        assert_eq!(
            p.nodes().get("n1").map(|n| n.cpu_nanocores),
            Some(1_000_000_000)
        );
        assert_eq!(
            web(&p).map(|u| u.containers[0].cpu_nanocores),
            Some(100_000_000)
        );
    }

    #[test]
    fn pods_need_every_container_and_fresh_ones_count_from_start() {
        let mut p = Points::new(Duration::from_secs(15));
        p.store(batch(None, &[("a", point(0, 1_000, 1_000, 1))]));
        // Container b appears 20 s after its start: older than the resolution, so it needs two points.
        p.store(batch(
            None,
            &[
                ("a", point(0, 16_000, 2_000, 1)),
                ("b", point(0, 20_000, 1_000, 1)),
            ],
        ));
        assert!(web(&p).is_none(), "b has one point only");
        // A container 12 s old at its first scrape: rate from its start (counter 0 then).
        let mut p = Points::new(Duration::from_secs(15));
        p.store(batch(
            None,
            &[("a", point(100_000, 112_000, 600_000_000, 1))],
        ));
        let u = web(&p).unwrap_or_else(|| panic!("fresh container"));
        assert_eq!(u.window, Duration::from_secs(12));
        assert_eq!(u.containers[0].cpu_nanocores, 50_000_000);
        // Younger than 10 s: no synthetic point.
        let mut p = Points::new(Duration::from_secs(15));
        p.store(batch(
            None,
            &[("a", point(100_000, 105_000, 600_000_000, 1))],
        ));
        assert!(web(&p).is_none());
    }

    #[test]
    fn earliest_container_gives_the_pod_window() {
        let mut p = Points::new(Duration::from_secs(15));
        p.store(batch(
            None,
            &[("a", point(0, 1_000, 0, 1)), ("b", point(0, 2_000, 0, 1))],
        ));
        p.store(batch(
            None,
            &[
                ("a", point(0, 16_000, 15, 1)),
                ("b", point(0, 18_000, 16, 1)),
            ],
        ));
        let u = web(&p).unwrap_or_else(|| panic!("pod"));
        assert_eq!(u.timestamp, at(16_000));
        assert_eq!(u.window, Duration::from_secs(15));
        assert_eq!(
            u.containers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
