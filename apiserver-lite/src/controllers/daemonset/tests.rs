use serde_json::json;

use super::cache::{Backoff, backoff_holds};
use super::writes::next_status;
use super::*;

#[test]
fn failed_pod_backoff_doubles_per_node() {
    let mut b = Backoff::new();
    let key = || ("uid".to_string(), "n1".to_string());
    let t0 = Instant::now();
    assert_eq!(backoff_holds(&mut b, key(), t0), Ok(()));
    assert_eq!(
        backoff_holds(&mut b, key(), t0 + Duration::from_millis(500)),
        Err(t0 + Duration::from_secs(1))
    );
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(backoff_holds(&mut b, key(), t1), Ok(()));
    assert_eq!(
        backoff_holds(&mut b, key(), t1 + Duration::from_secs(1)),
        Err(t1 + Duration::from_secs(2))
    );
    // Another node has its own backoff.
    assert_eq!(
        backoff_holds(&mut b, ("uid".into(), "n2".into()), t1),
        Ok(())
    );
}

#[test]
fn status_keeps_required_counters_and_omits_zeros() {
    let ds = json!({"metadata": {"generation": 3}, "status": {"collisionCount": 1,
        "updatedNumberScheduled": 4}});
    let s = next_status(
        &ds,
        &plan::Counts {
            desired: 2,
            current: 2,
            ready: 1,
            ..Default::default()
        },
    );
    assert_eq!(
        s,
        json!({"collisionCount": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
            "numberMisscheduled": 0, "numberReady": 1, "numberUnavailable": 2, "observedGeneration": 3})
    );
}
