//! A token server for registries with `auth: token` (the distribution token protocol).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::run;

/// A minimal token server for the distribution token protocol: `GET /token` with HTTP Basic
/// `skiff:skiff-pass` returns a JWT (RS256, x5c chain) granting pull and push on every repository listed at
/// start; anything else gets 401. The JWT is signed with openssl from a self-signed certificate that the
/// registry trusts via `rootcertbundle`, so the registry itself verifies every token.
pub struct TokenServer {
    pub port: u16,
    pub cert: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub const TOKEN_SERVICE: &str = "skiff-test";
pub const TOKEN_ISSUER: &str = "skiff-test-issuer";

impl TokenServer {
    pub fn start(dir: &Path, repositories: &[&str]) -> Self {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=skiff-token",
                "-keyout",
                &key.to_string_lossy(),
                "-out",
                &cert.to_string_lossy(),
            ],
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap_or_else(|e| panic!("openssl x509: {e}"))
            .stdout;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let header =
            serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [STANDARD.encode(&der)]});
        let access: Vec<_> = repositories
            .iter()
            .map(|r| serde_json::json!({"type": "repository", "name": r, "actions": ["pull", "push"]}))
            .collect();
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER, "sub": "skiff", "aud": TOKEN_SERVICE, "exp": now + 3600, "nbf": now - 60,
            "iat": now - 60, "jti": uuid::Uuid::new_v4().to_string(), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let input_file = dir.join("token.input");
        std::fs::write(&input_file, &signing_input).unwrap_or_else(|e| panic!("{e}"));
        let sig = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key)
            .arg(&input_file)
            .output()
            .unwrap_or_else(|e| panic!("openssl dgst: {e}"));
        assert!(sig.status.success(), "openssl dgst failed");
        let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&sig.stdout));
        let expected_auth = format!("Basic {}", STANDARD.encode("skiff:skiff-pass"));

        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind token server: {e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&buf);
                let authorized = request.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("authorization") && v.trim() == expected_auth
                    })
                });
                let (status, body) = if request.starts_with("GET /token") && authorized {
                    (
                        "200 OK",
                        serde_json::json!({"token": jwt, "expires_in": 3600}).to_string(),
                    )
                } else {
                    (
                        "401 Unauthorized",
                        r#"{"details":"bad credentials"}"#.to_string(),
                    )
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            port,
            cert,
            stop,
            thread: Some(thread),
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
