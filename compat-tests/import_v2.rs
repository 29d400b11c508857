//! `duffy import` from a Duffy v2 database: a throwaway MariaDB holding v2's tables
//! (`fixtures/v2/schema.sql`, `sample.sql`) is brought over; then `cico` works with a v2
//! key, and the imported hosts are what their pools provision first. Active sessions,
//! hostnames twice and keys another tenant has are refused with the target untouched.

use serde_json::Value;

use crate::harness::mariadb::MariaDb;
use crate::harness::{Backend, Cico, Prepared};
use crate::import::{counts, dump, import, refused};
use crate::scenarios;

scenarios!(
    v2_keys_work_after_an_import,
    v2_sources_that_cannot_be_imported_are_refused
);

/// The sample's keys, as its `users` rows hold them.
const ATOMIC_TESTS: &str = "11111111-2222-3333-4444-555555555555";
const CEPH: &str = "33333333-4444-5555-6666-777777777777";

async fn v2_database() -> Option<MariaDb> {
    let db = MariaDb::start().await?;
    db.load("fixtures/v2/schema.sql");
    db.load("fixtures/v2/sample.sql");
    Some(db)
}

/// The dry run shows the tenant names and every skipped host and changes nothing; the
/// import makes a tenant per key with its SSH keys and quota; `cico` gets a node with the
/// ceph key; the imported hosts are provisioned into their pools; a second run after the
/// source changed brings the change, and leaves alone a host already in service here.
async fn v2_keys_work_after_an_import(backend: Backend) {
    let Some(source) = v2_database().await else {
        return;
    };
    let prepared = Prepared::new(backend, "").await;
    let (ok, _, err) = prepared.duffy(&["migrate"]).await;
    assert!(ok, "{err}");
    let empty = dump(&prepared).await;
    let report = import(&prepared, &["--from", source.url(), "--dry-run"]).await;
    assert_eq!(counts(&report, "users"), [4, 0, 0, 0, 0], "{report}");
    assert_eq!(counts(&report, "stock"), [6, 0, 0, 4, 0], "{report}");
    for line in [
        "  users row (projectname \"atomic\", jobname \"atomic-host-tests\") -> atomic-atomic-host-tests (new)",
        "  users row (projectname \"atomic\", jobname \"atomic-nightly\") -> atomic-atomic-nightly (new)",
        "  users row (projectname \"ceph\", jobname \"ceph-ansible\") -> ceph (new)",
        "  users row (projectname \"legacy\", jobname \"legacy\") -> legacy (new)",
        "  stock row 5 (n5.ci.test): state Failed: not managed by Duffy",
        "  stock row 7 (n7.ci.test): state Reserved: not managed by Duffy",
        "  stock row 8 (a1.ci.test): ver=7 arch=aarch64 flavor=tiny: no metaclient.poolmap entry matches",
        "  stock row 9 (a2.ci.test): ver=7 arch=aarch64 flavor=tiny: no metaclient.poolmap entry matches",
        "Nothing was written.",
    ] {
        assert!(
            report.lines().any(|l| l == line),
            "no line {line:?} in:\n{report}"
        );
    }
    for key in [ATOMIC_TESTS, CEPH] {
        assert!(!report.contains(key), "a key in the report:\n{report}");
    }
    assert_eq!(
        dump(&prepared).await,
        empty,
        "the dry run changed the target"
    );

    let report = import(&prepared, &["--from", source.url()]).await;
    assert_eq!(counts(&report, "stock"), [6, 0, 0, 4, 0], "{report}");
    let duffy = prepared.start().await;

    // A tenant per key: the SSH keys joined, limitnodes as the quota, createdat kept.
    let tenants = duffy
        .http
        .get(format!("{}/api/v1/tenants", duffy.v3_base))
        .bearer_auth(ATOMIC_TESTS)
        .send()
        .await
        .unwrap();
    assert_eq!(tenants.status(), 200);
    let body: Value = tenants.json().await.unwrap();
    let me = &body["tenants"][0];
    assert_eq!(me["name"], "atomic-atomic-host-tests", "{body}");
    assert_eq!(me["node_quota"], 10, "{me}");
    assert_eq!(me["created_at"], "2016-03-14T00:00:00Z", "{me}");

    // The hosts are their pools' first nodes: provisioned (noop keeps their names).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ready: Vec<String> = duffy
            .v3_nodes()
            .await
            .into_iter()
            .filter(|n| n["state"] == "ready")
            .filter_map(|n| n["hostname"].as_str().map(str::to_owned))
            .collect();
        let wanted = [
            "n1.ci.test",
            "n2.ci.test",
            "n3.ci.test",
            "n4.ci.test",
            "n6.ci.test",
        ];
        if wanted.iter().all(|h| ready.iter().any(|r| r == h)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "imported hosts not provisioned: {ready:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // cico with a v2 key, unchanged.
    duffy.wait_filled().await;
    let cico = Cico::keyed(&duffy.endpoint(), CEPH);
    let got = cico
        .run(&[
            "node", "get", "-f", "value", "-c", "hostname", "-c", "comment",
        ])
        .await;
    got.assert_ok();
    let ssid = got.fields()[0][1].to_owned();
    let done = cico.run(&["node", "done", &ssid]).await;
    done.assert_ok();
    let prepared = duffy.stop().await;

    // The source moves on: ceph's quota, a host back from Reserved, n1 used again.
    source.sql(
        "UPDATE users SET limitnodes = 7 WHERE projectname = 'ceph'; \
         UPDATE stock SET state = 'Ready' WHERE id = 7; \
         UPDATE stock SET used_count = 43 WHERE id = 1;",
    );
    let report = import(&prepared, &["--from", source.url()]).await;
    assert_eq!(counts(&report, "users"), [0, 1, 3, 0, 0], "{report}");
    assert_eq!(counts(&report, "stock"), [1, 0, 5, 3, 1], "{report}");
    assert!(
        report.contains("stock row 1 (n1.ci.test) changed in the source, but node"),
        "{report}"
    );
    let duffy = prepared.start().await;
    let tenants: Value = duffy
        .http
        .get(format!("{}/api/v1/tenants", duffy.v3_base))
        .bearer_auth(CEPH)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tenants["tenants"][0]["node_quota"], 7, "{tenants}");
}

/// Active sessions, a hostname twice, and a key that another tenant already has: one line
/// each, and the target as it was.
async fn v2_sources_that_cannot_be_imported_are_refused(backend: Backend) {
    let Some(source) = v2_database().await else {
        return;
    };
    let prepared = Prepared::new(backend, "").await;
    let (ok, _, err) = prepared.duffy(&["migrate"]).await;
    assert!(ok, "{err}");
    let empty = dump(&prepared).await;

    source.sql("UPDATE sessions SET state = 'Prod' WHERE id = 'a1b2c3d4'");
    let line = refused(&prepared, &["--from", source.url()]).await;
    assert_eq!(
        line,
        "Error: the v2 database has 1 active session(s) (state Prod or Fail): a1b2c3d4 \
         (atomic, Prod since 2019-05-02 08:15:07); drain the v2 service first (/PauseService, \
         then wait for their /Node/done), or import without them with --ignore-active-sessions"
    );
    assert_eq!(dump(&prepared).await, empty);
    let report = import(
        &prepared,
        &[
            "--from",
            source.url(),
            "--ignore-active-sessions",
            "--dry-run",
        ],
    )
    .await;
    assert!(
        report.contains("  stock row 4 (n4.ci.test): held by active session a1b2c3d4"),
        "{report}"
    );
    source.sql("UPDATE sessions SET state = 'Done' WHERE id = 'a1b2c3d4'");

    source.sql("UPDATE stock SET hostname = 'n1.ci.test' WHERE id = 6");
    let line = refused(&prepared, &["--from", source.url()]).await;
    assert_eq!(
        line,
        "Error: stock row 6 (n1.ci.test): hostname 'n1.ci.test' is also the hostname of \
         stock row 1 (n1.ci.test), and both are live"
    );
    assert_eq!(dump(&prepared).await, empty);
    source.sql("UPDATE stock SET hostname = 'n6.ci.test' WHERE id = 6");

    let (ok, out, err) = prepared
        .duffy(&["admin", "create-tenant", "someone", "ssh-ed25519 AAAA x"])
        .await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = prepared
        .duffy(&["admin", "update-tenant", "--api-key", CEPH, "someone"])
        .await;
    assert!(ok, "{out}{err}");
    let before = dump(&prepared).await;
    let line = refused(&prepared, &["--from", source.url()]).await;
    assert_eq!(
        line,
        "Error: users row (projectname \"ceph\", jobname \"ceph-ansible\"): its API key is \
         already the key of row 1 (someone) in the target"
    );
    assert!(!line.contains(CEPH));
    assert_eq!(dump(&prepared).await, before);
}
