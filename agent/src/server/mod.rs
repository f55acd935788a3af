//! The agent's HTTPS API (the kubelet's port 10250): `/healthz`, `/containerLogs/{ns}/{pod}/{container}`,
//! `/exec/{ns}/{pod}/{container}` (WebSocket `v5.channel.k8s.io` / `v4.channel.k8s.io`, or SPDY/3.1
//! `v4.channel.k8s.io`), `/attach/{ns}/{pod}/{container}` (WebSocket), `/portForward/{ns}/{pod}[/{uid}]`
//! (SPDY/3.1 over WebSocket or an upgraded connection, or the WebSocket channel protocol), `/metrics`
//! (Prometheus text) and `/pods` (PodList).
//!
//! TLS: the agent serves a self-signed certificate made at start (the API server does not verify it, as
//! kube-apiserver does not verify kubelet serving certificates without `--kubelet-certificate-authority`).
//! Clients must present a certificate signed by the cluster CA (taken from the agent's kubeconfig); only the
//! API server's kubelet client (`skiff-apiserver-kubelet-client`) and `system:masters` may use the API.
//! `/healthz` needs no certificate when asked from a loopback address.

pub mod attach;
pub mod exec;
pub mod exec_process;
pub mod exec_spdy;
pub mod locate;
pub mod logs;
pub mod metrics;
pub mod portforward;
pub mod resource_metrics;
pub mod spdy;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::runtime::Runtime;

/// The CN of the API server's client certificate for agents (docs/contracts.md).
pub const APISERVER_CLIENT: &str = "skiff-apiserver-kubelet-client";
pub const MASTERS: &str = "system:masters";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// What the handlers need: containerd, the log directory, the run directory for exec FIFOs.
pub struct ApiContext {
    pub runtime: Runtime,
    pub pod_log_dir: PathBuf,
    pub run_dir: PathBuf,
}

/// Who is calling: the verified client certificate's CN and O values, and the peer address.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub identity: Option<(String, Vec<String>)>,
}

impl Peer {
    fn authorized(&self) -> bool {
        self.identity.as_ref().is_some_and(|(cn, groups)| {
            cn == APISERVER_CLIENT || groups.iter().any(|g| g == MASTERS)
        })
    }
}

/// `key=value` pairs of a query string, percent- and `+`-decoded, in order (keys may repeat).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let dec = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

/// A plain-text error answer, as the kubelet gives them.
pub fn text_error(code: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = (code, msg.into()).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn healthz(Extension(peer): Extension<Peer>) -> Response {
    if peer.addr.ip().is_loopback() || peer.authorized() {
        (StatusCode::OK, "ok").into_response()
    } else {
        text_error(StatusCode::UNAUTHORIZED, "Unauthorized")
    }
}

async fn require_auth(
    Extension(peer): Extension<Peer>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    match &peer.identity {
        None => text_error(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Some((cn, _)) if !peer.authorized() => text_error(
            StatusCode::FORBIDDEN,
            format!("Forbidden (user={cn}, verb=get, resource=nodes, subresource=proxy)"),
        ),
        Some(_) => next.run(req).await,
    }
}

pub fn router(ctx: Arc<ApiContext>) -> Router {
    router_with(
        ctx,
        Arc::new(metrics::NodeView {
            client: None,
            node_name: String::new(),
        }),
    )
}

/// The API with `view` for `/pods` and the pod metrics.
pub fn router_with(ctx: Arc<ApiContext>, view: Arc<metrics::NodeView>) -> Router {
    let private = Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(logs::handle))
        .route(
            "/exec/{ns}/{pod}/{container}",
            get(exec::handle).post(exec::handle),
        )
        .route(
            "/attach/{ns}/{pod}/{container}",
            get(attach::handle).post(attach::handle),
        )
        .route(
            "/portForward/{ns}/{pod}",
            get(portforward::handle).post(portforward::handle),
        )
        .route(
            "/portForward/{ns}/{pod}/{uid}",
            get(portforward::handle_uid).post(portforward::handle_uid),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/metrics/resource", get(resource_metrics::resource_metrics))
        .route("/pods", get(metrics::pods))
        .layer(axum::middleware::from_fn(require_auth))
        .layer(Extension(view))
        .with_state(ctx);
    Router::new().route("/healthz", get(healthz)).merge(private)
}

/// Serve the API on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<ApiContext>,
    view: Arc<metrics::NodeView>,
) -> Result<(), ServerError> {
    let acceptor = TlsAcceptor::from(tls);
    let app = router_with(ctx, view);
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "kubelet API: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%addr, error = %e, "kubelet API: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| tls::identity_from_cert(c.as_ref()));
            let peer = Peer { addr, identity };
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(Body::new);
                    req.extensions_mut().insert(peer.clone());
                    let app = app.clone();
                    async move {
                        let resp = app.oneshot(req).await.unwrap_or_else(|e| match e {});
                        Ok::<_, Infallible>(resp)
                    }
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(%addr, error = %e, "kubelet API connection ended");
            }
        });
    }
}

/// Bind `0.0.0.0:port`, build TLS from the kubeconfig's CA and serve in the background.
/// Returns the bound address.
pub async fn start(
    port: u16,
    kubeconfig: &std::path::Path,
    node_name: &str,
    node_ip: std::net::IpAddr,
    ctx: Arc<ApiContext>,
) -> Result<SocketAddr, ServerError> {
    let ca = tls::cluster_ca(kubeconfig).await?;
    let tls = tls::server_config(&ca, node_name, node_ip)?;
    let listener = TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|source| ServerError::Io {
            context: format!("bind the kubelet API port {port}"),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Io {
        context: "kubelet API address".into(),
        source,
    })?;
    let view = Arc::new(metrics::NodeView {
        client: api_client(kubeconfig).await,
        node_name: node_name.to_string(),
    });
    tokio::spawn(async move {
        if let Err(e) = serve(listener, tls, ctx, view).await {
            tracing::error!(error = %e, "kubelet API stopped");
        }
    });
    tracing::info!(%addr, "kubelet API listening");
    Ok(addr)
}

/// A client for the API server from the agent's kubeconfig (for `/pods`); `None` if it cannot be built.
async fn api_client(kubeconfig: &std::path::Path) -> Option<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).ok()?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .ok()?;
    kube::Client::try_from(cfg).ok()
}
