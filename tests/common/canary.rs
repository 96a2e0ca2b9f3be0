//! The canary: a paced RTMP publisher (25 fps on the wall clock) and a player that timestamps
//! every video frame it gets. A hostile test runs it beside its attackers: at the end the
//! player must have seen every frame, in order, never more than a second apart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reflector::client::synth::{self, Synth, SynthConfig};
use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};
use reflector::protocol::message::type_id;

pub struct Canary {
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    publisher: tokio::task::JoinHandle<u64>,
    player: tokio::task::JoinHandle<Vec<(Instant, u64)>>,
}

impl Canary {
    /// Publish `live/NAME` on the server at `port` and play it back.
    pub async fn start(port: u16, name: &str) -> Canary {
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let target = RtmpUrl {
            host: "127.0.0.1".into(),
            port,
            app: "live".into(),
            stream: name.into(),
            tls: false,
        };
        let config = ClientConfig {
            timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        };
        let mut client = RtmpClient::connect(&target, &config)
            .await
            .expect("canary publisher connects");
        let stream_id = client.create_stream().await.expect("canary createStream");
        client
            .publish(stream_id, name)
            .await
            .expect("canary publish");
        let mut synth = Synth::new(SynthConfig {
            stream_id,
            ..SynthConfig::default()
        });
        for m in synth.headers() {
            client.feed(&m);
        }
        client.flush().await.expect("canary headers");
        let s = stop.clone();
        let publisher = tokio::spawn(async move {
            let mut scratch = Vec::new();
            let start = Instant::now();
            // 25 fps on the wall clock, whatever the scheduler does to one tick.
            while !s.load(Relaxed) {
                scratch.clear();
                synth.next_tick(&mut scratch);
                for m in &scratch {
                    client.feed(m);
                }
                client.flush().await.expect("canary publisher send");
                let due = start + Duration::from_millis(40 * synth.video_frames());
                tokio::time::sleep_until(due.into()).await;
            }
            synth.video_frames()
        });
        // Let the publisher get going so the player joins a live stream.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut player = RtmpClient::connect(&target, &config)
            .await
            .expect("canary player connects");
        let pid = player.create_stream().await.expect("player createStream");
        player.play(pid, name).await.expect("canary play");
        let (mut reader, _writer) = player.into_split();
        let s = stop.clone();
        let f = frames.clone();
        let player = tokio::spawn(async move {
            let _writer = _writer;
            let mut seen = Vec::new();
            while !s.load(Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), reader.next_event()).await {
                    Ok(Ok(ClientEvent::Media(m))) if m.type_id == type_id::VIDEO => {
                        if let Some(seq) = synth::video_seq(&m.payload) {
                            seen.push((Instant::now(), seq));
                            f.fetch_add(1, Relaxed);
                        }
                    }
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(e)) => panic!("canary player lost its connection: {e}"),
                }
            }
            seen
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while frames.load(Relaxed) < 10 {
            assert!(Instant::now() < deadline, "canary player got no frames");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Canary {
            stop,
            frames,
            publisher,
            player,
        }
    }

    /// Video frames the player has seen so far.
    pub fn frames_seen(&self) -> u64 {
        self.frames.load(Relaxed)
    }

    /// Stop both and check the player saw more than `min_frames` frames, every one, in order,
    /// never more than 1 s apart; returns how many.
    pub async fn finish(self, what: &str, min_frames: usize) -> usize {
        self.stop.store(true, Relaxed);
        let sent = self.publisher.await.expect("canary publisher task");
        let seen = self.player.await.expect("canary player task");
        assert!(
            seen.len() > min_frames,
            "{what}: canary player saw only {} frames",
            seen.len()
        );
        let first = seen[0].1;
        for (i, w) in seen.windows(2).enumerate() {
            assert_eq!(
                w[1].1,
                w[0].1 + 1,
                "{what}: canary lost frames after #{i}: seq {} then {}",
                w[0].1,
                w[1].1
            );
            let gap = w[1].0 - w[0].0;
            assert!(
                gap <= Duration::from_secs(1),
                "{what}: canary stalled {gap:?} between frames {} and {}",
                w[0].1,
                w[1].1
            );
        }
        let last = seen[seen.len() - 1].1;
        assert!(
            last + 30 >= sent,
            "{what}: player ended at frame {last} of {sent} sent (from {first})"
        );
        seen.len()
    }
}
