//! The skiff-cni plugin: a Linux bridge, one veth pair per attachment, built-in host-local-style
//! IPAM, masquerade through nftables. [`run`] is the whole plugin; `main.rs` only does the I/O.

mod add;
mod check;
mod check_fw;
pub mod conf;
pub mod del;
pub mod delegate;
pub mod firewall;
mod gc;
pub mod hostports;
pub mod ipam;
pub mod ipam_conf;
mod iptables;
pub mod link;
pub mod netlink;
pub mod netns;
pub mod nftnl;
mod status;
pub mod sysctl;

use serde_json::Value;

use crate::spec::{Command, Env, Error, ErrorCode, Version, VersionInfo, version};
use conf::NetConf;

/// What the plugin prints: the JSON for stdout (result, version info, or nothing) or an error, and
/// the spec version that output is in.
pub struct Outcome {
    pub cni_version: String,
    pub output: Result<Option<Value>, Error>,
}

/// Log to stderr; stdout belongs to the protocol.
pub fn log(msg: impl std::fmt::Display) {
    eprintln!("skiff-cni: {msg}");
}

/// Run one plugin invocation.
pub fn run(env: Result<Env, Error>, stdin: &[u8]) -> Outcome {
    // The version to answer in: the config's if it has a readable one.
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty());
    let cni_version = asked
        .clone()
        .unwrap_or_else(|| version::CURRENT.to_string());
    let output = env.and_then(|env| dispatch(&env, stdin, asked.as_deref()));
    Outcome {
        cni_version,
        output,
    }
}

fn dispatch(env: &Env, stdin: &[u8], asked: Option<&str>) -> Result<Option<Value>, Error> {
    if env.command == Command::Version {
        return serde_json::to_value(VersionInfo::ours(asked))
            .map(Some)
            .map_err(|e| Error::new(ErrorCode::INTERNAL, e.to_string()));
    }
    let conf = NetConf::parse(stdin)?;
    let v = Version::parse_supported(&conf.cni_version)?;
    let need = |min: Version| -> Result<(), Error> {
        if v < min {
            return Err(Error::new(
                ErrorCode::INCOMPATIBLE_VERSION,
                format!("config version {v} does not allow {}", env.command),
            ));
        }
        Ok(())
    };
    match env.command {
        Command::Add => add::add(env, &conf, stdin)
            .and_then(|r| r.to_json(v))
            .map(Some),
        Command::Del => del::del(env, &conf, stdin).map(|()| None),
        Command::Check => {
            need(Version::CHECK)?;
            check::check(env, &conf, stdin).map(|()| None)
        }
        Command::Status => {
            need(Version::V1_1)?;
            status::status(env, &conf, stdin).map(|()| None)
        }
        Command::Gc => {
            need(Version::V1_1)?;
            gc::gc(env, &conf, stdin).map(|()| None)
        }
        Command::Version => Ok(None),
    }
}

/// The (container id, ifname) of a per-attachment command; the environment was validated already.
fn attachment(env: &Env) -> Result<(&str, &str), Error> {
    match (env.container_id.as_deref(), env.ifname.as_deref()) {
        (Some(id), Some(ifname)) => Ok((id, ifname)),
        _ => Err(Error::env("CNI_CONTAINERID and CNI_IFNAME are required")),
    }
}
