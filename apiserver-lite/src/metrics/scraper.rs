//! The scrape loop (metrics-server's `pkg/scraper` and `pkg/server`): at start and then every
//! `--metric-resolution`, GET every Ready node's `/metrics/resource` concurrently with the kubelet client
//! certificate (10 s timeout each), decode, and replace the [`MetricsStore`] contents with the usage between
//! each series' last two points. A node that fails is left out of the scrape, so its node and pods drop out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Request, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::watch;

use super::MetricsStore;
use super::parse::{self, Batch};
use super::points::Points;
use crate::proxy::{KubeletClient, node_endpoint};
use crate::resources::{Kind, by_kind};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::State;

/// Per-node request timeout (metrics-server's `--kubelet-request-timeout` default).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a `/metrics/resource` answer that is read.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Whether the node's `Ready` condition is `True`.
pub fn node_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status").and_then(Value::as_str))
        == Some("True")
}

/// GET `https://<node>/metrics/resource` and decode it.
async fn scrape_node(kubelet: &KubeletClient, node: &Value) -> Result<Batch, String> {
    let name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (ip, port) = node_endpoint(node).ok_or("no address or kubelet port")?;
    let req = Request::builder()
        .uri("/metrics/resource")
        .header(header::HOST, format!("{ip}:{port}"))
        .header(header::ACCEPT, "text/plain")
        .body(axum::body::Body::empty())
        .map_err(|e| e.to_string())?;
    let start = SystemTime::now();
    let fetch = async {
        let resp = kubelet
            .send(ip, port, req)
            .await
            .map_err(|e| e.message.clone())?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("request failed, status: {status}"));
        }
        Ok(body)
    };
    let body = tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("timed out after {SCRAPE_TIMEOUT:?}"))??;
    parse::decode(&String::from_utf8_lossy(&body), start, name)
}

/// Scrape every Ready node once; the batches of the nodes that answered, merged.
pub async fn scrape(state: &State) -> Batch {
    let def = by_kind(Kind::Node);
    let nodes = match state
        .api
        .list(
            def,
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .await
    {
        Ok((items, _)) => items,
        Err(e) => {
            tracing::warn!("metrics scrape: listing nodes: {}", e.message);
            Vec::new()
        }
    };
    let ready: Vec<&Value> = nodes.iter().filter(|n| node_ready(n)).collect();
    let results =
        futures::future::join_all(ready.iter().map(|n| scrape_node(&state.kubelet, n))).await;
    let mut merged = Batch::default();
    for (node, result) in ready.iter().zip(results) {
        let name = node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        match result {
            Ok(b) => {
                merged.nodes.extend(b.nodes);
                for (key, containers) in b.pods {
                    merged.pods.entry(key).or_insert(containers);
                }
            }
            Err(e) => tracing::warn!(node = name, "failed to scrape node: {e}"),
        }
    }
    merged
}

/// Publish the usage of `points` to `store`: exactly the nodes and pods of the latest scrape with a rate.
pub fn publish(points: &Points, store: &MetricsStore) {
    store.replace(points.nodes(), points.pods());
}

/// Scrape at once and then every `resolution` until `shutdown` turns true.
pub async fn run(state: Arc<State>, resolution: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut points = Points::new(resolution);
    let mut tick = tokio::time::interval(resolution);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return; } else { continue; },
        }
        let batch = scrape(&state).await;
        tracing::debug!(
            nodes = batch.nodes.len(),
            pods = batch.pods.len(),
            "metrics scrape finished"
        );
        points.store(batch);
        publish(&points, &state.metrics);
    }
}
