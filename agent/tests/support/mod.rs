//! Fixtures for the agent's root tests: a private containerd, a local `docker-registry`, and tiny images
//! built with umoci and pushed with skopeo. Every process is started by the fixture and stopped by PID in
//! `Drop`; every file lives in a temp dir that `Drop` removes.
//!
//! Use from a test file with `mod support;`.
#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use skiff_agent::containerd::Containerd;

mod canned;
mod checks;
mod image;
mod token;

pub mod cluster;

pub use canned::{CannedHttp, Reply};
pub use checks::{content_labels, image_record, snapshot_committed, tiny};
pub use image::TestImage;
pub use token::{TOKEN_ISSUER, TOKEN_SERVICE, TokenServer};

/// Panics (never skips) when not root: these tests exist to exercise real containerd.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (real containerd, mounts)"
    );
}

/// A directory under /tmp removed on drop (after unmounting anything left mounted beneath it).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("skiff-{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        Self { path }
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        unmount_below(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn unmount_below(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = dir.to_string_lossy().to_string();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|t| t.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Stop a child we started: SIGTERM, up to 10 s grace, then SIGKILL; always reaped.
fn stop(child: &mut Child) {
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not become ready within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private containerd 1.6 (CRI disabled) with root, state and socket under a temp dir.
pub struct TestContainerd {
    pub socket: PathBuf,
    child: Child,
    pub dir: TempDir,
}

impl TestContainerd {
    pub fn start() -> Self {
        require_root();
        let dir = TempDir::new("containerd");
        let socket = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n[debug]\n  address = \"\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display(),
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config)
            .unwrap_or_else(|e| panic!("write containerd config: {e}"));
        let log = std::fs::File::create(dir.join("containerd.log"))
            .unwrap_or_else(|e| panic!("containerd log: {e}"));
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn containerd: {e}"));
        let mut me = Self { socket, child, dir };
        let sock = me.socket.clone();
        let child = &mut me.child;
        wait_for("containerd socket", Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("containerd exited early: {status}");
            }
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
        me
    }

    /// `kill -9` the daemon, as a crash would: the shims and the containers they run keep going.
    pub fn kill9(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Start the daemon again with the same config (root, state and socket), after [`Self::kill9`].
    pub fn restart(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join("containerd.log"))
            .unwrap_or_else(|e| panic!("containerd log: {e}"));
        self.child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn containerd: {e}"));
        let sock = self.socket.clone();
        let child = &mut self.child;
        wait_for("containerd socket", Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("containerd exited early: {status}");
            }
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
    }

    pub async fn connect(&self, namespace: &str) -> Containerd {
        Containerd::connect(&self.socket, namespace)
            .await
            .unwrap_or_else(|e| panic!("connect to test containerd: {e}"))
    }

    /// The daemon's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for TestContainerd {
    fn drop(&mut self) {
        stop(&mut self.child);
        end_leftover_shims(&self.socket);
    }
}

/// Shims of this containerd still running once it has stopped are a test's leak (a pod not deleted before
/// its agent stopped): they would keep their containers forever. Say so, and end them and their
/// containers (which this test started).
fn end_leftover_shims(socket: &Path) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let address = socket.to_string_lossy().into_owned();
    let pids: Vec<i32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect();
    let parent = |pid: i32| -> Option<i32> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))?
            .trim()
            .parse()
            .ok()
    };
    let is_our_shim = |pid: i32| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.first()
            .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"))
            && args
                .windows(2)
                .any(|w| w[0] == b"-address" && w[1] == address.as_bytes())
    };
    for shim in pids.iter().copied().filter(|pid| is_our_shim(*pid)) {
        let children: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|pid| parent(*pid) == Some(shim))
            .collect();
        eprintln!(
            "warning: containerd-shim {shim} (children {children:?}) outlived its containerd; ending it"
        );
        for child in children {
            let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
        }
        let _ = kill(Pid::from_raw(shim), Signal::SIGKILL);
    }
}

/// Remove a test agent's (empty) cgroup parent directories from every hierarchy; errors are ignored
/// (a directory still in use stays, and is visible to whoever looks).
pub fn remove_cgroup_parent(name: &str) {
    let roots: Vec<PathBuf> = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        vec![PathBuf::from("/sys/fs/cgroup")]
    } else {
        std::fs::read_dir("/sys/fs/cgroup")
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for root in roots {
        let _ = std::fs::remove_dir(root.join(name));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// bcrypt of `skiff-pass` (cost 4), for [`TestRegistry::start_with_basic_auth`].
pub const HTPASSWD: &str = "skiff:$2b$04$1Q1F6ZVeyMfLrPauqcVHHewYv47G27po8AN1N9tocNXfjhPvra3OS\n";

/// `docker-registry` on a free 127.0.0.1 port, plain HTTP, storage in a temp dir.
pub struct TestRegistry {
    pub port: u16,
    child: Child,
    pub token: Option<TokenServer>,
    pub dir: TempDir,
}

enum Mode<'a> {
    Plain,
    Basic,
    Token(&'a [&'a str]),
    Tls,
}

impl TestRegistry {
    pub fn start() -> Self {
        Self::start_inner(Mode::Plain)
    }

    /// The same, with htpasswd auth (user `skiff`, password `skiff-pass`): the registry answers 401 with
    /// `WWW-Authenticate: Basic`.
    pub fn start_with_basic_auth() -> Self {
        Self::start_inner(Mode::Basic)
    }

    /// The same, with token auth: 401 with `WWW-Authenticate: Bearer realm=…` pointing at a
    /// [`TokenServer`] that grants `repositories` to user `skiff` / `skiff-pass`.
    pub fn start_with_token_auth(repositories: &[&str]) -> Self {
        Self::start_inner(Mode::Token(repositories))
    }

    /// Without auth, but HTTPS only, with a self-signed certificate for 127.0.0.1 (`dir/tls.crt`).
    pub fn start_with_tls() -> Self {
        Self::start_inner(Mode::Tls)
    }

    fn start_inner(mode: Mode<'_>) -> Self {
        let dir = TempDir::new("registry");
        let port = free_port();
        let mut token = None;
        let auth = match mode {
            Mode::Plain => String::new(),
            Mode::Tls => {
                let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
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
                        "/CN=127.0.0.1",
                        "-addext",
                        "subjectAltName=IP:127.0.0.1",
                        "-keyout",
                        &key.to_string_lossy(),
                        "-out",
                        &cert.to_string_lossy(),
                    ],
                );
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                )
            }
            Mode::Basic => {
                std::fs::write(dir.join("htpasswd"), HTPASSWD)
                    .unwrap_or_else(|e| panic!("htpasswd: {e}"));
                format!(
                    "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                    dir.join("htpasswd").display()
                )
            }
            Mode::Token(repositories) => {
                let server = TokenServer::start(&dir.path, repositories);
                let cfg = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    server.realm(),
                    server.cert.display()
                );
                token = Some(server);
                cfg
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config)
            .unwrap_or_else(|e| panic!("registry config: {e}"));
        let log = std::fs::File::create(dir.join("registry.log"))
            .unwrap_or_else(|e| panic!("registry log: {e}"));
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn docker-registry: {e}"));
        let mut me = Self {
            port,
            child,
            token,
            dir,
        };
        let child = &mut me.child;
        wait_for("docker-registry", Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("docker-registry exited early: {status}");
            }
            http_status(port, "/v2/").is_some()
        });
        me
    }

    /// `127.0.0.1:<port>`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Path of a blob's data file in the registry's storage (to corrupt it in tests).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Status code of a plain `GET` to 127.0.0.1:port, or None if nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run a tool and panic with its stderr on failure.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
