//! Image references, normalized exactly like Docker (`distribution/reference`'s `ParseNormalizedNamed`).
//!
//! `nginx` → `docker.io/library/nginx:latest`, `foo/bar` → `docker.io/foo/bar:latest`,
//! `localhost:5000/x` → `localhost:5000/x:latest`, `name@sha256:…` keeps the digest and gets no tag.

use std::fmt;

use super::ImageError;

pub const DEFAULT_REGISTRY: &str = "docker.io";
const LEGACY_REGISTRY: &str = "index.docker.io";
const MAX_NAME_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port if any: `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path inside the registry: `library/nginx`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Self, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidReference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(invalid("empty reference"));
        }
        if input.trim() != input {
            return Err(invalid("leading or trailing whitespace"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest).map_err(|r| invalid(&r))?;
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        // A tag is a ':' after the last '/', otherwise the ':' belongs to a registry port.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&rest[..colon], Some(rest[colon + 1..].to_string()))
            }
            _ => (rest, None),
        };
        if let Some(tag) = &tag {
            validate_tag(tag).map_err(|r| invalid(&r))?;
        }
        if name.is_empty() {
            return Err(invalid("empty repository name"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(invalid("repository name is longer than 255 characters"));
        }
        let (registry, path) = split_registry(name);
        validate_registry(registry).map_err(|r| invalid(&r))?;
        let registry = if registry == LEGACY_REGISTRY {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        validate_path(&repository).map_err(|r| invalid(&r))?;
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (tag, _) => tag,
        };
        Ok(Self {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What goes after `/manifests/` for the first manifest request: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The first path component is a registry when it looks like a host: has a '.' or ':', or is `localhost`,
/// or contains an uppercase letter (repository paths are lowercase, so it cannot be one).
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

fn validate_digest(digest: &str) -> Result<(), String> {
    let Some((algo, hex)) = digest.split_once(':') else {
        return Err(format!("digest {digest:?} has no algorithm"));
    };
    match algo {
        "sha256"
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(())
        }
        "sha256" => Err(format!(
            "digest {digest:?} is not 64 lowercase hex characters"
        )),
        _ => Err(format!("unsupported digest algorithm {algo:?}")),
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && tag.len() <= 128 {
        Ok(())
    } else {
        Err(format!("invalid tag {tag:?}"))
    }
}

fn validate_registry(registry: &str) -> Result<(), String> {
    let (host, port) = if let Some(v6) = registry.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(format!("invalid registry {registry:?}"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 registry address {addr:?}"));
        }
        match after {
            "" => return Ok(()),
            p => (
                None,
                p.strip_prefix(':')
                    .ok_or_else(|| format!("invalid registry {registry:?}"))?
                    .into(),
            ),
        }
    } else {
        match registry.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("invalid port in registry {registry:?}"));
    }
    if let Some(host) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if host.is_empty() || !host.split('.').all(label_ok) {
            return Err(format!("invalid registry host {host:?}"));
        }
    }
    Ok(())
}

/// Path components: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, separated by '/'.
fn validate_path(path: &str) -> Result<(), String> {
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository name must be lowercase".to_string());
    }
    for component in path.split('/') {
        if !component_ok(component) {
            return Err(format!("invalid repository path component {component:?}"));
        }
    }
    Ok(())
}

fn component_ok(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or one or more '-'.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        match Reference::parse(s) {
            Ok(r) => r.to_string(),
            Err(e) => format!("ERR {e}"),
        }
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("busybox:1.35"), "docker.io/library/busybox:1.35");
        assert_eq!(norm("foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(norm("docker.io/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            norm("index.docker.io/library/nginx:1"),
            "docker.io/library/nginx:1"
        );
        assert_eq!(norm("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        assert_eq!(norm("127.0.0.1:5000/x:y"), "127.0.0.1:5000/x:y");
        assert_eq!(norm("quay.io/a/b/c:v1.2-3_x"), "quay.io/a/b/c:v1.2-3_x");
        assert_eq!(
            norm(&format!("nginx@{D}")),
            format!("docker.io/library/nginx@{D}")
        );
        assert_eq!(
            norm(&format!("nginx:1.2@{D}")),
            format!("docker.io/library/nginx:1.2@{D}")
        );
        assert_eq!(norm("[::1]:5000/x"), "[::1]:5000/x:latest");
        assert_eq!(norm("a__b/c--d/e.f"), "docker.io/a__b/c--d/e.f:latest");
    }

    #[test]
    fn parts() {
        let r = Reference::parse("127.0.0.1:5000/x:y").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "x");
        assert_eq!(r.manifest_ref(), "y");
        assert_eq!(r.name(), "127.0.0.1:5000/x");
        let r = Reference::parse(&format!("nginx:1@{D}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.manifest_ref(), D);
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            " nginx",
            "Nginx",
            "foo/Bar",
            "nginx:",
            "nginx:-x",
            "nginx@sha256:abc",
            "nginx@md5:0123",
            "nginx@",
            "a//b",
            "/a",
            "a/",
            "a:b:c",
            "a.-b/x",
            "x:5000a/b",
            "a...b",
            "a_-b",
            "nginx:tag!",
            &"a".repeat(300),
        ] {
            assert!(
                matches!(
                    Reference::parse(bad),
                    Err(ImageError::InvalidReference { .. })
                ),
                "{bad:?} should be invalid, got {:?}",
                Reference::parse(bad)
            );
        }
    }
}
