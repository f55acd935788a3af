//! The cluster's built-in control loops, run inside the API server on top of the [`Store`]: the system
//! namespaces at start, node IPAM (pod CIDRs), node lifecycle (stale nodes become `Unknown`), event expiry
//! (1 h), the scheduler, the endpoints controller, the `default/kubernetes` and `kube-system/kube-dns`
//! Services, the `kube-root-ca.crt` ConfigMap of every namespace (`root_ca`), the ReplicaSet and
//! Deployment controllers (`replicaset`, `deployment`), the StatefulSet controller (`statefulset`), the
//! garbage collector (ownerReferences and deletion propagation, `garbage_collector`), the volume binder,
//! local-path provisioner and storage protection finalizers (`volumes`), the claims of pods' generic
//! ephemeral volumes (`ephemeral`), the PodDisruptionBudget
//! status (`disruption`), the ResourceQuota usage (`quota`) and ServiceLB's load balancer ingress
//! (`service_lb`).
//!
//! The loops read and write the store directly (objects as full JSON under `/registry/<resource>/…`) and
//! follow it with list-then-watch, so they react to a change within milliseconds of its commit.

mod bootstrap;
pub(crate) mod cronjob;
pub mod csr;
mod daemonset;
mod deployment;
pub(crate) mod disruption;
mod endpoints;
mod ephemeral;
mod event_ttl;
mod events;
mod garbage_collector;
pub(crate) mod hpa;
mod ipam;
mod job;
mod kube_dns;
mod kubernetes_service;
mod leader;
mod node_lifecycle;
mod object;
mod owners;
mod queue;
pub(crate) mod quota;
pub(crate) mod reflector;
mod replicaset;
mod root_ca;
mod scheduler;
mod service_lb;
mod statefulset;
mod system_service;
#[cfg(test)]
mod tests;
mod volumes;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::store::Store;
pub use bootstrap::{SYSTEM_NAMESPACES, bootstrap};
pub use job::{
    parse_backoff as parse_job_backoff, set_pod_failure_backoff as set_job_pod_failure_backoff,
};
pub use leader::{Election, LEASE_KEY, host_identity};
pub use volumes::{DEFAULT_LOCAL_PATH_ROOT, LOCAL_PATH};

pub(crate) const PODS_PREFIX: &str = "/registry/pods/";
pub(crate) const NODES_PREFIX: &str = "/registry/nodes/";
pub(crate) const EVENTS_PREFIX: &str = "/registry/events/";
pub(crate) const NAMESPACES_PREFIX: &str = "/registry/namespaces/";

/// Settings of the controllers.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pod addresses of the whole cluster (`--cluster-cidr`).
    pub cluster_cidr: ipnet::Ipv4Net,
    /// Prefix length of each node's pod CIDR (`--node-cidr-mask-size`).
    pub node_cidr_mask: u8,
    /// Service cluster IPs (`--service-cluster-ip-range`); its first host is the `kubernetes` Service's.
    pub service_cidr: ipnet::Ipv4Net,
    /// The cluster DNS address (`--cluster-dns`): the `kube-dns` Service's; `None` keeps no such Service.
    pub cluster_dns: Option<Ipv4Addr>,
    /// This server's address for pods (`--advertise-address`): the `kubernetes` Endpoints.
    pub advertise_address: IpAddr,
    /// The port this server listens on (the bound one when `--secure-port` is 0).
    pub secure_port: u16,
    /// The cluster CA (PEM) published as `kube-root-ca.crt` in every namespace.
    pub root_ca_pem: String,
    /// Where the local-path provisioner puts volumes on the nodes (`--local-path-root`, absolute).
    pub local_path_root: std::path::PathBuf,
    /// Resource metrics scraped from the agents (read by the HorizontalPodAutoscaler controller).
    pub metrics: Arc<crate::metrics::MetricsStore>,
    /// Run ServiceLB (`service_lb`): node addresses as the ingress of LoadBalancer Services
    /// (`--disable-servicelb` turns it off).
    pub service_lb: bool,
}

/// Run the controllers while this server holds the controllers' Lease (identity: this host's name, see
/// [`host_identity`]) until `shutdown` turns true (or its sender is dropped).
pub async fn run(
    store: Arc<dyn Store>,
    config: Config,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    run_elected(store, config, Election::new(host_identity()), shutdown).await
}

/// [`run`] with an explicit identity and timings (several API servers on one host, tests).
pub async fn run_elected(
    store: Arc<dyn Store>,
    config: Config,
    election: Election,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    leader::run_elected(
        store,
        config,
        election,
        node_lifecycle::GRACE_PERIOD,
        shutdown,
    )
    .await
}

/// Run node IPAM, node lifecycle, event expiry, the scheduler, the endpoints controller and the
/// `kubernetes` and `kube-dns` Services (no election) until `shutdown` turns true.
pub(crate) async fn run_with_grace(
    store: Arc<dyn Store>,
    config: Config,
    node_grace: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let allocator = ipam::Allocator::new(config.cluster_cidr, config.node_cidr_mask)?;
    let ipam = tokio::spawn(ipam::run(store.clone(), allocator, shutdown.clone()));
    let lifecycle = tokio::spawn(node_lifecycle::run(
        store.clone(),
        node_grace,
        shutdown.clone(),
    ));
    let expiry = tokio::spawn(event_ttl::run(store.clone(), shutdown.clone()));
    let garbage = tokio::spawn(garbage_collector::run(store.clone(), shutdown.clone()));
    let scheduler = tokio::spawn(scheduler::run(store.clone(), shutdown.clone()));
    let endpoints = tokio::spawn(endpoints::run(store.clone(), shutdown.clone()));
    let daemonsets = tokio::spawn(daemonset::run(store.clone(), shutdown.clone()));
    let replicasets = tokio::spawn(replicaset::run(store.clone(), shutdown.clone()));
    let replication = tokio::spawn(replicaset::run_replication(store.clone(), shutdown.clone()));
    let deployments = tokio::spawn(deployment::run(store.clone(), shutdown.clone()));
    let jobs = tokio::spawn(job::run(store.clone(), shutdown.clone()));
    let cronjobs = tokio::spawn(cronjob::run(store.clone(), shutdown.clone()));
    let statefulsets = tokio::spawn(statefulset::run(store.clone(), shutdown.clone()));
    let disruption = tokio::spawn(disruption::run(store.clone(), shutdown.clone()));
    let autoscaler = tokio::spawn(hpa::run(
        store.clone(),
        config.metrics.clone(),
        shutdown.clone(),
    ));
    let quotas = tokio::spawn(quota::run(store.clone(), shutdown.clone()));
    let service_lb = config
        .service_lb
        .then(|| tokio::spawn(service_lb::run(store.clone(), shutdown.clone())));
    let ephemeral_volumes = tokio::spawn(ephemeral::run(store.clone(), shutdown.clone()));
    let volumes = tokio::spawn(volumes::run(
        store.clone(),
        volumes::Settings {
            local_path_root: config.local_path_root.clone(),
        },
        shutdown.clone(),
    ));
    let root_ca = tokio::spawn(root_ca::run(
        store.clone(),
        config.root_ca_pem.clone(),
        shutdown.clone(),
    ));
    let kube_dns = tokio::spawn(kube_dns::run(
        store.clone(),
        config.service_cidr,
        config.cluster_dns,
        shutdown.clone(),
    ));
    let kubernetes = tokio::spawn(kubernetes_service::run(
        store,
        kubernetes_service::Settings {
            service_cidr: config.service_cidr,
            advertise_address: config.advertise_address,
            secure_port: config.secure_port,
        },
        shutdown,
    ));
    let (ipam, lifecycle, expiry, scheduler, endpoints, root_ca, kube_dns, kubernetes) = tokio::join!(
        ipam, lifecycle, expiry, scheduler, endpoints, root_ca, kube_dns, kubernetes
    );
    ipam.context("node IPAM task panicked")?
        .context("node IPAM failed")?;
    lifecycle
        .context("node lifecycle task panicked")?
        .context("node lifecycle failed")?;
    expiry
        .context("event expiry task panicked")?
        .context("event expiry failed")?;
    scheduler
        .context("scheduler task panicked")?
        .context("scheduler failed")?;
    endpoints
        .context("endpoints controller task panicked")?
        .context("endpoints controller failed")?;
    root_ca
        .context("root CA publisher task panicked")?
        .context("root CA publisher failed")?;
    kube_dns
        .context("kube-dns service task panicked")?
        .context("kube-dns service failed")?;
    kubernetes
        .context("kubernetes service task panicked")?
        .context("kubernetes service failed")?;
    daemonsets
        .await
        .context("daemonset controller task panicked")?
        .context("daemonset controller failed")?;
    garbage
        .await
        .context("garbage collector task panicked")?
        .context("garbage collector failed")?;
    replicasets
        .await
        .context("replicaset controller task panicked")?
        .context("replicaset controller failed")?;
    replication
        .await
        .context("replication controller task panicked")?
        .context("replication controller failed")?;
    deployments
        .await
        .context("deployment controller task panicked")?
        .context("deployment controller failed")?;
    jobs.await
        .context("job controller task panicked")?
        .context("job controller failed")?;
    cronjobs
        .await
        .context("cronjob controller task panicked")?
        .context("cronjob controller failed")?;
    statefulsets
        .await
        .context("statefulset controller task panicked")?
        .context("statefulset controller failed")?;
    volumes
        .await
        .context("volume controller task panicked")?
        .context("volume controller failed")?;
    ephemeral_volumes
        .await
        .context("ephemeral volume controller task panicked")?
        .context("ephemeral volume controller failed")?;
    disruption
        .await
        .context("disruption controller task panicked")?
        .context("disruption controller failed")?;
    autoscaler
        .await
        .context("horizontal pod autoscaler task panicked")?
        .context("horizontal pod autoscaler failed")?;
    quotas
        .await
        .context("resourcequota controller task panicked")?
        .context("resourcequota controller failed")?;
    if let Some(service_lb) = service_lb {
        service_lb
            .await
            .context("servicelb controller task panicked")?
            .context("servicelb controller failed")?;
    }
    Ok(())
}
