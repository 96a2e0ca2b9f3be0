//! Real RTMP clients: publishers that send the source clip, and players that
//! record what they receive to an FLV file.
//!
//! Client quirks observed against nginx-rtmp (Debian 12: ffmpeg 5.1, GStreamer
//! 1.22, rtmpdump 2.4) that matter for any server under test:
//! - No player here exits by itself when the publisher stops: nginx-rtmp sends
//!   StreamEOF + `NetStream.Play.UnpublishNotify` and ffmpeg, `rtmp2src` and
//!   rtmpdump all keep waiting. Every recording is therefore bounded by a
//!   deadline after which the player gets SIGINT (all three finish their file
//!   cleanly on SIGINT), then SIGKILL.
//! - rtmpdump: `--live` is required for a live stream; `--stop N` is compared with
//!   stream timestamps and did not end a live recording; `-B` is the buffer
//!   length in *milliseconds*, not a duration. So rtmpdump is stopped by signal.
//! - ffmpeg's `-t` counts output media time, so it ends on its own once it has
//!   received that much media; its deadline includes slack for connect and for
//!   waiting for the first keyframe.
//! - GStreamer: `rtmp2sink`/`rtmp2src` are the native (plugins-bad) elements;
//!   `rtmpsink` is the librtmp-based one (plugins-bad, `rtmp` plugin). Pacing of
//!   file sources comes from the sink's `sync=true` (flvdemux timestamps).
//! - A player that joins a live stream starts at the next keyframe: with the
//!   clip's 1 s GOP, the first recorded frame is a clip keyframe index (e.g. 50
//!   when joining ~1.5 s after the publisher). nginx-rtmp forwards audio to a new
//!   player at once but holds video until a keyframe.
//! - GStreamer publishers (both sinks) shift DTS back by the first composition
//!   offset and clamp to 0, so the first few audio and video messages all carry
//!   timestamp 0; they also re-send `@setDataFrame onMetaData` many times. A
//!   server must relay both unchanged for the recording to stay frame-exact.
//! - librtmp (`rtmpsink`) sends publish, data, audio and video on one chunk
//!   stream (csid 4) and starts with fmt 0 headers; rtmp2sink sends a
//!   SetChunkSize of 128 after `publish` and uses transaction id 0 for
//!   `releaseStream`/`FCPublish`/`publish`. (Details: tests/vectors/README.md.)
//! - A recording stopped mid-stream ends in decode order, so its last one or two
//!   frames can skip B-frames; `verify_recording` tolerates exactly that.

use super::clip::Clip;
use super::process::Proc;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A client that publishes the source clip in real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher {
    /// `ffmpeg -re -i clip -c copy -f flv URL` (libavformat's own RTMP; sends
    /// `@setDataFrame onMetaData`).
    Ffmpeg,
    /// GStreamer `flvdemux ! ... ! flvmux ! rtmp2sink` (native GStreamer RTMP).
    GstRtmp2,
    /// GStreamer `rtmpsink` (librtmp).
    GstLibrtmp,
}

impl Publisher {
    /// All publisher kinds.
    pub const ALL: [Publisher; 3] = [
        Publisher::Ffmpeg,
        Publisher::GstRtmp2,
        Publisher::GstLibrtmp,
    ];

    /// The executable this publisher needs.
    pub fn binary(self) -> &'static str {
        match self {
            Publisher::Ffmpeg => "ffmpeg",
            Publisher::GstRtmp2 | Publisher::GstLibrtmp => "gst-launch-1.0",
        }
    }

    /// Short name for logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Publisher::Ffmpeg => "ffmpeg-publish",
            Publisher::GstRtmp2 => "rtmp2sink-publish",
            Publisher::GstLibrtmp => "rtmpsink-publish",
        }
    }
}

/// A client that plays a live stream and records it as FLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Player {
    /// `ffmpeg -i URL -c copy -t SECS -f flv OUT`.
    Ffmpeg,
    /// GStreamer `rtmp2src ! filesink` (raw FLV as received).
    GstRtmp2src,
    /// `rtmpdump -r URL --live -o OUT` (librtmp).
    Rtmpdump,
}

impl Player {
    /// All player kinds.
    pub const ALL: [Player; 3] = [Player::Ffmpeg, Player::GstRtmp2src, Player::Rtmpdump];

    /// The executable this player needs.
    pub fn binary(self) -> &'static str {
        match self {
            Player::Ffmpeg => "ffmpeg",
            Player::GstRtmp2src => "gst-launch-1.0",
            Player::Rtmpdump => "rtmpdump",
        }
    }

    /// Short name for logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Player::Ffmpeg => "ffmpeg-play",
            Player::GstRtmp2src => "rtmp2src-play",
            Player::Rtmpdump => "rtmpdump-play",
        }
    }
}

fn unique(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{stem}-{n}.{ext}"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The GStreamer pipeline that re-muxes the clip into `sink` (an element with
/// its properties). flvdemux → parsers → flvmux restores codec headers and
/// timestamps; `sync=true` on the sink paces the file in real time.
fn gst_publish_args(clip: &Clip, sink: &str, url: &str) -> Vec<String> {
    let clip = clip.path().display().to_string();
    let pipeline = format!(
        "filesrc location={clip} ! flvdemux name=d \
         d.video ! queue ! h264parse ! flvmux name=m streamable=true ! {sink} location={url} sync=true \
         d.audio ! queue ! aacparse ! m."
    );
    // gst-launch takes the pipeline as separate argv words.
    let mut args = vec!["-e".to_string()];
    args.extend(pipeline.split_whitespace().map(str::to_string));
    args
}

/// ffmpeg's arguments to send `clip` as it is to `url` over RTMP; `input` are options for
/// reading the clip (pace, loops).
fn ffmpeg_publish_args(clip: &Clip, input: &[&str], url: &str) -> Vec<String> {
    let clip = clip.path().display().to_string();
    let mut args = strings(&["-nostdin", "-v", "warning"]);
    args.extend(strings(input));
    args.extend(strings(&["-i", &clip, "-c", "copy", "-f", "flv", url]));
    args
}

/// Starts `kind` publishing `clip` (once, in real time: about 8 s) to `url`.
/// Its log goes to `log_dir`. The process is killed when the [`Proc`] drops;
/// use [`Proc::wait_timeout`] to let it finish.
pub fn publish(kind: Publisher, clip: &Clip, url: &str, log_dir: &Path) -> Proc {
    let log = unique(log_dir, kind.name(), "log");
    let args = match kind {
        Publisher::Ffmpeg => ffmpeg_publish_args(clip, &["-re"], url),
        Publisher::GstRtmp2 => gst_publish_args(clip, "rtmp2sink", url),
        Publisher::GstLibrtmp => gst_publish_args(clip, "rtmpsink", url),
    };
    Proc::spawn(kind.name(), kind.binary(), &args, &[], &log)
}

/// ffmpeg publishing `clip` `times` over in a row in real time (`clip.looped(times)` is what
/// its players get): for tests whose later steps need the stream still live after slow work.
pub fn publish_looped(clip: &Clip, times: usize, url: &str, log_dir: &Path) -> Proc {
    let log = unique(log_dir, "ffmpeg-looped", "log");
    let loops = times.saturating_sub(1).to_string();
    let args = ffmpeg_publish_args(clip, &["-re", "-stream_loop", &loops], url);
    Proc::spawn("ffmpeg-looped", "ffmpeg", &args, &[], &log)
}

/// A running player recording to a file, bounded by a deadline.
pub struct Recording {
    kind: Player,
    proc: Proc,
    out: PathBuf,
    deadline: Instant,
}

impl Recording {
    /// Which player this is.
    pub fn kind(&self) -> Player {
        self.kind
    }

    /// Where the FLV is being written.
    pub fn path(&self) -> &Path {
        &self.out
    }

    /// The player process (e.g. to check it is still connected).
    pub fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// Waits for the player to exit on its own or reach its deadline, stops it
    /// (SIGINT, then SIGKILL after 5 s) and returns the recording path. Panics
    /// with the player's log tail if no file was written.
    pub fn finish(mut self) -> PathBuf {
        let now = Instant::now();
        let left = self.deadline.saturating_duration_since(now);
        if self.proc.wait_timeout(left).is_none() {
            self.proc.stop_with("INT", Duration::from_secs(5));
        }
        let size = std::fs::metadata(&self.out).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 0,
            "{} wrote no recording to {}\n--- player log tail ---\n{}",
            self.kind.name(),
            self.out.display(),
            self.proc.log_tail(30)
        );
        self.out.clone()
    }
}

/// Starts `kind` playing `url` and recording about `duration` of it into
/// `out_dir` (file name chosen uniquely). Call [`Recording::finish`] to collect.
pub fn play(kind: Player, url: &str, out_dir: &Path, duration: Duration) -> Recording {
    let out = unique(out_dir, kind.name(), "flv");
    let log = out.with_extension("log");
    let o = out.display().to_string();
    let secs = format!("{:.3}", duration.as_secs_f64());
    let (args, deadline) = match kind {
        // -t ends ffmpeg by media time; the deadline is only a safety net.
        Player::Ffmpeg => (
            strings(&[
                "-nostdin", "-v", "warning", "-i", url, "-c", "copy", "-t", &secs, "-f", "flv",
                "-y", &o,
            ]),
            duration + Duration::from_secs(8),
        ),
        // rtmp2src emits the FLV stream as received (header + tags); no remux.
        Player::GstRtmp2src => {
            let loc = format!("location={url}");
            let file = format!("location={o}");
            (
                strings(&["-e", "rtmp2src", &loc, "!", "filesink", &file]),
                duration,
            )
        }
        Player::Rtmpdump => (strings(&["-r", url, "--live", "-o", &o]), duration),
    };
    let proc = Proc::spawn(kind.name(), kind.binary(), &args, &[], &log);
    Recording {
        kind,
        proc,
        out,
        deadline: Instant::now() + deadline,
    }
}

/// ffmpeg publishing the shared clip looped at 20x real time (about 1 MB/s: enough to fill the
/// kernel's socket buffers of a player that stops reading, which autotune to megabytes on
/// loopback, in a few seconds) to `url`. Runs until killed.
pub fn publish_fast(url: &str, log_dir: &Path) -> Proc {
    let input = ["-stream_loop", "-1", "-readrate", "20"];
    let args = ffmpeg_publish_args(super::shared_clip(), &input, url);
    let log = unique(log_dir, "ffmpeg-fast-publish", "log");
    Proc::spawn("ffmpeg-fast-publish", "ffmpeg", &args, &[], &log)
}

/// ffmpeg publishes the shared clip to `rtmp_url`; `player` plays `play_url` from 1 s in; the
/// publisher is killed 2.5 s later and a second one publishes the clip again from its start.
/// The recording must hold the end of the first run, then the second from clip frame 0,
/// both frame-exact, with timestamps that never go back. `what` names the player.
pub fn assert_play_across_a_republish(
    server: &super::Server,
    rtmp_url: &str,
    player: Player,
    play_url: &str,
    what: &str,
) {
    use std::thread::sleep;
    let clip = super::shared_clip();
    let mut first = publish(Publisher::Ffmpeg, clip, rtmp_url, server.dir());
    sleep(Duration::from_millis(1000));
    let recording = play(player, play_url, server.dir(), Duration::from_secs(9));
    sleep(Duration::from_millis(2500));
    first.stop_with("KILL", Duration::from_secs(1));
    sleep(Duration::from_millis(500));
    let mut second = publish(Publisher::Ffmpeg, clip, rtmp_url, server.dir());
    let rec = recording.finish();
    let runs = super::verify::contiguous_runs(&rec, clip);
    eprintln!("{what}: runs across the publisher change: {runs:?}");
    assert_eq!(
        runs.len(),
        2,
        "{what}: expected two runs, got {runs:?}\n{}",
        server.log_tail(30)
    );
    assert!(runs[0].1 >= 25, "{what}: first run too short: {runs:?}");
    assert_eq!(
        runs[1].0, 0,
        "{what}: second run starts at clip frame 0: {runs:?}"
    );
    assert!(runs[1].1 >= 50, "{what}: second run too short: {runs:?}");
    assert!(
        super::verify::timestamps_monotonic(&rec),
        "{what}: timestamps went backwards across the publisher change"
    );
    second.stop_with("INT", Duration::from_secs(2));
}
