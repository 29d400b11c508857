//! `duffy admin`: tenants managed directly in the database, with the original's output
//! lines (`docs/cli.md` §3) so that scripts around them keep working; ours: the node, pause,
//! overtime and pool-retirement controls of the admin API, on the database too (they
//! work while the server is down; the server sees their effect at once). Provisioning and
//! deprovisioning runs they start are made by this process, which waits for them.

use std::process::ExitCode;
use std::sync::Arc;

use chrono::{NaiveDateTime, TimeDelta};
use clap::{ArgAction, Args, Subcommand};
use uuid::Uuid;

use crate::app;
use crate::config::{LoadedConfig, parse_config_duration_str, python_timedelta};
use crate::contextualize::Ssh;
use crate::engine::admin::{NodeAction, NodeCommand, cli_actor};
use crate::engine::instances::{self, Role};
use crate::engine::retire_pool::RetirePool;
use crate::engine::tenants::{ApiKeyChange, ShownKey, TenantChange, TenantRequest, TenantUpdate};
use crate::engine::{Engine, EngineError, seconds};
use crate::mechanisms::Mechanisms;
use crate::protocol::v3::MAX_QUANTITY;
use crate::store::nodes::NodeState;
use crate::store::tenants::Tenant;

/// The `admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List tenants, one per line, sorted by name.
    ListTenants(ListArgs),
    /// Show one tenant.
    ShowTenant {
        /// Tenant name.
        name: String,
    },
    /// Create a tenant and print its API key.
    CreateTenant(CreateArgs),
    /// Retire (or unretire) a tenant.
    RetireTenant(RetireArgs),
    /// Change a tenant's keys, quota or lifetimes.
    UpdateTenant(UpdateArgs),
    /// The operators' controls (ours), at the same level as the tenant commands.
    #[command(flatten)]
    Ops(OpsCommand),
}

/// Nodes, pauses, overtime and retired pools: the admin API's controls on the database.
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// List live nodes, optionally by state and pool.
    ListNodes(ListNodesArgs),
    /// Take a node out of service: never handed out, provisioned or deprovisioned.
    DowntimeNode(NodeArgs),
    /// Bring a node back from downtime to the state it was taken from.
    RecoverNode(NodeArgs),
    /// Forget a failed, unused or downtime node (it ends done; its machine is left alone).
    RetireNode(NodeArgs),
    /// Run the pool's provisioning on a node again and wait for it.
    ProvisionNode(NodeRunArgs),
    /// Run the pool's deprovisioning on a node and wait for it.
    DeprovisionNode(NodeRunArgs),
    /// Pause allocations of the whole service, or of one pool.
    PauseAllocations(PauseArgs),
    /// Resume allocations of the whole service, or of one pool.
    ResumeAllocations(PauseArgs),
    /// List what is paused.
    ListPauses,
    /// List nodes held by sessions for longer than a threshold.
    ListOvertime(OvertimeArgs),
    /// Retire a pool removed from the configuration: its live nodes end done (no
    /// mechanism runs); with --purge its history is deleted too.
    RetirePool(RetirePoolArgs),
}

/// `list-nodes [--state STATE]… [--pool POOL]`
#[derive(Debug, Args)]
pub struct ListNodesArgs {
    /// Only nodes in this state (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    state: Vec<String>,
    /// Only nodes of this pool.
    #[arg(long)]
    pool: Option<String>,
}

/// `<action>-node ID [--reason TEXT]`
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Node id.
    id: i64,
    /// Why; recorded in the node's data.admin_log.
    #[arg(long, default_value = "")]
    reason: String,
}

/// `provision-node|deprovision-node ID [--pool POOL] [--reason TEXT]`
#[derive(Debug, Args)]
pub struct NodeRunArgs {
    /// Node id.
    id: i64,
    /// The pool whose mechanism runs (default: the node's).
    #[arg(long)]
    pool: Option<String>,
    /// Why; recorded in the node's data.admin_log.
    #[arg(long, default_value = "")]
    reason: String,
}

/// `pause-allocations|resume-allocations [--pool POOL] [--reason TEXT]`
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Only this pool (default: the whole service).
    #[arg(long)]
    pool: Option<String>,
    /// Why; shown to clients in the 503 they get.
    #[arg(long, default_value = "")]
    reason: String,
}

/// `retire-pool NAME [--purge] [--reason TEXT]`
#[derive(Debug, Args)]
pub struct RetirePoolArgs {
    /// The pool, no longer in the configuration.
    name: String,
    /// Also delete its history: its nodes, their links to sessions, and the sessions left
    /// without any node.
    #[arg(long)]
    purge: bool,
    /// Why; recorded in each retired node's data.admin_log.
    #[arg(long, default_value = "")]
    reason: String,
}

/// `list-overtime [--minutes N]`
#[derive(Debug, Args)]
pub struct OvertimeArgs {
    /// The threshold in minutes.
    #[arg(long, default_value_t = crate::api::v1::nodes::OVERTIME_MINUTES,
          value_parser = clap::value_parser!(i64).range(0..=52_704_000))]
    minutes: i64,
}

/// `list-tenants [--quiet/--no-quiet] [--active/--all]`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print only the names.
    #[arg(long, overrides_with = "no_quiet")]
    quiet: bool,
    /// Print `OK: <name>` lines (the default).
    #[arg(long = "no-quiet", overrides_with = "quiet")]
    no_quiet: bool,
    /// Only active tenants (the default).
    #[arg(long, overrides_with = "all")]
    active: bool,
    /// Retired tenants too.
    #[arg(long, overrides_with = "active")]
    all: bool,
}

/// `create-tenant NAME SSH_KEY [options]`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Tenant name.
    name: String,
    /// SSH public key(s) for the tenant's nodes.
    ssh_key: String,
    /// Give the tenant admin powers.
    #[arg(long = "is-admin", overrides_with = "no_is_admin")]
    is_admin: bool,
    /// No admin powers (the default).
    #[arg(long = "no-is-admin", overrides_with = "is_admin")]
    no_is_admin: bool,
    /// Node quota, or `none` for the default.
    #[arg(long = "node-quota", value_parser = parse_quota)]
    node_quota: Option<OrDefault<i64>>,
    /// Session lifetime (e.g. 6h), or `none` for the default.
    #[arg(long = "session-lifetime", value_parser = parse_lifetime)]
    session_lifetime: Option<OrDefault<TimeDelta>>,
    /// Maximum session lifetime, or `none` for the default.
    #[arg(long = "session-lifetime-max", value_parser = parse_lifetime)]
    session_lifetime_max: Option<OrDefault<TimeDelta>>,
}

/// `retire-tenant NAME [--retire/--unretire]`
#[derive(Debug, Args)]
pub struct RetireArgs {
    /// Tenant name.
    name: String,
    /// Retire (the default).
    #[arg(long, overrides_with = "unretire")]
    retire: bool,
    /// Bring a retired tenant back.
    #[arg(long, overrides_with = "retire", action = ArgAction::SetTrue)]
    unretire: bool,
}

/// `update-tenant NAME [options]`
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Tenant name.
    name: String,
    /// New SSH key(s).
    #[arg(long = "ssh-key")]
    ssh_key: Option<String>,
    /// A new API key (a UUID), or `reset` for a random one.
    #[arg(long = "api-key", value_parser = parse_api_key)]
    api_key: Option<ApiKeyChange>,
    /// Node quota, or `none`/`null` for the default.
    #[arg(long = "node-quota", value_parser = parse_quota)]
    node_quota: Option<OrDefault<i64>>,
    /// Session lifetime, or `none`/`null` for the default.
    #[arg(long = "session-lifetime", value_parser = parse_lifetime)]
    session_lifetime: Option<OrDefault<TimeDelta>>,
    /// Maximum session lifetime, or `none`/`null` for the default.
    #[arg(long = "session-lifetime-max", value_parser = parse_lifetime)]
    session_lifetime_max: Option<OrDefault<TimeDelta>>,
}

/// An option's value, or `none`/`null` for "use the configured default". (A plain
/// `Option<Option<T>>` means something else to clap.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrDefault<T>(Option<T>);

fn is_none_word(s: &str) -> bool {
    matches!(s.trim().to_ascii_lowercase().as_str(), "none" | "null")
}

fn parse_quota(s: &str) -> Result<OrDefault<i64>, String> {
    if is_none_word(s) {
        return Ok(OrDefault(None));
    }
    match s.trim().parse::<i64>() {
        Ok(n) if n > 0 && n <= MAX_QUANTITY => Ok(OrDefault(Some(n))),
        _ => Err(format!("'{s}' is not a positive integer or 'none'")),
    }
}

fn parse_lifetime(s: &str) -> Result<OrDefault<TimeDelta>, String> {
    if is_none_word(s) {
        return Ok(OrDefault(None));
    }
    parse_config_duration_str(s)
        .map_err(|e| e.to_string())
        .and_then(crate::engine::tenants::check_lifetime)
        .map(|d| OrDefault(Some(d)))
}

fn parse_api_key(s: &str) -> Result<ApiKeyChange, String> {
    if s.trim() == "reset" {
        return Ok(ApiKeyChange::Reset);
    }
    Uuid::parse_str(s.trim())
        .map(ApiKeyChange::Set)
        .map_err(|e| format!("'{s}' is neither a UUID nor 'reset': {e}"))
}

/// Runs an `admin` subcommand against the configured database.
pub async fn run(command: AdminCommand, loaded: LoadedConfig) -> ExitCode {
    let config = Arc::new(loaded.config);
    let db = match app::open_database(&config).await {
        Ok(db) => db,
        Err(e) => return super::report_error("cannot open the database", e),
    };
    let ssh = Arc::new(Ssh::from_config(&config.app.ssh));
    // Only the commands that run a mechanism need the pools' mechanisms set up.
    let mechanisms = if matches!(
        command,
        AdminCommand::Ops(OpsCommand::ProvisionNode(_) | OpsCommand::DeprovisionNode(_))
    ) {
        match Mechanisms::from_config(&config) {
            Ok(m) => m,
            Err(e) => return super::report_error("cannot set up the pools' mechanisms", e),
        }
    } else {
        Mechanisms::default()
    };
    let instance = match instances::register(&db, Role::Admin).await {
        Ok(id) => id,
        Err(e) => return super::report_error("cannot register with the database", e),
    };
    let engine = match Engine::new(db.clone(), config, mechanisms, ssh, instance) {
        Ok(engine) => engine,
        Err(e) => return super::report_error("cannot start", e),
    };
    let status = instances::beating(&engine, execute(&engine, command)).await;
    engine.instance_stopped().await;
    db.close().await;
    status
}

async fn execute(engine: &Engine, command: AdminCommand) -> ExitCode {
    match command {
        AdminCommand::Ops(op) => execute_ops(engine, &op).await,
        AdminCommand::ListTenants(args) => {
            let tenants = match engine.tenants().await {
                Ok(t) => t,
                Err(e) => return super::report_error("listing tenants", e),
            };
            let mut tenants: Vec<Tenant> = tenants
                .into_iter()
                .filter(|t| args.all || t.is_active())
                .collect();
            tenants.sort_by(|a, b| a.name.cmp(&b.name));
            for t in tenants {
                if args.quiet {
                    println!("{}", t.name);
                } else {
                    println!("OK: {}", t.name);
                }
            }
            ExitCode::SUCCESS
        }
        AdminCommand::ShowTenant { name } => match engine.tenant_by_name(&name).await {
            Ok(t) => {
                println!("OK: {}: {}", t.name, show_line(engine, &t));
                ExitCode::SUCCESS
            }
            Err(e) => super::report_error(&name, e),
        },
        AdminCommand::CreateTenant(args) => {
            let request = TenantRequest {
                name: args.name.clone(),
                ssh_key: args.ssh_key,
                is_admin: args.is_admin,
                node_quota: args.node_quota.and_then(|v| v.0),
                session_lifetime: args.session_lifetime.and_then(|v| v.0),
                session_lifetime_max: args.session_lifetime_max.and_then(|v| v.0),
            };
            match engine.create_tenant(request).await {
                Ok((t, key)) => {
                    println!("OK: {}: {key}", t.name);
                    ExitCode::SUCCESS
                }
                Err(e) => super::report_error(&args.name, e),
            }
        }
        AdminCommand::RetireTenant(args) => {
            let active = args.unretire;
            match change(engine, &args.name, TenantChange::SetActive(active)).await {
                Ok((t, _)) => {
                    println!("OK: {}: active={}", t.name, py_bool(t.is_active()));
                    ExitCode::SUCCESS
                }
                Err(e) => super::report_error(&args.name, e),
            }
        }
        AdminCommand::UpdateTenant(args) => {
            let update = TenantUpdate {
                ssh_key: args.ssh_key,
                api_key: args.api_key,
                node_quota: args.node_quota.map(|v| v.0),
                session_lifetime: args.session_lifetime.map(|v| v.0),
                session_lifetime_max: args.session_lifetime_max.map(|v| v.0),
            };
            if update.is_empty() {
                eprintln!(
                    "ERROR: Either --ssh-key, --api-key, --node-quota, --session-lifetime or \
                     --session-lifetime-max must be set."
                );
                return ExitCode::FAILURE;
            }
            match change(engine, &args.name, TenantChange::Update(update)).await {
                Ok((t, shown)) => {
                    let key = match shown {
                        ShownKey::New(key) => key,
                        _ => crate::api::wire::MASK.to_owned(),
                    };
                    let e = engine.effective(&t);
                    println!(
                        "OK: {}: ssh_key=********** api_key={key} node_quota={} effective_node_quota={} \
                         session_lifetime={} effective_session_lifetime={} session_lifetime_max={} \
                         effective_session_lifetime_max={}",
                        t.name,
                        py_opt(t.node_quota),
                        e.node_quota,
                        py_duration(t.session_lifetime),
                        python_timedelta(e.session_lifetime),
                        py_duration(t.session_lifetime_max),
                        python_timedelta(e.session_lifetime_max),
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => super::report_error(&args.name, e),
            }
        }
    }
}

/// Runs the node, pause, overtime and pool commands.
async fn execute_ops(engine: &Engine, command: &OpsCommand) -> ExitCode {
    let actor = cli_actor();
    let node_command = |id: i64, action, reason: &str, pool: Option<&String>| {
        (
            id,
            NodeCommand {
                action,
                reason: reason.to_owned(),
                pool: pool.cloned(),
            },
        )
    };
    let (id, command) = match command {
        OpsCommand::ListNodes(args) => return list_nodes(engine, args).await,
        OpsCommand::ListPauses => return list_pauses(engine).await,
        OpsCommand::ListOvertime(args) => return list_overtime(engine, args).await,
        OpsCommand::RetirePool(args) => return retire_pool(engine, &actor, args).await,
        OpsCommand::PauseAllocations(args) => {
            let scope = args.pool.as_deref();
            return match engine.pause(&actor, scope, &args.reason).await {
                Ok(p) => {
                    println!("OK: {}: paused", scope_name(&p.scope));
                    ExitCode::SUCCESS
                }
                Err(e) => super::report_error(scope.unwrap_or("service"), e),
            };
        }
        OpsCommand::ResumeAllocations(args) => {
            let scope = args.pool.as_deref();
            return match engine.resume(&actor, scope).await {
                Ok(_) => {
                    println!("OK: {}: resumed", scope.unwrap_or("service"));
                    ExitCode::SUCCESS
                }
                Err(e) => super::report_error(scope.unwrap_or("service"), e),
            };
        }
        OpsCommand::DowntimeNode(a) => node_command(a.id, NodeAction::Downtime, &a.reason, None),
        OpsCommand::RecoverNode(a) => node_command(a.id, NodeAction::Recover, &a.reason, None),
        OpsCommand::RetireNode(a) => node_command(a.id, NodeAction::Retire, &a.reason, None),
        OpsCommand::ProvisionNode(a) => {
            node_command(a.id, NodeAction::Provision, &a.reason, a.pool.as_ref())
        }
        OpsCommand::DeprovisionNode(a) => {
            node_command(a.id, NodeAction::Deprovision, &a.reason, a.pool.as_ref())
        }
    };
    let what = format!("node {id}");
    let (node, run) = match engine.node_action(&actor, id, &command).await {
        Ok(done) => done,
        Err(e) => return super::report_error(&what, e),
    };
    let Some(run) = run else {
        println!("OK: {id}: state={}", node.state);
        return ExitCode::SUCCESS;
    };
    // This process makes the run: wait for it and report how the node ended.
    engine.finish_run(run).await;
    let node = match engine.node(id).await {
        Ok(node) => node,
        Err(e) => return super::report_error(&what, e),
    };
    let wanted = match command.action {
        NodeAction::Provision => node.state == NodeState::Ready,
        _ => matches!(node.state, NodeState::Done | NodeState::Unused),
    };
    if wanted {
        println!("OK: {id}: state={}", node.state);
        ExitCode::SUCCESS
    } else {
        let detail = node
            .data
            .0
            .get("error")
            .and_then(|e| e.get("detail"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("the mechanism did not deliver the node");
        super::report_error(
            &what,
            format!("{} ended {}: {detail}", command.action.as_str(), node.state),
        )
    }
}

fn scope_name(scope: &str) -> &str {
    if scope == crate::store::pauses::SERVICE {
        "service"
    } else {
        scope
    }
}

async fn list_nodes(engine: &Engine, args: &ListNodesArgs) -> ExitCode {
    let mut states = Vec::new();
    for name in &args.state {
        match name.trim().parse::<NodeState>() {
            Ok(s) => states.push(s),
            Err(e) => return super::report_error("list-nodes", e),
        }
    }
    match engine.nodes_where(&states, args.pool.as_deref()).await {
        Ok(nodes) => {
            for n in nodes {
                println!(
                    "OK: {}: state={} pool={} hostname={} ipaddr={} used_count={}",
                    n.id,
                    n.state,
                    n.pool.as_deref().unwrap_or("None"),
                    n.hostname.as_deref().unwrap_or("None"),
                    n.ipaddr.as_deref().unwrap_or("None"),
                    n.used_count
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => super::report_error("list-nodes", e),
    }
}

/// `OK: NAME: retired_nodes=N pause_lifted=True|False`, and with `--purge`
/// `purged_nodes=N purged_sessions_nodes=N purged_sessions=N` on the same line.
async fn retire_pool(engine: &Engine, actor: &str, args: &RetirePoolArgs) -> ExitCode {
    let request = RetirePool {
        purge: args.purge,
        reason: args.reason.clone(),
    };
    match engine.retire_pool(actor, &args.name, &request).await {
        Ok(done) => {
            let mut line = format!(
                "OK: {}: retired_nodes={} pause_lifted={}",
                done.pool,
                done.retired_nodes,
                py_bool(done.pause_lifted)
            );
            if let Some(p) = done.purged {
                line.push_str(&format!(
                    " purged_nodes={} purged_sessions_nodes={} purged_sessions={}",
                    p.nodes, p.sessions_nodes, p.sessions
                ));
            }
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => super::report_error(&args.name, e),
    }
}

async fn list_pauses(engine: &Engine) -> ExitCode {
    match engine.pauses().await {
        Ok(pauses) => {
            for p in pauses {
                println!(
                    "OK: {}: paused_at={} paused_by={} reason={}",
                    scope_name(&p.scope),
                    py_datetime(p.paused_at),
                    p.paused_by,
                    p.reason
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => super::report_error("list-pauses", e),
    }
}

async fn list_overtime(engine: &Engine, args: &OvertimeArgs) -> ExitCode {
    match engine.overtime(TimeDelta::minutes(args.minutes)).await {
        Ok(held) => {
            let now = crate::store::now();
            for h in held {
                println!(
                    "OK: {}: hostname={} session={} tenant={} held_since={} minutes={}",
                    h.node.id,
                    h.node.hostname.as_deref().unwrap_or("None"),
                    h.session_id,
                    h.tenant_name,
                    py_datetime(h.held_since),
                    (now - h.held_since).num_minutes()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => super::report_error("list-overtime", e),
    }
}

async fn change(
    engine: &Engine,
    name: &str,
    change: TenantChange,
) -> Result<(Tenant, ShownKey), EngineError> {
    let tenant = engine.tenant_by_name(name).await?;
    engine.change_tenant(tenant.id, change).await
}

/// The `show-tenant` line after `OK: NAME: `.
fn show_line(engine: &Engine, t: &Tenant) -> String {
    let e = engine.effective(t);
    format!(
        "id={} node_quota={} effective_node_quota={} session_lifetime={} effective_session_lifetime={} \
         session_lifetime_max={} effective_session_lifetime_max={} active={} created_at={} retired_at={}",
        t.id,
        py_opt(t.node_quota),
        e.node_quota,
        py_duration(t.session_lifetime),
        python_timedelta(e.session_lifetime),
        py_duration(t.session_lifetime_max),
        python_timedelta(e.session_lifetime_max),
        py_bool(t.is_active()),
        py_datetime(t.created_at),
        t.retired_at.map_or_else(|| "None".to_owned(), py_datetime),
    )
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

fn py_opt(v: Option<i64>) -> String {
    v.map_or_else(|| "None".to_owned(), |n| n.to_string())
}

fn py_duration(secs: Option<f64>) -> String {
    secs.map_or_else(|| "None".to_owned(), |s| python_timedelta(seconds(s)))
}

/// Python's `str()` of an aware UTC datetime: `2026-11-22 02:37:42+00:00`.
fn py_datetime(t: NaiveDateTime) -> String {
    if t.and_utc().timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%d %H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_values_accept_none() {
        assert_eq!(parse_quota("none"), Ok(OrDefault(None)));
        assert_eq!(parse_quota("NULL"), Ok(OrDefault(None)));
        assert_eq!(parse_quota("5"), Ok(OrDefault(Some(5))));
        assert!(parse_quota("0").is_err());
        assert_eq!(
            parse_lifetime("2h"),
            Ok(OrDefault(Some(TimeDelta::hours(2))))
        );
        assert_eq!(parse_api_key("reset"), Ok(ApiKeyChange::Reset));
        assert!(parse_api_key("nope").is_err());
    }

    #[test]
    fn values_print_like_python() {
        assert_eq!(py_duration(Some(7200.0)), "2:00:00");
        assert_eq!(py_duration(None), "None");
        let t = chrono::NaiveDate::from_ymd_opt(2026, 11, 22)
            .unwrap()
            .and_hms_opt(2, 37, 42)
            .unwrap();
        assert_eq!(py_datetime(t), "2026-11-22 02:37:42+00:00");
    }
}
