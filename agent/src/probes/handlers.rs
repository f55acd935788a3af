//! Probe handlers: exec (containerd task exec in the container), httpGet, tcpSocket, grpc. Each returns
//! an [`Outcome`]: success or failure with the output the kubelet puts in its `Unhealthy` event.

use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::AsyncReadExt;

use crate::runtime::Runtime;
use crate::server::exec_process::{self, ExecRequest};

/// At most this much probe output is kept (the kubelet's `maxProbeOutputLength` is 10 KiB).
const MAX_OUTPUT: usize = 10 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub output: String,
}

impl Outcome {
    pub(crate) fn ok(output: impl Into<String>) -> Self {
        Self {
            ok: true,
            output: output.into(),
        }
    }
    pub(crate) fn fail(output: impl Into<String>) -> Self {
        Self {
            ok: false,
            output: output.into(),
        }
    }
}

/// Where a probe runs.
pub struct Env<'a> {
    pub runtime: &'a Runtime,
    pub run_dir: &'a Path,
    pub pod_uid: &'a str,
    pub container: &'a Container,
    pub container_id: &'a str,
    pub pod_ip: Option<IpAddr>,
}

/// Run one probe once, within `timeout`.
pub async fn probe(p: &Probe, env: &Env<'_>, timeout: Duration) -> Outcome {
    if let Some(e) = &p.exec {
        return exec(env, e.command.clone().unwrap_or_default(), timeout).await;
    }
    if let Some(h) = &p.http_get {
        let port = match resolve_port(&h.port, env.container) {
            Ok(p) => p,
            Err(e) => return Outcome::fail(e),
        };
        let host = h
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .or_else(|| env.pod_ip.map(|ip| ip.to_string()));
        let Some(host) = host else {
            return Outcome::fail("the pod has no IP address yet");
        };
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let headers: Vec<(String, String)> = h
            .http_headers
            .iter()
            .flatten()
            .map(|hd| (hd.name.clone(), hd.value.clone()))
            .collect();
        let url = http_url(&scheme, &host, port, h.path.as_deref().unwrap_or("/"));
        return http_get(&url, &headers, timeout).await;
    }
    if let Some(t) = &p.tcp_socket {
        let port = match resolve_port(&t.port, env.container) {
            Ok(p) => p,
            Err(e) => return Outcome::fail(e),
        };
        let host = t
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .or_else(|| env.pod_ip.map(|ip| ip.to_string()));
        let Some(host) = host else {
            return Outcome::fail("the pod has no IP address yet");
        };
        return tcp(&host, port, timeout).await;
    }
    if let Some(g) = &p.grpc {
        let Ok(port) = u16::try_from(g.port) else {
            return Outcome::fail(format!("invalid port number: {}", g.port));
        };
        let Some(ip) = env.pod_ip else {
            return Outcome::fail("the pod has no IP address yet");
        };
        let service = g.service.as_deref().unwrap_or_default();
        return super::grpc::check(&ip.to_string(), port, service, timeout).await;
    }
    Outcome::fail("the probe has no handler")
}

/// A port number, or the number of the container port with that name.
pub fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid port number: {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in container {}", c.name))
        }
    }
}

pub fn http_url(scheme: &str, host: &str, port: u16, path: &str) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    format!("{scheme}://{host}:{port}{path}")
}

/// The kubelet's mapping: 200–399 is success, anything else a failure naming the status code.
pub fn http_status_outcome(status: u16, body: &str) -> Outcome {
    if (200..400).contains(&status) {
        Outcome::ok(body.to_string())
    } else {
        Outcome::fail(format!("HTTP probe failed with statuscode: {status}"))
    }
}

fn http_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .user_agent("kube-probe/1.32")
                .tls_danger_accept_invalid_certs(true)
                .no_proxy()
                .redirect(reqwest::redirect::Policy::limited(10))
                .pool_max_idle_per_host(0)
                .build()
                .map_err(|e| format!("building the probe HTTP client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

async fn http_get(url: &str, headers: &[(String, String)], timeout: Duration) -> Outcome {
    let client = match http_client() {
        Ok(c) => c,
        Err(e) => return Outcome::fail(e),
    };
    let mut req = client.get(url).timeout(timeout);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Outcome::fail(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ));
        }
        Err(e) => return Outcome::fail(format!("Get \"{url}\": {}", error_chain(&e))),
    };
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut resp = resp;
    while body.len() < MAX_OUTPUT {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    body.truncate(MAX_OUTPUT);
    http_status_outcome(status, &String::from_utf8_lossy(&body))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

async fn tcp(host: &str, port: u16, timeout: Duration) -> Outcome {
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Outcome::ok(""),
        Ok(Err(e)) => Outcome::fail(format!("dial tcp {addr}: connect: {e}")),
        Err(_) => Outcome::fail(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// Map an exec probe's exit status and output.
pub fn exec_outcome(status: u32, output: String) -> Outcome {
    if status == 0 {
        Outcome::ok(output)
    } else if output.is_empty() {
        Outcome::fail(format!("command exited with status {status}"))
    } else {
        Outcome::fail(output)
    }
}

async fn exec(env: &Env<'_>, command: Vec<String>, timeout: Duration) -> Outcome {
    if command.is_empty() {
        return Outcome::fail("the exec probe has no command");
    }
    let req = ExecRequest {
        container_id: env.container_id.to_string(),
        pod_uid: env.pod_uid.to_string(),
        command: command.clone(),
        tty: false,
        stdin: false,
        stdout: true,
        stderr: true,
    };
    let (handle, pipes) = match exec_process::start(env.runtime, env.run_dir, &req).await {
        Ok(x) => x,
        Err(e) => return Outcome::fail(format!("exec {command:?} failed: {e}")),
    };
    let read = |p: Option<tokio::net::unix::pipe::Receiver>| async move {
        let mut buf = Vec::new();
        if let Some(p) = p {
            let _ = p.take(MAX_OUTPUT as u64).read_to_end(&mut buf).await;
        }
        buf
    };
    let run = async {
        let (out, err, status) =
            tokio::join!(read(pipes.stdout), read(pipes.stderr), handle.wait());
        (out, err, status)
    };
    let res = tokio::time::timeout(timeout, run).await;
    let outcome = match res {
        Ok((mut out, err, Ok(status))) => {
            out.extend_from_slice(&err);
            out.truncate(MAX_OUTPUT);
            exec_outcome(status, String::from_utf8_lossy(&out).into_owned())
        }
        Ok((_, _, Err(e))) => Outcome::fail(format!("exec {command:?} failed: {e}")),
        Err(_) => {
            handle.kill().await;
            // Reap it before deleting: containerd refuses to delete a running process.
            let _ = tokio::time::timeout(Duration::from_secs(2), handle.wait()).await;
            Outcome::fail(format!(
                "command {command:?} timed out after {}s",
                timeout.as_secs()
            ))
        }
    };
    handle.delete().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn ports_by_number_and_name() {
        let c = Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::String("81".into()), &c), Ok(81));
        assert!(resolve_port(&IntOrString::String("grpc".into()), &c).is_err());
        assert!(resolve_port(&IntOrString::Int(0), &c).is_err());
        assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
    }

    #[test]
    fn http_mapping() {
        assert!(http_status_outcome(200, "ok").ok);
        assert!(http_status_outcome(302, "").ok);
        assert!(http_status_outcome(399, "").ok);
        let f = http_status_outcome(500, "boom");
        assert!(!f.ok);
        assert_eq!(f.output, "HTTP probe failed with statuscode: 500");
        assert!(!http_status_outcome(404, "").ok);
        assert!(!http_status_outcome(199, "").ok);
        assert_eq!(
            http_url("http", "10.0.0.1", 80, "healthz"),
            "http://10.0.0.1:80/healthz"
        );
        assert_eq!(http_url("https", "::1", 443, "/"), "https://[::1]:443/");
    }

    #[test]
    fn exec_mapping() {
        assert!(exec_outcome(0, "fine".into()).ok);
        let f = exec_outcome(1, "cat: can't open '/tmp/x'".into());
        assert!(!f.ok);
        assert_eq!(f.output, "cat: can't open '/tmp/x'");
        assert_eq!(
            exec_outcome(2, String::new()).output,
            "command exited with status 2"
        );
    }

    #[tokio::test]
    async fn tcp_and_http_against_local_listeners() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for _ in 0..2 {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let code = if req.contains("x-probe: yes") {
                    "200 OK"
                } else {
                    "503 No"
                };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {code}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        let t = Duration::from_secs(2);
        let url = http_url("http", "127.0.0.1", port, "/");
        let ok = http_get(&url, &[("X-Probe".into(), "yes".into())], t).await;
        assert!(ok.ok, "{ok:?}");
        let bad = http_get(&url, &[], t).await;
        assert_eq!(bad.output, "HTTP probe failed with statuscode: 503");
        let _ = server.await;
        // Nothing listens there any more.
        let closed = tcp("127.0.0.1", port, t).await;
        assert!(!closed.ok);
        assert!(
            closed.output.starts_with("dial tcp 127.0.0.1:"),
            "{closed:?}"
        );
    }
}
