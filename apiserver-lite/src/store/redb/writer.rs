//! The single writer thread: batches requests into transactions, assigns revisions, records history,
//! commits with fsync, then publishes the new revision and the changes to watchers.

use std::collections::VecDeque;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use ::redb::{Durability, ReadableTable, Table};
use tokio::sync::oneshot;

use super::{
    HISTORY, KV, META, META_COMPACTED, META_REVISION, RedbOptions, Shared, backend, codec,
};
use crate::store::{KeyValue, Revision, StoreError, StoreResult, WatchEvent};

/// Upper bound on writes per transaction, so one commit never holds many replies back.
const MAX_BATCH: usize = 256;

pub(super) enum Op {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

#[derive(Debug)]
pub(super) enum OpOutput {
    Revision(Revision),
    Deleted(KeyValue, Revision),
    Compacted,
}

pub(super) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<StoreResult<OpOutput>>,
}

pub(super) fn unexpected(output: OpOutput) -> StoreError {
    StoreError::Backend(format!(
        "store writer answered with an unexpected result: {output:?}"
    ))
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Request>,
    options: RedbOptions,
    /// The writer's own copy of the committed revisions (only this thread changes them).
    revision: Revision,
    compacted: Revision,
    /// (time, revision) samples for time-based compaction.
    samples: VecDeque<(Instant, Revision)>,
    next_compaction: Option<Instant>,
}

/// Revisions and changes of the transaction being built.
struct Pending {
    revision: Revision,
    compacted: Revision,
    events: Vec<WatchEvent>,
}

struct Tables<'txn> {
    kv: Table<'txn, &'static str, &'static [u8]>,
    history: Table<'txn, i64, &'static [u8]>,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        requests: mpsc::Receiver<Request>,
        options: RedbOptions,
        (revision, compacted): (Revision, Revision),
    ) -> Writer {
        let next_compaction = options
            .compaction_interval
            .map(|every| Instant::now() + every);
        Writer {
            shared,
            requests,
            options,
            revision,
            compacted,
            samples: VecDeque::new(),
            next_compaction,
        }
    }

    pub fn run(mut self) {
        loop {
            let first = match self.next_compaction {
                Some(at) => match self
                    .requests
                    .recv_timeout(at.saturating_duration_since(Instant::now()))
                {
                    Ok(request) => Some(request),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match self.requests.recv() {
                    Ok(request) => Some(request),
                    Err(_) => break,
                },
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match self.requests.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                self.commit(batch);
            }
            if self.next_compaction.is_some_and(|at| at <= Instant::now()) {
                self.auto_compact();
            }
        }
        self.shared.hub.blocking_lock().close();
    }

    fn auto_compact(&mut self) {
        let now = Instant::now();
        self.next_compaction = self.options.compaction_interval.map(|every| now + every);
        self.samples.push_back((now, self.revision));
        let mut by_time = 0;
        while let Some(&(at, revision)) = self.samples.front() {
            if now.duration_since(at) < self.options.history_retention {
                break;
            }
            by_time = revision;
            self.samples.pop_front();
        }
        let by_count = self.revision - self.options.max_history;
        let target = by_time.max(by_count);
        if target > self.compacted {
            let (reply, _) = oneshot::channel();
            self.commit(vec![Request {
                op: Op::Compact { revision: target },
                reply,
            }]);
            tracing::debug!(revision = target, "compacted store history");
        }
    }

    fn commit(&mut self, batch: Vec<Request>) {
        let mut pending = Pending {
            revision: self.revision,
            compacted: self.compacted,
            events: Vec::new(),
        };
        let (replies, results): (Vec<_>, Vec<_>) = match self.apply_batch(&batch, &mut pending) {
            Ok(results) => batch.into_iter().map(|r| r.reply).zip(results).unzip(),
            Err(err) => {
                tracing::error!(error = %err, "store transaction failed");
                let results = batch
                    .iter()
                    .map(|_| Err(StoreError::Backend(err.to_string())))
                    .collect();
                (batch.into_iter().map(|r| r.reply).collect(), results)
            }
        };
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }

    /// Build and commit one transaction. Per-request failures (conflicts, …) are in the returned list;
    /// an `Err` means nothing was committed.
    fn apply_batch(
        &mut self,
        batch: &[Request],
        pending: &mut Pending,
    ) -> StoreResult<Vec<StoreResult<OpOutput>>> {
        let mut txn = self.shared.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::Immediate).map_err(backend)?;
        let mut results = Vec::with_capacity(batch.len());
        {
            let mut tables = Tables {
                kv: txn.open_table(KV).map_err(backend)?,
                history: txn.open_table(HISTORY).map_err(backend)?,
            };
            for request in batch {
                match apply(&mut tables, pending, &request.op) {
                    Err(err @ StoreError::Backend(_)) => return Err(err),
                    result => results.push(result),
                }
            }
            if pending.revision == self.revision && pending.compacted == self.compacted {
                // Nothing changed: every request failed its precondition.
                drop(tables);
                txn.abort().map_err(backend)?;
                return Ok(results);
            }
            let mut meta = txn.open_table(META).map_err(backend)?;
            meta.insert(META_REVISION, pending.revision)
                .map_err(backend)?;
            meta.insert(META_COMPACTED, pending.compacted)
                .map_err(backend)?;
        }
        // Commit and publish under the hub lock: a watcher registering now either sees the new revision
        // (and finds these changes in history) or gets them on its channel, never both or neither.
        let mut hub = self.shared.hub.blocking_lock();
        txn.commit().map_err(backend)?;
        hub.revision = pending.revision;
        hub.compacted = pending.compacted;
        hub.dispatch(&pending.events);
        drop(hub);
        self.revision = pending.revision;
        self.compacted = pending.compacted;
        Ok(results)
    }
}

fn apply(tables: &mut Tables<'_>, pending: &mut Pending, op: &Op) -> StoreResult<OpOutput> {
    let next = pending.revision + 1;
    let mut deleted = None;
    let event = match op {
        Op::Create { key, value } => {
            if tables.kv.get(key.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::AlreadyExists(key.clone()));
            }
            tables
                .kv
                .insert(
                    key.as_str(),
                    codec::encode_value(next, next, value).as_slice(),
                )
                .map_err(backend)?;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: next,
                mod_revision: next,
            };
            WatchEvent::Put { kv, prev: None }
        }
        Op::Update {
            key,
            value,
            expected,
        } => {
            let prev = current(tables, key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            if prev.mod_revision != *expected {
                return Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    actual: prev.mod_revision,
                });
            }
            let encoded = codec::encode_value(prev.create_revision, next, value);
            tables
                .kv
                .insert(key.as_str(), encoded.as_slice())
                .map_err(backend)?;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: prev.create_revision,
                mod_revision: next,
            };
            WatchEvent::Put {
                kv,
                prev: Some(prev),
            }
        }
        Op::Delete { key, expected } => {
            let prev = current(tables, key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            if let Some(expected) = expected
                && prev.mod_revision != *expected
            {
                return Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    actual: prev.mod_revision,
                });
            }
            tables.kv.remove(key.as_str()).map_err(backend)?;
            deleted = Some(prev.clone());
            WatchEvent::Delete {
                kv: KeyValue {
                    mod_revision: next,
                    ..prev
                },
            }
        }
        Op::Compact { revision } => {
            if *revision > pending.revision {
                return Err(StoreError::FutureRevision {
                    requested: *revision,
                    current: pending.revision,
                });
            }
            if *revision > pending.compacted {
                tables
                    .history
                    .retain_in(..=*revision, |_, _| false)
                    .map_err(backend)?;
                pending.compacted = *revision;
            }
            return Ok(OpOutput::Compacted);
        }
    };
    tables
        .history
        .insert(next, codec::encode_event(&event).as_slice())
        .map_err(backend)?;
    pending.revision = next;
    let output = match deleted {
        // The deleted value as it was stored, with its last mod_revision.
        Some(prev) => OpOutput::Deleted(prev, next),
        None => OpOutput::Revision(next),
    };
    pending.events.push(event);
    Ok(output)
}

fn current(tables: &Tables<'_>, key: &str) -> StoreResult<Option<KeyValue>> {
    match tables.kv.get(key).map_err(backend)? {
        Some(value) => Ok(Some(codec::decode_value(key, value.value())?)),
        None => Ok(None),
    }
}
