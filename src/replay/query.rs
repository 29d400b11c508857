//! Raw query strings: reading parameters and replacing values without touching the rest.
//!
//! Recorded queries are replayed as they were sent (v2 clients do not URL-encode), so a
//! query is only ever split at `&` and at the first `=` of each part; what is not replaced
//! goes out byte for byte.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// A parameter name or value as a server decodes it: `+` is a space, `%XX` a byte.
fn decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains(['+', '%']) {
        return Cow::Borrowed(raw);
    }
    let spaced = raw.replace('+', " ");
    Cow::Owned(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

/// The decoded value of the first parameter called `name` (`Some("")` for `name=` or `name`).
pub fn first(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .map(|part| part.split_once('=').unwrap_or((part, "")))
        .find(|(n, _)| decode(n) == name)
        .map(|(_, v)| decode(v).into_owned())
}

/// The query with the value of every parameter called `name` rewritten by `f` (which gets
/// the raw value and returns the raw replacement).
pub fn rewrite(query: &str, name: &str, mut f: impl FnMut(&str) -> String) -> String {
    query
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((n, v)) if decode(n) == name => format!("{n}={}", f(v)),
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a value for a query component.
pub fn encode(value: &str) -> String {
    const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, COMPONENT).to_string()
}

/// The query with every `key=` value shown as `***`: API keys never reach the output.
pub fn mask_keys(query: &str) -> String {
    rewrite(query, "key", |v| {
        if v.is_empty() {
            String::new()
        } else {
            "***".to_owned()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_and_is_decoded() {
        let q = "key=a%20b&ssid=1&ssid=2&flag&k%65y=x&plus=a+b";
        assert_eq!(first(q, "key").as_deref(), Some("a b"));
        assert_eq!(first(q, "ssid").as_deref(), Some("1"));
        assert_eq!(first(q, "flag").as_deref(), Some(""));
        assert_eq!(first(q, "plus").as_deref(), Some("a b"));
        assert_eq!(first(q, "count"), None);
        assert_eq!(first("", "key"), None);
        assert_eq!(first("%ZZ=1&key=%FF", "key").as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn rewrite_touches_only_the_named_values() {
        assert_eq!(
            rewrite("ver=7&key=old&x=%zz&key=other&keys=k", "key", |_| "new"
                .into()),
            "ver=7&key=new&x=%zz&key=new&keys=k"
        );
        // An encoded name is the same parameter for the server, so it is replaced too.
        assert_eq!(rewrite("k%65y=old", "key", |_| "n".into()), "k%65y=n");
        assert_eq!(rewrite("key", "key", |_| "n".into()), "key");
    }

    #[test]
    fn keys_are_masked() {
        assert_eq!(
            mask_keys("key=8f2a-secret&ver=7&key=&k%65y=s2&monkey=m"),
            "key=***&ver=7&key=&k%65y=***&monkey=m"
        );
        assert_eq!(mask_keys(""), "");
    }

    #[test]
    fn values_are_encoded_as_components() {
        assert_eq!(encode("a b&c=d/é~"), "a%20b%26c%3Dd%2F%C3%A9~");
    }
}
