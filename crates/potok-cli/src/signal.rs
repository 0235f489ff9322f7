//! Ctrl-C handling for the long-running subcommands (`consume`, `bench`): the first SIGINT or
//! SIGTERM sets a flag that their poll loops check, so they commit offsets and print their
//! summary before exiting; a second signal falls back to the default action (exit at once).

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: an atomic store and re-arming the default action.
    STOP.store(true, Ordering::SeqCst);
    // SAFETY: `signal` is async-signal-safe; restoring SIG_DFL makes a second Ctrl-C kill the
    // process, the escape hatch when the broker stops answering.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only touches an atomic and calls `signal`, both async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// True once a stop signal arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
