//! Running a program of the machine to its end within a time limit, its pipes read (and its
//! input written) on threads of their own so that it never blocks on a full pipe.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a command to its end within `limit`, feeding it `input` (stdin is empty without
/// it); its output, or why it did not finish.
pub fn run_bounded(
    cmd: &mut Command,
    input: Option<&[u8]>,
    limit: Duration,
) -> Result<Output, String> {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    // Write and read on threads of their own, so a big input or a chatty program never
    // blocks on a full pipe.
    let writer = child.stdin.take().map(|mut stdin| {
        let input = input.unwrap_or_default().to_vec();
        std::thread::spawn(move || {
            // A client that stops early closes its stdin: its status tells why.
            let _ = stdin.write_all(&input);
        })
    });
    let out_reader = drain(child.stdout.take());
    let err_reader = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{cmd:?} did not finish within {limit:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e.to_string()),
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// Reads a pipe to its end on a thread of its own.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}
