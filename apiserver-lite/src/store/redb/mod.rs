//! The embedded default store: one redb file, fsync on every commit.
//!
//! Tables: `kv` (key → create/mod revision + value), `history` (revision → change record, the watch log) and
//! `meta` (the current and the compacted revision). One writer thread applies writes in batches — every
//! request waiting while the previous commit was syncing goes into the next transaction (group commit), each
//! write still getting its own revision. Reads run on the blocking pool against redb's MVCC snapshots.

mod codec;
mod watch;
mod writer;

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use ::redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::store::{KeyValue, Revision, Store, StoreError, StoreResult, WatchStream};
use watch::Hub;
use writer::{Op, OpOutput, Request};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const HISTORY: TableDefinition<i64, &[u8]> = TableDefinition::new("history");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

/// Tuning of the embedded store.
#[derive(Debug, Clone)]
pub struct RedbOptions {
    /// Automatic compaction keeps at least this much recent history (Kubernetes clients expect ~5 minutes)…
    pub history_retention: Duration,
    /// …but never more than this many revisions.
    pub max_history: i64,
    /// How often automatic compaction runs; `None` disables it.
    pub compaction_interval: Option<Duration>,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            history_retention: Duration::from_secs(300),
            max_history: 10_000,
            compaction_interval: Some(Duration::from_secs(30)),
        }
    }
}

struct Shared {
    db: Database,
    hub: tokio::sync::Mutex<Hub>,
}

/// A [`Store`] in a single redb file.
pub struct RedbStore {
    shared: Arc<Shared>,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

impl RedbStore {
    /// Open (or create) the store at `path` with default options.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        RedbStore::open_with(path, RedbOptions::default())
    }

    /// Open (or create) the store at `path`.
    pub fn open_with(path: &Path, options: RedbOptions) -> Result<RedbStore, StoreError> {
        let db = Database::create(path)
            .map_err(|e| StoreError::Backend(format!("open {}: {e}", path.display())))?;
        let (revision, compacted) = init_tables(&db)?;
        let shared = Arc::new(Shared {
            db,
            hub: tokio::sync::Mutex::new(Hub::new(revision, compacted)),
        });
        let (tx, rx) = mpsc::channel();
        let writer = writer::Writer::new(shared.clone(), rx, options, (revision, compacted));
        let handle = std::thread::Builder::new()
            .name("redb-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Backend(format!("spawn writer thread: {e}")))?;
        Ok(RedbStore {
            shared,
            requests: Some(tx),
            writer: Some(handle),
        })
    }

    async fn submit(&self, op: Op) -> StoreResult<OpOutput> {
        let (reply, rx) = oneshot::channel();
        let requests = self
            .requests
            .as_ref()
            .ok_or_else(|| backend("store is closed"))?;
        requests
            .send(Request { op, reply })
            .map_err(|_| backend("store writer has stopped"))?;
        rx.await
            .map_err(|_| backend("store writer dropped the request"))?
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared.db))
            .await
            .map_err(|e| backend(format!("read task failed: {e}")))?
    }

    #[cfg(test)]
    async fn watcher_count(&self) -> usize {
        self.shared.hub.lock().await.watcher_count()
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the request channel stops the writer; joining it releases the database file so that it
        // can be reopened at once.
        self.requests = None;
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

/// Create the tables on first open; return the persisted current and compacted revisions.
fn init_tables(db: &Database) -> StoreResult<(Revision, Revision)> {
    let txn = db.begin_write().map_err(backend)?;
    let result = {
        txn.open_table(KV).map_err(backend)?;
        txn.open_table(HISTORY).map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        let revision = meta.get(META_REVISION).map_err(backend)?.map(|v| v.value());
        let compacted = meta
            .get(META_COMPACTED)
            .map_err(backend)?
            .map(|v| v.value());
        // A fresh store is at revision 1, like etcd: resourceVersion "0" keeps its special meaning.
        let revision = match revision {
            Some(r) => r,
            None => {
                meta.insert(META_REVISION, 1).map_err(backend)?;
                1
            }
        };
        let compacted = match compacted {
            Some(c) => c,
            None => {
                meta.insert(META_COMPACTED, 0).map_err(backend)?;
                0
            }
        };
        (revision, compacted)
    };
    txn.commit().map_err(backend)?;
    Ok(result)
}

fn read_get(db: &Database, key: &str) -> StoreResult<Option<KeyValue>> {
    let txn = db.begin_read().map_err(backend)?;
    let kv = txn.open_table(KV).map_err(backend)?;
    match kv.get(key).map_err(backend)? {
        Some(value) => Ok(Some(codec::decode_value(key, value.value())?)),
        None => Ok(None),
    }
}

fn read_list(db: &Database, prefix: &str) -> StoreResult<(Vec<KeyValue>, Revision)> {
    let txn = db.begin_read().map_err(backend)?;
    let meta = txn.open_table(META).map_err(backend)?;
    let revision = meta
        .get(META_REVISION)
        .map_err(backend)?
        .map(|v| v.value())
        .unwrap_or(1);
    let kv = txn.open_table(KV).map_err(backend)?;
    let mut out = Vec::new();
    for entry in kv.range::<&str>(prefix..).map_err(backend)? {
        let (key, value) = entry.map_err(backend)?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push(codec::decode_value(key, value.value())?);
    }
    Ok((out, revision))
}

#[async_trait::async_trait]
impl Store for RedbStore {
    async fn current_revision(&self) -> StoreResult<Revision> {
        Ok(self.shared.hub.lock().await.revision)
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> StoreResult<Revision> {
        match self
            .submit(Op::Create {
                key: key.to_string(),
                value,
            })
            .await?
        {
            OpOutput::Revision(r) => Ok(r),
            other => Err(writer::unexpected(other)),
        }
    }

    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let key = key.to_string();
        self.read(move |db| read_get(db, &key)).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<(Vec<KeyValue>, Revision)> {
        let prefix = prefix.to_string();
        self.read(move |db| read_list(db, &prefix)).await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> StoreResult<Revision> {
        match self
            .submit(Op::Update {
                key: key.to_string(),
                value,
                expected,
            })
            .await?
        {
            OpOutput::Revision(r) => Ok(r),
            other => Err(writer::unexpected(other)),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> StoreResult<(KeyValue, Revision)> {
        match self
            .submit(Op::Delete {
                key: key.to_string(),
                expected,
            })
            .await?
        {
            OpOutput::Deleted(kv, r) => Ok((kv, r)),
            other => Err(writer::unexpected(other)),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> StoreResult<WatchStream> {
        watch::watch(&self.shared, prefix, after).await
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        match self.submit(Op::Compact { revision }).await? {
            OpOutput::Compacted => Ok(()),
            other => Err(writer::unexpected(other)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
