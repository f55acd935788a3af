//! The storage contract: a key-value store with etcd's semantics.
//!
//! One global revision counts every write. Each key remembers the revision that created it and the one that
//! last modified it; `resourceVersion` of an API object is its `mod_revision`. Writes are guarded by the
//! `mod_revision` a client read (optimistic concurrency). Watches start at a revision and see every later
//! change in order; a watch from a revision older than the compacted one fails with `Compacted` (410 Gone).

use std::pin::Pin;

use futures::Stream;

/// A store revision. Revisions start at 1 and grow by one per committed write transaction.
pub type Revision = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Created (`prev` is `None`) or modified (`prev` is the value before this write).
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// Deleted: `kv` is the last value, with `mod_revision` set to the revision of the deletion.
    Delete { kv: KeyValue },
}

impl WatchEvent {
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } | WatchEvent::Delete { kv } => kv.mod_revision,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {0} already exists")]
    AlreadyExists(String),
    #[error("key {0} not found")]
    NotFound(String),
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    #[error("revision {requested} has been compacted (oldest available {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("storage backend: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A stream of watch events; it ends when the store shuts down or the watcher falls too far behind
/// (the HTTP layer then closes the watch, and clients re-watch from their last revision).
pub type WatchStream = Pin<Box<dyn Stream<Item = StoreResult<WatchEvent>> + Send>>;

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The revision of the last committed write.
    async fn current_revision(&self) -> StoreResult<Revision>;

    /// Create `key` if it does not exist. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> StoreResult<Revision>;

    /// Read one key at the current revision.
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>>;

    /// Read every key that starts with `prefix`, sorted by key, and the revision they were read at.
    async fn list(&self, prefix: &str) -> StoreResult<(Vec<KeyValue>, Revision)>;

    /// Replace `key` if its `mod_revision` is still `expected`. Returns the new revision.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> StoreResult<Revision>;

    /// Delete `key`, if `expected` is given only while its `mod_revision` is still that.
    /// Returns the deleted value and the revision of the deletion.
    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> StoreResult<(KeyValue, Revision)>;

    /// Every change to a key under `prefix` with a revision greater than `after`, in revision order,
    /// then live changes as they are committed.
    async fn watch(&self, prefix: &str, after: Revision) -> StoreResult<WatchStream>;

    /// Forget history up to and including `revision`; watches from before it fail with `Compacted`.
    async fn compact(&self, revision: Revision) -> StoreResult<()>;
}

#[cfg(test)]
pub mod conformance;
pub mod etcd;
pub mod redb;
