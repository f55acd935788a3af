//! Leader election: the controllers run in one API server at a time, the holder of the Lease
//! `kube-system/skiff-controllers` (like kube-controller-manager's `kube-system/kube-controller-manager`).
//!
//! The holder renews every `retry_every`; it steps down when it cannot renew within `renew_deadline`.
//! Another server takes over a Lease that it has seen unchanged for `lease_duration` on its own clock, or
//! at once when the holder released it on shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use serde_json::{Value, json};

use super::{Config, object};
use crate::store::{Revision, Store, StoreError};

pub const LEASE_KEY: &str = "/registry/leases/kube-system/skiff-controllers";

/// Timing and identity of one candidate.
#[derive(Debug, Clone)]
pub struct Election {
    /// Unique per API server; a restarted server with the same identity takes its Lease back at once.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_every: Duration,
}

impl Election {
    /// kube-controller-manager's timings (15 s lease, 10 s renew deadline, 2 s retry period).
    pub fn new(identity: impl Into<String>) -> Election {
        Election {
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// MicroTime, as Lease timestamps are written.
fn micro_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

pub struct Elector {
    election: Election,
    /// The other holder's Lease revision and when this candidate first saw it.
    observed: Option<(Revision, Instant)>,
}

impl Elector {
    pub fn new(election: Election) -> Elector {
        Elector {
            election,
            observed: None,
        }
    }

    pub fn election(&self) -> &Election {
        &self.election
    }

    fn lease(
        &self,
        holder: Option<&str>,
        acquired: Option<Value>,
        transitions: i64,
        created: Option<&Value>,
    ) -> Value {
        let seconds = self.election.lease_duration.as_secs().max(1);
        let mut lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": created.cloned().unwrap_or_else(|| json!({
                "name": "skiff-controllers",
                "namespace": "kube-system",
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": object::now_rfc3339(),
            })),
            "spec": {
                "leaseDurationSeconds": seconds,
                "renewTime": micro_now(),
                "leaseTransitions": transitions,
            }
        });
        if let Some(holder) = holder {
            lease["spec"]["holderIdentity"] = holder.into();
        }
        if let Some(acquired) = acquired {
            lease["spec"]["acquireTime"] = acquired;
        }
        object::strip_resource_version(&mut lease);
        lease
    }

    /// Take or renew the Lease; `Ok(true)` while this candidate holds it.
    pub async fn try_acquire_or_renew(&mut self, store: &dyn Store) -> Result<bool, StoreError> {
        let me = self.election.identity.clone();
        let Some(kv) = store.get(LEASE_KEY).await? else {
            let lease = self.lease(Some(&me), Some(micro_now().into()), 0, None);
            return match store.create(LEASE_KEY, to_bytes(&lease)?).await {
                Ok(_) => Ok(true),
                Err(StoreError::AlreadyExists(_)) => Ok(false),
                Err(err) => Err(err),
            };
        };
        // A Lease that cannot be read is treated as free, so a corrupt object cannot stop the cluster.
        let current: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        let spec = current.get("spec");
        let holder = spec
            .and_then(|s| s.get("holderIdentity"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let transitions = spec
            .and_then(|s| s.get("leaseTransitions"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let metadata = current.get("metadata").filter(|m| m.is_object());
        let next = if holder == me {
            let acquired = spec.and_then(|s| s.get("acquireTime")).cloned();
            self.lease(Some(&me), acquired, transitions, metadata)
        } else {
            let expired = holder.is_empty()
                || match self.observed {
                    Some((revision, since)) if revision == kv.mod_revision => {
                        since.elapsed() >= self.election.lease_duration
                    }
                    _ => {
                        self.observed = Some((kv.mod_revision, Instant::now()));
                        false
                    }
                };
            if !expired {
                return Ok(false);
            }
            self.lease(
                Some(&me),
                Some(micro_now().into()),
                transitions + 1,
                metadata,
            )
        };
        match store
            .update(LEASE_KEY, to_bytes(&next)?, kv.mod_revision)
            .await
        {
            Ok(_) => {
                self.observed = None;
                Ok(true)
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Give the Lease up (on shutdown), so that another server need not wait for it to expire.
    pub async fn release(&self, store: &dyn Store) -> Result<(), StoreError> {
        let Some(kv) = store.get(LEASE_KEY).await? else {
            return Ok(());
        };
        let current: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        let holder = current
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str);
        if holder != Some(self.election.identity.as_str()) {
            return Ok(());
        }
        let transitions = current
            .pointer("/spec/leaseTransitions")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let released = self.lease(
            None,
            None,
            transitions,
            current.get("metadata").filter(|m| m.is_object()),
        );
        match store
            .update(LEASE_KEY, to_bytes(&released)?, kv.mod_revision)
            .await
        {
            Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

fn to_bytes(value: &Value) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))
}

/// This host's name, for the default identity.
pub fn host_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if host.is_empty() {
        "skiff-apiserver".to_string()
    } else {
        format!("skiff-apiserver-{host}")
    }
}

enum Stop {
    Shutdown,
    Lost,
    Exited(Result<anyhow::Result<()>, tokio::task::JoinError>),
}

/// Campaign for the Lease; while holding it run the controllers; step down when it is lost; release it on
/// shutdown.
pub(crate) async fn run_elected(
    store: Arc<dyn Store>,
    config: Config,
    election: Election,
    node_grace: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    super::ipam::Allocator::new(config.cluster_cidr, config.node_cidr_mask)?;
    let mut elector = Elector::new(election);
    let retry = elector.election().retry_every;
    loop {
        // Campaign until this server holds the Lease.
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            match elector.try_acquire_or_renew(&*store).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "leader election failed; retrying"),
            }
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() { return Ok(()) },
                _ = tokio::time::sleep(retry) => {}
            }
        }
        tracing::info!(identity = %elector.election().identity, "leading: starting the controllers");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut controllers = tokio::spawn(super::run_with_grace(
            store.clone(),
            config.clone(),
            node_grace,
            stopped,
        ));
        let mut renewed = Instant::now();
        let why = loop {
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { break Stop::Shutdown },
                result = &mut controllers => break Stop::Exited(result),
                _ = tokio::time::sleep(retry) => match elector.try_acquire_or_renew(&*store).await {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => break Stop::Lost,
                    Err(err) => {
                        tracing::warn!(error = %err, "renewing the controllers' Lease failed");
                        if renewed.elapsed() >= elector.election().renew_deadline {
                            break Stop::Lost;
                        }
                    }
                },
            }
        };
        match why {
            Stop::Exited(result) => {
                let _ = elector.release(&*store).await;
                return result.context("controllers task panicked")?;
            }
            Stop::Shutdown => {
                let _ = stop.send(true);
                let result = controllers.await;
                if let Err(err) = elector.release(&*store).await {
                    tracing::warn!(error = %err, "releasing the controllers' Lease failed");
                }
                return result.context("controllers task panicked")?;
            }
            Stop::Lost => {
                tracing::warn!("lost the controllers' Lease: stopping the controllers");
                let _ = stop.send(true);
                let _ = controllers.await;
            }
        }
    }
}
