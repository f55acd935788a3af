//! The agent's settings (docs/contracts.md, "skiff-agent command line"): flags, each with an env variable.

use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "skiff-agent",
    version,
    about = "skiff's node agent: runs this node's pods with containerd"
)]
pub struct Config {
    /// YAML settings file: long flag names as keys (`node-name: vm`); flags and env variables win over
    /// it (default: /etc/skiff/agent.yaml when it exists).
    #[arg(long, env = "SKIFF_CONFIG")]
    pub config: Option<PathBuf>,
    /// kubeconfig of this node (user system:node:<node>).
    #[arg(long, env = "SKIFF_KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// Name of the Node object.
    #[arg(long, env = "SKIFF_NODE_NAME")]
    pub node_name: String,
    #[arg(
        long,
        env = "SKIFF_CONTAINERD_SOCKET",
        default_value = "/run/skiff/containerd/containerd.sock"
    )]
    pub containerd_socket: PathBuf,
    #[arg(long, env = "SKIFF_CONTAINERD_NAMESPACE", default_value = "skiff")]
    pub containerd_namespace: String,
    /// Persistent agent state (pod volumes, generated files).
    #[arg(long, env = "SKIFF_ROOT_DIR", default_value = "/var/lib/skiff/agent")]
    pub root_dir: PathBuf,
    /// Where local-path PersistentVolumes live (`<dir>/pvc-<uid>_<ns>_<claim>`): must be the API server's
    /// `--local-path-root`. Directories there whose volume is gone are removed.
    #[arg(
        long,
        env = "SKIFF_STORAGE_DIR",
        default_value = "/var/lib/skiff/storage"
    )]
    pub storage_dir: PathBuf,
    /// Volatile state (pinned namespaces, stdio FIFOs).
    #[arg(long, env = "SKIFF_RUN_DIR", default_value = "/run/skiff")]
    pub run_dir: PathBuf,
    #[arg(long, env = "SKIFF_POD_LOG_DIR", default_value = "/var/log/pods")]
    pub pod_log_dir: PathBuf,
    /// Where the `<pod>_<ns>_<container>-<containerID>.log` symlinks to current container logs go.
    #[arg(
        long,
        env = "SKIFF_CONTAINER_LOG_DIR",
        default_value = "/var/log/containers"
    )]
    pub container_log_dir: PathBuf,
    /// Rotate a container's log file when it would grow past this size (a quantity: 10Mi, 512Ki).
    #[arg(long, env = "SKIFF_CONTAINER_LOG_MAX_SIZE", default_value = "10Mi",
          value_parser = crate::runtime::logs::parse_size)]
    pub container_log_max_size: u64,
    /// How many log files (current one included) to keep per container.
    #[arg(long, env = "SKIFF_CONTAINER_LOG_MAX_FILES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(2..))]
    pub container_log_max_files: u32,
    #[arg(
        long,
        env = "SKIFF_CNI_CONF_DIR",
        default_value = "/var/lib/skiff/cni/net.d"
    )]
    pub cni_conf_dir: PathBuf,
    /// CNI plugin directories, `:`-separated.
    #[arg(
        long,
        env = "SKIFF_CNI_BIN_DIR",
        value_delimiter = ':',
        default_value = "/usr/lib/cni"
    )]
    pub cni_bin_dir: Vec<PathBuf>,
    /// Where cached CNI ADD results live (libcni layout: `<dir>/<network>-<containerID>-<ifname>`).
    /// Give every node its own directory when several nodes share a host: CNI GC owns what is here.
    #[arg(
        long,
        env = "SKIFF_CNI_CACHE_DIR",
        default_value = "/var/lib/cni/results"
    )]
    pub cni_cache_dir: PathBuf,
    /// Registry mirrors and credentials (k3s registries.yaml format).
    #[arg(long, env = "SKIFF_REGISTRY_CONFIG")]
    pub registry_config: PathBuf,
    /// Address reported as the node's InternalIP (default: first non-loopback IPv4).
    #[arg(long, env = "SKIFF_NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// The cluster's pod network (for the default CNI conflist's masquerade rule).
    #[arg(long, env = "SKIFF_CLUSTER_CIDR", default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// How pods on other nodes are reached: `auto` (host-gw to nodes on a shared link, VXLAN to the
    /// others), `host-gw` or `vxlan`.
    #[arg(long, env = "SKIFF_POD_NETWORK_MODE", value_enum, default_value_t = crate::routes::Mode::Auto)]
    pub pod_network_mode: crate::routes::Mode,
    /// The service proxy: `nftables` (cluster IPs in the nftables table `ip skiff-proxy`) or `none`.
    #[arg(long, env = "SKIFF_PROXY_MODE", value_enum, default_value_t = crate::proxy::Mode::Nftables)]
    pub proxy_mode: crate::proxy::Mode,
    /// Enforce NetworkPolicies for this node's pods in the nftables table `inet skiff-netpol`
    /// (`--network-policy=false`: another component does, or nothing does).
    #[arg(long, env = "SKIFF_NETWORK_POLICY", default_value_t = true, action = clap::ArgAction::Set)]
    pub network_policy: bool,
    /// The cluster DNS address (the kubelet's `clusterDNS`): this node answers DNS on it, held on
    /// `--dns-interface`, and `dnsPolicy: ClusterFirst` pods name it in their resolv.conf. `none`: no cluster
    /// DNS, and such pods get the host's resolv.conf (the kubelet without `clusterDNS`).
    #[arg(long, env = "SKIFF_CLUSTER_DNS", default_value = "10.96.0.10")]
    pub cluster_dns: crate::dns::Address,
    /// The cluster domain (the kubelet's `clusterDomain`).
    #[arg(long, env = "SKIFF_CLUSTER_DOMAIN", default_value = "cluster.local",
          value_parser = crate::dns::parse_domain)]
    pub cluster_domain: String,
    /// The resolv.conf whose nameservers answer names outside the cluster domain and which
    /// `dnsPolicy: Default` pods get (the kubelet's `--resolv-conf`).
    #[arg(long, env = "SKIFF_RESOLV_CONF", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// How many CPU-bound start-up steps (pod sandbox setups: namespaces + CNI ADD; container starts: shim
    /// and runc spawns) run at once. Waiting steps go in the order their pods arrived, so a burst of pods
    /// finishes front to back instead of all at once at the end.
    #[arg(long, env = "SKIFF_STARTUP_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub startup_concurrency: u16,
    /// cgroup (cgroupfs path, relative to each hierarchy's root) under which pod cgroups are created:
    /// `/<parent>/pod<uid>/<container-id>`. Give test agents their own so they never mix with a lab's.
    #[arg(long, env = "SKIFF_CGROUP_PARENT", default_value = "skiff",
          value_parser = crate::runtime::cgroups::parse_parent)]
    pub cgroup_parent: String,
    /// Port of the agent's HTTPS API (logs, exec; the kubelet's 10250). 0 disables it.
    #[arg(long, env = "SKIFF_KUBELET_PORT", default_value_t = 10250)]
    pub kubelet_port: u16,
    /// API server to join (`https://HOST:6443`) when `--kubeconfig` does not exist yet; needs `--token`.
    #[arg(long, env = "SKIFF_SERVER", requires = "token")]
    pub server: Option<String>,
    /// Join token `K10<sha256 of the CA>::<id>.<secret>` (from `skiff-apiserver token create`).
    #[arg(long, env = "SKIFF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Only check that `--server` presents the CA `--token` pins and accepts the token, then exit
    /// (systemd/install.sh runs this before it changes anything).
    #[arg(long, requires = "server")]
    pub check_join: bool,
    /// Resources set aside for the OS (`cpu=100m,memory=256Mi,ephemeral-storage=1Gi,pid=1000`), taken off
    /// the Node's allocatable.
    #[arg(long, env = "SKIFF_SYSTEM_RESERVED", default_value = "",
          value_parser = crate::node::reserved::parse_reserved)]
    pub system_reserved: crate::node::reserved::Reserved,
    /// Resources set aside for Kubernetes daemons (same syntax as `--system-reserved`).
    #[arg(long, env = "SKIFF_KUBE_RESERVED", default_value = "",
          value_parser = crate::node::reserved::parse_reserved)]
    pub kube_reserved: crate::node::reserved::Reserved,
    /// Hard eviction thresholds (`memory.available<100Mi,nodefs.available<10%,…`, the kubelet's syntax and
    /// defaults); crossing one sets the MemoryPressure/DiskPressure/PIDPressure condition. Given, it replaces
    /// the defaults (signals not listed have no threshold); empty turns them all off.
    #[arg(long, env = "SKIFF_EVICTION_HARD", default_value = crate::node::pressure::DEFAULT_EVICTION_HARD,
          value_parser = crate::node::pressure::parse_thresholds_arg)]
    pub eviction_hard: crate::node::pressure::Thresholds,
    /// Soft eviction thresholds (same syntax as `--eviction-hard`; none by default): they set the pressure
    /// conditions at once but evict only after being crossed for their `--eviction-soft-grace-period`.
    #[arg(long, env = "SKIFF_EVICTION_SOFT", default_value = "",
          value_parser = crate::node::pressure::parse_thresholds_arg)]
    pub eviction_soft: crate::node::pressure::Thresholds,
    /// How long each soft threshold must stay crossed before a pod is evicted for it
    /// (`memory.available=1m30s,nodefs.available=2m`); every soft threshold needs one.
    #[arg(long, env = "SKIFF_EVICTION_SOFT_GRACE_PERIOD", default_value = "",
          value_parser = crate::node::pressure::soft::parse_grace_periods)]
    pub eviction_soft_grace_period: crate::node::pressure::soft::GracePeriods,
    /// Grace period (seconds) of a pod evicted for a soft threshold; 0 uses the pod's
    /// `terminationGracePeriodSeconds`, as the kubelet's `evictionMaxPodGracePeriod`.
    #[arg(long, env = "SKIFF_EVICTION_MAX_POD_GRACE_PERIOD", default_value_t = 0,
          allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32))]
    pub eviction_max_pod_grace_period: i32,
    /// Minimum reclaim per signal (`nodefs.available=500Mi,imagefs.available=2Gi`, percentages allowed; none
    /// by default): a threshold once met stays met until what is available reaches it plus this amount.
    #[arg(long, env = "SKIFF_EVICTION_MINIMUM_RECLAIM", default_value = "",
          value_parser = crate::node::pressure::min_reclaim::parse_min_reclaims)]
    pub eviction_minimum_reclaim: crate::node::pressure::min_reclaim::MinReclaims,
    /// How long a pressure condition stays True after its threshold was last crossed (`5m`, `30s`, `0s`).
    #[arg(long, env = "SKIFF_EVICTION_PRESSURE_TRANSITION_PERIOD",
          default_value = crate::node::pressure::DEFAULT_TRANSITION_PERIOD,
          value_parser = crate::node::pressure::parse_duration)]
    pub eviction_pressure_transition_period: std::time::Duration,
    /// How often the hard eviction thresholds are checked for evicting pods (the kubelet's
    /// `evictionMonitoringPeriod`; `10s`).
    #[arg(long, env = "SKIFF_EVICTION_MONITORING_PERIOD", default_value = "10s",
          value_parser = crate::node::pressure::parse_duration)]
    pub eviction_monitoring_period: std::time::Duration,
    /// Image GC: at this usage (%) of the image filesystem, unused images are deleted; 100 turns it off.
    #[arg(long, env = "SKIFF_IMAGE_GC_HIGH_THRESHOLD", default_value_t = 85,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_high_threshold: u8,
    /// Image GC deletes until usage (%) would be below this.
    #[arg(long, env = "SKIFF_IMAGE_GC_LOW_THRESHOLD", default_value_t = 80,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_low_threshold: u8,
    /// Images the agent has known for less than this are never deleted by image GC (`2m`).
    #[arg(long, env = "SKIFF_IMAGE_MINIMUM_GC_AGE", default_value = "2m",
          value_parser = crate::node::pressure::parse_duration)]
    pub image_minimum_gc_age: std::time::Duration,
    /// How often image GC looks at the image filesystem (the kubelet's fixed 5m; skiff lets tests shorten it).
    #[arg(long, env = "SKIFF_IMAGE_GC_PERIOD", default_value = "5m",
          value_parser = crate::node::pressure::parse_duration)]
    pub image_gc_period: std::time::Duration,
    /// containerd's root directory: the imagefs of the eviction signals (the agent's root dir if absent).
    #[arg(
        long,
        env = "SKIFF_CONTAINERD_ROOT",
        default_value = "/var/lib/skiff/containerd/root"
    )]
    pub containerd_root: PathBuf,
}

impl Config {
    /// `--eviction-soft` joined with `--eviction-soft-grace-period`; a soft threshold without a grace period
    /// is refused (the kubelet's check), naming the flags.
    pub fn eviction_soft_thresholds(
        &self,
    ) -> anyhow::Result<Vec<crate::node::pressure::SoftThreshold>> {
        crate::node::pressure::soft::combine(
            &self.eviction_soft.0,
            &self.eviction_soft_grace_period,
        )
        .map_err(|e| anyhow::anyhow!("invalid --eviction-soft / --eviction-soft-grace-period: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use std::ffi::OsString;
    use std::path::Path;

    use clap::{CommandFactory as _, Parser as _};

    use super::Config;
    use crate::config_file::settings_args;

    /// The required flags only.
    fn minimal_cli() -> Vec<OsString> {
        [
            "skiff-agent",
            "--kubeconfig=/k",
            "--node-name=n",
            "--registry-config=/r",
        ]
        .iter()
        .map(OsString::from)
        .collect()
    }

    #[test]
    fn the_agents_storage_dir_from_a_file() {
        let cli = minimal_cli();
        let extra = settings_args(
            &Config::command(),
            &cli,
            Path::new("/etc/skiff/agent.yaml"),
            "storage-dir: /data/storage\n",
        )
        .unwrap();
        assert_eq!(extra, [OsString::from("--storage-dir=/data/storage")]);
        if std::env::var_os("SKIFF_STORAGE_DIR").is_none() {
            let c = Config::try_parse_from(cli.iter().chain(&extra)).unwrap();
            assert_eq!(c.storage_dir, Path::new("/data/storage"));
            let c = Config::try_parse_from(&cli).unwrap();
            assert_eq!(c.storage_dir, Path::new("/var/lib/skiff/storage"));
        }
    }

    #[test]
    fn network_policy_is_on_unless_turned_off() {
        let cli = minimal_cli();
        let file = Path::new("/etc/skiff/agent.yaml");
        let extra =
            settings_args(&Config::command(), &cli, file, "network-policy: false\n").unwrap();
        assert_eq!(extra, [OsString::from("--network-policy=false")]);
        let err = settings_args(&Config::command(), &cli, file, "network-policy: maybe\n");
        assert!(err.is_err(), "{err:?}");
        if std::env::var_os("SKIFF_NETWORK_POLICY").is_none() {
            assert!(Config::try_parse_from(&cli).unwrap().network_policy);
            let c = Config::try_parse_from(cli.iter().chain(&extra)).unwrap();
            assert!(!c.network_policy);
        }
    }

    #[test]
    fn soft_eviction_flags_and_file_keys() {
        let cli = minimal_cli();
        let set = [
            "SKIFF_EVICTION_SOFT",
            "SKIFF_EVICTION_SOFT_GRACE_PERIOD",
            "SKIFF_EVICTION_MAX_POD_GRACE_PERIOD",
        ];
        if set.iter().any(|v| std::env::var_os(v).is_some()) {
            return;
        }
        let c = Config::try_parse_from(&cli).unwrap();
        assert!(c.eviction_soft.0.is_empty());
        assert_eq!(c.eviction_max_pod_grace_period, 0);
        assert!(c.eviction_soft_thresholds().unwrap().is_empty());

        let extra = settings_args(
            &Config::command(),
            &cli,
            Path::new("/etc/skiff/agent.yaml"),
            "eviction-soft: memory.available<1Gi\n\
             eviction-soft-grace-period: memory.available=1m30s\n\
             eviction-max-pod-grace-period: 20\n",
        )
        .unwrap();
        let c = Config::try_parse_from(cli.iter().chain(&extra)).unwrap();
        let soft = c.eviction_soft_thresholds().unwrap();
        assert_eq!(soft.len(), 1);
        assert_eq!(soft[0].grace, std::time::Duration::from_secs(90));
        assert_eq!(c.eviction_max_pod_grace_period, 20);

        // A soft threshold without its grace period: refused at start with the kubelet's message.
        let c = Config::try_parse_from(cli.iter().chain(&[OsString::from(
            "--eviction-soft=memory.available<1Gi,nodefs.available<10%",
        )]))
        .unwrap();
        let err = c.eviction_soft_thresholds().unwrap_err().to_string();
        assert!(
            err.contains("--eviction-soft")
                && err.contains(
                    "grace period must be specified for the soft eviction threshold memory.available"
                ),
            "{err}"
        );
        // Bad values: clap names the flag.
        for bad in [
            "--eviction-soft=memory.available>1Gi",
            "--eviction-soft-grace-period=memory.available=soon",
            "--eviction-max-pod-grace-period=ten",
        ] {
            let err = Config::try_parse_from(cli.iter().chain(&[OsString::from(bad)]))
                .unwrap_err()
                .to_string();
            let flag = bad.split('=').next().unwrap_or_default();
            assert!(err.contains(flag), "{bad}: {err}");
        }
        let c = Config::try_parse_from(
            cli.iter()
                .chain(&[OsString::from("--eviction-max-pod-grace-period=-1")]),
        )
        .unwrap();
        assert_eq!(c.eviction_max_pod_grace_period, -1);
    }

    #[test]
    fn eviction_minimum_reclaim_flag_and_file_key() {
        use crate::node::pressure::{Signal, Value};
        if std::env::var_os("SKIFF_EVICTION_MINIMUM_RECLAIM").is_some() {
            return;
        }
        let cli = minimal_cli();
        assert!(
            Config::try_parse_from(&cli)
                .unwrap()
                .eviction_minimum_reclaim
                .0
                .is_empty(),
            "none by default"
        );
        let extra = settings_args(
            &Config::command(),
            &cli,
            Path::new("/etc/skiff/agent.yaml"),
            "eviction-minimum-reclaim: nodefs.available=500Mi,imagefs.available=2%\n",
        )
        .unwrap();
        let c = Config::try_parse_from(cli.iter().chain(&extra)).unwrap();
        assert_eq!(
            c.eviction_minimum_reclaim.0,
            [
                (Signal::NodefsAvailable, Value::Amount(500 << 20)),
                (Signal::ImagefsAvailable, Value::Percent(2.0))
            ]
        );
        for bad in [
            "--eviction-minimum-reclaim=nodefs.available<500Mi",
            "--eviction-minimum-reclaim=nodefs.available=-1Gi",
        ] {
            let err = Config::try_parse_from(cli.iter().chain(&[OsString::from(bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("--eviction-minimum-reclaim"), "{bad}: {err}");
        }
        let err = settings_args(
            &Config::command(),
            &cli,
            Path::new("/etc/skiff/agent.yaml"),
            "eviction-minimum-reclaim: nodefs.available=lots\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("eviction-minimum-reclaim"), "{err}");
    }
}
