use super::*;
use crate::runtime::labels::ContainerKind;
use crate::runtime::usage::tests::{Fixture, PROC_STAT, V2_CPU_STAT, V2_MEMORY_STAT};

#[test]
fn floats_as_go_writes_them() {
    for (v, want) in [
        (0.0, "0"),
        (1.0, "1"),
        (10.0, "10"),
        (1000.0, "1000"),
        (123_456.0, "123456"),
        (1_234_567.0, "1.234567e+06"),
        (12_533_760.0, "1.253376e+07"),
        (4.710169, "4.710169"),
        (357.35491, "357.35491"),
        (1_624_396_248.302_091_6, "1.6243962483020916e+09"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1e21, "1e+21"),
        (1e100, "1e+100"),
        (-2.5e-7, "-2.5e-07"),
        (f64::INFINITY, "+Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(go_float(v), want, "{v}");
    }
}

fn point(cpu_ns: u64, working_set: u64) -> Point {
    Point {
        usage: Usage {
            cpu_ns,
            working_set,
        },
        at_ms: 1_624_396_278_302,
    }
}

fn container(name: &str, ns: &str, pod: &str, started: Option<i64>) -> ContainerSample {
    ContainerSample {
        namespace: ns.into(),
        pod: pod.into(),
        container: name.into(),
        point: point(10_000_000_000, 1000),
        started_at: started.and_then(|ns| jiff::Timestamp::from_nanosecond(ns.into()).ok()),
    }
}

/// The kubelet's own expectation (pkg/kubelet/metrics/collectors/resource_metrics_test.go) for the same
/// figures, plus what the node and the error gauges add.
#[test]
fn text_matches_the_kubelet() {
    let snap = Snapshot {
        node_cpu: Some((10_000_000_000, 1_624_396_278_302)),
        node_memory: Some((1000, 1_624_396_278_302)),
        pods: vec![PodSample {
            namespace: "namespace_a".into(),
            pod: "pod_a".into(),
            point: point(10_000_000_000, 1000),
        }],
        containers: vec![
            container(
                "container_a",
                "namespace_a",
                "pod_a",
                Some(1_624_396_248_302_091_597),
            ),
            container(
                "container_a",
                "namespace_b",
                "pod_b",
                Some(1_624_395_678_302_091_597),
            ),
            container("container_b", "namespace_a", "pod_a", Some(-1)),
        ],
        error: false,
    };
    let want = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="container_a",namespace="namespace_a",pod="pod_a"} 10 1624396278302
container_cpu_usage_seconds_total{container="container_a",namespace="namespace_b",pod="pod_b"} 10 1624396278302
container_cpu_usage_seconds_total{container="container_b",namespace="namespace_a",pod="pod_a"} 10 1624396278302
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="container_a",namespace="namespace_a",pod="pod_a"} 1000 1624396278302
container_memory_working_set_bytes{container="container_a",namespace="namespace_b",pod="pod_b"} 1000 1624396278302
container_memory_working_set_bytes{container="container_b",namespace="namespace_a",pod="pod_a"} 1000 1624396278302
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="container_a",namespace="namespace_a",pod="pod_a"} 1.6243962483020916e+09
container_start_time_seconds{container="container_a",namespace="namespace_b",pod="pod_b"} 1.6243956783020916e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 10 1624396278302
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1000 1624396278302
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="namespace_a",pod="pod_a"} 10 1624396278302
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="namespace_a",pod="pod_a"} 1000 1624396278302
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
# HELP scrape_error [ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise
# TYPE scrape_error gauge
scrape_error 0
"#;
    assert_eq!(render(&snap), want);
}

#[test]
fn an_empty_failed_scrape_has_only_the_error_gauges() {
    let text = render(&Snapshot {
        error: true,
        ..Snapshot::default()
    });
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(samples, ["resource_scrape_error 1", "scrape_error 1"]);
}

#[test]
fn label_values_are_escaped() {
    let mut out = String::new();
    sample(&mut out, "m", &[("pod", "a\"b\\c\nd")], 2.0, None);
    assert_eq!(out, "m{pod=\"a\\\"b\\\\c\\nd\"} 2\n");
}

fn running(uid: &str, ns: &str, pod: &str, name: &str) -> RunningContainer {
    let meta = ContainerMeta {
        pod_uid: uid.into(),
        pod_namespace: ns.into(),
        pod_name: pod.into(),
        container_name: name.into(),
        attempt: 0,
        kind: ContainerKind::App,
    };
    RunningContainer {
        id: meta.container_id(),
        meta,
        started_at: jiff::Timestamp::from_second(1_700_000_000).ok(),
    }
}

#[test]
fn collect_reads_v1_cgroups_and_skips_vanished_ones() {
    let f = Fixture::new(false);
    let parent = cgroups::parent();
    f.file("proc/stat", PROC_STAT);
    f.v1_cgroup("", 0, 2_000_000_000);
    f.v1_cgroup(&format!("{parent}/podu1"), 7_000_000_000, 3 << 20);
    f.v1_cgroup(&format!("{parent}/podu1/u1-web-0"), 5_000_000_000, 2 << 20);
    f.v1_cgroup(&format!("{parent}/podu1/u1-side-0"), 2_000_000_000, 1 << 20);
    // u2's container exited between the listing and the read: no cgroup left.
    let list = [
        running("u1", "default", "web", "web"),
        running("u1", "default", "web", "side"),
        running("u2", "default", "gone", "main"),
    ];
    let snap = collect(&f.src, &list, false);
    assert!(!snap.error, "{snap:?}");
    assert!(snap.node_cpu.is_some_and(|(ns, _)| ns > 0));
    assert_eq!(snap.node_memory.map(|m| m.0), Some(2_000_000_000));
    let got: Vec<(&str, u64, u64)> = snap
        .containers
        .iter()
        .map(|c| {
            (
                c.container.as_str(),
                c.point.usage.cpu_ns,
                c.point.usage.working_set,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("side", 2_000_000_000, 1 << 20),
            ("web", 5_000_000_000, 2 << 20)
        ]
    );
    assert_eq!(snap.pods.len(), 1, "{:?}", snap.pods);
    assert_eq!(
        (snap.pods[0].pod.as_str(), snap.pods[0].point.usage.cpu_ns),
        ("web", 7_000_000_000)
    );
    let text = render(&snap);
    assert!(text.contains(
        "container_start_time_seconds{container=\"web\",namespace=\"default\",pod=\"web\"} 1.7e+09\n"
    ));
    assert!(!text.contains("gone"), "{text}");

    // A cgroup file that is there but unreadable as a number is an error, not a removal.
    f.file(
        &format!("cgroup/cpuacct/{parent}/podu1/u1-web-0/cpuacct.usage"),
        "garbage",
    );
    let snap = collect(&f.src, &list, false);
    assert!(snap.error);
    assert_eq!(snap.containers.len(), 1);
    assert!(render(&snap).contains("\nscrape_error 1\n"));
    // containerd could not be listed: an error even though the node reads fine.
    assert!(collect(&f.src, &[], true).error);
}

#[test]
fn collect_reads_v2_cgroups() {
    let f = Fixture::new(true);
    let parent = cgroups::parent();
    f.file("proc/stat", PROC_STAT);
    f.file("cgroup/memory.stat", V2_MEMORY_STAT);
    for rel in [
        format!("{parent}/podu1"),
        format!("{parent}/podu1/u1-web-0"),
    ] {
        f.file(&format!("cgroup/{rel}/cpu.stat"), V2_CPU_STAT);
        f.file(&format!("cgroup/{rel}/memory.current"), "5435392\n");
        f.file(&format!("cgroup/{rel}/memory.stat"), V2_MEMORY_STAT);
    }
    let snap = collect(&f.src, &[running("u1", "ns", "web", "web")], false);
    assert!(!snap.error, "{snap:?}");
    let want = Usage {
        cpu_ns: 14_372_233_397_000,
        working_set: 5_435_392 - 3_219_456,
    };
    assert_eq!(
        snap.containers
            .iter()
            .map(|c| c.point.usage)
            .collect::<Vec<_>>(),
        [want]
    );
    assert_eq!(
        snap.pods.iter().map(|p| p.point.usage).collect::<Vec<_>>(),
        [want]
    );
    assert!(render(&snap).contains(
        "container_cpu_usage_seconds_total{container=\"web\",namespace=\"ns\",pod=\"web\"} 14372.233397 "
    ));
}
