use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::*;
use crate::config::Settings;
use crate::hub::{DropClass, FrameKind};

#[derive(Debug, PartialEq, Eq, Clone)]
enum Event {
    Start { live: bool, burst: Vec<u32> },
    Frame(u32, bool),
    Missed(u64),
    Published,
    Unpublished,
    Ended,
}

/// Records, in one shared log, which player saw what.
struct Recorder {
    id: u64,
    log: Rc<RefCell<Vec<(u64, Event)>>>,
}

impl Player for Recorder {
    fn start(&mut self, live: bool, burst: &mut dyn Iterator<Item = &Arc<Frame>>) {
        let burst = burst.map(|f| f.timestamp).collect();
        self.log
            .borrow_mut()
            .push((self.id, Event::Start { live, burst }));
    }
    fn frame(&mut self, frame: &Arc<Frame>, after_gap: bool) {
        self.log
            .borrow_mut()
            .push((self.id, Event::Frame(frame.timestamp, after_gap)));
    }
    fn missed(&mut self, frames: u64) {
        self.log.borrow_mut().push((self.id, Event::Missed(frames)));
    }
    fn published(&mut self) {
        self.log.borrow_mut().push((self.id, Event::Published));
    }
    fn unpublished(&mut self) {
        self.log.borrow_mut().push((self.id, Event::Unpublished));
    }
    fn ended(&mut self) {
        self.log.borrow_mut().push((self.id, Event::Ended));
    }
}

fn frame(kind: FrameKind, class: DropClass, timestamp: u32) -> Arc<Frame> {
    Frame::for_test(kind, class, &[0], timestamp, 8)
}

fn fanout() -> LocalFanout {
    let settings = Settings::load(None).expect("embedded defaults");
    LocalFanout::new(settings.live.clone())
}

type Log = Rc<RefCell<Vec<(u64, Event)>>>;

fn player(id: u64, log: &Log) -> Rc<RefCell<dyn Player>> {
    Rc::new(RefCell::new(Recorder {
        id,
        log: log.clone(),
    }))
}

use DropClass::{Audio, Header, Inter, Key};
use FrameKind::{Audio as A, Video as V};

#[test]
fn joiners_before_the_seed_start_with_it_then_frames_go_in_join_order() {
    let log: Log = Rc::default();
    let mut hub = fanout();
    for id in [907, 3, 512] {
        hub.join((id, 1), player(id, &log));
    }
    assert!(
        log.borrow().is_empty(),
        "nothing before the publisher's state"
    );
    hub.seed(
        true,
        &[frame(V, Header, 0), frame(V, Key, 40), frame(A, Audio, 50)],
    );
    hub.frame(&frame(V, Inter, 80), 0);
    let start = Event::Start {
        live: true,
        burst: vec![0, 40, 50],
    };
    assert_eq!(
        *log.borrow(),
        [
            (907, start.clone()),
            (3, start.clone()),
            (512, start),
            (907, Event::Frame(80, false)),
            (3, Event::Frame(80, false)),
            (512, Event::Frame(80, false)),
        ]
    );
}

#[test]
fn a_later_joiner_starts_from_the_mirrored_cache_without_the_publisher() {
    let log: Log = Rc::default();
    let mut hub = fanout();
    hub.join((1, 1), player(1, &log));
    hub.seed(true, &[frame(V, Header, 0)]);
    for (f, ts) in [(Inter, 10), (Key, 20), (Inter, 30)] {
        hub.frame(&frame(V, f, ts), 0);
    }
    hub.frame(&frame(A, Audio, 35), 0);
    log.borrow_mut().clear();
    hub.join((2, 1), player(2, &log));
    assert_eq!(
        *log.borrow(),
        [(
            2,
            Event::Start {
                live: true,
                burst: vec![0, 20, 30, 35]
            }
        )]
    );
}

#[test]
fn frames_lost_before_this_core_are_counted_and_flag_a_gap() {
    let log: Log = Rc::default();
    let mut hub = fanout();
    hub.seed(true, &[]);
    hub.join((1, 1), player(1, &log));
    log.borrow_mut().clear();
    hub.frame(&frame(V, Inter, 10), 3);
    assert_eq!(
        *log.borrow(),
        [(1, Event::Missed(3)), (1, Event::Frame(10, true))]
    );
}

#[test]
fn a_new_publisher_empties_the_cache_and_leaving_empties_the_fanout() {
    let log: Log = Rc::default();
    let mut hub = fanout();
    hub.seed(true, &[frame(V, Header, 0), frame(V, Key, 5)]);
    hub.join((1, 1), player(1, &log));
    hub.unpublished();
    hub.published();
    hub.frame(&frame(V, Header, 100), 0);
    hub.join((2, 1), player(2, &log));
    let log = log.borrow();
    assert_eq!(log[1], (1, Event::Unpublished));
    assert_eq!(log[2], (1, Event::Published));
    assert_eq!(
        log.last(),
        Some(&(
            2,
            Event::Start {
                live: true,
                burst: vec![100]
            }
        )),
        "nothing of the old publisher"
    );
    assert!(!hub.leave((1, 1)));
    assert!(hub.leave((2, 1)));
}

#[test]
fn a_gone_publisher_ends_every_play() {
    let log: Log = Rc::default();
    let mut hub = fanout();
    hub.join((1, 1), player(1, &log));
    hub.join((2, 1), player(2, &log));
    hub.end();
    assert_eq!(*log.borrow(), [(1, Event::Ended), (2, Event::Ended)]);
    assert!(hub.is_empty());
}

#[test]
fn a_batch_goes_to_each_player_whole_in_order_and_into_the_cache() {
    let log: Log = Rc::default();
    let mut hub = fanout();
    hub.seed(true, &[frame(V, Header, 0)]);
    hub.join((1, 1), player(1, &log));
    hub.join((2, 1), player(2, &log));
    log.borrow_mut().clear();
    hub.frames(&[
        (frame(A, Audio, 5), 0),
        (frame(A, Audio, 28), 2),
        (frame(V, Key, 33), 0),
    ]);
    let want = |id| {
        [
            (id, Event::Frame(5, false)),
            (id, Event::Missed(2)),
            (id, Event::Frame(28, true)),
            (id, Event::Frame(33, false)),
        ]
    };
    let mut expected = want(1).to_vec();
    expected.extend(want(2));
    assert_eq!(*log.borrow(), expected);
    // A joiner starts from the same cache as if the frames had come one by one.
    let mut single = fanout();
    single.seed(true, &[frame(V, Header, 0)]);
    single.frame(&frame(A, Audio, 5), 0);
    single.frame(&frame(A, Audio, 28), 2);
    single.frame(&frame(V, Key, 33), 0);
    log.borrow_mut().clear();
    hub.join((3, 1), player(3, &log));
    single.join((3, 1), player(3, &log));
    let log = log.borrow();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0], log[1]);
    assert!(matches!(&log[0].1, Event::Start { burst, .. } if burst.ends_with(&[33])));
}
