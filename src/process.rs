//! Stopping a child process we started, by its PID.

use std::process::Child;
use std::time::{Duration, Instant};

/// Sends `signal` to `child`, waits up to `grace` for it to exit, then
/// SIGKILLs it; always reaps it, so no zombie is left.
pub fn stop_child(child: &mut Child, signal: i32, grace: Duration) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on the PID of a child we started and have not reaped
        // (it cannot have been reused by another process before the wait).
        unsafe {
            libc::kill(pid, signal);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
