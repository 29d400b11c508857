//! Crashes under load, run by `duffy bench`'s chaos scenarios ([`duffy::bench::chaos`]) on
//! the real binary: `duffy serve` processes killed with SIGKILL while v3 and v2 clients
//! keep asking for nodes and giving them back. Nothing the crash interrupted may end
//! failed; no node may be in two sessions; the quota holds throughout; a node is
//! provisioned once; clients that send an `Idempotency-Key` lose no session. The figures
//! are printed (`cargo test chaos -- --nocapture`).

use std::time::Duration;

use duffy::bench::chaos::{self, Common};
use duffy::bench::server::BenchDb;

use crate::both_backends;
use crate::helpers::Backend;

const BIN: &str = env!("CARGO_BIN_EXE_duffy");

/// A database of the run's own, as `duffy bench --database` makes it.
async fn database(backend: Backend, dir: &std::path::Path) -> BenchDb {
    let url = match backend {
        Backend::Sqlite => "sqlite".to_owned(),
        Backend::Postgres => crate::helpers::required_postgres_url(),
    };
    BenchDb::create(&url, dir).await.expect("a database")
}

/// What every chaos run must show.
fn check(common: &Common, what: &str) {
    assert_eq!(common.failed, 0, "{what}: nodes failed");
    assert_eq!(
        (common.double_allocations, common.over_quota),
        (0, 0),
        "{what}: a node in two sessions, or a quota exceeded"
    );
    assert!(common.samples > 0, "{what}: the load was never sampled");
    assert!(common.granted > 0, "{what}: no session was granted");
    assert!(
        common.settled_in.is_some(),
        "{what}: the service did not settle"
    );
    assert_eq!(
        common.provisioned_twice, 0,
        "{what}: nodes provisioned twice"
    );
    assert_eq!(
        common.orphans.first(),
        Some(&("keyed", 0)),
        "{what}: sessions lost despite Idempotency-Key"
    );
}

/// kill -9 under v3 and v2 load, three times, each time restarting on the same database.
async fn kill_9_under_load_fails_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    let kills = [700, 1100, 900].map(Duration::from_millis);
    let report = chaos::kill_loop(BIN.as_ref(), &db, dir.path(), &kills).await;
    db.drop_created().await;
    let report = report.expect("the run");
    eprintln!("{report}");
    assert!(
        report.in_flight.iter().sum::<i64>() > 0,
        "the kills interrupted no run"
    );
    check(&report.common, "kill-9");
}

both_backends!(kill_9_under_load_fails_nothing);

/// Three instances on one PostgreSQL database under load; one is killed with -9. The
/// others take its work over, nothing is done twice, and when it comes back, it touches
/// none of their live work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(duffy_postgres_tests),
    ignore = "PostgreSQL variant: set DUFFY_TEST_POSTGRES_URL to run it"
)]
async fn three_instances_take_over_from_a_killed_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(Backend::Postgres, dir.path()).await;
    let report = chaos::three_instances(BIN.as_ref(), &db, dir.path()).await;
    db.drop_created().await;
    let report = report.expect("the run");
    eprintln!("{report}");
    assert!(
        report.taken_over_after.is_some(),
        "the killed instance's nodes were not taken over"
    );
    assert!(
        report
            .taken_from
            .iter()
            .all(|from| *from == Some(report.killed)),
        "work of a live instance was taken over: {:?}",
        report.taken_from
    );
    assert_eq!(
        report.servers_stopped, 1,
        "only the killed instance is dead"
    );
    check(&report.common, "takeover");
}
