//! Control at run time (issue #19): publish keys and bans through the admin API, kept in
//! `auth.keys_file` across a restart and a SIGHUP; the `server.apps` allow-list; and
//! `live.play_wait_ms`. Real clients (ffmpeg publishing and playing, frame-exact) where a user
//! would use them, the crate's RTMP client where exact status codes are asserted.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    play, publish, reflector_with_config, shared_clip, verify_recording, Player, Publisher, Server,
};
use reflector::client::synth::{self, Synth, SynthConfig};
use reflector::client::{ClientConfig, ClientError, ClientEvent, RtmpClient, RtmpUrl};
use reflector::protocol::message::type_id;
use serde_json::{json, Value};

const TOKEN: &str = "t0ken-for-tests";
const WAIT: Duration = Duration::from_secs(5);
const CONNECT_REJECTED: &str = "NetConnection.Connect.Rejected";
const PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
const PLAY_FAILED: &str = "NetStream.Play.Failed";
const STREAM_NOT_FOUND: &str = "NetStream.Play.StreamNotFound";

/// `(status, JSON body)` of an admin request; bodies are sent as JSON, as the port requires.
fn api(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", server.admin_url());
    let mut req = ureq::request(method, &url).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let sent = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None if method == "GET" => req.call(),
        None => req.set("Content-Type", "application/json").send_string(""),
    };
    let (status, text) = match sent {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

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

/// The code and description of a refusal.
fn refusal(e: ClientError) -> (String, String) {
    match e {
        ClientError::Rejected { code, description }
        | ClientError::Status { code, description }
        | ClientError::CallFailed {
            code, description, ..
        } => (code, description),
        other => panic!("no refusal code but {other}"),
    }
}

/// A connect to `app` that must be refused: its error.
async fn connect_refused(port: u16, app: &str) -> ClientError {
    match RtmpClient::connect(&url(port, app, "x"), &config()).await {
        Ok(_) => panic!("connect to {app:?} was accepted"),
        Err(e) => e,
    }
}

/// Connect to `app` and publish `name`: the client, or the refusal's code and description.
async fn try_publish(
    port: u16,
    app: &str,
    name: &str,
) -> Result<(RtmpClient, u32), (String, String)> {
    let mut c = RtmpClient::connect(&url(port, app, name), &config())
        .await
        .map_err(refusal)?;
    let sid = c.create_stream().await.expect("createStream");
    c.publish(sid, name).await.map_err(refusal)?;
    Ok((c, sid))
}

async fn publish_ok(port: u16, app: &str, name: &str) -> (RtmpClient, u32) {
    try_publish(port, app, name)
        .await
        .unwrap_or_else(|(code, d)| panic!("publish {app}/{name} refused: {code}: {d}"))
}

async fn publish_refused(port: u16, app: &str, name: &str) -> (String, String) {
    match try_publish(port, app, name).await {
        Ok(_) => panic!("publish {app}/{name} was accepted"),
        Err(r) => r,
    }
}

/// A synthetic publisher sending numbered frames every 20 ms until stopped.
struct Feed {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

fn feed(mut c: RtmpClient, stream_id: u32) -> Feed {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let task = tokio::spawn(async move {
        let mut synth = Synth::new(SynthConfig {
            stream_id,
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
    });
    Feed { stop, task }
}

impl Feed {
    async fn finish(self) {
        self.stop.store(true, Relaxed);
        let _ = self.task.await;
    }
}

/// What a player saw: video messages (synthetic ones by number) and statuses, until stopped.
struct Watch {
    stop: Arc<AtomicBool>,
    seqs: Arc<Mutex<Vec<u64>>>,
    statuses: Arc<Mutex<Vec<(String, String, Instant)>>>,
    task: tokio::task::JoinHandle<RtmpClient>,
}

fn watch(mut c: RtmpClient) -> Watch {
    let stop = Arc::new(AtomicBool::new(false));
    let seqs = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let (s, q, st) = (stop.clone(), seqs.clone(), statuses.clone());
    let task = tokio::spawn(async move {
        while !s.load(Relaxed) {
            match tokio::time::timeout(Duration::from_millis(50), c.next_event()).await {
                Ok(Ok(ClientEvent::Media(m))) if m.type_id == type_id::VIDEO => {
                    // Synthetic frames carry their number; a real encoder's count as 0.
                    let seq = synth::video_seq(&m.payload).unwrap_or(0);
                    q.lock().expect("lock").push(seq);
                }
                Ok(Ok(ClientEvent::Status(status))) => {
                    st.lock()
                        .expect("lock")
                        .push((status.level, status.code, Instant::now()));
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(_)) => break,
            }
        }
        c
    });
    Watch {
        stop,
        seqs,
        statuses,
        task,
    }
}

impl Watch {
    fn frames(&self) -> usize {
        self.seqs.lock().expect("lock").len()
    }

    fn status(&self, code: &str) -> Option<(String, Instant)> {
        self.statuses
            .lock()
            .expect("lock")
            .iter()
            .find(|(_, c, _)| c == code)
            .map(|(l, _, at)| (l.clone(), *at))
    }

    async fn finish(self) -> RtmpClient {
        self.stop.store(true, Relaxed);
        self.task.await.expect("watch task")
    }
}

async fn player(port: u16, app: &str, name: &str) -> (Watch, Instant) {
    let mut c = RtmpClient::connect(&url(port, app, name), &config())
        .await
        .expect("connect");
    let sid = c.create_stream().await.expect("createStream");
    let started = Instant::now();
    c.play(sid, name).await.expect("play");
    (watch(c), started)
}

/// The id of stream `app/name` in the admin API once it has a publisher.
async fn live_stream_id(server: &Server, token: Option<&str>, app: &str, name: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = api(
            server,
            "GET",
            &format!("/api/v1/streams?app={app}&name={name}"),
            token,
            None,
        );
        let live = list["streams"].as_array().and_then(|l| {
            l.iter()
                .find(|s| {
                    s["publisher"].is_object()
                        || s["publisher_connection"].as_u64().is_some_and(|c| c > 0)
                })
                .and_then(|s| s["id"].as_u64())
        });
        if let Some(id) = live {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "{app}/{name} never went live: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config_with(dir: &Path, extra: &str) -> String {
    format!(
        "[admin]\ntoken = \"{TOKEN}\"\n[auth]\nkeys_file = \"{}\"\n{extra}",
        dir.join("state/control.json").display()
    )
}

fn sighup(server: &Server) {
    let st = Command::new("kill")
        .args(["-s", "HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

#[tokio::test]
async fn api_keys_publish_revoke_and_survive_restart_and_sighup() {
    skip_unless_have!("ffmpeg", "ffprobe");
    let state = tempfile::tempdir().expect("dir");
    let toml = config_with(
        state.path(),
        "publish = \"key\"\npublish_keys = [\"cfgkey\"]\n",
    );
    let (server, cfg) = reflector_with_config(&toml);
    let port = server.port();
    // Without the token: refused, nothing listed.
    assert_eq!(api(&server, "GET", "/api/v1/keys", None, None).0, 401);
    let add = json!({"app": "live", "action": "publish", "key": "apikey1", "note": "cam 1"});
    assert_eq!(
        api(&server, "POST", "/api/v1/keys", None, Some(add.clone())).0,
        401
    );
    let (status, body) = api(
        &server,
        "POST",
        "/api/v1/keys",
        Some(TOKEN),
        Some(add.clone()),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        api(
            &server,
            "POST",
            "/api/v1/keys",
            Some(TOKEN),
            Some(add.clone())
        )
        .0,
        200
    );
    for bad in [
        json!({"app": "live", "action": "publish", "key": "a b"}),
        json!({"app": "live/x", "action": "publish", "key": "k"}),
        json!({"app": "live", "action": "record", "key": "k"}),
        json!({"app": "live"}),
    ] {
        let (status, body) = api(
            &server,
            "POST",
            "/api/v1/keys",
            Some(TOKEN),
            Some(bad.clone()),
        );
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, list) = api(&server, "GET", "/api/v1/keys", Some(TOKEN), None);
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["keys"][0]["key"], "apikey1");
    // A generated key.
    let (status, gen) = api(
        &server,
        "POST",
        "/api/v1/keys",
        Some(TOKEN),
        Some(json!({"app": "live", "action": "publish"})),
    );
    assert_eq!(status, 201);
    let generated = gen["key"]["key"]
        .as_str()
        .expect("generated key")
        .to_owned();
    assert_eq!(generated.len(), 32);

    // ffmpeg publishes with the API key; ffmpeg plays it frame-exact.
    let clip = shared_clip();
    let mut ffmpeg = publish(
        Publisher::Ffmpeg,
        clip,
        &server.rtmp_url("live", "cam?key=apikey1"),
        server.dir(),
    );
    let id = live_stream_id(&server, Some(TOKEN), "live", "cam").await;
    let rec = play(
        Player::Ffmpeg,
        &server.rtmp_url("live", "cam"),
        server.dir(),
        Duration::from_secs(3),
    );
    // The wrong key and no key are refused; the generated one is taken.
    let (code, _) = publish_refused(port, "live", "x?key=nope").await;
    assert_eq!(code, PUBLISH_BAD_NAME);
    let (c, _) = publish_ok(port, "live", &format!("gen?key={generated}")).await;
    drop(c);
    // Revoked: the next publish with it is refused; the running publisher goes on.
    let revoke = json!({"app": "live", "action": "publish", "key": "apikey1"});
    assert_eq!(
        api(
            &server,
            "DELETE",
            "/api/v1/keys",
            Some(TOKEN),
            Some(revoke.clone())
        )
        .0,
        200
    );
    assert_eq!(
        api(&server, "DELETE", "/api/v1/keys", Some(TOKEN), Some(revoke)).0,
        404
    );
    let (code, description) = publish_refused(port, "live", "other?key=apikey1").await;
    assert_eq!(code, PUBLISH_BAD_NAME, "{description}");
    assert!(description.contains("wrong stream key"), "{description}");
    let recording = rec.finish();
    // Asked before the slow verification, while the 8 s clip is surely still being sent
    // (the stream's entry goes with it).
    assert!(
        ffmpeg.try_wait().is_none(),
        "a revoked key does not cut the running publisher"
    );
    let (_, detail) = api(
        &server,
        "GET",
        &format!("/api/v1/streams/{id}"),
        Some(TOKEN),
        None,
    );
    assert!(detail.to_string().contains("cam"), "{detail}");
    let verdict = verify_recording(&recording, clip);
    verdict.assert_ok_with_at_least(40);
    eprintln!(
        "API-key publish, ffmpeg player: {} frames frame-exact",
        verdict.frame_count
    );
    drop(ffmpeg);
    assert_eq!(
        api(
            &server,
            "POST",
            "/api/v1/keys",
            Some(TOKEN),
            Some(json!({"app": "live", "action": "publish", "key": "apikey2"}))
        )
        .0,
        201
    );
    // The file holds the keys, privately.
    let file = state.path().join("state/control.json");
    let text = std::fs::read_to_string(&file).expect("keys file");
    assert!(
        text.contains("apikey2") && !text.contains("apikey1"),
        "{text}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A restart with the same configuration: the API keys are back, the revoked one is not.
    drop(server);
    let server = Server::reflector(&[
        "--workers",
        "2",
        "--config",
        &cfg.path().display().to_string(),
    ]);
    let port = server.port();
    let (_, list) = api(&server, "GET", "/api/v1/keys", Some(TOKEN), None);
    assert_eq!(list["count"], 2, "{list}");
    let (c, _) = publish_ok(port, "live", "a?key=apikey2").await;
    drop(c);
    assert_eq!(
        publish_refused(port, "live", "b?key=apikey1").await.0,
        PUBLISH_BAD_NAME
    );

    // SIGHUP (configuration changed or not): file keys and configured keys both still count.
    std::fs::write(cfg.path(), format!("{toml}play_keys = [\"p\"]\n")).expect("rewrite config");
    sighup(&server);
    let deadline = Instant::now() + WAIT;
    while !server
        .plain_log()
        .contains("reload: run-time keys and bans read again")
    {
        assert!(
            Instant::now() < deadline,
            "no reload logged:\n{}",
            server.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for key in ["apikey2", "cfgkey", &generated] {
        let (c, _) = publish_ok(port, "live", &format!("after-hup-{key}?key={key}")).await;
        drop(c);
    }
    assert_eq!(
        publish_refused(port, "live", "c?key=apikey1").await.0,
        PUBLISH_BAD_NAME
    );
}

#[test]
fn key_and_ban_routes_need_a_configured_token() {
    // No admin.token: loopback answers, but never with keys or bans.
    let (server, _cfg) = reflector_with_config("[auth]\nkeys_file = \"\"\n");
    for (method, path, body) in [
        ("GET", "/api/v1/keys", None),
        (
            "POST",
            "/api/v1/keys",
            Some(json!({"app": "live", "action": "publish", "key": "k"})),
        ),
        (
            "DELETE",
            "/api/v1/keys",
            Some(json!({"app": "live", "action": "publish", "key": "k"})),
        ),
        ("GET", "/api/v1/bans", None),
        ("POST", "/api/v1/bans", Some(json!({"ip": "10.0.0.1"}))),
        ("DELETE", "/api/v1/bans/1", None),
    ] {
        let (status, body) = api(&server, method, path, None, body);
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("admin.token")),
            "{body}"
        );
    }
    assert!(
        server.plain_log().contains("kept in memory only"),
        "{}",
        server.log_tail(20)
    );
}

#[tokio::test]
async fn banned_address_is_refused_at_connect_until_expiry_or_lift() {
    let state = tempfile::tempdir().expect("dir");
    let (server, _cfg) = reflector_with_config(&config_with(
        state.path(),
        "banned_ips = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n",
    ));
    let port = server.port();
    // Bans of other blocks (IPv4 and IPv6) leave 127.0.0.1 alone.
    for ip in ["10.0.0.0/8", "::/0", "::1"] {
        let (status, body) = api(
            &server,
            "POST",
            "/api/v1/bans",
            Some(TOKEN),
            Some(json!({"ip": ip})),
        );
        assert_eq!(status, 201, "{ip}: {body}");
    }
    drop(publish_ok(port, "live", "free").await);
    for bad in [
        json!({"ip": "10.0.0.0/33"}),
        json!({"ip": "nope"}),
        json!({"ip": "10.0.0.1", "key": "k"}),
        json!({"ip": "10.0.0.1", "duration_s": -1}),
        json!({"ip": "10.0.0.1", "duration_s": 1, "expires_at": 2000000000}),
        json!({"stream": "no-slash"}),
    ] {
        let (status, body) = api(
            &server,
            "POST",
            "/api/v1/bans",
            Some(TOKEN),
            Some(bad.clone()),
        );
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, ban) = api(
        &server,
        "POST",
        "/api/v1/bans",
        Some(TOKEN),
        Some(json!({"ip": "127.0.0.1/32", "duration_s": 2, "reason": "test"})),
    );
    assert_eq!(status, 201, "{ban}");
    let banned_at = Instant::now();
    let err = connect_refused(port, "live").await;
    let (code, description) = refusal(err);
    assert_eq!(code, CONNECT_REJECTED);
    assert!(
        description.contains("127.0.0.1/32 is banned"),
        "{description}"
    );
    let log = server.plain_log();
    assert!(
        log.lines()
            .any(|l| l.contains("connect refused: banned") && l.contains("connection=")),
        "{log}"
    );
    let (_, list) = api(&server, "GET", "/api/v1/bans", Some(TOKEN), None);
    assert_eq!(list["count"], 4, "{list}");
    // Refused until the expiry, accepted after it.
    let mut refused = 1;
    while let Err(e) = RtmpClient::connect(&url(port, "live", "x"), &config()).await {
        assert_eq!(refusal(e).0, CONNECT_REJECTED);
        refused += 1;
        assert!(
            banned_at.elapsed() < Duration::from_secs(4),
            "still banned after 4 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lifted_after = banned_at.elapsed();
    eprintln!("2 s ban: {refused} connects refused, accepted after {lifted_after:?}");
    assert!(
        lifted_after >= Duration::from_millis(1800),
        "{lifted_after:?}"
    );
    let (_, list) = api(&server, "GET", "/api/v1/bans", Some(TOKEN), None);
    assert_eq!(list["count"], 3, "expired ban still listed: {list}");
    // Until lifted: refused, then lifted through the API.
    let (_, ban) = api(
        &server,
        "POST",
        "/api/v1/bans",
        Some(TOKEN),
        Some(json!({"ip": "127.0.0.0/8"})),
    );
    let id = ban["ban"]["id"].as_u64().expect("id");
    assert!(ban["ban"]["expires_at_ms"].is_null(), "{ban}");
    assert!(RtmpClient::connect(&url(port, "live", "x"), &config())
        .await
        .is_err());
    assert_eq!(
        api(
            &server,
            "DELETE",
            &format!("/api/v1/bans/{id}"),
            Some(TOKEN),
            None
        )
        .0,
        200
    );
    assert_eq!(
        api(
            &server,
            "DELETE",
            &format!("/api/v1/bans/{id}"),
            Some(TOKEN),
            None
        )
        .0,
        404
    );
    drop(publish_ok(port, "live", "free-again").await);

    // A configured ban (auth.banned_ips) holds for good.
    let (server, _cfg) =
        reflector_with_config("[auth]\nkeys_file = \"\"\nbanned_ips = [\"127.0.0.0/8\"]\n");
    let err = connect_refused(server.port(), "live").await;
    let (code, description) = refusal(err);
    assert_eq!(code, CONNECT_REJECTED);
    assert!(description.contains("auth.banned_ips"), "{description}");
}

#[tokio::test]
async fn kicked_publisher_with_a_ban_comes_back_only_after_expiry() {
    skip_unless_have!("ffmpeg", "ffprobe");
    let state = tempfile::tempdir().expect("dir");
    let (server, _cfg) = reflector_with_config(&config_with(state.path(), ""));
    let port = server.port();
    let clip = shared_clip();
    // ffmpeg publishes without a key: the ban is on the stream.
    let mut first = publish(
        Publisher::Ffmpeg,
        clip,
        &server.rtmp_url("live", "kick"),
        server.dir(),
    );
    let id = live_stream_id(&server, Some(TOKEN), "live", "kick").await;
    let (status, body) = api(
        &server,
        "POST",
        &format!("/api/v1/streams/{id}/stop"),
        Some(TOKEN),
        // Long enough for the refused publishes below to start and be refused within it,
        // however slowly ffmpeg starts on a busy machine.
        Some(json!({"ban_s": 5})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ban"]["stream"], "live/kick", "{body}");
    let banned_at = Instant::now();
    assert!(
        first.wait_timeout(WAIT).is_some(),
        "the stopped ffmpeg did not exit"
    );
    // The encoder reconnecting is refused with the ban's reason; another stream is not.
    let (code, description) = publish_refused(port, "live", "kick").await;
    assert_eq!(code, PUBLISH_BAD_NAME);
    assert!(description.contains("is banned"), "{description}");
    let mut again = publish(
        Publisher::Ffmpeg,
        clip,
        &server.rtmp_url("live", "kick"),
        server.dir(),
    );
    let status = again
        .wait_timeout(WAIT)
        .expect("a banned ffmpeg must give up");
    assert!(!status.success());
    drop(publish_ok(port, "live", "other").await);
    // Players of the banned stream are not refused.
    let (w, _) = player(port, "live", "kick").await;
    // After the expiry the encoder is back, and the waiting player gets its frames.
    while banned_at.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut back = publish(
        Publisher::Ffmpeg,
        clip,
        &server.rtmp_url("live", "kick"),
        server.dir(),
    );
    live_stream_id(&server, Some(TOKEN), "live", "kick").await;
    let deadline = Instant::now() + WAIT;
    while w.frames() < 25 {
        assert!(
            Instant::now() < deadline,
            "player got {} frames after the ban",
            w.frames()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back.try_wait().is_none(), "{}", back.log_tail(10));
    drop(w.finish().await);
    drop(back);

    // With a key: banned by the key, on any stream; without the key, the stream is free.
    let (c, sid) = publish_ok(port, "live", "keyed?key=enc-7").await;
    let f = feed(c, sid);
    let id = live_stream_id(&server, Some(TOKEN), "live", "keyed").await;
    let (status, body) = api(
        &server,
        "POST",
        &format!("/api/v1/streams/{id}/stop"),
        Some(TOKEN),
        Some(json!({"ban_s": 30, "reason": "wrong feed"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ban"]["key"], "enc-7", "{body}");
    f.finish().await;
    let (code, description) = publish_refused(port, "live", "elsewhere?key=enc-7").await;
    assert_eq!(code, PUBLISH_BAD_NAME);
    assert!(description.contains("wrong feed"), "{description}");
    let mut c = RtmpClient::connect(&url(port, "live", "p"), &config())
        .await
        .expect("connect");
    let sid = c.create_stream().await.expect("createStream");
    let (code, _) = refusal(
        c.play(sid, "keyed?key=enc-7")
            .await
            .expect_err("banned key plays"),
    );
    assert_eq!(code, PLAY_FAILED);
    drop(publish_ok(port, "live", "keyed").await);
    // By address: every publisher from it is refused at connect.
    let (c, sid) = publish_ok(port, "live", "byip").await;
    let f = feed(c, sid);
    let id = live_stream_id(&server, Some(TOKEN), "live", "byip").await;
    let (status, body) = api(
        &server,
        "POST",
        &format!("/api/v1/streams/{id}/stop"),
        Some(TOKEN),
        Some(json!({"ban_s": 30, "ban": "ip"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ban"]["ip"], "127.0.0.1/32", "{body}");
    f.finish().await;
    assert_eq!(
        publish_refused(port, "live", "byip").await.0,
        CONNECT_REJECTED
    );
    let log = server.plain_log();
    assert!(log.contains("refused: banned"), "{log}");
}

#[tokio::test]
async fn apps_allow_list_refuses_a_typo_with_a_clear_message() {
    skip_unless_have!("ffmpeg");
    let (server, _cfg) = reflector_with_config(
        "[server]\napps = [\"live\", \"studio\"]\n[auth]\nkeys_file = \"\"\n",
    );
    let port = server.port();
    let err = connect_refused(port, "typo").await;
    let (code, description) = refusal(err);
    assert_eq!(code, CONNECT_REJECTED);
    assert!(
        description.contains("\"typo\" is not configured"),
        "{description}"
    );
    // Listed apps, including a two-segment connect app whose first segment is listed.
    drop(publish_ok(port, "live", "a").await);
    drop(publish_ok(port, "studio/room", "b").await);
    // A real encoder with a typo gives up instead of publishing a stream nobody watches.
    let mut ffmpeg = publish(
        Publisher::Ffmpeg,
        shared_clip(),
        &server.rtmp_url("typo", "x"),
        server.dir(),
    );
    let status = ffmpeg.wait_timeout(WAIT).expect("ffmpeg must give up");
    assert!(!status.success());
    let log = server.plain_log();
    let lines = log
        .lines()
        .filter(|l| l.contains("connect refused: app not configured") && l.contains("app=typo"))
        .count();
    assert_eq!(lines, 2, "{log}");
    let (_, streams) = api(&server, "GET", "/api/v1/streams?app=typo", None, None);
    assert_eq!(
        streams["streams"].as_array().map(Vec::len),
        Some(0),
        "{streams}"
    );
}

#[tokio::test]
async fn play_wait_ends_a_play_nobody_publishes() {
    skip_unless_have!("ffmpeg");
    let (server, _cfg) =
        reflector_with_config("[live]\nplay_wait_ms = 500\n[auth]\nkeys_file = \"\"\n");
    let port = server.port();
    // Nobody publishes: StreamNotFound (level error) after about 500 ms; the connection
    // stays and can play again.
    let (w, started) = player(port, "live", "nobody").await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let (level, at) = loop {
        if let Some(s) = w.status(STREAM_NOT_FOUND) {
            break s;
        }
        assert!(Instant::now() < deadline, "no StreamNotFound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let after = at - started;
    eprintln!("play_wait_ms=500: StreamNotFound after {after:?}");
    assert_eq!(level, "error");
    assert!(
        after >= Duration::from_millis(450) && after < Duration::from_secs(2),
        "{after:?}"
    );
    let mut c = w.finish().await;
    let sid = c
        .create_stream()
        .await
        .expect("the connection stays for another play");
    // Late joiner of a live stream: plays on past the wait.
    let (p, psid) = publish_ok(port, "live", "on").await;
    let f = feed(p, psid);
    c.play(sid, "on").await.expect("play a live stream");
    let w = watch(c);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(w.status(STREAM_NOT_FOUND).is_none());
    let frames = w.frames();
    assert!(frames >= 30, "late joiner got {frames} frames in 1.2 s");
    drop(w.finish().await);
    // The publisher left: a player joining now is told after the wait.
    f.finish().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (w, _) = player(port, "live", "on").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        w.status(STREAM_NOT_FOUND).map(|s| s.0),
        Some("error".into())
    );
    drop(w.finish().await);
    // ffmpeg as the player gives up by itself.
    let t = Instant::now();
    let mut rec = play(
        Player::Ffmpeg,
        &server.rtmp_url("live", "nobody2"),
        server.dir(),
        Duration::from_secs(2),
    );
    let status = rec
        .proc_mut()
        .wait_timeout(Duration::from_secs(5))
        .expect("ffmpeg must give up");
    assert!(!status.success());
    eprintln!("ffmpeg player gave up after {:?}", t.elapsed());
    assert!(server.plain_log().contains("play ended: stream not found"));
}

#[tokio::test]
async fn by_default_a_player_waits_for_its_publisher() {
    skip_unless_have!("ffmpeg", "ffprobe");
    let (server, _cfg) = reflector_with_config("[auth]\nkeys_file = \"\"\n");
    let clip = shared_clip();
    let rec = play(
        Player::Ffmpeg,
        &server.rtmp_url("live", "later"),
        server.dir(),
        Duration::from_secs(3),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _publisher = publish(
        Publisher::Ffmpeg,
        clip,
        &server.rtmp_url("live", "later"),
        server.dir(),
    );
    let verdict = verify_recording(&rec.finish(), clip);
    verdict.assert_ok_with_at_least(40);
    eprintln!(
        "player waited 2 s, then {} frames frame-exact",
        verdict.frame_count
    );
    assert!(!server.plain_log().contains("stream not found"));
}

/// `--print-config` (or start-up) with `toml`, the error text when it fails.
fn config_error(toml: &str, env: &[(&str, &str)]) -> String {
    let file = common::config_file(toml);
    let out = Command::new(env!("CARGO_BIN_EXE_reflector"))
        .args([
            "--config",
            &file.path().display().to_string(),
            "--print-config",
        ])
        .envs(env.iter().copied())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return format!("OK\n{}", String::from_utf8_lossy(&out.stdout));
    }
    stderr
}

#[test]
fn new_keys_are_validated_naming_key_and_file() {
    for (toml, key, hint) in [
        (
            "[auth]\nbanned_ips = [\"10.0.0.0/33\"]\n",
            "auth.banned_ips",
            "prefix length",
        ),
        (
            "[auth]\nbanned_ips = [\"example.com\"]\n",
            "auth.banned_ips",
            "not an IP address",
        ),
        (
            "[auth]\nbanned_ips = [\"::1/200\"]\n",
            "auth.banned_ips",
            "0..=128",
        ),
        (
            "[server]\napps = [\"live/x\"]\n",
            "server.apps",
            "one path segment",
        ),
        (
            "[server]\napps = [\"live\", \"live\"]\n",
            "server.apps",
            "twice",
        ),
        ("[server]\napps = [\"\"]\n", "server.apps", "empty"),
        (
            "[live]\nplay_wait_ms = 99999999\n",
            "live.play_wait_ms",
            "0..=3600000",
        ),
        (
            "[auth]\nkeys_file = \"/tmp/\"\n",
            "auth.keys_file",
            "directory",
        ),
        // The missing token is reported where the listen address was set (the file).
        (
            "[server]\nadmin_listen = \"0.0.0.0:18080\"\n",
            "admin.token",
            "not loopback",
        ),
    ] {
        let err = config_error(toml, &[]);
        assert!(!err.starts_with("OK"), "{toml} accepted");
        assert!(
            err.contains(key) && err.contains(hint) && err.contains(".toml"),
            "{toml}: {err}"
        );
    }
    let ok = config_error(
        "[auth]\nbanned_ips = [\"203.0.113.7\", \"2001:db8::/32\"]\n[live]\nplay_wait_ms = 500\n",
        &[("REFLECTOR_SERVER__APPS", "live,studio")],
    );
    assert!(ok.starts_with("OK"), "{ok}");
    assert!(
        ok.contains("apps = [\n    \"live\",\n    \"studio\",\n]")
            && ok.contains("play_wait_ms = 500"),
        "{ok}"
    );
    assert!(ok.contains("keys_file = \"state/control.json\""), "{ok}");
}

#[test]
fn a_corrupt_keys_file_stops_the_start() {
    let dir = tempfile::tempdir().expect("dir");
    let keys = dir.path().join("control.json");
    std::fs::write(&keys, "{\"keys\": [oops").expect("write");
    let cfg = dir.path().join("r.toml");
    std::fs::write(
        &cfg,
        format!("[auth]\nkeys_file = \"{}\"\n", keys.display()),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_reflector"))
        .args([
            "--config",
            &cfg.display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth.keys_file") && err.contains("control.json"),
        "{err}"
    );
}
