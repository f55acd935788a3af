//! Killing and restarting the fixture's skiff-apiserver on the same data directory and port.

#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::common::{Server, tail};

/// `kill -9` the server (std's `Child::kill` sends SIGKILL) and reap it.
pub fn kill9(s: &mut Server) {
    s.child.kill().expect("SIGKILL skiff-apiserver");
    let _ = s.child.wait();
}

/// Start a new skiff-apiserver on the same data directory and port, and wait until it is ready.
pub fn restart(s: &mut Server) {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(s.dir.path().join("apiserver.log"))
        .expect("log file");
    s.child = Command::new(env!("CARGO_BIN_EXE_skiff-apiserver"))
        .arg("serve")
        .arg("--data-dir")
        .arg(s.data_dir())
        .args([
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
        ])
        .args(["--secure-port", &s.port.to_string()])
        .env("RUST_LOG", "skiff_apiserver=debug,info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("respawn skiff-apiserver");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = s.curl(&["/readyz"]);
        if String::from_utf8_lossy(&out.stdout).contains("ok") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "restarted server did not become ready; log:\n{}",
            tail(&s.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh kube-rs client (new connections) with the admin kubeconfig.
pub async fn client(s: &Server) -> kube::Client {
    let kc = Kubeconfig::read_from(&s.kubeconfig).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

pub fn configmap(name: &str, label: &str) -> k8s_openapi::api::core::v1::ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"test": label}},
        "data": {"k": "v".repeat(256)}
    }))
    .expect("configmap")
}

pub fn rv_of(cm: &k8s_openapi::api::core::v1::ConfigMap) -> i64 {
    cm.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("numeric resourceVersion")
}
