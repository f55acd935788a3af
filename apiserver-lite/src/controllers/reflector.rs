//! List-then-watch over one key prefix, in the shape of kube-runtime's watcher: a full listing first, then
//! every change; re-watch from the last seen revision when a stream ends, re-list when history is compacted.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};

use crate::store::{KeyValue, Revision, Store, StoreError, WatchEvent, WatchStream};

pub enum Change {
    /// The complete current state under the prefix; forget everything known before.
    Reset(Vec<KeyValue>),
    Put(KeyValue),
    Delete(KeyValue),
}

pub struct Reflector {
    store: Arc<dyn Store>,
    prefix: String,
    revision: Revision,
    listed: bool,
    stream: Option<WatchStream>,
}

const RETRY: Duration = Duration::from_millis(500);

impl Reflector {
    pub fn new(store: Arc<dyn Store>, prefix: &str) -> Reflector {
        Reflector {
            store,
            prefix: prefix.to_string(),
            revision: 0,
            listed: false,
            stream: None,
        }
    }

    /// The store revision this view has reached: every change up to it has been handed out.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The next change. Never fails: store errors are logged and retried. Cancel-safe.
    pub async fn next(&mut self) -> Change {
        loop {
            if !self.listed {
                match self.store.list(&self.prefix).await {
                    Ok((items, revision)) => {
                        self.revision = revision;
                        self.listed = true;
                        self.stream = None;
                        return Change::Reset(items);
                    }
                    Err(err) => {
                        tracing::warn!(prefix = %self.prefix, error = %err, "list failed; retrying");
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                match self.store.watch(&self.prefix, self.revision).await {
                    Ok(stream) => self.stream = Some(stream),
                    // History is gone, or the store is behind this view (restored): start over.
                    Err(StoreError::Compacted { .. } | StoreError::FutureRevision { .. }) => {
                        self.listed = false
                    }
                    Err(err) => {
                        tracing::warn!(prefix = %self.prefix, error = %err, "watch failed; retrying");
                        tokio::time::sleep(RETRY).await;
                    }
                }
                continue;
            };
            match stream.next().await {
                Some(Ok(event)) => {
                    self.revision = event.revision();
                    return match event {
                        WatchEvent::Put { kv, .. } => Change::Put(kv),
                        WatchEvent::Delete { kv } => Change::Delete(kv),
                    };
                }
                Some(Err(StoreError::Compacted { .. })) => {
                    self.stream = None;
                    self.listed = false;
                }
                Some(Err(err)) => {
                    tracing::warn!(prefix = %self.prefix, error = %err, "watch stream failed; re-watching");
                    self.stream = None;
                    tokio::time::sleep(RETRY).await;
                }
                // The store dropped a lagging watch (or is restarting it): continue from the last revision.
                None => self.stream = None,
            }
        }
    }

    /// Hand at most `max` already-delivered changes to `apply` (see [`Reflector::try_next`]), so a round
    /// folds in what has arrived without starving the syncs behind it.
    pub fn drain(&mut self, max: usize, mut apply: impl FnMut(Change)) {
        for _ in 0..max {
            match self.try_next() {
                Some(change) => apply(change),
                None => break,
            }
        }
    }

    /// A change that is already delivered, without waiting (and without starting a list or watch). Lets a
    /// caller bring this view up to date before acting on a newer change from another reflector.
    pub fn try_next(&mut self) -> Option<Change> {
        let stream = self.stream.as_mut()?;
        match stream.next().now_or_never()? {
            Some(Ok(event)) => {
                self.revision = event.revision();
                Some(match event {
                    WatchEvent::Put { kv, .. } => Change::Put(kv),
                    WatchEvent::Delete { kv } => Change::Delete(kv),
                })
            }
            Some(Err(StoreError::Compacted { .. })) => {
                self.stream = None;
                self.listed = false;
                None
            }
            // Errors and ends are handled (with their back-off) by the next call to `next`.
            Some(Err(_)) | None => {
                self.stream = None;
                None
            }
        }
    }
}
