use super::*;

/// The head of a real v1 `memory.stat` (a 6.x kernel), with the hierarchical `total_*` keys.
pub(crate) const V1_MEMORY_STAT: &str = "cache 11538432\nrss 13090816\nrss_huge 0\nshmem 9084928\n\
mapped_file 7569408\ndirty 28672\nwriteback 0\nswap 0\ninactive_anon 0\nactive_anon 1531904\n\
inactive_file 32768\nactive_file 2420736\nunevictable 20643840\n\
hierarchical_memory_limit 9223372036854771712\ntotal_cache 8122335232\ntotal_rss 23891968\n\
total_inactive_anon 10625024\ntotal_active_anon 1605632\ntotal_inactive_file 5613297664\n\
total_active_file 2420736\n";

/// A real v2 `memory.stat` of a container cgroup (6.x kernel), cut after the LRU lists.
pub(crate) const V2_MEMORY_STAT: &str = "anon 1339392\nfile 4096000\nkernel 438272\n\
kernel_stack 32768\npagetables 69632\nsec_pagetables 0\npercpu 0\nsock 0\nvmalloc 0\nshmem 0\n\
file_mapped 2506752\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\ninactive_anon 1323008\n\
active_anon 16384\ninactive_file 3219456\nactive_file 876544\nunevictable 0\n";

/// A real v2 `cpu.stat`.
pub(crate) const V2_CPU_STAT: &str =
    "usage_usec 14372233397\nuser_usec 12351537773\nsystem_usec 2020695624\nnice_usec 0\n";

pub(crate) const PROC_STAT: &str = "cpu  1234238 7 198686 935658 13613 11 3135 461 5 0\n\
cpu0 583322 0 95661 509124 3551 0 702 226 0 0\ncpu1 650916 0 103024 426534 10062 0 2432 235 0 0\n\
intr 1 2 3\nbtime 1700000000\n";

pub(crate) const MEMINFO: &str = "MemTotal:       24684084 kB\nMemFree:        15848504 kB\n\
MemAvailable:   23672984 kB\nBuffers:           73984 kB\nCached:          7794232 kB\n\
Inactive(anon):   371544 kB\nActive(file):    2536444 kB\nInactive(file):  5322900 kB\n";

/// A fresh fixture tree (`<tmp>/cgroup`, `<tmp>/proc`); removed when dropped.
pub(crate) struct Fixture {
    pub dir: PathBuf,
    pub src: Sources,
}

impl Fixture {
    pub fn new(v2: bool) -> Self {
        let dir = std::env::temp_dir().join(format!("skiff-usage-{}", uuid::Uuid::new_v4()));
        let src = Sources {
            cgroup_root: dir.join("cgroup"),
            proc_root: dir.join("proc"),
            v2,
        };
        Self { dir, src }
    }

    /// Write `text` at `rel` below the fixture root (parents created).
    pub fn file(&self, rel: &str, text: &str) {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    }

    /// A v1 cgroup at `rel` with `cpu_ns` and a working set of `ws` (usage − inactive).
    pub fn v1_cgroup(&self, rel: &str, cpu_ns: u64, ws: u64) {
        self.file(
            &format!("cgroup/cpuacct/{rel}/cpuacct.usage"),
            &format!("{cpu_ns}\n"),
        );
        self.file(
            &format!("cgroup/memory/{rel}/memory.usage_in_bytes"),
            &format!("{}\n", ws + 5_613_297_664),
        );
        self.file(&format!("cgroup/memory/{rel}/memory.stat"), V1_MEMORY_STAT);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn keyed_files() {
    assert_eq!(
        keyed_value(V1_MEMORY_STAT, "total_inactive_file"),
        Some(5_613_297_664)
    );
    assert_eq!(keyed_value(V1_MEMORY_STAT, "inactive_file"), Some(32768));
    assert_eq!(
        keyed_value(V2_MEMORY_STAT, "inactive_file"),
        Some(3_219_456)
    );
    assert_eq!(keyed_value(V2_CPU_STAT, "usage_usec"), Some(14_372_233_397));
    assert_eq!(keyed_value(V2_CPU_STAT, "usage"), None);
}

#[test]
fn proc_stat_and_meminfo() {
    // user + nice + system + irq + softirq; not idle, iowait, steal or guest.
    assert_eq!(
        parse_proc_stat_busy_ticks(PROC_STAT),
        Some(1_234_238 + 7 + 198_686 + 11 + 3135)
    );
    // Old kernels have only the first seven fields.
    assert_eq!(
        parse_proc_stat_busy_ticks("cpu 1 2 3 4 5 6 7\n"),
        Some(1 + 2 + 3 + 6 + 7)
    );
    assert_eq!(parse_proc_stat_busy_ticks("cpu0 1 2 3 4 5 6 7\n"), None);
    assert_eq!(parse_proc_stat_busy_ticks("cpu 1 x 3 4 5 6 7\n"), None);
    assert_eq!(
        meminfo_bytes(MEMINFO, "Inactive(file)"),
        Some(5_322_900 * 1024)
    );
    assert_eq!(meminfo_bytes(MEMINFO, "MemTotal"), Some(24_684_084 * 1024));
    assert_eq!(meminfo_bytes(MEMINFO, "Mem"), None);
}

#[test]
fn v1_cgroup_usage() {
    let f = Fixture::new(false);
    f.v1_cgroup("skiff/podu/u-c-0", 4_710_169_000, 12_533_760);
    assert_eq!(
        cgroup_usage(&f.src, "/skiff/podu/u-c-0").ok(),
        Some(Usage {
            cpu_ns: 4_710_169_000,
            working_set: 12_533_760
        })
    );
    // More inactive file than usage (counters read at different instants) floors at 0.
    f.file(
        "cgroup/memory/skiff/podu/u-c-0/memory.usage_in_bytes",
        "4096\n",
    );
    assert_eq!(
        cgroup_usage(&f.src, "skiff/podu/u-c-0")
            .map(|u| u.working_set)
            .ok(),
        Some(0)
    );
    assert!(matches!(
        cgroup_usage(&f.src, "skiff/podu/gone"),
        Err(UsageError::Vanished { .. })
    ));
    f.file("cgroup/cpuacct/skiff/podu/u-c-0/cpuacct.usage", "lots\n");
    let err = cgroup_usage(&f.src, "skiff/podu/u-c-0");
    assert!(
        matches!(err, Err(UsageError::Parse { .. })),
        "{err:?} is a parse error"
    );
}

#[test]
fn v2_cgroup_usage() {
    let f = Fixture::new(true);
    f.file("cgroup/skiff/podu/cpu.stat", V2_CPU_STAT);
    f.file("cgroup/skiff/podu/memory.current", "5435392\n");
    f.file("cgroup/skiff/podu/memory.stat", V2_MEMORY_STAT);
    assert_eq!(
        cgroup_usage(&f.src, "skiff/podu").ok(),
        Some(Usage {
            cpu_ns: 14_372_233_397_000,
            working_set: 5_435_392 - 3_219_456
        })
    );
    std::fs::remove_file(f.dir.join("cgroup/skiff/podu/memory.current"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        cgroup_usage(&f.src, "skiff/podu"),
        Err(UsageError::Vanished { .. })
    ));
}

#[test]
fn node_usage() {
    let ns_per_tick = 1_000_000_000 / clock_ticks();
    let busy = 1_234_238 + 7 + 198_686 + 11 + 3135;

    let v1 = Fixture::new(false);
    v1.file("proc/stat", PROC_STAT);
    v1.file("cgroup/memory/memory.usage_in_bytes", "8146022400\n");
    v1.file("cgroup/memory/memory.stat", V1_MEMORY_STAT);
    assert_eq!(node_cpu_ns(&v1.src).ok(), Some(busy * ns_per_tick));
    assert_eq!(
        node_working_set(&v1.src).ok(),
        Some(8_146_022_400 - 5_613_297_664)
    );

    // v2: the root's memory.stat (anon + file − inactive_file), else /proc/meminfo.
    let v2 = Fixture::new(true);
    v2.file("proc/meminfo", MEMINFO);
    assert_eq!(
        node_working_set(&v2.src).ok(),
        Some((24_684_084 - 15_848_504 - 5_322_900) * 1024)
    );
    v2.file("cgroup/memory.stat", V2_MEMORY_STAT);
    assert_eq!(
        node_working_set(&v2.src).ok(),
        Some(1_339_392 + 4_096_000 - 3_219_456)
    );
    assert!(matches!(
        node_cpu_ns(&v2.src),
        Err(UsageError::Vanished { .. })
    ));
}
