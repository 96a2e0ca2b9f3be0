use super::*;

fn frame(kind: FrameKind, class: DropClass, timestamp: u32) -> Arc<Frame> {
    Frame::for_test(kind, class, &[0], timestamp, 10)
}

fn task() -> PushTask {
    PushTask {
        push: Push {
            target: "rtmp://127.0.0.1:1/live".into(),
            key: "live/cam".into(),
            name: "cam".into(),
            stream_stats: None,
            tls: None,
            queued: Arc::new(AtomicUsize::new(0)),
        },
        headers: Vec::new(),
        gop: Vec::new(),
        gop_bytes: 0,
    }
}

fn feed(task: &mut PushTask, frames: &[Arc<Frame>]) {
    for f in frames {
        task.push.queued.fetch_add(f.payload.len(), Relaxed);
        task.take(&Item::Frame(f.clone()));
    }
}

fn resumed(task: &PushTask) -> Vec<(FrameKind, DropClass, u32)> {
    task.resume()
        .map(|f| (f.kind, f.class, f.timestamp))
        .collect()
}

use DropClass::{Audio, Header, Inter, Key};
use FrameKind::{Audio as A, Video as V};

/// A reconnection resumes from the current GOP (headers, its keyframe, what followed), not
/// at the next keyframe: the far end shows a picture at once.
#[test]
fn a_reconnect_resumes_with_the_headers_and_the_gop_so_far() {
    let mut t = task();
    feed(
        &mut t,
        &[
            frame(V, Inter, 0), // before any keyframe: nothing to resume from
            frame(V, Header, 0),
            frame(A, Header, 0),
            frame(V, Key, 40),
            frame(A, Audio, 50),
            frame(V, Inter, 80),
        ],
    );
    assert_eq!(
        resumed(&t),
        [
            (V, Header, 0),
            (A, Header, 0),
            (V, Key, 40),
            (A, Audio, 50),
            (V, Inter, 80)
        ]
    );
    // A new keyframe starts a new GOP; a new header of the same role replaces the old one.
    feed(
        &mut t,
        &[
            frame(V, Key, 2000),
            frame(V, Inter, 2040),
            frame(V, Header, 2050),
        ],
    );
    assert_eq!(
        resumed(&t),
        [
            (A, Header, 0),
            (V, Header, 2050),
            (V, Key, 2000),
            (V, Inter, 2040)
        ]
    );
    assert_eq!(
        t.push.queued.load(Relaxed),
        0,
        "every frame taken gave its bytes back"
    );
    // A new source (publisher change) starts from nothing.
    t.take(&Item::Reset);
    assert!(resumed(&t).is_empty());
}
