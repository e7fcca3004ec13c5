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

/// A deadline slot that holds none.
const UNSET: u64 = u64::MAX;

/// Deadlines, and what the keepalive needs to know between them.
#[derive(Debug)]
pub(super) struct Timers {
    /// Nanoseconds on the driver's clock, `UNSET` for a stopped timer: 8 bytes a deadline
    /// where an `Option<Duration>` takes 16, and every connection holds five of them. (A
    /// deadline 584 years out is kept as one a nanosecond earlier.)
    deadlines: [u64; TIMERS.len()],
    /// Bytes arrived since the keepalive deadline was set. The deadline moves to `interval`
    /// after the next time the connection is told the time, so receiving never has to ask
    /// the driver for the time (no extra `handle_timeout` pass per read). A Ping therefore
    /// goes out after between one and two intervals of silence.
    pub(super) activity: bool,
    /// The payload of the last keepalive Ping: a sequence number.
    pub(super) ping_payload: u32,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            deadlines: [UNSET; TIMERS.len()],
            activity: false,
            ping_payload: 0,
        }
    }
}

impl Timers {
    pub(super) fn get(&self, timer: Timer) -> Option<Duration> {
        match self.deadlines[timer as usize] {
            UNSET => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    pub(super) fn set(&mut self, timer: Timer, deadline: Option<Duration>) {
        self.deadlines[timer as usize] = deadline.map_or(UNSET, |at| {
            u64::try_from(at.as_nanos()).map_or(UNSET - 1, |nanos| nanos.min(UNSET - 1))
        });
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
        match self.deadlines.iter().min() {
            Some(&UNSET) | None => None,
            Some(&nanos) => Some(Duration::from_nanos(nanos)),
        }
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

    #[test]
    fn deadlines_keep_their_nanoseconds_and_the_farthest_stays_set() {
        let mut timers = Timers::default();
        let at = Duration::new(86_400 * 365, 123_456_789);
        timers.set(Timer::Keepalive, Some(at));
        assert_eq!(timers.get(Timer::Keepalive), Some(at));
        assert_eq!(timers.next(), Some(at));
        timers.set(Timer::Close, Some(Duration::MAX));
        assert_eq!(
            timers.get(Timer::Close),
            Some(Duration::from_nanos(u64::MAX - 1))
        );
        timers.set(Timer::Keepalive, None);
        assert_eq!(timers.next(), Some(Duration::from_nanos(u64::MAX - 1)));
        assert_eq!(timers.take_expired(Duration::MAX), Some(Timer::Close));
        assert_eq!(timers.next(), None);
    }
}
