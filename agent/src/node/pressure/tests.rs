//! Tests of threshold parsing, pressure decisions and measurements.

use super::*;

#[test]
fn parses_thresholds() {
    let t = parse_thresholds(DEFAULT_EVICTION_HARD).expect("valid");
    assert_eq!(t.len(), 4);
    assert_eq!(
        t[0],
        Threshold {
            signal: Signal::MemoryAvailable,
            value: Value::Amount(100 << 20)
        }
    );
    assert_eq!(t[1].value, Value::Percent(10.0));
    assert_eq!(t[2].signal, Signal::NodefsInodesFree);
    let p = parse_thresholds("pid.available<1k, memory.available<1Gi").expect("valid");
    assert_eq!(p[0].value, Value::Amount(1000));
    assert_eq!(parse_thresholds("").expect("valid"), vec![]);
    for (bad, says) in [
        ("memory.available>1Gi", "expected"),
        ("memory.free<1Gi", "unknown eviction signal"),
        ("memory.available<lots", "memory.available"),
        ("nodefs.available<150%", "between"),
        ("nodefs.available<x%", "bad percentage"),
        ("memory.available<-1", "negative"),
        ("memory.available<1Gi,memory.available<2Gi", "twice"),
    ] {
        let err = parse_thresholds(bad).expect_err("rejected");
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn decides_pressure() {
    let t =
        parse_thresholds(&format!("{DEFAULT_EVICTION_HARD},pid.available<1000")).expect("valid");
    let gib = 1u64 << 30;
    let fine = Observations {
        memory: Some((2 * gib, 8 * gib)),
        nodefs_bytes: Some((50 * gib, 100 * gib)),
        nodefs_inodes: Some((900_000, 1_000_000)),
        imagefs_bytes: Some((20 * gib, 100 * gib)),
        imagefs_inodes: Some((900_000, 1_000_000)),
        pids: Some((4_000_000, 4_194_304)),
    };
    assert_eq!(decide(&t, &fine), Pressure::default());
    // 99 MiB available < 100Mi.
    let low_mem = Observations {
        memory: Some((99 << 20, 8 * gib)),
        ..fine
    };
    assert_eq!(
        decide(&t, &low_mem),
        Pressure {
            memory: true,
            ..Default::default()
        }
    );
    // Exactly at the threshold is no pressure.
    let at = Observations {
        memory: Some((100 << 20, 8 * gib)),
        ..fine
    };
    assert!(!decide(&t, &at).memory);
    // imagefs 14 GiB of 100 GiB < 15 %; nodefs inodes 4 % < 5 %.
    let disk = Observations {
        imagefs_bytes: Some((14 * gib, 100 * gib)),
        ..fine
    };
    assert!(decide(&t, &disk).disk);
    let inodes = Observations {
        nodefs_inodes: Some((40_000, 1_000_000)),
        ..fine
    };
    assert!(decide(&t, &inodes).disk);
    let pids = Observations {
        pids: Some((999, 4_194_304)),
        ..fine
    };
    assert!(decide(&t, &pids).pid);
    // Unmeasured signals and no thresholds never signal pressure.
    assert_eq!(decide(&t, &Observations::default()), Pressure::default());
    assert_eq!(decide(&[], &low_mem), Pressure::default());
}

#[test]
fn holds_pressure_for_the_transition_period() {
    let period = Duration::from_secs(300);
    let t0 = Instant::now();
    let mut tr = Transitions::default();
    let mem = Pressure {
        memory: true,
        ..Default::default()
    };
    assert_eq!(
        tr.apply(Pressure::default(), t0, period),
        Pressure::default()
    );
    assert_eq!(tr.apply(mem, t0, period), mem);
    // Relief 299 s later is not enough; 300 s after the last crossing it is.
    assert_eq!(
        tr.apply(Pressure::default(), t0 + Duration::from_secs(299), period),
        mem
    );
    assert_eq!(
        tr.apply(Pressure::default(), t0 + Duration::from_secs(300), period),
        Pressure::default()
    );
    // A zero period follows the observation exactly.
    let mut tr = Transitions::default();
    assert_eq!(tr.apply(mem, t0, Duration::ZERO), mem);
    assert_eq!(
        tr.apply(Pressure::default(), t0, Duration::ZERO),
        Pressure::default()
    );
}

#[test]
fn parses_durations() {
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert!(parse_duration("").is_err());
    assert!(
        parse_duration("5")
            .expect_err("rejected")
            .contains("missing unit")
    );
    assert!(
        parse_duration("5d")
            .expect_err("rejected")
            .contains("unknown unit")
    );
    assert!(
        parse_duration("5é")
            .expect_err("rejected")
            .contains("unknown unit")
    );
    assert!(
        parse_duration("m")
            .expect_err("rejected")
            .contains("number")
    );
}

#[test]
fn parses_proc_files() {
    assert_eq!(
        meminfo_available("MemTotal: 8000 kB\nMemFree: 10 kB\nMemAvailable: 3000 kB\n"),
        Some((3000 * 1024, 8000 * 1024))
    );
    assert_eq!(meminfo_available("MemTotal: 8000 kB\n"), None);
    assert_eq!(loadavg_tasks("0.00 0.01 0.05 2/345 6789\n"), Some(345));
    assert_eq!(loadavg_tasks("garbage"), None);
}

#[test]
fn observes_this_machine() {
    let dir = std::env::temp_dir();
    let e = Eviction {
        hard: Vec::new(),
        soft: Vec::new(),
        max_pod_grace_period: 0,
        transition_period: Duration::ZERO,
        nodefs: dir.clone(),
        imagefs: dir.join("does-not-exist-skiff"),
        min_reclaim: Default::default(),
    };
    // No containerd root: one file system for both; the same directory, the same device; /proc is not
    // on the temp dir's device.
    assert!(!e.dedicated_imagefs());
    let same = Eviction {
        imagefs: dir.clone(),
        ..e.clone()
    };
    assert!(!same.dedicated_imagefs());
    let other = Eviction {
        imagefs: "/proc".into(),
        ..e.clone()
    };
    assert!(other.dedicated_imagefs());
    let o = e.observe();
    assert!(o.memory.is_some_and(|(a, c)| a > 0 && a <= c));
    assert!(o.nodefs_bytes.is_some_and(|(a, c)| a <= c && c > 0));
    assert_eq!(o.imagefs_bytes.map(|b| b.1), o.nodefs_bytes.map(|b| b.1));
    assert!(o.pids.is_some_and(|(a, c)| a > 0 && a < c));
}
