//! Helpers for the agent's CNI tests (cni_runtime.rs, cni_ports.rs, cni_reference_e2e.rs): the
//! network-namespace topology shared with skiff-cni's tests (cni/tests/common/topology.rs, included
//! by path), the freshly built skiff-cni binary, and running the runtime inside a namespace.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[path = "../../../cni/tests/common/topology.rs"]
mod topology;
pub use topology::*;

/// The directory holding a freshly built `skiff-cni` (cargo does not build other packages'
/// binaries for this crate's tests, so build it once here).
pub fn skiff_cni_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "skiff-cni", "--bin", "skiff-cni"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p skiff-cni");
        assert!(status.success(), "building skiff-cni failed");
        // target/debug/deps/<test> -> target/debug
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        assert!(
            dir.join("skiff-cni").exists(),
            "skiff-cni not found in {}",
            dir.display()
        );
        dir
    })
    .clone()
}

/// Run `f` on a current-thread runtime on a thread inside `ns`: every plugin it starts is a child
/// of that thread and so starts in `ns`.
pub fn in_netns<F, Fut, T>(ns: &Path, f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        enter(&ns);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
    .join()
    .unwrap()
}
