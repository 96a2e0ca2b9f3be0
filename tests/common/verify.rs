//! Frame-exact verification of a player's recording against the source clip.

use super::clip::{parse_framemd5, Clip};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Minimum number of video frames [`verify_recording`] requires by default: one
/// full GOP (1 s of the clip).
pub const DEFAULT_MIN_FRAMES: usize = 25;

/// How many final frames of a recording may skip ahead of the exact run: the
/// clip's B-frame depth (`-bf 2`). See `compare_frames`.
pub const TAIL_REORDER_SLACK: usize = 2;

/// The outcome of [`verify_recording`]: what was found and every problem, so a
/// failure message says exactly where the recording diverged from the clip.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The recording checked.
    pub recording: PathBuf,
    /// The recording has a video stream.
    pub has_video: bool,
    /// The recording has an audio stream.
    pub has_audio: bool,
    /// Video resolution reported by ffprobe.
    pub resolution: Option<(u32, u32)>,
    /// Number of decoded video frames.
    pub frame_count: usize,
    /// Clip index of the recording's first frame, when it matched a clip keyframe.
    pub first_index: Option<usize>,
    /// Number of leading recorded frames that equal the clip's frames from
    /// `first_index` on.
    pub matched: usize,
    /// Final frames (at most [`TAIL_REORDER_SLACK`]) that skipped ahead because
    /// the player stopped between a reference frame and its B-frames.
    pub tail_reordered: usize,
    /// Every problem found; empty means the recording is frame-exact.
    pub problems: Vec<String>,
}

impl Verdict {
    /// No problems found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Panics with the full report unless the recording is frame-exact.
    pub fn assert_ok(&self) {
        assert!(self.is_ok(), "recording is not frame-exact:\n{self}");
    }

    /// Panics unless the recording is frame-exact and has at least `min` frames.
    pub fn assert_ok_with_at_least(&self, min: usize) {
        self.assert_ok();
        assert!(
            self.frame_count >= min,
            "recording has {} video frames, need at least {min}:\n{self}",
            self.frame_count
        );
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "recording {}", self.recording.display())?;
        writeln!(
            f,
            "  video={} audio={} resolution={:?} frames={} first_clip_index={:?} matched={} tail_reordered={}",
            self.has_video,
            self.has_audio,
            self.resolution,
            self.frame_count,
            self.first_index,
            self.matched,
            self.tail_reordered
        )?;
        for p in &self.problems {
            writeln!(f, "  PROBLEM: {p}")?;
        }
        Ok(())
    }
}

/// Checks `rec` against `clip`:
/// - it decodes (video and audio) with no ffmpeg error output;
/// - it has both an audio and a video stream, and the video resolution is the clip's;
/// - its decoded video frame MD5s are an exact contiguous run of the clip's,
///   starting at a clip keyframe (a live join must start on a keyframe and must
///   then lose, duplicate or reorder nothing), except that the last
///   [`TAIL_REORDER_SLACK`] frames may skip ahead where the player was stopped;
/// - it has at least [`DEFAULT_MIN_FRAMES`] frames.
pub fn verify_recording(rec: &Path, clip: &Clip) -> Verdict {
    let mut v = Verdict {
        recording: rec.to_path_buf(),
        ..Verdict::default()
    };
    probe_streams(rec, &mut v);
    if !v.has_video {
        v.problems.push("no video stream".into());
    }
    if !v.has_audio {
        v.problems.push("no audio stream".into());
    }
    let want = (clip.width(), clip.height());
    if v.has_video && v.resolution != Some(want) {
        v.problems.push(format!(
            "video resolution {:?}, clip is {want:?}",
            v.resolution
        ));
    }
    if !v.has_video {
        return v;
    }

    // Decode everything: video to framemd5 on stdout, audio to the null muxer,
    // so corrupt audio is reported too.
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-i"]).arg(rec);
    cmd.args([
        "-map",
        "0:v:0",
        "-fps_mode",
        "passthrough",
        "-f",
        "framemd5",
        "pipe:1",
    ]);
    if v.has_audio {
        cmd.args(["-map", "0:a:0", "-f", "null", "-"]);
    }
    let out = match cmd.stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) => {
            v.problems.push(format!("cannot run ffmpeg: {e}"));
            return v;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        v.problems
            .push(format!("ffmpeg decode exited with {}", out.status));
    }
    if !stderr.is_empty() {
        let shown: Vec<&str> = stderr.lines().take(10).collect();
        v.problems
            .push(format!("decode errors:\n    {}", shown.join("\n    ")));
    }
    let got = parse_framemd5(&String::from_utf8_lossy(&out.stdout));
    v.frame_count = got.len();
    compare_frames(&got, clip, &mut v);
    if v.frame_count < DEFAULT_MIN_FRAMES {
        v.problems.push(format!(
            "only {} video frames (minimum {DEFAULT_MIN_FRAMES})",
            v.frame_count
        ));
    }
    v
}

/// The contiguous-run check, separate from decoding so it is easy to follow.
fn compare_frames(got: &[String], clip: &Clip, v: &mut Verdict) {
    let want = clip.frame_md5s();
    let Some(first) = got.first() else {
        v.problems.push("no video frames decoded".into());
        return;
    };
    // testsrc2 frames are all distinct, but look at keyframes only anyway: a
    // start anywhere else is itself the failure to report.
    let Some(start) = clip
        .keyframes()
        .iter()
        .copied()
        .find(|&k| want.get(k) == Some(first))
    else {
        match want.iter().position(|h| h == first) {
            Some(i) => v.problems.push(format!(
                "first recorded frame is clip frame {i}, which is not a keyframe"
            )),
            None => v.problems.push(format!(
                "first recorded frame (md5 {first}) is not a frame of the clip"
            )),
        }
        return;
    };
    v.first_index = Some(start);
    let matched = got
        .iter()
        .zip(&want[start..])
        .take_while(|(g, w)| g == w)
        .count();
    v.matched = matched;
    if matched == got.len() {
        return;
    }
    // A recording stopped mid-stream is cut in *decode* order: its last packet can
    // be a reference frame whose preceding (in display order) B-frames were never
    // received. So up to `TAIL_REORDER_SLACK` final frames may skip ahead, as long
    // as they stay in increasing clip order. Anything earlier must match exactly.
    let rest = &got[matched..];
    let mut last = start + matched - 1;
    let tail_ok = rest.len() <= TAIL_REORDER_SLACK
        && rest.iter().all(|g| match want.iter().position(|h| h == g) {
            Some(j) if j > last && j <= last + 1 + TAIL_REORDER_SLACK => {
                last = j;
                true
            }
            _ => false,
        });
    if tail_ok {
        v.tail_reordered = rest.len();
        return;
    }
    let i = matched;
    let clip_i = start + i;
    let detail = match (got.get(i), want.get(clip_i)) {
        (Some(g), Some(_)) => match want.iter().position(|h| h == g) {
            Some(j) => format!("it equals clip frame {j} instead"),
            None => "it is not a frame of the clip".to_string(),
        },
        (Some(_), None) => "the recording is longer than the rest of the clip".to_string(),
        _ => String::new(),
    };
    v.problems.push(format!(
        "recorded frame {i} differs from clip frame {clip_i} (run started at clip frame {start}, {matched} frames matched, \
         {} recorded): {detail}",
        got.len()
    ));
}

/// Fills stream presence and video resolution from ffprobe.
fn probe_streams(rec: &Path, v: &mut Verdict) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,width,height",
            "-of",
            "flat",
        ])
        .arg(rec)
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            v.problems.push(format!(
                "ffprobe failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return;
        }
        Err(e) => {
            v.problems.push(format!("cannot run ffprobe: {e}"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // streams.stream.N.codec_type="video" / .width=320 / .height=240
    let mut kinds: Vec<(String, String)> = Vec::new();
    let (mut w, mut h) = (None, None);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("streams.stream.") else {
            continue;
        };
        let Some((idx, kv)) = rest.split_once('.') else {
            continue;
        };
        let Some((k, val)) = kv.split_once('=') else {
            continue;
        };
        let val = val.trim_matches('"');
        match k {
            "codec_type" => kinds.push((idx.to_string(), val.to_string())),
            "width" => w = w.or_else(|| val.parse::<u32>().ok()),
            "height" => h = h.or_else(|| val.parse::<u32>().ok()),
            _ => {}
        }
    }
    v.has_video = kinds.iter().any(|(_, k)| k == "video");
    v.has_audio = kinds.iter().any(|(_, k)| k == "audio");
    if let (Some(w), Some(h)) = (w, h) {
        v.resolution = Some((w, h));
    }
}

/// The recording's decoded video frames as runs of consecutive clip frames:
/// `(first clip index, length)` per run, in recording order. Frames not in the
/// clip end a run; runs of at most [`TAIL_REORDER_SLACK`] frames (a player or
/// publisher stopped between a reference frame and its B-frames) are left out.
pub fn contiguous_runs(rec: &Path, clip: &Clip) -> Vec<(usize, usize)> {
    let frames = match super::clip::video_frame_md5s(rec) {
        Ok(f) => f,
        Err(e) => panic!("cannot decode {}: {e}", rec.display()),
    };
    let index: std::collections::HashMap<&str, usize> = clip
        .frame_md5s()
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut prev: Option<usize> = None;
    for hash in &frames {
        let Some(&i) = index.get(hash.as_str()) else {
            prev = None;
            continue;
        };
        match (prev, runs.last_mut()) {
            (Some(p), Some(run)) if i == p + 1 => run.1 += 1,
            _ => runs.push((i, 1)),
        }
        prev = Some(i);
    }
    runs.retain(|&(_, len)| len > TAIL_REORDER_SLACK);
    runs
}

/// Every stream's packet decode timestamps in `rec` are non-decreasing.
pub fn timestamps_monotonic(rec: &Path) -> bool {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,dts",
            "-of",
            "csv=p=0",
        ])
        .arg(rec)
        .output();
    let Ok(out) = out else { return false };
    let mut last: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.split(',');
        let (Some(stream), Some(dts)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(dts) = dts.trim().parse::<i64>() else {
            continue;
        };
        let prev = last.entry(stream.to_string()).or_insert(i64::MIN);
        if dts < *prev {
            return false;
        }
        *prev = dts;
    }
    !last.is_empty()
}
