//! The v2 admin paths (`docs/legacy-v2.md` §5 j), on top of the v3 admin API: `/NodeSetAdmin/<id>`,
//! `/NodeRecover/<id>`, `/PauseService`, `/ResumeService`, `/Overtime` and `/Help`.
//!
//! They take an admin's v2 `key` like every v2 call. A success answers the JSON string
//! `"Done"` (as `/Node/done` does) or, for `/Overtime`, a JSON list; refusals are
//! `{"msg": …}` objects with a status that says why.

use warp::http::StatusCode;
use warp::reply::Response;

use super::Legacy;
use super::answer::{V2Error, text_reply, v3_detail};
use super::query::Params;
use crate::client::{ClientError, NodeCommand, PauseRequest};
use crate::http::json;
use crate::protocol::v3::ErrorKind;

/// The default threshold of `/Overtime`, as v2 had it.
pub const OVERTIME_MINUTES: i64 = 60;

/// `/NodeSetAdmin/<id>` (`downtime`) and `/NodeRecover/<id>` (`recover`).
pub async fn node_action(
    legacy: &Legacy,
    params: Params,
    id: &str,
    action: &'static str,
) -> Result<Response, V2Error> {
    let key = params.key.ok_or(V2Error::InvalidKey)?;
    let id = super::node::decimal_id(id).ok_or(V2Error::InvalidNode)?;
    let reason = params
        .reason
        .unwrap_or_else(|| format!("v2 {} call", v2_name(action)));
    let command = NodeCommand {
        action: action.to_owned(),
        reason,
        pool: None,
    };
    legacy
        .client
        .update_node(&legacy.auth(&key), id, &command)
        .await
        .map_err(|e| admin_refusal(e, V2Error::InvalidNode))?;
    tracing::info!(node.id = id, action, "v2 admin call: node {id}: {action}");
    Ok(json(StatusCode::OK, &"Done"))
}

fn v2_name(action: &str) -> &'static str {
    match action {
        "downtime" => "NodeSetAdmin",
        _ => "NodeRecover",
    }
}

/// `/PauseService` and `/ResumeService`, for the whole service or `pool=NAME`.
pub async fn pause(legacy: &Legacy, params: Params, paused: bool) -> Result<Response, V2Error> {
    let key = params.key.ok_or(V2Error::InvalidKey)?;
    let request = PauseRequest {
        paused,
        reason: params.reason.unwrap_or_default(),
    };
    legacy
        .client
        .set_paused(&legacy.auth(&key), params.pool.as_deref(), &request)
        .await
        .map_err(|e| admin_refusal(e, V2Error::InvalidPool))?;
    Ok(json(StatusCode::OK, &"Done"))
}

/// `/Overtime[?minutes=N]`: nodes held longer than N minutes (default 60), as JSON objects
/// with their session (`ssid`, as text, as every v2 answer has it) and tenant.
pub async fn overtime(legacy: &Legacy, params: Params) -> Result<Response, V2Error> {
    let key = params.key.ok_or(V2Error::InvalidKey)?;
    let minutes = match params.minutes.as_deref().map(str::trim) {
        None => OVERTIME_MINUTES,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|m| (0..=super::MAX_MINUTES).contains(m))
            .ok_or_else(|| V2Error::BadParameter("minutes must be an integer >= 0".to_owned()))?,
    };
    let held = legacy
        .client
        .overtime(&legacy.auth(&key), minutes)
        .await
        .map_err(|e| admin_refusal(e, V2Error::InvalidKey))?;
    let rows: Vec<serde_json::Value> = held
        .into_iter()
        .map(|h| {
            serde_json::json!({
                "host_id": h.id,
                "hostname": h.hostname,
                "ip_address": h.ipaddr,
                "node_pool": h.pool,
                "ssid": h.session_id.to_string(),
                "tenant": h.tenant.name,
                "held_since": h.held_since,
                "minutes": h.held_minutes,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &rows))
}

/// `/Help`: the v2 calls, in plain text, for people who type URLs.
pub fn help() -> Response {
    text_reply(StatusCode::OK, HELP)
}

/// What `/Help` says.
pub const HELP: &str = "\
Duffy v2 API (the v2 translation layer of the Rust Duffy)

Every call is a GET; KEY is your API key.

/Node/get?key=KEY[&ver=7][&arch=x86_64][&flavor=FLAVOR][&count=1]
    Get COUNT nodes: {\"hosts\": [HOSTNAME, ...], \"ssid\": \"SSID\"}.
    The plain text \"Insufficient Nodes in READY State\" means: try again later.
/Node/done?key=KEY&ssid=SSID
    Give the nodes of a session back: \"Done\".
/Node/fail?key=KEY&ssid=SSID
    Report the nodes of a session broken: they stay yours for a while to debug,
    then they are taken back and never handed out again.
/Inventory?key=KEY
    Your nodes: [[HOSTNAME, SSID], ...].
/Inventory
    Every node, one 14-column row each.

For admin keys only:

/NodeSetAdmin/ID?key=KEY[&reason=TEXT]
    Take node ID out of service: it is never handed out, provisioned or
    deprovisioned until recovered.
/NodeRecover/ID?key=KEY[&reason=TEXT]
    Bring node ID back into its pool's cycle.
/PauseService?key=KEY[&pool=POOL][&reason=TEXT]
    Pause allocations (of one pool): /Node/get answers \"Insufficient Nodes in
    READY State\" meanwhile; sessions already granted keep running.
/ResumeService?key=KEY[&pool=POOL]
    Resume allocations.
/Overtime?key=KEY[&minutes=60]
    Nodes held for longer than MINUTES, with their session and tenant.
/Help
    This text.
";

/// A refused admin call: an unknown key, a key without admin rights, an unknown node or
/// pool (`missing`), or a request the v3 API turned down (a node in the wrong state).
fn admin_refusal(e: ClientError, missing: V2Error) -> V2Error {
    match e.kind() {
        Some(ErrorKind::Unauthenticated) => V2Error::InvalidKey,
        Some(ErrorKind::Forbidden | ErrorKind::QuotaExceeded) => V2Error::AdminRequired,
        Some(ErrorKind::NotFound) => missing,
        Some(
            ErrorKind::Conflict
            | ErrorKind::Invalid
            | ErrorKind::NoNodes
            | ErrorKind::SessionRetired
            | ErrorKind::TenantRetired
            | ErrorKind::Unprocessable,
        ) => V2Error::Refused(v3_detail(e)),
        Some(ErrorKind::Internal | ErrorKind::Paused | ErrorKind::Unavailable) | None => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_refused_admin_call_has_its_v2_answer() {
        for kind in ErrorKind::ALL {
            let e = ClientError::Api {
                status: reqwest::StatusCode::from_u16(kind.status()).unwrap(),
                kind: Some(kind),
                detail: "node 3 is not in downtime".into(),
            };
            let got = admin_refusal(e, V2Error::InvalidNode);
            let expected = match kind.status() {
                401 => ("invalid_key", "Invalid duffy key"),
                403 => ("admin_required", "Admin key required"),
                404 => ("invalid_node", "Invalid node ID"),
                409 | 422 => ("refused", "node 3 is not in downtime"),
                _ => ("unavailable", ""),
            };
            assert_eq!(got.outcome(), expected.0, "{kind}");
            if !expected.1.is_empty() {
                assert_eq!(got.to_string(), expected.1, "{kind}");
            }
        }
    }
}
