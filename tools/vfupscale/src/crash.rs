// SPDX-License-Identifier: MPL-2.0
//! A crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE: a fault in a library or in this program) prints one line saying so and
//! the faulting thread's stack before the process dies of it as it would have (same signal, same exit status), so a
//! crash on a user's machine or in CI can be reported with where it happened.
//!
//! The handler runs on its own stack and only calls what is safe in a signal handler after the first use:
//! `backtrace(3)` (warmed up at install, when it loads its unwinder) and `backtrace_symbols_fd(3)`, which writes
//! without allocating.

use std::ffi::{c_int, c_void};

unsafe extern "C" {
    // glibc's <execinfo.h>
    fn backtrace(buffer: *mut *mut c_void, size: c_int) -> c_int;
    fn backtrace_symbols_fd(buffer: *const *mut c_void, size: c_int, fd: c_int);
}

const SIGNALS: [c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];
const STACK_BYTES: usize = 256 * 1024;

/// Installs the handler for the process (every thread).
pub fn install() {
    let mut frames = [std::ptr::null_mut(); 4];
    // SAFETY: a valid buffer of 4 entries; this first call loads the unwinder outside any signal handler.
    unsafe { backtrace(frames.as_mut_ptr(), frames.len() as c_int) };
    // the handler's own stack (a stack overflow leaves none): leaked, it lives as long as the process
    let stack = Box::leak(vec![0u8; STACK_BYTES].into_boxed_slice());
    let alt = libc::stack_t { ss_sp: stack.as_mut_ptr().cast(), ss_flags: 0, ss_size: STACK_BYTES };
    // SAFETY: `alt` describes memory that stays valid for the life of the process.
    unsafe { libc::sigaltstack(&alt, std::ptr::null_mut()) };
    for signal in SIGNALS {
        // SAFETY: zeroed sigaction is a valid starting value; the handler has the SA_SIGINFO signature.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_crash as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_crash(signal: c_int, info: *mut libc::siginfo_t, _context: *mut c_void) {
    let name: &[u8] = match signal {
        libc::SIGSEGV => b"SIGSEGV",
        libc::SIGBUS => b"SIGBUS",
        libc::SIGILL => b"SIGILL",
        _ => b"SIGFPE",
    };
    let mut line = [0u8; 160];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if n < line.len() {
                line[n] = b;
                n += 1;
            }
        }
    };
    put(b"vfupscale: crashed (");
    put(name);
    let (sent, address) = if info.is_null() {
        (true, 0)
    } else {
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; it is read, nothing written.
        unsafe { ((*info).si_code <= 0, (*info).si_addr() as usize) }
    };
    if sent {
        put(b", sent by another process");
    } else {
        put(b" at 0x");
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = b"0123456789abcdef"[(address >> (60 - 4 * i)) & 0xf];
        }
        put(&digits);
    }
    put(b"); please report it with the stack below:\n");
    let mut frames = [std::ptr::null_mut(); 64];
    // SAFETY: writes of a stack buffer to stderr and glibc's signal-safe backtrace calls on valid buffers; raise()
    // then ends the process with the default action (SA_RESETHAND restored it).
    unsafe {
        libc::write(libc::STDERR_FILENO, line.as_ptr().cast(), n);
        let count = backtrace(frames.as_mut_ptr(), frames.len() as c_int);
        backtrace_symbols_fd(frames.as_ptr(), count, libc::STDERR_FILENO);
        libc::raise(signal);
    }
}
