//! CPU time of the processes in a benchmark (`/proc/PID/stat`): the load generator's own,
//! the server's, and that of the children the load generator waited for (wrk). On a
//! machine of few cores the client and the server compete for them, so every rate is
//! printed with the share of the machine each side used: a client that needs most of it
//! measures itself, not the server.

use std::time::{Duration, Instant};

/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`: 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds of one process, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Times {
    /// User and system time of the process itself (all its threads, dead ones too).
    pub own: f64,
    /// User and system time of its children that it waited for.
    pub children: f64,
}

/// Reads the CPU times of `pid` ("self" for this process); `None` where there is no
/// `/proc` (the figures are then left out, not made up).
pub fn times(pid: &str) -> Option<Times> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

fn parse_stat(stat: &str) -> Option<Times> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) is at index 11, then stime,
    // cutime and cstime.
    let tick = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some(Times {
        own: (tick(11)? + tick(12)?) / TICKS_PER_SECOND,
        children: (tick(13)? + tick(14)?) / TICKS_PER_SECOND,
    })
}

/// A measurement under way: the wall clock and the CPU times of the load generator (this
/// process) and of the server.
pub struct Meter {
    started: Instant,
    client: Option<Times>,
    server: Option<(u32, Times)>,
}

/// What a [`Meter`] measured: CPU seconds used per wall-clock second ("cores").
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// How long it ran.
    pub wall: Duration,
    /// Cores the load generator used (this process, or the child it waited for).
    pub client: Option<f64>,
    /// Cores the server used.
    pub server: Option<f64>,
    /// The machine's cores.
    pub cores: usize,
}

impl Meter {
    /// Starts measuring this process and the server `server_pid`.
    pub fn start(server_pid: Option<u32>) -> Meter {
        Meter {
            started: Instant::now(),
            client: times("self"),
            server: server_pid.and_then(|pid| Some((pid, times(&pid.to_string())?))),
        }
    }

    /// Stops measuring; `children` counts the CPU of waited-for children (an external load
    /// generator) as the client's instead of this process's own.
    pub fn stop(self, children: bool) -> Usage {
        let wall = self.started.elapsed();
        let secs = wall.as_secs_f64().max(f64::EPSILON);
        let client = self.client.zip(times("self")).map(|(a, b)| {
            if children {
                (b.children - a.children) / secs
            } else {
                (b.own - a.own) / secs
            }
        });
        let server = self.server.and_then(|(pid, a)| {
            let b = times(&pid.to_string())?;
            Some((b.own - a.own) / secs)
        });
        Usage {
            wall,
            client,
            server,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Usage {
    /// `client 0.62 cores (31 %), server 1.30 cores (65 %)`, and the CPU microseconds each
    /// spent per operation at `rate` operations per second.
    pub fn describe(&self, rate: f64) -> String {
        let side = |name: &str, cores: Option<f64>| match cores {
            Some(c) => format!(
                "{name} {c:.2} cores ({:.0} % of {}), {:.1} µs/op",
                100.0 * c / self.cores as f64,
                self.cores,
                1e6 * c / rate.max(f64::EPSILON)
            ),
            None => format!("{name} unknown"),
        };
        format!(
            "CPU: {}; {}",
            side("client", self.client),
            side("server", self.server)
        )
    }
}

/// The CPUs this thread may run on (all of them where that cannot be read).
pub fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    if let Ok(set) = rustix::thread::sched_getaffinity(None) {
        return (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect();
    }
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// Pins every thread of process `pid` to `cpus` (threads it starts later inherit the
/// pinning of the thread that starts them). Linux only; elsewhere an error.
pub fn pin(pid: u32, cpus: &[usize]) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::thread::{CpuSet, Pid, sched_setaffinity};
        let mut set = CpuSet::new();
        for &cpu in cpus {
            set.set(cpu);
        }
        // Twice: a thread started while the first pass ran is caught by the second.
        for _ in 0..2 {
            for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
                let tid = entry?.file_name().to_string_lossy().parse::<i32>().ok();
                if let Some(tid) = tid.and_then(Pid::from_raw) {
                    // A thread that ended meanwhile is no error.
                    match sched_setaffinity(Some(tid), &set) {
                        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pid, cpus);
        Err(std::io::Error::other("pinning needs Linux"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_after_the_command_name() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 7 3 20 0 9 0 100 1000 200 18446744073709551615";
        let t = parse_stat(line).unwrap();
        assert_eq!(t.own, 3.0);
        assert_eq!(t.children, 0.1);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_cpu_times() {
        let t = times("self").unwrap();
        assert!(t.own >= 0.0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_can_be_pinned() {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let pinned = pin(child.id(), &cpus[..1]);
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        pinned.unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap();
        assert_eq!(list.trim(), cpus[0].to_string());
    }

    #[test]
    fn usage_is_described_per_core_and_per_operation() {
        let u = Usage {
            wall: Duration::from_secs(1),
            client: Some(0.5),
            server: None,
            cores: 2,
        };
        assert_eq!(
            u.describe(50_000.0),
            "CPU: client 0.50 cores (25 % of 2), 10.0 µs/op; server unknown"
        );
    }
}
