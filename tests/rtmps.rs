//! RTMPS: real clients over the TLS listener (ffmpeg, rtmpdump/librtmp, GStreamer rtmp2),
//! frame-exact; certificate rotation under a live stream; hostile bytes on the TLS port;
//! push relays to another instance's RTMPS listener, verified against a test CA, and refused
//! against an untrusted certificate. Certificates are made here with rcgen.

use crate::common;

use common::{
    free_port, play, publish, reflector_with_config, shared_clip, verify_recording, Player, Proc,
    Publisher, Server,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const JOIN_DELAY: Duration = Duration::from_millis(1500);
const RECORD: Duration = Duration::from_secs(4);
const MIN_FRAMES: usize = 50;
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(25);

/// A test CA and the certificates it signs.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    dir: tempfile::TempDir,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA cert");
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write CA");
        Ca { cert, key, dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A leaf for localhost and 127.0.0.1 signed by this CA, written as `NAME.pem` (chain:
    /// leaf then CA, as Let's Encrypt's fullchain.pem) and `NAME.key`.
    fn leaf(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("params");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign leaf");
        let (c, k) = (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&c, format!("{}{}", cert.pem(), self.cert.pem())).expect("write");
        std::fs::write(&k, key.serialize_pem()).expect("write");
        (c, k)
    }
}

/// A reflector with an RTMPS listener on a free port; `extra` is more TOML.
fn rtmps_server(cert: &Path, key: &Path, extra: &str) -> (Server, tempfile::NamedTempFile, u16) {
    let port = free_port();
    let toml = format!(
        "[rtmps]\nlisten = \"127.0.0.1:{port}\"\ncert_file = {:?}\nkey_file = {:?}\n{extra}",
        cert.display().to_string(),
        key.display().to_string()
    );
    let (server, file) = reflector_with_config(&toml);
    assert!(
        server.log().contains(&format!("rtmps=127.0.0.1:{port}")),
        "{}",
        server.log_tail(20)
    );
    (server, file, port)
}

fn rtmps_url(port: u16, name: &str) -> String {
    format!("rtmps://127.0.0.1:{port}/live/{name}")
}

fn get_json(url: &str) -> Value {
    let body = ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_string()
        .expect("body");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

fn connections(server: &Server) -> Vec<Value> {
    let v = get_json(&format!("{}/api/v1/connections", server.admin_url()));
    v["connections"].as_array().cloned().unwrap_or_default()
}

/// Poll `f` every 100 ms until it returns `Some`, or panic after `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(100));
    }
}

/// The SHA-256 fingerprint of the certificate the TLS listener presents to a new client,
/// as `openssl s_client` sees it (verified against `ca`).
fn served_fingerprint(port: u16, ca: &Path) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "s_client did not verify:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fingerprint_of(text.as_bytes())
}

/// `openssl x509 -fingerprint -sha256` of the first PEM certificate in `pem`.
fn fingerprint_of(pem: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pem)
        .expect("write");
    let out = child.wait_with_output().expect("x509");
    let fp = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(fp.contains("Fingerprint="), "no fingerprint: {fp}");
    fp
}

/// GStreamer rtmp2src over RTMPS records to a file until stopped; certificate validation off
/// (the test CA is not in GLib's trust store).
fn gst_rtmps_play(url: &str, dir: &Path) -> (Proc, PathBuf) {
    let out = dir.join("gst-rtmps.flv");
    let args: Vec<String> = [
        "-e",
        "rtmp2src",
        &format!("location={url}"),
        "tls-validation-flags=0",
        "!",
        "filesink",
        &format!("location={}", out.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let proc = Proc::spawn(
        "gst-rtmps",
        "gst-launch-1.0",
        &args,
        &[],
        &dir.join("gst-rtmps.log"),
    );
    (proc, out)
}

/// ffmpeg publishes over RTMPS; ffmpeg and GStreamer rtmp2src play over RTMPS at once; each
/// recording is frame-exact. The admin API marks the connections as TLS; they are all gone
/// afterwards.
///
/// rtmpdump is not here: Debian's librtmp (2.4, GnuTLS) fails every `rtmps://` URL with
/// "RTMP_Connect1, handshake failed" before writing a byte of RTMP, against
/// `openssl s_server` (TLS 1.2 or 1.3) just as against this server.
#[test]
fn real_clients_publish_and_play_over_rtmps() {
    skip_unless_have!("ffmpeg", "ffprobe", "gst-launch-1.0", "openssl");
    let ca = Ca::new("reflector test CA");
    let (cert, key) = ca.leaf("server");
    let (server, _config, port) = rtmps_server(&cert, &key, "");
    let clip = shared_clip();
    let url = rtmps_url(port, "x");
    let mut publisher = publish(Publisher::Ffmpeg, clip, &url, server.dir());
    sleep(JOIN_DELAY);
    let ffmpeg = play(Player::Ffmpeg, &url, server.dir(), RECORD);
    let (mut gst, gst_out) = gst_rtmps_play(&url, server.dir());
    let started = Instant::now();
    // The publisher and both players, once the players have started (gst may take a while).
    let conns = wait_for("publisher and 2 players", Duration::from_secs(10), || {
        let conns = connections(&server);
        (conns.len() >= 3).then_some(conns)
    });
    assert!(
        conns.iter().all(|c| c["tls"] == Value::Bool(true)),
        "publisher and 2 players over TLS: {conns:#?}"
    );
    sleep(RECORD.saturating_sub(started.elapsed()));
    gst.stop_with("INT", Duration::from_secs(5));
    let mut failures = Vec::new();
    for (name, rec) in [("ffmpeg", ffmpeg.finish()), ("gst-rtmp2src", gst_out)] {
        let verdict = verify_recording(&rec, clip);
        eprintln!("rtmps ffmpeg-publish -> {name}: {verdict}");
        if !verdict.is_ok() || verdict.frame_count < MIN_FRAMES {
            failures.push(format!("{name}: {verdict}"));
        }
    }
    publisher.wait_success(PUBLISH_TIMEOUT);
    assert!(
        failures.is_empty(),
        "{}\n--- reflector log tail ---\n{}",
        failures.join("\n"),
        server.log_tail(40)
    );
    wait_for("every connection closed", Duration::from_secs(10), || {
        connections(&server).is_empty().then_some(())
    });
    // ffmpeg names 127.0.0.1 as the TLS server name; rustls' warning about it per connect
    // is silenced (main.rs, quiet_dependencies).
    assert!(
        !server.plain_log().contains("Illegal SNI"),
        "{}",
        server.log_tail(40)
    );
}

/// A new chain is loaded on SIGHUP while a player plays over RTMPS: the player's recording is
/// frame-exact across the rotation, a new client sees the new certificate, and a bad key on
/// the next SIGHUP is refused with a log line naming it, the running certificate kept.
#[test]
fn certificate_rotation_under_a_live_stream() {
    skip_unless_have!("ffmpeg", "ffprobe", "openssl");
    let ca = Ca::new("reflector test CA");
    let (cert, key) = ca.leaf("live");
    let (old_cert, _) = ca.leaf("old");
    std::fs::copy(&cert, &old_cert).expect("keep the first chain");
    let (server, _config, port) = rtmps_server(&cert, &key, "");
    let clip = shared_clip();
    let url = rtmps_url(port, "rotate");
    let mut publisher = publish(Publisher::Ffmpeg, clip, &url, server.dir());
    sleep(JOIN_DELAY);
    let player = play(Player::Ffmpeg, &url, server.dir(), Duration::from_secs(5));
    sleep(Duration::from_secs(1));
    let before = served_fingerprint(port, &ca.file());
    assert_eq!(
        before,
        fingerprint_of(&std::fs::read(&old_cert).expect("read"))
    );

    // Renewal in place, as certbot does, then SIGHUP.
    let (new_cert, new_key) = ca.leaf("renewed");
    std::fs::copy(&new_cert, &cert).expect("copy");
    std::fs::copy(&new_key, &key).expect("copy");
    let hup = || {
        Command::new("kill")
            .args(["-s", "HUP", &server.pid().to_string()])
            .status()
            .expect("kill -HUP");
    };
    hup();
    wait_for("the reload line", Duration::from_secs(5), || {
        server
            .log()
            .contains("rtmps: certificate loaded for new connections")
            .then_some(())
    });
    let after = served_fingerprint(port, &ca.file());
    assert_ne!(before, after);
    assert_eq!(
        after,
        fingerprint_of(&std::fs::read(&new_cert).expect("read"))
    );

    // A key that does not match is refused, naming the file; the renewed chain stays.
    let (_, stray_key) = ca.leaf("stray");
    std::fs::copy(&stray_key, &key).expect("copy");
    hup();
    let line = wait_for("the refusal line", Duration::from_secs(5), || {
        server
            .plain_log()
            .lines()
            .find(|l| l.contains("certificate reload refused"))
            .map(str::to_owned)
    });
    assert!(
        line.contains(&key.display().to_string()) && line.contains("does not belong"),
        "{line}"
    );
    assert_eq!(served_fingerprint(port, &ca.file()), after);

    let verdict = verify_recording(&player.finish(), clip);
    eprintln!("rtmps player across the rotation: {verdict}");
    verdict.assert_ok_with_at_least(75);
    publisher.wait_success(PUBLISH_TIMEOUT);
}

/// Read until the server closes (or `limit` passes); what was read.
fn read_until_closed(socket: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    socket.set_read_timeout(Some(limit)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

/// Garbage instead of a ClientHello, plain RTMP sent to the TLS port, a ClientHello cut off
/// mid-way, and 300 half-open handshakes: each is closed (the stalled ones by the handshake
/// timeout), with a log line carrying its connection id; a verifying TLS client is served
/// meanwhile, and the admin API counts no connection afterwards.
#[test]
fn hostile_input_on_the_tls_port() {
    skip_unless_have!("openssl");
    let ca = Ca::new("reflector test CA");
    let (cert, key) = ca.leaf("hostile");
    let (server, _config, port) =
        rtmps_server(&cert, &key, "[rtmp]\nhandshake_timeout_ms = 1500\n");
    let addr = format!("127.0.0.1:{port}");

    // Garbage: not a TLS record. rustls answers with an alert, or closes.
    let mut garbage = TcpStream::connect(&addr).expect("connect");
    garbage.write_all(&[0x47u8; 600]).expect("write garbage");
    let (_, closed) = read_until_closed(&mut garbage, Duration::from_secs(3));
    assert!(closed, "garbage: the server did not close");

    // Plain RTMP (C0 + C1) on the TLS port.
    let mut plain = TcpStream::connect(&addr).expect("connect");
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(0u8, 1536));
    plain.write_all(&c0c1).expect("write C0C1");
    let (reply, closed) = read_until_closed(&mut plain, Duration::from_secs(3));
    assert!(closed, "plain RTMP: the server did not close");
    assert!(
        reply.first() != Some(&3),
        "the TLS port answered with an RTMP S0: {reply:?}"
    );

    // A ClientHello record header promising 512 bytes, then silence.
    let mut cut = TcpStream::connect(&addr).expect("connect");
    cut.write_all(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .expect("write");
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut cut, Duration::from_secs(5));
    assert!(closed, "stalled ClientHello: the server did not close");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_millis(4000),
        "closed after {waited:?}, the handshake timeout is 1.5 s"
    );

    // Many half-open handshakes at once; a real client is served meanwhile.
    let half_open: Vec<TcpStream> = (0..300)
        .map(|i| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            if i % 2 == 0 {
                let _ = s.write_all(&[0x16, 0x03, 0x01]);
            }
            s
        })
        .collect();
    wait_for(
        "the half-open connections counted",
        Duration::from_secs(5),
        || (connections(&server).len() >= 300).then_some(()),
    );
    let fp = served_fingerprint(port, &ca.file());
    assert_eq!(fp, fingerprint_of(&std::fs::read(&cert).expect("read")));
    wait_for("every connection closed", Duration::from_secs(10), || {
        connections(&server).is_empty().then_some(())
    });
    drop(half_open);

    let log = server.plain_log();
    let tls_failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("TLS handshake failed") && l.contains("connection="))
        .collect();
    let timed_out = log
        .lines()
        .filter(|l| l.contains("handshake not finished within") && l.contains("connection="))
        .count();
    eprintln!(
        "TLS handshake failures logged: {}, handshake timeouts logged: {timed_out}",
        tls_failed.len()
    );
    assert!(
        tls_failed.len() >= 2,
        "garbage and plain RTMP: {tls_failed:#?}"
    );
    assert!(timed_out >= 301, "the stalled handshakes: {timed_out}");
}

/// Instance A pushes what ffmpeg publishes to it to two instances' RTMPS listeners: B has a
/// certificate from the test CA that A trusts (relay.ca_file) and gets the stream (ffmpeg
/// plays it back over RTMPS, frame-exact); C's self-signed certificate fails verification:
/// logged, counted in the stream's relay_errors, retried, and A keeps serving.
#[test]
fn push_relay_to_rtmps_verified_against_a_test_ca() {
    skip_unless_have!("ffmpeg", "ffprobe", "openssl");
    let ca = Ca::new("reflector test CA");
    let (cert, key) = ca.leaf("b");
    let (b, _b_config, b_port) = rtmps_server(&cert, &key, "");
    let rogue = Ca::new("an untrusted CA");
    let (rogue_cert, rogue_key) = rogue.leaf("c");
    let (c, _c_config, c_port) = rtmps_server(&rogue_cert, &rogue_key, "");
    let toml = format!(
        "[relay]\nca_file = {:?}\n\n[[relay.push]]\nurl = \"rtmps://localhost:{b_port}/live\"\n\n\
         [[relay.push]]\nurl = \"rtmps://localhost:{c_port}/live\"\n",
        ca.file().display().to_string()
    );
    let (a, _a_config) = reflector_with_config(&toml);
    let clip = shared_clip();
    let mut publisher = publish(
        Publisher::Ffmpeg,
        clip,
        &a.rtmp_url("live", "relayed"),
        a.dir(),
    );
    a.wait_for_log("push connected", Duration::from_secs(10));
    // A's stream entry lives while the clip is published: read its relay errors now, not
    // after the recording below (on a slow machine the clip may have ended by then).
    let streams_url = format!("{}/api/v1/streams", a.admin_url());
    let stream = wait_for(
        "a relay error on A's stream",
        Duration::from_secs(10),
        || {
            let streams = get_json(&streams_url);
            let stream = streams["streams"][0].clone();
            (stream["relay_errors"].as_u64().unwrap_or(0) >= 1).then_some(stream)
        },
    );
    eprintln!(
        "A's stream: pushes {} relay_errors {}",
        stream["pushes"], stream["relay_errors"]
    );
    sleep(JOIN_DELAY);
    let rec = play(
        Player::Ffmpeg,
        &rtmps_url(b_port, "relayed"),
        b.dir(),
        RECORD,
    )
    .finish();
    let verdict = verify_recording(&rec, clip);
    eprintln!("A -> rtmps push -> B -> ffmpeg over rtmps: {verdict}");
    verdict.assert_ok_with_at_least(MIN_FRAMES);

    let log = a.plain_log();
    let refused = log
        .lines()
        .find(|l| {
            l.contains(&format!("localhost:{c_port}")) && l.contains("push: upstream unreachable")
        })
        .unwrap_or_else(|| panic!("no refusal line for C:\n{}", a.log_tail(30)));
    assert!(
        refused.contains("TLS: invalid peer certificate: UnknownIssuer"),
        "{refused}"
    );
    assert!(
        c.plain_log().contains("TLS handshake failed"),
        "{}",
        c.log_tail(20)
    );
    let c_streams = get_json(&format!("{}/api/v1/streams", c.admin_url()));
    assert_eq!(c_streams["count"], 0, "{c_streams:#}");
    publisher.wait_success(PUBLISH_TIMEOUT);
}

/// A key that does not belong to the certificate, or an expired certificate, stops the
/// start-up with an error naming the file.
#[test]
fn bad_certificates_stop_the_start_up_naming_the_file() {
    let ca = Ca::new("reflector test CA");
    let (cert, _) = ca.leaf("one");
    let (_, other_key) = ca.leaf("two");
    let expired_key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let expired = params.self_signed(&expired_key).expect("sign");
    let (expired_cert, expired_key_file) = (
        ca.dir.path().join("expired.pem"),
        ca.dir.path().join("expired.key"),
    );
    std::fs::write(&expired_cert, expired.pem()).expect("write");
    std::fs::write(&expired_key_file, expired_key.serialize_pem()).expect("write");
    let exe = env!("CARGO_BIN_EXE_reflector");
    for (cert, key, named, says) in [
        (
            &cert,
            &other_key,
            &other_key,
            "does not belong to the certificate",
        ),
        (&expired_cert, &expired_key_file, &expired_cert, "expired"),
    ] {
        let out = Command::new(exe)
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--rtmps-listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--rtmps-cert-file")
            .arg(cert)
            .arg("--rtmps-key-file")
            .arg(key)
            .output()
            .expect("run reflector");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&named.display().to_string()) && err.contains(says),
            "{err}"
        );
    }
    // A listen address without files is a configuration error naming the key.
    let out = Command::new(exe)
        .args(["--rtmps-listen", "127.0.0.1:0", "--print-config"])
        .output()
        .expect("run reflector");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rtmps.cert_file"), "{err}");
}

/// A client that asks to renegotiate (TLS 1.2, `openssl s_client`'s `R` command) gets no new
/// handshake (rustls implements none): the server ends that connection, stays up, holds no
/// connection afterwards, and serves a new client.
#[test]
fn a_renegotiation_attempt_is_refused_cleanly() {
    skip_unless_have!("openssl");
    let ca = Ca::new("reflector test CA");
    let (cert, key) = ca.leaf("renegotiation");
    let (server, _config, port) = rtmps_server(&cert, &key, "");
    let mut client = Command::new("openssl")
        .args([
            "s_client",
            "-tls1_2",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-servername", "localhost", "-CAfile"])
        .arg(ca.file())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    let mut stdin = client.stdin.take().expect("stdin");
    sleep(Duration::from_millis(700));
    // `R` alone on a line asks s_client to renegotiate.
    let _ = stdin.write_all(b"R\n");
    sleep(Duration::from_millis(1500));
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "s_client did not end");
        sleep(Duration::from_millis(100));
    }
    let out = client.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("s_client:\n{text}");
    assert!(text.contains("RENEGOTIATING"), "the client tried: {text}");
    assert!(
        text.contains("unexpected eof") || text.contains("alert"),
        "the server ended the connection instead of renegotiating: {text}"
    );
    wait_for("the connection gone", Duration::from_secs(10), || {
        connections(&server).is_empty().then_some(())
    });
    let _ = served_fingerprint(port, &ca.file());
    assert!(!server.log().contains("panic"), "{}", server.log_tail(20));
}

/// GStreamer's `rtmp2sink` publishes over RTMPS (a live 30 fps test pattern, H.264); ffmpeg
/// plays it back over RTMPS and decodes 320x240 frames.
#[test]
fn gstreamer_rtmp2sink_publishes_over_rtmps() {
    skip_unless_have!("ffmpeg", "gst-launch-1.0", "openssl");
    let ca = Ca::new("reflector test CA");
    let (cert, key) = ca.leaf("gst-publish");
    let (server, _config, port) = rtmps_server(&cert, &key, "");
    let url = rtmps_url(port, "gst");
    let args: Vec<String> = [
        "-e",
        "videotestsrc",
        "is-live=true",
        "num-buffers=360",
        "!",
        "video/x-raw,width=320,height=240,framerate=30/1",
        "!",
        "x264enc",
        "tune=zerolatency",
        "key-int-max=30",
        "!",
        "h264parse",
        "!",
        "flvmux",
        "streamable=true",
        "!",
        "rtmp2sink",
        &format!("location={url}"),
        "tls-validation-flags=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _publisher = Proc::spawn(
        "gst-rtmps-publish",
        "gst-launch-1.0",
        &args,
        &[],
        &server.dir().join("gst-rtmps-publish.log"),
    );
    server.wait_for_log("publish connection=", Duration::from_secs(10));
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-tls_verify", "0", "-i", &url])
        .args(["-t", "3", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg");
    let text = String::from_utf8_lossy(&out.stdout);
    let frames = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(
        frames >= 60,
        "ffmpeg decoded {frames} frames over RTMPS: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_tail(20)
    );
    assert!(
        text.contains("#dimensions 0: 320x240"),
        "the published picture: {text:.400}"
    );
    let tls = connections(&server)
        .iter()
        .filter(|c| c["tls"] == true)
        .count();
    assert!(tls >= 1, "the publisher is a TLS connection");
}
