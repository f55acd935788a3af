//! kube's `getDefaultClass`, shared by the DefaultStorageClass and DefaultIngressClass admissions: of the
//! classes marked default, the newest (then the first by name) wins.

use serde_json::Value;

use crate::handlers::{Api, decode_kv};
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;

/// The name of the newest class of `classes` that `is_default` picks (ties broken by name).
pub fn newest(classes: &[Value], is_default: impl Fn(&Value) -> bool) -> Option<String> {
    let created = |c: &Value| {
        c.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    };
    let name = |c: &Value| {
        c.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    classes
        .iter()
        .filter(|c| is_default(c))
        .min_by(|a, b| created(b).cmp(&created(a)).then(name(a).cmp(&name(b))))
        .map(name)
}

/// Every stored object of the (cluster-scoped) class kind.
pub async fn list(api: &Api, kind: Kind) -> ApiResult<Vec<Value>> {
    let (kvs, _) = api.store.list(&by_kind(kind).prefix(None)).await?;
    Ok(kvs.iter().filter_map(|kv| decode_kv(kv).ok()).collect())
}
