//! `duffy replay` end to end: the real binary replays `fixtures/v2/` against the test app's
//! v2 endpoints (configured by `fixtures/v2/duffy.yaml`), on both backends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::both_backends;
use crate::helpers::{Backend, Spawn, TestApp, spawn_app, spawn_app_with};

const BIN: &str = env!("CARGO_BIN_EXE_duffy");
const FIXTURES: &str = "fixtures/v2";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `duffy replay ARGS…` from the repository root (so paths read `fixtures/v2/…`).
async fn replay(args: &[String]) -> Run {
    let run = tokio::process::Command::new(BIN)
        .arg("replay")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DUFFY_REPLAY_KEY")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("duffy replay finishes within 5 minutes")
        .expect("duffy replay runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The `*.jsonl` fixtures in name order, as the shell's glob lists them.
fn jsonl_fixtures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURES);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".jsonl"))
        .map(|name| format!("{FIXTURES}/{name}"))
        .collect();
    files.sort();
    files
}

/// How many records a fixture holds (lines that are neither blank nor comments).
fn records_in(file: &str) -> usize {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count()
}

/// The app of `fixtures/v2/duffy.yaml` with background jobs (the slow pool's hour-long
/// provisioning would block a synchronous fill), once its pools are ready; and the keys of
/// the two tenants the fixtures use.
async fn fixture_app(backend: Backend) -> (TestApp, String, String) {
    let config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(FIXTURES)
            .join("duffy.yaml"),
    )
    .unwrap();
    let app = spawn_app_with(
        backend,
        Spawn {
            config: &config,
            background_jobs: true,
            fill: false,
        },
    )
    .await;
    for (pool, ready) in [
        ("v2-c7-x86_64", 30),
        ("v2-c7-x86_64-medium", 3),
        ("v2-c7-aarch64-tiny", 2),
    ] {
        let mut filled = false;
        for _ in 0..600 {
            if app.levels(pool).await["ready"] == ready {
                filled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            filled,
            "{pool} never reached {ready} ready nodes: {}",
            app.levels(pool).await
        );
    }
    let (_, key) = app.tenant("replay-one", Some(6)).await;
    let (_, key2) = app.tenant("replay-two", Some(6)).await;
    (app, key, key2)
}

fn lines_of<'a>(run: &'a Run, verdict: &str) -> Vec<&'a str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{verdict:<11} ")))
        .collect()
}

async fn the_v2_fixtures_replay_compatibly(backend: Backend) {
    let (app, key, key2) = fixture_app(backend).await;
    let files = jsonl_fixtures();
    assert!(files.len() >= 6, "{files:?}");
    let total: usize = files.iter().map(|f| records_in(f)).sum();
    let mut args = files.clone();
    args.extend([
        "--against".into(),
        format!("{}/", app.address),
        "--key".into(),
        key.clone(),
        "--var".into(),
        format!("key2={key2}"),
    ]);
    let run = replay(&args).await;
    let out = &run.stdout;
    assert!(
        !out.contains(&key) && !out.contains(&key2),
        "a key was printed:\n{out}"
    );
    assert!(!run.stderr.contains(&key), "{}", run.stderr);
    assert!(lines_of(&run, "error").is_empty(), "{out}");
    assert!(
        lines_of(&run, "different").is_empty(),
        "an incompatibility:\n{out}"
    );
    assert_eq!(
        out.lines().last(),
        Some(
            format!(
                "replayed {total} requests from {} files: {total} compatible, 0 different, 0 errors, 0 skipped",
                files.len(),
            )
            .as_str()
        ),
        "{out}"
    );
    assert_eq!(lines_of(&run, "compatible").len(), total, "{out}");
    assert_eq!(run.code, 0, "{out}\n{}", run.stderr);

    // The access log: old ssids map onto the sessions this replay obtained.
    let log = replay(&[
        format!("{FIXTURES}/access.log"),
        "--against".into(),
        app.address.clone(),
        "--key".into(),
        key.clone(),
    ])
    .await;
    assert_eq!(log.code, 0, "{}\n{}", log.stdout, log.stderr);
    assert!(!log.stdout.contains(&key));
    assert_eq!(
        log.stdout.lines().last(),
        Some("replayed 15 requests from 1 file: 15 compatible, 0 different, 0 errors, 3 skipped"),
        "{}",
        log.stdout
    );
    assert!(
        log.stdout
            .contains("compatible  GET /Node/done?key=***&ssid=")
            && !log.stdout.contains("ssid=578e1a0b"),
        "the logged ssid is replaced by one of ours:\n{}",
        log.stdout
    );
}

async fn an_altered_fixture_fails_with_a_readable_difference(backend: Backend) {
    let (app, key, key2) = fixture_app(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(FIXTURES)
            .join("30-node-done.jsonl"),
    )
    .unwrap();
    // Expect "Done" where the contract says a second /Node/done is not in Prod any more.
    let twice = original
        .lines()
        .find(|l| l.contains(r#""name": "done twice""#))
        .expect("the fixture has a `done twice` record");
    let wrong = twice.replace(
        r#""json": {"msg": "Session not in Prod"}"#,
        r#""json": "Done""#,
    );
    assert_ne!(wrong, twice, "the expectation was altered");
    let altered: PathBuf = dir.path().join("30-node-done.jsonl");
    std::fs::write(&altered, original.replace(twice, &wrong)).unwrap();
    let records = records_in(&format!("{FIXTURES}/30-node-done.jsonl"));

    let run = replay(&[
        altered.display().to_string(),
        "--against".into(),
        app.address.clone(),
        "--key".into(),
        key.clone(),
        "--var".into(),
        format!("key2={key2}"),
    ])
    .await;
    let out = &run.stdout;
    assert_eq!(run.code, 1, "{out}\n{}", run.stderr);
    assert!(!out.contains(&key) && !out.contains(&key2), "{out}");
    let different = lines_of(&run, "different");
    assert_eq!(different.len(), 1, "{out}");
    let line = different[0];
    assert!(
        line.starts_with("different   GET /Node/done?key=***&ssid=")
            && line.ends_with(
                r#" done twice]: $: expected "Done", got {"msg":"Session not in Prod"}"#
            ),
        "{line}"
    );
    assert_eq!(
        out.lines().last(),
        Some(
            format!(
                "replayed {records} requests from 1 file: {} compatible, 1 different, 0 errors, 0 skipped",
                records - 1
            )
            .as_str()
        ),
        "{out}"
    );
}

async fn usage_errors_exit_2_before_any_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("replay-one", None).await;
    // Every replayed record prints a line: an empty stdout means nothing was sent.
    let fixture = format!("{FIXTURES}/10-node-get.jsonl");
    for (args, message) in [
        (
            vec![
                fixture.clone(),
                "--against".into(),
                "https://127.0.0.1/".into(),
            ],
            "only http:// URLs",
        ),
        (
            vec![
                fixture.clone(),
                "nowhere.jsonl".into(),
                "--against".into(),
                app.address.clone(),
            ],
            "cannot read nowhere.jsonl",
        ),
        (
            vec![
                fixture.clone(),
                "--against".into(),
                app.address.clone(),
                "--var".into(),
                key.clone(),
            ],
            "expected NAME=VALUE",
        ),
    ] {
        let run = replay(&args).await;
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.is_empty(), "nothing replayed: {}", run.stdout);
        assert!(run.stderr.contains(message), "{}", run.stderr);
        assert!(!run.stderr.contains(&key), "{}", run.stderr);
    }
}

both_backends!(
    the_v2_fixtures_replay_compatibly,
    an_altered_fixture_fails_with_a_readable_difference,
    usage_errors_exit_2_before_any_request,
);
