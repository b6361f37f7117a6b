//! The transaction timers, named as in RFC 3261 §17 (Appendix A, Table 4) and
//! RFC 6026 (L, M), and their durations.

use std::time::Duration;

/// A transaction timer. Which transaction it belongs to travels beside it as
/// a [`TsxId`](crate::ids::TsxId).
///
/// | timer | machine | meaning (RFC 3261 §17 / RFC 6026) |
/// |---|---|---|
/// | A | client INVITE | retransmit the INVITE (UDP), T1 doubling |
/// | B | client INVITE | give up waiting for any response, 64·T1; re-armed by CANCEL (§9.1) |
/// | D | client INVITE | absorb retransmitted non-2xx finals, 32 s UDP |
/// | E | client non-INVITE | retransmit the request (UDP), T1 doubling capped at T2 |
/// | F | client non-INVITE | give up waiting for a final, 64·T1 |
/// | G | server INVITE | retransmit the final response (UDP), T1 doubling capped at T2; in Accepted the 2xx (§13.3.1.4) |
/// | H | server INVITE | give up waiting for the ACK of a non-2xx, 64·T1 |
/// | I | server INVITE | absorb retransmitted ACKs, T4 UDP |
/// | J | server non-INVITE | absorb retransmitted requests, 64·T1 UDP |
/// | K | client non-INVITE | absorb retransmitted responses, T4 UDP |
/// | L | server INVITE | Accepted: absorb INVITE retransmissions, wait for the 2xx ACK, 64·T1 |
/// | M | client INVITE | Accepted: absorb (and ACK) retransmitted 2xx, 64·T1 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Client INVITE retransmission.
    A,
    /// Client INVITE timeout.
    B,
    /// Client INVITE Completed wait.
    D,
    /// Client non-INVITE retransmission.
    E,
    /// Client non-INVITE timeout.
    F,
    /// Server INVITE response retransmission.
    G,
    /// Server INVITE ACK wait (non-2xx).
    H,
    /// Server INVITE Confirmed wait.
    I,
    /// Server non-INVITE Completed wait.
    J,
    /// Client non-INVITE Completed wait.
    K,
    /// Server INVITE Accepted wait (RFC 6026).
    L,
    /// Client INVITE Accepted wait (RFC 6026).
    M,
}

/// The RFC 3261 §17.1.1.1 timer values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, 500 ms by default.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE
    /// responses, 4 s by default.
    pub t2: Duration,
    /// Maximum time a message remains in the network, 5 s by default.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Timer D on unreliable transports: "at least 32 seconds" (RFC 3261 §17.1.1.2).
pub(crate) const TIMER_D_UDP: Duration = Duration::from_secs(32);

impl TimerConfig {
    /// 64·T1: Timers B, F, H, J (UDP), L, M.
    pub(crate) fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// The next interval of a doubling timer capped at T2 (Timers E and G).
    pub(crate) fn double_capped(&self, d: Duration) -> Duration {
        d.saturating_mul(2).min(self.t2)
    }
}
