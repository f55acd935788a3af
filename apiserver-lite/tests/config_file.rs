//! `skiff-apiserver serve --config FILE`: settings from the file, env and flags win over it, and a
//! malformed file stops the server before it does anything.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn apiserver() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_skiff-apiserver"));
    for var in [
        "SKIFF_CONFIG",
        "SKIFF_SECURE_PORT",
        "SKIFF_DATA_DIR",
        "SKIFF_STORAGE",
    ] {
        c.env_remove(var);
    }
    c.env("RUST_BACKTRACE", "0");
    c
}

fn refused(dir: &Path, yaml: &str) -> String {
    let file = dir.join("apiserver.yaml");
    std::fs::write(&file, yaml).expect("write the test config");
    let data = dir.join("data");
    let out = apiserver()
        .args(["serve", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&file)
        .output()
        .expect("run skiff-apiserver");
    let err = String::from_utf8_lossy(&out.stderr).replace(&file.display().to_string(), "FILE");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        !data.exists(),
        "the server did something before refusing its config"
    );
    err
}

#[test]
fn malformed_config_files_stop_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = refused(dir.path(), "secure-port: 6443\n  storage: etcd\n");
    assert!(err.contains("FILE: malformed YAML: "), "{err}");
    assert!(err.contains("line 2"), "{err}");
    let err = refused(dir.path(), "secure-prot: 6443\n");
    assert!(err.contains("FILE: unknown setting `secure-prot`"), "{err}");
    let err = refused(dir.path(), "secure-port: 70000\n");
    assert!(
        err.contains("FILE: `secure-port`: invalid value '70000': "),
        "{err}"
    );
    let err = refused(dir.path(), "storage: etcdx\n");
    assert!(
        err.contains("FILE: `storage`: invalid value 'etcdx': "),
        "{err}"
    );
    assert!(err.contains("embedded"), "{err}");
    let err = refused(dir.path(), "cluster-cidr: [10.0.0.0/8, 10.1.0.0/16]\n");
    assert!(
        err.contains("FILE: `cluster-cidr`: expected a single value"),
        "{err}"
    );
}

/// Serve with `file` (and `env`), return whether `port` opened within 20 s; the server is stopped.
fn serves_on(file: &Path, env: &[(&str, String)], port: u16) -> bool {
    let mut child = apiserver()
        .env("SKIFF_CONFIG", file)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn skiff-apiserver");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut up = false;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    up
}

#[test]
fn settings_come_from_the_file_and_env_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_port = free_port();
    let file = dir.path().join("apiserver.yaml");
    let yaml = format!(
        "data-dir: {}\nbind-address: 127.0.0.1\nadvertise-address: 127.0.0.1\nsecure-port: {file_port}\n",
        dir.path().join("data").display()
    );
    std::fs::write(&file, yaml).expect("write config");
    assert!(
        serves_on(&file, &[], file_port),
        "the file's secure-port was not used"
    );
    assert!(
        dir.path().join("data/admin.kubeconfig").exists(),
        "the file's data-dir was not used"
    );

    let env_port = free_port();
    let env = [("SKIFF_SECURE_PORT", env_port.to_string())];
    assert!(
        serves_on(&file, &env, env_port),
        "SKIFF_SECURE_PORT did not win over the file"
    );
}
