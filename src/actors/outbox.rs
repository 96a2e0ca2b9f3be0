//! The outgoing side of one connection: a byte queue with a writer task that drains it into
//! the socket with vectored writes.
//!
//! Not an actor: the connection actor and its stream actors live on the same arbiter and share
//! it through an `Rc`, so a player's frames go from its subscriber actor to the socket without
//! another hop. It replaces `actix::io::FramedWrite`, whose buffer is unbounded and exposes no
//! queued length: here the queued bytes are counted (the drop policy reads them) and the age of
//! the oldest queued byte is the player's lag.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::protocol::chunk::ChunkEncoder;
use crate::protocol::message::{Message, RawMessage};
use crate::stats::ConnectionStats;

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;
/// How long a closing connection may take to flush what it queued (e.g. an `_error`).
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

struct Queued {
    bytes: Bytes,
    at: Instant,
}

struct OutboxState {
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    encoder: ChunkEncoder,
    scratch: BytesMut,
    closed: bool,
    failed: bool,
}

/// A connection's outgoing byte queue and chunk encoder.
pub struct Outbox {
    state: RefCell<OutboxState>,
    notify: Notify,
    /// Signalled by `close`/`abort`: wakes a writer blocked on a peer that stopped reading.
    closing: Notify,
    stats: Arc<ConnectionStats>,
}

impl Outbox {
    pub fn new(stats: Arc<ConnectionStats>) -> Rc<Outbox> {
        Rc::new(Outbox {
            state: RefCell::new(OutboxState {
                queue: VecDeque::new(),
                queued_bytes: 0,
                encoder: ChunkEncoder::new(),
                scratch: BytesMut::new(),
                closed: false,
                failed: false,
            }),
            notify: Notify::new(),
            closing: Notify::new(),
            stats,
        })
    }

    fn enqueue(&self, state: &mut OutboxState, bytes: Bytes) {
        if state.closed || bytes.is_empty() {
            return;
        }
        state.queued_bytes += bytes.len();
        self.stats.queued_bytes.store(state.queued_bytes, Relaxed);
        let was_empty = state.queue.is_empty();
        state.queue.push_back(Queued {
            bytes,
            at: Instant::now(),
        });
        if was_empty {
            self.notify.notify_one();
        }
    }

    /// Queue bytes already in chunked form (media made once by the publisher).
    pub fn push_chunked(&self, bytes: Bytes) {
        let mut state = self.state.borrow_mut();
        self.enqueue(&mut state, bytes);
    }

    /// Chunk `message` with this connection's header compression and queue it.
    pub fn send_raw(&self, csid: u32, message: &RawMessage) {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        state.encoder.encode(csid, message, &mut state.scratch);
        let bytes = state.scratch.split().freeze();
        self.enqueue(state, bytes);
    }

    /// Encode and queue a typed message. Encoding our own values cannot fail short of a
    /// string over 4 GiB; such a message is dropped with a log line.
    pub fn send(&self, csid: u32, stream_id: u32, timestamp: u32, message: &Message) {
        match message.to_raw(stream_id, timestamp) {
            Ok(raw) => self.send_raw(csid, &raw),
            Err(e) => tracing::error!(error = %e, "could not encode an outgoing message"),
        }
    }

    /// Announce and switch to a new outgoing chunk size.
    pub fn set_chunk_size(&self, size: u32) {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        state.encoder.set_chunk_size(size, &mut state.scratch);
        let bytes = state.scratch.split().freeze();
        self.enqueue(state, bytes);
    }

    pub fn chunk_size(&self) -> u32 {
        self.state.borrow().encoder.chunk_size()
    }

    /// Bytes queued and not yet written to the socket.
    pub fn queued_bytes(&self) -> usize {
        self.state.borrow().queued_bytes
    }

    /// How long the oldest queued byte has waited: the player's lag behind live.
    pub fn oldest_age(&self) -> Option<Duration> {
        self.state.borrow().queue.front().map(|q| q.at.elapsed())
    }

    /// Accept nothing more; the writer flushes what is queued (bounded in time) and shuts
    /// the socket down.
    pub fn close(&self) {
        self.state.borrow_mut().closed = true;
        self.notify.notify_one();
        self.closing.notify_one();
    }

    /// Drop everything queued and stop now.
    pub fn abort(&self) {
        let mut state = self.state.borrow_mut();
        state.closed = true;
        state.failed = true;
        state.queue.clear();
        state.queued_bytes = 0;
        self.stats.queued_bytes.store(0, Relaxed);
        self.notify.notify_one();
        self.closing.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// Take up to `MAX_IOVECS` queued buffers (handles only, no copy).
    fn take_batch(&self, batch: &mut Vec<Bytes>) -> (bool, bool) {
        let mut state = self.state.borrow_mut();
        while batch.len() < MAX_IOVECS {
            match state.queue.front() {
                Some(q) => {
                    batch.push(q.bytes.clone());
                    state.queue.pop_front();
                }
                None => break,
            }
        }
        (state.closed, state.failed)
    }

    fn written(&self, n: usize) {
        let mut state = self.state.borrow_mut();
        state.queued_bytes = state.queued_bytes.saturating_sub(n);
        self.stats.queued_bytes.store(state.queued_bytes, Relaxed);
        self.stats.bytes_out.fetch_add(n as u64, Relaxed);
    }

    /// The writer task: drains the queue into the socket until closed or the socket fails.
    /// Returns the error that ended it, if any.
    pub async fn run_writer(self: Rc<Self>, mut socket: OwnedWriteHalf) -> std::io::Result<()> {
        let mut batch: Vec<Bytes> = Vec::with_capacity(MAX_IOVECS);
        loop {
            let (closed, failed) = self.take_batch(&mut batch);
            if failed {
                return Ok(());
            }
            if batch.is_empty() {
                if closed {
                    let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, socket.shutdown()).await;
                    return Ok(());
                }
                self.notify.notified().await;
                continue;
            }
            while !batch.is_empty() {
                if self.state.borrow().failed {
                    return Ok(());
                }
                let slices: Vec<IoSlice<'_>> = batch.iter().map(|b| IoSlice::new(b)).collect();
                let write = socket.write_vectored(&slices);
                let n = if self.is_closed() {
                    match tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, write).await {
                        Ok(r) => r?,
                        Err(_) => return Ok(()),
                    }
                } else {
                    // A write started before the close would wait forever on a peer that
                    // never reads: the close wakes it and the loop retries with the deadline.
                    tokio::select! {
                        r = write => r?,
                        () = self.closing.notified() => continue,
                    }
                };
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                self.written(n);
                let mut left = n;
                while left > 0 {
                    let Some(front) = batch.first_mut() else {
                        break;
                    };
                    if front.len() <= left {
                        left -= front.len();
                        batch.remove(0);
                    } else {
                        front.advance(left);
                        left = 0;
                    }
                }
            }
        }
    }
}
