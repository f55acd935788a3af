//! NetworkPolicy enforcement for the pods of this node, what a CNI's network policy controller does
//! (k3s's kube-router): the cluster's NetworkPolicies, Namespaces and Pods are watched through the API
//! server, and after every change (coalesced over [`COALESCE`]) and every [`RESYNC`] the nftables table
//! `inet skiff-netpol` is rewritten in one `nft -f -` transaction ([`rules`], from the pure translation
//! in [`model`]). The table stays when the agent stops, as the service proxy's does; `down.sh` removes it.
//!
//! Same-node pod traffic is bridged on `skiff0`: it only reaches the `inet` forward hook through
//! `br_netfilter` with `net.bridge.bridge-nf-call-iptables=1`, which [`bridge_netfilter`] makes sure of.

pub mod model;
pub mod ranges;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::ListParams;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource as _};
use tokio::sync::{Notify, watch};

/// Changes arriving within this window are applied as one batch.
const COALESCE: Duration = Duration::from_millis(50);
/// The table is rewritten this often even without a change (someone may have flushed the ruleset).
const RESYNC: Duration = Duration::from_secs(60);
/// How often an API server without NetworkPolicies (404) or that refuses them to nodes (403) is asked
/// again.
const API_RETRY: Duration = Duration::from_secs(60);

/// Enforce NetworkPolicies for the pods of `node` until the agent stops (never returns an error: a node
/// without enforcement keeps running its pods).
pub async fn run(client: Client, node: String) {
    bridge_netfilter().await;
    wait_for_api(&client).await;
    let changed = Arc::new(Notify::new());
    let (policies, pol_writer) = reflector::store::<NetworkPolicy>();
    let (namespaces, ns_writer) = reflector::store::<Namespace>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (pol_tx, pol_listed) = watch::channel(false);
    let (ns_tx, ns_listed) = watch::channel(false);
    let (pod_tx, pod_listed) = watch::channel(false);
    let cfg = watcher::Config::default;
    tokio::spawn(feed(
        reflector::reflector(
            pol_writer,
            watcher::watcher(Api::<NetworkPolicy>::all(client.clone()), cfg())
                .default_backoff()
                .modify(|p| p.meta_mut().managed_fields = None),
        ),
        changed.clone(),
        pol_tx,
        "networkpolicy",
    ));
    tokio::spawn(feed(
        reflector::reflector(
            ns_writer,
            watcher::watcher(Api::<Namespace>::all(client.clone()), cfg())
                .default_backoff()
                .modify(|n| n.meta_mut().managed_fields = None),
        ),
        changed.clone(),
        ns_tx,
        "namespace",
    ));
    tokio::spawn(feed(
        reflector::reflector(
            pod_writer,
            watcher::watcher(Api::<Pod>::all(client), cfg())
                .default_backoff()
                .modify(slim),
        ),
        changed.clone(),
        pod_tx,
        "pod",
    ));
    for flag in [&pol_listed, &ns_listed, &pod_listed] {
        let _ = flag.clone().wait_for(|l| *l).await;
    }
    tracing::info!(
        "network policies listed; enforcing them in nftables table inet {}",
        rules::TABLE
    );
    program(&policies, &namespaces, &pods, &changed, &node).await;
}

/// Rewrite the table after every change (coalesced) and every [`RESYNC`].
async fn program(
    policies: &Store<NetworkPolicy>,
    namespaces: &Store<Namespace>,
    pods: &Store<Pod>,
    changed: &Notify,
    node: &str,
) {
    let mut table = crate::proxy::Programmed::default();
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        let forced = tokio::select! {
            _ = changed.notified() => false,
            _ = resync.tick() => true,
        };
        tokio::time::sleep(COALESCE).await;
        let (pol, ns, pod) = (policies.state(), namespaces.state(), pods.state());
        let compiled = model::compile(
            &pol.iter().map(|p| p.as_ref()).collect::<Vec<_>>(),
            &pod.iter().map(|p| p.as_ref()).collect::<Vec<_>>(),
            &ns.iter().map(|n| n.as_ref()).collect::<Vec<_>>(),
            node,
        );
        let batch = rules::render(&compiled);
        // The resync rewrites even an unchanged table: someone may have deleted it.
        if table.is_current(&batch) && !forced {
            continue;
        }
        if table.apply(batch, "network policy", changed).await {
            tracing::debug!(summary = ?rules::summary(&compiled), "network policy rules applied");
        }
    }
}

/// Until the API server lists NetworkPolicies to this node. An older server (404) or one without the
/// `skiff:network-policy-agent` binding (403) is logged once and asked again every [`API_RETRY`].
async fn wait_for_api(client: &Client) {
    let api = Api::<NetworkPolicy>::all(client.clone());
    let mut logged = false;
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => {
                if logged {
                    tracing::info!("the API server now lists networkpolicies to this node");
                }
                return;
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => {
                if !logged {
                    tracing::warn!(
                        code = s.code,
                        "the API server does not list networkpolicies to this node ({}); \
                         network policies are not enforced; asking again every {API_RETRY:?}",
                        s.message
                    );
                    logged = true;
                }
                tokio::time::sleep(API_RETRY).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "listing networkpolicies failed; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Make sure bridged (same-node) traffic reaches the `inet` forward hook: `br_netfilter` loaded (best
/// effort: it may be built in, or the agent may lack the right), `net.bridge.bridge-nf-call-iptables=1`.
pub async fn bridge_netfilter() {
    let proc_bridge = std::path::Path::new("/proc/sys/net/bridge");
    if !proc_bridge.exists() {
        let out = tokio::process::Command::new(skiff_cni::plugin::firewall::find_tool("modprobe"))
            .arg("br_netfilter")
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => tracing::info!("loaded kernel module br_netfilter"),
            Ok(o) => tracing::warn!(
                "modprobe br_netfilter failed ({}): same-node pod traffic escapes network policies",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => tracing::warn!(
                "cannot run modprobe ({e}): same-node pod traffic escapes network policies"
            ),
        }
    }
    let knob = proc_bridge.join("bridge-nf-call-iptables");
    match tokio::fs::read_to_string(&knob).await {
        Ok(v) if v.trim() == "1" => {}
        Ok(_) => match tokio::fs::write(&knob, "1\n").await {
            Ok(()) => tracing::info!("set net.bridge.bridge-nf-call-iptables=1"),
            Err(e) => tracing::warn!("cannot set net.bridge.bridge-nf-call-iptables=1: {e}"),
        },
        Err(e) => tracing::warn!("cannot read {}: {e}", knob.display()),
    }
}

/// Keep of a pod only what the rules read (the agent holds every pod of the cluster).
fn slim(pod: &mut Pod) {
    let meta = pod.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
    meta.owner_references = None;
    if let Some(spec) = pod.spec.as_mut() {
        spec.volumes = None;
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.env = None;
            c.env_from = None;
            c.command = None;
            c.args = None;
            c.volume_mounts = None;
            c.liveness_probe = None;
            c.readiness_probe = None;
            c.startup_probe = None;
        }
        spec.ephemeral_containers = None;
    }
    if let Some(status) = pod.status.as_mut() {
        status.conditions = None;
        status.container_statuses = None;
        status.init_container_statuses = None;
        status.ephemeral_container_statuses = None;
    }
}

/// Drive a reflector stream, waking the rule writer on every change and raising `listed` once the store
/// holds a whole listing. A watch error is logged when it differs from the previous one (a server
/// without the kind would otherwise log every backoff step).
async fn feed<K>(
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    changed: Arc<Notify>,
    listed: watch::Sender<bool>,
    what: &'static str,
) {
    let mut stream = std::pin::pin!(stream);
    let mut last_error = String::new();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::InitDone) => {
                listed.send_replace(true);
                last_error.clear();
                changed.notify_one();
            }
            Ok(Event::Apply(_) | Event::Delete(_)) => changed.notify_one(),
            Ok(Event::Init | Event::InitApply(_)) => {}
            Err(e) => {
                let text = e.to_string();
                if text != last_error {
                    tracing::warn!(error = %text, "{what} watch failed; retrying");
                    last_error = text;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
