//! The horizontal pod autoscaler (kube-controller-manager's): every 15 s, for each HorizontalPodAutoscaler,
//! reads its target's scale (Deployment, ReplicaSet, StatefulSet) and pods, computes the replicas the
//! `Resource` / `ContainerResource` metrics in the [`MetricsStore`] ask for ([`calc`]), stabilizes and
//! rate-limits them ([`behavior`]), writes the target's `spec.replicas` and the HPA's status, and records
//! kube's events.

pub(crate) mod behavior;
pub(crate) mod calc;
mod metric;
mod sync;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::MetricsStore;
use crate::store::Store;

/// kube's `--horizontal-pod-autoscaler-sync-period`.
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);

/// The controller's state between rounds: each HPA's recommendation and scale history by
/// `(namespace, name, uid)`.
pub struct Controller {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) metrics: Arc<MetricsStore>,
    pub(crate) started: Instant,
    pub(crate) histories: HashMap<(String, String, String), behavior::History>,
}

impl Controller {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<MetricsStore>) -> Controller {
        Controller {
            store,
            metrics,
            started: Instant::now(),
            histories: HashMap::new(),
        }
    }
}

/// Sync every HPA each [`SYNC_PERIOD`] until shutdown.
pub async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<MetricsStore>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut c = Controller::new(store, metrics);
    let mut tick = tokio::time::interval(SYNC_PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = c.sync_all().await {
                    tracing::warn!("horizontal pod autoscaler: {e}");
                }
            }
            _ = shutdown.changed() => return Ok(()),
        }
        if *shutdown.borrow() {
            return Ok(());
        }
    }
}
