//! The leader's broker sessions: when each watched broker last heartbeat, under which broker
//! epoch, and whether it is shutting down. Held in the leader's memory only, never in the log,
//! and valid for one leadership term: a new term starts every session afresh.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One broker's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// The broker epoch the session belongs to; a re-registration starts a new session.
    pub broker_epoch: u64,
    /// When the last heartbeat came (or the session started).
    pub last_seen: Instant,
    /// The broker asked for a controlled shutdown.
    pub shutting_down: bool,
}

/// The sessions of one leadership term.
#[derive(Debug, Default)]
pub struct Sessions {
    /// The term they belong to; `None` while this node does not lead.
    term: Option<u64>,
    map: HashMap<i32, Session>,
}

impl Sessions {
    /// Makes the table belong to `term`: when it belonged to another (or none), every session is
    /// dropped and one is started, as of `now`, for each `(broker, epoch)` of `watched` — so a
    /// new leader fences nobody for the time it did not lead. True when the table was reset.
    pub fn enter_term(
        &mut self,
        term: u64,
        now: Instant,
        watched: impl IntoIterator<Item = (i32, u64)>,
    ) -> bool {
        if self.term == Some(term) {
            return false;
        }
        self.term = Some(term);
        self.map = watched
            .into_iter()
            .map(|(id, broker_epoch)| {
                (
                    id,
                    Session {
                        broker_epoch,
                        last_seen: now,
                        shutting_down: false,
                    },
                )
            })
            .collect();
        true
    }

    /// This node no longer leads: every session ends.
    pub fn leave(&mut self) {
        self.term = None;
        self.map.clear();
    }

    /// The term the sessions belong to.
    pub fn term(&self) -> Option<u64> {
        self.term
    }

    /// Records a heartbeat: the session (a new one under a new broker epoch) is seen `now`, and
    /// starts shutting down when asked to (a shutdown is never taken back within a session).
    pub fn beat(&mut self, id: i32, broker_epoch: u64, now: Instant, shut_down: bool) -> Session {
        let s = self.map.entry(id).or_insert(Session {
            broker_epoch,
            last_seen: now,
            shutting_down: false,
        });
        if broker_epoch < s.broker_epoch {
            // A late heartbeat of an earlier incarnation, checked before the new registration
            // applied: it must not take the session back (nor clear or set its shutdown).
            return *s;
        }
        if s.broker_epoch != broker_epoch {
            s.shutting_down = false;
            s.broker_epoch = broker_epoch;
        }
        s.last_seen = now;
        s.shutting_down |= shut_down;
        *s
    }

    /// The brokers whose last heartbeat is more than `timeout` before `now`.
    pub fn expired(&self, now: Instant, timeout: Duration) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .map
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_seen) > timeout)
            .map(|(id, _)| *id)
            .collect();
        out.sort_unstable();
        out
    }

    /// One broker's session.
    pub fn get(&self, id: i32) -> Option<Session> {
        self.map.get(&id).copied()
    }

    /// Ends a broker's session (after it was fenced for missing its heartbeats).
    pub fn end(&mut self, id: i32) {
        self.map.remove(&id);
    }

    /// The brokers in a controlled shutdown: no partition may be moved to them.
    pub fn shutting_down(&self) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .map
            .iter()
            .filter(|(_, s)| s.shutting_down)
            .map(|(id, _)| *id)
            .collect();
        out.sort_unstable();
        out
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_term_starts_every_watched_session_afresh() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        assert!(s.enter_term(3, t0, [(1, 10)]));
        s.beat(2, 20, t0, false);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(s.expired(later, Duration::from_secs(9)), vec![1, 2]);
        // Same term: nothing is reset.
        assert!(!s.enter_term(3, later, [(1, 10)]));
        assert_eq!(s.len(), 2);
        // A new term: only the watched brokers, as of now; nobody has expired.
        assert!(s.enter_term(4, later, [(1, 10)]));
        assert_eq!(s.len(), 1);
        assert!(s.expired(later, Duration::from_secs(9)).is_empty());
        s.leave();
        assert_eq!((s.term(), s.is_empty()), (None, true));
    }

    #[test]
    fn heartbeats_keep_a_session_and_a_new_epoch_resets_the_shutdown() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        s.enter_term(1, t0, []);
        s.beat(1, 5, t0, true);
        let t1 = t0 + Duration::from_secs(5);
        let kept = s.beat(1, 5, t1, false);
        assert!(kept.shutting_down, "a shutdown is not taken back");
        assert_eq!(s.shutting_down(), vec![1]);
        assert!(s
            .expired(t1 + Duration::from_secs(8), Duration::from_secs(9))
            .is_empty());
        let again = s.beat(1, 9, t1, false);
        assert_eq!((again.broker_epoch, again.shutting_down), (9, false));
        // A late heartbeat of the earlier incarnation takes nothing back.
        s.beat(1, 9, t1, true);
        let late = s.beat(1, 5, t1 + Duration::from_secs(1), false);
        assert_eq!((late.broker_epoch, late.shutting_down), (9, true));
        assert_eq!(s.get(1).map(|x| x.last_seen), Some(t1));
        s.end(1);
        assert_eq!(s.get(1), None);
    }
}
