//! The real skiff-agent binary refuses a malformed config file at start: non-zero exit, the file, the key
//! and what is wrong, before it touches anything.

use std::path::Path;
use std::process::Command;

fn run_with(dir: &Path, yaml: &str, extra: &[&str]) -> (i32, String) {
    let file = dir.join("agent.yaml");
    std::fs::write(&file, yaml).expect("write the test config");
    let root = dir.join("root");
    let out = Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
        .arg("--config")
        .arg(&file)
        .arg("--root-dir")
        .arg(&root)
        .args(extra)
        .env_remove("SKIFF_CONFIG")
        .env_remove("SKIFF_NODE_NAME")
        .env_remove("SKIFF_STARTUP_CONCURRENCY")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run skiff-agent");
    assert!(
        !root.exists(),
        "the agent did something before refusing its config"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code().unwrap_or(-1),
        stderr.replace(&file.display().to_string(), "FILE"),
    )
}

#[test]
fn malformed_config_files_stop_the_agent() {
    let dir = std::env::temp_dir().join(format!("skiff-config-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let (code, err) = run_with(&dir, "node-name: vm\nstartup-concurrency: [4\n", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("FILE: malformed YAML: "), "{err}");
    assert!(err.contains("line 2"), "{err}");

    let (code, err) = run_with(&dir, "nod-name: vm\n", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("FILE: unknown setting `nod-name`"), "{err}");

    let (code, err) = run_with(&dir, "startup-concurrency: x\n", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("FILE: `startup-concurrency`: invalid value 'x': "),
        "{err}"
    );

    let (code, err) = run_with(&dir, "pod-network-mode: fast\n", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("FILE: `pod-network-mode`: invalid value 'fast'"),
        "{err}"
    );

    // Wrong even when the command line overrides it: the file is still refused.
    let (code, err) = run_with(
        &dir,
        "startup-concurrency: x\n",
        &["--startup-concurrency", "2"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`startup-concurrency`"), "{err}");

    let missing = dir.join("missing.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
        .arg("--config")
        .arg(&missing)
        .output()
        .expect("run skiff-agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: No such file", missing.display())),
        "{err}"
    );

    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}

#[test]
fn file_settings_reach_clap_and_flags_win() {
    let dir = std::env::temp_dir().join(format!("skiff-config-file-ok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // A valid file with every required flag but one: clap's own error proves the file's values were
    // taken (kubeconfig, node-name, registry-config not reported missing) and the one left is.
    let (code, err) = run_with(
        &dir,
        "kubeconfig: /nonexistent/kubeconfig\nnode-name: vm\ncni-bin-dir: [/a, /b]\n",
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--registry-config"), "{err}");
    assert!(
        err.contains("  --registry-config <REGISTRY_CONFIG>\n"),
        "{err}"
    );
    assert!(!err.contains("  --kubeconfig <KUBECONFIG>\n"), "{err}");
    assert!(!err.contains("  --node-name <NODE_NAME>\n"), "{err}");
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}
