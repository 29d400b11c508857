//! Reading the `Authorization` header: HTTP Basic (realm `duffy`) as the original, plus our
//! `Bearer <api key>`. Filters only extract the header; handlers call [`require`] or
//! [`optional`] first thing, so an auth error always wins over a validation error.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::State;
use super::error::ApiError;
use crate::engine::Credentials;
use crate::store::tenants::Tenant;

/// Decodes the header as Starlette's `HTTPBasic` does: the scheme is case-insensitive, the
/// decoded text must be ASCII and hold a colon. `Ok(None)` when there is no usable scheme.
pub fn parse(header: Option<&str>) -> Result<Option<Credentials>, ApiError> {
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let (scheme, param) = header.split_once(' ').unwrap_or((header, ""));
    let param = param.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(param)
            .ok()
            .filter(|bytes| bytes.is_ascii())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(ApiError::InvalidCredentials)?;
        let (name, key) = decoded
            .split_once(':')
            .ok_or(ApiError::InvalidCredentials)?;
        return Ok(Some(Credentials::Basic {
            name: name.to_owned(),
            key: key.to_owned(),
        }));
    }
    if scheme.eq_ignore_ascii_case("bearer") && !param.is_empty() {
        return Ok(Some(Credentials::Bearer {
            key: param.to_owned(),
        }));
    }
    Ok(None)
}

/// The authenticated tenant; 401/403 otherwise.
pub async fn require(state: &State, header: Option<&str>) -> Result<Tenant, ApiError> {
    let creds = parse(header)?.ok_or(ApiError::NotAuthenticated)?;
    Ok(state.engine.authenticate(&creds).await?)
}

/// The tenant if credentials were sent (wrong ones still fail), `None` for anonymous: no
/// header, or a scheme that is neither Basic nor Bearer, as Starlette's `HTTPBasic` with
/// `auto_error=False` treats it.
pub async fn optional(state: &State, header: Option<&str>) -> Result<Option<Tenant>, ApiError> {
    match parse(header)? {
        None => Ok(None),
        Some(creds) => Ok(Some(state.engine.authenticate(&creds).await?)),
    }
}

/// An admin tenant; 403 for others.
pub async fn require_admin(state: &State, header: Option<&str>) -> Result<Tenant, ApiError> {
    let tenant = require(state, header).await?;
    if !tenant.is_admin {
        return Err(ApiError::Forbidden);
    }
    Ok(tenant)
}

/// For the anonymous-read endpoints (`GET /pools`, `/nodes`): no check at all while
/// `app.anonymous-read` is on (the header is not even looked at, as in the original);
/// otherwise any authenticated tenant.
pub async fn reader(state: &State, header: Option<&str>) -> Result<(), ApiError> {
    if state.engine.config().app.anonymous_read {
        return Ok(());
    }
    require(state, header).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(text: &str) -> String {
        format!("Basic {}", STANDARD.encode(text))
    }

    #[test]
    fn basic_credentials_decode() {
        let creds = parse(Some(&basic("tenant:key:with:colons")))
            .unwrap()
            .unwrap();
        assert_eq!(
            creds,
            Credentials::Basic {
                name: "tenant".into(),
                key: "key:with:colons".into()
            }
        );
        let lower = format!("basic {}", STANDARD.encode("a:b"));
        assert!(parse(Some(&lower)).unwrap().is_some());
    }

    #[test]
    fn broken_basic_headers_are_invalid_credentials() {
        for header in [
            "Basic !!!",
            "Basic",
            &basic("no-colon"),
            &basic("caf\u{e9}:key"),
        ] {
            assert!(
                matches!(parse(Some(header)), Err(ApiError::InvalidCredentials)),
                "{header}"
            );
        }
    }

    #[test]
    fn other_schemes_are_no_credentials() {
        assert_eq!(parse(None).unwrap(), None);
        assert_eq!(parse(Some("")).unwrap(), None);
        assert_eq!(parse(Some("Digest abc")).unwrap(), None);
        assert_eq!(parse(Some("Bearer")).unwrap(), None);
        assert_eq!(
            parse(Some("Bearer abc")).unwrap(),
            Some(Credentials::Bearer { key: "abc".into() })
        );
    }
}
