//! The ttl-after-finished controller's part: deleting a finished Job once `ttlSecondsAfterFinished` has
//! passed.

use serde_json::Value;

use super::super::owners::{Key, str_at};
use super::cache::Cache;
use super::status::{condition, condition_true, millis, now_ms, until};
use crate::handlers::{Api, DeleteOpts, Propagation};
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;

/// kube's ttl-after-finished controller: a finished Job with `ttlSecondsAfterFinished` is deleted
/// (propagation Background, so the garbage collector removes its pods) once the TTL has passed since it
/// finished.
pub(super) async fn expire(api: &Api, cache: &mut Cache, key: &Key, job: &Value) -> ApiResult<()> {
    let Some(ttl) = job
        .pointer("/spec/ttlSecondsAfterFinished")
        .and_then(Value::as_i64)
    else {
        return Ok(());
    };
    if job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Ok(());
    }
    let finished_ms = millis(str_at(job, "/status/completionTime")).or_else(|| {
        ["Complete", "Failed"]
            .iter()
            .filter(|t| condition_true(job, t))
            .find_map(|t| millis(str_at(condition(job, t)?, "/lastTransitionTime")))
    });
    let Some(finished_ms) = finished_ms else {
        return Ok(());
    };
    let expire_ms = finished_ms.saturating_add(ttl.max(0).saturating_mul(1000));
    if now_ms() < expire_ms {
        cache.schedule(key, until(expire_ms));
        return Ok(());
    }
    let opts = DeleteOpts {
        uid: Some(str_at(job, "/metadata/uid").to_string()),
        propagation: Some(Propagation::Background),
        ..DeleteOpts::default()
    };
    match api
        .delete(by_kind(Kind::Job), Some(&key.0), &key.1, &opts, false)
        .await
    {
        Ok(_) => {
            tracing::info!(job = %format!("{}/{}", key.0, key.1), "deleted finished job after its TTL");
            Ok(())
        }
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
