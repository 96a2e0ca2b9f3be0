//! Per-track checks of a recording against its source, for files with several audio and
//! video tracks and any codec (the frame-exact check in `verify` assumes the harness clip):
//! codec configuration (extradata), packet MD5s, decoded frame MD5s and keyframe flags, one
//! stream at a time (`v:1` is the second video track).
//!
//! `ff` is the ffmpeg that reads the files (ffmpeg 9 for Enhanced RTMP codecs); ffprobe is
//! only asked for packet flags.

use std::path::Path;
use std::process::{Command, Stdio};

/// One stream's bytes as a muxer saw them.
#[derive(Debug, Clone, PartialEq)]
pub struct Packets {
    /// Codec configuration: size and MD5 (`None` when the stream has none).
    pub extradata: Option<(usize, String)>,
    /// MD5 of every packet's data, in order.
    pub md5s: Vec<String>,
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        return Err(format!("{what}: {} {}", out.status, stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last comma-separated field of each non-comment framemd5 line.
fn hashes(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_owned()))
        .filter(|h| !h.is_empty())
        .collect()
}

/// Stream `spec` of `file` (e.g. `a:0`), copied: extradata and packet MD5s.
pub fn packets(ff: &str, file: &Path, spec: &str) -> Result<Packets, String> {
    let text = run(
        Command::new(ff)
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(file)
            .args([
                "-map",
                &format!("0:{spec}"),
                "-c",
                "copy",
                "-f",
                "framemd5",
                "-",
            ]),
        &format!("packets of {spec} in {}", file.display()),
    )?;
    // `#extradata 0,      19, d6d6...`
    let extradata = text.lines().find_map(|l| {
        let rest = l.strip_prefix("#extradata ")?;
        let mut fields = rest.split(',').skip(1).map(str::trim);
        Some((fields.next()?.parse().ok()?, fields.next()?.to_owned()))
    });
    Ok(Packets {
        extradata,
        md5s: hashes(&text),
    })
}

/// Decoded frame MD5s of stream `spec`; any decoder message is an error.
pub fn frame_md5s(ff: &str, file: &Path, spec: &str) -> Result<Vec<String>, String> {
    let text = run(
        Command::new(ff)
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(file)
            .args([
                "-map",
                &format!("0:{spec}"),
                "-fps_mode",
                "passthrough",
                "-f",
                "framemd5",
                "-",
            ]),
        &format!("decoding {spec} of {}", file.display()),
    )?;
    Ok(hashes(&text))
}

/// How many streams of `kind` ("video" or "audio") `file` has.
pub fn stream_count(file: &Path, kind: &str) -> Result<usize, String> {
    let text = run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_type",
                "-of",
                "csv=p=0",
            ])
            .arg(file),
        &format!("probing {}", file.display()),
    )?;
    Ok(text.lines().filter(|l| l.trim() == kind).count())
}

/// Whether the first packet of stream `spec` is flagged as a keyframe.
pub fn first_packet_is_key(file: &Path, spec: &str) -> Result<bool, String> {
    let text = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", spec])
            .args(["-show_entries", "packet=flags", "-of", "csv=p=0"])
            .arg(file),
        &format!("packet flags of {spec} in {}", file.display()),
    )?;
    match text.lines().next() {
        Some(flags) => Ok(flags.starts_with('K')),
        None => Err(format!("{spec} of {} has no packets", file.display())),
    }
}

/// Where `got` sits in `source` as one contiguous run: the source index of its first item.
/// Items may repeat in the source (identical audio packets), so every candidate start is
/// tried.
pub fn contiguous_run(source: &[String], got: &[String]) -> Result<usize, String> {
    let Some(first) = got.first() else {
        return Err("nothing recorded".into());
    };
    let mut best = (0, None);
    for start in (0..source.len()).filter(|&i| source[i] == *first) {
        let matched = got
            .iter()
            .zip(&source[start..])
            .take_while(|(g, s)| g == s)
            .count();
        if matched == got.len() {
            return Ok(start);
        }
        if matched > best.0 {
            best = (matched, Some(start));
        }
    }
    Err(match best {
        (_, None) => "the first recorded item is not in the source".into(),
        (matched, Some(start)) => format!(
            "recorded items 0..{matched} are source {start}..{}, but recorded item {matched} \
             (of {}) is {}",
            start + matched,
            got.len(),
            match source.iter().position(|s| *s == got[matched]) {
                Some(i) => format!("source item {i}"),
                None => "not in the source".into(),
            }
        ),
    })
}
