//! skiff-apiserver command line: `serve` (the default) and `kubeconfig`.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

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
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
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
    /// Static tokens, kube-apiserver CSV format: token,user,uid,"group1,group2".
    #[arg(long, env = "SKIFF_TOKEN_AUTH_FILE")]
    token_auth_file: Option<PathBuf>,
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
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Kubeconfig(k)) => {
            let pki = skiff_apiserver::pki::Pki::load_or_create(&k.data_dir)?;
            pki.write_kubeconfig(&k.out, &k.server, &k.user, &k.groups)?;
            Ok(())
        }
        Some(Command::Serve(s)) => serve(s),
        None => serve(cli.serve),
    }
}

fn serve(s: ServeArgs) -> Result<()> {
    let cfg = skiff_apiserver::ServeConfig {
        data_dir: s.data_dir,
        bind_address: s.bind_address,
        secure_port: s.secure_port,
        advertise_address: s.advertise_address,
        cluster_cidr: s.cluster_cidr,
        node_cidr_mask: s.node_cidr_mask_size,
        service_cidr: s.service_cluster_ip_range,
        token_auth_file: s.token_auth_file,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(skiff_apiserver::run(cfg))
}
