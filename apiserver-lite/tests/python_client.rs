//! The Python `kubernetes` client (tests/python/client_flows.py) against the real server. Skipped, loudly,
//! when the module is not installed (`pip install kubernetes`), unless SKIFF_REQUIRE_PYTHON_CLIENT is set.

mod common;

use std::process::Command;

use common::{Server, path_str, tail};

#[test]
fn python_kubernetes_client_flows() {
    let have = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        assert!(
            std::env::var_os("SKIFF_REQUIRE_PYTHON_CLIENT").is_none(),
            "the Python kubernetes client is required (pip install kubernetes)"
        );
        eprintln!("SKIPPED: python3 module `kubernetes` not installed (pip install kubernetes)");
        return;
    }
    let s = Server::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_flows.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(path_str(&s.kubeconfig))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python client flows failed:\n{}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        tail(&s.log(), 30)
    );
}
