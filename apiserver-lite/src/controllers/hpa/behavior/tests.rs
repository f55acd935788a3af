//! Normalization cases after kube's `horizontal_test.go` (`TestNormalizeDesiredReplicasWithBehavior`,
//! `TestScalingWithRules`), rewritten.

use serde_json::{Value, json};

use super::*;

fn behavior(up: Value, down: Value) -> Value {
    json!({"scaleUp": up, "scaleDown": down})
}

/// A `behavior` with the given scale-down window and kube's default policies otherwise.
fn down_window(seconds: i64) -> Value {
    behavior(json!({}), json!({"stabilizationWindowSeconds": seconds}))
}

#[test]
fn scale_down_window_keeps_the_highest_recent_recommendation() {
    let b = down_window(60);
    let mut h = History::initial(5, 0.0);
    let n = normalize(&mut h, 10.0, Some(&b), 5, 2, 1, 10);
    assert_eq!(
        n.replicas, 5,
        "the initial recommendation (5) is in the window"
    );
    assert_eq!(n.able, DOWN_STABILIZED);
    assert!(!n.limited.0);
    // 3 after the first recommendations left the window: the highest left is 2 (at t=10), then 3.
    let n = normalize(&mut h, 65.0, Some(&b), 5, 3, 1, 10);
    assert_eq!(n.replicas, 3);
    assert_eq!(n.able, READY);
    let n = normalize(&mut h, 80.0, Some(&b), 3, 1, 1, 10);
    assert_eq!(n.replicas, 3, "3 (at t=65) still in the window");
}

#[test]
fn scale_up_window_keeps_the_lowest_recent_recommendation() {
    let b = behavior(json!({"stabilizationWindowSeconds": 60}), json!({}));
    let mut h = History::initial(2, 0.0);
    let n = normalize(&mut h, 5.0, Some(&b), 2, 6, 1, 10);
    assert_eq!(n.replicas, 2);
    assert_eq!(n.able, UP_STABILIZED);
    let n = normalize(&mut h, 61.0, Some(&b), 2, 6, 1, 10);
    assert_eq!(n.replicas, 6, "only 6s left in the window");
    assert_eq!(n.able, READY);
}

#[test]
fn default_behavior_scales_up_by_the_bigger_of_4_pods_and_100_percent() {
    let b = behavior(json!({}), json!({}));
    let mut h = History::default();
    let n = normalize(&mut h, 0.0, Some(&b), 1, 20, 1, 100);
    assert_eq!(n.replicas, 5, "1 + 4 pods beats 1 × 2");
    assert_eq!(n.limited, (true, UP_LIMIT));
    let mut h = History::default();
    let n = normalize(&mut h, 0.0, Some(&b), 10, 50, 1, 100);
    assert_eq!(n.replicas, 20, "10 × 2 beats 10 + 4");
}

#[test]
fn policies_count_the_changes_within_their_period() {
    let b = behavior(
        json!({"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}),
        json!({}),
    );
    let mut h = History::default();
    let n = normalize(&mut h, 0.0, Some(&b), 1, 10, 1, 100);
    assert_eq!(n.replicas, 3);
    h.record_scale(Some(&b), 0.0, 1, 3);
    let n = normalize(&mut h, 30.0, Some(&b), 3, 10, 1, 100);
    assert_eq!(n.replicas, 3, "2 pods already added in the last 60 s");
    assert_eq!(n.limited, (true, UP_LIMIT));
    let n = normalize(&mut h, 61.0, Some(&b), 3, 10, 1, 100);
    assert_eq!(n.replicas, 5, "the period has passed");
}

#[test]
fn percent_scale_down_rounds_down() {
    let b = behavior(
        json!({}),
        json!({"stabilizationWindowSeconds": 0,
            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}),
    );
    let mut h = History::default();
    let n = normalize(&mut h, 0.0, Some(&b), 5, 1, 1, 10);
    assert_eq!(n.replicas, 2, "5 × 0.5 = 2.5 → 2");
    assert_eq!(n.limited, (true, DOWN_LIMIT));
}

#[test]
fn select_policy_min_and_max() {
    let policies = json!([{"type": "Pods", "value": 1, "periodSeconds": 60},
        {"type": "Percent", "value": 50, "periodSeconds": 60}]);
    let run = |up: &str, down: &str, current: i64, desired: i64| {
        let b = behavior(
            json!({"selectPolicy": up, "policies": policies}),
            json!({"selectPolicy": down, "stabilizationWindowSeconds": 0, "policies": policies}),
        );
        normalize(
            &mut History::default(),
            0.0,
            Some(&b),
            current,
            desired,
            1,
            100,
        )
        .replicas
    };
    // Up from 10: +1 → 11, +50 % → 15.
    assert_eq!(run("Max", "Max", 10, 30), 15);
    assert_eq!(run("Min", "Max", 10, 30), 11);
    // Down from 10: −1 → 9, −50 % → 5.
    assert_eq!(run("Max", "Max", 10, 1), 5);
    assert_eq!(run("Max", "Min", 10, 1), 9);
}

#[test]
fn disabled_direction_does_not_move() {
    let b = behavior(
        json!({"selectPolicy": "Disabled"}),
        json!({"selectPolicy": "Disabled", "stabilizationWindowSeconds": 0}),
    );
    let n = normalize(&mut History::default(), 0.0, Some(&b), 3, 8, 1, 10);
    assert_eq!(n.replicas, 3);
    assert_eq!(n.limited, (true, UP_LIMIT));
    let n = normalize(&mut History::default(), 0.0, Some(&b), 3, 1, 1, 10);
    assert_eq!(n.replicas, 3);
    assert_eq!(n.limited, (true, DOWN_LIMIT));
}

#[test]
fn min_and_max_bound_the_result() {
    let b = behavior(json!({}), json!({"stabilizationWindowSeconds": 0}));
    let n = normalize(&mut History::default(), 0.0, Some(&b), 2, 4, 1, 3);
    assert_eq!((n.replicas, n.limited), (3, (true, TOO_MANY)));
    let n = normalize(&mut History::default(), 0.0, Some(&b), 4, 1, 2, 10);
    assert_eq!((n.replicas, n.limited), (2, (true, TOO_FEW)));
    let n = normalize(&mut History::default(), 0.0, Some(&b), 2, 3, 1, 10);
    assert_eq!((n.replicas, n.limited), (3, (false, WITHIN)));
}

#[test]
fn without_behavior_kube_keeps_its_flags() {
    // The controller's 300 s downscale window.
    let mut h = History::initial(4, 0.0);
    let n = normalize(&mut h, 100.0, None, 4, 1, 1, 10);
    assert_eq!((n.replicas, n.able), (4, DOWN_STABILIZED));
    let n = normalize(&mut h, 301.0, None, 4, 1, 1, 10);
    assert_eq!(
        n.replicas, 1,
        "only recommendations of 1 are left in the window"
    );
    // Up: at most max(2 × current, 4).
    let n = normalize(&mut History::default(), 0.0, None, 3, 20, 1, 10);
    assert_eq!((n.replicas, n.limited), (6, (true, UP_LIMIT)));
    let n = normalize(&mut History::default(), 0.0, None, 1, 20, 1, 3);
    assert_eq!((n.replicas, n.limited), (3, (true, TOO_MANY)));
}

#[test]
fn no_scale_events_are_kept_without_behavior() {
    let mut h = History::default();
    h.record_scale(None, 0.0, 1, 3);
    assert!(h.up_events.is_empty() && h.down_events.is_empty());
}
