//! The connection's timers as one table of deadlines on the driver's clock: when the next one
//! is due, and which expired.
//!
//! The table knows nothing of states; the connection decides which timers run in which state
//! and what an expiry does.

use core::time::Duration;

/// The timers, in the order their expiries are handled at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Emptied buffers are freed (`Config::buffer_linger`).
    Release,
    /// The opening handshake took too long.
    Handshake,
    /// The keepalive Ping got no Pong in time.
    PongDue,
    /// Nothing was received for the keepalive interval: time to Ping.
    Keepalive,
    /// The closing handshake, or the server's closing of TCP, took too long.
    Close,
}

const TIMERS: [Timer; 5] = [
    Timer::Release,
    Timer::Handshake,
    Timer::PongDue,
    Timer::Keepalive,
    Timer::Close,
];

/// Deadlines, and what the keepalive needs to know between them.
#[derive(Debug, Default)]
pub(super) struct Timers {
    deadlines: [Option<Duration>; TIMERS.len()],
    /// Bytes arrived since the keepalive deadline was set. The deadline moves to `interval`
    /// after the next time the connection is told the time, so receiving never has to ask
    /// the driver for the time (no extra `handle_timeout` pass per read). A Ping therefore
    /// goes out after between one and two intervals of silence.
    pub(super) activity: bool,
    /// The payload of the last keepalive Ping: a sequence number.
    pub(super) ping_payload: u32,
}

impl Timers {
    pub(super) fn get(&self, timer: Timer) -> Option<Duration> {
        self.deadlines[timer as usize]
    }

    pub(super) fn set(&mut self, timer: Timer, deadline: Option<Duration>) {
        self.deadlines[timer as usize] = deadline;
    }

    pub(super) fn is_set(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// Stops every timer.
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Duration> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// The first timer, in handling order, whose deadline is at or before `now`; it is
    /// stopped before it is returned.
    pub(super) fn take_expired(&mut self, now: Duration) -> Option<Timer> {
        let timer = TIMERS
            .into_iter()
            .find(|&t| self.get(t).is_some_and(|due| now >= due))?;
        self.set(timer, None);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_come_in_handling_order_and_stop_their_timer() {
        let mut timers = Timers::default();
        timers.set(Timer::Close, Some(Duration::from_secs(1)));
        timers.set(Timer::Release, Some(Duration::from_secs(3)));
        timers.set(Timer::Keepalive, Some(Duration::from_secs(2)));
        assert_eq!(timers.next(), Some(Duration::from_secs(1)));
        assert_eq!(timers.take_expired(Duration::from_millis(999)), None);
        let now = Duration::from_secs(3);
        assert_eq!(timers.take_expired(now), Some(Timer::Release));
        assert_eq!(timers.take_expired(now), Some(Timer::Keepalive));
        assert_eq!(timers.take_expired(now), Some(Timer::Close));
        assert_eq!(timers.take_expired(now), None);
        assert_eq!(timers.next(), None);
    }
}
