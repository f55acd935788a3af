//! skiff-apiserver command line: `serve` (the default) and `kubeconfig`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

// The one implementation of config files, shared with skiff-agent (a crate for ~200 lines would cost more).
#[path = "../../agent/src/config_file.rs"]
mod config_file;

/// Read by `serve` when it exists and neither `--config` nor `SKIFF_CONFIG` names another file.
const DEFAULT_CONFIG: &str = "/etc/skiff/apiserver.yaml";

#[derive(Parser, Debug)]
#[command(
    name = "skiff-apiserver",
    version,
    about = "skiff's lite Kubernetes-compatible API server"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API (the default).
    Serve(ServeArgs),
    /// Sign a client certificate with the cluster CA and write a kubeconfig (the server need not run).
    Kubeconfig(KubeconfigArgs),
    /// Bootstrap tokens for joining nodes (through the running server's API).
    Token(TokenArgs),
}

#[derive(Args, Debug, Clone)]
struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
    /// Admin kubeconfig (default: `<data-dir>/admin.kubeconfig`).
    #[arg(long, env = "SKIFF_ADMIN_KUBECONFIG", global = true)]
    kubeconfig: Option<PathBuf>,
    #[arg(
        long,
        env = "SKIFF_DATA_DIR",
        default_value = "/var/lib/skiff/apiserver",
        global = true
    )]
    data_dir: PathBuf,
}

#[derive(Subcommand, Debug, Clone)]
enum TokenCommand {
    /// Create a token and print the join token `K10<CA sha256>::<id>.<secret>`.
    Create {
        /// Lifetime (`24h`, `30m`, `0` = never expires).
        #[arg(long, default_value = "24h", value_parser = skiff_apiserver::token_cmd::parse_ttl)]
        ttl: std::time::Duration,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the bootstrap tokens.
    List,
    /// Delete (revoke) a token by id.
    Delete { id: String },
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// YAML settings file: long flag names as keys (`secure-port: 6443`); flags and env variables win
    /// over it (default: /etc/skiff/apiserver.yaml when it exists).
    #[arg(long, env = "SKIFF_CONFIG")]
    config: Option<PathBuf>,
    /// State directory: store, PKI, admin kubeconfig.
    #[arg(
        long,
        env = "SKIFF_DATA_DIR",
        default_value = "/var/lib/skiff/apiserver"
    )]
    data_dir: PathBuf,
    #[arg(long, env = "SKIFF_BIND_ADDRESS", default_value = "0.0.0.0")]
    bind_address: IpAddr,
    #[arg(long, env = "SKIFF_SECURE_PORT", default_value_t = 6443)]
    secure_port: u16,
    /// The address written into the admin kubeconfig and the serving certificate.
    #[arg(long, env = "SKIFF_ADVERTISE_ADDRESS", default_value = "127.0.0.1")]
    advertise_address: IpAddr,
    #[arg(long, env = "SKIFF_CLUSTER_CIDR", default_value = "10.244.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    #[arg(long, env = "SKIFF_NODE_CIDR_MASK_SIZE", default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// The range Service cluster IPs are allocated from.
    #[arg(
        long,
        env = "SKIFF_SERVICE_CLUSTER_IP_RANGE",
        default_value = "10.96.0.0/12"
    )]
    service_cluster_ip_range: ipnet::Ipv4Net,
    /// The cluster DNS Service `kube-system/kube-dns` (no endpoints: the agents answer on its address): an
    /// IPv4 address in the service range, or `none` for no such Service [default: the range's 10th address,
    /// 10.96.0.10].
    #[arg(long, env = "SKIFF_CLUSTER_DNS", value_parser = parse_cluster_dns)]
    cluster_dns: Option<ClusterDns>,
    /// Where NodePort and LoadBalancer Services get their node ports (kube-apiserver's flag): `FIRST-LAST`,
    /// `FIRST+COUNT` or one port.
    #[arg(
        long,
        env = "SKIFF_SERVICE_NODE_PORT_RANGE",
        default_value = "30000-32767"
    )]
    service_node_port_range: skiff_apiserver::node_ports::PortRange,
    /// Static tokens, kube-apiserver CSV format: token,user,uid,"group1,group2".
    #[arg(long, env = "SKIFF_TOKEN_AUTH_FILE")]
    token_auth_file: Option<PathBuf>,
    /// Where objects live: the embedded store in the data directory, or an etcd v3 cluster.
    #[arg(long, env = "SKIFF_STORAGE", value_enum, default_value_t = Storage::Embedded)]
    storage: Storage,
    /// etcd client URLs for `--storage etcd` (comma-separated), as kube-apiserver's flag.
    #[arg(
        long,
        env = "SKIFF_ETCD_SERVERS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    etcd_servers: Vec<String>,
    /// The key prefix in etcd; keys are `<prefix>/registry/<resource>/…` (kube-apiserver's layout without one).
    #[arg(long, env = "SKIFF_ETCD_PREFIX", default_value = "")]
    etcd_prefix: String,
    /// How often etcd history is compacted (kube-apiserver's flag): `300`, `300s` or `5m`; 0 disables.
    #[arg(long, env = "SKIFF_ETCD_COMPACTION_INTERVAL", default_value = "5m", value_parser = parse_interval)]
    etcd_compaction_interval: std::time::Duration,
    /// The Job controller's first delay before replacing a failed pod (doubling per failure, at most
    /// 10m): `10s`, `500ms`, `1m`; kube-controller-manager's fixed 10s by default.
    #[arg(long, env = "SKIFF_JOB_POD_FAILURE_BACKOFF", default_value = "10s", value_parser = skiff_apiserver::controllers::parse_job_backoff)]
    job_pod_failure_backoff: std::time::Duration,
    /// Create the default StorageClass `local-path` (provisioner `skiff.io/local-path`) at start when it
    /// does not exist; `false` leaves StorageClasses to the admin.
    #[arg(long, env = "SKIFF_DEFAULT_STORAGE_CLASS", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    default_storage_class: bool,
    /// The directory local-path volumes are created under on every node (`<root>/pvc-<uid>_<ns>_<claim>`);
    /// absolute, and the same as the agents' `--storage-dir`.
    #[arg(long, env = "SKIFF_LOCAL_PATH_ROOT", default_value = skiff_apiserver::controllers::DEFAULT_LOCAL_PATH_ROOT,
          value_parser = parse_absolute_path)]
    local_path_root: PathBuf,
    /// How often every Ready node's `/metrics/resource` is scraped for `metrics.k8s.io` (a Go duration;
    /// metrics-server's rules: at least 10s, and nine tenths of it at least the 10s per-node timeout).
    #[arg(long, env = "SKIFF_METRIC_RESOLUTION", default_value = "15s", value_parser = parse_metric_resolution)]
    metric_resolution: std::time::Duration,
    /// Do not run ServiceLB: LoadBalancer Services then get no ingress from the nodes and stay `<pending>`
    /// (k3s's flag).
    #[arg(long, env = "SKIFF_DISABLE_SERVICELB")]
    disable_servicelb: bool,
}

fn parse_metric_resolution(text: &str) -> Result<std::time::Duration, String> {
    let d = skiff_apiserver::metrics::format::parse_go_duration(text)?;
    skiff_apiserver::metrics::validate_resolution(d)?;
    Ok(d)
}

fn parse_absolute_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!("{text:?}: must be an absolute path"))
    }
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match text.strip_suffix('m') {
        Some(n) => (n, 60),
        None => (text.strip_suffix('s').unwrap_or(text), 1),
    };
    number
        .parse::<u64>()
        .map(|n| std::time::Duration::from_secs(n * unit))
        .map_err(|_| format!("{text:?}: expected seconds (300, 300s) or minutes (5m)"))
}

/// `--cluster-dns`.
#[derive(Debug, Clone, Copy)]
enum ClusterDns {
    Off,
    At(Ipv4Addr),
}

fn parse_cluster_dns(text: &str) -> Result<ClusterDns, String> {
    if text == "none" {
        return Ok(ClusterDns::Off);
    }
    text.parse()
        .map(ClusterDns::At)
        .map_err(|_| format!("{text:?}: expected an IPv4 address or `none`"))
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// redb in `<data-dir>/store.redb`.
    Embedded,
    /// An etcd v3 cluster at `--etcd-servers`.
    Etcd,
}

#[derive(Args, Debug, Clone)]
struct KubeconfigArgs {
    #[arg(
        long,
        env = "SKIFF_DATA_DIR",
        default_value = "/var/lib/skiff/apiserver"
    )]
    data_dir: PathBuf,
    /// The user name (certificate CN).
    #[arg(long, env = "SKIFF_KUBECONFIG_USER")]
    user: String,
    /// Groups (certificate O); repeat for several.
    #[arg(long = "group", env = "SKIFF_KUBECONFIG_GROUPS", value_delimiter = ',')]
    groups: Vec<String>,
    /// The server URL written into the kubeconfig.
    #[arg(
        long,
        env = "SKIFF_KUBECONFIG_SERVER",
        default_value = "https://127.0.0.1:6443"
    )]
    server: String,
    #[arg(long, env = "SKIFF_KUBECONFIG_OUT")]
    out: PathBuf,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let cli = Cli::parse_from(with_config_file(std::env::args_os().collect())?);
    match cli.command {
        Some(Command::Kubeconfig(k)) => {
            let pki = skiff_apiserver::pki::Pki::load_or_create(&k.data_dir)?;
            pki.write_kubeconfig(&k.out, &k.server, &k.user, &k.groups)?;
            Ok(())
        }
        Some(Command::Token(t)) => token(t),
        Some(Command::Serve(s)) => serve(s),
        None => serve(cli.serve),
    }
}

/// `serve` (explicit or the default) takes settings from the config file; other subcommands do not.
fn with_config_file(args: Vec<std::ffi::OsString>) -> Result<Vec<std::ffi::OsString>> {
    let first = args.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    if matches!(first, "kubeconfig" | "token" | "help") {
        return Ok(args);
    }
    let cli = <Cli as clap::CommandFactory>::command();
    let serve = cli
        .find_subcommand("serve")
        .context("the serve subcommand is missing")?;
    Ok(config_file::merge_args(
        serve,
        args,
        std::path::Path::new(DEFAULT_CONFIG),
    )?)
}

fn token(t: TokenArgs) -> Result<()> {
    use skiff_apiserver::token_cmd;
    let kc = t
        .kubeconfig
        .unwrap_or_else(|| t.data_dir.join("admin.kubeconfig"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let c = token_cmd::AdminClient::from_kubeconfig(&kc)?;
        match t.command {
            TokenCommand::Create { ttl, description } => {
                println!("{}", token_cmd::create(&c, ttl, &description).await?);
            }
            TokenCommand::List => {
                println!("{:<8}{:<12}{:<23}DESCRIPTION", "ID", "TTL", "EXPIRES");
                for [id, ttl, exp, desc] in token_cmd::list(&c).await? {
                    println!("{id:<8}{ttl:<12}{exp:<23}{desc}");
                }
            }
            TokenCommand::Delete { id } => {
                token_cmd::delete(&c, &id).await?;
                println!("bootstrap token {id:?} deleted");
            }
        }
        Ok(())
    })
}

fn serve(s: ServeArgs) -> Result<()> {
    let cfg = skiff_apiserver::ServeConfig {
        data_dir: s.data_dir.clone(),
        bind_address: s.bind_address,
        secure_port: s.secure_port,
        advertise_address: s.advertise_address,
        cluster_cidr: s.cluster_cidr,
        node_cidr_mask: s.node_cidr_mask_size,
        service_cidr: s.service_cluster_ip_range,
        cluster_dns: match s.cluster_dns {
            None => Some(skiff_apiserver::service_ips::dns_ip(
                s.service_cluster_ip_range,
            )),
            Some(ClusterDns::Off) => None,
            Some(ClusterDns::At(ip)) => Some(ip),
        },
        token_auth_file: s.token_auth_file.clone(),
    };
    let opts = skiff_apiserver::ServeOptions {
        service_node_port_range: s.service_node_port_range,
        default_storage_class: s.default_storage_class,
        local_path_root: s.local_path_root.clone(),
        metric_resolution: s.metric_resolution,
        disable_servicelb: s.disable_servicelb,
        ..Default::default()
    };
    skiff_apiserver::controllers::set_job_pod_failure_backoff(s.job_pod_failure_backoff);
    // Before anything is written or connected to.
    cfg.validate()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match s.storage {
        Storage::Embedded => rt.block_on(skiff_apiserver::run_with(cfg, opts)),
        Storage::Etcd => rt.block_on(async {
            let store =
                skiff_apiserver::store::etcd::EtcdStore::connect(&s.etcd_servers, &s.etcd_prefix)
                    .await
                    .with_context(|| {
                        format!("connecting to etcd at {}", s.etcd_servers.join(","))
                    })?;
            let store = std::sync::Arc::new(store);
            if !s.etcd_compaction_interval.is_zero() {
                skiff_apiserver::store::etcd::EtcdStore::spawn_compactor(
                    store.clone(),
                    s.etcd_compaction_interval,
                );
            }
            skiff_apiserver::run_with_store(cfg, opts, store).await
        }),
    }
}
