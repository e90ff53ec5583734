//! Interrupting a vCPU thread that sits in `KVM_RUN`.
//!
//! A vCPU thread blocks inside `KVM_RUN` while its guest runs or halts. To stop it (the guest
//! powered off, the user quit), the machine sends the thread [`KICK_SIGNAL`]: the handler does
//! nothing, but the signal makes `KVM_RUN` return `EINTR`. Because a signal sent just before the
//! thread enters `KVM_RUN` would be lost, callers re-send it until the thread has left its loop
//! (see `Machine::stop_vcpus` in the `tern` crate).

use std::sync::Once;

/// The real-time signal used to kick vCPU threads out of `KVM_RUN`.
pub fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

extern "C" fn noop_handler(_signal: libc::c_int) {}

/// Installs the no-op handler for [`kick_signal`], once per process.
pub fn install_handler() -> crate::Result<()> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| {
        // SAFETY: `sigaction` is plain data; zeroed is a valid initial value (empty mask, no
        // flags) and we fill in the handler pointer before use.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = noop_handler as *const () as usize;
        // No SA_RESTART: the point is that KVM_RUN returns EINTR.
        action.sa_flags = 0;
        // SAFETY: installs a handler that touches no state, for a signal tern uses for nothing
        // else; the pointers are valid for the call.
        let rc = unsafe { libc::sigaction(kick_signal(), &action, std::ptr::null_mut()) };
        if rc != 0 {
            result = Err(crate::KvmError::Signal(std::io::Error::last_os_error()));
        }
    });
    result
}

/// Sends the kick signal to `thread`.
pub fn kick(thread: libc::pthread_t) {
    // SAFETY: `thread` is the pthread id of a vCPU thread the machine spawned and has not joined
    // yet, so it is still valid; the signal's handler is the no-op installed above.
    unsafe {
        libc::pthread_kill(thread, kick_signal());
    }
}

/// The calling thread's pthread id, to be handed to whoever will [`kick`] it.
pub fn current_thread() -> libc::pthread_t {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() }
}
