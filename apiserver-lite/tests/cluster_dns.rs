//! `--cluster-dns`: the `kube-system/kube-dns` Service as kubectl shows it, its address never given to a
//! user's Service, `none`, and the addresses the server refuses to start with.

mod common;

use std::time::{Duration, Instant};

use common::{Server, have, refused, tail};

/// `kubectl get` output once `args` succeeds (the controllers start shortly after the server).
fn wait_get(s: &Server, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = s.kubectl(args);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "kubectl {args:?}: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&s.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server with `args`; `None` (skip the test) without kubectl.
fn start(args: &[&str]) -> Option<Server> {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return None;
    }
    Some(Server::start_with(args))
}

#[test]
fn kube_dns_is_listed_and_its_address_is_never_allocated() {
    let Some(s) = start(&["--service-cluster-ip-range", "10.96.0.0/28"]) else {
        return;
    };
    wait_get(&s, &["get", "service", "kube-dns", "-n", "kube-system"]);
    let table = s.ok(&["get", "svc", "-n", "kube-system"]);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("kube-dns "))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        row.get(..5),
        Some(
            &[
                "kube-dns",
                "ClusterIP",
                "10.96.0.10",
                "<none>",
                "53/UDP,53/TCP"
            ][..]
        ),
        "{table}"
    );
    assert!(
        s.fails(&["get", "endpoints", "kube-dns", "-n", "kube-system"], None)
            .contains("NotFound")
    );

    // Deleted, and the range filled before the controller puts it back: .2 to .14 but .10 are handed out.
    s.ok(&["delete", "service", "kube-dns", "-n", "kube-system"]);
    for i in 0..12 {
        let name = format!("s{i}");
        s.ok(&["create", "service", "clusterip", &name, "--tcp=80"]);
        let ip = s.ok(&["get", "svc", &name, "-o", "jsonpath={.spec.clusterIP}"]);
        assert_ne!(ip, "10.96.0.10");
    }
    let err = s.fails(
        &["create", "service", "clusterip", "more", "--tcp=80"],
        None,
    );
    assert!(err.contains("is full"), "{err}");
}

#[test]
fn cluster_dns_none_keeps_no_service() {
    let Some(s) = start(&["--cluster-dns", "none"]) else {
        return;
    };
    wait_get(&s, &["get", "service", "kubernetes", "-n", "default"]);
    std::thread::sleep(Duration::from_millis(300));
    let out = s.kubectl(&["get", "svc", "-n", "kube-system"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No resources found"),
        "{out:?}"
    );
}

#[test]
fn cluster_dns_addresses_are_checked_at_start() {
    let err = refused(&["--cluster-dns", "10.0.0.10"]);
    assert!(
        err.contains(
            "--cluster-dns 10.0.0.10: 10.0.0.10 is not a host address of the service cluster IP range 10.96.0.0/12"
        ),
        "{err}"
    );
    let err = refused(&["--cluster-dns", "10.96.0.1"]);
    assert!(
        err.contains("--cluster-dns 10.96.0.1: 10.96.0.1 is the kubernetes Service's address"),
        "{err}"
    );
    let err = refused(&["--cluster-dns", "dns.local"]);
    assert!(err.contains("expected an IPv4 address or `none`"), "{err}");
    // The default, the range's 10th address, does not fit a /29.
    let err = refused(&["--service-cluster-ip-range", "10.96.0.0/29"]);
    assert!(err.contains("--cluster-dns 10.96.0.10: "), "{err}");
}
