//! apimachinery's name and syntax checks that Ingress and IngressClass validation quote, with kube's
//! exact messages (`IsDNS1123Subdomain`, `IsWildcardDNS1123Subdomain`, `IsDNS1035Label`,
//! `IsDNS1123Label`, `IsPathSegmentName`, `IsValidPortName`, `IsDomainPrefixedPath`, `ParseIPSloppy`).

use std::net::IpAddr;

use serde_json::json;

#[cfg(test)]
use crate::resources::validation::DNS1123_SUBDOMAIN_MSG;
use crate::resources::validation::label_pattern;
pub use crate::resources::validation::{label_errors, subdomain_errors};
use crate::status::FieldError;

const WILDCARD_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const HTTP_PATH_MSG: &str =
    "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')";

/// `IsWildcardDNS1123Subdomain`'s messages: `*.` followed by a DNS-1123 subdomain.
pub fn wildcard_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let ok = s
        .strip_prefix("*.")
        .is_some_and(|rest| rest.split('.').all(label_pattern));
    if !ok {
        errs.push(WILDCARD_MSG.to_string());
    }
    errs
}

/// `IsDNS1035Label`'s messages (Service names).
pub fn dns1035_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !label_pattern(s) || !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        errs.push(DNS1035_MSG.to_string());
    }
    errs
}

/// `IsPathSegmentName`: a name that can be one segment of a URL path.
pub fn path_segment_errors(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| s.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// `IsValidPortName` (an IANA service name): every rule broken, in kube's order and words.
pub fn port_name_errors(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push("must be no more than 15 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen");
    }
    errs.into_iter().map(String::from).collect()
}

/// Go's `ParseIPSloppy`: IPv4 parts may carry leading zeros (`010.0.0.1`).
pub fn parses_as_ip(text: &str) -> bool {
    if text.parse::<IpAddr>().is_ok() {
        return true;
    }
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// The characters RFC 3986 allows in an HTTP path (`httpPathFmt`).
fn http_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c)
}

/// `IsDomainPrefixedPath` (`acme.io/foo`): a DNS-1123 subdomain, `/`, and a non-empty HTTP path.
pub fn check_domain_prefixed_path(field: &str, value: &str) -> Vec<FieldError> {
    if value.is_empty() {
        return vec![FieldError::required(field, "")];
    }
    let (host, path) = match value.split_once('/') {
        Some((h, p)) if !h.is_empty() && !p.is_empty() => (h, p),
        _ => {
            return vec![FieldError::invalid(
                field,
                &json!(value),
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            )];
        }
    };
    let mut errs: Vec<FieldError> = subdomain_errors(host)
        .iter()
        .map(|m| FieldError::invalid(field, &json!(host), m))
        .collect();
    if !path.chars().all(http_path_char) {
        errs.push(FieldError::invalid(field, &json!(path), HTTP_PATH_MSG));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_need_a_leading_star_label() {
        assert!(wildcard_errors("*.example.com").is_empty());
        assert_eq!(wildcard_errors("*example.com"), [WILDCARD_MSG]);
        assert_eq!(wildcard_errors("foo.*.com"), [WILDCARD_MSG]);
        assert_eq!(wildcard_errors("*"), [WILDCARD_MSG]);
    }

    #[test]
    fn service_names_are_dns1035_labels() {
        assert!(dns1035_errors("svc-1").is_empty());
        assert_eq!(dns1035_errors("1svc"), [DNS1035_MSG]);
        assert_eq!(dns1035_errors("a.b"), [DNS1035_MSG]);
    }

    #[test]
    fn domain_prefixed_paths() {
        assert!(check_domain_prefixed_path("c", "example.com/ingress-nginx").is_empty());
        let lines = |v: &str| -> Vec<String> {
            check_domain_prefixed_path("c", v)
                .iter()
                .map(FieldError::to_line)
                .collect()
        };
        assert_eq!(lines(""), ["c: Required value"]);
        assert_eq!(
            lines("nginx"),
            [
                "c: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"
            ]
        );
        assert_eq!(
            lines("Example.com/a b"),
            [
                format!("c: Invalid value: \"Example.com\": {DNS1123_SUBDOMAIN_MSG}"),
                format!("c: Invalid value: \"a b\": {HTTP_PATH_MSG}"),
            ]
        );
    }

    #[test]
    fn path_segments_and_ips() {
        assert_eq!(path_segment_errors(".."), ["may not be '..'"]);
        assert_eq!(
            path_segment_errors("a/b%"),
            ["may not contain '/'", "may not contain '%'"]
        );
        assert!(parses_as_ip("010.0.0.1"));
        assert!(parses_as_ip("::1"));
        assert!(!parses_as_ip("foo.com"));
    }
}
