//! gRPC probes: `grpc.health.v1.Health/Check` over tonic, with the two messages written out by hand
//! (no generated code, no extra crate beyond tonic's prost codec).

use std::time::Duration;

use super::handlers::Outcome;

#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    /// `ServingStatus`: 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

pub const SERVICE: &str = "grpc.health.v1.Health";
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

pub fn status_name(s: i32) -> &'static str {
    match s {
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// The kubelet's mapping: only SERVING is healthy.
pub fn status_outcome(s: i32) -> Outcome {
    if s == 1 {
        Outcome::ok("")
    } else {
        Outcome::fail(format!(
            "service unhealthy (responded with \"{}\")",
            status_name(s)
        ))
    }
}

pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let within = format!("{}s", timeout.as_secs());
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}")) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => return Outcome::fail(format!("invalid gRPC address {addr}: {e}")),
    };
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(c)) => c,
        _ => {
            return Outcome::fail(format!(
                "timeout: failed to connect service \"{addr}\" within {within}"
            ));
        }
    };
    let mut grpc = tonic::client::Grpc::new(channel);
    let call = async {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
        grpc.unary(
            tonic::Request::new(HealthCheckRequest {
                service: service.to_string(),
            }),
            http::uri::PathAndQuery::from_static(CHECK_PATH),
            codec,
        )
        .await
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(resp)) => status_outcome(resp.into_inner().status),
        Ok(Err(s)) if s.code() == tonic::Code::DeadlineExceeded => Outcome::fail(format!(
            "timeout: health rpc did not complete within {within}"
        )),
        Ok(Err(s)) => Outcome::fail(format!(
            "error: health rpc probe failed: rpc error: code = {:?} desc = {}",
            s.code(),
            s.message()
        )),
        Err(_) => Outcome::fail(format!(
            "timeout: health rpc did not complete within {within}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::{Ready, ready};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A health server answering every Check with a fixed status.
    #[derive(Clone)]
    struct Health(i32);

    impl tonic::server::NamedService for Health {
        const NAME: &'static str = SERVICE;
    }

    struct Check(i32);

    impl tonic::server::UnaryService<HealthCheckRequest> for Check {
        type Response = HealthCheckResponse;
        type Future = Ready<Result<tonic::Response<HealthCheckResponse>, tonic::Status>>;
        fn call(&mut self, r: tonic::Request<HealthCheckRequest>) -> Self::Future {
            if r.get_ref().service == "missing" {
                return ready(Err(tonic::Status::not_found("unknown service")));
            }
            ready(Ok(tonic::Response::new(HealthCheckResponse {
                status: self.0,
            })))
        }
    }

    type BoxFut<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

    impl tower::Service<http::Request<tonic::body::Body>> for Health {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = BoxFut<Result<Self::Response, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
            let status = self.0;
            Box::pin(async move {
                let codec =
                    tonic_prost::ProstCodec::<HealthCheckResponse, HealthCheckRequest>::default();
                let mut g = tonic::server::Grpc::new(codec);
                Ok(g.unary(Check(status), req).await)
            })
        }
    }

    async fn serve(status: i32) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let incoming = tonic::transport::server::TcpIncoming::from(l);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(Health(status))
                .serve_with_incoming(incoming),
        );
        port
    }

    #[test]
    fn mapping() {
        assert!(status_outcome(1).ok);
        let f = status_outcome(2);
        assert!(!f.ok);
        assert_eq!(
            f.output,
            "service unhealthy (responded with \"NOT_SERVING\")"
        );
        assert!(!status_outcome(0).ok);
        assert!(!status_outcome(3).ok);
    }

    #[tokio::test]
    async fn health_check_against_a_local_server() {
        let t = Duration::from_secs(2);
        let serving = serve(1).await;
        let ok = check("127.0.0.1", serving, "", t).await;
        assert!(ok.ok, "{ok:?}");
        let missing = check("127.0.0.1", serving, "missing", t).await;
        assert!(!missing.ok);
        assert!(missing.output.contains("NotFound"), "{:?}", missing.output);
        let not_serving = serve(2).await;
        let bad = check("127.0.0.1", not_serving, "", t).await;
        assert_eq!(
            bad.output,
            "service unhealthy (responded with \"NOT_SERVING\")"
        );
        // Nothing listens on a port just freed.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let down = check("127.0.0.1", closed, "", t).await;
        assert!(!down.ok);
        assert!(
            down.output
                .starts_with("timeout: failed to connect service"),
            "{down:?}"
        );
    }
}
