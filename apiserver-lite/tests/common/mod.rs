//! A real skiff-apiserver process on a free 127.0.0.1 port with a temporary data directory.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub kubeconfig: PathBuf,
    pub cache_dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("apiserver.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_skiff-apiserver"))
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
            ])
            .args(["--secure-port", &port.to_string()])
            .args(extra)
            .env("RUST_LOG", "skiff_apiserver=debug,info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn skiff-apiserver");
        let kubeconfig = dir.path().join("data/admin.kubeconfig");
        let cache_dir = dir.path().join("kube-cache");
        let s = Server {
            child,
            dir,
            port,
            kubeconfig,
            cache_dir,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.kubeconfig.exists()
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                let out = self.curl(&["/readyz"]);
                if String::from_utf8_lossy(&out.stdout).contains("ok") {
                    // The system namespaces are bootstrapped before the listener starts.
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not become ready; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Anonymous curl (no client certificate); `args[0]` is the path.
    pub fn curl(&self, args: &[&str]) -> Output {
        let mut c = Command::new("curl");
        c.args(["-sk", "--max-time", "10", "-w", "\n%{http_code}"])
            .arg(self.url(args[0]))
            .args(&args[1..]);
        c.output().expect("curl")
    }

    /// Run kubectl with the admin kubeconfig and a fresh cache dir.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .arg("--request-timeout=20s");
        c.args(args);
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("kubectl")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}\nserver log tail:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 40)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl that must fail; returns stderr.
    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl_stdin(args, stdin);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write file");
        p
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the server with `args` (and no `SKIFF_*` settings from the environment); it must refuse at once,
/// before creating its data directory. Returns what it printed.
pub fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff-apiserver"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SKIFF_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(args)
        .output()
        .expect("run skiff-apiserver");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{err}");
    assert!(
        !data.exists(),
        "the server did something before refusing: {err}"
    );
    err
}

pub fn have(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: 127.0.0.1:5000/library/nginx:latest
    ports: [{containerPort: 80}]
";
