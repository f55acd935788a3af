//! Node-level reclaim before evicting pods, as the kubelet's eviction manager (`reclaimNodeLevelResources`
//! with `buildSignalToNodeReclaimFuncs`): for a disk signal, first delete dead containers, then unused
//! images. With one file system for both (no dedicated imagefs) every disk signal reclaims both; with a
//! dedicated imagefs only the imagefs signals do (containers' writable layers and images live there) and a
//! nodefs signal goes straight to evicting. Memory and pids have nothing to reclaim.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::container_gc::ContainerGc;
use super::image_gc::ImageGc;
use super::pressure::Signal;

/// One way of getting node resources back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReclaimFn {
    /// The kubelet's `containerGC.DeleteAllUnusedContainers`.
    DeadContainers,
    /// The kubelet's `imageGC.DeleteUnusedImages`.
    UnusedImages,
}

const BOTH: &[ReclaimFn] = &[ReclaimFn::DeadContainers, ReclaimFn::UnusedImages];

/// What to run, in order, for a signal (the kubelet's map for a node without a split container fs).
pub fn reclaim_fns(signal: Signal, dedicated_imagefs: bool) -> &'static [ReclaimFn] {
    match signal {
        Signal::MemoryAvailable | Signal::PidAvailable => &[],
        Signal::NodefsAvailable | Signal::NodefsInodesFree if dedicated_imagefs => &[],
        _ => BOTH,
    }
}

/// The reclaim functions with what they need: the runtime, image GC and this node's pods.
pub struct NodeReclaim {
    pub containers: ContainerGc,
    pub images: Arc<ImageGc>,
    pub pods: Api<Pod>,
    pub on_node: ListParams,
}

impl NodeReclaim {
    /// Run `fns` in order; errors are logged and the next one runs (as the kubelet). `false` when there was
    /// nothing to run, so the caller need not measure again.
    pub async fn run(&self, fns: &[ReclaimFn], resource: &str) -> bool {
        for f in fns {
            let res = match f {
                ReclaimFn::DeadContainers => self.dead_containers().await,
                ReclaimFn::UnusedImages => self.unused_images().await,
            };
            if let Err(e) = res {
                tracing::info!(resource, error = %e, "eviction manager: unexpected error when attempting to reduce resource pressure");
            }
        }
        !fns.is_empty()
    }

    async fn dead_containers(&self) -> Result<(), String> {
        let snap = self.containers.snapshot().await?;
        let pods = self
            .pods
            .list(&self.on_node)
            .await
            .map_err(|e| format!("cannot list this node's pods: {e}"))?;
        let done = self.containers.collect(snap, &pods.items).await;
        if !done.containers.is_empty() {
            tracing::info!(removed = ?done.containers, log_bytes = done.log_bytes, "eviction manager: deleted dead containers");
        }
        Ok(())
    }

    async fn unused_images(&self) -> Result<(), String> {
        let p = self.images.reclaim().await?;
        if !p.deleted.is_empty() {
            tracing::info!(deleted = ?p.deleted, freed = p.freed, "eviction manager: deleted unused images");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_signals_reclaim_what() {
        use ReclaimFn::*;
        for dedicated in [false, true] {
            assert!(reclaim_fns(Signal::MemoryAvailable, dedicated).is_empty());
            assert!(reclaim_fns(Signal::PidAvailable, dedicated).is_empty());
            for s in [Signal::ImagefsAvailable, Signal::ImagefsInodesFree] {
                assert_eq!(reclaim_fns(s, dedicated), [DeadContainers, UnusedImages]);
            }
        }
        for s in [Signal::NodefsAvailable, Signal::NodefsInodesFree] {
            assert_eq!(reclaim_fns(s, false), [DeadContainers, UnusedImages]);
            assert!(reclaim_fns(s, true).is_empty(), "a dedicated imagefs");
        }
    }
}
