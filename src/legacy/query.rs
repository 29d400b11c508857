//! The v2 query string, parsed with serde_qs the way v2's Flask read it.
//!
//! Every parameter is read as text and checked by the handler, so a bad value gets the
//! v2-shaped answer of `legacy-v2.md` §5 rather than a parser's error. A repeated
//! parameter takes its first value; an empty value counts as absent (`flavor=`).

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
}

/// The query string is not one serde_qs can read (e.g. `count[a]=1`, or bytes that do not
/// decode to UTF-8).
#[derive(Debug, thiserror::Error)]
#[error("malformed query string: {0}")]
pub struct QueryError(String);

/// Every value of each parameter we read, in order; unknown parameters are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Raw {
    key: Vec<String>,
    ver: Vec<String>,
    arch: Vec<String>,
    flavor: Vec<String>,
    count: Vec<String>,
    i_count: Vec<String>,
    ssid: Vec<String>,
}

/// Parses a raw query string (without the `?`).
pub fn parse(query: &str) -> Result<Params, QueryError> {
    let raw: Raw = serde_qs::Config::new()
        .deserialize_str(query)
        .map_err(|e| QueryError(e.to_string()))?;
    let first = |values: Vec<String>| values.into_iter().find(|v| !v.is_empty());
    Ok(Params {
        key: first(raw.key),
        ver: first(raw.ver),
        arch: first(raw.arch),
        flavor: first(raw.flavor),
        count: first(raw.count).or_else(|| first(raw.i_count)),
        ssid: first(raw.ssid),
    })
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
    }

    #[test]
    fn the_first_of_repeated_values_wins_and_empty_means_absent() {
        let p = parse("key=a&key=b&count=1&count=2&flavor=").unwrap();
        assert_eq!(p.key.as_deref(), Some("a"));
        assert_eq!(p.count.as_deref(), Some("1"));
        assert_eq!(p.flavor, None);
        assert_eq!(parse("key=&key=b").unwrap().key.as_deref(), Some("b"));
    }

    #[test]
    fn percent_encoding_is_decoded_and_bad_escapes_are_kept() {
        assert_eq!(parse("key=a%2Bb+c").unwrap().key.as_deref(), Some("a+b c"));
        assert_eq!(parse("key=%zz").unwrap().key.as_deref(), Some("%zz"));
    }

    #[test]
    fn unreadable_queries_are_errors_not_panics() {
        assert!(parse("count[a]=1").is_err());
        assert!(parse("key=%ff%fe").is_err());
    }
}
