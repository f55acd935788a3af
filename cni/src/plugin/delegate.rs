//! Delegated IPAM (spec §4): an `ipam.type` other than `host-local` is run as a plugin found on
//! `CNI_PATH`, with the same environment and the whole network configuration on stdin.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};

use crate::spec::env::format_args;
use crate::spec::{CniResult, Command, Env, Error, ErrorCode, ErrorResult};

fn exec_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::PLUGIN_EXEC, msg)
}

/// The first executable `<dir>/<plugin>` on CNI_PATH.
fn find(env: &Env, plugin: &str) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    env.path
        .iter()
        .map(|d| d.join(plugin))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            exec_err(format!(
                "IPAM plugin {plugin:?} not found in CNI_PATH {:?}",
                env.path
            ))
        })
}

/// Run the IPAM plugin with `command`; its stdout on success, its CNI error otherwise.
pub fn run(plugin: &str, command: Command, env: &Env, stdin: &[u8]) -> Result<Vec<u8>, Error> {
    let path = find(env, plugin)?;
    let mut cmd = Process::new(&path);
    for k in [
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("CNI_COMMAND", command.as_str());
    let path_var = env
        .path
        .iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":");
    cmd.env("CNI_PATH", path_var);
    if let Some(id) = &env.container_id {
        cmd.env("CNI_CONTAINERID", id);
    }
    if let Some(ns) = &env.netns {
        cmd.env("CNI_NETNS", ns);
    }
    if let Some(ifname) = &env.ifname {
        cmd.env("CNI_IFNAME", ifname);
    }
    if !env.args.is_empty() {
        cmd.env("CNI_ARGS", format_args(&env.args));
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| exec_err(format!("failed to run IPAM plugin {}: {e}", path.display())))?;
    if let Some(mut pipe) = child.stdin.take() {
        // A plugin may exit without reading; its exit status tells what happened.
        let _ = pipe.write_all(stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| exec_err(format!("failed to wait for IPAM plugin {plugin}: {e}")))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(match serde_json::from_slice::<ErrorResult>(&out.stdout) {
        Ok(e) => {
            let e = Error::from(e);
            Error::new(e.code, format!("IPAM plugin {plugin}: {}", e.msg)).with_details(e.details)
        }
        Err(_) => exec_err(format!(
            "IPAM plugin {plugin} exited with {} without a CNI error",
            out.status
        ))
        .with_details(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    })
}

/// IPAM ADD: the plugin's result.
pub fn add(plugin: &str, env: &Env, stdin: &[u8]) -> Result<CniResult, Error> {
    let out = run(plugin, Command::Add, env, stdin)?;
    CniResult::parse(&out).map_err(|e| {
        Error::new(
            e.code,
            format!("IPAM plugin {plugin} returned a bad result: {}", e.msg),
        )
        .with_details(e.details)
    })
}
