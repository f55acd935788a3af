//! Authentication: client certificates (CN = user, O = groups) and static bearer tokens
//! (`--token-auth-file`, kube-apiserver CSV format `token,user,uid,"group1,group2"`). Bootstrap tokens are
//! `crate::bootstrap_tokens`', service-account tokens (JWTs) `crate::serviceaccount`'s.
//!
//! What an authenticated user may do is decided in `crate::authz`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// Extra attributes (service-account tokens: `authentication.kubernetes.io/pod-name`, …).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The user (CN) and groups (every O) of a DER certificate.
pub fn identity_from_cert(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, groups))
}

#[derive(Debug, Default, Clone)]
pub struct TokenAuth {
    tokens: HashMap<String, UserInfo>,
}

/// Split one CSV line (double quotes group, `""` is a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

impl TokenAuth {
    pub fn parse(text: &str) -> Result<Self> {
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let f = csv_fields(l);
            if f.len() < 3 || f[0].is_empty() || f[1].is_empty() {
                anyhow::bail!(
                    "token file line {}: want token,user,uid[,\"groups\"]",
                    i + 1
                );
            }
            let groups = f
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            tokens.insert(
                f[0].clone(),
                UserInfo {
                    name: f[1].clone(),
                    uid: f[2].clone(),
                    groups,
                    extra: BTreeMap::new(),
                },
            );
        }
        Ok(TokenAuth { tokens })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    pub fn lookup(&self, token: &str) -> Option<UserInfo> {
        self.tokens.get(token).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file() {
        let t = TokenAuth::parse("# comment\nsecret1,alice,1001,\"dev,ops\"\nsecret2,bob,1002\n")
            .expect("parse");
        let a = t.lookup("secret1").expect("alice");
        assert_eq!(a.name, "alice");
        assert_eq!(a.groups, vec!["dev".to_string(), "ops".to_string()]);
        assert_eq!(t.lookup("secret2").map(|u| u.groups.len()), Some(0));
        assert!(t.lookup("nope").is_none());
        assert!(TokenAuth::parse("justtoken").is_err());
    }
}
