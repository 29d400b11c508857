//! The `noop` mechanism: fake nodes for tests, demos and the embedded default.
//!
//! It never touches a network. Hostnames and addresses come from templates; by default
//! every address is in 127.0.0.0/8, so even a client that tries to reach a node stays on
//! the machine. `delay` and `fail-rate` simulate slow or unreliable providers.

use std::net::Ipv4Addr;

use futures::FutureExt;
use futures::future::BoxFuture;
use minijinja::{Environment, context};
use rand::Rng;
use serde_json::{Value, json};

use super::{Deprovisioned, Mechanism, MechanismError, NodeInput};
use crate::config::{NoopConfig, Pool};

const HOSTNAME: &str = "hostname";
const IPADDR: &str = "ipaddr";

/// A `noop` mechanism with its templates compiled once.
pub struct Noop {
    templates: Environment<'static>,
    has_ipaddr_template: bool,
    delay: std::time::Duration,
    fail_rate: f64,
    journal: Option<std::path::PathBuf>,
}

impl Noop {
    /// Compiles the pool's templates; an error names what does not compile.
    pub fn new(_pool: &str, config: &NoopConfig) -> Result<Self, String> {
        let mut templates = crate::templates::environment();
        templates
            .add_template_owned(HOSTNAME, config.hostname.clone())
            .map_err(|e| format!("mechanism.noop.hostname: {e}"))?;
        if let Some(ipaddr) = &config.ipaddr {
            templates
                .add_template_owned(IPADDR, ipaddr.clone())
                .map_err(|e| format!("mechanism.noop.ipaddr: {e}"))?;
        }
        Ok(Noop {
            templates,
            has_ipaddr_template: config.ipaddr.is_some(),
            delay: config.delay,
            fail_rate: config.fail_rate.clamp(0.0, 1.0),
            journal: config.journal.clone(),
        })
    }

    fn render(&self, name: &str, pool: &str, id: i64) -> Result<String, MechanismError> {
        self.templates
            .get_template(name)
            .and_then(|t| t.render(context! { pool => pool, id => id }))
            .map_err(|e| MechanismError(format!("rendering noop {name}: {e}")))
    }

    /// Appends `<phase> <id>` per node to the journal, if there is one. Each run writes its
    /// lines with one `write` on a file opened for appending, so that the lines of runs in
    /// several processes never interleave.
    fn record(&self, phase: &str, nodes: &[NodeInput]) -> Result<(), MechanismError> {
        use std::io::Write;
        let Some(path) = &self.journal else {
            return Ok(());
        };
        let text: String = nodes
            .iter()
            .map(|n| format!("{phase} {}\n", n.id))
            .collect();
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| MechanismError(format!("noop journal {}: {e}", path.display())))
    }

    /// Rolls the dice of `fail-rate`.
    fn fails(&self) -> bool {
        self.fail_rate > 0.0 && rand::rng().random_bool(self.fail_rate)
    }
}

/// A distinct loopback address for every node id: 127.1.0.0 + id, wrapping inside
/// 127.0.0.0/8 (distinct for the first sixteen million ids).
pub fn loopback_address(id: i64) -> Ipv4Addr {
    const BASE: u32 = 0x7f01_0000; // 127.1.0.0
    const SPAN: u32 = 0x00ff_0000; // up to 127.255.255.255
    let offset = u32::try_from(id.rem_euclid(i64::from(SPAN))).unwrap_or(0);
    Ipv4Addr::from(BASE + offset)
}

impl Mechanism for Noop {
    fn provision<'a>(
        &'a self,
        pool: &'a Pool,
        nodes: &'a [NodeInput],
    ) -> BoxFuture<'a, Result<Vec<Value>, MechanismError>> {
        async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            let mut entries = Vec::with_capacity(nodes.len());
            for node in nodes {
                if self.fails() {
                    // No `ipaddr`: the engine treats the node as not provisioned.
                    entries.push(json!({"error": "simulated failure (noop fail-rate)"}));
                    continue;
                }
                // A reused machine keeps the name and address it was registered with.
                if let (Some(hostname), Some(ipaddr)) = (&node.hostname, &node.ipaddr) {
                    entries.push(json!({"hostname": hostname, "ipaddr": ipaddr}));
                    continue;
                }
                let hostname = self.render(HOSTNAME, &pool.name, node.id)?;
                let ipaddr = if self.has_ipaddr_template {
                    self.render(IPADDR, &pool.name, node.id)?
                } else {
                    loopback_address(node.id).to_string()
                };
                entries.push(json!({"hostname": hostname, "ipaddr": ipaddr}));
            }
            self.record("provision", nodes)?;
            Ok(entries)
        }
        .boxed()
    }

    fn deprovision<'a>(
        &'a self,
        _pool: &'a Pool,
        nodes: &'a [NodeInput],
    ) -> BoxFuture<'a, Result<Deprovisioned, MechanismError>> {
        async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            // Echo each node's provision result so matching succeeds; a "failing" node is
            // left out and ends failed.
            let entries = nodes
                .iter()
                .filter(|_| !self.fails())
                .map(|node| node.data.get("provision").cloned().unwrap_or(json!({})))
                .collect();
            self.record("deprovision", nodes)?;
            Ok(Deprovisioned::Entries(entries))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_distinct_and_local() {
        let a = loopback_address(1);
        let b = loopback_address(2);
        assert_ne!(a, b);
        assert!(a.is_loopback() && b.is_loopback());
        assert_eq!(a, Ipv4Addr::new(127, 1, 0, 1));
        assert!(loopback_address(i64::MAX).is_loopback());
        assert!(loopback_address(-5).is_loopback());
    }
}
