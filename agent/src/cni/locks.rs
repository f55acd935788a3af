//! Operation ordering: never two operations on one container at a time, and GC exclusive with
//! every ADD/DEL (spec §3).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedMutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[derive(Default)]
pub struct Locks {
    gc: RwLock<()>,
    containers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holds a container's lock; forgets the container's entry when nobody else waits on it.
pub struct ContainerGuard<'a> {
    locks: &'a Locks,
    id: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        if let Ok(mut map) = self.locks.containers.lock()
            && map.get(&self.id).is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.id);
        }
    }
}

impl Locks {
    pub async fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.gc.read().await
    }

    pub async fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.gc.write().await
    }

    pub async fn container(&self, id: &str) -> ContainerGuard<'_> {
        let m = {
            let mut map = match self.containers.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            map.entry(id.to_string()).or_default().clone()
        };
        let guard = m.lock_owned().await;
        ContainerGuard {
            locks: self,
            id: id.to_string(),
            guard: Some(guard),
        }
    }
}
