//! The `ansible` mechanism with the real `ansible-playbook` (ansible-core from PyPI in the
//! cached, git-ignored virtualenv `.venv-compat/ansible`): the example playbooks of
//! `config/playbooks/` (written as for the original Duffy) and the misbehaving ones of
//! `fixtures/playbooks/`, all on the implicit localhost with `connection: local`.
//!
//! `DUFFY_SKIP_REAL_CLIENTS=1` skips these tests knowingly.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::both_backends;
use crate::helpers::{Auth, Backend, spawn_app_unfilled};
use crate::venv::{Venv, cached};

/// ansible-core 2.19.4 and the dependency set known to work with it.
const ANSIBLE: Venv = Venv {
    name: "ansible",
    what: "ansible-core==2.19.4",
    check: &["bin/ansible-playbook", "--version"],
    expect: "ansible-playbook [core 2.19.4]",
    requirements: &[
        "ansible-core==2.19.4",
        "Jinja2==3.1.6",
        "MarkupSafe==3.0.4",
        "PyYAML==6.0.3",
        "packaging==26.3",
        "resolvelib==1.2.1",
        "cryptography==50.0.2",
        "cffi==2.1.1",
        "pycparser==3.12",
    ],
};

static VENV: OnceCell<Result<PathBuf, String>> = OnceCell::const_new();

/// The virtualenv's `ansible-playbook`, installed on first use; `None` when the tests are
/// skipped knowingly. Panics with the cause when it cannot be installed.
async fn ansible_playbook() -> Option<PathBuf> {
    if crate::skip::requested("DUFFY_SKIP_REAL_CLIENTS", "real ansible-playbook test") {
        return None;
    }
    match cached(&ANSIBLE, &VENV).await {
        Ok(dir) => Some(dir.join("bin/ansible-playbook")),
        Err(cause) => panic!(
            "cannot install {} for the ansible tests: {cause}\n\
             Set DUFFY_SKIP_REAL_CLIENTS=1 to skip these tests knowingly.",
            ANSIBLE.what
        ),
    }
}

/// The examples' and the fixtures' playbook folders.
fn topdirs() -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    (
        root.join("config/playbooks").display().to_string(),
        root.join("fixtures/playbooks").display().to_string(),
    )
}

/// Pools on the example playbooks: `virt` (one run for both its nodes, pool keys through
/// templated extra-vars) and `metal` (no deprovision playbook).
fn working_config(program: &Path) -> String {
    let (examples, _) = topdirs();
    format!(
        r#"
defaults: {{session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}}
nodepools:
  abstract:
    virtual:
      contextualize: false
      mechanism:
        type: ansible
        ansible:
          ansible-playbook: {program}
          topdir: {examples}
          timeout: 60
          extra-vars: {{pool_name: "{{{{ name }}}}", flavor: "{{{{ flavor }}}}"}}
          provision: {{playbook: provision.yml}}
          deprovision: {{playbook: deprovision.yml}}
  concrete:
    virt:
      extends: virtual
      flavor: small
      fill-level: 2
      run-parallel: false
    metal:
      extends: virtual
      flavor: bare
      fill-level: 1
      mechanism:
        ansible:
          deprovision: null
"#,
        program = program.display()
    )
}

fn nodes_of(all: &Value, pool: &str, state: &str) -> Vec<Value> {
    all["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["pool"] == pool && n["state"] == state)
        .cloned()
        .collect()
}

async fn a_playbook_pool_fills_serves_deprovisions_and_refills(backend: Backend) {
    let Some(program) = ansible_playbook().await else {
        return;
    };
    let app = spawn_app_unfilled(backend, &working_config(&program)).await;
    app.fill().await;
    assert_eq!(app.levels("virt").await["ready"], 2);
    assert_eq!(app.levels("metal").await["ready"], 1);
    let all = app.get("/api/v1/nodes", Auth::None).await.body;
    for (pool, flavor) in [("virt", "small"), ("metal", "bare")] {
        for n in nodes_of(&all, pool, "ready") {
            let id = n["id"].as_i64().unwrap();
            let hostname = format!("{pool}-{id}.example.test");
            let ipaddr = format!("127.3.{}.{}", (id / 256) % 256, id % 256);
            assert_eq!(n["hostname"], hostname, "{n}");
            assert_eq!(n["ipaddr"], ipaddr, "{n}");
            // the whole entry, echoed duffy_in included; flavor came through extra-vars
            assert_eq!(
                n["data"]["provision"],
                json!({"id": id, "hostname": hostname, "ipaddr": ipaddr, "flavor": flavor}),
                "{n}"
            );
        }
    }

    let s = app
        .post(
            "/api/v1/sessions",
            app.admin_auth(),
            &json!({"nodes_specs": [{"pool": "virt", "quantity": 1}, {"pool": "metal", "quantity": 1}]}),
        )
        .await;
    assert_eq!(s.status, 201, "{}", s.text);
    let ids: Vec<i64> = s.body["session"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect();
    app.retire(app.admin_auth(), s.session_id()).await;
    let report = app.deprovision().await;
    assert_eq!(
        (report.done, report.failed),
        (2, 0),
        "the playbook's entries match virt's node; metal has no deprovision playbook"
    );
    for id in ids {
        let node = app
            .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
            .await;
        assert_eq!(node.body["node"]["state"], "done", "{}", node.text);
    }

    app.fill().await;
    assert_eq!(app.levels("virt").await["ready"], 2);
    assert_eq!(app.levels("metal").await["ready"], 1);
}

/// A bare-metal pool that reuses registered machines and reinstalls them with the example
/// playbooks.
fn reuse_config(program: &Path) -> String {
    let (examples, _) = topdirs();
    format!(
        r#"
defaults: {{session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}}
nodepools:
  concrete:
    metal:
      contextualize: false
      architecture: aarch64
      reuse-nodes: {{architecture: "{{{{ architecture }}}}"}}
      fill-level: 1
      mechanism:
        type: ansible
        ansible:
          ansible-playbook: {program}
          topdir: {examples}
          extra-vars: {{pool_name: "{{{{ name }}}}", flavor: metal}}
          provision: {{playbook: provision.yml}}
          deprovision: {{playbook: deprovision.yml}}
"#,
        program = program.display()
    )
}

async fn a_reusable_machine_is_reinstalled_and_returned_unused(backend: Backend) {
    let Some(program) = ansible_playbook().await else {
        return;
    };
    let app = spawn_app_unfilled(backend, &reuse_config(&program)).await;
    let body = json!({"hostname": "m1.lab.test", "ipaddr": "192.0.2.1", "data": {"architecture": "aarch64"}});
    let added = app.post("/api/v1/nodes", app.admin_auth(), &body).await;
    assert_eq!(added.status, 201, "{}", added.text);
    let id = added.body["node"]["id"].as_i64().unwrap();
    app.fill().await;
    let node = app
        .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
        .await
        .body["node"]
        .clone();
    assert_eq!(node["state"], "ready", "{node}");
    assert_eq!(
        (node["hostname"].as_str(), node["ipaddr"].as_str()),
        (Some("m1.lab.test"), Some("192.0.2.1")),
        "{node}"
    );
    assert_eq!(
        node["data"]["provision"],
        json!({"id": id, "hostname": "m1.lab.test", "ipaddr": "192.0.2.1", "flavor": "metal"})
    );

    let s = app.request_session(app.admin_auth(), "metal", 1).await;
    assert_eq!(s.status, 201, "{}", s.text);
    app.retire(app.admin_auth(), s.session_id()).await;
    let report = app.deprovision().await;
    assert_eq!((report.returned, report.failed), (1, 0));
    let node = app
        .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
        .await
        .body["node"]
        .clone();
    assert_eq!(node["state"], "unused", "{node}");
    assert_eq!(node["data"], json!({"architecture": "aarch64"}), "{node}");

    app.fill().await;
    assert_eq!(
        app.levels("metal").await["ready"],
        1,
        "the pool takes it again"
    );
}

/// Pools whose playbooks fail, hang (`sleep <hang_seconds>`, a marker distinct per backend
/// so that parallel tests do not see each other's) or come back short, and one whose
/// deprovisioning fails.
fn misbehaving_config(program: &Path, hang_seconds: &str) -> String {
    let (examples, fixtures) = topdirs();
    format!(
        r#"
defaults: {{session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}}
nodepools:
  abstract:
    base:
      contextualize: false
      mechanism:
        type: ansible
        ansible:
          ansible-playbook: {program}
          topdir: {fixtures}
          timeout: 60
  concrete:
    failing:
      extends: base
      fill-level: 1
      mechanism: {{ansible: {{provision: {{playbook: fail.yml}}}}}}
    silent:
      extends: base
      fill-level: 1
      mechanism: {{ansible: {{provision: {{playbook: silent.yml}}}}}}
    hanging:
      extends: base
      fill-level: 1
      mechanism: {{ansible: {{timeout: 2, extra-vars: {{hang_seconds: {hang_seconds}}}, provision: {{playbook: hang.yml}}}}}}
    short:
      extends: base
      fill-level: 2
      run-parallel: false
      mechanism: {{ansible: {{provision: {{playbook: short.yml}}}}}}
    fragile:
      extends: base
      fill-level: 1
      mechanism:
        ansible:
          topdir: {examples}
          extra-vars: {{pool_name: "{{{{ name }}}}", flavor: none}}
          provision: {{playbook: provision.yml}}
          deprovision: {{playbook: {fixtures}/fail.yml}}
"#,
        program = program.display()
    )
}

/// Whether a process with exactly this command line still runs.
fn process_running(cmdline: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == cmdline)
    })
}

async fn failing_hanging_and_short_playbooks_leave_consistent_state(backend: Backend) {
    let Some(program) = ansible_playbook().await else {
        return;
    };
    let hang_seconds = match backend {
        Backend::Sqlite => "97.25",
        Backend::Postgres => "97.75",
    };
    let app = spawn_app_unfilled(backend, &misbehaving_config(&program, hang_seconds)).await;
    let started = std::time::Instant::now();
    app.fill().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the hanging playbook was killed at its timeout"
    );
    assert!(
        !process_running(&format!("sleep {hang_seconds}")),
        "the hanging playbook's whole process group was killed"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM nodes WHERE state = 'provisioning'")
            .await,
        0,
        "no node stuck"
    );
    for pool in ["failing", "silent", "hanging"] {
        let levels = app.levels(pool).await;
        assert_eq!(
            (levels["ready"].clone(), levels["provisioning"].clone()),
            (json!(0), json!(0)),
            "{pool}: {levels}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM nodes WHERE pool IN ('failing', 'silent', 'hanging')")
            .await,
        0,
        "fresh rows of failed runs are deleted"
    );
    let all = app.get("/api/v1/nodes", Auth::None).await.body;
    let short = nodes_of(&all, "short", "ready");
    assert_eq!(short.len(), 1, "only the node the playbook returned: {all}");
    let id = short[0]["id"].as_i64().unwrap();
    assert_eq!(short[0]["hostname"], format!("short-{id}.example.test"));

    // a failing deprovision playbook fails the node, with the reason in its data
    assert_eq!(app.levels("fragile").await["ready"], 1);
    let s = app.request_session(app.admin_auth(), "fragile", 1).await;
    assert_eq!(s.status, 201, "{}", s.text);
    let id = s.body["session"]["nodes"][0]["id"].as_i64().unwrap();
    app.retire(app.admin_auth(), s.session_id()).await;
    let report = app.deprovision().await;
    assert_eq!((report.done, report.failed), (0, 1));
    let node = app
        .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
        .await
        .body["node"]
        .clone();
    assert_eq!(node["state"], "failed", "{node}");
    assert_eq!(
        node["data"]["error"]["detail"], "deprovisioning mechanism failed",
        "{node}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM nodes WHERE state = 'deprovisioning'")
            .await,
        0
    );
}

/// A run whose future is dropped (as at shutdown) takes its whole process tree with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_run_kills_its_processes() {
    let Some(program) = ansible_playbook().await else {
        return;
    };
    let (_, fixtures) = topdirs();
    let vars = json!({"hang_seconds": 98.5, "duffy_in": {"nodes": []}});
    let run = duffy::mechanisms::ansible::runner::Run {
        program: &program,
        topdir: Path::new(&fixtures),
        playbook: "hang.yml",
        extra_vars: &vars,
        timeout: std::time::Duration::from_secs(600),
        pool: "dropped",
    };
    let mut hanging = false;
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let run = run.duffy_out();
        tokio::pin!(run);
        loop {
            tokio::select! {
                r = &mut run => break Some(r),
                () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {
                    if process_running("sleep 98.5") {
                        hanging = true;
                        break None;
                    }
                }
            }
        }
    })
    .await;
    assert!(
        matches!(outcome, Ok(None)) && hanging,
        "the playbook reached its sleep: {outcome:?}"
    );
    // the run's future is gone now
    for _ in 0..40 {
        if !process_running("sleep 98.5") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the dropped run's processes are still running");
}

both_backends!(
    a_playbook_pool_fills_serves_deprovisions_and_refills,
    a_reusable_machine_is_reinstalled_and_returned_unused,
    failing_hanging_and_short_playbooks_leave_consistent_state,
);
