// SPDX-License-Identifier: MPL-2.0
//! The local run's worker processes: `vfupscale segments run` for one segment each, in a process group of its own
//! (signals reach it through the parent only, once), killed with the parent (`PR_SET_PDEATHSIG`); its JSON progress
//! counted, its error line kept, its other lines shown once.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::progress::Progress;

/// A worker process and what it reports.
pub struct Worker {
    pub index: usize,
    pub child: Child,
    pub frames: Arc<AtomicU64>,
    pub error: Arc<Mutex<Option<String>>>,
}

/// Messages from workers, each shown once.
pub struct Relay {
    pub progress: Arc<Mutex<Progress>>,
    pub seen: Mutex<HashSet<String>>,
}

impl Relay {
    fn line(&self, line: &str) {
        if self.seen.lock().unwrap().insert(line.to_string()) {
            self.progress.lock().unwrap().println(line);
        }
    }
}

pub fn spawn(work: &Path, index: usize, device: u32, quiet: bool, relay: &Arc<Relay>) -> Result<Worker, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program to start workers: {e}"))?;
    let mut command = Command::new(exe);
    command.args(["segments", "run", "--index", &index.to_string(), "--device", &device.to_string()]);
    command.arg("--work").arg(work);
    command.args(["--progress", if quiet { "none" } else { "json" }, "--progress-ms", "250"]);
    if quiet {
        command.arg("--quiet");
    }
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the worker if this process dies.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| format!("cannot start a worker: {e}"))?;
    let frames = Arc::new(AtomicU64::new(0));
    let error = Arc::new(Mutex::new(None));
    let stdout = child.stdout.take().expect("piped");
    let f = frames.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(n) = v.get("frames").and_then(|n| n.as_u64())
            {
                f.store(n, Ordering::Relaxed);
            }
        }
    });
    let stderr = child.stderr.take().expect("piped");
    let (e, relay) = (error.clone(), relay.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            match line.strip_prefix("vfupscale: error: ") {
                Some(text) => *e.lock().unwrap() = Some(text.to_string()),
                None => relay.line(&line),
            }
        }
    });
    Ok(Worker { index, child, frames, error })
}
