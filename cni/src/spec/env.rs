//! The runtime → plugin environment (`CNI_COMMAND`, `CNI_CONTAINERID`, …) and its validation.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::error::Error;

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            other => return Err(Error::env(format!("unknown CNI_COMMAND {other:?}"))),
        })
    }
}

/// The validated plugin environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container_id: Option<String>,
    pub netns: Option<PathBuf>,
    pub ifname: Option<String>,
    pub args: Vec<(String, String)>,
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Read from the process environment.
    pub fn from_process() -> Result<Env, Error> {
        Env::from_lookup(|k| std::env::var(k).ok())
    }

    /// Read through any lookup (tests, the runtime). Required variables depend on the command
    /// (§2): ADD/CHECK need CONTAINERID, NETNS and IFNAME; DEL needs CONTAINERID and IFNAME (NETNS is
    /// optional); STATUS, GC and VERSION need only the command.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Env, Error> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let command: Command = get("CNI_COMMAND")
            .ok_or_else(|| Error::env("required env variable CNI_COMMAND is missing"))?
            .parse()?;
        let needs = |k: &str, required: bool| -> Result<Option<String>, Error> {
            match get(k) {
                Some(v) => Ok(Some(v)),
                None if required => Err(Error::env(format!(
                    "required env variable {k} is missing for {command}"
                ))),
                None => Ok(None),
            }
        };
        let per_attachment = matches!(command, Command::Add | Command::Check | Command::Del);
        let container_id = needs("CNI_CONTAINERID", per_attachment)?;
        let netns = needs(
            "CNI_NETNS",
            matches!(command, Command::Add | Command::Check),
        )?;
        let ifname = needs("CNI_IFNAME", per_attachment)?;
        if let Some(id) = &container_id {
            validate_container_id(id)?;
        }
        if let Some(name) = &ifname {
            validate_ifname(name).map_err(|e| Error::env(format!("CNI_IFNAME: {e}")))?;
        }
        let args = match get("CNI_ARGS") {
            Some(a) => parse_args(&a)?,
            None => Vec::new(),
        };
        let path = get("CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Env {
            command,
            container_id,
            netns: netns.map(PathBuf::from),
            ifname,
            args,
            path,
        })
    }

    /// Value of a `CNI_ARGS` key.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parse `CNI_ARGS` (`K=V;K2=V2`).
pub fn parse_args(s: &str) -> Result<Vec<(String, String)>, Error> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::env(format!("CNI_ARGS: invalid pair {pair:?}"))),
        })
        .collect()
}

/// Render `CNI_ARGS` from pairs.
pub fn format_args(args: &[(String, String)]) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// libcni's rule: non-empty, starts alphanumeric, then `[A-Za-z0-9_.-]`.
pub fn validate_container_id(id: &str) -> Result<(), Error> {
    if is_plain_name(id) {
        Ok(())
    } else {
        Err(Error::env(format!(
            "CNI_CONTAINERID: invalid characters in container id {id:?}"
        )))
    }
}

/// The same rule applies to network names (§1: no characters illegal in paths).
pub fn is_plain_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// Linux interface name rules (libcni `ValidateInterfaceName`).
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".into());
    }
    if name.len() > 15 {
        return Err(format!("interface name {name:?} is longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("interface name {name:?} is not allowed"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "interface name {name:?} contains an invalid character"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::spec::ErrorCode;

    fn env(pairs: &[(&str, &str)]) -> Result<Env, Error> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn add_requires_netns() {
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "a"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_ENVIRONMENT);
        assert!(e.msg.contains("CNI_NETNS"));
    }

    #[test]
    fn del_netns_optional_and_args() {
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc-1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "K8S_POD_NAME=x;IgnoreUnknown=1"),
            ("CNI_PATH", "/a:/b"),
        ])
        .unwrap();
        assert_eq!(e.netns, None);
        assert_eq!(e.arg("K8S_POD_NAME"), Some("x"));
        assert_eq!(e.path.len(), 2);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(env(&[("CNI_COMMAND", "FOO")]).is_err());
        assert!(env(&[("CNI_COMMAND", "GC")]).is_ok());
        let bad_id = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "../x"),
            ("CNI_IFNAME", "eth0"),
        ]);
        assert!(bad_id.is_err());
        assert!(validate_ifname("a-very-long-interface-name").is_err());
        assert!(parse_args("a=1;=2").is_err());
        assert_eq!(format_args(&parse_args("a=1;b=").unwrap()), "a=1;b=");
    }
}
