//! `skiff-agent`: read the config file, parse flags, set up logging, run the agent.

use clap::{CommandFactory as _, Parser as _};
use tracing_subscriber::EnvFilter;

/// Read when it exists and neither `--config` nor `SKIFF_CONFIG` names another file.
const DEFAULT_CONFIG: &str = "/etc/skiff/agent.yaml";

fn main() -> anyhow::Result<()> {
    // Before any thread exists, so no per-thread malloc arena is ever created.
    skiff_agent::memory::one_arena();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(agent_main())
}

async fn agent_main() -> anyhow::Result<()> {
    let args = skiff_agent::config_file::merge_args(
        &skiff_agent::Config::command(),
        std::env::args_os().collect(),
        std::path::Path::new(DEFAULT_CONFIG),
    )?;
    let config = skiff_agent::Config::parse_from(args);
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    skiff_agent::run(config).await
}
