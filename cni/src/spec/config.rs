//! Network configuration lists (§1) and the per-plugin config a runtime builds from them.
//!
//! Plugin objects are kept as raw JSON maps so that unknown fields pass through unchanged, as the
//! spec requires of runtimes.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::env::is_plain_name;
use super::error::{Error, ErrorCode};
use super::version::{self, Version, VersionInfo};

/// A parsed `*.conflist`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfigList {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// 1.1: further versions the list may be run at.
    #[serde(rename = "cniVersions", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_versions: Vec<String>,
    pub name: String,
    #[serde(rename = "disableCheck", default, deserialize_with = "lenient_bool")]
    pub disable_check: bool,
    #[serde(rename = "disableGC", default, deserialize_with = "lenient_bool")]
    pub disable_gc: bool,
    #[serde(
        rename = "loadOnlyInlinedPlugins",
        default,
        deserialize_with = "lenient_bool"
    )]
    pub load_only_inlined_plugins: bool,
    pub plugins: Vec<Map<String, Value>>,
    /// Unknown top-level keys, kept so that the list round-trips.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// libcni accepts `"true"`/`"false"` strings for the list's booleans.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Value::Null => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "expected a boolean, got {other}"
        ))),
    }
}

impl NetworkConfigList {
    /// Parse and validate a conflist: JSON errors are code 6, structural errors code 7.
    pub fn parse(bytes: &[u8]) -> Result<NetworkConfigList, Error> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::new(
                ErrorCode::DECODING_FAILURE,
                "invalid network config list JSON",
            )
            .with_details(e.to_string())
        })?;
        let list: NetworkConfigList = serde_json::from_value(value)
            .map_err(|e| Error::config(format!("invalid network config list: {e}")))?;
        list.validate()?;
        Ok(list)
    }

    fn validate(&self) -> Result<(), Error> {
        if !is_plain_name(&self.name) {
            return Err(Error::config(format!(
                "invalid network name {:?}",
                self.name
            )));
        }
        if self.plugins.is_empty() {
            return Err(Error::config(format!(
                "network {:?} has no plugins",
                self.name
            )));
        }
        for (i, p) in self.plugins.iter().enumerate() {
            match p.get("type").and_then(Value::as_str) {
                Some(t) if is_plain_name(t) => {}
                _ => {
                    return Err(Error::config(format!(
                        "network {:?}: plugins[{i}] has no valid \"type\"",
                        self.name
                    )));
                }
            }
        }
        if self.cni_version.is_empty() && self.cni_versions.is_empty() {
            return Err(Error::config(format!(
                "network {:?} has no cniVersion",
                self.name
            )));
        }
        Ok(())
    }

    /// The `type` (binary name) of each plugin, in chain order.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .map(|p| p.get("type").and_then(Value::as_str).unwrap_or_default())
            .collect()
    }

    /// `cniVersion` ∪ `cniVersions`.
    pub fn version_candidates(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.cni_version.as_str())
            .chain(self.cni_versions.iter().map(String::as_str))
            .filter(|s| !s.is_empty())
    }

    /// The highest version of the list that this crate and every given plugin VERSION answer
    /// support (pass an empty slice to skip asking the plugins).
    pub fn negotiate(&self, plugins: &[VersionInfo]) -> Result<Version, Error> {
        version::negotiate(self.version_candidates(), plugins).ok_or_else(|| {
            Error::new(
                ErrorCode::INCOMPATIBLE_VERSION,
                format!(
                    "network {:?}: no common CNI version (list: {:?}, supported: {:?})",
                    self.name,
                    self.version_candidates().collect::<Vec<_>>(),
                    version::SUPPORTED
                ),
            )
        })
    }

    /// The stdin of plugin `index`: its object with `name` and `cniVersion` injected, `runtimeConfig`
    /// set to the capabilities it declares intersected with `capability_args`, and `prevResult` when
    /// given. Everything else passes through unchanged.
    pub fn plugin_config(
        &self,
        index: usize,
        version: Version,
        prev_result: Option<&Value>,
        capability_args: &Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        let mut conf = self.plugins.get(index)?.clone();
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(version.to_string()));
        let declared = conf.get("capabilities").and_then(Value::as_object);
        let runtime: Map<String, Value> = capability_args
            .iter()
            .filter(|(k, _)| {
                declared.and_then(|d| d.get(*k)).and_then(Value::as_bool) == Some(true)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !runtime.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        Some(conf)
    }
}

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The keys every plugin config may carry; plugin-specific keys stay in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginConfig {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Value>,
    #[serde(
        rename = "prevResult",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub prev_result: Option<Value>,
    #[serde(
        rename = "runtimeConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub runtime_config: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    #[serde(
        rename = "cni.dev/valid-attachments",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"cniVersion":"1.0.0","cniVersions":["1.1.0"],"name":"skiff","disableCheck":"true",
      "plugins":[{"type":"skiff-cni","bridge":"skiff0","custom":{"x":1}},
                 {"type":"portmap","capabilities":{"portMappings":true}}],"vendor":"y"}"#;

    #[test]
    fn parses_and_passes_through() {
        let l = NetworkConfigList::parse(LIST.as_bytes()).unwrap();
        assert!(l.disable_check);
        assert_eq!(l.plugin_types(), vec!["skiff-cni", "portmap"]);
        assert_eq!(l.negotiate(&[]).unwrap(), Version::V1_1);
        let mut caps = Map::new();
        caps.insert("portMappings".into(), serde_json::json!([{"hostPort": 80}]));
        caps.insert("bandwidth".into(), serde_json::json!({}));
        let p0 = l.plugin_config(0, Version::V1_1, None, &caps).unwrap();
        assert_eq!(p0["custom"]["x"], 1);
        assert_eq!(p0["name"], "skiff");
        assert!(p0.get("runtimeConfig").is_none());
        let prev = serde_json::json!({"cniVersion":"1.1.0"});
        let p1 = l
            .plugin_config(1, Version::V1_1, Some(&prev), &caps)
            .unwrap();
        assert_eq!(p1["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
        assert!(p1["runtimeConfig"].get("bandwidth").is_none());
        assert_eq!(p1["prevResult"]["cniVersion"], "1.1.0");
        let round = serde_json::to_value(&l).unwrap();
        assert_eq!(round["vendor"], "y");
    }

    #[test]
    fn rejects_bad_lists() {
        let code = |s: &str| NetworkConfigList::parse(s.as_bytes()).unwrap_err().code;
        assert_eq!(code("{nope"), ErrorCode::DECODING_FAILURE);
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"a","plugins":[]}"#),
            ErrorCode(7)
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"../a","plugins":[{"type":"x"}]}"#),
            ErrorCode(7)
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":1}]}"#),
            ErrorCode(7)
        );
        assert_eq!(
            code(r#"{"name":"a","plugins":[{"type":"x"}]}"#),
            ErrorCode(7)
        );
        assert_eq!(code(r#"[1,2]"#), ErrorCode(7));
    }
}
