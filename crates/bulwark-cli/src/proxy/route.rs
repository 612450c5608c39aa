//! Which request targets are forwarded, and how a target is written in the logs. Pure
//! functions of their arguments, property-tested.
//!
//! Only the Notion API is forwarded: a path that, once normalised, lies under `/v1/`.
//! Normalising (RFC 3986 §5.2.4, stricter):
//!
//! - each segment is percent-decoded to tell what it is, so `%2e%2e` is `..` and `%2E` is `.`;
//! - empty segments (`//`) and `.` segments are dropped, `..` removes the segment before it;
//! - a `..` with nothing left to remove, a segment that decodes to something holding `/`, `\`
//!   or a control character (`%2f`, `%5c`, `%00`), or a result outside `/v1/…` is refused;
//! - the segments kept are forwarded as they were written (still percent-encoded).
//!
//! So `/v1/users/./me` and `/v1//users/me` go upstream as `/v1/users/me`, while `/_fake/outage`,
//! `/v1/../_fake/outage`, `/v1/%2e%2e/x` and `/../x` are answered by the proxy itself, and
//! nothing can climb out of an upstream's path prefix.

use std::net::{IpAddr, SocketAddr};

use http::uri::{Authority, Scheme};
use percent_encoding::percent_decode_str;

/// The longest path printed in a log line; the rest is cut (`…`).
const MAX_LOGGED_PATH: usize = 200;
/// The longest query printed in a log line (keys only); the rest is cut (`…`).
const MAX_LOGGED_QUERY: usize = 200;

/// What a path segment is, once percent-decoded.
enum Segment {
    /// `""`: from `//`, or the leading or trailing `/`.
    Empty,
    /// `.`
    Current,
    /// `..`
    Parent,
    /// Anything else, safe to forward.
    Name,
    /// Decodes to something with `/`, `\` or a control character.
    Unsafe,
}

fn classify(segment: &str) -> Segment {
    if !segment.contains('%') && !segment.contains('\\') {
        return match segment {
            "" => Segment::Empty,
            "." => Segment::Current,
            ".." => Segment::Parent,
            _ if segment.bytes().any(|b| b.is_ascii_control()) => Segment::Unsafe,
            _ => Segment::Name,
        };
    }
    let decoded: Vec<u8> = percent_decode_str(segment).collect();
    if decoded
        .iter()
        .any(|&b| b == b'/' || b == b'\\' || b.is_ascii_control())
    {
        return Segment::Unsafe;
    }
    match decoded.as_slice() {
        b"" => Segment::Empty,
        b"." => Segment::Current,
        b".." => Segment::Parent,
        _ => Segment::Name,
    }
}

/// The normalised form of `path` (no query) when it lies under `/v1/`, else `None` (see the
/// [module docs](self)). A trailing `/` is kept.
pub(crate) fn normalise_api_path(path: &str) -> Option<String> {
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match classify(segment) {
            Segment::Empty | Segment::Current => {}
            Segment::Parent => {
                kept.pop()?;
            }
            Segment::Name => kept.push(segment),
            Segment::Unsafe => return None,
        }
    }
    if kept.len() < 2 || kept[0] != "v1" {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if path.ends_with('/') {
        out.push('/');
    }
    Some(out)
}

/// Whether `path` is already clean: it starts with `/` and has no empty, `.`, `..` or unsafe
/// segments (used for an upstream's path prefix).
pub(crate) fn is_clean_path(path: &str) -> bool {
    path.strip_prefix('/').is_some_and(|rest| {
        rest.split('/')
            .all(|segment| matches!(classify(segment), Segment::Name))
    })
}

/// Whether an absolute-form request target (`GET http://HOST:PORT/v1/… HTTP/1.1`) names this
/// proxy: scheme `http` (or none), no credentials, the listening port (80 when none is
/// given), and the listening IP — or `localhost` when listening on loopback, or any host when
/// listening on an unspecified address (`0.0.0.0`, `::`), whose names the proxy cannot know.
pub(crate) fn is_own_authority(
    scheme: Option<&Scheme>,
    authority: &Authority,
    local: SocketAddr,
) -> bool {
    if scheme.is_some_and(|s| *s != Scheme::HTTP) || authority.as_str().contains('@') {
        return false;
    }
    if authority.port_u16().unwrap_or(80) != local.port() {
        return false;
    }
    let ip = local.ip();
    if ip.is_unspecified() {
        return true;
    }
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") {
        return ip.is_loopback();
    }
    host.parse::<IpAddr>().is_ok_and(|h| h == ip)
}

/// The request target as a log line shows it: the path (cut at 200 characters) and, of the
/// query, only the keys: `/v1/users?page_size=<redacted>&<redacted>`. A pair without `=`, or
/// whose key is not a plain name, is `<redacted>` whole.
pub(crate) fn log_route(path: &str, query: Option<&str>) -> String {
    let mut out = String::with_capacity(path.len().min(MAX_LOGGED_PATH) + 32);
    push_cut(&mut out, path, MAX_LOGGED_PATH);
    let Some(query) = query else {
        return out;
    };
    out.push('?');
    let start = out.len();
    for (i, pair) in query.split('&').enumerate() {
        if out.len() - start > MAX_LOGGED_QUERY {
            out.push('…');
            break;
        }
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) if is_plain_key(key) => {
                out.push_str(key);
                out.push_str("=<redacted>");
            }
            _ if pair.is_empty() => {}
            _ => out.push_str("<redacted>"),
        }
    }
    out
}

/// The words of the Notion API's routes (its OpenAPI paths, plus `file_uploads` and `oauth`):
/// the only segments a [`template`] prints as they are.
const ROUTE_WORDS: &[&str] = &[
    "blocks",
    "children",
    "comments",
    "complete",
    "data_sources",
    "databases",
    "file_uploads",
    "introspect",
    "markdown",
    "me",
    "move",
    "oauth",
    "pages",
    "properties",
    "query",
    "revoke",
    "search",
    "send",
    "templates",
    "token",
    "users",
];

/// The route template of a request target for the access log: the normalised `/v1/…` path
/// with every segment that is not a word of the Notion API's routes replaced by `{id}`
/// (`/v1/pages/59833787-2cf9…` → `/v1/pages/{id}`, `/v1/data_sources/ds_1/query` →
/// `/v1/data_sources/{id}/query`, `/v1/users/me` stays), no query at all; `-` when the path
/// is not the Notion API's (see [`normalise_api_path`]). Only fixed words are ever printed, so
/// no id, token or query value can reach the log, and routes group by endpoint.
pub(crate) fn template(path: &str) -> String {
    let Some(path) = normalise_api_path(path) else {
        return "-".to_owned();
    };
    let mut out = String::with_capacity(path.len().min(64));
    out.push_str("/v1");
    for segment in path.trim_end_matches('/').split('/').skip(2) {
        out.push('/');
        if ROUTE_WORDS.contains(&segment) {
            out.push_str(segment);
        } else {
            out.push_str("{id}");
        }
    }
    if path.ends_with('/') {
        out.push('/');
    }
    out
}

/// A query key printed as is: 1 to 64 of `A-Z a-z 0-9 _ - . [ ]`.
fn is_plain_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b))
}

/// Appends at most `max` characters of `s`, and `…` when it was cut.
fn push_cut(out: &mut String, s: &str, max: usize) {
    match s.char_indices().nth(max) {
        Some((cut, _)) => {
            out.push_str(&s[..cut]);
            out.push('…');
        }
        None => out.push_str(s),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn api_paths_are_normalised() {
        let n = normalise_api_path;
        assert_eq!(n("/v1/users/me").as_deref(), Some("/v1/users/me"));
        assert_eq!(n("/v1//users/./me").as_deref(), Some("/v1/users/me"));
        assert_eq!(n("/v1/pages/x/../y").as_deref(), Some("/v1/pages/y"));
        assert_eq!(n("/v1/users/").as_deref(), Some("/v1/users/"));
        assert_eq!(n("//v1/users").as_deref(), Some("/v1/users"));
        assert_eq!(n("/v1/pages/a%20b").as_deref(), Some("/v1/pages/a%20b"));
        assert_eq!(n("/v1/%2e/users").as_deref(), Some("/v1/users"));
    }

    #[test]
    fn everything_else_is_refused() {
        for path in [
            "/",
            "",
            "*",
            "/v1",
            "/v1/",
            "/v2/users",
            "/_fake/outage",
            "/_fake",
            "/v1/../_fake/outage",
            "/v1/%2e%2e/_fake/outage",
            "/v1/%2E%2E/_fake/outage",
            "/v1/.%2e/_fake/outage",
            "/v1/users/../../x",
            "/../x",
            "/../v1/users",
            "/v1/..%2f..%2fx",
            "/v1/a%2fb",
            "/v1/a%5cb",
            "/v1/a\\b",
            "/v1/a%00b",
            "/api/v2/status.json",
            "/V1/users",
        ] {
            assert_eq!(normalise_api_path(path), None, "{path}");
        }
    }

    #[test]
    fn own_authority() {
        let local: SocketAddr = "127.0.0.1:7700".parse().unwrap();
        let own = |s: &str| is_own_authority(Some(&Scheme::HTTP), &s.parse().unwrap(), local);
        assert!(own("127.0.0.1:7700"));
        assert!(own("localhost:7700"));
        assert!(!own("127.0.0.1:7701"));
        assert!(!own("127.0.0.1"));
        assert!(!own("other-host:7700"));
        assert!(!own("u:p@127.0.0.1:7700"));
        assert!(!is_own_authority(
            Some(&Scheme::HTTPS),
            &"127.0.0.1:7700".parse().unwrap(),
            local
        ));
        let any: SocketAddr = "0.0.0.0:80".parse().unwrap();
        assert!(is_own_authority(
            None,
            &"proxy.internal".parse().unwrap(),
            any
        ));
        let v6: SocketAddr = "[::1]:7700".parse().unwrap();
        assert!(is_own_authority(None, &"[::1]:7700".parse().unwrap(), v6));
    }

    #[test]
    fn logged_routes_keep_no_query_values() {
        assert_eq!(log_route("/v1/users", None), "/v1/users");
        assert_eq!(
            log_route("/v1/users", Some("filter=secret&page_size=10")),
            "/v1/users?filter=<redacted>&page_size=<redacted>"
        );
        assert_eq!(
            log_route("/v1/users", Some("secret&a%20b=1")),
            "/v1/users?<redacted>&<redacted>"
        );
        let long = format!("/v1/{}", "x".repeat(500));
        assert_eq!(log_route(&long, None).chars().count(), MAX_LOGGED_PATH + 1);
    }

    #[test]
    fn templates_keep_only_route_words() {
        for (path, want) in [
            (
                "/v1/pages/59833787-2cf9-4fdf-8782-e53db20768a5",
                "/v1/pages/{id}",
            ),
            ("/v1/pages", "/v1/pages"),
            (
                "/v1/pages/p1/properties/title",
                "/v1/pages/{id}/properties/{id}",
            ),
            ("/v1/pages/p1/move", "/v1/pages/{id}/move"),
            ("/v1/data_sources/ds_1/query", "/v1/data_sources/{id}/query"),
            ("/v1/databases/db_1/query", "/v1/databases/{id}/query"),
            ("/v1/blocks/b1/children", "/v1/blocks/{id}/children"),
            ("/v1/users/me", "/v1/users/me"),
            ("/v1/users/u1", "/v1/users/{id}"),
            ("/v1/users/", "/v1/users/"),
            ("/v1//users/./me", "/v1/users/me"),
            ("/v1/search", "/v1/search"),
            ("/v1/oauth/token", "/v1/oauth/token"),
            ("/v1/secret_abc123", "/v1/{id}"),
            ("/v1/PAGES/x", "/v1/{id}/{id}"),
            ("/_fake/outage", "-"),
            ("/v1/../x", "-"),
            ("/", "-"),
        ] {
            assert_eq!(template(path), want, "{path}");
        }
    }

    proptest! {
        /// Whatever the path, a forwarded one is under /v1/, has no empty, `.` or `..`
        /// segments even once decoded, and normalising it again changes nothing.
        #[test]
        fn forwarded_paths_stay_under_v1(path in "(/|[.]|%2[eEfF]|%5[cC]|v1|_fake|[a-z0-9%]){0,16}") {
            if let Some(out) = normalise_api_path(&path) {
                prop_assert!(out.starts_with("/v1/"), "{out}");
                let trimmed = out.trim_end_matches('/');
                prop_assert!(is_clean_path(trimmed), "{out}");
                let again = normalise_api_path(&out);
                prop_assert_eq!(again.as_deref(), Some(out.as_str()));
            }
        }

        /// A template holds only `/v1`, route words and `{id}`, whatever the path.
        #[test]
        fn templates_print_only_route_words(path in "(/|[.]|%2[eE]|v1|pages|me|[A-Za-z0-9_%-]){0,24}") {
            let t = template(&path);
            if t != "-" {
                prop_assert!(t.starts_with("/v1"), "{t}");
                for segment in t.split('/').skip(2).filter(|s| !s.is_empty()) {
                    prop_assert!(segment == "{id}" || ROUTE_WORDS.contains(&segment), "{t}");
                }
            }
        }

        /// Logging never panics and never shows a query value.
        #[test]
        fn logged_queries_hide_values(key in "[a-z_]{1,8}", value in "[A-Za-z0-9]{6,12}", path in "\\PC{0,300}") {
            let line = log_route(&path, Some(&format!("{key}={value}")));
            prop_assert!(line.ends_with(&format!("?{key}=<redacted>")), "{line}");
        }
    }

    /// One normalised path, checked: under `/v1/`, clean once decoded, stable.
    fn check_normalise(path: &str) {
        if let Some(out) = normalise_api_path(path) {
            assert!(out.starts_with("/v1/"), "{path:?} -> {out:?}");
            assert!(
                is_clean_path(out.trim_end_matches('/')),
                "{path:?} -> {out:?}"
            );
            assert_eq!(normalise_api_path(&out).as_deref(), Some(out.as_str()));
            assert!(out.len() <= path.len() + 1, "{path:?} -> {out:?}");
        }
    }

    /// A log line: never a query value, bounded.
    fn check_log(path: &str, query: &str, secret: &str) {
        let line = log_route(path, Some(&format!("{query}&k={secret}")));
        assert!(!line.contains(secret), "{line}");
        assert!(
            line.chars().count() <= MAX_LOGGED_PATH + MAX_LOGGED_QUERY + 64,
            "{line}"
        );
    }

    #[test]
    #[ignore = "a million inputs: run with `cargo test --release fuzz_ -- --ignored`"]
    fn fuzz_proxy_route() {
        use bulwark_testkit::fuzz;
        const SEGMENTS: &[&str] = &["v1", "users", "me", "pages", "_fake", "outage", "search"];
        fuzz::run(
            "proxy_route",
            |rng| {
                let path = if rng.u8(..4) == 0 {
                    String::from_utf8_lossy(&fuzz::bytes(rng, 64)).into_owned()
                } else {
                    fuzz::path(rng, SEGMENTS)
                };
                let query =
                    fuzz::mutate_str(rng, "page_size=10&start_cursor=abc", &[b"&", b"=", b"%"]);
                let secret = format!("S3cr3t{}", rng.u32(..));
                (path, query, secret)
            },
            |(path, query, secret)| {
                check_normalise(path);
                check_log(path, query, secret);
            },
        );
    }
}
