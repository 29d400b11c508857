//! A throwaway OpenSSH server on loopback for the contextualization tests.
//!
//! Each [`Sshd`] lives in a temporary directory of its own: its own host key, a client key
//! made for the test, and an `authorized_keys` file that stands for a node's root account.
//! It never reads or writes the machine's own accounts (`AuthorizedKeysFile` points into the
//! directory). When `/usr/sbin/sshd` is missing, the first test installs `openssh-server`
//! with apt-get (as root, bounded); `DUFFY_SKIP_SSHD=1` skips these tests knowingly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// Whether `DUFFY_SKIP_SSHD` asks to skip the real-sshd tests; says so when it does.
pub fn skipped() -> bool {
    crate::system::skipped("DUFFY_SKIP_SSHD", "real-sshd test")
}

/// Makes sure `/usr/sbin/sshd` exists, installing openssh-server once if needed.
fn ensure_installed() {
    crate::system::ensure_debian_package(SSHD, "openssh-server", "DUFFY_SKIP_SSHD");
}

/// A running sshd on some loopback addresses, killed when dropped.
pub struct Sshd {
    /// The port it listens on, on every address it was given.
    pub port: u16,
    /// The test's private key, authorized for the current user.
    pub identity: PathBuf,
    /// The file that plays the node's `~root/.ssh/authorized_keys`.
    pub authorized_keys: PathBuf,
    /// What `authorized_keys` held before any tenant came: the service's own key.
    pub initial_keys: String,
    /// The user the test logs in as (the one running the tests).
    pub user: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A free TCP port on 127.0.0.1 (the listener is closed again; sshd takes it right after).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Generates an ed25519 key pair at `path`.
fn keygen(path: &Path, comment: &str) {
    let out = crate::system::run_bounded(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(out.status.success(), "ssh-keygen failed: {out:?}");
}

impl Sshd {
    /// Starts sshd listening on `addresses` (all in 127.0.0.0/8) at one free port; `None`
    /// when `DUFFY_SKIP_SSHD` is set.
    pub fn start(addresses: &[&str]) -> Option<Sshd> {
        if skipped() {
            return None;
        }
        ensure_installed();
        // As root, sshd needs its privilege separation directory, which only the service
        // start would create.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_ed25519");
        let identity = dir.path().join("id_ed25519");
        keygen(&host_key, "duffy-test-host");
        keygen(&identity, "duffy-test-service");
        let own_key = std::fs::read_to_string(identity.with_extension("pub")).unwrap();
        let initial_keys = format!("# the node's own keys\n{own_key}");
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys, &initial_keys).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned();
        let port = free_port();
        let mut config = format!(
            "Port {port}\n\
             HostKey {host}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {keys}\n\
             StrictModes no\n\
             UsePAM no\n\
             PermitRootLogin prohibit-password\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             AllowUsers {user}\n",
            host = host_key.display(),
            pid = dir.path().join("sshd.pid").display(),
            keys = authorized_keys.display(),
        );
        for address in addresses {
            config.push_str(&format!("ListenAddress {address}\n"));
        }
        let config_path = dir.path().join("sshd_config");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("sshd.log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut sshd = Sshd {
            port,
            identity,
            authorized_keys,
            initial_keys,
            user,
            child,
            log,
            _dir: dir,
        };
        sshd.wait_listening(addresses);
        Some(sshd)
    }

    /// Waits until sshd says it listens on every address, or panics with its log. (Probing
    /// with a connection would leave a pre-auth child behind when the server is killed.)
    fn wait_listening(&mut self, addresses: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready = |log: &str| {
            addresses.iter().all(|address| {
                log.contains(&format!(
                    "Server listening on {address} port {}.",
                    self.port
                ))
            })
        };
        loop {
            let log = self.log();
            if ready(&log) {
                return;
            }
            let exited = self.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "sshd did not start ({exited:?}): {log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What sshd wrote to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The current content of the node's `authorized_keys`.
    pub fn keys(&self) -> String {
        std::fs::read_to_string(&self.authorized_keys).unwrap()
    }

    /// The `app.ssh` section pointing Duffy at this server.
    pub fn app_config(&self) -> String {
        self.app_config_with_timeout("30s")
    }

    /// The same, with another bound on each ssh run.
    pub fn app_config_with_timeout(&self, timeout: &str) -> String {
        format!(
            "app:\n  ssh:\n    user: {user}\n    port: {port}\n    authorized-keys: {keys}\n    \
             timeout: {timeout}\n    options:\n      - IdentityFile={id}\n      - IdentitiesOnly=yes\n      \
             - BatchMode=yes\n      - ConnectionAttempts=1\n      - ConnectTimeout=10\n      \
             - GlobalKnownHostsFile=/dev/null\n",
            user = self.user,
            port = self.port,
            keys = self.authorized_keys.display(),
            id = self.identity.display(),
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
