//! Scale-out across instances: three reflectors behind HAProxy (TCP, roundrobin) sharing a
//! Redis for discovery. One real ffmpeg publisher through the balancer; ffmpeg players through
//! the balancer land on every instance (the origin serves them locally, the others pull the
//! stream once from it); every recording is frame-exact. Then the origin is killed (SIGKILL):
//! players on the other instances get NetStream.Play.UnpublishNotify; the publisher reconnects
//! through the balancer (landing on a live instance), the waiting players get PublishNotify and
//! media again, and new players play frame-exact.
//!
//! Skipped (with a SKIP line) only when redis-server, haproxy or ffmpeg is missing.

use crate::common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    free_port, play, publish, publish_looped, shared_clip, verify_recording, Player, Proc,
    Publisher, Server,
};
use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};

const APP: &str = "live";
const STREAM: &str = "scaled";

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_redis(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let proc = Proc::spawn(
        "redis-server",
        "redis-server",
        &args,
        &[],
        &dir.join("redis.log"),
    );
    wait_for("redis-server", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (proc, port)
}

fn start_haproxy(dir: &Path, backends: &[u16]) -> (Proc, u16) {
    let port = free_port();
    let mut cfg = format!(
        "global\n    maxconn 2000\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    \
         timeout client 120s\n    timeout server 120s\n\nfrontend rtmp\n    bind 127.0.0.1:{port}\n    \
         default_backend reflectors\n\nbackend reflectors\n    balance roundrobin\n"
    );
    for (i, b) in backends.iter().enumerate() {
        cfg.push_str(&format!(
            "    server r{i} 127.0.0.1:{b} check inter 300 fall 1 rise 2\n"
        ));
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("write haproxy.cfg");
    let args = vec![
        "-db".to_string(),
        "-f".to_string(),
        path.display().to_string(),
    ];
    let proc = Proc::spawn("haproxy", "haproxy", &args, &[], &dir.join("haproxy.log"));
    wait_for("haproxy", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (proc, port)
}

/// What a player on the project's client saw, in order (statuses, and a media count).
#[derive(Default, Debug)]
struct Seen {
    statuses: Vec<String>,
    media: usize,
    media_after_resume: usize,
    ended: Option<String>,
}

/// A player on the project's client through `port`, in a thread, until `stop`.
fn client_player(port: u16, until: Instant) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let out = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let url =
                RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/{APP}/{STREAM}")).expect("url");
            let result = async {
                let mut client = RtmpClient::connect(&url, &ClientConfig::default()).await?;
                let id = client.create_stream().await?;
                client.play(id, STREAM).await?;
                loop {
                    let left = until.saturating_duration_since(Instant::now());
                    let event = match tokio::time::timeout(left, client.next_event()).await {
                        Ok(e) => e?,
                        Err(_) => return Ok::<(), reflector::client::ClientError>(()),
                    };
                    let mut s = out.lock().expect("lock");
                    match event {
                        ClientEvent::Media(_) => {
                            s.media += 1;
                            if s.statuses.iter().any(|c| c.ends_with("UnpublishNotify"))
                                && s.statuses
                                    .last()
                                    .is_some_and(|c| c.ends_with(".PublishNotify"))
                            {
                                s.media_after_resume += 1;
                            }
                        }
                        ClientEvent::Status(st) => s.statuses.push(st.code),
                        _ => {}
                    }
                }
            }
            .await;
            let mut s = out.lock().expect("lock");
            s.ended = Some(match result {
                Ok(()) => "deadline".into(),
                Err(e) => e.to_string(),
            });
        });
    });
    seen
}

fn admin_json(server: &Server, path: &str) -> serde_json::Value {
    let url = format!("{}{path}", server.admin_url());
    let body = ureq::get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_string()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

fn log_has(server: &Server, needle: &str) -> bool {
    server.plain_log().contains(needle)
}

#[test]
fn three_instances_behind_haproxy_relay_and_fail_over() {
    skip_unless_have!("redis-server", "haproxy", "ffmpeg", "ffprobe");
    let clip = shared_clip();
    let dir = tempfile::Builder::new()
        .prefix("scale-out-")
        .tempdir()
        .expect("temp dir");
    let (_redis, redis_port) = start_redis(dir.path());
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    // Short TTL and lookup interval so that fail-over is quick in a test.
    let config = dir.path().join("cluster.toml");
    std::fs::write(&config, "[cluster]\nttl_s = 3\nlookup_interval_ms = 300\n").expect("config");
    let config = config.display().to_string();
    let mut servers: Vec<Server> = (0..3)
        .map(|_| Server::reflector(&["--config", &config, "--redis-url", &redis_url]))
        .collect();
    let ports: Vec<u16> = servers.iter().map(Server::port).collect();
    let (_haproxy, lb) = start_haproxy(dir.path(), &ports);
    // Let HAProxy mark every backend up (rise 2 × 300 ms).
    std::thread::sleep(Duration::from_secs(1));
    let url = format!("rtmp://127.0.0.1:{lb}/{APP}/{STREAM}");

    // --- 1. one publisher, players on every instance, frame-exact -----------------------
    // The clip three times over (24 s): the origin must still be publishing when it is
    // killed in phase 2, after the recordings below are verified, however slow that is.
    let mut publisher = publish_looped(clip, 3, &url, dir.path());
    let source = clip.looped(3);
    wait_for(
        "a publish on some instance",
        Duration::from_secs(10),
        || {
            servers
                .iter()
                .any(|s| log_has(s, "stream registered in redis"))
        },
    );
    let origin = servers
        .iter()
        .position(|s| log_has(s, "stream registered in redis"))
        .expect("origin");
    std::thread::sleep(Duration::from_millis(1500));
    // Six players: roundrobin puts two on every instance whatever its position.
    let recordings: Vec<_> = (0..6)
        .map(|_| play(Player::Ffmpeg, &url, dir.path(), Duration::from_secs(3)))
        .collect();
    // While the players play: the admin API shows each hop, and the pulled streams'
    // publisher mailboxes stay within their capacity.
    std::thread::sleep(Duration::from_millis(1500));
    let origin_addr = format!("127.0.0.1:{}", ports[origin]);
    for (i, s) in servers.iter().enumerate() {
        // The list filtered by exact app and name holds the full stream entry.
        let stream = admin_json(s, &format!("/api/v1/streams?app={APP}&name={STREAM}"))["streams"]
            [0]
        .clone();
        let want = if i == origin {
            "local"
        } else {
            origin_addr.as_str()
        };
        assert_eq!(stream["origin"], want, "instance {i}: {stream}");
        let actors = admin_json(s, "/api/v1/actors");
        let publisher = actors["actors"]
            .as_array()
            .and_then(|l| l.iter().find(|a| a["kind"] == "publisher"))
            .unwrap_or_else(|| panic!("instance {i}: no publisher actor in {actors}"));
        let depth = publisher["mailbox_depth"].as_u64();
        let capacity = publisher["mailbox_capacity"].as_u64();
        assert!(
            depth.is_some() && capacity.is_some() && depth <= capacity,
            "instance {i}: publisher mailbox {publisher}"
        );
    }
    for rec in recordings {
        let path = rec.finish();
        verify_recording(&path, &source).assert_ok_with_at_least(50);
    }
    for (i, s) in servers.iter().enumerate() {
        let log = s.plain_log();
        assert!(
            log.contains(": play connection="),
            "instance {i} served no player:\n{}",
            s.log_tail(40)
        );
        if i == origin {
            assert!(
                !log.contains("pulling: feeding local players"),
                "the origin pulled:\n{}",
                s.log_tail(40)
            );
        } else {
            assert!(
                log.contains("pulling: feeding local players"),
                "instance {i} did not pull from the origin:\n{}",
                s.log_tail(40)
            );
        }
    }
    // The relay connections identify themselves, and the origin never pulls for them.
    assert!(log_has(&servers[origin], "reflector-relay/"));
    eprintln!(
        "phase 1: origin = instance {origin}; every instance served ffmpeg players frame-exact"
    );

    // --- 2. kill the origin: players elsewhere get UnpublishNotify ----------------------
    let until = Instant::now() + Duration::from_secs(40);
    let watchers: Vec<_> = (0..6).map(|_| client_player(lb, until)).collect();
    wait_for("watchers receiving media", Duration::from_secs(10), || {
        watchers.iter().all(|w| w.lock().expect("lock").media > 0)
    });
    let pid = servers[origin].pid();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    wait_for("the origin to die", Duration::from_secs(5), || {
        !servers[origin].is_running()
    });
    let _ = publisher.wait_timeout(Duration::from_secs(10));
    // Watchers on the dead instance lose their connection; the others get UnpublishNotify.
    wait_for(
        "UnpublishNotify or disconnect on every watcher",
        Duration::from_secs(10),
        || {
            watchers.iter().all(|w| {
                let s = w.lock().expect("lock");
                s.ended.is_some() || s.statuses.iter().any(|c| c.ends_with("UnpublishNotify"))
            })
        },
    );
    let notified: Vec<_> = watchers
        .iter()
        .filter(|w| {
            let s = w.lock().expect("lock");
            s.ended.is_none() && s.statuses.iter().any(|c| c.ends_with("UnpublishNotify"))
        })
        .cloned()
        .collect();
    assert!(
        notified.len() >= 3,
        "players on the surviving instances should get UnpublishNotify: {:?}",
        watchers
            .iter()
            .map(|w| format!("{:?}", w.lock().expect("lock")))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "phase 2: {} watchers on surviving instances got UnpublishNotify",
        notified.len()
    );

    // --- 3. the publisher reconnects through the balancer: players resume ---------------
    // HAProxy marks the dead instance down after one failed check (300 ms).
    std::thread::sleep(Duration::from_secs(1));
    let _publisher2 = publish(Publisher::Ffmpeg, clip, &url, dir.path());
    std::thread::sleep(Duration::from_millis(1500));
    wait_for("waiting players to resume", Duration::from_secs(15), || {
        notified
            .iter()
            .all(|w| w.lock().expect("lock").media_after_resume > 0)
    });
    let recordings: Vec<_> = (0..4)
        .map(|_| play(Player::Ffmpeg, &url, dir.path(), Duration::from_secs(3)))
        .collect();
    for rec in recordings {
        let path = rec.finish();
        verify_recording(&path, clip).assert_ok_with_at_least(50);
    }
    let survivors: Vec<usize> = (0..3).filter(|&i| i != origin).collect();
    for &i in &survivors {
        assert!(
            servers[i].is_running(),
            "instance {i} died:\n{}",
            servers[i].log_tail(40)
        );
    }
    eprintln!("phase 3: the publisher came back through the balancer; players resumed and new players play frame-exact");
}

/// Push relay: a stream published to one instance is forwarded to a configured upstream
/// (`[[relay.push]]`), where players get it frame-exact; the upstream sees a relay publisher.
#[test]
fn push_relay_forwards_a_published_stream() {
    skip_unless_have!("ffmpeg", "ffprobe");
    let clip = shared_clip();
    let dir = tempfile::Builder::new()
        .prefix("push-relay-")
        .tempdir()
        .expect("temp dir");
    let upstream = Server::reflector(&[]);
    let config = dir.path().join("push.toml");
    std::fs::write(
        &config,
        format!(
            "[[relay.push]]\nurl = \"rtmp://127.0.0.1:{}/{APP}\"\napp = \"{APP}\"\n",
            upstream.port()
        ),
    )
    .expect("config");
    let edge = Server::reflector(&["--config", &config.display().to_string()]);
    let mut publisher = publish(
        Publisher::Ffmpeg,
        clip,
        &edge.rtmp_url(APP, STREAM),
        dir.path(),
    );
    edge.wait_for_log("push connected", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    let rec = play(
        Player::Ffmpeg,
        &upstream.rtmp_url(APP, STREAM),
        dir.path(),
        Duration::from_secs(3),
    );
    verify_recording(&rec.finish(), clip).assert_ok_with_at_least(50);
    assert!(
        log_has(&upstream, "reflector-relay/"),
        "{}",
        upstream.log_tail(30)
    );
    let _ = publisher.wait_timeout(Duration::from_secs(10));
    edge.wait_for_log("push stopped", Duration::from_secs(10));
}

/// Redis configured but unreachable: local publish and play keep working, and the condition is
/// logged.
#[test]
fn local_streams_work_while_redis_is_down() {
    skip_unless_have!("ffmpeg", "ffprobe");
    let clip = shared_clip();
    let dir = tempfile::Builder::new()
        .prefix("no-redis-")
        .tempdir()
        .expect("temp dir");
    // A port nothing listens on.
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let server = Server::reflector(&["--redis-url", &dead]);
    let url = server.rtmp_url(APP, STREAM);
    let mut publisher = publish(Publisher::Ffmpeg, clip, &url, dir.path());
    std::thread::sleep(Duration::from_millis(1500));
    let rec = play(Player::Ffmpeg, &url, dir.path(), Duration::from_secs(3));
    verify_recording(&rec.finish(), clip).assert_ok_with_at_least(50);
    assert!(
        log_has(&server, "redis unavailable"),
        "{}",
        server.log_tail(30)
    );
    let _ = publisher.wait_timeout(Duration::from_secs(10));
}
