//! The v2 query string, parsed with serde_qs the way v2's Flask (werkzeug) read it.
//!
//! Every parameter is read as text and checked by the handler, so a bad value gets the
//! v2-shaped answer of `docs/legacy-v2.md` §5 rather than a parser's error. As in werkzeug:
//! a repeated parameter takes its first value, `name[x]` is just another (ignored) name,
//! bytes that do not decode to UTF-8 are replaced rather than refused, and empty pairs
//! (`&&`, `=x`) are skipped. An empty value is a value (`count=` is not a count), except for
//! `key` (§5 c) and `flavor`, where empty means absent. Every query is first brought to one
//! canonical encoding ([`canonical`]), so serde_qs only ever sees plain `name=value` pairs.

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;

/// What the query string says, before defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    /// `key`: the tenant's API key.
    pub key: Option<String>,
    /// `ver`: the CentOS release, e.g. `7` or `9-stream`.
    pub ver: Option<String>,
    /// `arch`: the architecture.
    pub arch: Option<String>,
    /// `flavor`: the machine size.
    pub flavor: Option<String>,
    /// `count`, else the pre-2015 spelling `i_count`.
    pub count: Option<String>,
    /// `ssid`: the session id of `/Node/done` and `/Node/fail`.
    pub ssid: Option<String>,
    /// `reason`: why an admin acts (`/NodeSetAdmin`, `/PauseService`, …).
    pub reason: Option<String>,
    /// `pool`: the one pool `/PauseService` and `/ResumeService` act on.
    pub pool: Option<String>,
    /// `minutes`: the threshold of `/Overtime`.
    pub minutes: Option<String>,
}

/// The query string cannot be read at all (kept for safety: after [`canonical`], serde_qs
/// has accepted every string tried, including the property test's).
#[derive(Debug, thiserror::Error)]
#[error("malformed query string")]
pub struct QueryError(String);

/// Every value of each parameter we read, in order. serde_qs leaves a sequence empty for
/// a parameter given once with an empty value, so [`Last`] is read beside it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct All {
    key: Vec<String>,
    ver: Vec<String>,
    arch: Vec<String>,
    flavor: Vec<String>,
    count: Vec<String>,
    i_count: Vec<String>,
    ssid: Vec<String>,
    reason: Vec<String>,
    pool: Vec<String>,
    minutes: Vec<String>,
}

/// The last value of each parameter, empty ones included.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Last {
    key: Option<String>,
    ver: Option<String>,
    arch: Option<String>,
    flavor: Option<String>,
    count: Option<String>,
    i_count: Option<String>,
    ssid: Option<String>,
    reason: Option<String>,
    pool: Option<String>,
    minutes: Option<String>,
}

/// Parses a raw query string (without the `?`).
pub fn parse(query: &str) -> Result<Params, QueryError> {
    let query = canonical(query);
    // Depth 0: brackets are part of a name, not structure.
    let config = serde_qs::Config::new().max_depth(0);
    let all: All = config.deserialize_str(&query).map_err(|e| {
        tracing::debug!(error = %e, "unreadable v2 query string");
        QueryError(e.to_string())
    })?;
    let last: Last = config
        .deserialize_str(&query)
        .map_err(|e| QueryError(e.to_string()))?;
    let first = |all: Vec<String>, last: Option<String>| all.into_iter().next().or(last);
    let non_empty = |v: Option<String>| v.filter(|v| !v.is_empty());
    let count = first(all.count, last.count);
    let i_count = first(all.i_count, last.i_count);
    Ok(Params {
        key: non_empty(first(all.key, last.key)),
        ver: first(all.ver, last.ver),
        arch: first(all.arch, last.arch),
        flavor: non_empty(first(all.flavor, last.flavor)),
        count: count.or(i_count),
        ssid: first(all.ssid, last.ssid),
        reason: first(all.reason, last.reason),
        pool: non_empty(first(all.pool, last.pool)),
        minutes: first(all.minutes, last.minutes),
    })
}

/// The query as werkzeug would read it, encoded again: every name and value decoded (`+`
/// is a space, invalid UTF-8 becomes U+FFFD) and percent-encoded but for letters and
/// digits; pairs with an empty name are dropped; a name without `=` has an empty value.
fn canonical(query: &str) -> String {
    let decode = |part: &str| {
        let spaced = part.replace('+', " ");
        percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
    };
    query
        .split('&')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name);
            (!name.is_empty()).then(|| {
                format!(
                    "{}={}",
                    utf8_percent_encode(&name, NON_ALPHANUMERIC),
                    utf8_percent_encode(&decode(value), NON_ALPHANUMERIC)
                )
            })
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cico_queries_parse() {
        let p = parse("key=K&arch=x86_64&ver=9-stream&flavor=small&count=3").unwrap();
        assert_eq!(p.key.as_deref(), Some("K"));
        assert_eq!(p.arch.as_deref(), Some("x86_64"));
        assert_eq!(p.ver.as_deref(), Some("9-stream"));
        assert_eq!(p.flavor.as_deref(), Some("small"));
        assert_eq!(p.count.as_deref(), Some("3"));
        assert_eq!(parse("").unwrap(), Params::default());
    }

    #[test]
    fn i_count_is_an_alias_and_count_wins() {
        assert_eq!(parse("i_count=2").unwrap().count.as_deref(), Some("2"));
        assert_eq!(
            parse("i_count=2&count=3").unwrap().count.as_deref(),
            Some("3")
        );
        assert_eq!(
            parse("count=&i_count=2").unwrap().count.as_deref(),
            Some("")
        );
    }

    #[test]
    fn the_first_of_repeated_values_wins() {
        let p = parse("key=a&key=b&count=1&count=2").unwrap();
        assert_eq!(p.key.as_deref(), Some("a"));
        assert_eq!(p.count.as_deref(), Some("1"));
        // An empty first key is no key, whatever follows.
        assert_eq!(parse("key=&key=b").unwrap().key, None);
        assert_eq!(parse("count=&count=2").unwrap().count.as_deref(), Some(""));
    }

    #[test]
    fn empty_values_are_values_except_key_and_flavor() {
        let p = parse("key=&flavor=&count=&ver=&ssid=").unwrap();
        assert_eq!((p.key, p.flavor), (None, None));
        assert_eq!(p.count.as_deref(), Some(""));
        assert_eq!(p.ver.as_deref(), Some(""));
        assert_eq!(p.ssid.as_deref(), Some(""));
        assert_eq!(parse("key").unwrap().key, None);
    }

    #[test]
    fn percent_encoding_is_decoded_and_bad_escapes_are_kept() {
        assert_eq!(parse("key=a%2Bb+c").unwrap().key.as_deref(), Some("a+b c"));
        assert_eq!(parse("key=%zz").unwrap().key.as_deref(), Some("%zz"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced() {
        let p = parse("key=K&ver=%FF%FE&count=2").unwrap();
        assert_eq!(p.ver.as_deref(), Some("\u{FFFD}\u{FFFD}"));
        assert_eq!(
            (p.key.as_deref(), p.count.as_deref()),
            (Some("K"), Some("2"))
        );
    }

    #[test]
    fn empty_pairs_and_names_are_skipped() {
        for q in ["&", "&&", "==", "=", "=x", "&=&"] {
            assert_eq!(parse(q).unwrap(), Params::default(), "{q}");
        }
        let p = parse("=x&key=K&&count=2&").unwrap();
        assert_eq!(
            (p.key.as_deref(), p.count.as_deref()),
            (Some("K"), Some("2"))
        );
    }

    #[test]
    fn brackets_are_part_of_a_name() {
        let p = parse("count[a]=1&key[]=x&ssid[0]=3").unwrap();
        assert_eq!(p, Params::default());
    }
}
