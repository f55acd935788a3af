//! Watch fan-out: the registry of live watchers and the replay of history.
//!
//! The writer thread holds the hub's lock while it commits and dispatches, so a watcher registered under the
//! lock sees a clean cut: every change up to the hub's revision is in the history table, every later change
//! arrives on its channel. A watcher whose channel is full is dropped (its stream ends) instead of blocking
//! writers; the client then re-watches from the last revision it saw.

use std::sync::Arc;

use ::redb::ReadableDatabase;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{HISTORY, META, META_COMPACTED, Shared, backend, codec};
use crate::store::{Revision, StoreError, StoreResult, WatchEvent, WatchStream};

/// How many undelivered events a watcher may have before it is dropped.
pub(super) const WATCH_BUFFER: usize = 4096;
/// How many history records one replay read transaction loads.
const REPLAY_PAGE: usize = 512;

pub(super) struct Hub {
    /// The revision of the last committed write.
    pub revision: Revision,
    /// History up to and including this revision is gone.
    pub compacted: Revision,
    watchers: Vec<Watcher>,
}

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<StoreResult<WatchEvent>>,
}

impl Hub {
    pub fn new(revision: Revision, compacted: Revision) -> Hub {
        Hub {
            revision,
            compacted,
            watchers: Vec::new(),
        }
    }

    /// Deliver committed events (in revision order) to every watcher whose prefix matches.
    pub fn dispatch(&mut self, events: &[WatchEvent]) {
        self.watchers.retain(|watcher| {
            for event in events {
                if event_key(event).starts_with(&watcher.prefix)
                    && watcher.tx.try_send(Ok(event.clone())).is_err()
                {
                    // Full or closed: end this watch rather than stall the writer.
                    return false;
                }
            }
            !watcher.tx.is_closed()
        });
    }

    /// End every watch (the store is shutting down).
    pub fn close(&mut self) {
        self.watchers.clear();
    }

    #[cfg(test)]
    pub fn watcher_count(&self) -> usize {
        self.watchers.len()
    }
}

fn event_key(event: &WatchEvent) -> &str {
    match event {
        WatchEvent::Put { kv, .. } | WatchEvent::Delete { kv } => &kv.key,
    }
}

/// Register a watcher and build its stream: history in `(after, now]`, then live events.
pub(super) async fn watch(
    shared: &Arc<Shared>,
    prefix: &str,
    after: Revision,
) -> StoreResult<WatchStream> {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let upto = {
        let mut hub = shared.hub.lock().await;
        if after > hub.revision {
            return Err(StoreError::FutureRevision {
                requested: after,
                current: hub.revision,
            });
        }
        if after < hub.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: hub.compacted,
            });
        }
        hub.watchers.push(Watcher {
            prefix: prefix.to_string(),
            tx,
        });
        hub.revision
    };
    let replay = replay(shared.clone(), prefix.to_string(), after, upto);
    let live = tokio_stream::wrappers::ReceiverStream::new(rx);
    // After an error (history compacted during the replay) the stream ends: the events that would follow
    // are not contiguous with what was delivered.
    let stream = replay.chain(live).scan(false, |failed, item| {
        let out = if *failed {
            None
        } else {
            *failed = item.is_err();
            Some(item)
        };
        futures::future::ready(out)
    });
    Ok(Box::pin(stream))
}

struct ReplayState {
    shared: Arc<Shared>,
    prefix: String,
    cursor: Revision,
    upto: Revision,
    page: std::vec::IntoIter<WatchEvent>,
    failed: bool,
}

fn replay(
    shared: Arc<Shared>,
    prefix: String,
    after: Revision,
    upto: Revision,
) -> impl futures::Stream<Item = StoreResult<WatchEvent>> + Send {
    let state = ReplayState {
        shared,
        prefix,
        cursor: after,
        upto,
        page: Vec::new().into_iter(),
        failed: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if state.failed {
                return None;
            }
            if let Some(event) = state.page.next() {
                return Some((Ok(event), state));
            }
            if state.cursor >= state.upto {
                return None;
            }
            let shared = state.shared.clone();
            let (prefix, cursor, upto) = (state.prefix.clone(), state.cursor, state.upto);
            let page =
                tokio::task::spawn_blocking(move || read_history(&shared, &prefix, cursor, upto))
                    .await
                    .map_err(|e| StoreError::Backend(format!("history reader failed: {e}")))
                    .and_then(|r| r);
            match page {
                Ok((events, next_cursor)) => {
                    state.cursor = next_cursor;
                    state.page = events.into_iter();
                }
                Err(err) => {
                    state.failed = true;
                    return Some((Err(err), state));
                }
            }
        }
    })
}

/// Read up to `REPLAY_PAGE` history records in `(after, upto]`; returns the matching events and the last
/// revision examined.
fn read_history(
    shared: &Shared,
    prefix: &str,
    after: Revision,
    upto: Revision,
) -> StoreResult<(Vec<WatchEvent>, Revision)> {
    let txn = shared.db.begin_read().map_err(backend)?;
    let meta = txn.open_table(META).map_err(backend)?;
    let compacted = meta
        .get(META_COMPACTED)
        .map_err(backend)?
        .map(|v| v.value())
        .unwrap_or(0);
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    let history = txn.open_table(HISTORY).map_err(backend)?;
    let mut events = Vec::new();
    let mut last = after;
    for (examined, entry) in history
        .range((after + 1)..=upto)
        .map_err(backend)?
        .enumerate()
    {
        if examined >= REPLAY_PAGE {
            break;
        }
        let (revision, record) = entry.map_err(backend)?;
        last = revision.value();
        let event = codec::decode_event(record.value())?;
        if event_key(&event).starts_with(prefix) {
            events.push(event);
        }
    }
    if last == after {
        // Nothing left in range (history has no gaps, so this only happens at the end).
        last = upto;
    }
    Ok((events, last))
}
