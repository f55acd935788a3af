//! kube's replica calculator cases (`replica_calculator_test.go`), rewritten.

use super::*;

fn pod(name: &str, usage: Option<i128>, request: i128) -> PodSample {
    PodSample {
        name: name.into(),
        ignored: false,
        pending: false,
        unready: false,
        usage,
        request: Ok(request),
    }
}

#[test]
fn scale_up_on_cpu_utilization() {
    // kube's TestReplicaCalcScaleUp: 3 pods at 300m, 500m, 700m of 1 cpu requested, target 30 %.
    let pods = [
        pod("a", Some(300), 1000),
        pod("b", Some(500), 1000),
        pod("c", Some(700), 1000),
    ];
    let r = replicas(3, &pods, Target::Utilization(30), "cpu").expect("computes");
    assert_eq!(r.replicas, 5);
    assert_eq!(r.utilization, Some(50));
}

#[test]
fn within_tolerance_keeps_the_count() {
    let pods = [pod("a", Some(1050), 1000), pod("b", Some(1000), 1000)];
    let r = replicas(2, &pods, Target::Utilization(100), "cpu").expect("computes");
    assert_eq!(r.replicas, 2);
}

#[test]
fn scale_down() {
    // kube's TestReplicaCalcScaleDown: 5 pods at 100..500m of 1 cpu, target 50 %.
    let pods: Vec<PodSample> = (1..=5)
        .map(|i| pod(&format!("p{i}"), Some(i * 100), 1000))
        .collect();
    let r = replicas(5, &pods, Target::Utilization(50), "cpu").expect("computes");
    assert_eq!(r.replicas, 3);
}

#[test]
fn unready_pods_count_zero_when_scaling_up() {
    // kube's TestReplicaCalcScaleUpUnreadyLessScale: one unready pod dampens the scale-up.
    let mut unready = pod("a", Some(300), 1000);
    unready.unready = true;
    let pods = [
        unready,
        pod("b", Some(500), 1000),
        pod("c", Some(700), 1000),
    ];
    let r = replicas(3, &pods, Target::Utilization(30), "cpu").expect("computes");
    assert_eq!(r.replicas, 4);
}

#[test]
fn missing_metrics_assume_full_use_on_scale_down() {
    // kube's TestReplicaCalcMissingMetricsNoChangeGt: a scale-down that the missing pod reverses.
    let pods = [
        pod("a", Some(1900), 2000),
        pod("b", Some(600), 2000),
        pod("c", None, 2000),
    ];
    let r = replicas(3, &pods, Target::Utilization(100), "cpu").expect("computes");
    assert_eq!(r.replicas, 3);
}

#[test]
fn missing_request_is_an_error() {
    let mut p = pod("a", Some(100), 0);
    p.request = Err("c".into());
    let e = replicas(1, &[p], Target::Utilization(50), "cpu").expect_err("no request");
    assert_eq!(e, "missing request for cpu in container c of Pod a");
}

#[test]
fn average_value() {
    // 2 pods averaging 400m against 200m per pod → 4.
    let pods = [pod("a", Some(300), 0), pod("b", Some(500), 0)];
    let r = replicas(2, &pods, Target::AverageValue(200), "cpu").expect("computes");
    assert_eq!(r.replicas, 4);
    assert_eq!(r.average, 400);
}

#[test]
fn no_pods_is_an_error() {
    assert!(replicas(1, &[], Target::Utilization(50), "cpu").is_err());
}
