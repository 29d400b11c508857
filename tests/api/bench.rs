//! `duffy bench`, run briefly at low concurrency so that it cannot rot: every scenario
//! prints its row, nothing fails, and the database is clean afterwards.

use std::process::Command;
use std::time::Duration;

use crate::system::run_bounded;

const BIN: &str = env!("CARGO_BIN_EXE_duffy");

fn bench(database: &str) -> String {
    let out = run_bounded(
        Command::new(BIN).args([
            "bench",
            "--duration",
            "1s",
            "--concurrency",
            "2",
            "--inventory-nodes",
            "300",
            "--retired-sessions",
            "1000",
            "--database",
            database,
        ]),
        Duration::from_secs(300),
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn check(report: &str) {
    for scenario in [
        "get-pools ",
        "get-pools (trivial warp handler) ",
        "cycle ",
        "legacy-cycle ",
        "inventory ",
    ] {
        let row = report
            .lines()
            .find(|l| l.starts_with(scenario))
            .unwrap_or_else(|| panic!("no {scenario:?} row in\n{report}"));
        let cells: Vec<&str> = row[32..].split_whitespace().collect();
        assert_eq!(cells.len(), 8, "{row}");
        assert!(cells[1].parse::<u64>().unwrap() > 0, "no operation: {row}");
        assert_eq!(cells[7], "0", "errors: {row}\n{report}");
    }
    assert!(
        report.contains("0 session(s) left active, 0 node(s) in transient states"),
        "{report}"
    );
    assert!(report.contains("server memory: "), "{report}");
    assert!(
        report.contains("% of the trivial handler's rate"),
        "{report}"
    );
}

#[test]
fn the_benchmark_runs_on_sqlite() {
    check(&bench("sqlite"));
}

#[test]
#[cfg_attr(
    not(duffy_postgres_tests),
    ignore = "PostgreSQL variant: set DUFFY_TEST_POSTGRES_URL to run it"
)]
fn the_benchmark_runs_on_postgres() {
    check(&bench(&crate::helpers::required_postgres_url()));
}
