//! Relays from and to foreign servers (issue 20, item 3): nginx-rtmp (Debian's
//! libnginx-mod-rtmp) and node-media-server (npm, installed by `.ci/run` into
//! `/opt/node-media-server`, or `NMS_DIR`), started by the tests on 127.0.0.1.
//!
//! Every case publishes the 8 s clip in real time with ffmpeg and checks a late joiner (2 s
//! after the publisher): its recording is frame-exact against the clip, and ffprobe sees the
//! source's metadata keys. The chain A -> nginx -> B also restarts nginx mid-stream and
//! checks that B's player resumes with monotonic, continuous timestamps.
//!
//! The cases run in parallel (about 20 s in all).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::verify::contiguous_runs;
use common::{
    play, publish, publish_looped, reflector_with_config, shared_clip, verify_recording, Player,
    Proc, Publisher, Server,
};

/// Players join this long after the publisher started.
const JOIN_DELAY: Duration = Duration::from_secs(2);
/// What a late joiner records (~100 frames).
const RECORD: Duration = Duration::from_secs(4);
/// Frames a late joiner must get: two GOPs (nginx-rtmp has no GOP cache, so its players start
/// at the next keyframe; under load that can be 3 s in).
const MIN_FRAMES: usize = 50;
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(20);

/// The metadata keys ffprobe shows for `url` (format tags), read as a late joiner.
fn metadata_keys(url: &str) -> Vec<String> {
    let out = Command::new("timeout")
        .args([
            "10",
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format_tags",
        ])
        .args(["-of", "default=noprint_wrappers=1", url])
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("TAG:"))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .collect()
}

fn assert_metadata(url: &str, key: &str) {
    let keys = metadata_keys(url);
    assert!(
        keys.iter().any(|k| k == key),
        "a late joiner of {url} got no metadata key {key:?}: {keys:?}"
    );
    eprintln!("{url}: metadata keys {keys:?}");
}

/// A late joiner of `url` records [`RECORD`] (frame-exact, monotonic) while ffprobe, another
/// late joiner, looks for the metadata key `key`. Returns the frame count.
fn late_joiner(url: &str, dir: &Path, what: &str, key: &str) -> usize {
    let recording = play(Player::Ffmpeg, url, dir, RECORD);
    assert_metadata(url, key);
    let rec = recording.finish();
    let verdict = verify_recording(&rec, shared_clip());
    eprintln!("{what}: {verdict}");
    verdict.assert_ok_with_at_least(MIN_FRAMES);
    assert!(
        common::verify::timestamps_monotonic(&rec),
        "{what}: timestamps go back"
    );
    verdict.frame_count
}

/// Publishes the clip to `publish_to`, then runs a late joiner (see [`late_joiner`]) on
/// each `(url, what, metadata key)` at once, 2 s later. A failed joiner panics with `context()`
/// (the servers' log tails); the publisher must finish cleanly.
fn publish_and_join(
    publish_to: &str,
    dir: &Path,
    joiners: &[(&str, &str, &str)],
    context: impl Fn() -> String,
) {
    let mut publisher = publish(Publisher::Ffmpeg, shared_clip(), publish_to, dir);
    sleep(JOIN_DELAY);
    let failed = std::thread::scope(|s| {
        let handles: Vec<_> = joiners
            .iter()
            .map(|&(url, what, key)| s.spawn(move || late_joiner(url, dir, what, key)))
            .collect();
        handles.into_iter().any(|h| h.join().is_err())
    });
    if failed {
        panic!("a late joiner failed\n{}", context());
    }
    publisher.wait_success(PUBLISH_TIMEOUT);
}

fn reflector(toml: &str) -> (Server, tempfile::NamedTempFile) {
    reflector_with_config(toml)
}

/// node-media-server's package directory, or `None` (skipped unless CI requires it).
fn nms_module() -> Option<PathBuf> {
    let dir = std::env::var_os("NMS_DIR")
        .map_or_else(|| PathBuf::from("/opt/node-media-server"), PathBuf::from);
    let module = dir.join("node_modules/node-media-server");
    if module.join("package.json").is_file() && common::have("node") {
        return Some(module);
    }
    if std::env::var_os(common::REQUIRE_CLIENTS_ENV).is_some() {
        panic!(
            "node-media-server is not installed in {} (.ci/run installs it)",
            dir.display()
        );
    }
    eprintln!(
        "SKIP: node-media-server is not installed in {}",
        dir.display()
    );
    None
}

/// A node-media-server on 127.0.0.1; with `push_to`, a push relay of `live/NAME` to
/// `push_to/NAME`, added once `live/NAME` is published there (the relay needs the stream).
struct Nms {
    port: u16,
    proc: Proc,
    dir: tempfile::TempDir,
}

const NMS_SCRIPT: &str = r#"
const NodeMediaServer = require(process.env.NMS_MODULE);
const [rtmpPort, httpPort, dir, pushUrl, name] = process.argv.slice(2);
const nms = new NodeMediaServer({
  bind: "127.0.0.1",
  rtmp: { port: Number(rtmpPort) },
  http: { port: Number(httpPort) },
  store: { path: dir + "/data" },
  auth: { play: false, publish: false, secret: "" },
  record: { auto: false, path: dir + "/record" },
  webadmin: { enable: false },
  notify: { url: "" },
}, dir + "/config.json");
nms.on("postPublish", (session) => {
  if (pushUrl && session.streamPath === "/live/" + name) {
    setImmediate(() => nms.relayServer.addTask({ url: pushUrl + "/" + name, mode: "push", streamPath: session.streamPath }));
  }
});
nms.run().then(() => console.log("nms ready"));
"#;

impl Nms {
    fn start(module: &Path, push_to: Option<&str>, name: &str) -> Nms {
        let dir = tempfile::Builder::new()
            .prefix("nms-test-")
            .tempdir()
            .expect("temp dir");
        let script = dir.path().join("nms.js");
        std::fs::write(&script, NMS_SCRIPT).expect("write nms.js");
        let (port, http) = (common::free_port(), common::free_port());
        let args: Vec<String> = vec![
            script.display().to_string(),
            port.to_string(),
            http.to_string(),
            dir.path().display().to_string(),
            push_to.unwrap_or("").to_owned(),
            name.to_owned(),
        ];
        let log = dir.path().join("nms.log");
        let module = module.display().to_string();
        let proc = Proc::spawn(
            "node-media-server",
            "node",
            &args,
            &[("NMS_MODULE", &module)],
            &log,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("nms ready")) {
            assert!(
                Instant::now() < deadline,
                "node-media-server did not start:\n{}",
                common::tail(&log, 30)
            );
            sleep(Duration::from_millis(50));
        }
        Nms { port, proc, dir }
    }

    fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.port)
    }

    fn log_tail(&self) -> String {
        common::tail(&self.dir.path().join("nms.log"), 30)
    }
}

impl Drop for Nms {
    fn drop(&mut self) {
        self.proc.stop_with("TERM", Duration::from_secs(3));
    }
}

/// nginx-rtmp `push`es into us: it sends a plain `onMetaData` (no `@setDataFrame`), which a
/// late joiner must still get.
#[test]
fn nginx_pushes_into_us() {
    skip_unless_have!("nginx", "ffmpeg", "ffprobe");
    let (us, _config) = reflector("");
    let nginx = Server::nginx_rtmp_with(&format!("push rtmp://127.0.0.1:{}/live;", us.port()));
    publish_and_join(
        &nginx.rtmp_url("live", "s"),
        us.dir(),
        &[(
            &us.rtmp_url("live", "s"),
            "nginx push -> us",
            "displayWidth",
        )],
        || us.log_tail(20),
    );
}

/// nginx-rtmp `pull`s from us: its own late joiner gets the stream and the metadata.
#[test]
fn nginx_pulls_from_us() {
    skip_unless_have!("nginx", "ffmpeg", "ffprobe");
    let (us, _config) = reflector("");
    let nginx = Server::nginx_rtmp_with(&format!("pull rtmp://127.0.0.1:{}/live;", us.port()));
    publish_and_join(
        &us.rtmp_url("live", "s"),
        us.dir(),
        &[(
            &nginx.rtmp_url("live", "s"),
            "us -> nginx pull",
            "displayWidth",
        )],
        || us.log_tail(20),
    );
}

/// node-media-server's push relay publishes on stream 1 and sends its media on message
/// stream 0: we take it as that stream's (and say so once).
#[test]
fn node_media_server_pushes_into_us() {
    skip_unless_have!("node", "ffmpeg", "ffprobe");
    let Some(module) = nms_module() else { return };
    let (us, _config) = reflector("");
    let target = format!("rtmp://127.0.0.1:{}/live", us.port());
    let nms = Nms::start(&module, Some(&target), "s");
    publish_and_join(
        &nms.url("s"),
        us.dir(),
        &[(&us.rtmp_url("live", "s"), "nms push -> us", "encoder")],
        || format!("{}\n--- nms ---\n{}", us.log_tail(20), nms.log_tail()),
    );
    assert!(
        us.log().contains("media on message stream 0 taken as the publishing stream's"),
        "node-media-server's relay did not use message stream 0 (or we did not say so)\n{}\n--- nms ---\n{}",
        us.log_tail(20),
        nms.log_tail()
    );
}

/// Our `[[relay.push]]` into nginx-rtmp and into node-media-server at once: a late joiner
/// on each gets the stream frame-exact, with metadata.
#[test]
fn we_push_into_nginx_and_node_media_server() {
    skip_unless_have!("nginx", "node", "ffmpeg", "ffprobe");
    let Some(module) = nms_module() else { return };
    let nginx = Server::nginx_rtmp();
    let nms = Nms::start(&module, None, "s");
    let (us, _config) = reflector(&format!(
        "[[relay.push]]\nurl = \"rtmp://127.0.0.1:{}/live\"\n\n\
         [[relay.push]]\nurl = \"rtmp://127.0.0.1:{}/live\"\n",
        nginx.port(),
        nms.port
    ));
    publish_and_join(
        &us.rtmp_url("live", "s"),
        us.dir(),
        &[
            (
                &nginx.rtmp_url("live", "s"),
                "us -> push -> nginx",
                "displayWidth",
            ),
            (&nms.url("s"), "us -> push -> nms", "encoder"),
        ],
        || {
            format!(
                "--- us ---\n{}\n--- nms ---\n{}",
                us.log_tail(20),
                nms.log_tail()
            )
        },
    );
}

/// `[[relay.pull]]` from nginx-rtmp: a static pull (running before any player asks) and an
/// on-demand pull (another local app served from the same origin).
#[test]
fn we_pull_from_nginx_static_and_on_demand() {
    skip_unless_have!("nginx", "ffmpeg", "ffprobe");
    let nginx = Server::nginx_rtmp();
    let origin = format!("rtmp://127.0.0.1:{}/live", nginx.port());
    let (us, _config) = reflector(&format!(
        "[cluster]\nlookup_interval_ms = 200\n\n\
         [[relay.pull]]\nurl = \"{origin}\"\napp = \"live\"\nmode = \"static\"\nname = \"s\"\n\n\
         [[relay.pull]]\nurl = \"{origin}\"\napp = \"edge\"\n"
    ));
    let mut publisher = publish(
        Publisher::Ffmpeg,
        shared_clip(),
        &nginx.rtmp_url("live", "s"),
        us.dir(),
    );
    // The static pull starts without players.
    us.wait_for_log("pulling: feeding local players", Duration::from_secs(10));
    sleep(JOIN_DELAY);
    let (live, edge) = (us.rtmp_url("live", "s"), us.rtmp_url("edge", "s"));
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| late_joiner(&live, us.dir(), "nginx -> static pull", "displayWidth"));
        let b = s.spawn(|| late_joiner(&edge, us.dir(), "nginx -> on-demand pull", "displayWidth"));
        (a.join(), b.join())
    });
    if a.is_err() || b.is_err() {
        panic!(
            "a pulled stream's late joiner failed\n--- us ---\n{}",
            us.log_tail(30)
        );
    }
    publisher.wait_success(PUBLISH_TIMEOUT);
}

/// A -> push -> nginx -> push -> B, B's player attached throughout: nginx is stopped 3 s in
/// and started again 2 s later. B's player resumes; its timestamps never go back and jump no
/// more than the outage; each piece it got is an exact run of the clip, the second starting at
/// a keyframe (A's push resumes from its GOP cache).
#[test]
fn chain_through_a_restarted_nginx() {
    skip_unless_have!("nginx", "ffmpeg", "ffprobe");
    const OUTAGE: Duration = Duration::from_secs(2);
    let (b, _b_config) = reflector("[live]\nunpublish_notify = false\n");
    let mut nginx = Server::nginx_rtmp_with(&format!("push rtmp://127.0.0.1:{}/live;", b.port()));
    let (a, _a_config) = reflector(&format!(
        "[[relay.push]]\nurl = \"rtmp://127.0.0.1:{}/live\"\n",
        nginx.port()
    ));
    // The clip twice over (16 s): the outage, nginx's restart and the metadata probe all fit
    // inside it with a run of frames after them, however slow the machine.
    let mut publisher = publish_looped(shared_clip(), 2, &a.rtmp_url("live", "s"), a.dir());
    let clip = &shared_clip().looped(2);
    sleep(Duration::from_secs(1));
    // rtmpdump writes what B sends as it comes (ffmpeg would still be probing its input).
    let mut player = play(
        Player::Rtmpdump,
        &b.rtmp_url("live", "s"),
        b.dir(),
        Duration::from_secs(30),
    );
    sleep(Duration::from_secs(2));
    nginx.restart_nginx(OUTAGE);
    // A late joiner of B after the republish gets nginx's (plain) metadata.
    sleep(Duration::from_millis(1500));
    assert_metadata(&b.rtmp_url("live", "s"), "displayWidth");
    publisher.wait_success(PUBLISH_TIMEOUT);
    sleep(Duration::from_millis(1500));
    player.proc_mut().stop_with("INT", Duration::from_secs(5));
    let rec = player.finish();

    let runs = contiguous_runs(&rec, clip);
    let decoded = common::clip::video_frame_md5s(&rec)
        .expect("decode the recording")
        .len();
    let in_runs: usize = runs.iter().map(|r| r.1).sum();
    eprintln!("chain: runs (first clip frame, length) {runs:?}, {decoded} frames decoded");
    let context = || {
        format!(
            "--- A ---\n{}\n--- B ---\n{}\n--- nginx ---\n{}",
            a.log_tail(15),
            b.log_tail(15),
            nginx.log_tail(15)
        )
    };
    assert!(
        runs.len() >= 2 && runs[0].1 >= 25 && runs[runs.len() - 1].1 >= 25,
        "B's player did not resume after the restart: {runs:?}\n{}",
        context()
    );
    assert!(
        decoded <= in_runs + 2 * runs.len(),
        "frames not from the clip: {decoded} decoded, {in_runs} in runs\n{}",
        context()
    );
    assert!(
        runs[1..].iter().all(|r| clip.is_keyframe(r.0)),
        "a resumed run starts off a keyframe: {runs:?}"
    );

    let dts = video_dts_ms(&rec);
    assert!(
        dts.windows(2).all(|w| w[1] >= w[0]),
        "video timestamps go back: {dts:?}"
    );
    let gap = dts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    eprintln!(
        "chain: largest video timestamp step {gap} ms over {} packets",
        dts.len()
    );
    assert!(
        gap <= OUTAGE.as_millis() as i64 + 500,
        "timestamps jump {gap} ms across a {OUTAGE:?} outage\n{}",
        context()
    );
}

/// Video packet decode timestamps of `rec`, in ms.
fn video_dts_ms(rec: &Path) -> Vec<i64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=dts",
        ])
        .args(["-of", "csv=p=0"])
        .arg(rec)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Stream-0 media without node-media-server: the project's own client publishes on stream 1
/// and sends its media on stream 0. With one publishing stream a player gets every frame; with
/// two, the media is dropped and the server says why, once.
#[test]
fn stream_zero_media_from_our_own_client() {
    use reflector::client::synth::{self, Synth, SynthConfig};
    use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};
    use reflector::protocol::message::type_id;

    let us = Server::reflector(&["--workers", "2"]);
    let url = |name: &str| RtmpUrl {
        host: "127.0.0.1".into(),
        port: us.port(),
        app: "live".into(),
        stream: name.into(),
        tls: false,
    };
    let config = ClientConfig {
        timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    /// Video frames (not headers) a player gets within `wait`, as synth sequence numbers.
    async fn video_seqs(player: &mut RtmpClient, wait: Duration) -> Vec<u64> {
        let mut seqs = Vec::new();
        let until = tokio::time::Instant::now() + wait;
        while let Ok(Ok(event)) = tokio::time::timeout_at(until, player.next_event()).await {
            if let ClientEvent::Media(raw) = event {
                if raw.type_id == type_id::VIDEO {
                    seqs.extend(synth::video_seq(&raw.payload));
                }
            }
        }
        seqs
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut player = RtmpClient::connect(&url("one"), &config)
            .await
            .expect("connect");
        let id = player.create_stream().await.expect("createStream");
        player.play(id, "one").await.expect("play");
        let mut publisher = RtmpClient::connect(&url("one"), &config)
            .await
            .expect("connect");
        let id = publisher.create_stream().await.expect("createStream");
        publisher.publish(id, "one").await.expect("publish");
        let mut synth = Synth::new(SynthConfig {
            stream_id: 0,
            ..SynthConfig::default()
        });
        let mut out = synth.headers();
        for _ in 0..50 {
            synth.next_tick(&mut out);
        }
        for m in &out {
            publisher.feed(m);
        }
        publisher.flush().await.expect("send");
        let seqs = video_seqs(&mut player, Duration::from_secs(2)).await;
        assert_eq!(
            seqs,
            (0..50).collect::<Vec<u64>>(),
            "stream-0 video a player got"
        );

        // Two publishing streams: stream 0 is nobody's.
        let mut player = RtmpClient::connect(&url("two-a"), &config)
            .await
            .expect("connect");
        let id = player.create_stream().await.expect("createStream");
        player.play(id, "two-a").await.expect("play");
        let mut publisher = RtmpClient::connect(&url("two-a"), &config)
            .await
            .expect("connect");
        for name in ["two-a", "two-b"] {
            let id = publisher.create_stream().await.expect("createStream");
            publisher.publish(id, name).await.expect("publish");
        }
        for m in &out {
            publisher.feed(m);
        }
        publisher.flush().await.expect("send");
        let seqs = video_seqs(&mut player, Duration::from_millis(700)).await;
        assert!(
            seqs.is_empty(),
            "stream-0 media went to one of two streams: {seqs:?}"
        );
    });
    let log = us.log();
    assert_eq!(
        log.matches("more than one stream is publishing").count(),
        1,
        "one warning for the refused stream-0 media:\n{}",
        us.log_tail(20)
    );
}
