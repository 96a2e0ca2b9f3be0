//! `/metrics` against real clients: the Grafana dashboard's every metric exists in a live
//! scrape, the byte counters move, per-stream series are capped with the rest summed into
//! `#other`, refusals are counted by reason, and the publish-start line describes the media.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{play, publish, shared_clip, should_skip, Player, Publisher, Server};
use reflector::client::synth;
use reflector::client::{ClientConfig, RtmpClient, RtmpUrl};
use reflector::protocol::message::{type_id, RawMessage};

const CONFIG: &str = r#"
[admin]
metrics_max_streams = 1

[live]
publish_conflict = "reject"

[auth.apps.live]
publish = "key"
publish_keys = ["s3cret"]
play = "open"
"#;

const OTHER: &str = r##"{app="#other",name="#other"}"##;

/// Sample (`name{labels}`) to value.
fn scrape(server: &Server) -> BTreeMap<String, f64> {
    let url = format!("{}/metrics", server.admin_url());
    let text = ureq::get(&url)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_string()
        .expect("metrics text");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample value");
            (k.to_owned(), v.parse().expect("number"))
        })
        .collect()
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("{key} missing: {:#?}", m.keys().collect::<Vec<_>>()))
}

/// Sample names (without labels) present in a scrape.
fn names(m: &BTreeMap<String, f64>) -> Vec<String> {
    let mut n: Vec<String> = m
        .keys()
        .map(|k| k.split('{').next().unwrap_or(k).to_owned())
        .collect();
    n.dedup();
    n
}

/// Every `reflector_*` / `process_*` identifier in the dashboard's queries.
fn dashboard_metrics() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/reflector.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(o) => {
                for (k, v) in o {
                    match (k.as_str(), v.as_str()) {
                        ("expr" | "definition", Some(q)) => identifiers(q, out),
                        ("query", Some(q)) => identifiers(q, out),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    fn identifiers(q: &str, out: &mut Vec<String>) {
        let bytes = q.as_bytes();
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let mut i = 0;
        while i < bytes.len() {
            if word(bytes[i]) && (i == 0 || !word(bytes[i - 1])) {
                let end = (i..bytes.len())
                    .find(|&j| !word(bytes[j]))
                    .unwrap_or(bytes.len());
                let id = &q[i..end];
                if id.starts_with("reflector_") || id.starts_with("process_") {
                    // Histogram and summary series are queried by their family's samples.
                    let base = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| id.strip_suffix(s))
                        .unwrap_or(id);
                    out.push(base.to_owned());
                }
                i = end;
            } else {
                i += 1;
            }
        }
    }
    let mut out = Vec::new();
    walk(&json, &mut out);
    out.sort();
    out.dedup();
    out
}

async fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn url(server: &Server, name: &str) -> RtmpUrl {
    RtmpUrl {
        host: "127.0.0.1".into(),
        port: server.port(),
        app: "live".into(),
        stream: name.into(),
        tls: false,
    }
}

/// Publish `name` (with its `?key=`) and send a sequence header and `frames` video frames;
/// the connection and the payload bytes sent. `Err` when the publish is refused.
async fn publish_frames(
    server: &Server,
    name: &str,
    frames: u64,
) -> Result<(RtmpClient, u64), String> {
    let config = ClientConfig {
        timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    let mut c = RtmpClient::connect(&url(server, name), &config)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let id = c
        .create_stream()
        .await
        .map_err(|e| format!("createStream: {e}"))?;
    c.publish(id, name)
        .await
        .map_err(|e| format!("publish: {e}"))?;
    let mut payloads: Vec<Bytes> = vec![synth::avc_sequence_header()];
    payloads.extend((0..frames).map(|i| synth::video_frame(i, i % 10 == 0, 300 + i as usize)));
    let mut bytes = 0;
    for (i, payload) in payloads.into_iter().enumerate() {
        bytes += payload.len() as u64;
        let msg = RawMessage {
            type_id: type_id::VIDEO,
            stream_id: id,
            timestamp: i as u32 * 40,
            payload,
        };
        c.send(&msg).await.map_err(|e| format!("send: {e}"))?;
    }
    Ok((c, bytes))
}

fn refusals(m: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    [
        "auth",
        "limits",
        "bad_name",
        "conflict",
        "banned",
        "unknown_app",
    ]
    .iter()
    .map(|r| {
        let key = format!("reflector_refusals_total{{reason=\"{r}\"}}");
        ((*r).to_owned(), get(m, &key))
    })
    .collect()
}

#[tokio::test]
async fn dashboard_metrics_exist_and_count_real_clients() {
    if should_skip(
        "dashboard_metrics_exist_and_count_real_clients",
        &["ffmpeg"],
    ) {
        return;
    }
    let (server, _config) = common::reflector_with_config(CONFIG);
    let m0 = scrape(&server);
    let zero: Vec<(String, f64)> = refusals(&m0).into_iter().map(|(r, _)| (r, 0.0)).collect();
    assert_eq!(refusals(&m0), zero, "every reason exported, at 0");

    // A real publisher (ffmpeg, 8 s clip), a real player on it, two more streams without
    // players: with a cap of 1 only the first stream gets its own series (the most players,
    // then the name: `cam` sorts before the others, so it keeps it from its start and the
    // others' bytes are all in `other`).
    let publish_url = format!("{}?key=s3cret", server.rtmp_url("live", "cam"));
    let mut ffmpeg = publish(Publisher::Ffmpeg, shared_clip(), &publish_url, server.dir());
    until("cam live", Duration::from_secs(10), || {
        (get(&scrape(&server), "reflector_streams_live") == 1.0).then_some(())
    })
    .await;
    let (_x, x_bytes) = publish_frames(&server, "x1?key=s3cret", 20)
        .await
        .expect("x1");
    let (_y, y_bytes) = publish_frames(&server, "y2?key=s3cret", 30)
        .await
        .expect("y2");
    let rec = play(
        Player::Ffmpeg,
        &server.rtmp_url("live", "cam"),
        server.dir(),
        Duration::from_secs(3),
    );
    let cam = r#"{app="live",name="cam"}"#;
    let m1 = until(
        "the player and the summed streams",
        Duration::from_secs(10),
        || {
            let m = scrape(&server);
            let players = m.get(&format!("reflector_stream_players{cam}")).copied();
            let other = m
                .get(&format!("reflector_stream_received_bytes_total{OTHER}"))
                .copied();
            (players == Some(1.0) && other == Some((x_bytes + y_bytes) as f64)).then_some(m)
        },
    )
    .await;
    assert_eq!(get(&m1, &format!("reflector_stream_players{OTHER}")), 0.0);
    assert_eq!(get(&m1, "reflector_streams_live"), 3.0);
    for name in ["x1", "y2"] {
        assert!(
            !m1.keys().any(|k| k.contains(&format!("name=\"{name}\""))),
            "{name} has its own series over the cap"
        );
    }
    // Every series of a stream: its labels, the drop reasons included.
    let labelled = |m: &BTreeMap<String, f64>| -> Vec<String> {
        m.keys()
            .filter(|k| k.contains(r#"{app="live",name="cam""#))
            .cloned()
            .collect()
    };
    assert_eq!(labelled(&m1).len(), 3 + 5, "{:#?}", labelled(&m1));

    // Bytes to the player grow.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let m2 = scrape(&server);
    for key in [
        "reflector_sent_bytes_total".to_owned(),
        "reflector_received_bytes_total".to_owned(),
        format!("reflector_stream_sent_bytes_total{cam}"),
        format!("reflector_stream_received_bytes_total{cam}"),
    ] {
        assert!(get(&m2, &key) > get(&m1, &key), "{key} did not grow");
    }

    // The dashboard queries nothing the server does not export.
    let wanted = dashboard_metrics();
    assert!(wanted.len() >= 25, "{wanted:?}");
    let have = names(&m2);
    let missing: Vec<&String> = wanted.iter().filter(|n| !have.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "dashboard metrics missing from /metrics: {missing:?}"
    );

    // Refusals, each exactly once: a bad key, a publish of a published stream, a bad name.
    let bad_key = publish_frames(&server, "x?key=wrong", 0).await;
    assert!(bad_key.is_err());
    let conflict = publish_frames(&server, "x1?key=s3cret", 0).await;
    assert!(conflict.is_err());
    let bad_name = publish_frames(&server, "bad%25name?key=s3cret", 0).await;
    assert!(bad_name.is_err());
    let want: Vec<(String, f64)> = [
        ("auth", 1.0),
        ("limits", 0.0),
        ("bad_name", 1.0),
        ("conflict", 1.0),
        ("banned", 0.0),
        ("unknown_app", 0.0),
    ]
    .iter()
    .map(|(r, n)| ((*r).to_owned(), *n))
    .collect();
    let m3 = until("the refusals", Duration::from_secs(5), || {
        let m = scrape(&server);
        (refusals(&m) == want).then_some(m)
    })
    .await;
    assert_eq!(
        get(&m3, "reflector_streams_live"),
        3.0,
        "the refused ones hurt nobody"
    );

    // The publish-start line of the ffmpeg publish.
    let line = until("the publish media line", Duration::from_secs(10), || {
        server
            .plain_log()
            .lines()
            .find(|l| l.contains("publish media") && l.contains("stream=live/cam"))
            .map(str::to_owned)
    })
    .await;
    for field in [
        "video=H.264",
        "audio=AAC",
        "resolution=320x240",
        "fps=25.00",
        "connection=",
    ] {
        assert!(line.contains(field), "{field} not in {line}");
    }
    let kbps: f64 = line
        .split("bitrate_kbps=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no bitrate in {line}"));
    assert!(kbps > 10.0 && kbps < 10_000.0, "{line}");
    let lines = server.plain_log();
    let cam_lines = lines
        .lines()
        .filter(|l| l.contains("publish media") && l.contains("stream=live/cam"))
        .count();
    assert_eq!(cam_lines, 1, "once per publish");

    // The player and the publisher end; cam's series goes, `other` and the sums never go
    // back.
    rec.finish();
    ffmpeg.wait_timeout(Duration::from_secs(15));
    let sum = |m: &BTreeMap<String, f64>| -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with("reflector_stream_received_bytes_total{"))
            .map(|(_, v)| v)
            .sum()
    };
    let m4 = until("cam gone", Duration::from_secs(10), || {
        let m = scrape(&server);
        (!m.keys().any(|k| k.contains(cam)) && get(&m, "reflector_streams_live") == 2.0)
            .then_some(m)
    })
    .await;
    let other_key = format!("reflector_stream_received_bytes_total{OTHER}");
    assert!(get(&m4, &other_key) >= get(&m3, &other_key));
    assert!(sum(&m4) >= sum(&m3), "{} < {}", sum(&m4), sum(&m3));
    // x1 now has the own series (players tie: by name), counting from 0: its bytes so far
    // stay in `other`.
    let x1 = r#"{app="live",name="x1"}"#;
    assert_eq!(
        get(&m4, &format!("reflector_stream_received_bytes_total{x1}")),
        0.0
    );
}

#[tokio::test]
async fn connection_limit_refusals_count_as_limits() {
    let (server, _config) = common::reflector_with_config("[limits]\nmax_connections = 1\n");
    let addr = format!("127.0.0.1:{}", server.port());
    // The harness's readiness probe is a connection too: wait until it was taken and is gone.
    until("the probe gone", Duration::from_secs(10), || {
        let m = scrape(&server);
        let seen = get(&m, "reflector_connections_accepted_total")
            + get(&m, "reflector_connections_refused_total");
        (seen >= 1.0 && get(&m, "reflector_connections") == 0.0).then_some(())
    })
    .await;
    let _first = std::net::TcpStream::connect(&addr).expect("first connection");
    until("the first connection", Duration::from_secs(10), || {
        (get(&scrape(&server), "reflector_connections") == 1.0).then_some(())
    })
    .await;
    let before = scrape(&server);
    let refused_before = get(&before, "reflector_connections_refused_total");
    let baseline = refusals(&before);
    let _second = std::net::TcpStream::connect(&addr).expect("second connection");
    let m = until("the refusal", Duration::from_secs(10), || {
        let m = scrape(&server);
        (get(&m, "reflector_connections_refused_total") == refused_before + 1.0).then_some(m)
    })
    .await;
    let got: Vec<(String, f64)> = refusals(&m)
        .into_iter()
        .zip(&baseline)
        .map(|((r, n), (_, b))| (r, n - b))
        .collect();
    let want: Vec<(String, f64)> = got
        .iter()
        .map(|(r, _)| (r.clone(), if r == "limits" { 1.0 } else { 0.0 }))
        .collect();
    assert_eq!(got, want, "refusals added by the second connection");
}
