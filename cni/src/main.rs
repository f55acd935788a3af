//! The `skiff-cni` binary: CNI environment and stdin in, result or error JSON out on stdout, logs
//! on stderr. Exit status 0 on success, 1 on error.

use std::io::{Read, Write};
use std::process::ExitCode;

use skiff_cni::plugin;
use skiff_cni::spec::{Env, Error, ErrorCode};

/// A network config is small; refuse to buffer unbounded input.
const MAX_STDIN: u64 = 4 << 20;

fn main() -> ExitCode {
    // The detached helper of DEL (plugin::del): delete one renamed link, silently.
    if let (Some(ns), Some(ifname)) = (
        std::env::var_os(plugin::del::REAP_NETNS),
        std::env::var(plugin::del::REAP_IFNAME).ok(),
    ) {
        return match plugin::del::reap(std::path::Path::new(&ns), &ifname) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let env = Env::from_process();
    let mut stdin = Vec::new();
    let read = std::io::stdin().take(MAX_STDIN).read_to_end(&mut stdin);
    let outcome = match read {
        Ok(_) => plugin::run(env, &stdin),
        Err(e) => plugin::Outcome {
            cni_version: skiff_cni::spec::version::CURRENT.to_string(),
            output: Err(Error::io("failed to read stdin", &e)),
        },
    };
    let (json, code) = match outcome.output {
        Ok(Some(v)) => (Some(v), ExitCode::SUCCESS),
        Ok(None) => (None, ExitCode::SUCCESS),
        Err(e) => {
            plugin::log(&e);
            let wire = serde_json::to_value(e.to_wire(&outcome.cni_version)).unwrap_or_else(|_| {
                serde_json::json!({"code": ErrorCode::INTERNAL.0, "msg": "failed to encode error"})
            });
            (Some(wire), ExitCode::FAILURE)
        }
    };
    if let Some(v) = json {
        let mut out = std::io::stdout().lock();
        let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
        bytes.push(b'\n');
        if out.write_all(&bytes).and_then(|()| out.flush()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    code
}
