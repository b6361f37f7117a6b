//! systemd integration (`Type=notify`, `WatchdogSec=`), via `sd_notify(3)`.
//!
//! Every call is a no-op when `NOTIFY_SOCKET` is unset (not started by
//! systemd). The watchdog is pinged from the core loop's own tick, so a
//! stuck core stops pinging and systemd restarts the service.

use std::time::Duration;

use sd_notify::NotifyState;

/// The longest interval between core-loop ticks (status and gauges refresh).
pub const MAX_TICK: Duration = Duration::from_secs(1);

/// Talks to the service manager; remembers the last STATUS sent so that an
/// unchanged status is not resent every tick.
#[derive(Debug)]
pub struct Notifier {
    watchdog: Option<Duration>,
    status: String,
}

impl Notifier {
    /// Read the watchdog settings (`WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn new() -> Self {
        Self {
            watchdog: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
            status: String::new(),
        }
    }

    /// How often the core loop should tick: half the watchdog interval when
    /// the watchdog is on, at most [`MAX_TICK`].
    pub fn tick_interval(&self) -> Duration {
        match self.watchdog {
            Some(w) => (w / 2).clamp(Duration::from_millis(10), MAX_TICK),
            None => MAX_TICK,
        }
    }

    /// Sockets are bound and the loop runs: `READY=1`.
    pub fn ready(&mut self, status: &str) {
        status.clone_into(&mut self.status);
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// Drain started: `STOPPING=1`.
    pub fn stopping(&mut self, status: &str) {
        status.clone_into(&mut self.status);
        send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// `STATUS=…`, sent only when it changed.
    pub fn status(&mut self, status: &str) {
        if self.status != status {
            status.clone_into(&mut self.status);
            send(&[NotifyState::Status(status)]);
        }
    }

    /// `WATCHDOG=1`, when the watchdog is on. Call from the core loop's tick.
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            send(&[NotifyState::Watchdog]);
        }
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_half_the_watchdog_at_most_a_second() {
        let mut n = Notifier {
            watchdog: Some(Duration::from_secs(10)),
            status: String::new(),
        };
        assert_eq!(n.tick_interval(), MAX_TICK);
        n.watchdog = Some(Duration::from_millis(600));
        assert_eq!(n.tick_interval(), Duration::from_millis(300));
        n.watchdog = None;
        assert_eq!(n.tick_interval(), MAX_TICK);
    }
}
