//! `/Node/get`, `/Node/done` and `/Node/fail`: sessions in v2 clothes.

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::Legacy;
use super::answer::{V2Error, v3_detail};
use super::poolmap::Wanted;
use super::query::Params;
use crate::client::{ClientError, NodesSpec, SessionUpdate};
use crate::http::json;
use crate::protocol::v3::{ErrorKind, MAX_QUANTITY};

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
        .map_err(|e| allocation_refused(e, no_pool))?;
    if !session.active {
        // A retry of ours found the session its first attempt made, and it was undone
        // since (a crash while its keys were pushed): nothing to hand out; the client
        // waits and asks again, as for a pool without enough ready nodes.
        return Err(V2Error::Insufficient);
    }
    let mut nodes = session.nodes;
    nodes.sort_by_key(|n| n.id);
    let hosts: Vec<String> = nodes.into_iter().filter_map(|n| n.hostname).collect();
    tracing::info!(session = session.id, pool = %pool, count, "v2 Node/get: session created");
    Ok(json(
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
        .map_err(change_refused)?;
    tracing::info!(session = ssid, "v2 session changed");
    Ok(json(StatusCode::OK, &"Done"))
}

/// The v2 answer to a refused `POST /sessions`, decided by the kind of the refusal, never by
/// its wording (`docs/legacy-v2.md` §5 b and i): no ready node, paused allocations or a
/// failed contextualization make clients wait and retry; a quota or another refusal of the
/// request makes them stop; anything that is not an answer about the request (a 5xx, a
/// proxy's 429 or 413) is [`V2Error::Unavailable`], which they retry too.
fn allocation_refused(e: ClientError, no_pool: impl FnOnce() -> V2Error) -> V2Error {
    let Some(kind) = e.kind() else {
        return e.into();
    };
    match kind {
        ErrorKind::NoNodes | ErrorKind::Paused | ErrorKind::Unavailable => V2Error::Insufficient,
        // v3's own refusals (a quota, a retired tenant…) cannot succeed on a retry.
        ErrorKind::QuotaExceeded
        | ErrorKind::Invalid
        | ErrorKind::SessionRetired
        | ErrorKind::TenantRetired
        | ErrorKind::Unprocessable => V2Error::AllocationFailed(v3_detail(e)),
        ErrorKind::Unauthenticated | ErrorKind::Forbidden => V2Error::InvalidKey,
        // The pool went away between the lookup and the allocation.
        ErrorKind::NotFound => no_pool(),
        ErrorKind::Conflict | ErrorKind::Internal => e.into(),
    }
}

/// The v2 answer to a refused `PUT /sessions/{id}` (`/Node/done`, `/Node/fail`), by the
/// kind of the refusal: a session that is not there, credentials that are not the
/// owner's, or a session that can no longer change (retired: a 422 of any kind).
fn change_refused(e: ClientError) -> V2Error {
    match e.kind() {
        Some(ErrorKind::NotFound) => V2Error::InvalidSession,
        Some(ErrorKind::Unauthenticated | ErrorKind::Forbidden | ErrorKind::QuotaExceeded) => {
            V2Error::InvalidKey
        }
        Some(
            ErrorKind::SessionRetired
            | ErrorKind::Invalid
            | ErrorKind::NoNodes
            | ErrorKind::TenantRetired
            | ErrorKind::Unprocessable,
        ) => V2Error::NotInProd,
        Some(
            ErrorKind::Conflict | ErrorKind::Internal | ErrorKind::Paused | ErrorKind::Unavailable,
        )
        | None => e.into(),
    }
}

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

    fn refusal(kind: Option<ErrorKind>, status: u16, detail: &str) -> ClientError {
        ClientError::Api {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            kind,
            detail: detail.into(),
        }
    }

    /// What a v2 client is told, as the outcome label and the text of the answer.
    fn told(e: V2Error) -> (&'static str, String) {
        (e.outcome(), e.to_string())
    }

    #[test]
    fn every_kind_of_refused_allocation_has_its_v2_answer() {
        let no_pool = || V2Error::AllocationFailed("no pool for ver=9".into());
        for kind in ErrorKind::ALL {
            let expected = match kind {
                ErrorKind::NoNodes | ErrorKind::Paused | ErrorKind::Unavailable => (
                    "insufficient",
                    "Insufficient Nodes in READY State".to_owned(),
                ),
                ErrorKind::QuotaExceeded
                | ErrorKind::Invalid
                | ErrorKind::SessionRetired
                | ErrorKind::TenantRetired
                | ErrorKind::Unprocessable => (
                    "allocation_failed",
                    "Failed to allocate nodes: in any words".to_owned(),
                ),
                ErrorKind::Unauthenticated | ErrorKind::Forbidden => {
                    ("invalid_key", "Invalid duffy key".to_owned())
                }
                ErrorKind::NotFound => (
                    "allocation_failed",
                    "Failed to allocate nodes: no pool for ver=9".to_owned(),
                ),
                ErrorKind::Conflict | ErrorKind::Internal => (
                    "unavailable",
                    format!(
                        "the Duffy API gave no usable answer: the Duffy API answered {}: in any words",
                        reqwest::StatusCode::from_u16(kind.status()).unwrap()
                    ),
                ),
            };
            let e = refusal(Some(kind), kind.status(), "in any words");
            assert_eq!(told(allocation_refused(e, no_pool)), expected, "{kind}");
        }
    }

    #[test]
    fn the_words_of_a_refusal_never_decide() {
        let no_pool = || V2Error::AllocationFailed("no pool".into());
        for kind in ErrorKind::ALL {
            let outcomes: Vec<&str> = [
                "can't reserve nodes: quantity=2 pool='p'",
                "quota exceeded: requested nodes (2) + current allocation (9) = 11 > 10",
                "reworded entirely",
            ]
            .into_iter()
            .map(|words| allocation_refused(refusal(Some(kind), kind.status(), words), no_pool))
            .map(|e| e.outcome())
            .collect();
            assert!(
                outcomes.iter().all(|o| *o == outcomes[0]),
                "{kind}: {outcomes:?}"
            );
        }
        // Without a kind (a proxy's 429 or 502), retry later.
        let e = refusal(None, 502, "can't reserve nodes: quantity=2 pool='p'");
        assert_eq!(allocation_refused(e, no_pool).outcome(), "unavailable");
    }

    #[test]
    fn every_kind_of_refused_session_change_has_its_v2_answer() {
        for kind in ErrorKind::ALL {
            let expected = match kind.status() {
                404 => "invalid_session",
                401 | 403 => "invalid_key",
                422 => "not_in_prod",
                _ => "unavailable",
            };
            let e = refusal(Some(kind), kind.status(), "words");
            assert_eq!(change_refused(e).outcome(), expected, "{kind}");
        }
        assert_eq!(
            change_refused(refusal(None, 429, "slow down")).outcome(),
            "unavailable"
        );
        assert_eq!(
            change_refused(ClientError::Credentials).outcome(),
            "invalid_key"
        );
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
