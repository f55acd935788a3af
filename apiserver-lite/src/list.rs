//! LIST semantics: `limit` + `continue` pages over one consistent snapshot, `resourceVersion` +
//! `resourceVersionMatch` (Exact / NotOlderThan), and the 410 Expired replies when a revision is compacted.
//!
//! The store reads only at its current revision, so a snapshot at an older revision R is rebuilt from the
//! current state and the history after R: the first change of each key after R carries its value at R
//! (`prev` of a put, the value of a delete). The store has one history event per revision, so the replay
//! of `(R, now]` ends exactly at the revision the current state was read at. A key deleted after R comes
//! back with `resourceVersion` = R (its exact modification revision is not kept in the delete event).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::handlers::{Api, Query, decode_for, matches};
use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult, FieldError};
use crate::store::{KeyValue, Revision, Store, StoreError, WatchEvent};

/// How long a read at a revision newer than the store's waits before 504 (kube-apiserver waits 3 s).
const TOO_NEW_WAIT: Duration = Duration::from_secs(3);

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// The opaque `continue` token: the list revision and the first key of the next page (relative to the
/// resource prefix), in kube-apiserver's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueToken {
    pub rv: Revision,
    pub start: String,
}

impl ContinueToken {
    pub fn encode(&self) -> String {
        let v = json!({"v": "meta.k8s.io/v1", "rv": self.rv, "start": self.start});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }
    pub fn decode(s: &str) -> ApiResult<Self> {
        let bad = || {
            ApiError::bad_request(format!(
                "continue key is not valid: {}",
                "incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
            ))
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| bad())?;
        let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
            return Err(bad());
        }
        let rv = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
        let start = v
            .get("start")
            .and_then(Value::as_str)
            .ok_or_else(bad)?
            .to_string();
        if rv <= 0 || start.contains("..") || start.starts_with('/') {
            return Err(bad());
        }
        Ok(ContinueToken { rv, start })
    }
}

/// What a LIST request asks for.
#[derive(Debug, Clone, Default)]
pub struct ListOpts {
    pub limit: Option<usize>,
    pub cont: Option<ContinueToken>,
    /// Read exactly at this revision.
    pub exact: Option<Revision>,
    /// Read at the current revision, which must be at least this.
    pub not_older_than: Option<Revision>,
}

fn invalid_opts(field: &str, value: &str, why: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "ListOptions",
        "",
        &[FieldError::invalid(field, &json!(value), why)],
    )
}

fn parse_rv(s: &str) -> ApiResult<Revision> {
    s.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

impl ListOpts {
    pub fn from_query(q: &Query) -> ApiResult<Self> {
        let mut o = ListOpts::default();
        if let Some(l) = q.get("limit").filter(|l| !l.is_empty()) {
            let n: i64 = l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?;
            if n > 0 {
                o.limit = Some(usize::try_from(n).unwrap_or(usize::MAX));
            }
        }
        let rv = q.get("resourceVersion").unwrap_or("");
        let rv_match = q.get("resourceVersionMatch").unwrap_or("");
        if let Some(c) = q.get("continue").filter(|c| !c.is_empty()) {
            if !rv.is_empty() && rv != "0" {
                return Err(invalid_opts(
                    "resourceVersion",
                    rv,
                    "specifying resource version is not allowed when using continue",
                ));
            }
            if !rv_match.is_empty() {
                return Err(invalid_opts(
                    "resourceVersionMatch",
                    rv_match,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            o.cont = Some(ContinueToken::decode(c)?);
            return Ok(o);
        }
        match rv_match {
            "" => {
                if !rv.is_empty() && rv != "0" {
                    let r = parse_rv(rv)?;
                    // With a limit, a given resourceVersion means Exact (legacy semantics).
                    if o.limit.is_some() {
                        o.exact = Some(r);
                    } else {
                        o.not_older_than = Some(r);
                    }
                }
            }
            "Exact" | "NotOlderThan" if rv.is_empty() => {
                return Err(invalid_opts(
                    "resourceVersionMatch",
                    rv_match,
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            "Exact" => {
                if rv == "0" {
                    return Err(invalid_opts(
                        "resourceVersionMatch",
                        rv_match,
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
                o.exact = Some(parse_rv(rv)?);
            }
            "NotOlderThan" => o.not_older_than = Some(parse_rv(rv)?),
            other => {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "ListOptions",
                    "",
                    &[FieldError::not_supported(
                        "resourceVersionMatch",
                        &json!(other),
                        &["Exact", "NotOlderThan", ""],
                    )],
                ));
            }
        }
        Ok(o)
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Value>,
    pub rev: Revision,
    pub cont: Option<String>,
    pub remaining: Option<i64>,
}

impl Page {
    /// Put `continue` and `remainingItemCount` into a rendered list or table.
    pub fn decorate(&self, v: &mut Value) {
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(c) = &self.cont {
                m.insert("continue".into(), json!(c));
            }
            if let Some(r) = self.remaining {
                m.insert("remainingItemCount".into(), json!(r));
            }
        }
    }
}

async fn wait_for_revision(store: &dyn Store, rev: Revision) -> ApiResult<()> {
    let deadline = tokio::time::Instant::now() + TOO_NEW_WAIT;
    loop {
        if store.current_revision().await? >= rev {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let mut e = ApiError::new(504, "Timeout", "Too large resource version");
            e.details = Some(json!({"causes": [{"reason": "ResourceVersionTooLarge",
                "message": format!("Too large resource version: {rev}")}], "retryAfterSeconds": 1}));
            return Err(e);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every key under `prefix` as it was at revision `rev`, sorted by key.
pub async fn snapshot_at(
    store: &dyn Store,
    prefix: &str,
    rev: Revision,
    expired_message: &str,
) -> ApiResult<Vec<KeyValue>> {
    wait_for_revision(store, rev).await?;
    let (kvs, now) = store.list(prefix).await?;
    if rev == now {
        return Ok(kvs);
    }
    let mut stream = match store.watch("", rev).await {
        Ok(s) => s,
        Err(StoreError::Compacted { .. }) => return Err(ApiError::expired(expired_message)),
        Err(e) => return Err(e.into()),
    };
    let mut at_rev: BTreeMap<String, Option<KeyValue>> = BTreeMap::new();
    let replay = async {
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(StoreError::Compacted { .. }) => {
                    return Err(ApiError::expired(expired_message));
                }
                Err(e) => return Err(ApiError::from(e)),
            };
            let r = ev.revision();
            if r > now {
                return Ok(());
            }
            let (key, before) = match ev {
                WatchEvent::Put { kv, prev } => (kv.key, prev),
                WatchEvent::Delete { kv } => (
                    kv.key.clone(),
                    Some(KeyValue {
                        mod_revision: rev,
                        ..kv
                    }),
                ),
            };
            if key.starts_with(prefix) {
                at_rev.entry(key).or_insert(before);
            }
            if r == now {
                return Ok(());
            }
        }
        Err(ApiError::internal(
            "the store's history ended during a list",
        ))
    };
    tokio::time::timeout(Duration::from_secs(10), replay)
        .await
        .map_err(|_| ApiError::internal("timed out reading the store's history"))??;
    let mut map: BTreeMap<String, KeyValue> =
        kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
    for (k, v) in at_rev {
        match v {
            Some(kv) => {
                map.insert(k, kv);
            }
            None => {
                map.remove(&k);
            }
        }
    }
    Ok(map.into_values().collect())
}

/// LIST with paging and resourceVersion semantics.
pub async fn list(
    api: &Api,
    def: &ResourceDef,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    opts: &ListOpts,
) -> ApiResult<Page> {
    let prefix = def.prefix(ns);
    let store = api.store.as_ref();
    let (kvs, rev) = if let Some(c) = &opts.cont {
        (
            snapshot_at(store, &prefix, c.rv, CONTINUE_EXPIRED).await?,
            c.rv,
        )
    } else if let Some(r) = opts.exact {
        let msg = format!("The resourceVersion for the provided list is too old. ({r})");
        (snapshot_at(store, &prefix, r, &msg).await?, r)
    } else {
        if let Some(r) = opts.not_older_than {
            wait_for_revision(store, r).await?;
        }
        store.list(&prefix).await?
    };
    let start = opts
        .cont
        .as_ref()
        .map(|c| format!("{prefix}{}", c.start))
        .unwrap_or_default();
    let mut items = Vec::new();
    let mut cont = None;
    let mut remaining = None;
    let filtered = !labels.is_empty() || !fields.is_empty();
    let mut iter = kvs.iter().filter(|kv| kv.key >= start).peekable();
    while let Some(kv) = iter.next() {
        let v = decode_for(def, kv)?;
        if !matches(def, &v, labels, fields) {
            continue;
        }
        items.push(v);
        if opts.limit.is_some_and(|l| items.len() >= l) {
            // Only hand out a token when something is left to read.
            let rest: Vec<&KeyValue> = iter.collect();
            let mut left = 0i64;
            for r in &rest {
                if !filtered || matches(def, &decode_for(def, r)?, labels, fields) {
                    left += 1;
                }
            }
            if left > 0 {
                let next = format!("{}\u{0}", kv.key);
                cont = Some(
                    ContinueToken {
                        rv: rev,
                        start: next.strip_prefix(&prefix).unwrap_or(&next).to_string(),
                    }
                    .encode(),
                );
                if !filtered {
                    remaining = Some(left);
                }
            }
            break;
        }
    }
    Ok(Page {
        items,
        rev,
        cont,
        remaining,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn token_round_trip_and_rejects_garbage() {
        let t = ContinueToken {
            rv: 42,
            start: "default/b\u{0}".into(),
        };
        assert_eq!(ContinueToken::decode(&t.encode()).expect("decode"), t);
        assert_eq!(ContinueToken::decode("!!!").expect_err("bad").code, 400);
        let dotdot = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"../x"}"#);
        assert!(ContinueToken::decode(&dotdot).is_err());
    }

    fn names(p: &Page) -> Vec<String> {
        p.items
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    }

    #[tokio::test]
    async fn pages_are_consistent_snapshots_and_expire_with_compaction() {
        use crate::handlers::WriteOpts;
        use crate::resources::find_resource;
        use crate::strict::FieldValidation;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(
            crate::store::redb::RedbStore::open(&dir.path().join("s.redb")).expect("store"),
        );
        let api = Api::new(store.clone());
        let opts = WriteOpts {
            dry_run: false,
            field_validation: FieldValidation::Strict,
            field_manager: None,
            apply: false,
        };
        let nsdef = find_resource("", "namespaces").expect("ns");
        api.create(
            nsdef,
            None,
            json!({"metadata": {"name": "default"}}),
            &[],
            &opts,
        )
        .await
        .expect("ns");
        let def = find_resource("", "configmaps").expect("cm");
        let cm = |n: &str, v: &str| json!({"metadata": {"name": n, "labels": {"k": v}}, "data": {"v": v}});
        for (n, v) in [("a", "1"), ("b", "2"), ("c", "1"), ("d", "2"), ("e", "1")] {
            api.create(def, Some("default"), cm(n, v), &[], &opts)
                .await
                .expect("create");
        }
        let all = LabelSelector::default();
        let nof = FieldSelector::default();
        let first = list(
            &api,
            def,
            Some("default"),
            &all,
            &nof,
            &ListOpts {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .expect("page 1");
        assert_eq!(names(&first), ["a", "b"]);
        assert_eq!(first.remaining, Some(3));
        let token = first.cont.clone().expect("continue");
        // Changes after the first page do not show up in later pages.
        api.delete(def, Some("default"), "c", &Default::default(), false)
            .await
            .expect("delete c");
        api.create(def, Some("default"), cm("cc", "1"), &[], &opts)
            .await
            .expect("create cc");
        api.update(
            def,
            Some("default"),
            "d",
            None,
            cm("d", "changed"),
            &[],
            &opts,
        )
        .await
        .expect("update d");
        let next = ListOpts {
            limit: Some(2),
            cont: Some(ContinueToken::decode(&token).expect("token")),
            ..Default::default()
        };
        let second = list(&api, def, Some("default"), &all, &nof, &next)
            .await
            .expect("page 2");
        assert_eq!(names(&second), ["c", "d"]);
        assert_eq!(second.items[1]["data"]["v"], "2");
        assert_eq!(second.rev, first.rev);
        let third = ListOpts {
            limit: Some(2),
            cont: Some(ContinueToken::decode(&second.cont.clone().expect("c2")).expect("t")),
            ..Default::default()
        };
        let last = list(&api, def, Some("default"), &all, &nof, &third)
            .await
            .expect("page 3");
        assert_eq!(names(&last), ["e"]);
        assert!(last.cont.is_none());
        // A label selector filters within pages; Exact reads the old state too.
        let sel = LabelSelector::parse("k=1").expect("sel");
        let exact = ListOpts {
            exact: Some(first.rev),
            ..Default::default()
        };
        let old = list(&api, def, Some("default"), &sel, &nof, &exact)
            .await
            .expect("exact");
        assert_eq!(names(&old), ["a", "c", "e"]);
        let now = list(&api, def, Some("default"), &sel, &nof, &ListOpts::default())
            .await
            .expect("now");
        assert_eq!(names(&now), ["a", "cc", "e"]);
        // Too new: 504 after the wait.
        let future = ListOpts {
            exact: Some(now.rev + 1000),
            ..Default::default()
        };
        let e = list(&api, def, Some("default"), &all, &nof, &future)
            .await
            .expect_err("future");
        assert_eq!(e.code, 504);
        // After compaction the token and the old revision are gone: 410 Expired.
        store.compact(now.rev).await.expect("compact");
        let e = list(&api, def, Some("default"), &all, &nof, &next)
            .await
            .expect_err("expired");
        assert_eq!((e.code, e.reason), (410, "Expired"));
        let e = list(&api, def, Some("default"), &all, &nof, &exact)
            .await
            .expect_err("expired");
        assert_eq!(e.code, 410);
    }

    #[test]
    fn options() {
        let q = |s: &str| ListOpts::from_query(&Query::parse(Some(s)));
        assert_eq!(q("resourceVersionMatch=Exact").expect_err("rv").code, 422);
        assert_eq!(
            q("resourceVersion=0&resourceVersionMatch=Exact")
                .expect_err("0")
                .code,
            422
        );
        assert_eq!(q("resourceVersion=5&limit=2").expect("ok").exact, Some(5));
        assert_eq!(q("resourceVersion=5").expect("ok").not_older_than, Some(5));
        assert_eq!(
            q("resourceVersion=5&resourceVersionMatch=Exact")
                .expect("ok")
                .exact,
            Some(5)
        );
        assert_eq!(
            q("resourceVersionMatch=Foo&resourceVersion=1")
                .expect_err("x")
                .code,
            422
        );
        assert_eq!(q("limit=x").expect_err("limit").code, 400);
    }
}
