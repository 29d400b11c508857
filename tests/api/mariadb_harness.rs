//! The throwaway MariaDB of `tests/common/mariadb.rs` that the v2 import tests run against:
//! it takes v2's schema and sample data, lets the `duffy` user in over TCP with the URL's
//! password only, and is gone once dropped, also when its test panics.
//! `DUFFY_SKIP_MARIADB=1` skips these tests knowingly.

use std::net::TcpStream;

use crate::mariadb::{DATABASE, MariaDb, PASSWORD, USER};

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test]
async fn a_throwaway_mariadb_holds_the_v2_fixtures_and_is_gone_after_drop() {
    let Some(db) = MariaDb::start().await else {
        return;
    };
    let port = db.port();
    assert_ne!(port, 3306, "never the machine's own MariaDB port");
    assert_eq!(
        db.url(),
        format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}")
    );
    assert!(db.error_log().contains("ready for connections"));
    assert_eq!(
        db.sql("SELECT @@port, @@bind_address, @@skip_networking"),
        format!("{port}\t127.0.0.1\t0\n"),
        "a server of its own, on loopback only"
    );

    db.load("fixtures/v2/schema.sql");
    db.load("fixtures/v2/sample.sql");
    let tables = db.sql("SHOW TABLES");
    assert_eq!(
        tables.lines().collect::<Vec<_>>(),
        [
            "alembic_version",
            "session_archive",
            "session_hosts",
            "sessions",
            "stock",
            "userkeys",
            "users"
        ]
    );
    for (table, rows) in [
        ("alembic_version", 1),
        ("users", 4),
        ("userkeys", 4),
        ("stock", 10),
        ("sessions", 2),
        ("session_archive", 2),
        ("session_hosts", 2),
    ] {
        assert_eq!(
            db.sql(&format!("SELECT COUNT(*) FROM {table}")),
            format!("{rows}\n"),
            "rows in {table}"
        );
    }
    assert_eq!(
        db.sql("SELECT version_num FROM alembic_version"),
        "8ac110f4ffce\n"
    );
    assert_eq!(
        db.sql(
            "SELECT u.jobname, COUNT(k.id) FROM users u \
             LEFT JOIN userkeys k ON k.project_id = u.apikey \
             GROUP BY u.apikey ORDER BY u.apikey"
        ),
        "atomic-host-tests\t2\natomic-nightly\t1\nceph-ansible\t1\nlegacy\t0\n",
        "one job with two keys, one with none"
    );
    assert_eq!(
        db.sql("SELECT DISTINCT state FROM stock ORDER BY state"),
        "Active\nDeployed\nFailed\nReady\nReserved\n"
    );
    assert_eq!(
        db.sql(
            "SELECT ver, arch, IFNULL(flavor, '-'), COUNT(*) FROM stock \
             GROUP BY ver, arch, flavor ORDER BY ver, arch"
        ),
        "6\tppc64le\ttiny\t1\n7\taarch64\ttiny\t2\n7\tx86_64\t-\t4\n8\tx86_64\t-\t3\n"
    );
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM sessions WHERE state IN ('Prod', 'Fail')"),
        "0\n",
        "no active session"
    );

    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.sql("SELEC 1")));
    let message = failed.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains("error in your SQL syntax") && message.contains("SELEC 1"),
        "a failing statement panics with the client's error and the SQL: {message}"
    );

    // The URL's user and password, over TCP, as an importer connects.
    assert_eq!(
        db.sql_as(
            USER,
            PASSWORD,
            "SELECT CURRENT_USER(), DATABASE(), COUNT(*) FROM users"
        ),
        Ok(format!("{USER}@127.0.0.1\t{DATABASE}\t4\n"))
    );
    let refused = db.sql_as(USER, "not-the-password", "SELECT 1").unwrap_err();
    assert!(refused.contains("Access denied"), "{refused}");
    let elsewhere = db
        .sql_as(USER, PASSWORD, "SELECT COUNT(*) FROM mysql.user")
        .unwrap_err();
    assert!(
        elsewhere.contains("denied"),
        "the user's rights end at its database: {elsewhere}"
    );

    assert!(accepts(port));
    drop(db);
    assert!(!accepts(port), "the server is gone with its value");
}

#[tokio::test]
async fn the_server_is_stopped_when_its_test_panics() {
    let Some(db) = MariaDb::start().await else {
        return;
    };
    let port = db.port();
    let failing = tokio::spawn(async move {
        assert!(accepts(db.port()));
        panic!("a failing import test");
    });
    assert!(failing.await.unwrap_err().is_panic());
    assert!(!accepts(port), "the panic stopped the server");
}
