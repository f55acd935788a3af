//! skiff-agent: a Kubernetes node agent that replaces the kubelet.
//!
//! It registers its Node, watches the pods bound to it, and runs them with containerd's native API:
//! images are pulled into containerd's content store, the pod's namespaces are pinned on disk, networking
//! comes from a CNI chain, and status flows back to the API server.

pub mod cni;
pub mod containerd;
pub mod images;
pub mod sandbox;
