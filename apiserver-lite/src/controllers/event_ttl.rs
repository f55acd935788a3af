//! Event expiry: Events older than the TTL (kube-apiserver's `--event-ttl`, 1 h) are deleted, so that the
//! store does not grow without bound.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::store::{Store, StoreError};

pub const EVENT_TTL: Duration = Duration::from_secs(3600);
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// When the event last happened: `lastTimestamp`, else `eventTime`, else `metadata.creationTimestamp`.
fn last_seen(event: &Value) -> Option<jiff::Timestamp> {
    [
        "/lastTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .filter_map(|pointer| event.pointer(pointer)?.as_str())
    .find_map(|text| text.parse::<jiff::Timestamp>().ok())
}

/// Delete every expired event; returns how many were deleted.
pub async fn sweep(
    store: &dyn Store,
    ttl: Duration,
    now: jiff::Timestamp,
) -> Result<usize, StoreError> {
    let (events, _) = store.list(super::EVENTS_PREFIX).await?;
    let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
    let mut deleted = 0;
    for kv in events {
        // An unparsable event or one without any time is kept: deleting what cannot be understood is not
        // this loop's business.
        let Ok(event) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        let Some(seen) = last_seen(&event) else {
            continue;
        };
        if now.duration_since(seen) <= ttl {
            continue;
        }
        match store.delete(&kv.key, Some(kv.mod_revision)).await {
            Ok(_) => deleted += 1,
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(deleted)
}

/// Sweep every minute until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    while !*shutdown.borrow() {
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            _ = tick.tick() => match sweep(&*store, EVENT_TTL, jiff::Timestamp::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, "expired events"),
                Err(err) => tracing::warn!(error = %err, "event expiry failed"),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::RedbStore;
    use crate::store::redb::tests::TempDir;
    use serde_json::json;

    #[tokio::test]
    async fn deletes_only_expired_events() {
        let dir = TempDir::new();
        let store = RedbStore::open(&dir.path().join("store.redb")).expect("open");
        let events = [
            ("old", json!({"lastTimestamp": "2026-01-01T00:00:00Z"})),
            ("recent", json!({"lastTimestamp": "2026-01-01T01:30:00Z"})),
            (
                "old-created",
                json!({"metadata": {"creationTimestamp": "2026-01-01T00:10:00Z"}}),
            ),
            ("micro", json!({"eventTime": "2026-01-01T01:59:59.123456Z"})),
            ("timeless", json!({"metadata": {"name": "x"}})),
        ];
        for (name, body) in &events {
            let key = format!("/registry/events/default/{name}");
            store
                .create(&key, serde_json::to_vec(body).expect("json"))
                .await
                .expect("create");
        }
        store
            .create("/registry/events/default/garbage", b"{not json".to_vec())
            .await
            .expect("create");
        let now: jiff::Timestamp = "2026-01-01T02:00:00Z".parse().expect("time");
        assert_eq!(sweep(&store, EVENT_TTL, now).await.expect("sweep"), 2);
        let (left, _) = store.list("/registry/events/").await.expect("list");
        let names: Vec<&str> = left
            .iter()
            .filter_map(|kv| kv.key.rsplit('/').next())
            .collect();
        assert_eq!(names, vec!["garbage", "micro", "recent", "timeless"]);
    }
}
