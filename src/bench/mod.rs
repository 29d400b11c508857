//! `duffy bench`: a load benchmark of the whole service, as CI jobs use it.
//!
//! It starts a `duffy serve --legacy` child process on a fresh database (SQLite, or a
//! database it creates on a PostgreSQL server), drives each scenario from N concurrent
//! clients over keep-alive connections for a fixed time, and prints throughput, latency
//! percentiles and errors by kind; then it lets the background jobs settle and reads the
//! database: sessions left active, nodes stuck in transient states, the pool's levels,
//! and the server's memory. Nothing is asserted: the figures are for people to compare
//! (README "Performance"); a test runs it briefly so that it cannot rot.
//!
//! Under every row it prints the CPU the load generator and the server used: on a machine
//! of few cores they compete, and a load generator that needs most of the machine measures
//! itself (docs/performance.md, "The load generator").
//!
//! Scenarios:
//! * `get-pools`: anonymous `GET /api/v1/pools`, and the same JSON from a trivial warp
//!   handler in a process of its own, plain and behind our middleware ([`crate::http::wrap`]),
//!   for comparison; loaded by the cheap client of [`http`] on threads of its own, and by
//!   wrk as well when it is on PATH;
//! * `cycle`: `POST /api/v1/sessions` for one node of a noop pool, then
//!   `PUT /api/v1/sessions/{id}` `{"active": false}`;
//! * `legacy-cycle`: `GET /Node/get` then `GET /Node/done` through the v2 layer;
//! * `inventory`: the unkeyed `/Inventory`, with `--inventory-nodes` nodes and
//!   `--retired-sessions` retired sessions seeded into the database;
//! * `kill-9` and `takeover` ([`chaos`], not in the default list): servers killed under
//!   load, each on a database of its own; `takeover` needs PostgreSQL.

pub mod chaos;
pub mod cpu;
pub mod http;
pub mod load;
pub mod server;
pub mod wrk;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use clap::{Args, ValueEnum};
use warp::Filter;

use crate::store::Db;
use crate::store::nodes::NodeState;
use cpu::{Meter, Usage};
use load::{Outcome, RawLoad, Summary, drive, drive_raw, expect};
use server::{BenchDb, BenchError, POOL, Process};

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Anonymous `GET /api/v1/pools` (and a trivial handler's same answer).
    GetPools,
    /// Request one node, retire the session.
    Cycle,
    /// `/Node/get`, then `/Node/done`.
    LegacyCycle,
    /// The unkeyed `/Inventory` of a large site.
    Inventory,
    /// `duffy serve` killed with SIGKILL under load three times, restarted each time.
    #[value(name = "kill-9")]
    Kill9,
    /// Three instances on one PostgreSQL database; one killed under load, then back.
    Takeover,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::GetPools => "get-pools",
            Scenario::Cycle => "cycle",
            Scenario::LegacyCycle => "legacy-cycle",
            Scenario::Inventory => "inventory",
            Scenario::Kill9 => "kill-9",
            Scenario::Takeover => "takeover",
        }
    }

    /// Whether the scenario kills servers (and so runs on a database of its own).
    fn kills(self) -> bool {
        matches!(self, Scenario::Kill9 | Scenario::Takeover)
    }
}

/// The load generator of `get-pools`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientKind {
    /// Our own HTTP/1.1 over raw TCP connections, on threads of its own ([`http`]).
    Raw,
    /// reqwest (hyper's client and its connection pool) on the benchmark's runtime.
    Reqwest,
}

/// Whether `get-pools` is also measured with wrk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WrkMode {
    /// When `wrk` is on PATH.
    Auto,
    /// Never.
    Never,
}

/// `duffy bench [--scenario S,…] [--duration 10s] [-c N] [--database sqlite|postgres://…]`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Scenarios to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "get-pools,cycle,legacy-cycle,inventory"
    )]
    pub scenario: Vec<Scenario>,
    /// How long each scenario runs (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent clients, each on its own keep-alive connection.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// `sqlite` (a fresh file), or a PostgreSQL server's URL: the benchmark creates a
    /// database of its own there and drops it at the end.
    #[arg(long, default_value = "sqlite")]
    pub database: String,
    /// The fill level of the benchmark's noop pool (default: twice the clients, at least 20).
    #[arg(long)]
    pub fill_level: Option<u32>,
    /// Nodes seeded for the inventory scenario.
    #[arg(long, default_value_t = 10_000)]
    pub inventory_nodes: u32,
    /// Retired sessions seeded for the inventory scenario (the history of a busy site).
    #[arg(long, default_value_t = 100_000)]
    pub retired_sessions: u32,
    /// The server's log level (its access log at `info` costs throughput).
    #[arg(long, default_value = "warning")]
    pub server_loglevel: String,
    /// Keep the run's directory (configuration, server log, SQLite file).
    #[arg(long)]
    pub keep: bool,
    /// The load generator of `get-pools` (the other scenarios use reqwest: their servers
    /// are slower by far than any client).
    #[arg(long, value_enum, default_value = "raw")]
    pub client: ClientKind,
    /// Threads of the raw load generator, each with a single-threaded runtime of its own
    /// (default: one per CPU; 0: tasks on the benchmark's own runtime).
    #[arg(long)]
    pub client_threads: Option<usize>,
    /// Also load `get-pools` and the trivial handler with wrk, when it is on PATH, to check
    /// the load generator against an independent one.
    #[arg(long, value_enum, default_value = "auto")]
    pub wrk: WrkMode,
    /// During `get-pools`, pin the load generator to the first `--client-threads` CPUs
    /// and the servers to the others, so that neither takes the other's CPU.
    #[arg(long)]
    pub pin: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_config_duration_str(s)
        .map_err(|e| e.to_string())?
        .to_std()
        .map_err(|e| e.to_string())
        .and_then(|d| {
            if d.is_zero() {
                Err("must be longer than zero".to_owned())
            } else {
                Ok(d)
            }
        })
}

/// `duffy -c CONFIG bench-trivial --body FILE [--middleware]` (hidden): serves FILE as
/// `GET /api/v1/pools` and nothing else, for `get-pools` to compare with; with the
/// configuration's logging, as the server under test has.
#[derive(Debug, Args)]
pub struct TrivialArgs {
    /// The JSON to answer.
    #[arg(long)]
    pub body: PathBuf,
    /// Through the middleware every answer of ours goes through ([`crate::http::wrap`]:
    /// request id, tracing span, access log, HTTP metrics, the error recovery).
    #[arg(long)]
    pub middleware: bool,
}

/// Runs the benchmark; a set-up failure is exit 1, whatever the figures are is exit 0.
pub async fn run(args: BenchArgs) -> ExitCode {
    match bench(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("duffy bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves the trivial comparison handler until killed.
pub async fn run_trivial(args: TrivialArgs) -> ExitCode {
    let body = match std::fs::read(&args.body) {
        Ok(b) => bytes::Bytes::from(b),
        Err(e) => {
            eprintln!("duffy bench-trivial: {}: {e}", args.body.display());
            return ExitCode::FAILURE;
        }
    };
    let route = warp::path!("api" / "v1" / "pools").map(move || {
        warp::http::Response::builder()
            .header("content-type", "application/json")
            .body(body.clone())
    });
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("duffy bench-trivial: {e}");
            return ExitCode::FAILURE;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    println!(" * Port number  : {port}");
    if args.middleware {
        let routes = route.map(warp::Reply::into_response).boxed();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        warp::serve(crate::http::wrap(routes, metrics))
            .incoming(listener)
            .run()
            .await;
    } else {
        warp::serve(route).incoming(listener).run().await;
    }
    ExitCode::SUCCESS
}

/// Everything a scenario's clients share.
struct Ctx {
    client: reqwest::Client,
    url: String,
    key: String,
    /// The server under test, for its CPU time.
    server_pid: Option<u32>,
}

async fn bench(args: &BenchArgs) -> Result<(), BenchError> {
    let (dir, _cleanup) = server::run_dir(args.keep)?;
    let result = bench_in(args, &dir).await;
    if args.keep {
        println!("run directory kept: {}", dir.display());
    }
    result
}

async fn bench_in(args: &BenchArgs, dir: &Path) -> Result<(), BenchError> {
    if args.scenario.iter().any(|s| !s.kills()) {
        let db = BenchDb::create(&args.database, dir).await?;
        let result = bench_on(args, dir, &db).await;
        db.drop_created().await;
        result?;
    }
    for scenario in args.scenario.iter().filter(|s| s.kills()) {
        let sub = dir.join(scenario.name());
        std::fs::create_dir_all(&sub)?;
        let db = BenchDb::create(&args.database, &sub).await?;
        let exe = std::env::current_exe()?;
        let result = match scenario {
            Scenario::Takeover if db.backend() != "PostgreSQL" => {
                println!(
                    "takeover: several instances need PostgreSQL (--database postgres://…); skipped"
                );
                Ok(())
            }
            Scenario::Takeover => chaos::three_instances(&exe, &db, &sub)
                .await
                .map(|report| println!("{report}")),
            _ => {
                let kills = [700, 1100, 900].map(Duration::from_millis);
                chaos::kill_loop(&exe, &db, &sub, &kills)
                    .await
                    .map(|report| println!("{report}"))
            }
        };
        db.drop_created().await;
        result?;
    }
    Ok(())
}

async fn bench_on(args: &BenchArgs, dir: &Path, db: &BenchDb) -> Result<(), BenchError> {
    let scenarios: Vec<Scenario> = args
        .scenario
        .iter()
        .copied()
        .filter(|s| !s.kills())
        .collect();
    let clients = args.concurrency.max(1);
    let fill_level = args
        .fill_level
        .unwrap_or_else(|| u32::try_from(clients * 2).unwrap_or(u32::MAX).max(20));
    let config = dir.join("duffy.yaml");
    std::fs::write(
        &config,
        server::config_yaml(db, fill_level, &args.server_loglevel),
    )?;
    let (tenant_id, key) = server::create_tenant(&config).await?;
    let store = Db::connect(&db.url).await?;
    if scenarios.contains(&Scenario::Inventory) {
        let started = std::time::Instant::now();
        server::seed(
            &store,
            tenant_id,
            args.inventory_nodes,
            args.retired_sessions,
        )
        .await?;
        println!(
            "seeded {} nodes and {} retired sessions in {:.1} s",
            args.inventory_nodes,
            args.retired_sessions,
            started.elapsed().as_secs_f64()
        );
    }
    let config_arg = config.to_string_lossy().into_owned();
    let server =
        Process::serve(&std::env::current_exe()?, &config, &dir.join("server.log")).await?;
    server::wait_for_ready(&store, POOL, i64::from(fill_level)).await?;
    println!(
        "duffy bench: {} on {} core(s), {clients} client(s), {} per scenario, pool fill level {fill_level}, server log level {}",
        db.backend(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        crate::config::python_timedelta(
            chrono::TimeDelta::from_std(args.duration).unwrap_or_default()
        ),
        args.server_loglevel
    );
    println!(
        "load generator of get-pools: {}",
        match args.client {
            ClientKind::Raw => format!(
                "raw HTTP/1.1, {clients} keep-alive connection(s), one request at a time on each, {}",
                match client_threads(args) {
                    0 => "on the benchmark's runtime".to_owned(),
                    n => format!("{n} thread(s) of its own"),
                }
            ),
            ClientKind::Reqwest => "reqwest on the benchmark's runtime".to_owned(),
        }
    );
    let ctx = Arc::new(Ctx {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(clients * 2)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| BenchError::Server(e.to_string()))?,
        url: server.url.clone(),
        key,
        server_pid: server.pid(),
    });
    print_header();
    for scenario in &scenarios {
        match scenario {
            Scenario::GetPools => get_pools(&ctx, args, &config_arg, dir).await?,
            Scenario::Cycle | Scenario::LegacyCycle => {
                let watch = Lowest::watch(store.clone());
                let meter = Meter::start(ctx.server_pid);
                let outcome = cycle(&ctx, *scenario, clients, args.duration).await;
                let usage = meter.stop(false);
                print_row(scenario.name(), clients, &outcome.summary());
                print_usage(&usage, outcome.rate());
                println!(
                    "    lowest ready count of pool {POOL} during the run: {} (fill level {fill_level})",
                    watch.stop().await
                );
            }
            Scenario::Inventory => {
                let meter = Meter::start(ctx.server_pid);
                let outcome = inventory(&ctx, clients, args.duration).await;
                let usage = meter.stop(false);
                print_row(scenario.name(), clients, &outcome.summary());
                print_usage(&usage, outcome.rate());
            }
            // Filtered out above: they run on databases of their own.
            Scenario::Kill9 | Scenario::Takeover => {}
        }
    }
    let after = server::aftermath(&store).await?;
    println!();
    println!(
        "after the run (settled in {:.1} s): {} session(s) left active, {} node(s) in transient states",
        after.settled_in.as_secs_f64(),
        after.active_sessions,
        after.transient_nodes
    );
    let levels: Vec<String> = after
        .levels
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    println!("pool {POOL}: {}", levels.join(", "));
    if let Some((rss, peak)) = server.pid().and_then(server::memory) {
        println!(
            "server memory: {:.1} MB resident, {:.1} MB at the peak",
            rss as f64 / 1e6,
            peak as f64 / 1e6
        );
    }
    store.close().await;
    server.stop().await;
    Ok(())
}

fn print_header() {
    println!(
        "{:<32} {:>7} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "scenario", "clients", "ops", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    );
}

/// The CPU line under a row: how much of the machine the load generator and the server
/// used, so that a saturated load generator shows.
fn print_usage(usage: &Usage, rate: f64) {
    println!("    {}", usage.describe(rate));
}

fn print_row(name: &str, clients: usize, o: &Summary) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:<32} {:>7} {:>9} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}",
        name,
        clients,
        o.ok,
        o.rate,
        ms(o.p50),
        ms(o.p90),
        ms(o.p99),
        ms(o.max),
        o.error_count()
    );
    for (kind, n) in &o.errors {
        println!("    error x{n}: {kind}");
    }
}

async fn get_pools(
    ctx: &Arc<Ctx>,
    args: &BenchArgs,
    config_arg: &str,
    dir: &Path,
) -> Result<(), BenchError> {
    const PATH: &str = "/api/v1/pools";
    let clients = args.concurrency.max(1);
    let body = expect(ctx.client.get(format!("{}{PATH}", ctx.url)), 200)
        .await
        .map_err(BenchError::Server)?;
    let body_file = dir.join("pools.json");
    std::fs::write(&body_file, &body)?;
    let file_arg = body_file.to_string_lossy().into_owned();
    let trivial_args = ["-c", config_arg, "bench-trivial", "--body", &file_arg];
    let trivial = Process::start(&trivial_args, &dir.join("trivial.log")).await?;
    let wrapped = Process::start(
        &[&trivial_args[..], &["--middleware"]].concat(),
        &dir.join("trivial-middleware.log"),
    )
    .await?;
    // (row, wrk's row, base URL, process)
    let targets = [
        (
            "get-pools",
            "wrk: get-pools",
            ctx.url.as_str(),
            ctx.server_pid,
        ),
        (
            "get-pools (trivial warp handler)",
            "wrk: trivial warp handler",
            trivial.url.as_str(),
            trivial.pid(),
        ),
        (
            "get-pools (trivial + middleware)",
            "wrk: trivial + middleware",
            wrapped.url.as_str(),
            wrapped.pid(),
        ),
    ];
    let pinned = if args.pin {
        pin_split(
            client_threads(args),
            &[ctx.server_pid, trivial.pid(), wrapped.pid()],
        )
    } else {
        None
    };
    // (rate, server CPU seconds per operation) of each target
    let mut measured = Vec::new();
    let load = |url: &str, duration: Duration| {
        let url = url.to_owned();
        async move {
            match args.client {
                ClientKind::Raw => {
                    let addr = url.trim_start_matches("http://").to_owned();
                    drive_raw(RawLoad {
                        request: http::request("GET", &addr, PATH, &[], b""),
                        addr,
                        status: 200,
                        connections: clients,
                        threads: client_threads(args),
                        duration,
                    })
                    .await
                }
                ClientKind::Reqwest => {
                    fetch_loop(ctx, format!("{url}{PATH}"), clients, duration).await
                }
            }
        }
    };
    for (name, _, url, pid) in targets {
        // Unmeasured: the connections are opened, and a server that has just started
        // settles (its first row cost it more CPU per request than later ones).
        load(url, warm_up(args.duration)).await;
        let meter = Meter::start(pid);
        let outcome = load(url, args.duration).await;
        let usage = meter.stop(false);
        print_row(name, clients, &outcome.summary());
        print_usage(&usage, outcome.rate());
        warn_if_saturated(args, &usage);
        measured.push((
            outcome.rate(),
            usage.server.map(|c| c / outcome.rate().max(1.0)),
        ));
    }
    let percent = |a: f64, b: f64| 100.0 * a / b.max(f64::EPSILON);
    let rates: Vec<f64> = measured.iter().map(|(r, _)| *r).collect();
    println!(
        "    get-pools runs at {:.0}% of the trivial handler's rate; the trivial handler behind our middleware at {:.0}%",
        percent(rates[0], rates[1]),
        percent(rates[2], rates[1])
    );
    if let [
        (_, Some(ours)),
        (_, Some(trivial_cpu)),
        (_, Some(wrapped_cpu)),
    ] = measured[..]
    {
        println!(
            "    server CPU per request: get-pools {:.2}x the trivial handler's, the trivial handler behind our middleware {:.2}x (+{:.1} µs)",
            ours / trivial_cpu.max(f64::EPSILON),
            wrapped_cpu / trivial_cpu.max(f64::EPSILON),
            1e6 * (wrapped_cpu - trivial_cpu)
        );
    }
    if args.wrk == WrkMode::Auto && wrk::on_path() {
        let threads = client_threads(args).max(1);
        let mut wrk_rates = Vec::new();
        for (_, name, url, pid) in &targets[..2] {
            let meter = Meter::start(*pid);
            let outcome = wrk::run(&format!("{url}{PATH}"), threads, clients, args.duration).await;
            let usage = meter.stop(true);
            match outcome {
                Ok(summary) => {
                    print_row(name, clients, &summary);
                    print_usage(&usage, summary.rate);
                    wrk_rates.push(summary.rate);
                }
                Err(e) => println!("    wrk: {e}"),
            }
        }
        if let [ours, theirs] = wrk_rates[..] {
            println!(
                "    with wrk (-t{threads} -c{clients}), get-pools runs at {:.0}% of the trivial handler's rate; our load generator got {:.0}% (get-pools) and {:.0}% (trivial) of wrk's rates",
                percent(ours, theirs),
                percent(rates[0], ours),
                percent(rates[1], theirs)
            );
        }
    }
    // The other scenarios run unpinned (the trivial handlers end here).
    if let Some(all) = pinned {
        for pid in [Some(std::process::id()), ctx.server_pid]
            .into_iter()
            .flatten()
        {
            let _ = cpu::pin(pid, &all);
        }
    }
    trivial.stop().await;
    wrapped.stop().await;
    Ok(())
}

/// How long each `get-pools` target is loaded before it is measured: a fifth of the
/// measurement, at most a second.
fn warm_up(duration: Duration) -> Duration {
    (duration / 5).min(Duration::from_secs(1))
}

/// The raw load generator's threads: as asked, else one per CPU.
fn client_threads(args: &BenchArgs) -> usize {
    args.client_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Says so when the load generator kept all of its threads busy: the rate is then its
/// own, not the server's.
fn warn_if_saturated(args: &BenchArgs, usage: &Usage) {
    let threads = match (args.client, client_threads(args)) {
        (ClientKind::Raw, n) if n > 0 => n,
        // On the benchmark's runtime: its worker threads, one per CPU.
        _ => usage.cores,
    };
    if let Some(client) = usage.client
        && client > 0.9 * threads as f64
    {
        println!(
            "    the load generator used {client:.2} of its {threads} thread(s): this rate is the load generator's, not the server's"
        );
    }
}

/// Pins this process (the load generator) to the first `client_threads` CPUs it may use
/// and the `servers` to the others; prints the split, or why there is none. Returns the
/// CPUs all could use before.
fn pin_split(client_threads: usize, servers: &[Option<u32>]) -> Option<Vec<usize>> {
    let cpus = cpu::allowed_cpus();
    if cpus.len() < 2 {
        println!("    not pinned: one CPU");
        return None;
    }
    let k = client_threads.clamp(1, cpus.len() - 1);
    let (client, server) = cpus.split_at(k);
    let mut result = cpu::pin(std::process::id(), client);
    for pid in servers.iter().flatten() {
        result = result.and_then(|()| cpu::pin(*pid, server));
    }
    match result {
        Ok(()) => {
            println!("    pinned: load generator on CPU {client:?}, servers on CPU {server:?}");
            Some(cpus.clone())
        }
        Err(e) => {
            println!("    not pinned: {e}");
            None
        }
    }
}

/// Clients fetching one URL over and over.
async fn fetch_loop(ctx: &Arc<Ctx>, url: String, clients: usize, duration: Duration) -> Outcome {
    let ctx = ctx.clone();
    let url = Arc::new(url);
    drive(clients, duration, move |_| {
        let (ctx, url) = (ctx.clone(), url.clone());
        async move { expect(ctx.client.get(url.as_str()), 200).await.map(|_| ()) }
    })
    .await
}

async fn cycle(ctx: &Arc<Ctx>, scenario: Scenario, clients: usize, duration: Duration) -> Outcome {
    let ctx = ctx.clone();
    drive(clients, duration, move |_| {
        let ctx = ctx.clone();
        async move {
            match scenario {
                Scenario::LegacyCycle => legacy_cycle_once(&ctx).await,
                _ => cycle_once(&ctx).await,
            }
        }
    })
    .await
}

/// One v3 cycle: a session of one node, retired at once.
async fn cycle_once(ctx: &Ctx) -> Result<(), String> {
    const REQUEST: &str = r#"{"nodes_specs": [{"pool": "bench", "quantity": 1}]}"#;
    let created = expect(
        ctx.client
            .post(format!("{}/api/v1/sessions", ctx.url))
            .basic_auth("bench", Some(&ctx.key))
            .header("content-type", "application/json")
            .body(REQUEST),
        201,
    )
    .await?;
    let id = serde_json::from_slice::<serde_json::Value>(&created)
        .ok()
        .and_then(|v| v["session"]["id"].as_i64())
        .ok_or("no session id in the answer")?;
    expect(
        ctx.client
            .put(format!("{}/api/v1/sessions/{id}", ctx.url))
            .basic_auth("bench", Some(&ctx.key))
            .header("content-type", "application/json")
            .body(r#"{"active": false}"#),
        200,
    )
    .await
    .map(|_| ())
}

/// One v2 cycle: `/Node/get`, then `/Node/done`.
async fn legacy_cycle_once(ctx: &Ctx) -> Result<(), String> {
    let got = expect(
        ctx.client.get(format!(
            "{}/Node/get?key={}&ver=9-stream&count=1",
            ctx.url, ctx.key
        )),
        200,
    )
    .await?;
    let ssid = serde_json::from_slice::<serde_json::Value>(&got)
        .ok()
        .and_then(|v| v["ssid"].as_str().map(str::to_owned))
        .ok_or_else(|| format!("v2 answer: {}", String::from_utf8_lossy(&got)))?;
    let done = expect(
        ctx.client
            .get(format!("{}/Node/done?key={}&ssid={ssid}", ctx.url, ctx.key)),
        200,
    )
    .await?;
    if done.as_ref() != b"\"Done\"" {
        return Err(format!("v2 done: {}", String::from_utf8_lossy(&done)));
    }
    Ok(())
}

async fn inventory(ctx: &Arc<Ctx>, clients: usize, duration: Duration) -> Outcome {
    let ctx = ctx.clone();
    drive(clients, duration, move |_| {
        let ctx = ctx.clone();
        async move {
            let body = expect(ctx.client.get(format!("{}/Inventory", ctx.url)), 200).await?;
            if body.first() != Some(&b'[') {
                return Err("the inventory is not a JSON list".to_owned());
            }
            Ok(())
        }
    })
    .await
}

/// Samples the benchmark pool's ready count while a cycle scenario runs.
struct Lowest {
    stop: Arc<AtomicBool>,
    lowest: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl Lowest {
    fn watch(db: Db) -> Lowest {
        let stop = Arc::new(AtomicBool::new(false));
        let lowest = Arc::new(AtomicI64::new(i64::MAX));
        let task = tokio::spawn({
            let (stop, lowest) = (stop.clone(), lowest.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(counts) = crate::store::nodes::count_by_pool_state(&db).await {
                        let ready = counts
                            .iter()
                            .find(|(p, s, _)| p.as_deref() == Some(POOL) && *s == NodeState::Ready)
                            .map_or(0, |(_, _, n)| *n);
                        lowest.fetch_min(ready, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Lowest { stop, lowest, task }
    }

    async fn stop(self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.lowest.load(Ordering::Relaxed)
    }
}
