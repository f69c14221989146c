//! Which proxy a request goes through, from the environment (`HTTPS_PROXY`, `NO_PROXY`, ...).

/// The proxy for `url` from the usual environment variables (`HTTPS_PROXY` for https,
/// `HTTP_PROXY` for http, then `ALL_PROXY`; lowercase variants too), unless `NO_PROXY` names
/// the host (`*`, exact host, or a domain suffix such as `.corp` / `corp`). ureq 2 reads the
/// proxy variables but not `NO_PROXY`, hence this. Loopback hosts never use a proxy.
pub(crate) fn proxy_for(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    }
    .to_ascii_lowercase();
    if host == "localhost" || host == "::1" || host.starts_with("127.") {
        return None;
    }
    let first = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
    };
    if let Some(no_proxy) = first(&["NO_PROXY", "no_proxy"]) {
        for pattern in no_proxy.split(',').map(str::trim) {
            if pattern == "*" {
                return None;
            }
            let domain = pattern
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .to_ascii_lowercase();
            if !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}"))) {
                return None;
            }
        }
    }
    if scheme.eq_ignore_ascii_case("https") {
        first(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
    } else {
        first(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
    }
}

#[cfg(test)]
mod tests {
    use super::proxy_for;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn proxy_selection_honours_scheme_no_proxy_and_loopback() {
        let vars = [
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("http_proxy", "http://plain:8080"),
            ("NO_PROXY", "mirror.corp, .internal,10.0.0.5"),
        ];
        let e = env(&vars);
        let p = |url: &str| proxy_for(url, &e);
        assert_eq!(
            p("https://dl.k8s.io/release/x").as_deref(),
            Some("http://proxy:3128")
        );
        assert_eq!(
            p("http://example.org/x").as_deref(),
            Some("http://plain:8080")
        );
        assert_eq!(p("https://mirror.corp/k8s"), None);
        assert_eq!(p("https://a.mirror.corp:8443/k8s"), None);
        assert_eq!(p("https://files.internal/x"), None);
        assert_eq!(p("http://10.0.0.5:8080/x"), None);
        assert_eq!(
            p("https://notmirror.corp.example/x").as_deref(),
            Some("http://proxy:3128")
        );
        assert_eq!(p("http://127.0.0.1:4000/x"), None);
        assert_eq!(p("http://[::1]:4000/x"), None);
        assert_eq!(p("http://user:pw@localhost/x"), None);
        let star = [("ALL_PROXY", "socks5://p:1080"), ("no_proxy", "*")];
        assert_eq!(proxy_for("https://dl.k8s.io/x", &env(&star)), None);
        let all = [("ALL_PROXY", "http://all:1")];
        assert_eq!(
            proxy_for("https://dl.k8s.io/x", &env(&all)).as_deref(),
            Some("http://all:1")
        );
        assert_eq!(proxy_for("https://dl.k8s.io/x", &env(&[])), None);
    }
}
