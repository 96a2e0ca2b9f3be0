use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::*;
use crate::stats::StreamStats;

/// `name{labels} value` lines of the exposition, comments left out.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn value(text: &str, key: &str) -> f64 {
    samples(text)
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{key} missing in\n{text}"))
        .1
}

#[test]
fn names_follow_prometheus_conventions() {
    let stats = ServerStats::default();
    stats.closed_bytes_out.store(1234, Relaxed);
    stats.closed_bytes_in.store(99, Relaxed);
    stats.refusals.count(RefusalReason::Conflict);
    stats.refusals.count(RefusalReason::Conflict);
    let text = render(&stats, &StreamSeries::new(10)).unwrap();
    assert_eq!(value(&text, "reflector_sent_bytes_total"), 1234.0);
    assert_eq!(value(&text, "reflector_received_bytes_total"), 99.0);
    // Every reason is present, zeros included.
    for reason in RefusalReason::ALL {
        let want = if reason == RefusalReason::Conflict {
            2.0
        } else {
            0.0
        };
        let key = format!("reflector_refusals_total{{reason=\"{}\"}}", reason.as_str());
        assert_eq!(value(&text, &key), want, "{key}");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!(
            "reflector_build_info{{version=\"{version}\",revision=\""
        )),
        "{text}"
    );
    // Counters end in _total; no server-computed rates remain.
    for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
        let f: Vec<&str> = line.split(' ').collect();
        if f[3] == "counter" {
            let sample = format!("{}_total", f[2]);
            assert!(
                samples(&text).iter().any(|(k, _)| k.starts_with(&sample)),
                "{sample}"
            );
        }
    }
    assert!(!text.contains("bits_per_second"), "{text}");
    assert!(!text.contains("top_stream"), "{text}");
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(text.matches("# EOF").count(), 1);
    if std::path::Path::new("/proc/self/stat").exists() {
        assert!(value(&text, "process_resident_memory_bytes") > 0.0);
        assert!(value(&text, "process_cpu_seconds_total") >= 0.0);
        assert!(value(&text, "process_open_fds") >= 3.0);
    }
}

#[test]
fn per_stream_series_escape_names_and_sum_the_rest() {
    let stats = ServerStats::default();
    for (name, bytes) in [("a\"b\\c", 10u64), ("z", 5)] {
        let s = Arc::new(StreamStats::new("live", name));
        s.bytes_in.store(bytes, Relaxed);
        stats.streams.insert(format!("live/{name}"), s);
    }
    let text = render(&stats, &StreamSeries::new(1)).unwrap();
    assert_eq!(
        value(
            &text,
            r#"reflector_stream_received_bytes_total{app="live",name="a\"b\\c"}"#
        ),
        10.0
    );
    assert_eq!(
        value(
            &text,
            r##"reflector_stream_received_bytes_total{app="#other",name="#other"}"##
        ),
        5.0
    );
    assert_eq!(
        value(
            &text,
            r##"reflector_stream_dropped_frames_total{app="#other",name="#other",reason="video"}"##
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            r##"reflector_stream_players{app="#other",name="#other"}"##
        ),
        0.0
    );
}
