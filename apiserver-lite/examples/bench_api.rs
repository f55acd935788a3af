//! bench_api: create throughput and latency, and watch delivery latency, against skiff-apiserver (HTTPS,
//! client certificate, ConfigMap creates and `?watch=true`) or against etcd v3 (its JSON gateway: a
//! create-if-absent transaction per object and `/v3/watch` streams) with the same keys and values.
//!
//! ```text
//! bench_api --target skiff --url https://127.0.0.1:6443 --ca ca.pem --cert admin.pem --key admin-key.pem
//! bench_api --target etcd --url http://127.0.0.1:2379
//! ```
//! Prints one JSON line per measurement (`phase`, `clients`, `ops`, `per_sec`, `p50_ms`, `p99_ms`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// `skiff` or `etcd`.
    #[arg(long)]
    target: String,
    #[arg(long)]
    url: String,
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    #[arg(long)]
    cert: Option<std::path::PathBuf>,
    #[arg(long)]
    key: Option<std::path::PathBuf>,
    /// Objects created per create phase.
    #[arg(long, default_value_t = 2000)]
    creates: usize,
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Objects written while the watchers listen.
    #[arg(long, default_value_t = 200)]
    watch_events: usize,
    /// Bytes of payload in each object.
    #[arg(long, default_value_t = 256)]
    payload: usize,
}

const NS: &str = "bench";

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The ConfigMap written (to skiff as the object, to etcd as the value).
fn object(name: &str, phase: &str, payload: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "labels": {"phase": phase},
            "annotations": {"bench/sent": now_nanos().to_string()}},
        "data": {"payload": payload}})
}

fn sent_of(obj: &Value) -> Option<u128> {
    obj.pointer("/metadata/annotations/bench~1sent")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

struct Target {
    args: Args,
    client: reqwest::Client,
    run: String,
}

impl Target {
    fn new(args: Args) -> Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(120));
        if let Some(ca) = &args.ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        if let (Some(c), Some(k)) = (&args.cert, &args.key) {
            let mut pem = std::fs::read(c).with_context(|| format!("reading {}", c.display()))?;
            pem.extend(std::fs::read(k).with_context(|| format!("reading {}", k.display()))?);
            b = b.identity(reqwest::Identity::from_pem(&pem)?);
        }
        let run = format!("{:x}", now_nanos() % 0xffff_ffff);
        Ok(Target {
            args,
            client: b.build()?,
            run,
        })
    }

    fn etcd(&self) -> bool {
        self.args.target == "etcd"
    }

    async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let r = self
            .client
            .post(format!("{}{path}", self.args.url))
            .json(body)
            .send()
            .await?;
        let code = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        Ok((code, v))
    }

    async fn setup(&self) -> Result<()> {
        if self.etcd() {
            return Ok(());
        }
        let (code, v) = self
            .post(
                "/api/v1/namespaces",
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            )
            .await?;
        if code != 201 && code != 409 {
            bail!("creating namespace {NS}: {code} {v}");
        }
        Ok(())
    }

    /// One create; returns its latency.
    async fn create(&self, name: &str, phase: &str, payload: &str) -> Result<Duration> {
        let obj = object(name, phase, payload);
        let start = Instant::now();
        if self.etcd() {
            let key = format!("/registry/configmaps/{NS}/{name}");
            let value = serde_json::to_vec(&obj)?;
            let txn = json!({
                "compare": [{"key": b64(key.as_bytes()), "result": "EQUAL", "target": "CREATE", "create_revision": "0"}],
                "success": [{"request_put": {"key": b64(key.as_bytes()), "value": b64(&value)}}],
            });
            let (code, v) = self.post("/v3/kv/txn", &txn).await?;
            if code != 200 || v.get("succeeded") != Some(&Value::Bool(true)) {
                bail!("etcd txn for {key}: {code} {v}");
            }
        } else {
            let (code, v) = self
                .post(&format!("/api/v1/namespaces/{NS}/configmaps"), &obj)
                .await?;
            if code != 201 {
                bail!("create {name}: {code} {v}");
            }
        }
        Ok(start.elapsed())
    }

    /// Open one watch; call `ready` once it is established, then send the delivery latency of each event.
    async fn watch(&self, ready: mpsc::Sender<()>, out: mpsc::Sender<u128>) -> Result<()> {
        let resp = if self.etcd() {
            let prefix = format!("/registry/configmaps/{NS}/w-{}-", self.run);
            let mut end = prefix.clone().into_bytes();
            if let Some(last) = end.last_mut() {
                *last += 1;
            }
            self.client
                .post(format!("{}/v3/watch", self.args.url))
                .json(&json!({"create_request": {"key": b64(prefix.as_bytes()), "range_end": b64(&end)}}))
                .send()
                .await?
        } else {
            let r = self
                .client
                .get(format!(
                    "{}/api/v1/namespaces/{NS}/configmaps?watch=true&labelSelector=phase%3Dw-{}",
                    self.args.url, self.run
                ))
                .send()
                .await?;
            let _ = ready.send(()).await;
            r
        };
        if !resp.status().is_success() {
            bail!("watch: {}", resp.status());
        }
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut signalled = !self.etcd();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
            let mut consumed = 0;
            let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
            while let Some(Ok(v)) = it.next() {
                consumed = it.byte_offset();
                let now = now_nanos();
                if self.etcd() {
                    if !signalled && v.pointer("/result/created") == Some(&Value::Bool(true)) {
                        signalled = true;
                        let _ = ready.send(()).await;
                    }
                    for ev in v
                        .pointer("/result/events")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                    {
                        let raw = ev
                            .pointer("/kv/value")
                            .and_then(Value::as_str)
                            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                            .unwrap_or_default();
                        if let Ok(obj) = serde_json::from_slice::<Value>(&raw)
                            && let Some(sent) = sent_of(&obj)
                            && out.send(now.saturating_sub(sent)).await.is_err()
                        {
                            return Ok(());
                        }
                    }
                } else if v.get("type").and_then(Value::as_str) == Some("ADDED")
                    && let Some(sent) = v.get("object").and_then(sent_of)
                    && out.send(now.saturating_sub(sent)).await.is_err()
                {
                    return Ok(());
                }
            }
            buf.drain(..consumed);
        }
        Ok(())
    }
}

fn percentile(sorted: &[u128], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

fn report(target: &str, phase: &str, clients: usize, lat: &mut [u128], wall: Duration) {
    lat.sort_unstable();
    let v = json!({"target": target, "phase": phase, "clients": clients, "ops": lat.len(),
        "per_sec": (lat.len() as f64 / wall.as_secs_f64()).round(),
        "p50_ms": (percentile(lat, 0.50) * 100.0).round() / 100.0,
        "p99_ms": (percentile(lat, 0.99) * 100.0).round() / 100.0});
    println!("{v}");
}

async fn create_phase(t: Arc<Target>, clients: usize) -> Result<()> {
    let total = t.args.creates;
    let payload = "x".repeat(t.args.payload);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let t = t.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c;
            while i < total {
                let name = format!("c{clients}-{}-{i}", t.run);
                lat.push(t.create(&name, "create", &payload).await?.as_nanos());
                i += clients;
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    report(&t.args.target, "create", clients, &mut all, start.elapsed());
    Ok(())
}

async fn watch_phase(t: Arc<Target>) -> Result<()> {
    let n = t.args.watchers;
    let (ready_tx, mut ready_rx) = mpsc::channel(n);
    let (lat_tx, mut lat_rx) = mpsc::channel::<u128>(n * 64);
    let mut watchers = Vec::new();
    for _ in 0..n {
        let t = t.clone();
        let (r, l) = (ready_tx.clone(), lat_tx.clone());
        watchers.push(tokio::spawn(async move {
            if let Err(e) = t.watch(r, l).await {
                eprintln!("watcher: {e:#}");
            }
        }));
    }
    drop(lat_tx);
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
            .await
            .context("watchers did not start")?;
    }
    let payload = "x".repeat(t.args.payload);
    let events = t.args.watch_events;
    let phase = format!("w-{}", t.run);
    let writer = {
        let t = t.clone();
        tokio::spawn(async move {
            for i in 0..events {
                let name = format!("w-{}-{i}", t.run);
                t.create(&name, &phase, &payload).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok::<_, anyhow::Error>(())
        })
    };
    let start = Instant::now();
    let expected = n * events;
    let mut lat = Vec::with_capacity(expected);
    while lat.len() < expected {
        match tokio::time::timeout(Duration::from_secs(20), lat_rx.recv()).await {
            Ok(Some(l)) => lat.push(l),
            _ => break,
        }
    }
    writer.await??;
    for w in watchers {
        w.abort();
    }
    if lat.len() < expected {
        eprintln!("watch: {} of {expected} deliveries seen", lat.len());
    }
    report(&t.args.target, "watch", n, &mut lat, start.elapsed());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.target != "skiff" && args.target != "etcd" {
        bail!("--target must be skiff or etcd");
    }
    let t = Arc::new(Target::new(args)?);
    t.setup().await?;
    create_phase(t.clone(), 1).await?;
    create_phase(t.clone(), 16).await?;
    watch_phase(t).await?;
    Ok(())
}
