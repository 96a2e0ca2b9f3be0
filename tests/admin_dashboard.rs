//! The dashboard in headless Chromium while a stream is live: the page shows the stream and
//! its subscriber, the chart has drawn points and moves on between two loads, and a
//! screenshot is saved to `target/test-artifacts/dashboard.png` for a human to look at.
//! Then its Stop button, clicked in the page (driven over the DevTools protocol), among
//! streams with look-alike names: each click stops exactly the stream of its row.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{play, shared_clip, Player, Server};

const CHROMIUM: &str = "chromium";

/// Run headless Chromium on `url` with `extra` arguments (e.g. `--dump-dom`); returns stdout.
fn chromium(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let user_data = format!("--user-data-dir={}", profile.path().display());
    let mut args = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1400,1300",
        user_data.as_str(),
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let out = Command::new(CHROMIUM)
        .args(&args)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `attr="..."` on the element whose opening tag contains `marker`.
fn attr(dom: &str, marker: &str, attr: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let key = format!("{attr}=\"");
    let from = tag.find(&key)? + key.len();
    let len = tag[from..].find('"')?;
    Some(tag[from..from + len].to_owned())
}

fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

#[test]
fn dashboard_shows_stream_subscriber_and_a_moving_chart() {
    skip_unless_have!("ffmpeg", "ffprobe", CHROMIUM);
    let server = Server::reflector(&["--workers", "2"]);
    let url = server.rtmp_url("live", "cam");
    // Loop the clip so the stream stays live however slow the browser runs are on a busy
    // machine (the plain clip lasts 8 s; the publisher is stopped when the test ends).
    let _publisher = common::publish_looped(shared_clip(), 100, &url, server.dir());
    sleep(Duration::from_millis(1000));
    // Plays until the test ends (dropping it stops it): the page below must find it attached
    // however long Chromium takes to start.
    let _player = play(Player::Ffmpeg, &url, server.dir(), Duration::from_secs(60));
    // Let the sampler collect a few seconds of history with the player attached.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = ureq::get(&format!("{}/api/v1/streams", server.admin_url()))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default();
        if body.contains("\"subscriber_count\":1") {
            break;
        }
        assert!(Instant::now() < deadline, "no subscriber: {body}");
        sleep(Duration::from_millis(200));
    }
    sleep(Duration::from_millis(1500));

    let page = format!("{}/", server.admin_url());
    let dom = chromium(&page, &["--virtual-time-budget=4000", "--dump-dom"]);
    assert!(
        dom.contains("data-stream=\"live/cam\""),
        "stream row missing:\n{dom}"
    );
    assert!(dom.contains("H.264") && dom.contains("320x240") && dom.contains("AAC"));
    assert!(
        dom.contains("class=\"subscriber-row\""),
        "subscriber row missing:\n{dom}"
    );
    assert!(dom.contains("LNX 9,0,124,2"), "player's flashVer missing");
    // No server.http_listen here: the preview is offered disabled, saying why.
    assert!(
        dom.contains("<button disabled=\"\">Preview</button>")
            && dom.contains("Set server.http_listen (--http-listen)"),
        "disabled preview control missing:\n{dom}"
    );
    let refreshes: u64 = attr(&dom, "<body", "data-refreshes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(refreshes >= 2, "page refreshed {refreshes} times");
    let points: u64 = attr(&dom, "id=\"chart\"", "data-points")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let draws: u64 = attr(&dom, "id=\"chart\"", "data-draws")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(points >= 3, "chart has {points} points");
    assert!(draws >= 2, "chart drawn {draws} times");
    let first_last: u64 = attr(&dom, "id=\"chart\"", "data-last")
        .and_then(|v| v.parse().ok())
        .expect("chart's last sample time");

    // The screenshot while the stream is still live (the clip lasts 8 s).
    let shot = artifact_dir().join("dashboard.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    chromium(&page, &["--virtual-time-budget=3000", &shot_arg]);
    let dom2 = chromium(&page, &["--virtual-time-budget=3000", "--dump-dom"]);
    let second_last: u64 = attr(&dom2, "id=\"chart\"", "data-last")
        .and_then(|v| v.parse().ok())
        .expect("chart's last sample time");
    assert!(
        second_last > first_last,
        "chart did not move on: {first_last} -> {second_last}"
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
    eprintln!("dashboard screenshot: {}", shot.display());
}

/// A close-on-exec pipe: `(read end, write end)`.
fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`; each is owned by one File.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0, "pipe2");
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

/// Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
/// the browser reads NUL-terminated JSON commands on fd 3 and writes replies on fd 4).
struct Devtools {
    child: std::process::Child,
    to_browser: std::fs::File,
    from_browser: std::sync::mpsc::Receiver<serde_json::Value>,
    next_id: u64,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Devtools {
    fn open(url: &str) -> Devtools {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().expect("profile dir");
        let (browser_reads, to_browser) = pipe();
        let (from_browser, browser_writes) = pipe();
        let (r, w) = (browser_reads.as_raw_fd(), browser_writes.as_raw_fd());
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-pipe",
            "--window-size=1400,1300",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. The
        // pipe ends go to fds 3 and 4 by way of fds >= 10, so neither clobbers the other.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 10);
                let w = libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("run chromium");
        drop((browser_reads, browser_writes));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(from_browser);
            loop {
                let mut message = Vec::new();
                match std::io::BufRead::read_until(&mut reader, 0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        message.pop();
                        if let Ok(v) = serde_json::from_slice(&message) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let mut devtools = Devtools {
            child,
            to_browser,
            from_browser: rx,
            next_id: 0,
            session: None,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let target = loop {
            let targets = devtools.call("Target.getTargets", serde_json::json!({}));
            let page = targets["targetInfos"]
                .as_array()
                .and_then(|l| l.iter().find(|t| t["type"] == "page"))
                .and_then(|t| t["targetId"].as_str().map(str::to_owned));
            if let Some(page) = page {
                break page;
            }
            assert!(Instant::now() < deadline, "no page target: {targets}");
            sleep(Duration::from_millis(100));
        };
        let attached = devtools.call(
            "Target.attachToTarget",
            serde_json::json!({ "targetId": target, "flatten": true }),
        );
        devtools.session = attached["sessionId"].as_str().map(str::to_owned);
        assert!(devtools.session.is_some(), "not attached: {attached}");
        devtools.call("Page.navigate", serde_json::json!({ "url": url }));
        // Loaded when the page at `url` says so (evaluations fail while it replaces the
        // blank page).
        let expected = serde_json::Value::from(format!("{url} complete"));
        loop {
            let reply = devtools.send(
                "Runtime.evaluate",
                serde_json::json!({
                    "expression": "location.href + ' ' + document.readyState",
                    "returnByValue": true,
                }),
            );
            if reply["result"]["result"]["value"] == expected {
                break devtools;
            }
            assert!(Instant::now() < deadline, "page not loaded: {reply}");
            sleep(Duration::from_millis(100));
        }
    }

    /// Send one command (to the page once attached) and wait for its result.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let reply = self.send(method, params);
        assert!(reply["error"].is_null(), "{method}: {reply}");
        reply["result"].clone()
    }

    /// Send one command and wait for the whole reply (`result` or `error`).
    fn send(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = serde_json::json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            command["sessionId"] = session.clone().into();
        }
        let mut bytes = command.to_string().into_bytes();
        bytes.push(0);
        std::io::Write::write_all(&mut self.to_browser, &bytes).expect("write to chromium");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("{method}: no reply from chromium: {e}"));
            if reply["id"] == id {
                return reply;
            }
        }
    }

    /// Evaluate `expression` in the page (promises awaited) and return its value.
    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({
                "expression": expression,
                "awaitPromise": true,
                "returnByValue": true,
            }),
        );
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }
}

impl Drop for Devtools {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(id, key)` of the live streams, from the API.
fn live_streams(admin: &str) -> Vec<(u64, String)> {
    let body = ureq::get(&format!("{admin}/api/v1/streams"))
        .call()
        .expect("streams")
        .into_string()
        .expect("body");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let mut list: Vec<(u64, String)> = v["streams"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|s| s["live"] == true)
        .map(|s| {
            (
                s["id"].as_u64().expect("id"),
                s["key"].as_str().expect("key").to_owned(),
            )
        })
        .collect();
    list.sort();
    list
}

/// Click Stop in the row showing `key` as an operator would (the confirm prompt answered
/// yes); returns the prompt's text and the stream id the button carries.
fn click_stop(page: &mut Devtools, key: &str) -> (String, String) {
    let script = format!(
        r#"(async () => {{
  const key = {key};
  for (let i = 0; i < 200; i++) {{
    const row = [...document.querySelectorAll("tr[data-stream]")].find((r) => r.dataset.stream === key);
    const button = row && row.querySelector("button[data-stop]");
    if (button) {{
      const prompts = [];
      window.confirm = (text) => {{ prompts.push(text); return true; }};
      button.click();
      return JSON.stringify([prompts.join("|"), button.dataset.stop]);
    }}
    await new Promise((r) => setTimeout(r, 50));
  }}
  return JSON.stringify(["no Stop button for " + key, ""]);
}})()"#,
        key = serde_json::Value::from(key)
    );
    let value = page.eval(&script);
    serde_json::from_str(value.as_str().expect("string")).expect("json pair")
}

#[tokio::test]
async fn dashboard_stop_stops_the_stream_of_its_row() {
    use reflector::client::{ClientConfig, RtmpClient, RtmpUrl};
    skip_unless_have!(CHROMIUM);
    let server = Server::reflector(&["--workers", "1"]);
    let admin = server.admin_url();
    // The victim and names that a URL built from them would turn into the victim's; those
    // the RTMP side refuses are left out.
    let names = [
        ("openapp", "cam"),
        ("zz", "%2e%2e/openapp/cam"),
        ("openapp", "c%61m"),
        ("openapp", "cam#x"),
        ("openapp", "CAM"),
    ];
    let mut clients = Vec::new();
    for (app, name) in names {
        let url = RtmpUrl {
            host: "127.0.0.1".into(),
            port: server.port(),
            app: app.into(),
            stream: name.into(),
            tls: false,
        };
        let config = ClientConfig {
            timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        };
        let mut client = RtmpClient::connect(&url, &config).await.expect("connect");
        let id = client.create_stream().await.expect("createStream");
        match client.publish(id, name).await {
            Ok(()) => clients.push(client),
            Err(e) => eprintln!("the RTMP side refused {app:?} {name:?}: {e}"),
        }
    }
    assert!(clients.len() >= 2, "no look-alike was published");
    let mut live = live_streams(&admin);
    assert_eq!(live.len(), clients.len(), "{live:?}");
    let mut page = Devtools::open(&format!("{admin}/"));
    // Every look-alike first, then the victim: each click removes exactly its own row's
    // stream.
    let mut order: Vec<(u64, String)> = live
        .iter()
        .filter(|s| s.1 != "openapp/cam")
        .cloned()
        .collect();
    order.extend(live.iter().filter(|s| s.1 == "openapp/cam").cloned());
    for (id, key) in order {
        let (prompt, button_id) = click_stop(&mut page, &key);
        assert_eq!(button_id, id.to_string(), "{prompt}");
        assert!(
            prompt.contains(&serde_json::Value::from(key.as_str()).to_string()),
            "{prompt}"
        );
        live.retain(|s| s.0 != id);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = live_streams(&admin);
            if now == live {
                break;
            }
            for s in &live {
                assert!(now.contains(s), "Stop on {key:?} hit {s:?}: {now:?}");
            }
            assert!(Instant::now() < deadline, "{key:?} not stopped: {now:?}");
            sleep(Duration::from_millis(100));
        }
        eprintln!(
            "Stop on {key:?} (stream {id}) stopped it alone; {} left",
            live.len()
        );
    }
    assert_eq!(
        server.log().matches("admin: publisher stopped").count(),
        clients.len()
    );
}
