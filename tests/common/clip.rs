//! The source clip every publisher sends, and its reference frame hashes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Clip parameters. 25 fps with a GOP of 25 gives a keyframe every second, so any
/// player joining a live stream has a keyframe to start from within 1 s.
pub const WIDTH: u32 = 320;
/// Clip height in pixels.
pub const HEIGHT: u32 = 240;
/// Frames per second.
pub const FPS: u32 = 25;
/// Clip length in seconds.
pub const SECONDS: u32 = 8;
/// Frames between keyframes (`-g`, `-keyint_min`).
pub const GOP: u32 = 25;

/// The generated FLV (H.264 main profile with B-frames + AAC stereo) and what a
/// frame-exact receiver must reproduce: the MD5 of every decoded video frame in
/// presentation order, and which of those frames are keyframes.
#[derive(Debug, Clone)]
pub struct Clip {
    path: PathBuf,
    frame_md5s: Vec<String>,
    keyframes: Vec<usize>,
}

impl Clip {
    /// Path of the FLV file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// MD5 of each decoded video frame, in presentation order
    /// (`ffmpeg -i clip -map 0:v -f framemd5 -`, hash column).
    pub fn frame_md5s(&self) -> &[String] {
        &self.frame_md5s
    }

    /// Presentation-order indexes (into [`Clip::frame_md5s`]) of keyframes.
    pub fn keyframes(&self) -> &[usize] {
        &self.keyframes
    }

    /// Whether frame `index` is a keyframe.
    pub fn is_keyframe(&self, index: usize) -> bool {
        self.keyframes.binary_search(&index).is_ok()
    }

    /// Frame width in pixels.
    pub fn width(&self) -> u32 {
        WIDTH
    }

    /// Frame height in pixels.
    pub fn height(&self) -> u32 {
        HEIGHT
    }

    /// What a publisher of this clip `times` over in a row sends (`publish_looped`): the
    /// frames `times` over, so a recording across a seam is still one contiguous run.
    pub fn looped(&self, times: usize) -> Clip {
        let frames = self.frame_md5s.len();
        Clip {
            path: self.path.clone(),
            frame_md5s: (0..times)
                .flat_map(|_| self.frame_md5s.iter().cloned())
                .collect(),
            keyframes: (0..times)
                .flat_map(|round| self.keyframes.iter().map(move |k| round * frames + k))
                .collect(),
        }
    }
}

/// Generates (once; reused if `dir/clip.flv` already exists) the source clip in
/// `dir`: testsrc2 320x240 @25 fps, 8 s, libx264 main profile with B-frames, GOP
/// 25 without scene-cut keyframes, AAC-LC 44.1 kHz stereo from `sine`.
pub fn source_clip(dir: &Path) -> Clip {
    let path = dir.join("clip.flv");
    if !path.is_file() {
        // Write under a unique name and rename, so concurrent test binaries
        // sharing `dir` never see a half-written clip.
        let tmp = dir.join(format!("clip-{}.flv.tmp", std::process::id()));
        let video = format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}");
        let gop = GOP.to_string();
        let secs = SECONDS.to_string();
        #[rustfmt::skip]
        let args: Vec<&str> = vec![
            "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", &video,
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", &secs,
            "-c:v", "libx264", "-profile:v", "main", "-pix_fmt", "yuv420p",
            "-bf", "2", "-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0",
            "-c:a", "aac", "-ar", "44100", "-ac", "2", "-b:a", "128k",
            "-f", "flv", tmp.to_str().expect("utf-8 temp path"),
        ];
        let out = Command::new("ffmpeg")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run ffmpeg");
        assert!(
            out.status.success(),
            "clip generation failed: ffmpeg {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &path).expect("rename clip into place");
    }
    let frame_md5s =
        video_frame_md5s(&path).unwrap_or_else(|e| panic!("hashing the source clip: {e}"));
    let keyframes = keyframe_indexes(&path);
    assert_eq!(
        frame_md5s.len(),
        (FPS * SECONDS) as usize,
        "source clip should have exactly {} video frames",
        FPS * SECONDS
    );
    assert!(
        keyframes.len() >= (SECONDS as usize) && keyframes.first() == Some(&0),
        "source clip keyframes look wrong: {keyframes:?}"
    );
    Clip {
        path,
        frame_md5s,
        keyframes,
    }
}

/// The clip shared by every test in this process, cached on disk under cargo's
/// per-package test temp dir (`CARGO_TARGET_TMPDIR`) across runs.
pub fn shared_clip() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("harness-clip-v1");
        std::fs::create_dir_all(&dir).expect("create clip cache dir");
        source_clip(&dir)
    })
}

/// MD5 of each decoded video frame of `file` in presentation order. Frame timing
/// is passed through untouched (`-fps_mode passthrough`) so ffmpeg neither drops
/// nor duplicates frames to fit a frame rate. Returns ffmpeg's error output if it
/// printed any (a clean decode prints nothing at `-v error`).
pub fn video_frame_md5s(file: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "framemd5",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() || !stderr.is_empty() {
        return Err(format!(
            "ffmpeg framemd5 of {} ({}): {stderr}",
            file.display(),
            out.status
        ));
    }
    Ok(parse_framemd5(&String::from_utf8_lossy(&out.stdout)))
}

/// Hash column of framemd5 output: `stream, dts, pts, duration, size, hash`.
pub fn parse_framemd5(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_string()))
        .collect()
}

/// Presentation-order indexes of decoded video frames flagged as keyframes by
/// `ffprobe -show_frames` (flat output, which stays one key per line even when
/// frames carry side data).
pub fn keyframe_indexes(file: &Path) -> Vec<usize> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_frames",
            "-show_entries",
            "frame=key_frame",
            "-of",
            "flat",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe -show_frames failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut keys = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // frames.frame.N.key_frame=1
        let Some(rest) = line.strip_prefix("frames.frame.") else {
            continue;
        };
        let Some((idx, tail)) = rest.split_once('.') else {
            continue;
        };
        if tail == "key_frame=1" {
            if let Ok(i) = idx.parse::<usize>() {
                keys.push(i);
            }
        }
    }
    keys.sort_unstable();
    keys
}
