//! systemd notifications (`Type=notify`): READY, STATUS, STOPPING and the
//! watchdog. All are no-ops when `NOTIFY_SOCKET` is unset.

use sd_notify::NotifyState;
use std::time::Duration;

fn notify(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Sockets are bound and the core loop is about to run.
pub fn ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// Drain started.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// A status line for `systemctl status`.
pub fn status(s: &str) {
    notify(&[NotifyState::Status(s)]);
}

/// Ping the watchdog.
pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}

/// How often to ping: half the configured `WatchdogSec`, if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}
