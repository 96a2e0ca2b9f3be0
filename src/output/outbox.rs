//! The outgoing side of one connection: a byte queue with a writer task that drains it into
//! the socket with vectored writes (plain TCP), or into TLS records (RTMPS).
//!
//! Not an actor: the connection actor and its stream actors live on the same arbiter and share
//! it through an `Rc`, so a player's frames go from its subscriber actor to the socket without
//! another hop. It replaces `actix::io::FramedWrite`, whose buffer is unbounded and exposes no
//! queued length: here the queued bytes are counted (the drop policy reads them) and the age of
//! the oldest queued byte is the player's lag.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;

use super::signal::Signal;
use crate::protocol::chunk::ChunkEncoder;
use crate::protocol::message::{Message, RawMessage};
use crate::stats::ConnectionStats;
use crate::tls::transport::TransportWrite;

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;
/// Queue slots kept once it empties: a live player has a few frames queued at a time.
const QUEUE_KEPT: usize = 8;
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

/// Point `slices` at the front of `queue`, one per queued buffer; how many it filled.
fn front_slices<'a>(queue: &'a VecDeque<Queued>, slices: &mut [IoSlice<'a>]) -> usize {
    let mut count = 0;
    for (slot, queued) in slices.iter_mut().zip(queue) {
        *slot = IoSlice::new(&queued.bytes);
        count += 1;
    }
    count
}

/// A connection's outgoing byte queue and chunk encoder.
pub struct Outbox {
    state: RefCell<OutboxState>,
    notify: Signal,
    /// Signalled by `close`/`abort`: wakes a writer blocked on a peer that stopped reading.
    closing: Signal,
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
            notify: Signal::default(),
            closing: Signal::default(),
            stats,
        })
    }

    /// Queue `bytes` behind what waits, in order, and wake the writer task. The writer runs
    /// after the current actor turn, so frames handled in one turn (a publisher's audio and
    /// video read together) leave in one `writev`: measured cheaper than writing each one
    /// straight away (fewer syscalls and receiver wake-ups).
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
            self.notify.raise();
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
        self.notify.raise();
        self.closing.raise();
    }

    /// Drop everything queued and stop now.
    pub fn abort(&self) {
        let mut state = self.state.borrow_mut();
        state.closed = true;
        state.failed = true;
        state.queue.clear();
        state.queued_bytes = 0;
        self.stats.queued_bytes.store(0, Relaxed);
        self.notify.raise();
        self.closing.raise();
    }

    /// Forget what is queued as if the socket had taken it all: lets the fan-out benchmark
    /// run the real player path without a socket.
    pub fn discard_queued(&self) {
        let mut state = self.state.borrow_mut();
        state.queue.clear();
        state.queued_bytes = 0;
    }

    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// One vectored write of the front of the queue, without waiting; consumes what the
    /// socket took. `fd` is `socket`'s, taken once per writer rather than per write.
    fn write_some(&self, socket: &OwnedWriteHalf, fd: BorrowedFd<'_>) -> std::io::Result<usize> {
        let n = {
            let state = self.state.borrow();
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let count = front_slices(&state.queue, &mut slices);
            // sendmsg, not writev: the socket path skips the file layer (position lock,
            // write notification); measured 4 % less server CPU (docs/benchmarks.md).
            let sock = socket2::SockRef::from(&fd);
            let send = || sock.send_vectored_with_flags(&slices[..count], libc::MSG_NOSIGNAL);
            // Straight to the socket: a live player's socket has room nearly always, and
            // asking tokio first reads its readiness record, a cache miss per player per
            // write. Only a full socket goes through `try_io`, so that its readiness is
            // cleared by a failed attempt of its own and the next `writable()` truly waits.
            match send() {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let stream: &tokio::net::TcpStream = socket.as_ref();
                    stream.try_io(Interest::WRITABLE, send)?
                }
                written => written?,
            }
        };
        self.consume(n);
        Ok(n)
    }

    /// Drop the first `n` queued bytes: the transport took them.
    fn consume(&self, n: usize) {
        let mut state = self.state.borrow_mut();
        let mut left = n;
        while left > 0 {
            let Some(front) = state.queue.front_mut() else {
                break;
            };
            if front.bytes.len() <= left {
                left -= front.bytes.len();
                state.queue.pop_front();
            } else {
                front.bytes.advance(left);
                left = 0;
            }
        }
        if state.queue.is_empty() && state.queue.capacity() > QUEUE_KEPT {
            // A join's burst (the GOP: a hundred frames and more) grew it; live needs a few.
            state.queue.shrink_to(QUEUE_KEPT);
        }
        state.queued_bytes = state.queued_bytes.saturating_sub(n);
        self.stats.queued_bytes.store(state.queued_bytes, Relaxed);
        self.stats.bytes_out.fetch_add(n as u64, Relaxed);
    }

    /// The writer task: drains the queue into the socket, waiting for it to become writable,
    /// until closed or the socket fails. Returns the error that ended it, if any; the socket's
    /// write half is dropped (shut down) when it returns.
    pub async fn run_writer(self: Rc<Self>, socket: TransportWrite) -> std::io::Result<()> {
        match socket {
            TransportWrite::Plain(socket) => self.drain(&socket).await,
            TransportWrite::Tls(socket) => self.drain_tls(socket).await,
        }
    }

    /// The TLS writer: hands the queued frames to the TLS layer as one vectored write, which
    /// seals them into records of up to 16 KiB (several frames per record, no copy of the
    /// frames beyond the encryption itself) and writes the records out; then a flush once
    /// the queue is empty. The stream's `poll_write_vectored` only reports bytes the TLS
    /// layer took, so a write abandoned for a close never sends a byte twice.
    async fn drain_tls<W: AsyncWrite + Unpin>(&self, mut socket: W) -> std::io::Result<()> {
        let mut close_deadline = None;
        loop {
            let (empty, closed, failed) = {
                let state = self.state.borrow();
                (state.queue.is_empty(), state.closed, state.failed)
            };
            if failed {
                return Ok(());
            }
            if empty {
                if closed {
                    // close_notify, bounded like the rest of the closing flush.
                    let deadline = close_deadline
                        .unwrap_or_else(|| tokio::time::Instant::now() + CLOSE_FLUSH_TIMEOUT);
                    let _ = tokio::time::timeout_at(deadline, socket.shutdown()).await;
                    return Ok(());
                }
                tokio::select! {
                    r = socket.flush() => r?,
                    () = self.closing.wait() => {}
                }
                if self.state.borrow().queue.is_empty() {
                    self.notify.wait().await;
                }
                continue;
            }
            if closed && close_deadline.is_none() {
                close_deadline = Some(tokio::time::Instant::now() + CLOSE_FLUSH_TIMEOUT);
            }
            let write = std::future::poll_fn(|cx| {
                let state = self.state.borrow();
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let count = front_slices(&state.queue, &mut slices);
                std::pin::Pin::new(&mut socket).poll_write_vectored(cx, &slices[..count])
            });
            let written = match close_deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, write).await {
                    Ok(r) => r,
                    Err(_) => return Ok(()),
                },
                None => tokio::select! {
                    r = write => r,
                    () = self.closing.wait() => continue,
                },
            };
            match written {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) => return Err(e),
            }
        }
    }

    async fn drain(&self, socket: &OwnedWriteHalf) -> std::io::Result<()> {
        let stream: &tokio::net::TcpStream = socket.as_ref();
        let fd = stream.as_fd();
        let mut close_deadline = None;
        loop {
            let (empty, closed, failed) = {
                let state = self.state.borrow();
                (state.queue.is_empty(), state.closed, state.failed)
            };
            if failed {
                return Ok(());
            }
            if empty {
                if closed {
                    return Ok(());
                }
                self.notify.wait().await;
                continue;
            }
            if closed && close_deadline.is_none() {
                close_deadline = Some(tokio::time::Instant::now() + CLOSE_FLUSH_TIMEOUT);
            }
            match self.write_some(socket, fd) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // The peer is not reading fast enough: wait for room, a close (which starts the
            // flush deadline), or the deadline itself.
            match close_deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, socket.writable())
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                None => {
                    tokio::select! {
                        r = socket.writable() => r?,
                        () = self.closing.wait() => {}
                    }
                }
            }
        }
    }
}
