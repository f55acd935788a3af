//! Helpers of the authorization tests: minted client credentials and kubectl as another user.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::common::{Server, path_str};

pub fn kubectl_present() -> bool {
    crate::common::have("kubectl")
}

/// Mint a kubeconfig for `user` in `groups` with the server's CA.
pub fn mint(s: &Server, user: &str, groups: &[&str]) -> PathBuf {
    let out = s
        .dir
        .path()
        .join(format!("{}.kubeconfig", user.replace(':', "_")));
    let mut c = Command::new(env!("CARGO_BIN_EXE_skiff-apiserver"));
    c.args([
        "kubeconfig",
        "--data-dir",
        path_str(&s.data_dir()),
        "--user",
        user,
    ]);
    for g in groups {
        c.args(["--group", g]);
    }
    c.args(["--server", &s.url(""), "--out", path_str(&out)]);
    assert!(c.status().expect("kubeconfig").success());
    out
}

pub fn kubectl_as(s: &Server, kc: &PathBuf, args: &[&str]) -> Output {
    let cache = s.dir.path().join(format!(
        "cache-{}",
        kc.file_name().and_then(|n| n.to_str()).unwrap_or("x")
    ));
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--request-timeout=20s")
        .args(args)
        .output()
        .expect("kubectl")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
