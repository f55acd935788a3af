//! skiff-apiserver: a lite Kubernetes-compatible API server.
//!
//! It authenticates, authorizes, decodes, defaults, validates and stores the objects skiff serves, and runs
//! the cluster's built-in loops (scheduler, node IPAM) in-process.

pub mod store;
