// SPDX-License-Identifier: MPL-2.0
//! SIGINT, SIGTERM and SIGHUP: installed first thing, so a signal at any moment is seen. A thread of signal-hook's
//! waits for them, counts them and calls the handler of the run in progress (none while planning: the planner asks
//! [`received`] between steps). The first signal asks the run to finish its file, the second aborts.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

type Handler = Arc<dyn Fn(u32) + Send + Sync>;

static COUNT: AtomicU32 = AtomicU32::new(0);
static FIRST: AtomicI32 = AtomicI32::new(0);
static HANDLER: Mutex<Option<Handler>> = Mutex::new(None);

/// Starts listening. The default actions (terminate) are replaced for the life of the process.
pub fn install() -> Result<(), String> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| format!("cannot handle signals: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let count = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = FIRST.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
                // cloned out of the lock: the handler may take its time
                let handler = HANDLER.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some(handler) = handler {
                    handler(count);
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}

/// The first signal received, if any.
pub fn received() -> Option<i32> {
    Some(FIRST.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

/// Signals received so far.
pub fn count() -> u32 {
    COUNT.load(Ordering::SeqCst)
}

/// The conventional exit status after a signal: 128 + its number (130 for SIGINT, 143 SIGTERM, 129 SIGHUP).
pub fn exit_status(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "Ctrl+C",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Calls `handler` with the running count for each signal until the guard is dropped.
#[must_use]
pub fn on_signal(handler: impl Fn(u32) + Send + Sync + 'static) -> HandlerGuard {
    *HANDLER.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(handler));
    HandlerGuard
}

pub struct HandlerGuard;

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        *HANDLER.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
