//! Pinned pod namespaces against the real kernel: pin, hostname, loopback, idempotence, restart
//! adoption, and that unpin leaves no mount behind. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use skiff_agent::sandbox::{self, PodSandbox};

fn tmp(tag: &str) -> PathBuf {
    assert!(nix::unistd::geteuid().is_root(), "sandbox tests need root");
    let d = std::env::temp_dir().join(format!("skiff-sandbox-{tag}-{}", std::process::id()));
    let _ = sandbox::unpin(&d.join("pod"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Mount points at or below `dir`, from the kernel's view (findmnt reads /proc/self/mountinfo).
fn mounts_under(dir: &Path) -> Vec<String> {
    let out = Command::new("findmnt")
        .args(["-rn", "-o", "TARGET"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(dir.to_str().unwrap()))
        .map(str::to_string)
        .collect()
}

fn nsenter(flag: &str, path: &Path, cmd: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("{flag}={}", path.display()))
        .args(cmd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nsenter {cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ns_inode(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

#[test]
fn pin_hostname_lo_idempotent_unpin() {
    let base = tmp("life");
    let dir = base.join("pod");
    let sb: PodSandbox = sandbox::pin(&dir, "web-0").unwrap();
    assert_eq!(sb.net, dir.join("ns/net"));
    assert_eq!(sb.ipc, dir.join("ns/ipc"));
    assert_eq!(sb.uts, dir.join("ns/uts"));

    // Three new namespaces, none of them the test's own.
    for (p, kind) in [(&sb.net, "net"), (&sb.ipc, "ipc"), (&sb.uts, "uts")] {
        let own = std::fs::metadata(format!("/proc/self/ns/{kind}"))
            .unwrap()
            .ino();
        assert_ne!(ns_inode(p), own, "{kind} is a new namespace");
    }
    assert_eq!(nsenter("--uts", &sb.uts, &["hostname"]), "web-0");
    let lo = nsenter("--net", &sb.net, &["ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "lo is up: {lo}");
    let links = nsenter("--net", &sb.net, &["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "only lo: {links}");

    let mounts = mounts_under(&dir);
    assert!(mounts.iter().any(|m| m.ends_with("/ns/net")), "{mounts:?}");
    let fm = Command::new("findmnt")
        .args(["-rn", "-o", "PROPAGATION", dir.join("ns").to_str().unwrap()])
        .output()
        .unwrap();
    let prop = String::from_utf8_lossy(&fm.stdout);
    assert!(
        prop.lines()
            .next()
            .unwrap_or_default()
            .contains("unbindable"),
        "ns dir is unbindable: {prop}"
    );

    // Idempotent: same namespaces, no extra mounts.
    let ino = ns_inode(&sb.net);
    let again = sandbox::pin(&dir, "web-0").unwrap();
    assert_eq!(again, sb);
    assert_eq!(ns_inode(&again.net), ino);
    assert_eq!(mounts_under(&dir), mounts);
    // Agent restart: found on disk.
    assert_eq!(sandbox::open(&dir), Some(sb.clone()));

    sandbox::unpin(&dir).unwrap();
    assert!(
        mounts_under(&dir).is_empty(),
        "unpin leaves no mount: {:?}",
        mounts_under(&dir)
    );
    assert!(!dir.exists());
    assert_eq!(sandbox::open(&dir), None);
    sandbox::unpin(&dir).unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn half_pinned_sandbox_is_repaired() {
    let base = tmp("half");
    let dir = base.join("pod");
    let sb = sandbox::pin(&dir, "half").unwrap();
    // Simulate a crash in the middle of pinning: one namespace lost its mount.
    nix::mount::umount2(&sb.ipc, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert_eq!(sandbox::open(&dir), None);
    let repaired = sandbox::pin(&dir, "half").unwrap();
    assert!(sandbox::open(&dir).is_some());
    assert_eq!(nsenter("--uts", &repaired.uts, &["hostname"]), "half");
    sandbox::unpin(&dir).unwrap();
    assert!(mounts_under(&dir).is_empty());
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn long_pod_names_and_bad_hostnames() {
    let base = tmp("names");
    let dir = base.join("pod");
    let long = format!("{}-tail", "a".repeat(70));
    let sb = sandbox::pin(&dir, &long).unwrap();
    assert_eq!(nsenter("--uts", &sb.uts, &["hostname"]), "a".repeat(63));
    sandbox::unpin(&dir).unwrap();
    assert!(matches!(
        sandbox::pin(&dir, "bad name"),
        Err(sandbox::SandboxError::Hostname(_))
    ));
    assert!(!dir.exists(), "a rejected pin creates nothing");
    assert!(mounts_under(&base).is_empty());
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn unpin_of_nothing_is_fine() {
    let base = tmp("none");
    sandbox::unpin(&base.join("never-pinned")).unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}
