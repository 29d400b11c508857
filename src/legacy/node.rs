//! `/Node/get`, `/Node/done` and `/Node/fail`: sessions in v2 clothes.

use reqwest::StatusCode as V3Status;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::Legacy;
use super::answer::{V2Error, json_reply};
use super::poolmap::Wanted;
use super::query::Params;
use crate::client::{ClientError, NodesSpec, SessionUpdate};

/// `/Node/get?key&ver&arch&flavor&count`: a session of `count` nodes from the mapped pool.
///
/// Checks run in the contract's order: key present, `count`, pool mapping, the pool's
/// existence and fill level, then the allocation.
pub async fn get(legacy: &Legacy, params: Params) -> Result<Response, V2Error> {
    let key = params.key.ok_or(V2Error::InvalidKey)?;
    let (count, written) = count(params.count.as_deref())?;
    let wanted = Wanted::new(params.ver, params.arch, params.flavor);
    let no_pool = || V2Error::AllocationFailed(format!("no pool for {}", wanted.describe()));
    let pool = legacy.poolmap.resolve(&wanted).ok_or_else(no_pool)?;
    let auth = legacy.auth(&key);
    let fill_level = legacy.fill_level(&auth, &pool).await?.ok_or_else(no_pool)?;
    // A pool without a fill level is bounded by the largest quantity v3 accepts.
    let max = fill_level.unwrap_or(MAX_QUANTITY);
    if count > max {
        return Err(V2Error::AllocationFailed(format!(
            "count={written} exceeds the maximum of {max} for pool {pool}"
        )));
    }
    let spec = NodesSpec {
        pool: pool.clone(),
        quantity: count,
    };
    let session = legacy
        .client
        .request_session(&auth, &[spec])
        .await
        .map_err(|e| match e {
            ClientError::Api { status, detail } => match status {
                V3Status::UNPROCESSABLE_ENTITY if detail.starts_with("can't reserve nodes") => {
                    V2Error::Insufficient
                }
                // Contextualization failed and no replacement was left: no ready node.
                V3Status::SERVICE_UNAVAILABLE => V2Error::Insufficient,
                V3Status::FORBIDDEN if detail.starts_with("quota exceeded") => {
                    V2Error::AllocationFailed(detail)
                }
                V3Status::UNAUTHORIZED | V3Status::FORBIDDEN => V2Error::InvalidKey,
                // The pool went away between the lookup and the allocation.
                V3Status::NOT_FOUND => no_pool(),
                // v3's own refusals (a retired tenant…) cannot succeed on a retry.
                V3Status::UNPROCESSABLE_ENTITY => V2Error::AllocationFailed(detail),
                // Anything else (a proxy's 429 or 413, a 5xx) is not an answer about the
                // request: clients should retry.
                _ => V2Error::Unavailable(ClientError::Api { status, detail }),
            },
            other => other.into(),
        })?;
    let mut nodes = session.nodes;
    nodes.sort_by_key(|n| n.id);
    let hosts: Vec<String> = nodes.into_iter().filter_map(|n| n.hostname).collect();
    tracing::info!(session = session.id, pool = %pool, count, "v2 Node/get: session created");
    Ok(json_reply(
        StatusCode::OK,
        &json!({"hosts": hosts, "ssid": session.id.to_string()}),
    ))
}

/// `/Node/done?key&ssid`: retires the session; its nodes are deprovisioned.
pub async fn done(legacy: &Legacy, params: Params) -> Result<Response, V2Error> {
    let update = SessionUpdate {
        active: Some(false),
        ..SessionUpdate::default()
    };
    change(legacy, params, &update).await
}

/// `/Node/fail?key&ssid`: holds the session for `fail-hold` and marks its nodes failed, so
/// they are deprovisioned and never handed out again when it ends.
pub async fn fail(legacy: &Legacy, params: Params) -> Result<Response, V2Error> {
    let update = SessionUpdate {
        expires_at: Some(format!("+{}s", legacy.fail_hold.num_seconds())),
        fail_nodes: Some(true),
        ..SessionUpdate::default()
    };
    change(legacy, params, &update).await
}

/// Applies `update` to the session named by `ssid`, answering `"Done"`.
async fn change(
    legacy: &Legacy,
    params: Params,
    update: &SessionUpdate,
) -> Result<Response, V2Error> {
    let key = params.key.ok_or(V2Error::InvalidKey)?;
    let ssid = params
        .ssid
        .as_deref()
        .and_then(decimal_id)
        .ok_or(V2Error::InvalidSession)?;
    legacy
        .client
        .update_session(&legacy.auth(&key), ssid, update)
        .await
        .map_err(|e| match e {
            ClientError::Api { status, detail } => match status {
                V3Status::NOT_FOUND => V2Error::InvalidSession,
                V3Status::UNAUTHORIZED | V3Status::FORBIDDEN => V2Error::InvalidKey,
                V3Status::UNPROCESSABLE_ENTITY => V2Error::NotInProd,
                _ => V2Error::Unavailable(ClientError::Api { status, detail }),
            },
            other => other.into(),
        })?;
    tracing::info!(session = ssid, "v2 session changed");
    Ok(json_reply(StatusCode::OK, &"Done"))
}

/// The largest `quantity` the v3 API takes.
const MAX_QUANTITY: i64 = i32::MAX as i64;

/// `count` (default 1) as a positive integer, with its text for messages; digits too many
/// for an `i64` are a count above every maximum, not a malformed one.
fn count(text: Option<&str>) -> Result<(i64, String), V2Error> {
    let Some(text) = text.map(str::trim) else {
        return Ok((1, "1".into()));
    };
    let invalid = || V2Error::AllocationFailed("count must be an integer >= 1".into());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n = text.parse::<i64>().unwrap_or(i64::MAX);
    if n < 1 {
        return Err(invalid());
    }
    Ok((n, text.trim_start_matches('0').to_owned()))
}

/// A v3 session (or node) id in decimal; v2-era ids such as `578e1a0b` are not.
pub(super) fn decimal_id(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().filter(|id| *id >= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(count(None).unwrap(), (1, "1".into()));
        assert_eq!(count(Some("3")).unwrap(), (3, "3".into()));
        assert_eq!(count(Some(" 02 ")).unwrap(), (2, "2".into()));
        assert_eq!(
            count(Some("99999999999999999999")).unwrap(),
            (i64::MAX, "99999999999999999999".into())
        );
        for bad in ["0", "000", "-1", "+1", "abc", "1.5", ""] {
            assert!(
                matches!(count(Some(bad)), Err(V2Error::AllocationFailed(m)) if m == "count must be an integer >= 1"),
                "{bad}"
            );
        }
    }

    #[test]
    fn session_ids() {
        assert_eq!(decimal_id("42"), Some(42));
        for bad in [
            "",
            "0",
            "578e1a0b",
            "-3",
            "+3",
            " 3",
            "99999999999999999999",
        ] {
            assert_eq!(decimal_id(bad), None, "{bad}");
        }
    }
}
