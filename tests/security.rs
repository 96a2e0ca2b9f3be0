//! Attacks on authorization, on the publish race and on the log, against the real reflector
//! binary (issue 21, items 1 and 5).
//!
//! - Namespace: an app is the first segment of the path `connect app + "/" + stream name`
//!   (src/names.rs). Every way of writing `/`, `%2F`, `..`, `.`, `?`, `#`, `\` into the app,
//!   the stream name or a callback's `Location` is tried for publish and play against a keyed
//!   app; each attacker must get the exact refusal code and be closed, the protected stream's
//!   viewers must get only the owner's frames, and the owner keeps publishing. A real
//!   ffmpeg publisher and a real rtmpdump player split one 4-segment URL differently and must
//!   meet on one resource.
//! - Publish race: 30 publishers with one key at once, several rounds: one survivor, the one
//!   the admin API names, and a player gets its frames.
//! - Log injection: LF, CR and ESC in peer strings come out escaped on one line.
//!
//! Frames are the project's synthetic numbered media: the owner's sequence numbers start at
//! 0, every attacker's at [`ATTACKER`], so one attacker frame at a viewer is visible.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use futures_util::future::join_all;
use reflector::client::synth::{self, Synth, SynthConfig};
use reflector::client::{ClientConfig, ClientError, ClientEvent, RtmpClient, RtmpUrl};
use reflector::protocol::message::{type_id, SharedObjectEvent, SharedObjectMessage};

/// First sequence number of an attacker's frames.
const ATTACKER: u64 = 1_000_000;
const WAIT: Duration = Duration::from_secs(5);
const PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
const PLAY_FAILED: &str = "NetStream.Play.Failed";
const CONNECT_REJECTED: &str = "NetConnection.Connect.Rejected";

fn url(port: u16, app: &str, stream: &str) -> RtmpUrl {
    RtmpUrl {
        host: "127.0.0.1".into(),
        port,
        app: app.into(),
        stream: stream.into(),
        tls: false,
    }
}

fn config() -> ClientConfig {
    ClientConfig {
        timeout: WAIT,
        ..ClientConfig::default()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    Publish,
    Play,
}

/// What the server did with one attempt.
enum Outcome {
    Started(Box<RtmpClient>, u32),
    /// Refused with this code; for publish and play the connection was seen closed after.
    Refused(String),
}

fn code(e: ClientError, what: &str) -> String {
    match e {
        ClientError::Rejected { code, .. }
        | ClientError::Status { code, .. }
        | ClientError::CallFailed { code, .. } => code,
        other => panic!("{what}: no refusal code but {other}"),
    }
}

/// Connect to `app`, then publish or play `name`.
async fn attempt(port: u16, action: Action, app: &str, name: &str, cfg: &ClientConfig) -> Outcome {
    let what = format!("{action:?} {app:?} + {name:?}");
    let mut c = match RtmpClient::connect(&url(port, app, name), cfg).await {
        Ok(c) => c,
        Err(e) => return Outcome::Refused(code(e, &what)),
    };
    let sid = c.create_stream().await.expect("createStream");
    let result = match action {
        Action::Publish => c.publish(sid, name).await,
        Action::Play => c.play(sid, name).await,
    };
    match result {
        Ok(()) => Outcome::Started(Box::new(c), sid),
        Err(e) => {
            let code = code(e, &what);
            expect_closed(&mut c, &what).await;
            Outcome::Refused(code)
        }
    }
}

async fn expect_closed(c: &mut RtmpClient, what: &str) {
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(e) = c.next_event().await {
                return e.is_disconnect();
            }
        }
    })
    .await;
    assert_eq!(closed.ok(), Some(true), "{what}: the server must close");
}

/// A publisher sending numbered frames every 20 ms from `seq_base` until stopped.
struct Feed {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

fn feed(mut c: Box<RtmpClient>, stream_id: u32, seq_base: u64) -> Feed {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let task = tokio::spawn(async move {
        let mut synth = Synth::new(SynthConfig {
            stream_id,
            seq_base,
            gop: 10,
            ..SynthConfig::default()
        });
        for m in synth.headers() {
            c.feed(&m);
        }
        let mut out = Vec::new();
        while !s.load(Relaxed) {
            out.clear();
            synth.next_tick(&mut out);
            for m in &out {
                c.feed(m);
            }
            if c.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        synth.video_frames()
    });
    Feed { stop, task }
}

impl Feed {
    async fn finish(self) -> u64 {
        self.stop.store(true, Relaxed);
        self.task.await.expect("feed task")
    }
}

/// A player recording the sequence numbers of the video frames it gets, until stopped.
struct Watch {
    stop: Arc<AtomicBool>,
    seqs: Arc<Mutex<Vec<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

fn watch(mut c: Box<RtmpClient>) -> Watch {
    let stop = Arc::new(AtomicBool::new(false));
    let seqs = Arc::new(Mutex::new(Vec::new()));
    let (s, q) = (stop.clone(), seqs.clone());
    let task = tokio::spawn(async move {
        while !s.load(Relaxed) {
            match tokio::time::timeout(Duration::from_millis(100), c.next_event()).await {
                Ok(Ok(ClientEvent::Media(m))) if m.type_id == type_id::VIDEO => {
                    if let Some(seq) = synth::video_seq(&m.payload) {
                        q.lock().expect("lock").push(seq);
                    }
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(_)) => return,
            }
        }
    });
    Watch { stop, seqs, task }
}

impl Watch {
    fn count(&self) -> usize {
        self.seqs.lock().expect("lock").len()
    }

    /// Wait until it has `n` frames.
    async fn wait_for(&self, n: usize, what: &str) {
        let deadline = Instant::now() + WAIT;
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "{what}: {} of {n} frames",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> Vec<u64> {
        self.stop.store(true, Relaxed);
        let _ = self.task.await;
        let seqs = self.seqs.lock().expect("lock").clone();
        seqs
    }
}

async fn watcher(port: u16, app: &str, name: &str) -> Watch {
    match attempt(port, Action::Play, app, name, &config()).await {
        Outcome::Started(c, _) => watch(c),
        Outcome::Refused(code) => panic!("viewer {app:?} + {name:?} refused: {code}"),
    }
}

/// The tricks: separators and path segments written so that a server that decodes, resolves
/// or splits differently would see another app.
const TRICKS: [&str; 9] = ["/", "%2F", "%2f", "/../", "/./", "//", "?", "#", "\\"];

/// `app` + `x` + `cam` written every way [`TRICKS`] allows, in the app and in the name, plus
/// path escapes from a neighbour app.
fn attacks(app: &str, x: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for t in TRICKS {
        v.push((format!("{app}{t}{x}"), "cam".to_owned()));
        v.push((app.to_owned(), format!("{x}{t}cam")));
    }
    v.extend([
        (format!("other/../{app}"), format!("{x}/cam")),
        (format!("{app}/{x}/.."), format!("{x}/cam")),
        ("..".to_owned(), format!("{app}/{x}/cam")),
        ("other".to_owned(), format!("../{app}/{x}/cam")),
        ("other".to_owned(), format!("%2E%2E/{app}/{x}/cam")),
        (format!("other%2F..%2F{app}"), format!("{x}/cam")),
        (format!("{app}/"), format!("{x}/cam")),
        (app.to_owned(), format!("{x}/cam/")),
        (app.to_owned(), format!("/{x}/cam")),
        (app.to_owned(), format!("{x}/c%61m")),
        (app.to_owned(), format!("{x}/cam#frag")),
        (app.to_owned(), format!("{x}/cam\u{0}")),
        (app.to_owned(), format!("{x} /cam")),
    ]);
    v
}

/// The code the server must answer: the app is checked at `connect` (after its `?query`
/// and trailing `/` are dropped), the rest at publish/play.
fn expected(app: &str, failure: &'static str) -> &'static str {
    let app = app
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    let bad_char = app.contains(['%', '#', '\\']);
    let bad_segment = app
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..");
    if bad_char || bad_segment {
        CONNECT_REJECTED
    } else {
        failure
    }
}

/// Run every attack; an attacker that starts feeds (or watches) for a while so that the
/// viewers' check sees it too. Returns the mismatches.
async fn run_attacks(
    port: u16,
    action: Action,
    list: &[(String, String)],
    failure: &'static str,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (app, name) in list {
        let want = expected(app, failure);
        match attempt(port, action, app, name, &config()).await {
            Outcome::Refused(code) if code == want => {}
            Outcome::Refused(code) => wrong.push(format!(
                "{action:?} {app:?} + {name:?}: {code}, want {want}"
            )),
            Outcome::Started(c, sid) => {
                let got = match action {
                    Action::Publish => {
                        let f = feed(c, sid, ATTACKER);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        f.finish().await as usize
                    }
                    Action::Play => {
                        let w = watch(c);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        w.finish().await.len()
                    }
                };
                wrong.push(format!(
                    "{action:?} {app:?} + {name:?}: started ({got} frames), want {want}"
                ));
            }
        }
    }
    wrong
}

fn assert_owner_only(seqs: &[u64], min: usize, who: &str) {
    let foreign: Vec<u64> = seqs.iter().copied().filter(|&s| s >= ATTACKER).collect();
    assert!(foreign.is_empty(), "{who} got attacker frames {foreign:?}");
    assert!(
        seqs.len() >= min,
        "{who}: {} owner frames, want {min}",
        seqs.len()
    );
}

/// `[auth.apps.live] publish = "key"`: no split, encoding or path trick publishes into `live`
/// without the key, before or after the owner publishes.
#[tokio::test]
async fn keyless_publishers_cannot_enter_a_keyed_app() {
    let (server, _cfg) = common::reflector_with_config(
        "[auth.apps.live]\npublish = \"key\"\npublish_keys = [\"s3cret\"]\nplay = \"open\"\n",
    );
    let port = server.port();
    // Viewers through both splits of the path live/x/cam.
    let viewer_a = watcher(port, "live", "x/cam").await;
    let viewer_b = watcher(port, "live/x", "cam").await;
    let list = attacks("live", "x");
    let mut wrong = run_attacks(port, Action::Publish, &list, PUBLISH_BAD_NAME).await;
    // The owner, with librtmp's split; the attackers again while it publishes.
    let owner = match attempt(port, Action::Publish, "live/x", "cam?key=s3cret", &config()).await {
        Outcome::Started(c, sid) => feed(c, sid, 0),
        Outcome::Refused(code) => panic!("owner refused: {code}\n{}", server.log_tail(30)),
    };
    viewer_a.wait_for(10, "viewer live + x/cam").await;
    wrong.extend(run_attacks(port, Action::Publish, &list, PUBLISH_BAD_NAME).await);
    // A late viewer through ffmpeg's split gets the owner's stream too.
    let late = watcher(port, "live", "x/cam").await;
    late.wait_for(5, "late viewer").await;
    let sent = owner.finish().await;
    let (a, b, l) = (
        viewer_a.finish().await,
        viewer_b.finish().await,
        late.finish().await,
    );
    eprintln!(
        "keyed publish: {} attacks x2 refused; owner sent {sent} frames; viewers got {}, {}, {}",
        list.len(),
        a.len(),
        b.len(),
        l.len()
    );
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        server.log_tail(20)
    );
    assert_owner_only(&a, 10, "viewer live + x/cam");
    assert_owner_only(&b, 10, "viewer live/x + cam");
    assert_owner_only(&l, 5, "late viewer");
    let log = server.log();
    let owner_lines = log
        .lines()
        .filter(|l| l.contains(": publish connection=") && l.contains("stream=live/x/cam"))
        .count();
    assert_eq!(owner_lines, 1, "{}", server.log_tail(20));
}

/// `[auth.apps.priv] play = "key"`: no trick plays a stream of `priv` without the key; the
/// keyed player gets the owner's frames through either split.
#[tokio::test]
async fn keyless_players_cannot_enter_a_keyed_app() {
    let (server, _cfg) = common::reflector_with_config(
        "[auth.apps.priv]\npublish = \"open\"\nplay = \"key\"\nplay_keys = [\"v13w\"]\n",
    );
    let port = server.port();
    let owner = match attempt(port, Action::Publish, "priv", "sub/cam", &config()).await {
        Outcome::Started(c, sid) => feed(c, sid, 0),
        Outcome::Refused(code) => panic!("owner refused: {code}"),
    };
    let keyed = watcher(port, "priv/sub", "cam?key=v13w").await;
    keyed.wait_for(10, "keyed viewer").await;
    let list = attacks("priv", "sub");
    let wrong = run_attacks(port, Action::Play, &list, PLAY_FAILED).await;
    let keyed_late = watcher(port, "priv", "sub/cam?key=v13w").await;
    keyed_late.wait_for(5, "late keyed viewer").await;
    owner.finish().await;
    let (k, kl) = (keyed.finish().await, keyed_late.finish().await);
    eprintln!(
        "keyed play: {} attacks refused; keyed viewers got {} and {} frames",
        list.len(),
        k.len(),
        kl.len()
    );
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        server.log_tail(20)
    );
    assert_owner_only(&k, 10, "keyed viewer");
    assert_owner_only(&kl, 5, "late keyed viewer");
}

/// Defaults `key`, `[auth.apps.pub]` open: `pub/x` is not an app of its own but a path in
/// `pub` (open, one resource however it is split), and nothing written from `pub` reaches the
/// protected app `other`.
#[tokio::test]
async fn an_open_app_reaches_only_itself() {
    let (server, _cfg) = common::reflector_with_config(
        "[auth]\npublish = \"key\"\npublish_keys = [\"k\"]\nplay = \"open\"\n\n[auth.apps.pub]\npublish = \"open\"\nplay = \"open\"\n",
    );
    let port = server.port();
    let viewer = watcher(port, "other", "x/cam").await;
    let mut list = attacks("other", "x");
    list.extend([
        ("pub".to_owned(), "../other/x/cam".to_owned()),
        ("pub/..".to_owned(), "other/x/cam".to_owned()),
        ("pub/../other".to_owned(), "x/cam".to_owned()),
        ("pub%2F..%2Fother".to_owned(), "x/cam".to_owned()),
        ("pub".to_owned(), "%2E%2E/other/x/cam".to_owned()),
        ("pub".to_owned(), "..%2Fother%2Fx%2Fcam".to_owned()),
    ]);
    let mut wrong = run_attacks(port, Action::Publish, &list, PUBLISH_BAD_NAME).await;
    let owner = match attempt(port, Action::Publish, "other", "x/cam?key=k", &config()).await {
        Outcome::Started(c, sid) => feed(c, sid, 0),
        Outcome::Refused(code) => panic!("owner refused: {code}"),
    };
    viewer.wait_for(10, "viewer of other").await;
    wrong.extend(run_attacks(port, Action::Publish, &list, PUBLISH_BAD_NAME).await);
    // The open app: app pub/x + cam and app pub + x/cam are one resource, pub / x/cam.
    let open = match attempt(port, Action::Publish, "pub/x", "cam", &config()).await {
        Outcome::Started(c, sid) => feed(c, sid, ATTACKER),
        Outcome::Refused(code) => panic!("open app refused: {code}"),
    };
    let open_viewer = watcher(port, "pub", "x/cam").await;
    open_viewer.wait_for(5, "viewer of pub + x/cam").await;
    let stream = admin_stream(&server, "pub", "x/cam");
    assert!(stream["publisher"].is_object(), "{stream}");
    open.finish().await;
    owner.finish().await;
    let (v, o) = (viewer.finish().await, open_viewer.finish().await);
    eprintln!(
        "open app: {} attacks x2 refused; protected viewer {} frames; open viewer {} frames",
        list.len(),
        v.len(),
        o.len()
    );
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        server.log_tail(20)
    );
    assert_owner_only(&v, 10, "viewer of other");
    assert!(o.iter().all(|&s| s >= ATTACKER), "open viewer: {o:?}");
}

fn admin_json(server: &Server, path: &str) -> serde_json::Value {
    let url = format!("{}{path}", server.admin_url());
    let body = ureq::get(&url)
        .timeout(WAIT)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_string()
        .expect("body");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// The admin API's entry of exactly (app, name): found by the exact query filter (names are
/// never put in a path), panicking unless there is exactly one.
fn admin_stream(server: &Server, app: &str, name: &str) -> serde_json::Value {
    let enc = |v: &str| {
        v.replace('%', "%25")
            .replace('/', "%2F")
            .replace('&', "%26")
    };
    let list = admin_json(
        server,
        &format!("/api/v1/streams?app={}&name={}", enc(app), enc(name)),
    );
    let streams = list["streams"].as_array().cloned().unwrap_or_default();
    assert_eq!(streams.len(), 1, "{app} / {name}: {list}");
    streams.into_iter().next().unwrap_or_default()
}

/// An HTTP callback server: 200 for the names in `allow`, 302 with the mapped `Location` for
/// the names in `moves`, 403 otherwise. Names are matched form-encoded (`/` is `%2F`).
fn callback_server(
    allow: &'static [&'static str],
    moves: &'static [(&'static str, &'static str)],
) -> u16 {
    let server = common::CallbackServer::start(move |name| {
        if allow.contains(&name) {
            common::Reply::Allow
        } else if let Some((_, to)) = moves.iter().find(|(n, _)| *n == name) {
            common::Reply::Redirect((*to).to_owned())
        } else {
            common::Reply::Deny
        }
    });
    server.port()
}

/// Callback `Location` renames are names in the same app: `..`, `?`, `#`, `%`, empty
/// segments and URLs are refusals; a name with `/` stays in its app.
#[tokio::test]
async fn callback_redirects_stay_in_their_app() {
    const ALLOW: &[&str] = &["cam", "moved%2Fcam", "priv%2Fcam"];
    const MOVES: &[(&str, &str)] = &[
        ("r-up", "../priv/cam"),
        ("r-deep", "a/../../priv/cam"),
        ("r-dot", "./cam"),
        ("r-query", "cam?key=1"),
        ("r-hash", "cam#frag"),
        ("r-pct", "x%2Fcam"),
        ("r-pct-dot", "%2E%2E/priv/cam"),
        ("r-double", "a//cam"),
        ("r-url", "rtmp://evil.example/priv/cam"),
        ("r-backslash", "..\\priv\\cam"),
        ("r-abs", "/moved/cam"),
        ("r-app", "priv/cam"),
    ];
    let cb = callback_server(ALLOW, MOVES);
    let toml = format!(
        "[auth]\npublish = \"callback\"\nplay = \"callback\"\non_publish = \"http://127.0.0.1:{cb}/p\"\non_play = \"http://127.0.0.1:{cb}/p\"\ncallback_timeout_ms = 3000\n\n[auth.apps.priv]\npublish = \"key\"\npublish_keys = [\"k\"]\nplay = \"open\"\n",
    );
    let (server, _cfg) = common::reflector_with_config(&toml);
    let port = server.port();
    let owner = match attempt(port, Action::Publish, "priv", "cam?key=k", &config()).await {
        Outcome::Started(c, sid) => feed(c, sid, 0),
        Outcome::Refused(code) => panic!("owner refused: {code}"),
    };
    let viewer = watcher(port, "priv", "cam").await;
    let mut wrong = Vec::new();
    for (action, failure) in [
        (Action::Publish, PUBLISH_BAD_NAME),
        (Action::Play, PLAY_FAILED),
    ] {
        let refused: Vec<(String, String)> = MOVES
            .iter()
            .filter(|(n, _)| !matches!(*n, "r-abs" | "r-app"))
            .map(|(n, _)| ("live".to_owned(), (*n).to_owned()))
            .collect();
        wrong.extend(run_attacks(port, action, &refused, failure).await);
    }
    // Allowed renames land in app live: live / moved/cam and live / priv/cam.
    let mut feeds = Vec::new();
    for name in ["r-abs", "r-app"] {
        match attempt(port, Action::Publish, "live", name, &config()).await {
            Outcome::Started(c, sid) => feeds.push(feed(c, sid, ATTACKER)),
            Outcome::Refused(code) => wrong.push(format!("publish {name}: refused {code}")),
        }
    }
    let moved = watcher(port, "live/moved", "cam").await;
    moved.wait_for(5, "viewer of live / moved/cam").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(admin_stream(&server, "live", "priv/cam")["publisher"].is_object());
    for f in feeds {
        f.finish().await;
    }
    owner.finish().await;
    let (v, m) = (viewer.finish().await, moved.finish().await);
    eprintln!(
        "callback redirects: {} refused x2; owner viewer {} frames; moved viewer {} frames",
        MOVES.len() - 2,
        v.len(),
        m.len()
    );
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        server.log_tail(30)
    );
    assert_owner_only(&v, 10, "viewer of priv / cam");
    assert!(m.iter().all(|&s| s >= ATTACKER), "moved viewer: {m:?}");
    let log = server.log();
    let refusals = log
        .lines()
        .filter(|l| l.contains(": not authorized ") && l.contains("callback redirect to"))
        .count();
    assert_eq!(refusals, 2 * (MOVES.len() - 2), "{}", server.log_tail(30));
}

/// ffmpeg splits `rtmp://host/live/a/b/cam` as app `live/a` + `b/cam`, librtmp (rtmpdump) as
/// `live/a/b` + `cam`: both reach resource live / a/b/cam, and rtmpdump's recording is an
/// exact run of the clip ffmpeg publishes.
#[test]
fn ffmpeg_and_librtmp_splits_meet_on_one_resource() {
    skip_unless_have!("ffmpeg", "ffprobe", "rtmpdump");
    let server = Server::reflector(&["--workers", "2"]);
    let clip = common::shared_clip();
    let url = format!("rtmp://127.0.0.1:{}/live/a/b/cam", server.port());
    let mut publisher = common::publish(common::Publisher::Ffmpeg, clip, &url, server.dir());
    std::thread::sleep(Duration::from_millis(1500));
    let rec = common::play(
        common::Player::Rtmpdump,
        &url,
        server.dir(),
        Duration::from_secs(4),
    )
    .finish();
    let verdict = common::verify_recording(&rec, clip);
    eprintln!("ffmpeg-publish -> rtmpdump-play over live/a/b/cam: {verdict}");
    verdict.assert_ok_with_at_least(50);
    let log = server.log();
    let count = |what: &str| {
        log.lines()
            .filter(|l| l.contains(what) && l.contains("stream=live/a/b/cam"))
            .count()
    };
    assert_eq!(
        (count(": publish connection="), count(": play connection=")),
        (1, 1),
        "{}",
        server.log_tail(30)
    );
    // The two clients did split the URL differently.
    assert!(
        log.contains("app=live/a ") && log.contains("app=live/a/b "),
        "{}",
        server.log_tail(30)
    );
    publisher.wait_success(Duration::from_secs(20));
}

/// 30 publishers with one key publish one name at once, 6 rounds: exactly one is left
/// connected, the admin API names it as the publisher, and a player gets its frames.
#[tokio::test]
async fn concurrent_publishers_leave_exactly_one() {
    const N: usize = 30;
    const ROUNDS: usize = 6;
    let server = Server::reflector(&["--workers", "2"]);
    let port = server.port();
    for round in 0..ROUNDS {
        let name = format!("race{round}");
        let mut clients = Vec::new();
        for i in 0..N {
            let cfg = ClientConfig {
                flash_ver: format!("race-{i}"),
                ..config()
            };
            let target = url(port, "live", &format!("{name}?key=same"));
            let mut c = RtmpClient::connect(&target, &cfg).await.expect("connect");
            let sid = c.create_stream().await.expect("createStream");
            clients.push((c, sid));
        }
        let stream = format!("{name}?key=same");
        let results = join_all(clients.into_iter().map(|(mut c, sid)| {
            let stream = stream.clone();
            async move {
                let r = c.publish(sid, &stream).await;
                (c, sid, r)
            }
        }))
        .await;
        // Every publisher feeds until the server closes it (a takeover closes the old one).
        let mut racers = Vec::new();
        let mut started = 0;
        for (i, (c, sid, r)) in results.into_iter().enumerate() {
            if r.is_ok() {
                started += 1;
            }
            let (mut reader, writer) = c.into_split();
            let alive = Arc::new(AtomicBool::new(true));
            let a = alive.clone();
            tokio::spawn(async move {
                while reader.next_event().await.is_ok() {}
                a.store(false, Relaxed);
            });
            let a = alive.clone();
            let task = tokio::spawn(async move {
                let mut synth = Synth::new(SynthConfig {
                    stream_id: sid,
                    seq_base: (i as u64 + 1) * 100_000,
                    gop: 5,
                    ..SynthConfig::default()
                });
                let _ = writer.send_all(&synth.headers()).await;
                let mut out = Vec::new();
                while a.load(Relaxed) {
                    out.clear();
                    synth.next_tick(&mut out);
                    if writer.send_all(&out).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                let _ = writer.shutdown().await;
            });
            racers.push((alive, task));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let alive: Vec<usize> = racers
            .iter()
            .enumerate()
            .filter(|(_, (a, _))| a.load(Relaxed))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            alive.len(),
            1,
            "round {round}: {started} started, alive {alive:?}"
        );
        let survivor = alive[0];
        let json = admin_stream(&server, "live", &name);
        assert_eq!(
            json["publisher"]["client"],
            format!("race-{survivor}"),
            "round {round}: admin {json}"
        );
        let player = watcher(port, "live", &name).await;
        player.wait_for(5, &format!("round {round} player")).await;
        let seqs = player.finish().await;
        let base = (survivor as u64 + 1) * 100_000;
        assert!(
            seqs.iter().all(|&s| (base..base + 100_000).contains(&s)),
            "round {round}: survivor {survivor}, player got {seqs:?}"
        );
        eprintln!(
            "round {round}: {started}/{N} got Publish.Start, survivor race-{survivor}, player {} frames",
            seqs.len()
        );
        for (alive, task) in racers {
            alive.store(false, Relaxed);
            let _ = task.await;
        }
    }
}

/// LF, CR and ESC in a shared object name, a flashVer and a stream name cannot forge or
/// colour log lines: each is logged once, escaped.
#[tokio::test]
async fn peer_strings_cannot_forge_log_lines() {
    let server = Server::reflector(&["--workers", "2"]);
    let port = server.port();
    let evil = "evil\nFORGED INFO reflector: fake\r\u{1b}[31mred";
    let cfg = ClientConfig {
        flash_ver: format!("flash-{evil}"),
        ..config()
    };
    let mut c = RtmpClient::connect(&url(port, "live", "x"), &cfg)
        .await
        .expect("connect");
    c.send_shared_object(
        false,
        &SharedObjectMessage {
            name: format!("so-{evil}"),
            version: 0,
            persistent: false,
            events: vec![SharedObjectEvent::Connect],
        },
    )
    .await
    .expect("send");
    let sid = c.create_stream().await.expect("createStream");
    match c.publish(sid, &format!("name-{evil}")).await {
        Err(e) => assert_eq!(code(e, "bad name"), PUBLISH_BAD_NAME),
        Ok(()) => panic!("a name with control characters was published"),
    }
    let escaped = "evil\\nFORGED INFO reflector: fake\\r\\u{1b}[31mred";
    let deadline = Instant::now() + WAIT;
    let log = loop {
        let log = server.log();
        let done = log.contains("connection closed") && log.contains("shared object use refused");
        if done || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let one = |needle: &str| {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
        assert_eq!(lines.len(), 1, "{needle}: {lines:?}\n{log}");
        lines[0].to_owned()
    };
    let so = one("shared object use refused");
    assert!(so.contains(&format!("so-{escaped}")), "{so}");
    let connect = one(&format!("flash-{escaped}"));
    assert!(connect.contains("connect"), "{connect}");
    assert!(!log.contains('\r') && !log.contains('\u{1b}'), "{log:?}");
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a forged line: {log}"
    );
    // Once in the connect line (flashVer), once in the refusal (object name).
    assert_eq!(log.matches("FORGED").count(), 2, "{log}");
}
