use std::net::Ipv4Addr;

use super::*;
use crate::proxy::rules::{Protocol, ServicePort, ruleset, sorted};

fn sticky(eps: &[[u8; 4]], timeout: u32) -> ServicePort {
    ServicePort {
        namespace: "ns".into(),
        name: "web".into(),
        port_name: "80".into(),
        ip: Ipv4Addr::new(10, 96, 0, 10),
        protocol: Protocol::Tcp,
        port: 80,
        endpoints: sorted(eps.iter().map(|ip| (Ipv4Addr::from(*ip), 8080)).collect()),
        node_port: None,
        load_balancer: false,
        external_local: false,
        affinity: Some(timeout),
    }
}

const A: [u8; 4] = [10, 244, 0, 5];
const B: [u8; 4] = [10, 244, 1, 7];

fn lines(batch: &str, prefix: &str) -> Vec<String> {
    batch
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn updates_keep_affinity_sets_and_delete_stale_chains_later() {
    let t0 = Instant::now();
    let both = ruleset(&[sticky(&[A, B], 10800)], None, None);
    let held = Held::replaced_by(&both);
    assert!(held.holds(&both, t0));

    // Endpoint B goes: its set goes at once, its chain only after STALE_DELAY.
    let only_a = ruleset(&[sticky(&[A], 10800)], None, None);
    assert!(!held.holds(&only_a, t0));
    let (batch, held) = update(&held, &only_a, t0);
    assert!(
        batch.starts_with("table ip skiff-proxy\nflush table ip skiff-proxy\n"),
        "{batch}"
    );
    assert!(!batch.contains("delete table"), "{batch}");
    assert_eq!(
        lines(&batch, "flush "),
        [
            "flush table ip skiff-proxy",
            "flush map ip skiff-proxy service-ips",
            "flush set ip skiff-proxy no-endpoints",
            "flush map ip skiff-proxy service-nodeports",
            "flush set ip skiff-proxy no-endpoint-nodeports",
        ]
    );
    assert_eq!(
        lines(&batch, "delete "),
        ["delete set ip skiff-proxy affinity-ns/web/tcp/80__10.244.1.7/8080"]
    );
    // A's set is declared again (create-or-keep), not deleted: its entries stay.
    assert!(batch.contains("\tset affinity-ns/web/tcp/80__10.244.0.5/8080 {"));
    assert!(held.holds(&only_a, t0));
    let later = t0 + STALE_DELAY;
    assert!(!held.holds(&only_a, later), "the stale chain is due");
    let (batch, held) = update(&held, &only_a, later);
    assert_eq!(
        lines(&batch, "delete "),
        ["delete chain ip skiff-proxy svc-ns/web/tcp/80__10.244.1.7/8080"]
    );
    assert!(held.holds(&only_a, later + STALE_DELAY));

    // B back before its chain was deleted: nothing to delete. A new timeout recreates the sets.
    let (_, held) = update(&Held::replaced_by(&both), &only_a, t0);
    let (batch, held) = update(&held, &both, t0);
    assert!(lines(&batch, "delete ").is_empty(), "{batch}");
    assert!(held.holds(&both, later));
    let short = ruleset(&[sticky(&[A, B], 60)], None, None);
    let (batch, _) = update(&held, &short, t0);
    assert_eq!(lines(&batch, "delete ").len(), 2, "{batch}");
    assert!(batch.contains("\t\ttimeout 60s\n"), "{batch}");
}
