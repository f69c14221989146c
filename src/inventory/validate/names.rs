//! The shape of a DNS name, which host names, the cluster name and domain, namespaces and
//! API names must have.

/// RFC 1123 label, as Kubernetes requires for node names.
pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Dot-separated DNS labels, such as `lb.example.internal`.
pub(super) fn is_dns_name(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_dns_label)
}
