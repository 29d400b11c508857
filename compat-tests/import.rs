//! `duffy import` from the original Duffy 3.4.0: a database the original made itself
//! (`setup-db`, `admin create-tenant`, nodes and sessions through its models) is brought
//! over; then the real `duffy client` 3.4.0 and `cico` work with the original keys, the
//! imported sessions keep their ids and new ones come above them. Dry runs change nothing,
//! a second run brings only what changed, and clashes are refused with the target untouched.
//! The source is on the same backend as the target.

use serde_json::Value;

use crate::harness::original::Original;
use crate::harness::{Backend, Cico, Cli, ClientHome, Prepared, Tenant};
use crate::scenarios;

scenarios!(
    the_original_clients_work_after_an_import,
    dry_runs_change_nothing_and_reruns_bring_the_delta,
    clashes_and_bad_sources_are_refused
);

/// Pools for the imported nodes: `old-pool` is left out on purpose.
const POOLS: &str = r#"
nodepools:
  concrete:
    virt-a:
      extends: noop
      fill-level: 2
    virt-b:
      extends: noop
      fill-level: 1
"#;

/// An original with tenants `admin` (admin), `t1` (quota 5, lifetimes 2h30m / 1d), `t2`,
/// and `t3` (retired), and the seed script's small data set.
async fn original_with_data(backend: Backend) -> (Original, Vec<Tenant>, Value) {
    let original = Original::create(backend).await;
    let tenants = vec![
        original.tenant("admin", &["--is-admin"]).await,
        original
            .tenant(
                "t1",
                &[
                    "--node-quota",
                    "5",
                    "--session-lifetime",
                    "2h30m",
                    "--session-lifetime-max",
                    "1d",
                ],
            )
            .await,
        original.tenant("t2", &[]).await,
        original.tenant("t3", &[]).await,
    ];
    original.duffy(&["admin", "retire-tenant", "t3"]).await;
    let made = original.seed(&["small", "t1", "t2"]).await;
    (original, tenants, made)
}

/// The `new changed unchanged skipped kept` counts the report prints for `table`.
pub fn counts(report: &str, table: &str) -> [usize; 5] {
    let line = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no {table} line in:\n{report}"));
    let numbers: Vec<usize> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().expect("a count"))
        .collect();
    numbers.try_into().expect("five counts")
}

/// Runs `duffy import ARGS…` and asserts that it succeeded; its report.
pub async fn import(prepared: &Prepared, args: &[&str]) -> String {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    let (ok, out, err) = prepared.duffy(&all).await;
    assert!(ok, "duffy {all:?} failed:\n{out}\n{err}");
    out
}

/// Runs `duffy import ARGS…`, which must fail; its one-line error.
pub async fn refused(prepared: &Prepared, args: &[&str]) -> String {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    let (ok, out, err) = prepared.duffy(&all).await;
    assert!(!ok, "duffy {all:?} succeeded:\n{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected on stderr:\n{err}");
    assert!(lines[0].starts_with("Error: "), "{err}");
    lines[0].to_owned()
}

/// Every row of our tables, as text: equal dumps mean an unchanged database.
pub async fn dump(prepared: &Prepared) -> String {
    let tables = [
        "tenants",
        "nodes",
        "sessions",
        "sessions_nodes",
        "import_rows",
        "imports",
    ];
    let mut out = String::new();
    match prepared.url.strip_prefix("sqlite://") {
        Some(path) => {
            use sqlx::{Connection, Row};
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .read_only(true);
            let mut c = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("open the target");
            for table in tables {
                let sql = format!("SELECT * FROM {table} ORDER BY 1, 2");
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut c)
                    .await
                    .expect("read the target");
                out.push_str(&format!("{table}: {}\n", rows.len()));
                for row in rows {
                    let cells: Vec<String> = (0..row.len())
                        .map(|i| {
                            row.try_get::<Option<String>, _>(i)
                                .map(|v| v.unwrap_or_default())
                                .or_else(|_| {
                                    row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}"))
                                })
                                .or_else(|_| {
                                    row.try_get::<Option<f64>, _>(i).map(|v| format!("{v:?}"))
                                })
                                .expect("a cell")
                        })
                        .collect();
                    out.push_str(&cells.join("|"));
                    out.push('\n');
                }
            }
        }
        None => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&prepared.url)
                .await
                .expect("open the target");
            for table in tables {
                let sql = format!("SELECT t::text FROM {table} t ORDER BY 1");
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut c)
                    .await
                    .expect("read the target");
                out.push_str(&format!("{table}: {}\n", rows.len()));
                for row in rows {
                    out.push_str(&row);
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// After the import the original's keys work in the real clients: `duffy client` 3.4.0
/// lists the imported sessions under their ids, retires one and gets a new session above
/// them; `cico` (through `metaclient.usermap`, as the original's v2 layer needed) gets a
/// node and gives it back.
async fn the_original_clients_work_after_an_import(backend: Backend) {
    let (original, tenants, made) = original_with_data(backend).await;
    let t1 = &tenants[1];
    let extra = format!("{POOLS}\nmetaclient:\n  usermap:\n    {}: t1\n", t1.key);
    let prepared = Prepared::new(backend, &extra).await;
    let report = import(&prepared, &["--from", &original.sync_url]).await;
    assert_eq!(counts(&report, "tenants"), [4, 0, 0, 0, 0], "{report}");
    assert_eq!(counts(&report, "nodes"), [16, 0, 0, 0, 0], "{report}");
    assert_eq!(counts(&report, "sessions"), [8, 0, 0, 0, 0], "{report}");
    assert_eq!(
        counts(&report, "sessions_nodes"),
        [9, 0, 0, 0, 0],
        "{report}"
    );
    assert!(report.contains("old-pool (1 live)"), "{report}");
    assert!(
        report.contains("deprovisioning [11], provisioning [10]"),
        "{report}"
    );
    for tenant in &tenants {
        assert!(!report.contains(&tenant.key), "a key in the report");
    }
    let duffy = prepared.start().await;

    // v3, with the original keys: the active session and its nodes, as they were.
    let active = made["sessions"]["active"].as_i64().unwrap();
    let session = duffy.v3_session(t1, &active.to_string()).await;
    assert_eq!(session["active"], true, "{session}");
    let mut hosts = crate::harness::hostnames(&session);
    hosts.sort();
    assert_eq!(hosts, ["virt-a-4.import.test", "virt-a-5.import.test"]);
    let me = &session["tenant"];
    assert_eq!(me["node_quota"], 5, "{me}");
    assert_eq!(me["session_lifetime"], 9000.0, "{me}");
    assert_eq!(me["session_lifetime_max"], 86400.0, "{me}");
    let retired = duffy
        .http
        .get(format!("{}/api/v1/sessions", duffy.v3_base))
        .basic_auth("t3", Some(&tenants[3].key))
        .send()
        .await
        .unwrap();
    assert_eq!(retired.status(), 403, "a retired tenant stays retired");
    let node: Value = duffy
        .http
        .get(format!("{}/api/v1/nodes/13", duffy.v3_base))
        .basic_auth("admin", Some(&tenants[0].key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(node["node"]["used_count"], 2, "{node}");

    // The original `duffy client` 3.4.0.
    let api = format!("{}/api/v1", duffy.v3_base);
    let user = ClientHome::configured(&api, "t1", &t1.key);
    let listed = user
        .run(
            Cli::Original,
            &["client", "--format", "json", "list-sessions"],
        )
        .await;
    listed.assert_ok();
    let ids: Vec<i64> = listed.json()["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["id"].as_i64().expect("id"))
        .collect();
    assert!(ids.contains(&active), "{listed}");
    let out = user
        .run(
            Cli::Original,
            &[
                "client",
                "--format",
                "json",
                "retire-session",
                &active.to_string(),
            ],
        )
        .await;
    out.assert_ok();
    assert_eq!(out.json()["session"]["active"], false, "{out}");
    duffy.wait_ready(&[("virt-a", 2)]).await;
    let out = user
        .run(
            Cli::Original,
            &[
                "client",
                "--format",
                "json",
                "request-session",
                "pool=virt-a,quantity=1",
            ],
        )
        .await;
    out.assert_ok();
    let new_id = out.json()["session"]["id"].as_i64().expect("new id");
    assert!(
        new_id > 8,
        "new session {new_id} must come above the imported ids"
    );

    // cico with the same key, through the v2 layer.
    duffy.wait_filled().await;
    let cico = Cico::keyed(&duffy.endpoint(), &t1.key);
    let got = cico
        .run(&[
            "node", "get", "-f", "value", "-c", "hostname", "-c", "comment",
        ])
        .await;
    got.assert_ok();
    let ssid: i64 = got.fields()[0][1].parse().expect("numeric ssid");
    assert!(ssid > new_id, "{got}");
    let done = cico.run(&["node", "done", &ssid.to_string()]).await;
    done.assert_ok();
    let after = duffy.v3_session(t1, &ssid.to_string()).await;
    assert_eq!(after["active"], false, "{after}");
    drop(original);
}

/// A dry run on a fresh target and on an imported one changes nothing; an import run twice
/// brings nothing the second time; after the original changed, only the change comes.
async fn dry_runs_change_nothing_and_reruns_bring_the_delta(backend: Backend) {
    let (original, tenants, _) = original_with_data(backend).await;
    let prepared = Prepared::new(backend, POOLS).await;
    let from = ["--from", original.sync_url.as_str()];
    let dry: Vec<&str> = from.iter().copied().chain(["--dry-run"]).collect();

    if backend == Backend::Sqlite {
        // Not even the file is made. The original's configuration names the source.
        let config = original.config.to_str().unwrap();
        let report = import(&prepared, &["--from-config", config, "--dry-run"]).await;
        assert_eq!(counts(&report, "sessions"), [8, 0, 0, 0, 0], "{report}");
        assert!(report.contains("Nothing was written."), "{report}");
        let path = prepared.url.strip_prefix("sqlite://").unwrap();
        assert!(
            !std::path::Path::new(path).exists(),
            "a dry run made {path}"
        );
    }
    let (ok, _, err) = prepared.duffy(&["migrate"]).await;
    assert!(ok, "{err}");
    let before = dump(&prepared).await;
    let report = import(&prepared, &dry).await;
    assert_eq!(counts(&report, "tenants"), [4, 0, 0, 0, 0], "{report}");
    assert_eq!(counts(&report, "sessions"), [8, 0, 0, 0, 0], "{report}");
    assert!(report.starts_with("Dry run: would import"), "{report}");
    assert_eq!(
        dump(&prepared).await,
        before,
        "the dry run changed the target"
    );

    let report = import(&prepared, &from).await;
    assert_eq!(counts(&report, "nodes"), [16, 0, 0, 0, 0], "{report}");
    let imported = dump(&prepared).await;
    let report = import(&prepared, &from).await;
    for table in ["tenants", "nodes", "sessions", "sessions_nodes"] {
        let [new, changed, ..] = counts(&report, table);
        assert_eq!((new, changed), (0, 0), "{table}: {report}");
    }
    assert!(
        report.contains("Nothing changed since the last import."),
        "{report}"
    );
    // Only the record of runs could have grown; it did not either.
    assert_eq!(dump(&prepared).await, imported);

    // old-pool retired here with its history: a later run does not bring it back.
    let (ok, out, err) = prepared
        .duffy(&["admin", "retire-pool", "old-pool", "--purge"])
        .await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("purged_nodes=2 purged_sessions_nodes=1 purged_sessions=1"),
        "{out}"
    );
    let imported = dump(&prepared).await;
    let report = import(&prepared, &from).await;
    assert_eq!(counts(&report, "nodes"), [0, 0, 16, 0, 0], "{report}");
    assert_eq!(
        counts(&report, "sessions_nodes"),
        [0, 0, 9, 0, 0],
        "{report}"
    );
    for note in [
        "Note: nodes row 8 (old-pool-8.import.test) was imported before and deleted here since: not imported again",
        "Note: nodes row 16 (old-pool-23.import.test) was imported before and deleted here since: not imported again",
        "Note: sessions row 7 was imported before and deleted here since: not imported again",
        "Note: 1 sessions_nodes row(s) name a session or node deleted here since an earlier import: not imported again",
    ] {
        assert!(
            report.lines().any(|l| l == note),
            "no {note:?} in:\n{report}"
        );
    }
    assert_eq!(dump(&prepared).await, imported);

    let change = original.seed(&["change", "t1"]).await;
    let report = import(&prepared, &dry).await;
    assert_eq!(counts(&report, "sessions"), [1, 1, 7, 0, 0], "{report}");
    assert_eq!(
        dump(&prepared).await,
        imported,
        "the dry run changed the target"
    );
    let report = import(&prepared, &from).await;
    assert_eq!(counts(&report, "tenants"), [0, 0, 4, 0, 0], "{report}");
    assert_eq!(counts(&report, "nodes"), [1, 2, 14, 0, 0], "{report}");
    assert_eq!(counts(&report, "sessions"), [1, 1, 7, 0, 0], "{report}");
    assert_eq!(
        counts(&report, "sessions_nodes"),
        [1, 0, 9, 0, 0],
        "{report}"
    );

    // What the change did is what the target now says.
    let duffy = prepared.start().await;
    let t1 = &tenants[1];
    let retired = change["retired"].as_i64().unwrap().to_string();
    assert_eq!(duffy.v3_session(t1, &retired).await["active"], false);
    let new = change["new_session"].as_i64().unwrap().to_string();
    let session = duffy.v3_session(t1, &new).await;
    assert_eq!(session["active"], true, "{session}");
    assert_eq!(
        crate::harness::hostnames(&session),
        ["virt-a-30.import.test"]
    );
}

/// Unreachable sources, non-Duffy sources, another schema revision, a target that holds
/// rows of another origin, and a hostname that would be live twice: each is one line on
/// stderr, a failure status, and an unchanged target.
async fn clashes_and_bad_sources_are_refused(backend: Backend) {
    let (original, tenants, _) = original_with_data(backend).await;
    let prepared = Prepared::new(backend, POOLS).await;
    let (ok, _, err) = prepared.duffy(&["migrate"]).await;
    assert!(ok, "{err}");
    let empty = dump(&prepared).await;

    let line = refused(
        &prepared,
        &["--from", "postgresql://nobody@127.0.0.1:1/nothing"],
    )
    .await;
    assert!(
        line.starts_with(
            "Error: cannot reach the source database postgres://nobody@127.0.0.1:1/nothing"
        ),
        "{line}"
    );
    let missing = format!("sqlite:///{}/none.db", original.dir().display());
    let line = refused(&prepared, &["--from", &missing]).await;
    assert!(line.contains("no such file"), "{line}");
    // Our own database is no Duffy 3.x database.
    let ours = prepared.dir().join("ours.db");
    let ours_url = format!("sqlite:///{}", ours.display());
    {
        let other = Prepared::new(Backend::Sqlite, "").await;
        let (ok, _, err) = other.duffy(&["migrate"]).await;
        assert!(ok, "{err}");
        std::fs::copy(other.url.strip_prefix("sqlite://").unwrap(), &ours).unwrap();
    }
    let line = refused(&prepared, &["--from", &ours_url]).await;
    assert_eq!(
        line,
        "Error: the source is not a Duffy database: it has no table alembic_version, so it is not a Duffy 3.x database"
    );
    original
        .duffy(&["migration", "downgrade", "36cf064c0481"])
        .await;
    let line = refused(&prepared, &["--from", &original.sync_url]).await;
    assert!(
        line.starts_with(
            "Error: the source database is at alembic revision 36cf064c0481; duffy import reads Duffy 3.4.0's revision 6654d536b836"
        ),
        "{line}"
    );
    original.duffy(&["migration", "upgrade", "head"]).await;
    assert_eq!(dump(&prepared).await, empty);

    // A tenant this service made has id 1, as the original's admin does.
    let (ok, out, err) = prepared
        .duffy(&["admin", "create-tenant", "local", "ssh-ed25519 AAAA local"])
        .await;
    assert!(ok, "{out}{err}");
    let local = dump(&prepared).await;
    let line = refused(&prepared, &["--from", &original.sync_url]).await;
    assert_eq!(
        line,
        "Error: tenants row 1 (admin): the target already has tenant 1, which did not come \
         from this source: import into an empty database (`duffy migrate` makes one)"
    );
    assert_eq!(dump(&prepared).await, local);

    // A hostname live twice: imported, then a node registered here takes a name the
    // original gives one of its nodes afterwards.
    let prepared = Prepared::new(backend, POOLS).await;
    import(&prepared, &["--from", &original.sync_url]).await;
    let duffy = prepared.start().await;
    let admin = &tenants[0].key;
    let response = duffy
        .http
        .post(format!("{}/api/v1/nodes", duffy.v3_base))
        .basic_auth("admin", Some(admin))
        .body(r#"{"hostname": "taken.import.test", "ipaddr": "192.0.2.200"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let registered: Value = response.json().await.unwrap();
    let taken = registered["node"]["id"].as_i64().expect("node id");
    let prepared = duffy.stop().await;
    let before = dump(&prepared).await;
    original.seed(&["rename", "2", "taken.import.test"]).await;
    let line = refused(&prepared, &["--from", &original.sync_url]).await;
    assert_eq!(
        line,
        format!(
            "Error: nodes row 2 (taken.import.test): hostname 'taken.import.test' is also the \
             hostname of row {taken} (taken.import.test) in the target, and both are live"
        )
    );
    assert_eq!(dump(&prepared).await, before);
}
