//! Values handed out from a finite range, one store key each: cluster IPs (`service_ips`) and node ports
//! (`node_ports`).
//!
//! A reservation is the key `<prefix><value>` holding the owner's object key, created with create-if-absent:
//! two concurrent creates, or two API servers sharing one etcd, can never both get a value. This works the
//! same on every store backend, unlike kube-apiserver's single bitmap object under optimistic concurrency.

use std::collections::HashSet;
use std::fmt::Display;

use crate::store::{Store, StoreError, StoreResult};

/// The reservations under one key prefix.
pub struct Reservations {
    prefix: &'static str,
}

impl Reservations {
    pub const fn new(prefix: &'static str) -> Self {
        Reservations { prefix }
    }

    fn key(&self, value: impl Display) -> String {
        format!("{}{value}", self.prefix)
    }

    /// Reserve `value` for `owner`; `false` when it is held already (by anyone, `owner` included).
    pub async fn claim(
        &self,
        store: &dyn Store,
        value: impl Display,
        owner: &str,
    ) -> StoreResult<bool> {
        match store
            .create(&self.key(value), owner.as_bytes().to_vec())
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reserve the first of `candidates` nobody holds; `None` when every one is held.
    pub async fn claim_first<T: Display>(
        &self,
        store: &dyn Store,
        candidates: impl IntoIterator<Item = T>,
        owner: &str,
    ) -> StoreResult<Option<T>> {
        // One read of what is held saves a failed write per held value; a value taken since is skipped
        // by `claim`.
        let (held, _) = store.list(self.prefix).await?;
        let held: HashSet<&str> = held
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(self.prefix))
            .collect();
        for value in candidates {
            if !held.contains(value.to_string().as_str())
                && self.claim(store, &value, owner).await?
            {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// Give `value` back (one nobody holds is fine).
    pub async fn release(&self, store: &dyn Store, value: impl Display) -> StoreResult<()> {
        match store.delete(&self.key(value), None).await {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Give `value` back only if `owner` holds it.
    pub async fn release_if_owned(
        &self,
        store: &dyn Store,
        value: impl Display,
        owner: &str,
    ) -> StoreResult<()> {
        let key = self.key(value);
        let Some(kv) = store.get(&key).await? else {
            return Ok(());
        };
        if kv.value != owner.as_bytes() {
            return Ok(());
        }
        match store.delete(&key, Some(kv.mod_revision)).await {
            Ok(_) | Err(StoreError::NotFound(_)) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `0..len` starting at a random offset and wrapping around: the order both allocators try free values in
/// (kube-apiserver's random-scan strategy), so that concurrent allocations rarely race for one value.
pub fn random_scan(len: u64) -> impl Iterator<Item = u64> {
    let start = match len {
        0 => 0,
        _ => (uuid::Uuid::new_v4().as_u128() % u128::from(len)) as u64,
    };
    (0..len).map(move |i| (start + i) % len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_scan_visits_every_offset_once() {
        for len in [0, 1, 2, 7, 100] {
            let mut seen: Vec<u64> = random_scan(len).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..len).collect::<Vec<_>>());
        }
    }
}
