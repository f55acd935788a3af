//! Settings from a YAML file, k3s-style: a mapping whose keys are long flag names.
//!
//! Used by skiff-agent and `skiff-apiserver serve` (the apiserver includes this very file with
//! `#[path]`, so there is one implementation without a shared crate). Precedence: command-line flag >
//! environment variable > file > default. The file's settings are checked with clap's own value parsers
//! and appended to the command line as `--key=value`, so clap does the rest of the work.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};
use serde_json::Value;

/// The env variable that names the config file (the `--config` flag's).
pub const CONFIG_ENV: &str = "SKIFF_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: malformed YAML: {1}")]
    Yaml(PathBuf, String),
    #[error("{0}: expected a mapping of settings (`node-name: vm`), found {1}")]
    NotMapping(PathBuf, &'static str),
    #[error("{0}: unknown setting `{1}`")]
    Unknown(PathBuf, String),
    #[error("{0}: `{1}`: {2}")]
    Value(PathBuf, String, String),
}

/// The config file this command line asks for: `--config FILE`, else `$SKIFF_CONFIG`, else `default`
/// when it exists. `Ok(None)`: no file. An explicitly named file must exist (reading it reports that).
/// `--help` and `--version` read no file: they work whatever state it is in.
pub fn config_path(args: &[OsString], default: &Path) -> Option<PathBuf> {
    let info = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .take_while(|a| *a != "--")
        .any(|a| matches!(a, "-h" | "--help" | "-V" | "--version"));
    if info {
        return None;
    }
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let Some(a) = a.to_str() else { continue };
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    default.exists().then(|| default.to_path_buf())
}

/// `args` (argv, program name first) with the settings of the config file (see [`config_path`]) that
/// neither the command line nor the environment sets appended as `--key=value`.
pub fn merge_args(
    cmd: &Command,
    args: Vec<OsString>,
    default: &Path,
) -> Result<Vec<OsString>, ConfigFileError> {
    let Some(path) = config_path(&args, default) else {
        return Ok(args);
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| ConfigFileError::Read(path.clone(), e))?;
    let extra = settings_args(cmd, &args, &path, &text)?;
    let mut args = args;
    match args.iter().position(|a| a == "--") {
        Some(i) => {
            args.splice(i..i, extra);
        }
        None => args.extend(extra),
    }
    Ok(args)
}

/// The `--key=value` arguments for the settings in `text` (the content of `path`).
pub fn settings_args(
    cmd: &Command,
    args: &[OsString],
    path: &Path,
    text: &str,
) -> Result<Vec<OsString>, ConfigFileError> {
    let value: Value = if text.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let text = e.to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text).to_string();
            ConfigFileError::Yaml(path.to_path_buf(), text)
        })?
    };
    let map = match value {
        Value::Object(m) => m,
        Value::Null => Default::default(),
        other => {
            return Err(ConfigFileError::NotMapping(
                path.to_path_buf(),
                kind(&other),
            ));
        }
    };
    let bad = |key: &str, msg: String| ConfigFileError::Value(path.to_path_buf(), key.into(), msg);
    let mut out = Vec::new();
    for (key, value) in map {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && is_setting(a))
            .ok_or_else(|| ConfigFileError::Unknown(path.to_path_buf(), key.clone()))?;
        let values = scalars(&value).map_err(|m| bad(&key, m))?;
        if let ArgAction::SetTrue | ArgAction::SetFalse = arg.get_action() {
            let on = match values.as_slice() {
                [v] if v == "true" => true,
                [v] if v == "false" => false,
                _ => return Err(bad(&key, "expected true or false".into())),
            };
            if on_command_line(args, &key) || env_set(arg) {
                continue;
            }
            let default_on = matches!(arg.get_action(), ArgAction::SetFalse);
            if on != default_on {
                out.push(OsString::from(format!("--{key}")));
            }
            continue;
        }
        let many = matches!(arg.get_action(), ArgAction::Append);
        if values.len() != 1 && !many {
            return Err(bad(&key, "expected a single value, not a list".into()));
        }
        for v in &values {
            let parts: Vec<&str> = match arg.get_value_delimiter() {
                Some(d) => v.split(d).collect(),
                None => vec![v.as_str()],
            };
            for p in parts {
                check_value(arg, p).map_err(|m| bad(&key, m))?;
            }
        }
        if on_command_line(args, &key) || env_set(arg) {
            continue;
        }
        out.extend(
            values
                .into_iter()
                .map(|v| OsString::from(format!("--{key}={v}"))),
        );
    }
    Ok(out)
}

/// Flags a config file may set: not `--config` itself, not help/version.
fn is_setting(arg: &Arg) -> bool {
    arg.get_id() != "config"
        && !matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A setting's value(s) as the strings a command line would carry.
fn scalars(v: &Value) -> Result<Vec<String>, String> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("expected a value, found {}", kind(other))),
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// Run clap's own value parser for `arg` on `value`; the error text without clap's decoration.
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    // A one-flag command with the same parser: no env, no `requires`, nothing else to trip over.
    let probe = Arg::new(arg.get_id().clone())
        .long("value")
        .value_parser(arg.get_value_parser().clone())
        .action(ArgAction::Set);
    let probe_cmd = Command::new("config-file").no_binary_name(true).arg(probe);
    let mut flag = OsString::from("--value=");
    flag.push(OsStr::new(value));
    let Err(e) = probe_cmd.try_get_matches_from([flag]) else {
        return Ok(());
    };
    let detail = std::error::Error::source(&e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // "invalid value 'x' for '--flag <FLAG>'" → keep what follows the flag, if anything.
            match first.split_once(">'") {
                Some((_, rest)) => rest.trim_start_matches(':').trim().to_string(),
                None => first.to_string(),
            }
        });
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|p| p.get_name().to_string())
        .collect();
    let detail = if detail.is_empty() && !possible.is_empty() {
        format!("expected one of {}", possible.join(", "))
    } else {
        detail
    };
    Err(format!("invalid value '{value}': {detail}"))
}

/// Whether the command line (before `--`) carries `--key` or `--key=…`.
fn on_command_line(args: &[OsString], key: &str) -> bool {
    let flag = format!("--{key}");
    let with_value = format!("--{key}=");
    args.iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .take_while(|a| *a != "--")
        .any(|a| a == flag || a.starts_with(&with_value))
}

fn env_set(arg: &Arg) -> bool {
    arg.get_env()
        .and_then(std::env::var_os)
        .is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;
