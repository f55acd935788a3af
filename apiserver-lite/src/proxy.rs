//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: the API server checks the pod (and the
//! container), then forwards the request to the agent's API on the pod's node
//! (`https://<InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>`), authenticating with its kubelet client
//! certificate. Logs stream through as chunked `text/plain`; an upgrade (WebSocket for exec/attach, and
//! for port-forward WebSocket-tunnelled SPDY or a `POST` with `Upgrade: SPDY/3.1`) is forwarded as is and,
//! once both hops answered 101, the two upgraded byte streams are joined (what kube-apiserver's
//! upgrade-aware proxy does), so any subprotocol passes unchanged. Port-forward goes to the agent's
//! `/portForward/{ns}/{pod}/{uid}`.
//!
//! Like kube-apiserver without `--kubelet-certificate-authority`, the agent's (self-signed) serving
//! certificate is not verified; the agent does verify the API server's client certificate.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::Value;

use crate::auth::UserInfo;
use crate::resources::find_resource;
use crate::server::State;
use crate::status::{ApiError, ApiResult};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an agent's error answer becomes the Status message.
const MAX_ERROR_BODY: usize = 50_000;
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// TLS client to the agents' API.
pub struct KubeletClient {
    tls: Arc<rustls::ClientConfig>,
}

#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl KubeletClient {
    pub fn new(cert_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .context("parsing the kubelet client certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .context("parsing the kubelet client key")?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
            .with_client_auth_cert(certs, key)
            .context("kubelet client certificate")?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { tls: Arc::new(cfg) })
    }

    /// Send `req` to `ip:port` over one fresh HTTP/1.1 connection (upgrades allowed).
    pub async fn send(
        &self,
        ip: IpAddr,
        port: u16,
        req: Request<Body>,
    ) -> ApiResult<Response<hyper::body::Incoming>> {
        let unavailable = |e: String| {
            ApiError::new(
                503,
                "ServiceUnavailable",
                format!("error dialing backend: {e}"),
            )
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((ip, port)))
            .await
            .map_err(|_| unavailable(format!("dial tcp {ip}:{port}: i/o timeout")))?
            .map_err(|e| unavailable(format!("dial tcp {ip}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(ServerName::IpAddress(ip.into()), tcp)
            .await
            .map_err(|e| unavailable(format!("tls: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("agent connection: {e}");
            }
        });
        sender
            .send_request(req)
            .await
            .map_err(|e| unavailable(e.to_string()))
    }
}

/// A request for a proxied pod subresource.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    pub subresource: &'static str,
}

impl Target {
    /// `/api/v1/namespaces/{ns}/pods/{name}/log` (GET) or `…/exec`, `…/attach`, `…/portforward` (GET
    /// or POST).
    pub fn parse(method: &Method, path: &str) -> Option<Self> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let ["", "api", "v1", "namespaces", ns, "pods", pod, sub] = segs.as_slice() else {
            return None;
        };
        let subresource = match (*sub, method) {
            ("log", &Method::GET) => "log",
            ("exec", &Method::GET | &Method::POST) => "exec",
            ("attach", &Method::GET | &Method::POST) => "attach",
            ("portforward", &Method::GET | &Method::POST) => "portforward",
            _ => return None,
        };
        Some(Target {
            namespace: ns.to_string(),
            pod: pod.to_string(),
            subresource,
        })
    }
}

fn names(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a request means: the given one if the pod has it; otherwise the only container or
/// the `kubectl.kubernetes.io/default-container` one; else kube-apiserver's BadRequest.
pub fn choose_container(pod: &Value, requested: Option<&str>) -> ApiResult<String> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let init = names(pod.pointer("/spec/initContainers"));
    let main = names(pod.pointer("/spec/containers"));
    let eph = names(pod.pointer("/spec/ephemeralContainers"));
    let all: Vec<&String> = init.iter().chain(&main).chain(&eph).collect();
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if all.iter().any(|n| *n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => {
            if let Some(d) = pod
                .pointer(&format!(
                    "/metadata/annotations/{}",
                    DEFAULT_CONTAINER_ANNOTATION.replace('/', "~1")
                ))
                .and_then(Value::as_str)
                && all.iter().any(|n| *n == d)
            {
                return Ok(d.to_string());
            }
            match main.as_slice() {
                [only] => Ok(only.clone()),
                [] => Err(ApiError::bad_request(format!(
                    "pod {name} does not have a container"
                ))),
                _ => {
                    let list: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
                    Err(ApiError::bad_request(format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        list.join(" ")
                    )))
                }
            }
        }
    }
}

/// The node's address and agent port.
pub fn node_endpoint(node: &Value) -> Option<(IpAddr, u16)> {
    let addrs = node.pointer("/status/addresses")?.as_array()?;
    let pick = |t: &str| {
        addrs
            .iter()
            .filter(|a| a.get("type").and_then(Value::as_str) == Some(t))
            .find_map(|a| a.get("address")?.as_str()?.parse::<IpAddr>().ok())
    };
    let ip = pick("InternalIP").or_else(|| pick("ExternalIP"))?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .unwrap_or(10250);
    let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
    Some((ip, port))
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}

/// An agent's non-success answer as a Status error (kube-apiserver's generic server response).
async fn upstream_error(resp: Response<hyper::body::Incoming>) -> ApiError {
    let code = resp.status().as_u16();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let message = if text.is_empty() {
        format!(
            "the server responded with the status code {code} but did not return more information"
        )
    } else {
        text
    };
    let code = if code < 400 { 500 } else { code };
    ApiError::new(code, reason_for(code), message)
}

/// Serve a proxied subresource request.
pub async fn handle(
    state: &State,
    user: &UserInfo,
    target: Target,
    mut req: Request<hyper::body::Incoming>,
) -> ApiResult<Response<Body>> {
    let def = find_resource("", "pods").ok_or_else(ApiError::path_not_found)?;
    let method = req.method().clone();
    let authz_req = crate::authz::Request {
        method: &method,
        group: "",
        resource: "pods",
        subresource: Some(target.subresource),
        namespace: Some(&target.namespace),
        name: Some(&target.pod),
        watch: false,
    };
    state.authz.check(user, &authz_req, &[], "").await?;
    let pod = state
        .api
        .get(def, Some(&target.namespace), &target.pod)
        .await?;
    let query = crate::handlers::Query::parse(req.uri().query());
    let container = if target.subresource == "portforward" {
        String::new()
    } else {
        choose_container(&pod, query.get("container"))?
    };
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {} does not have a host assigned", target.pod))
        })?;
    let nodes = find_resource("", "nodes").ok_or_else(ApiError::path_not_found)?;
    let node = state.api.get(nodes, None, node_name).await?;
    let (ip, port) = node_endpoint(&node).ok_or_else(|| {
        ApiError::internal(format!("node {node_name} has no address or kubelet port"))
    })?;
    let mut uri = match target.subresource {
        "log" => format!(
            "/containerLogs/{}/{}/{container}",
            target.namespace, target.pod
        ),
        "portforward" => {
            let uid = pod
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("/portForward/{}/{}/{uid}", target.namespace, target.pod)
        }
        sub => format!("/{sub}/{}/{}/{container}", target.namespace, target.pod),
    };
    if let Some(q) = req.uri().query() {
        uri.push('?');
        uri.push_str(q);
    }
    let upgradable = target.subresource != "log";
    let mut up = Request::builder()
        .method(if target.subresource == "log" {
            Method::GET
        } else {
            method.clone()
        })
        .uri(&uri)
        .header(header::HOST, format!("{ip}:{port}"));
    for (k, v) in req.headers() {
        let forward = matches!(
            k.as_str(),
            "connection"
                | "upgrade"
                | "sec-websocket-key"
                | "sec-websocket-version"
                | "sec-websocket-protocol"
                | "x-stream-protocol-version"
        );
        if forward && upgradable {
            up = up.header(k, v);
        }
    }
    let up = up
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let upgrade = upgradable.then(|| hyper::upgrade::on(&mut req));
    let resp = state.kubelet.send(ip, port, up).await?;
    match upgrade {
        None => {
            if !resp.status().is_success() {
                return Err(upstream_error(resp).await);
            }
            let mut r = Response::new(Body::new(resp.into_body()));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            Ok(r)
        }
        Some(client_side) => {
            if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                return Err(upstream_error(resp).await);
            }
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            for (k, v) in resp.headers() {
                r.headers_mut().append(k, v.clone());
            }
            let agent_side = hyper::upgrade::on(resp);
            let sub = target.subresource;
            tokio::spawn(async move {
                let (a, b) = match tokio::try_join!(client_side, agent_side) {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!("{sub} upgrade failed: {e}");
                        return;
                    }
                };
                let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
                if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
                    tracing::debug!("{sub} stream ended: {e}");
                }
            });
            Ok(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets() {
        let t = Target::parse(&Method::GET, "/api/v1/namespaces/default/pods/web/log");
        assert_eq!(
            t,
            Some(Target {
                namespace: "default".into(),
                pod: "web".into(),
                subresource: "log"
            })
        );
        assert!(Target::parse(&Method::POST, "/api/v1/namespaces/default/pods/web/exec").is_some());
        assert!(Target::parse(&Method::POST, "/api/v1/namespaces/default/pods/web/log").is_none());
        for sub in ["attach", "portforward"] {
            let p = format!("/api/v1/namespaces/default/pods/web/{sub}");
            assert_eq!(
                Target::parse(&Method::POST, &p).map(|t| t.subresource),
                Some(sub)
            );
            assert!(Target::parse(&Method::GET, &p).is_some());
            assert!(Target::parse(&Method::DELETE, &p).is_none());
        }
        assert!(Target::parse(&Method::GET, "/api/v1/namespaces/default/pods/web").is_none());
        assert!(Target::parse(&Method::GET, "/apis/x/v1/namespaces/d/pods/w/log").is_none());
    }

    #[test]
    fn container_choice() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b"}]}});
        let e = choose_container(&pod, None).err().map(|e| e.message);
        assert_eq!(
            e.as_deref(),
            Some("a container name must be specified for pod web, choose one of: [init a b]")
        );
        assert_eq!(choose_container(&pod, Some("b")).ok().as_deref(), Some("b"));
        assert_eq!(
            choose_container(&pod, Some("init")).ok().as_deref(),
            Some("init")
        );
        let e = choose_container(&pod, Some("zz"))
            .err()
            .map(|e| (e.code, e.message));
        assert_eq!(
            e,
            Some((400, "container zz is not valid for pod web".to_string()))
        );
        let mut annotated = pod.clone();
        annotated["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/default-container": "b"});
        assert_eq!(
            choose_container(&annotated, None).ok().as_deref(),
            Some("b")
        );
        let single = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(choose_container(&single, None).ok().as_deref(), Some("c"));
    }

    #[test]
    fn endpoints() {
        let node = json!({"status": {"addresses": [
            {"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}}}});
        assert_eq!(
            node_endpoint(&node),
            Some((
                "10.0.0.5".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                10251
            ))
        );
        let off = json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}}});
        assert_eq!(node_endpoint(&off), None);
        assert_eq!(node_endpoint(&json!({})), None);
    }
}
