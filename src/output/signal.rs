//! A wake-up for one task on the same thread: what the outbox's writer needs from
//! `tokio::sync::Notify` (a waiting task, or a permit for its next wait), without Notify's
//! atomics and waiter-list lock, which a queue shared through an `Rc` never needs. The
//! writer is woken once per write, so that lock was on every player's path.

use std::cell::Cell;
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct Signal {
    raised: Cell<bool>,
    waiter: Cell<Option<Waker>>,
}

impl Signal {
    /// Wake the task waiting in [`Signal::wait`]; with none waiting, its next wait returns
    /// at once (one permit, like `Notify::notify_one`).
    pub fn raise(&self) {
        self.raised.set(true);
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
    }

    /// Until raised; takes the raise. Cancel-safe: a raise that lands while this future is
    /// dropped unpolled (the other arm of a `select!` won) stays for the next wait.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.raised.replace(false) {
                return Poll::Ready(());
            }
            let waker = match self.waiter.take() {
                Some(waker) if waker.will_wake(cx.waker()) => waker,
                _ => cx.waker().clone(),
            };
            self.waiter.set(Some(waker));
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Wake};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_raise_before_the_wait_is_kept_once() {
        let signal = Signal::default();
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        signal.raise();
        signal.raise();
        assert!(pin!(signal.wait()).poll(&mut cx).is_ready());
        assert!(pin!(signal.wait()).poll(&mut cx).is_pending());
    }

    #[test]
    fn a_raise_wakes_the_waiting_task_once_and_ends_its_wait() {
        let signal = Signal::default();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut wait = pin!(signal.wait());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        signal.raise();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(wait.as_mut().poll(&mut cx).is_ready());
        signal.raise();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "no one waits any more");
    }

    #[test]
    fn a_raise_while_a_dropped_wait_was_registered_is_not_lost() {
        let signal = Signal::default();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        {
            let mut wait = pin!(signal.wait());
            assert!(wait.as_mut().poll(&mut cx).is_pending());
        }
        signal.raise();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(pin!(signal.wait()).poll(&mut cx).is_ready());
    }
}
