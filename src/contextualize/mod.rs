//! Contextualization: handing a node to a tenant by pushing the tenant's SSH key into
//! root's `authorized_keys`, and taking it back.
//!
//! The keys go below a marker line, so decontextualizing removes exactly what Duffy added
//! (`docs/v3-api.md` §12). Every ssh run is bounded by a timeout and killed when it expires.

use std::process::Stdio;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::config::SshConfig;

/// The line that separates the node's own keys from the tenant's.
pub const MARKER: &str = "### DUFFY tenant credentials";

/// Why a node could not be (de)contextualized.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ContextError(pub String);

/// Pushes and removes tenant keys on nodes.
pub trait Contextualizer: Send + Sync {
    /// Gives the tenant's keys access to the node at `ipaddr` (after removing earlier ones).
    fn contextualize<'a>(
        &'a self,
        ipaddr: &'a str,
        ssh_key: &'a str,
    ) -> BoxFuture<'a, Result<(), ContextError>>;

    /// Removes every tenant key from the node at `ipaddr`.
    fn decontextualize<'a>(&'a self, ipaddr: &'a str) -> BoxFuture<'a, Result<(), ContextError>>;
}

/// Contextualization over `ssh`, with the original Duffy's options.
#[derive(Debug, Clone)]
pub struct Ssh {
    /// The ssh client to run.
    pub command: String,
    /// The remote user whose `authorized_keys` is edited.
    pub user: String,
    /// The remote port.
    pub port: u16,
    /// The remote `authorized_keys` path (a shell word, `~root/...` allowed).
    pub authorized_keys: String,
    /// Upper bound on each ssh run.
    pub timeout: Duration,
    /// Extra `-o` options, given before the original's so that they win (ssh keeps the first
    /// value it reads for an option).
    pub extra_options: Vec<String>,
}

impl Default for Ssh {
    /// The original Duffy's settings: `/usr/bin/ssh` as root on port 22.
    fn default() -> Self {
        Ssh::from_config(&SshConfig::default())
    }
}

impl Ssh {
    /// The contextualizer that `app.ssh` describes.
    pub fn from_config(config: &SshConfig) -> Self {
        Ssh {
            command: config.command.clone(),
            user: config.user.clone(),
            port: config.port,
            authorized_keys: config.authorized_keys.clone(),
            timeout: config.timeout,
            extra_options: config.options.clone(),
        }
    }
}

/// The options the original Duffy passes to ssh.
const SSH_OPTIONS: [&str; 10] = [
    "CheckHostIP=no",
    "ConnectionAttempts=5",
    "EscapeChar=none",
    "ForwardAgent=no",
    "ForwardX11=no",
    "PasswordAuthentication=no",
    "PubkeyAuthentication=yes",
    "RequestTTY=no",
    "StrictHostKeyChecking=no",
    "UserKnownHostsFile=/dev/null",
];

impl Ssh {
    /// The remote command that drops the marker line and everything after it.
    fn strip_command(&self) -> String {
        format!("sed -i -n '/{MARKER}/q;p' {}", self.authorized_keys)
    }

    async fn run(
        &self,
        ipaddr: &str,
        remote: &str,
        stdin: Option<String>,
    ) -> Result<(), ContextError> {
        let mut cmd = Command::new(&self.command);
        cmd.arg("-q").arg("-p").arg(self.port.to_string());
        for option in self
            .extra_options
            .iter()
            .map(String::as_str)
            .chain(SSH_OPTIONS.iter().copied())
        {
            cmd.arg("-o").arg(option);
        }
        cmd.arg(format!("{}@{}", self.user, ipaddr))
            .arg(remote)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| ContextError(format!("cannot run {}: {e}", self.command)))?;
        let run = async {
            if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
                pipe.write_all(text.as_bytes())
                    .await
                    .map_err(|e| ContextError(format!("writing to ssh: {e}")))?;
            }
            child
                .wait()
                .await
                .map_err(|e| ContextError(format!("waiting for ssh: {e}")))
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(ContextError(format!(
                "ssh to {ipaddr} exited with {status}"
            ))),
            Ok(Err(e)) => Err(e),
            // Dropping the child kills it.
            Err(_) => Err(ContextError(format!(
                "ssh to {ipaddr} timed out after {:?}",
                self.timeout
            ))),
        }
    }
}

impl Contextualizer for Ssh {
    fn contextualize<'a>(
        &'a self,
        ipaddr: &'a str,
        ssh_key: &'a str,
    ) -> BoxFuture<'a, Result<(), ContextError>> {
        async move {
            self.run(ipaddr, &self.strip_command(), None).await?;
            let append = format!("cat - >> {}", self.authorized_keys);
            self.run(ipaddr, &append, Some(format!("{MARKER}\n{ssh_key}\n")))
                .await
        }
        .boxed()
    }

    fn decontextualize<'a>(&'a self, ipaddr: &'a str) -> BoxFuture<'a, Result<(), ContextError>> {
        async move { self.run(ipaddr, &self.strip_command(), None).await }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_command_matches_the_original() {
        assert_eq!(
            Ssh::default().strip_command(),
            "sed -i -n '/### DUFFY tenant credentials/q;p' ~root/.ssh/authorized_keys"
        );
    }

    /// Writes an executable script from another process. Had this process held the file open
    /// for writing, a concurrent test's fork could inherit that descriptor and make running
    /// the script fail with "Text file busy".
    fn executable(path: &std::path::Path, body: &str) {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
            .arg(path)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }

    #[tokio::test]
    async fn the_command_line_has_the_configured_settings_and_extra_options_first() {
        let dir = tempfile::tempdir().unwrap();
        let args = dir.path().join("args");
        let script = dir.path().join("fake-ssh");
        executable(
            &script,
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" >> {}\ncat > /dev/null\n",
                args.display()
            ),
        );
        let ssh = Ssh::from_config(&SshConfig {
            command: script.display().to_string(),
            user: "duffy".into(),
            port: 2222,
            authorized_keys: "/srv/keys".into(),
            timeout: Duration::from_secs(10),
            options: vec!["ConnectionAttempts=1".into()],
        });
        ssh.decontextualize("192.0.2.7").await.unwrap();
        let text = std::fs::read_to_string(&args).unwrap();
        let argv: Vec<&str> = text.lines().collect();
        assert_eq!(
            &argv[..5],
            ["-q", "-p", "2222", "-o", "ConnectionAttempts=1"]
        );
        assert_eq!(argv[6], "CheckHostIP=no", "the original's options follow");
        assert_eq!(
            &argv[argv.len() - 2..],
            [
                "duffy@192.0.2.7",
                "sed -i -n '/### DUFFY tenant credentials/q;p' /srv/keys"
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_ssh_is_an_error_and_a_hanging_one_is_killed() {
        let failing = Ssh {
            command: "false".into(),
            ..Ssh::default()
        };
        assert!(failing.decontextualize("127.0.0.1").await.is_err());

        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hang");
        executable(&script, "#!/bin/sh\nexec sleep 30\n");
        let hanging = Ssh {
            command: script.display().to_string(),
            timeout: Duration::from_millis(200),
            ..Ssh::default()
        };
        let err = hanging.decontextualize("127.0.0.1").await.unwrap_err();
        assert!(err.0.contains("timed out"), "{err}");

        let missing = Ssh {
            command: "/nonexistent/ssh".into(),
            ..Ssh::default()
        };
        let err = missing
            .contextualize("127.0.0.1", "ssh-ed25519 AAAA")
            .await
            .unwrap_err();
        assert!(err.0.contains("cannot run"), "{err}");
    }
}
