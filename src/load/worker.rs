//! Player threads: each is an OS thread with its own current-thread tokio runtime, so
//! players never cross threads and share nothing but the start instant (a player's counters
//! live on its thread; the controller asks for them). A probe task on every thread measures
//! its scheduling lateness: how long a timer that is due waits before it runs, which is what
//! the thread adds to every latency it measures.

use std::rc::Rc;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::player::{player, ChurnCounts, PlayUrl, Role, ThreadState, Window};
use super::Histogram;
use crate::client::ClientConfig;

/// How often the lateness probe wakes.
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// What the controller asks a player thread.
#[derive(Debug)]
pub enum Command {
    /// Start a player on play URL `url` (index into the thread's play URLs).
    Spawn { role: Role, url: usize },
    /// Count a new window `[start, end)` (nanoseconds since the shared start).
    Open { start: u64, end: u64 },
    /// What the thread counted so far.
    Report(oneshot::Sender<ThreadReport>),
}

/// One thread's counts.
#[derive(Debug, Clone)]
pub struct ThreadReport {
    pub index: usize,
    pub tid: u32,
    pub window: Window,
    pub churn: ChurnCounts,
    pub connect_failures: u64,
    /// Players started on this thread since it began.
    pub spawned: u64,
    /// Lateness of the probe's timers since the window opened, microseconds.
    pub lateness: Histogram,
}

/// The controller's end of a player thread.
pub struct WorkerHandle {
    pub index: usize,
    pub tid: u32,
    tx: mpsc::UnboundedSender<Command>,
    join: Option<std::thread::JoinHandle<()>>,
}

impl WorkerHandle {
    /// Send a command; false if the thread is gone.
    pub fn send(&self, cmd: Command) -> bool {
        self.tx.send(cmd).is_ok()
    }

    pub async fn report(&self) -> Option<ThreadReport> {
        let (tx, rx) = oneshot::channel();
        if !self.send(Command::Report(tx)) {
            return None;
        }
        rx.await.ok()
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; its runtime's end closes its sockets.
        let (tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// The calling thread's kernel id (for /proc/self/task/TID).
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    u32::try_from(tid).unwrap_or(0)
}

/// Start player thread `index` (named `load-N`). Every thread parses the play URLs itself
/// and keeps its own client configuration, so nothing is shared across threads.
pub fn spawn_worker(
    index: usize,
    t0: Instant,
    play_urls: &[PlayUrl],
    cfg: &ClientConfig,
    errors_logged: Arc<AtomicU32>,
    busy_poll: bool,
) -> std::io::Result<WorkerHandle> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let urls = play_urls.to_vec();
    let cfg = cfg.clone();
    let join = std::thread::Builder::new()
        .name(format!("load-{index}"))
        .spawn(move || {
            let _ = tid_tx.send(gettid());
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("reflector-load: thread {index}: no runtime: {e}");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            if busy_poll {
                // A task that is always ready: the runtime then polls epoll with a zero
                // timeout and the thread never sleeps in it (see --busy-poll).
                local.spawn_local(async {
                    loop {
                        tokio::task::yield_now().await;
                    }
                });
            }
            local.block_on(&rt, serve(index, t0, urls, cfg, errors_logged, rx));
        })?;
    let tid = tid_rx.recv().unwrap_or(0);
    Ok(WorkerHandle {
        index,
        tid,
        tx,
        join: Some(join),
    })
}

async fn serve(
    index: usize,
    t0: Instant,
    urls: Vec<PlayUrl>,
    cfg: ClientConfig,
    errors_logged: Arc<AtomicU32>,
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    let urls: Vec<Rc<PlayUrl>> = urls.into_iter().map(Rc::new).collect();
    let cfg = Rc::new(cfg);
    let sh = Rc::new(ThreadState::new(t0, urls.len(), errors_logged));
    let lateness = Rc::new(std::cell::RefCell::new(Histogram::default()));
    tokio::task::spawn_local(probe(lateness.clone()));
    let tid = gettid();
    let mut spawned = 0;
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::Spawn { role, url } => {
                let Some(u) = urls.get(url).or(urls.first()) else {
                    continue;
                };
                spawned += 1;
                tokio::task::spawn_local(player(
                    sh.clone(),
                    url.min(urls.len() - 1),
                    u.clone(),
                    cfg.clone(),
                    role,
                ));
            }
            Command::Open { start, end } => {
                sh.open(start, end);
                lateness.borrow_mut().clear();
            }
            Command::Report(reply) => {
                let _ = reply.send(ThreadReport {
                    index,
                    tid,
                    window: sh.snapshot(),
                    churn: *sh.churn.borrow(),
                    connect_failures: sh.connect_failures.get(),
                    spawned,
                    lateness: lateness.borrow().clone(),
                });
            }
        }
    }
}

/// Wake every [`PROBE_EVERY`] and record how late each wake-up ran, microseconds.
async fn probe(hist: Rc<std::cell::RefCell<Histogram>>) {
    let mut due = tokio::time::Instant::now() + PROBE_EVERY;
    loop {
        tokio::time::sleep_until(due).await;
        let now = tokio::time::Instant::now();
        let late = now.saturating_duration_since(due);
        hist.borrow_mut().record(late.as_micros() as u64);
        // A thread stalled for longer than a period records one long delay, not a burst.
        due = now + PROBE_EVERY;
    }
}
