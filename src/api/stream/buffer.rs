//! One stream reader's server-side buffer: what its producer has read ahead and its connection
//! has not written yet, bounded by **events**, not by messages.
//!
//! A reader at the tail is handed each batch of records as one piece of bytes (a run of events
//! encoded once and shared by every reader, see [`super::super::event_cache`]), so what goes
//! through the buffer is a run of many events or a single one. Counting runs would let a slow
//! reader hold hundreds of times more than the contract's 1024 events; counting events keeps
//! the bound while one hand-over (one wake of the connection's task) carries a whole batch.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, Semaphore};

/// Bytes of one or more whole events and how many events they are.
struct Piece {
    bytes: Bytes,
    events: u32,
}

/// Why bytes could not be put into the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Undelivered {
    /// The reader is gone.
    Closed,
    /// The buffer stayed too full for the slow-reader timeout.
    Slow,
}

/// A buffer of `capacity` events: its producer's and its connection's ends.
pub fn buffer(capacity: usize) -> (Sender, Receiver) {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(capacity));
    (
        Sender {
            tx,
            room: room.clone(),
            capacity,
        },
        Receiver { rx, room },
    )
}

/// The producer's end.
pub struct Sender {
    tx: mpsc::UnboundedSender<Piece>,
    /// One permit per event the buffer has room for.
    room: Arc<Semaphore>,
    capacity: usize,
}

impl Sender {
    /// Puts `bytes` (`events` whole events, at most the capacity) into the buffer at once if
    /// there is room; `false` if there is none or the reader is gone.
    pub fn try_send(&self, bytes: Bytes, events: usize) -> bool {
        let n = self.permits(events);
        match self.room.try_acquire_many(n) {
            Ok(p) => p.forget(),
            Err(_) => return false,
        }
        self.tx.send(Piece { bytes, events: n }).is_ok()
    }

    /// Puts `bytes` (`events` whole events) into the buffer, waiting at most `slow_after` for
    /// room for all of them.
    pub async fn send(
        &self,
        bytes: Bytes,
        events: usize,
        slow_after: Duration,
    ) -> Result<(), Undelivered> {
        let n = self.permits(events);
        // Room at once is the common case; a timeout would start a timer for every send.
        match self.room.try_acquire_many(n) {
            Ok(p) => p.forget(),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(Undelivered::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                match tokio::time::timeout(slow_after, self.room.acquire_many(n)).await {
                    Err(_) => return Err(Undelivered::Slow),
                    Ok(Err(_)) => return Err(Undelivered::Closed),
                    Ok(Ok(p)) => p.forget(),
                }
            }
        }
        self.tx
            .send(Piece { bytes, events: n })
            .map_err(|_| Undelivered::Closed)
    }

    /// Puts one large event (a snapshot chunk) into the buffer once at most one other event
    /// waits there: a thousand megabyte chunks queued for a slow reader would be a gigabyte.
    pub async fn send_when_drained(
        &self,
        bytes: Bytes,
        slow_after: Duration,
    ) -> Result<(), Undelivered> {
        let drained = self.capacity.saturating_sub(1).max(1) as u32;
        match tokio::time::timeout(slow_after, self.room.acquire_many(drained)).await {
            Err(_) => return Err(Undelivered::Slow),
            Ok(Err(_)) => return Err(Undelivered::Closed),
            Ok(Ok(permits)) => drop(permits),
        }
        self.send(bytes, 1, slow_after).await
    }

    /// Completes once the reader is gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    fn permits(&self, events: usize) -> u32 {
        events.clamp(1, self.capacity) as u32
    }
}

/// The connection's end. Dropping it makes a waiting producer see [`Undelivered::Closed`].
pub struct Receiver {
    rx: mpsc::UnboundedReceiver<Piece>,
    room: Arc<Semaphore>,
}

impl Receiver {
    /// The next buffered bytes without waiting (`Empty` when there are none yet,
    /// `Disconnected` once the producer is gone and all was taken).
    pub fn try_recv(&mut self) -> Result<Bytes, TryRecvError> {
        let p = self.rx.try_recv()?;
        self.room.add_permits(p.events as usize);
        Ok(p.bytes)
    }

    /// The next buffered bytes; `None` once the producer is gone and all was taken.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let p = self.rx.recv().await?;
        self.room.add_permits(p.events as usize);
        Some(p.bytes)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.room.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(20);

    #[tokio::test]
    async fn the_bound_is_in_events_and_taking_a_run_frees_its_events() {
        let (tx, mut rx) = buffer(10);
        assert!(tx.try_send(Bytes::from_static(b"a"), 6));
        assert_eq!(
            tx.send(Bytes::from_static(b"b"), 5, MS).await,
            Err(Undelivered::Slow),
            "6 + 5 events do not fit in 10"
        );
        assert!(tx.try_send(Bytes::from_static(b"c"), 4));
        assert!(!tx.try_send(Bytes::from_static(b"d"), 1), "full");
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"a"));
        assert!(
            tx.try_send(Bytes::from_static(b"e"), 6),
            "the run's 6 are free"
        );
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"c"));
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"e"));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }

    #[tokio::test]
    async fn a_run_larger_than_the_buffer_still_goes_in_alone() {
        let (tx, mut rx) = buffer(4);
        assert!(tx.try_send(Bytes::from_static(b"big"), 100));
        assert!(!tx.try_send(Bytes::from_static(b"x"), 1));
        rx.recv().await.unwrap();
        assert!(tx.try_send(Bytes::from_static(b"x"), 1));
    }

    #[tokio::test]
    async fn a_large_event_waits_until_at_most_one_other_is_buffered() {
        let (tx, mut rx) = buffer(4);
        assert!(tx.try_send(Bytes::from_static(b"1"), 1));
        assert!(tx.try_send(Bytes::from_static(b"2"), 1));
        assert_eq!(
            tx.send_when_drained(Bytes::from_static(b"chunk"), MS).await,
            Err(Undelivered::Slow)
        );
        rx.try_recv().unwrap();
        tx.send_when_drained(Bytes::from_static(b"chunk"), MS)
            .await
            .unwrap();
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"2"));
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"chunk"));
    }

    #[tokio::test]
    async fn a_waiting_producer_sees_the_reader_go() {
        let (tx, rx) = buffer(1);
        assert!(tx.try_send(Bytes::from_static(b"1"), 1));
        let waiting = tokio::spawn(async move {
            tx.send(Bytes::from_static(b"2"), 1, Duration::from_secs(60))
                .await
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(Undelivered::Closed));
    }
}
