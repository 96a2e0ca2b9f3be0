//! A real HTTP server for the authorization callbacks (`on_publish`, `on_play`, `on_done`,
//! `on_shared_object`): it answers each POST by a function of the `name` field of its form
//! body, on a thread per connection, and records every body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the callback answers for a name.
pub enum Reply {
    /// 200.
    Allow,
    /// 200 after a pause (a slow callback).
    AllowAfter(Duration),
    /// 302 with this `Location`.
    Redirect(String),
    /// 403.
    Deny,
}

pub struct CallbackServer {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl CallbackServer {
    /// Listen on 127.0.0.1 and answer by `decide(name)` until the test ends.
    pub fn start(decide: impl Fn(&str) -> Reply + Send + Sync + 'static) -> CallbackServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind callback server");
        let port = listener.local_addr().expect("addr").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        let decide = Arc::new(decide);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, decide) = (seen.clone(), decide.clone());
                std::thread::spawn(move || answer(stream, &seen, &*decide));
            }
        });
        CallbackServer { port, bodies }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The form bodies received so far, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().expect("lock").clone()
    }
}

fn answer(
    mut stream: std::net::TcpStream,
    seen: &Mutex<Vec<String>>,
    decide: &(dyn Fn(&str) -> Reply + Send + Sync),
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let name = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("name="))
        .unwrap_or("")
        .to_owned();
    seen.lock().expect("lock").push(body);
    let reply = match decide(&name) {
        Reply::Allow => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned(),
        Reply::AllowAfter(pause) => {
            std::thread::sleep(pause);
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned()
        }
        Reply::Redirect(to) => {
            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n")
        }
        Reply::Deny => "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_owned(),
    };
    let _ = stream.write_all(reply.as_bytes());
}
