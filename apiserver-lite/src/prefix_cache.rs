//! Watch-fed, decoded copies of the objects under a key prefix, for reads that run on every request and that
//! kube-apiserver serves from informers rather than from etcd: on each create, NamespaceLifecycle reads the
//! namespace and the ResourceQuota and LimitRanger admission plugins its quotas and limit ranges. On etcd those lists were one more
//! round trip per create (bench-api: 2,051 -> 1,415 creates/s with 16 clients, session 10).
//!
//! A cache answers `None` until its first listing has arrived; callers then read the store. After that it
//! lags the store by one watch delivery, as an informer does. Callers that must not act on a stale copy
//! confirm against the store (the quota admission writes with compare-and-swap and re-reads a refusal).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::Value;

use crate::controllers::reflector::{Change, Reflector};
use crate::resources::{Kind, by_kind};
use crate::store::{KeyValue, Store};

/// One stored object and its parsed JSON.
#[derive(Debug)]
pub struct Parsed {
    pub kv: KeyValue,
    pub value: Value,
}

/// The JSON decoder for [`PrefixCache`]: an undecodable value is left out (and logged).
pub fn json(kv: &KeyValue) -> Option<Parsed> {
    match serde_json::from_slice(&kv.value) {
        Ok(value) => Some(Parsed {
            kv: kv.clone(),
            value,
        }),
        Err(e) => {
            tracing::warn!(key = %kv.key, error = %e, "leaving an undecodable object out of the cache");
            None
        }
    }
}

struct View<T> {
    synced: bool,
    items: BTreeMap<String, Arc<T>>,
}

/// Aborts the feeding task when the last handle of its cache goes away.
struct Feeder(tokio::task::JoinHandle<()>);

impl Drop for Feeder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The decoded objects under one prefix, kept current by a list-then-watch task.
pub struct PrefixCache<T> {
    view: Arc<RwLock<View<T>>>,
    _feeder: Arc<Feeder>,
}

impl<T> Clone for PrefixCache<T> {
    fn clone(&self) -> Self {
        PrefixCache {
            view: self.view.clone(),
            _feeder: self._feeder.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> PrefixCache<T> {
    /// Start feeding a cache of everything under `prefix`, decoded with `decode`. Needs a Tokio runtime.
    pub fn start(store: Arc<dyn Store>, prefix: &str, decode: fn(&KeyValue) -> Option<T>) -> Self {
        let view = Arc::new(RwLock::new(View {
            synced: false,
            items: BTreeMap::new(),
        }));
        let mut reflector = Reflector::new(store, prefix);
        let fed = view.clone();
        let task = tokio::spawn(async move {
            loop {
                let change = reflector.next().await;
                let mut v = fed.write().unwrap_or_else(PoisonError::into_inner);
                match change {
                    Change::Reset(kvs) => {
                        v.items = kvs
                            .iter()
                            .filter_map(|kv| Some((kv.key.clone(), Arc::new(decode(kv)?))))
                            .collect();
                        v.synced = true;
                    }
                    Change::Put(kv) => match decode(&kv) {
                        Some(t) => {
                            v.items.insert(kv.key, Arc::new(t));
                        }
                        None => {
                            v.items.remove(&kv.key);
                        }
                    },
                    Change::Delete(kv) => {
                        v.items.remove(&kv.key);
                    }
                }
            }
        });
        PrefixCache {
            view,
            _feeder: Arc::new(Feeder(task)),
        }
    }

    /// The cached objects whose keys start with `prefix` (in key order), or `None` before the first listing.
    pub fn list(&self, prefix: &str) -> Option<Vec<Arc<T>>> {
        let v = self.view.read().unwrap_or_else(PoisonError::into_inner);
        if !v.synced {
            return None;
        }
        Some(
            v.items
                .range::<str, _>((
                    std::ops::Bound::Included(prefix),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, t)| t.clone())
                .collect(),
        )
    }
}

impl<T> PrefixCache<T> {
    /// The cached object at `key` (`Some(None)`: there is none), or `None` before the first listing.
    pub fn get(&self, key: &str) -> Option<Option<Arc<T>>> {
        let v = self.view.read().unwrap_or_else(PoisonError::into_inner);
        v.synced.then(|| v.items.get(key).cloned())
    }
}

/// The caches of one API server's request path.
#[derive(Clone)]
pub struct Caches {
    /// Every ResourceQuota, for the quota admission.
    pub quotas: PrefixCache<Parsed>,
    /// Every LimitRange, for the LimitRanger admission.
    pub limit_ranges: PrefixCache<Parsed>,
    /// Every Namespace, for the NamespaceLifecycle check of creates.
    pub namespaces: PrefixCache<Parsed>,
}

impl Caches {
    pub fn start(store: &Arc<dyn Store>) -> Caches {
        let prefix = |kind| by_kind(kind).prefix(None);
        Caches {
            quotas: PrefixCache::start(store.clone(), &prefix(Kind::ResourceQuota), json),
            limit_ranges: PrefixCache::start(store.clone(), &prefix(Kind::LimitRange), json),
            namespaces: PrefixCache::start(store.clone(), &prefix(Kind::Namespace), json),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::redb::RedbStore;

    /// Poll `cond` for up to 5 s.
    async fn eventually(cond: impl Fn() -> bool) -> bool {
        for _ in 0..500 {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    fn names(items: &[Arc<Parsed>]) -> Vec<String> {
        items
            .iter()
            .map(|p| {
                p.value["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    #[tokio::test]
    async fn follows_creates_updates_and_deletes_under_its_prefix_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
        let obj = |name: &str, n: u64| {
            serde_json::to_vec(&serde_json::json!({"metadata": {"name": name}, "n": n}))
                .expect("encode")
        };
        store
            .create("/r/q/a/one", obj("one", 1))
            .await
            .expect("create");
        store
            .create("/r/other/a/x", obj("x", 1))
            .await
            .expect("create");
        let cache = PrefixCache::start(store.clone(), "/r/q/", json);
        assert!(
            eventually(|| cache.list("/r/q/").is_some()).await,
            "never synced"
        );
        assert_eq!(names(&cache.list("/r/q/").expect("synced")), ["one"]);

        store
            .create("/r/q/a/two", obj("two", 1))
            .await
            .expect("create");
        store
            .create("/r/q/b/three", obj("three", 1))
            .await
            .expect("create");
        store
            .create("/r/q/a/bad", b"not json".to_vec())
            .await
            .expect("create");
        assert!(eventually(|| cache.list("/r/q/").is_some_and(|l| l.len() == 3)).await);
        // Namespace-sized sub-prefixes; the undecodable object is left out.
        assert_eq!(
            names(&cache.list("/r/q/a/").expect("synced")),
            ["one", "two"]
        );
        assert_eq!(names(&cache.list("/r/q/b/").expect("synced")), ["three"]);
        assert!(cache.list("/r/other/").expect("synced").is_empty());

        let kv = store.get("/r/q/a/one").await.expect("get").expect("exists");
        store
            .update("/r/q/a/one", obj("one", 2), kv.mod_revision)
            .await
            .expect("update");
        store.delete("/r/q/a/two", None).await.expect("delete");
        assert!(
            eventually(|| cache.list("/r/q/a/").is_some_and(|l| l.len() == 1
                && l[0].value["n"] == 2
                && l[0].kv.mod_revision > kv.mod_revision))
            .await,
            "update and delete not followed"
        );
    }
}
