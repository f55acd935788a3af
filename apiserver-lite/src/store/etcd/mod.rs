//! A [`Store`] on a real etcd v3 cluster (`--storage etcd --etcd-servers …`).
//!
//! The mapping is direct: the global revision is etcd's header revision; create-if-absent is a transaction
//! comparing `create_revision == 0`; guarded updates and deletes compare `mod_revision`; lists are ranges
//! read at one revision (paged, so a large prefix never exceeds a message limit); watches are etcd watches
//! on the key range from `after + 1` with previous values; compaction is etcd's compaction.
//!
//! Every key is stored under `prefix` (kube-apiserver's `--etcd-prefix`), which is invisible to callers.
//! The trait's compaction forgets history up to *and including* the revision, etcd's keeps the compacted
//! revision itself; the store remembers the highest revision it compacted and refuses watches from before
//! it, so both backends answer alike. A restarted server merely keeps one more revision of history.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::{KeyValue, Revision, Store, StoreError, StoreResult, WatchStream};

#[cfg(test)]
pub(crate) mod tests;
mod watch;

#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used)]
mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::compare::{CompareResult, CompareTarget, TargetUnion};
use pb::kv_client::KvClient;
use pb::watch_client::WatchClient;

/// Keys read per range request when listing.
const PAGE: i64 = 500;

pub struct EtcdStore {
    channel: Channel,
    prefix: String,
    compacted: AtomicI64,
}

impl EtcdStore {
    /// Connect to the first reachable of `endpoints` (`http://127.0.0.1:2379`, …); every key lives under
    /// `prefix`.
    pub async fn connect(endpoints: &[String], prefix: &str) -> StoreResult<EtcdStore> {
        let mut last = StoreError::Backend("no etcd endpoints given".into());
        for url in endpoints {
            let endpoint = match Endpoint::from_shared(url.clone()) {
                Ok(e) => e,
                Err(e) => {
                    last = StoreError::Backend(format!("etcd endpoint {url}: {e}"));
                    continue;
                }
            };
            let endpoint = endpoint
                .connect_timeout(Duration::from_secs(5))
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10));
            match endpoint.connect().await {
                Ok(channel) => {
                    let store = EtcdStore {
                        channel,
                        prefix: prefix.trim_end_matches('/').to_string(),
                        compacted: AtomicI64::new(0),
                    };
                    // Fail now, not on the first request, when etcd does not answer.
                    store.current_revision().await?;
                    return Ok(store);
                }
                Err(e) => last = StoreError::Backend(format!("connecting to etcd at {url}: {e}")),
            }
        }
        Err(last)
    }

    /// Compact as kube-apiserver does (`--etcd-compaction-interval`, 5 minutes): every `every`, at the revision
    /// seen one interval earlier, so a watcher always has at least one interval of history to resume from.
    pub fn spawn_compactor(store: std::sync::Arc<EtcdStore>, every: Duration) {
        tokio::spawn(async move {
            let mut previous: Option<Revision> = None;
            loop {
                tokio::time::sleep(every).await;
                if let Some(rev) = previous
                    && let Err(e) = store.compact(rev).await
                {
                    tracing::warn!("etcd compaction at revision {rev}: {e}");
                }
                previous = store.current_revision().await.ok();
            }
        });
    }

    fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The etcd key prefix of a list or watch: under a configured prefix, an empty one means `prefix/`, so
    /// that `/skiff` never matches the keys of `/skiff-other`.
    /// Without any prefix the whole keyspace is `\0` (etcd rejects an empty key; `\0` with range end `\0`
    /// means every key).
    fn range_prefix(&self, prefix: &str) -> Vec<u8> {
        if prefix.is_empty() && !self.prefix.is_empty() {
            format!("{}/", self.prefix).into_bytes()
        } else if prefix.is_empty() {
            vec![0]
        } else {
            self.full(prefix).into_bytes()
        }
    }

    fn convert(&self, kv: &pb::KeyValue) -> StoreResult<KeyValue> {
        convert(kv, &self.prefix)
    }

    async fn range(&self, req: pb::RangeRequest) -> Result<pb::RangeResponse, tonic::Status> {
        Ok(self.kv().range(req).await?.into_inner())
    }

    async fn txn(&self, req: pb::TxnRequest) -> StoreResult<pb::TxnResponse> {
        Ok(self.kv().txn(req).await.map_err(backend)?.into_inner())
    }

    /// The current `mod_revision` of `key`, or `None` when it does not exist.
    async fn mod_revision_of(&self, key: &str) -> StoreResult<Option<Revision>> {
        Ok(self.get(key).await?.map(|kv| kv.mod_revision))
    }

    /// Why a write guarded by `expected` failed: the key is gone, or it moved on.
    async fn guard_failure(&self, key: &str, expected: Revision) -> StoreError {
        match self.mod_revision_of(key).await {
            Ok(None) => StoreError::NotFound(key.to_string()),
            Ok(Some(actual)) => StoreError::Conflict {
                key: key.to_string(),
                expected,
                actual,
            },
            Err(e) => e,
        }
    }
}

fn convert(kv: &pb::KeyValue, strip: &str) -> StoreResult<KeyValue> {
    let key = std::str::from_utf8(&kv.key)
        .ok()
        .and_then(|k| k.strip_prefix(strip))
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "etcd returned a key outside {strip:?}: {:?}",
                String::from_utf8_lossy(&kv.key)
            ))
        })?;
    Ok(KeyValue {
        key: key.to_string(),
        value: kv.value.clone(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
    })
}

fn backend(e: tonic::Status) -> StoreError {
    StoreError::Backend(format!("etcd: {}", e.message()))
}

/// etcd reports compaction and future revisions as errors with fixed messages.
fn revision_error(e: tonic::Status, requested: Revision, current: Revision) -> StoreError {
    if e.message().contains("required revision has been compacted") {
        StoreError::Compacted {
            requested,
            compacted: requested + 1,
        }
    } else if e
        .message()
        .contains("required revision is a future revision")
    {
        StoreError::FutureRevision { requested, current }
    } else {
        backend(e)
    }
}

fn header_revision(header: Option<&pb::ResponseHeader>) -> StoreResult<Revision> {
    header
        .map(|h| h.revision)
        .ok_or_else(|| StoreError::Backend("etcd response without a header".into()))
}

/// The end of the key range that holds every key starting with `prefix` (etcd's `range_end`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    if prefix == [0] {
        return vec![0];
    }
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn compare(key: &str, target: CompareTarget, result: CompareResult, rev: Revision) -> pb::Compare {
    let union = match target {
        CompareTarget::Create => TargetUnion::CreateRevision(rev),
        _ => TargetUnion::ModRevision(rev),
    };
    pb::Compare {
        result: result as i32,
        target: target as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(union),
    }
}

/// The key exists (etcd has no "exists" compare: a live key has a non-zero creation revision).
fn exists(key: &str) -> pb::Compare {
    compare(key, CompareTarget::Create, CompareResult::Greater, 0)
}

fn op(request: pb::request_op::Request) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request),
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> StoreResult<Revision> {
        let resp = self
            .range(pb::RangeRequest {
                key: self.range_prefix(""),
                count_only: true,
                limit: 1,
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        header_revision(resp.header.as_ref())
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> StoreResult<Revision> {
        let full = self.full(key);
        let resp = self
            .txn(pb::TxnRequest {
                compare: vec![compare(
                    &full,
                    CompareTarget::Create,
                    CompareResult::Equal,
                    0,
                )],
                success: vec![op(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: full.into_bytes(),
                    value,
                    ..Default::default()
                }))],
                failure: vec![],
            })
            .await?;
        if !resp.succeeded {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        header_revision(resp.header.as_ref())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let resp = self
            .range(pb::RangeRequest {
                key: self.full(key).into_bytes(),
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        resp.kvs.first().map(|kv| self.convert(kv)).transpose()
    }

    async fn list(&self, prefix: &str) -> StoreResult<(Vec<KeyValue>, Revision)> {
        let full = self.range_prefix(prefix);
        let range_end = prefix_end(&full);
        let mut out = Vec::new();
        let mut from = full;
        let mut at: Option<Revision> = None;
        loop {
            let resp = self
                .range(pb::RangeRequest {
                    key: from.clone(),
                    range_end: range_end.clone(),
                    limit: PAGE,
                    revision: at.unwrap_or(0),
                    ..Default::default()
                })
                .await
                .map_err(backend)?;
            let rev = *at.get_or_insert(header_revision(resp.header.as_ref())?);
            for item in &resp.kvs {
                out.push(self.convert(item)?);
            }
            match (resp.more, resp.kvs.last()) {
                (true, Some(last)) => {
                    from = last.key.clone();
                    from.push(0);
                }
                _ => return Ok((out, rev)),
            }
        }
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> StoreResult<Revision> {
        let full = self.full(key);
        let resp = self
            .txn(pb::TxnRequest {
                compare: vec![
                    exists(&full),
                    compare(&full, CompareTarget::Mod, CompareResult::Equal, expected),
                ],
                success: vec![op(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: full.into_bytes(),
                    value,
                    ..Default::default()
                }))],
                failure: vec![],
            })
            .await?;
        if !resp.succeeded {
            return Err(self.guard_failure(key, expected).await);
        }
        header_revision(resp.header.as_ref())
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> StoreResult<(KeyValue, Revision)> {
        let full = self.full(key);
        let mut compares = vec![exists(&full)];
        if let Some(expected) = expected {
            compares.push(compare(
                &full,
                CompareTarget::Mod,
                CompareResult::Equal,
                expected,
            ));
        }
        let resp = self
            .txn(pb::TxnRequest {
                compare: compares,
                success: vec![op(pb::request_op::Request::RequestDeleteRange(
                    pb::DeleteRangeRequest {
                        key: full.into_bytes(),
                        prev_kv: true,
                        ..Default::default()
                    },
                ))],
                failure: vec![],
            })
            .await?;
        if !resp.succeeded {
            return Err(match expected {
                Some(expected) => self.guard_failure(key, expected).await,
                None => StoreError::NotFound(key.to_string()),
            });
        }
        let revision = header_revision(resp.header.as_ref())?;
        let prev = resp
            .responses
            .iter()
            .find_map(|r| match &r.response {
                Some(pb::response_op::Response::ResponseDeleteRange(d)) => d.prev_kvs.first(),
                _ => None,
            })
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        Ok((self.convert(prev)?, revision))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> StoreResult<WatchStream> {
        let current = self.current_revision().await?;
        if after > current {
            return Err(StoreError::FutureRevision {
                requested: after,
                current,
            });
        }
        let compacted = self.compacted.load(Ordering::SeqCst);
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let full = self.range_prefix(prefix);
        // etcd reports a compacted start revision only later on the stream; a read at it tells at once.
        if after < current {
            self.range(pb::RangeRequest {
                key: full.clone(),
                count_only: true,
                revision: after + 1,
                ..Default::default()
            })
            .await
            .map_err(|e| revision_error(e, after, current))?;
        }
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    range_end: prefix_end(&full),
                    key: full,
                    start_revision: after + 1,
                    prev_kv: true,
                    ..Default::default()
                },
            )),
        };
        // The request stream stays open for the life of the watch: etcd ends a watch whose client half
        // closes. It holds only the create request.
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::WatchRequest>(1);
        tx.send(create)
            .await
            .map_err(|_| StoreError::Backend("etcd watch request channel closed".into()))?;
        let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
        let responses = WatchClient::new(self.channel.clone())
            .max_decoding_message_size(64 << 20)
            .watch(requests)
            .await
            .map_err(backend)?
            .into_inner();
        Ok(watch::events(responses, tx, self.prefix.clone(), after))
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        let current = self.current_revision().await?;
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision <= self.compacted.load(Ordering::SeqCst) {
            return Ok(());
        }
        let req = pb::CompactionRequest {
            revision,
            physical: false,
        };
        match self.kv().compact(req).await {
            Ok(_) => {}
            // Someone (another server, etcd's auto-compaction) already compacted further.
            Err(e) if e.message().contains("required revision has been compacted") => {}
            Err(e) => return Err(revision_error(e, revision, current)),
        }
        self.compacted.fetch_max(revision, Ordering::SeqCst);
        Ok(())
    }
}
