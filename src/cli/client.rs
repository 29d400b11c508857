//! `duffy client`: the v3 API from the command line, with the original client's outputs.
//!
//! Scripts parse this output with jq and shell, so what reaches stdout is byte for byte what
//! Duffy 3.4.0's client prints for the same answer (`docs/cli.md` §5–§6). Two fixes: an API error
//! exits 1 (stdout unchanged, so `jq .error.detail` keeps working), and `--format flat`
//! prints `error='…'` where the original crashed. Anything that is not the server's answer
//! (no URL, unreachable server, a bad argument) is one line on stderr.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::output::{self, Format};
use crate::client::{Answer, Auth, Call, Client, NodesSpec};
use crate::config::{LoadedConfig, parse_api_duration};

/// The bound on each request: an allocation may wait for contextualization.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// `duffy client [--url U] [--auth-name N] [--auth-key K] [--format F] SUBCOMMAND`
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The API base URL, e.g. https://duffy.example.org/api/v1 (default: client.url).
    #[arg(long)]
    pub url: Option<String>,
    /// The tenant name (default: client.auth.name).
    #[arg(long = "auth-name")]
    pub auth_name: Option<String>,
    /// The tenant's API key (default: client.auth.key).
    #[arg(long = "auth-key")]
    pub auth_key: Option<String>,
    /// How to print answers.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// What to do.
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// The `client` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// List the pools and their fill levels.
    ListPools,
    /// Show a pool and its node counts.
    ShowPool {
        /// The pool.
        name: String,
    },
    /// List your active sessions.
    ListSessions,
    /// Show a session.
    ShowSession {
        /// The session id.
        session_id: i64,
    },
    /// Ask for nodes: `pool=NAME,quantity=N`, one argument per pool.
    RequestSession {
        /// `pool=NAME,quantity=N`, repeatable.
        #[arg(required = true, value_parser = parse_spec, value_name = "pool=NAME,quantity=N")]
        nodes_specs: Vec<SpecArg>,
    },
    /// Give a session's nodes back.
    RetireSession {
        /// The session id.
        session_id: i64,
    },
    /// Move a session's expiry by a duration such as `+2h` (a missing sign means `+`).
    ExtendSession {
        /// The session id.
        session_id: i64,
        /// E.g. `+2h`, `30m`, `-1h`.
        #[arg(value_parser = parse_delta, allow_hyphen_values = true)]
        duration: String,
    },
}

/// A `pool=…,quantity=…` argument: both keys present once; the quantity is checked later,
/// as the original checks it after parsing.
#[derive(Debug, Clone)]
pub struct SpecArg {
    pool: String,
    quantity: String,
}

fn parse_spec(arg: &str) -> Result<SpecArg, String> {
    let (mut pool, mut quantity) = (None, None);
    for part in arg.split(',') {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let slot = match key {
            "pool" => &mut pool,
            "quantity" => &mut quantity,
            _ => return Err("Both `pool` and `quantity` must be set".into()),
        };
        if slot.replace(value.to_owned()).is_some() {
            return Err(format!("Duplicate key: {key}"));
        }
    }
    match (pool, quantity) {
        (Some(pool), Some(quantity)) => Ok(SpecArg { pool, quantity }),
        _ => Err("Both `pool` and `quantity` must be set".into()),
    }
}

fn parse_delta(arg: &str) -> Result<String, String> {
    let delta = if arg.starts_with(['+', '-']) {
        arg.to_owned()
    } else {
        format!("+{arg}")
    };
    parse_api_duration(&delta).map_err(|e| e.to_string())?;
    Ok(delta)
}

/// Something other than the server's answer went wrong; printed as one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Neither `--url` nor `client.url`.
    #[error("no API URL: give --url or set client.url in the configuration")]
    NoUrl,
    /// No tenant name or key.
    #[error(
        "no credentials: give --auth-name and --auth-key or set client.auth.name and client.auth.key in the configuration"
    )]
    NoAuth,
    /// A `quantity` that is not a positive integer.
    #[error("invalid quantity '{0}': must be an integer >= 1")]
    Quantity(String),
    /// The HTTP client failed (bad URL, unreachable server, timeout).
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// A success status whose body is not JSON, or a success status other than expected.
    #[error("Can't process response: {0}")]
    Response(String),
}

/// Runs a `client` subcommand.
pub async fn run(args: ClientArgs, loaded: &LoadedConfig) -> ExitCode {
    match call(&args, loaded).await {
        Ok((text, success)) => {
            print!("{text}");
            if success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends the subcommand's request; returns what to print and whether it was a success.
async fn call(args: &ClientArgs, loaded: &LoadedConfig) -> Result<(String, bool), CliError> {
    let configured = loaded.config.client.as_ref();
    let configured_auth = configured.and_then(|c| c.auth.as_ref());
    let url = args
        .url
        .clone()
        .or_else(|| configured.and_then(|c| c.url.clone()))
        .ok_or(CliError::NoUrl)?;
    let name = args
        .auth_name
        .clone()
        .or_else(|| configured_auth.and_then(|a| a.name.clone()));
    let key = args
        .auth_key
        .clone()
        .or_else(|| configured_auth.and_then(|a| a.key.map(|k| k.to_string())));
    let (Some(name), Some(key)) = (name, key) else {
        return Err(CliError::NoAuth);
    };
    let call = match &args.command {
        ClientCommand::ListPools => Call::ListPools,
        ClientCommand::ShowPool { name } => Call::ShowPool(name.clone()),
        ClientCommand::ListSessions => Call::ListSessions,
        ClientCommand::ShowSession { session_id } => Call::ShowSession(*session_id),
        ClientCommand::RequestSession { nodes_specs } => Call::RequestSession(
            nodes_specs
                .iter()
                .map(|spec| {
                    let quantity = spec
                        .quantity
                        .trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|q| *q >= 1)
                        .ok_or_else(|| CliError::Quantity(spec.quantity.clone()))?;
                    Ok(NodesSpec {
                        quantity,
                        pool: spec.pool.clone(),
                    })
                })
                .collect::<Result<_, CliError>>()?,
        ),
        ClientCommand::RetireSession { session_id } => Call::RetireSession(*session_id),
        ClientCommand::ExtendSession {
            session_id,
            duration,
        } => Call::ExtendSession(*session_id, duration.clone()),
    };
    let client = Client::new(&url, TIMEOUT)?;
    let auth = Auth::Basic {
        name,
        key: SecretString::from(key),
    };
    let answer = match &call {
        // A fresh key per command: its retries can never make a second session.
        Call::RequestSession(_) => {
            let key = uuid::Uuid::new_v4().to_string();
            client.send_retrying(&auth, &call, &key).await?
        }
        _ => client.send(&auth, &call).await?,
    };
    let (value, success) = shown(&answer)?;
    Ok((output::render(args.format, &value), success))
}

/// What the original prints for an answer: the body of a success, else the error wrapper
/// `{"error": {"detail": …}}` (a non-JSON error body as text).
fn shown(answer: &Answer) -> Result<(Value, bool), CliError> {
    let status = answer.status;
    let body: Option<Value> = serde_json::from_slice(&answer.body).ok();
    if status == answer.expected {
        return match body {
            Some(value) => Ok((value, true)),
            None => Err(CliError::Response(format!(
                "{status}: the body is not JSON"
            ))),
        };
    }
    if status.is_success() {
        return Err(CliError::Response(status.to_string()));
    }
    let error = match body {
        // The original's error model keeps extra keys, after `detail`.
        Some(Value::Object(mut map)) if map.contains_key("detail") => {
            let mut error = serde_json::Map::new();
            error.insert("detail".into(), map.remove("detail").unwrap_or(Value::Null));
            error.extend(map);
            Value::Object(error)
        }
        Some(other) => json!({ "detail": other }),
        None => json!({"detail": String::from_utf8_lossy(&answer.body)}),
    };
    Ok((json!({ "error": error }), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_need_both_keys_once() {
        let s = parse_spec("pool=p,quantity=2").unwrap();
        assert_eq!((s.pool.as_str(), s.quantity.as_str()), ("p", "2"));
        let s = parse_spec("quantity=x,pool=p").unwrap();
        assert_eq!(s.quantity, "x", "checked later, like the original");
        for bad in [
            "pool=x",
            "quantity=1",
            "pool=a,quantity=1,size=3",
            "",
            "pool",
        ] {
            assert_eq!(
                parse_spec(bad).unwrap_err(),
                "Both `pool` and `quantity` must be set",
                "{bad}"
            );
        }
        assert_eq!(
            parse_spec("pool=a,pool=b,quantity=1").unwrap_err(),
            "Duplicate key: pool"
        );
    }

    #[test]
    fn deltas_get_a_sign() {
        assert_eq!(parse_delta("2h").unwrap(), "+2h");
        assert_eq!(parse_delta("-30m").unwrap(), "-30m");
        assert!(parse_delta("soon").is_err());
    }

    fn answer(status: u16, expected: u16, body: &str) -> Answer {
        Answer {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            expected: reqwest::StatusCode::from_u16(expected).unwrap(),
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn answers_are_shown_as_the_original_shows_them() {
        let (v, ok) = shown(&answer(201, 201, r#"{"action":"post","b":1}"#)).unwrap();
        assert!(ok);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"action":"post","b":1}"#
        );
        let (v, ok) = shown(&answer(404, 200, r#"{"x":1,"detail":"Not Found"}"#)).unwrap();
        assert!(!ok);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"error":{"detail":"Not Found","x":1}}"#
        );
        let (v, _) = shown(&answer(422, 201, r#"{"detail":[{"loc":["body"]}]}"#)).unwrap();
        assert_eq!(v, json!({"error": {"detail": [{"loc": ["body"]}]}}));
        let (v, _) = shown(&answer(502, 200, "<html>Bad Gateway</html>")).unwrap();
        assert_eq!(v, json!({"error": {"detail": "<html>Bad Gateway</html>"}}));
        let e = shown(&answer(200, 201, "{}")).unwrap_err();
        assert_eq!(e.to_string(), "Can't process response: 200 OK");
        assert!(shown(&answer(200, 200, "not json")).is_err());
    }
}
