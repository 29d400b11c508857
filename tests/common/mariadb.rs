//! A throwaway MariaDB server on 127.0.0.1 for the tests of importing a Duffy v2 database.
//!
//! Shared by test binaries, each of which includes this file with `#[path]`. Each
//! [`MariaDb`] lives in a temporary directory of its own: a data directory made by
//! `mariadb-install-db`, the server's socket, pid file and error log. The server listens on
//! 127.0.0.1 only, at a free port (never 3306, so a MariaDB of the machine is left alone),
//! has a database `duffy` and a user `duffy`/`duffy-pass` with all rights on it, and is
//! killed when the value is dropped, also when a test panics.
//!
//! When `/usr/sbin/mariadbd` (or the client) is missing, the first test installs Debian's
//! `mariadb-server-core` and `mariadb-client-core` with apt-get (as root, bounded). These
//! hold the programs only: no init script, no maintainer script, so nothing starts a
//! server of the machine. `DUFFY_SKIP_MARIADB=1` skips these tests knowingly.
//!
//! ```ignore
//! let Some(db) = MariaDb::start().await else { return };
//! db.load("fixtures/v2/schema.sql");
//! db.load("fixtures/v2/sample.sql");
//! assert_eq!(db.sql("SELECT COUNT(*) FROM users"), "4\n");
//! // `duffy import --from` gets db.url(): mysql://duffy:duffy-pass@127.0.0.1:PORT/duffy
//! ```

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The server.
const MARIADBD: &str = "/usr/sbin/mariadbd";
/// What makes its data directory.
const INSTALL_DB: &str = "/usr/bin/mariadb-install-db";
/// The command-line client behind [`MariaDb::sql`].
const CLIENT: &str = "/usr/bin/mariadb";
/// The Debian packages that hold these three programs (and no service).
const PACKAGES: &[&str] = &["mariadb-server-core", "mariadb-client-core"];
/// The variable that skips these tests.
const SKIP_VAR: &str = "DUFFY_SKIP_MARIADB";

/// The database the tests' data goes into.
pub const DATABASE: &str = "duffy";
/// The user of [`MariaDb::url`], with all rights on [`DATABASE`].
pub const USER: &str = "duffy";
/// Its password.
pub const PASSWORD: &str = "duffy-pass";

/// How long the server may take to accept connections.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long `mariadb-install-db` and one run of the client may take.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// How long an `apt-get` may take.
const INSTALL_LIMIT: Duration = Duration::from_secs(600);
/// How many ports to try when another process takes the free one first.
const PORT_ATTEMPTS: u32 = 5;

/// A running MariaDB server of a test's own, killed (and its directory removed) when
/// dropped.
pub struct MariaDb {
    port: u16,
    url: String,
    socket: PathBuf,
    error_log: PathBuf,
    child: Option<Child>,
    // Removed with the value, after `drop` has killed the server.
    dir: tempfile::TempDir,
}

impl MariaDb {
    /// Starts a fresh server with the database `duffy` and the user `duffy`, and waits
    /// until it accepts connections (at most 60 s); `None` when `DUFFY_SKIP_MARIADB` is
    /// set. Panics with the server's error log when it does not start. The blocking work
    /// runs on tokio's blocking pool, so any runtime flavour will do.
    pub async fn start() -> Option<MariaDb> {
        if skipped() {
            return None;
        }
        match tokio::task::spawn_blocking(start_blocking).await {
            Ok(db) => Some(db),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("starting MariaDB was cancelled: {e}"),
        }
    }

    /// `mysql://duffy:duffy-pass@127.0.0.1:PORT/duffy`: the URL an importer is given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The TCP port the server listens on (on 127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `text` (one or more `;`-terminated statements) in the database `duffy` as the
    /// server's root, over its socket, with the `mariadb` client in batch mode: its
    /// stdout, one line per row, columns separated by tabs, no header line (so
    /// `SELECT COUNT(*) FROM users` gives `"4\n"`). Panics with the client's stderr when
    /// a statement fails. Blocks the calling thread until the client is done.
    pub fn sql(&self, text: &str) -> String {
        self.root_client(Some(DATABASE), text)
            .unwrap_or_else(|e| panic!("SQL failed: {e}\nSQL: {}", excerpt(text)))
    }

    /// Runs the SQL file at `path` (relative to the repository root unless absolute) like
    /// [`MariaDb::sql`], e.g. `db.load("fixtures/v2/schema.sql")`.
    pub fn load(&self, path: impl AsRef<Path>) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        self.root_client(Some(DATABASE), &text)
            .unwrap_or_else(|e| panic!("loading {} failed: {e}", path.display()))
    }

    /// Runs `text` in the database `duffy` as `user` with `password`, over TCP to
    /// 127.0.0.1 like an importer connects; the output as in [`MariaDb::sql`], or the
    /// client's error (e.g. `Access denied for user …`).
    pub fn sql_as(&self, user: &str, password: &str, text: &str) -> Result<String, String> {
        let mut cmd = client();
        cmd.arg("--protocol=TCP")
            .arg("--host=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={user}"))
            .arg(format!("--password={password}"))
            .arg(format!("--database={DATABASE}"));
        run_client(&mut cmd, text)
    }

    /// What the server wrote to its error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// Runs `text` as root over the socket, in `database` if given.
    fn root_client(&self, database: Option<&str>, text: &str) -> Result<String, String> {
        let mut cmd = client();
        cmd.arg(format!("--socket={}", self.socket.display()))
            .arg("--user=root");
        if let Some(database) = database {
            cmd.arg(format!("--database={database}"));
        }
        run_client(&mut cmd, text)
    }

    /// Starts `mariadbd` at `self.port` and waits until it accepts connections: `false`
    /// when the port was taken by someone else in the meantime; panics on anything else.
    fn launch(&mut self) -> bool {
        // The log is opened for appending: a fresh one per attempt.
        let _ = std::fs::remove_file(&self.error_log);
        let dir = self.dir.path();
        let mut cmd = Command::new(MARIADBD);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", self.error_log.display()))
            .arg(format!("--tmpdir={}", dir.display()))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .arg("--skip-networking=0")
            .arg("--skip-name-resolve")
            .args(SMALL_SERVER);
        if running_as_root() {
            // mariadbd refuses to run as root unless told to.
            cmd.arg("--user=root");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {MARIADBD}: {e}"));
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits for the log's `ready for connections` (the server listens by then).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let log = self.error_log();
            if log.contains("ready for connections") {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                if log.contains("Address already in use") {
                    return false;
                }
                panic!(
                    "mariadbd on 127.0.0.1:{} exited ({status}) before accepting connections; \
                     its error log:\n{log}",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd on 127.0.0.1:{} did not accept connections within {START_LIMIT:?}; \
                 its error log:\n{log}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server, if running, and waits for it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Settings that keep a test server small and independent of the machine: a small buffer
/// pool and redo log, no asynchronous I/O of the kernel (io_uring may be refused in a
/// container), no event scheduler.
const SMALL_SERVER: &[&str] = &[
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=8M",
    "--innodb-use-native-aio=0",
    "--event-scheduler=OFF",
];

/// Everything [`MariaDb::start`] does, on a thread that may block.
fn start_blocking() -> MariaDb {
    ensure_installed();
    let dir = tempfile::Builder::new()
        .prefix("duffy-mariadb-")
        .tempdir()
        .expect("a temporary directory for MariaDB");
    let socket = dir.path().join("mariadbd.sock");
    // A Unix socket's path is limited to 107 bytes.
    assert!(
        socket.as_os_str().len() < 100,
        "the socket path {} is too long for a Unix socket: set TMPDIR to a shorter folder",
        socket.display()
    );
    install_db(dir.path());
    let mut db = MariaDb {
        port: 0,
        url: String::new(),
        socket,
        error_log: dir.path().join("error.log"),
        child: None,
        dir,
    };
    let mut attempt = 1;
    loop {
        db.port = free_port();
        if db.launch() {
            break;
        }
        assert!(
            attempt < PORT_ATTEMPTS,
            "mariadbd found {PORT_ATTEMPTS} free ports taken in a row; last error log:\n{}",
            db.error_log()
        );
        attempt += 1;
    }
    let setup = format!(
        "CREATE DATABASE {DATABASE};\n\
         CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';\n\
         CREATE USER '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}';\n\
         GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{USER}'@'127.0.0.1', '{USER}'@'localhost';\n"
    );
    if let Err(e) = db.root_client(None, &setup) {
        panic!(
            "creating the database and user failed: {e}\nerror log:\n{}",
            db.error_log()
        );
    }
    db.url = format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}/{DATABASE}", db.port);
    db
}

/// A fresh data directory in `dir/data`, with a root that logs in without a password
/// (only through this server's socket and loopback port) and no test database.
fn install_db(dir: &Path) {
    let mut cmd = Command::new(INSTALL_DB);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", dir.join("data").display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg("--skip-name-resolve")
        .arg("--innodb-log-file-size=8M")
        // Passed on to the bootstrapping mariadbd, whose temporary tables then stay out of
        // the shared /tmp: once, with two bootstraps at a time, one failed there when its
        // temporary table vanished (`Unknown table 'mysql.tmp_user_sys'`).
        .arg(format!("--tmpdir={}", dir.display()));
    if running_as_root() {
        cmd.arg("--user=root");
    }
    match super::process::run_bounded(&mut cmd, None, RUN_LIMIT) {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{INSTALL_DB} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("{INSTALL_DB}: {e}"),
    }
}

/// The client with the options every run shares: no option files of the machine, batch
/// output without column names, a bounded connect.
fn client() -> Command {
    let mut cmd = Command::new(CLIENT);
    cmd.arg("--no-defaults")
        .arg("--batch")
        .arg("--skip-column-names")
        .arg("--connect-timeout=10")
        .arg("--default-character-set=utf8mb4");
    // Environment variables the client would otherwise read in.
    for var in [
        "MYSQL_PWD",
        "MYSQL_HOST",
        "MYSQL_TCP_PORT",
        "MYSQL_UNIX_PORT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Feeds `text` to the client: its stdout, or its status and stderr.
fn run_client(cmd: &mut Command, text: &str) -> Result<String, String> {
    let out = super::process::run_bounded(cmd, Some(text.as_bytes()), RUN_LIMIT)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "mariadb client {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// The first lines of an SQL text, for a panic message.
fn excerpt(text: &str) -> String {
    let lines: Vec<&str> = text.lines().take(20).collect();
    let more = if text.lines().count() > lines.len() {
        "\n…"
    } else {
        ""
    };
    format!("{}{more}", lines.join("\n"))
}

/// Whether `DUFFY_SKIP_MARIADB` asks to skip the MariaDB tests; says so when it does
/// (with `skip.rs`, which the including binary has beside this module).
fn skipped() -> bool {
    super::skip::requested(SKIP_VAR, "MariaDB test")
}

/// Whether this process runs as root (`/proc/self` belongs to the effective user).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A free TCP port on 127.0.0.1, never 3306 (the listener is closed again; mariadbd takes
/// the port right after, and [`start_blocking`] tries another if someone was faster).
fn free_port() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("a bound address").port();
        if port != 3306 {
            return port;
        }
    }
}

/// Makes sure the server, `mariadb-install-db` and the client exist, installing the
/// Debian packages once if not (as root, with apt-get). Panics with the cause and the way
/// out when it cannot.
fn ensure_installed() {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let missing = || {
        [MARIADBD, INSTALL_DB, CLIENT]
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect::<Vec<_>>()
    };
    if missing().is_empty() {
        return;
    }
    let packages = PACKAGES.join(" ");
    let advice = format!("Install {packages}, or set {SKIP_VAR}=1 to skip these tests.");
    assert!(
        running_as_root(),
        "{:?} missing and cannot be installed: not running as root. {advice}",
        missing()
    );
    let install = || {
        super::process::run_bounded(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(["-o", "DPkg::Lock::Timeout=300"])
                .args(PACKAGES)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            None,
            INSTALL_LIMIT,
        )
    };
    let mut outcome = install();
    if !matches!(&outcome, Ok(o) if o.status.success()) {
        // The package lists may be missing in a fresh container.
        let _ =
            super::process::run_bounded(Command::new("apt-get").arg("update"), None, INSTALL_LIMIT);
        outcome = install();
    }
    match outcome {
        Ok(o) if o.status.success() && missing().is_empty() => {}
        Ok(o) => panic!(
            "`apt-get install -y {packages}` failed ({}) or left {:?} missing: {}\n{advice}",
            o.status,
            missing(),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("{packages} could not be installed: {e}\n{advice}"),
    }
}
