//! Running one plugin binary: environment, stdin, timeout, and turning its stdout into a result or
//! a [`CniError`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use skiff_cni::spec::{Command, ErrorCode, ErrorResult, VersionInfo, env::format_args};
use tokio::io::AsyncWriteExt;

use super::{Attachment, CniError};

/// The first executable `<dir>/<name>` in `dirs`.
pub fn find_plugin(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.contains('/') {
        return None;
    }
    dirs.iter().map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

pub struct Invocation<'a> {
    pub plugin: &'a Path,
    pub command: Command,
    pub attachment: &'a Attachment,
    pub bin_dirs: &'a [PathBuf],
    pub stdin: &'a Value,
    pub timeout: Duration,
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Run the plugin; Ok(stdout) on exit 0.
pub async fn run(inv: &Invocation<'_>) -> Result<Vec<u8>, CniError> {
    let plugin = name_of(inv.plugin);
    let command = inv.command.to_string();
    let cni_path = inv
        .bin_dirs
        .iter()
        .map(|d| d.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":");
    let mut cmd = tokio::process::Command::new(inv.plugin);
    cmd.env("CNI_COMMAND", &command)
        .env("CNI_PATH", cni_path)
        .env_remove("CNI_CONTAINERID")
        .env_remove("CNI_NETNS")
        .env_remove("CNI_IFNAME")
        .env_remove("CNI_ARGS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if matches!(inv.command, Command::Add | Command::Del | Command::Check) {
        let a = inv.attachment;
        cmd.env("CNI_CONTAINERID", &a.container_id)
            .env("CNI_NETNS", &a.netns)
            .env("CNI_IFNAME", &a.ifname)
            .env("CNI_ARGS", format_args(&effective_args(&a.args)));
    }
    let input = serde_json::to_vec(inv.stdin)
        .map_err(|e| CniError::io("failed to encode plugin config", std::io::Error::other(e)))?;
    let mut child = cmd.spawn().map_err(|e| {
        CniError::io(
            format!("failed to start CNI plugin {}", inv.plugin.display()),
            e,
        )
    })?;
    if let Some(mut pipe) = child.stdin.take() {
        // A plugin may exit without reading its input; its exit status tells what happened.
        let _ = pipe.write_all(&input).await;
    }
    let output = match tokio::time::timeout(inv.timeout, child.wait_with_output()).await {
        Ok(r) => {
            r.map_err(|e| CniError::io(format!("failed to wait for CNI plugin {plugin}"), e))?
        }
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => {
            return Err(CniError::Timeout {
                plugin,
                command,
                timeout: inv.timeout,
            });
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.trim().is_empty() {
        tracing::debug!(plugin = %plugin, command = %command, stderr = %stderr.trim(), "CNI plugin stderr");
    }
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(
        match serde_json::from_slice::<ErrorResult>(&output.stdout) {
            Ok(e) => CniError::Plugin {
                plugin,
                command,
                code: e.code.0,
                msg: e.msg,
                details: e.details,
            },
            Err(_) => CniError::Plugin {
                plugin,
                command,
                code: ErrorCode::PLUGIN_EXEC.0,
                msg: format!("exited with {} without a CNI error", output.status),
                details: stderr
                    .chars()
                    .take(2000)
                    .collect::<String>()
                    .trim()
                    .to_string(),
            },
        },
    )
}

/// CNI_ARGS as containerd's CRI sends them: `IgnoreUnknown=1` first, so that plugins which do not
/// know the K8S_POD_* keys (the reference bridge rejects unknown args) accept them.
pub fn effective_args(args: &[(String, String)]) -> Vec<(String, String)> {
    if args.is_empty() || args.iter().any(|(k, _)| k == "IgnoreUnknown") {
        return args.to_vec();
    }
    std::iter::once(("IgnoreUnknown".to_string(), "1".to_string()))
        .chain(args.iter().cloned())
        .collect()
}

/// Ask a plugin which spec versions it supports.
pub async fn version(plugin: &Path, timeout: Duration) -> Result<VersionInfo, CniError> {
    let att = Attachment::default();
    let stdin = serde_json::json!({"cniVersion": skiff_cni::spec::version::CURRENT});
    let out = run(&Invocation {
        plugin,
        command: Command::Version,
        attachment: &att,
        bin_dirs: &[],
        stdin: &stdin,
        timeout,
    })
    .await?;
    serde_json::from_slice(&out).map_err(|e| CniError::BadResult {
        plugin: name_of(plugin),
        command: "VERSION".into(),
        source: skiff_cni::spec::Error::new(ErrorCode::DECODING_FAILURE, e.to_string()),
    })
}
