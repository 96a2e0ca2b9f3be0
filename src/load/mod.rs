//! Library side of the load tool (`src/bin/reflector-load.rs`): a fixed-size latency
//! histogram, the timing stamp carried in synthetic video frames, and /proc sampling of a
//! server process (CPU ticks, RSS, per-thread CPU) and of the tool itself. The players
//! ([`player`]) run on player threads ([`worker`]); [`fds`] checks a run fits the open-file
//! limit.

pub mod fds;
pub mod player;
pub mod worker;

use std::collections::HashMap;
use std::fs;

use serde::Serialize;

/// Sub-buckets per power of two: values are kept to within 1/32 (about 3 %).
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for every u64.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// A log-linear histogram of u64 values (the load tool records microseconds): exact below
/// 32, then 32 buckets per power of two. Fixed size (15 KiB), no allocation per record.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = (v >> (exp - SUB_BITS)) & (SUB - 1);
    ((exp - SUB_BITS + 1) as usize) * SUB as usize + sub as usize
}

/// Lowest value that falls in bucket `i`.
fn bucket_floor(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let exp = i / SUB + u64::from(SUB_BITS) - 1;
    let sub = i % SUB;
    (SUB + sub) << (exp - u64::from(SUB_BITS))
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(bucket_of(v)) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), as the floor of its bucket (never above `max`).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_floor(i).min(self.max);
            }
        }
        self.max
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.max = 0;
    }
}

/// Where the load tool's publisher writes its send time in a synthetic video frame made by
/// [`crate::client::synth::video_frame`]: right after the marker and sequence number, inside
/// the padding of the NAL unit (tag header 5 + NAL length 4 + NAL type 1 + marker 4 + seq 8).
pub const STAMP_OFFSET: usize = 22;
/// Smallest video tag body that has room for the stamp.
pub const STAMPED_MIN_SIZE: usize = STAMP_OFFSET + 8;

/// The send time (nanoseconds since the tool started) stamped into a video frame, if the
/// payload is long enough to carry one.
pub fn read_stamp(payload: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = payload
        .get(STAMP_OFFSET..STAMPED_MIN_SIZE)?
        .try_into()
        .ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Write the send time into a video frame (no-op if it is too short).
pub fn write_stamp(payload: &mut [u8], nanos: u64) {
    if let Some(slot) = payload.get_mut(STAMP_OFFSET..STAMPED_MIN_SIZE) {
        slot.copy_from_slice(&nanos.to_be_bytes());
    }
}

/// Where the send time sits in a synthetic AAC frame made by
/// [`crate::client::synth::aac_frame`]: after the tag header (2), marker (4) and sequence (8).
pub const AUDIO_STAMP_OFFSET: usize = 14;

/// The send time stamped into a synthetic AAC frame, if it is long enough to carry one.
pub fn read_audio_stamp(payload: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = payload
        .get(AUDIO_STAMP_OFFSET..AUDIO_STAMP_OFFSET + 8)?
        .try_into()
        .ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Write the send time into a synthetic AAC frame (no-op if it is too short).
pub fn write_audio_stamp(payload: &mut [u8], nanos: u64) {
    if let Some(slot) = payload.get_mut(AUDIO_STAMP_OFFSET..AUDIO_STAMP_OFFSET + 8) {
        slot.copy_from_slice(&nanos.to_be_bytes());
    }
}

/// CPU time and memory of a process tree at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// utime + stime in clock ticks, summed over the process and its direct children.
    pub cpu_ticks: u64,
    /// Resident set size, KiB, summed likewise.
    pub rss_kb: u64,
    /// Peak resident set size (VmHWM), KiB, summed likewise.
    pub hwm_kb: u64,
    /// Time its threads spent runnable but waiting for a CPU (schedstat), nanoseconds: how
    /// much other processes on the same core held it back.
    pub runq_wait_ns: u64,
}

/// Clock ticks per second for /proc CPU times.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// A /proc stat line split around the command name, which may itself hold spaces and
/// parentheses (`actix-server ac`, `(sd-pam)`): the name, then the fields from `state`
/// (field 3 of proc(5)) on, so `state` is index 0.
pub fn split_stat(text: &str) -> Option<(&str, Vec<&str>)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?;
    let rest = text.get(close + 1..)?;
    Some((name, rest.split_whitespace().collect()))
}

/// utime + stime in clock ticks from the fields [`split_stat`] returns (fields 14 and 15 of
/// proc(5): indices 11 and 12).
fn cpu_ticks_of(fields: &[&str]) -> Option<u64> {
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The /proc/PID/stat line, for [`split_stat`].
fn stat_text(pid: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

fn status_kb(pid: &str, key: &str) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn one(pid: &str) -> Option<ProcSample> {
    let text = stat_text(pid)?;
    let (_, f) = split_stat(&text)?;
    Some(ProcSample {
        cpu_ticks: cpu_ticks_of(&f)?,
        rss_kb: status_kb(pid, "VmRSS:"),
        hwm_kb: status_kb(pid, "VmHWM:"),
        runq_wait_ns: runq_wait_ns(pid),
    })
}

/// Sum of the second field of /proc/PID/task/*/schedstat (run-queue wait, ns).
fn runq_wait_ns(pid: &str) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// Direct children of `pid` (e.g. nginx's worker under its master), found by scanning /proc.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parent = pid.to_string();
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|name| {
            // ppid is field 4: index 1.
            stat_text(name).is_some_and(|text| {
                split_stat(&text).and_then(|(_, f)| f.get(1).copied()) == Some(parent.as_str())
            })
        })
        .filter_map(|name| name.parse().ok())
        .collect()
}

/// Sample `pid` plus the given children; `None` if `pid` is gone.
pub fn sample_tree(pid: u32, kids: &[u32]) -> Option<ProcSample> {
    let mut total = one(&pid.to_string())?;
    for kid in kids {
        if let Some(s) = one(&kid.to_string()) {
            total.cpu_ticks += s.cpu_ticks;
            total.rss_kb += s.rss_kb;
            total.hwm_kb += s.hwm_kb;
            total.runq_wait_ns += s.runq_wait_ns;
        }
    }
    Some(total)
}

/// One thread's name and CPU time at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSample {
    pub pid: u32,
    pub tid: u32,
    /// `comm`: the kernel keeps 15 bytes, so every actix arbiter of a process shows as
    /// `actix-rt|system` and only the tid tells them apart.
    pub name: String,
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
}

/// Parse one /proc/PID/task/TID/stat line.
pub fn parse_thread_stat(pid: u32, tid: u32, text: &str) -> Option<ThreadSample> {
    let (name, fields) = split_stat(text)?;
    Some(ThreadSample {
        pid,
        tid,
        name: name.to_owned(),
        cpu_ticks: cpu_ticks_of(&fields)?,
    })
}

/// Every thread of `pid`, in tid order (creation order unless tids wrapped); empty if the
/// process is gone.
pub fn sample_threads(pid: u32) -> Vec<ThreadSample> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<ThreadSample> = tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let tid: u32 = t.file_name().to_str()?.parse().ok()?;
            let text = fs::read_to_string(t.path().join("stat")).ok()?;
            parse_thread_stat(pid, tid, &text)
        })
        .collect();
    out.sort_by_key(|t| t.tid);
    out
}

/// One thread's CPU use over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadCpu {
    pub pid: u32,
    pub tid: u32,
    pub name: String,
    /// Percent of one core.
    pub cpu_pct: f64,
}

/// CPU % of every thread between two samples, busiest first (ties in tid order). A thread
/// that started inside the window counts from zero; one that ended inside it is left out,
/// as its time after the first sample is unknown.
pub fn thread_cpu(
    before: &[ThreadSample],
    after: &[ThreadSample],
    ticks_per_s: f64,
    secs: f64,
) -> Vec<ThreadCpu> {
    let start: HashMap<(u32, u32), u64> = before
        .iter()
        .map(|t| ((t.pid, t.tid), t.cpu_ticks))
        .collect();
    let scale = if ticks_per_s > 0.0 && secs > 0.0 {
        100.0 / ticks_per_s / secs
    } else {
        0.0
    };
    let mut out: Vec<ThreadCpu> = after
        .iter()
        .map(|t| {
            let t0 = start.get(&(t.pid, t.tid)).copied().unwrap_or(0);
            ThreadCpu {
                pid: t.pid,
                tid: t.tid,
                name: t.name.clone(),
                cpu_pct: t.cpu_ticks.saturating_sub(t0) as f64 * scale,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.cpu_pct
            .total_cmp(&a.cpu_pct)
            .then((a.pid, a.tid).cmp(&(b.pid, b.tid)))
    });
    out
}

/// CPU % summed per (process, thread name), busiest first: the cost of each kind of
/// thread (arbiters, admin, Redis client...) whatever their number.
pub fn thread_groups(threads: &[ThreadCpu]) -> Vec<ThreadCpu> {
    let mut out: Vec<ThreadCpu> = Vec::new();
    for t in threads {
        match out.iter_mut().find(|g| g.pid == t.pid && g.name == t.name) {
            Some(g) => g.cpu_pct += t.cpu_pct,
            None => out.push(ThreadCpu {
                // 0: a group, not one thread.
                tid: 0,
                ..t.clone()
            }),
        }
    }
    out.sort_by(|a, b| b.cpu_pct.total_cmp(&a.cpu_pct));
    out
}

/// The tool's own process.
pub fn sample_self() -> ProcSample {
    one("self").unwrap_or_default()
}

/// The whole machine at one moment: CPU busy time over every core and TCP segments sent.
/// On loopback the server's figure alone misses kernel work done for it in other contexts
/// (a segment held back by Nagle's algorithm is sent, and received, from the context that
/// processes the peer's ACK: the load tool's), so the machine's figure is the one that counts
/// every cycle spent delivering the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineSample {
    /// user + nice + system + irq + softirq + steal, in clock ticks, all cores.
    pub busy_ticks: u64,
    /// `Tcp: OutSegs` of /proc/net/snmp (both directions of loopback traffic count).
    pub tcp_out_segs: u64,
}

/// Sample the machine, if /proc has what is needed.
pub fn sample_machine() -> Option<MachineSample> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let snmp = fs::read_to_string("/proc/net/snmp").ok()?;
    Some(MachineSample {
        busy_ticks: parse_busy_ticks(&stat)?,
        tcp_out_segs: parse_snmp(&snmp, "Tcp:", "OutSegs")?,
    })
}

/// Busy ticks from the aggregate `cpu` line of /proc/stat.
fn parse_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// One counter of /proc/net/snmp: a header line of names, then a line of values, both
/// starting with `prefix`.
fn parse_snmp(snmp: &str, prefix: &str, name: &str) -> Option<u64> {
    let mut lines = snmp.lines().filter(|l| l.starts_with(prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let index = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(index)?.parse().ok()
}

/// Raise the soft RLIMIT_NOFILE to the hard limit. Returns the (soft, hard) limits now in
/// force, or the OS error.
pub fn raise_nofile() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = want;
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..200_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b >= last && b < BUCKETS, "v={v} b={b}");
            last = b;
            let floor = bucket_floor(b);
            assert!(floor <= v && v - floor <= v / 32 + 1, "v={v} floor={floor}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), 1000);
        let p50 = h.quantile(0.5);
        assert!((485..=500).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((960..=990).contains(&p99), "{p99}");
        let mut g = Histogram::default();
        g.record(5000);
        h.merge(&g);
        assert_eq!(h.max(), 5000);
        assert_eq!(h.quantile(1.0), 5000u64.min(bucket_floor(bucket_of(5000))));
    }

    #[test]
    fn stamp_round_trip() {
        let mut frame = crate::client::synth::video_frame(7, true, 300).to_vec();
        write_stamp(&mut frame, 123_456_789);
        assert_eq!(read_stamp(&frame), Some(123_456_789));
        assert_eq!(crate::client::synth::video_seq(&frame), Some(7));
        assert_eq!(read_stamp(&frame[..20]), None);
    }

    #[test]
    fn parses_machine_counters() {
        let stat = "cpu  100 2 30 5000 7 1 4 3 0 0\ncpu0 50 1 15 2500 3 0 2 1 0 0\n";
        assert_eq!(parse_busy_ticks(stat), Some(100 + 2 + 30 + 1 + 4 + 3));
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm RtoMin InSegs OutSegs\nTcp: 1 200 555 777\n";
        assert_eq!(parse_snmp(snmp, "Tcp:", "OutSegs"), Some(777));
        assert_eq!(parse_snmp(snmp, "Tcp:", "Missing"), None);
        assert!(sample_machine().is_some_and(|m| m.busy_ticks > 0));
    }

    #[test]
    fn audio_stamp_round_trip() {
        let mut frame = crate::client::synth::aac_frame(9, 300).to_vec();
        write_audio_stamp(&mut frame, 987_654_321);
        assert_eq!(read_audio_stamp(&frame), Some(987_654_321));
        // The stamp sits after the sequence number, which stays readable.
        assert_eq!(crate::client::synth::audio_seq(&frame), Some(9));
        assert_eq!(read_audio_stamp(&frame[..20]), None);
    }

    #[test]
    fn stat_line_with_spaces_and_parentheses_in_the_name() {
        let line = "4242 (actix-server ac) S 1 4242 9 0 -1 4194304 10 0 0 0 123 45 0 0 20 0 6 0";
        let (name, f) = split_stat(line).expect("parses");
        assert_eq!(name, "actix-server ac");
        assert_eq!(f.first().copied(), Some("S"));
        assert_eq!(f.get(1).copied(), Some("1"));
        assert_eq!(cpu_ticks_of(&f), Some(168));
        let t = parse_thread_stat(4200, 4242, line).expect("thread");
        assert_eq!(t.name, "actix-server ac");
        assert_eq!(t.cpu_ticks, 168);
        // A name that closes a parenthesis of its own: the last ')' ends it.
        let odd = "7 (a) b) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0";
        let t = parse_thread_stat(7, 7, odd).expect("odd name");
        assert_eq!((t.name.as_str(), t.cpu_ticks), ("a) b", 11));
    }

    #[test]
    fn bad_thread_stat_lines_are_rejected() {
        assert_eq!(parse_thread_stat(1, 1, ""), None);
        assert_eq!(parse_thread_stat(1, 1, "1 (x S 1 2"), None);
        assert_eq!(parse_thread_stat(1, 1, "1 (x) S 1 2 3"), None);
        let not_a_number = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 6 0 0 20 0 1 0";
        assert_eq!(parse_thread_stat(1, 1, not_a_number), None);
    }

    fn ts(pid: u32, tid: u32, name: &str, cpu_ticks: u64) -> ThreadSample {
        ThreadSample {
            pid,
            tid,
            name: name.to_owned(),
            cpu_ticks,
        }
    }

    #[test]
    fn thread_cpu_over_a_window() {
        let before = [
            ts(10, 10, "reflector", 100),
            ts(10, 11, "actix-rt|system", 1000),
            ts(10, 12, "actix-rt|system", 2000),
            ts(10, 13, "gone", 5),
        ];
        let after = [
            ts(10, 10, "reflector", 110),
            ts(10, 11, "actix-rt|system", 1300),
            ts(10, 12, "actix-rt|system", 2200),
            // Started inside the window.
            ts(10, 14, "tokio-runtime-w", 50),
            // Another process, same tid numbering space.
            ts(20, 21, "actix-rt|system", 100),
        ];
        // 100 ticks/s over 2 s: 200 ticks are one core.
        let cpu = thread_cpu(&before, &after, 100.0, 2.0);
        let got: Vec<(u32, u32, f64)> = cpu.iter().map(|t| (t.pid, t.tid, t.cpu_pct)).collect();
        assert_eq!(
            got,
            [
                (10, 11, 150.0),
                (10, 12, 100.0),
                (20, 21, 50.0),
                (10, 14, 25.0),
                (10, 10, 5.0),
            ]
        );
        let groups = thread_groups(&cpu);
        let g: Vec<(u32, &str, f64)> = groups
            .iter()
            .map(|t| (t.pid, t.name.as_str(), t.cpu_pct))
            .collect();
        assert_eq!(
            g,
            [
                (10, "actix-rt|system", 250.0),
                (20, "actix-rt|system", 50.0),
                (10, "tokio-runtime-w", 25.0),
                (10, "reflector", 5.0),
            ]
        );
        assert!(thread_cpu(&before, &after, 0.0, 2.0)
            .iter()
            .all(|t| t.cpu_pct == 0.0));
    }

    #[test]
    fn finds_direct_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let kids = children(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(kids.contains(&child.id()), "{kids:?}");
    }

    #[test]
    fn samples_own_threads() {
        let me = std::process::id();
        let threads = sample_threads(me);
        assert!(threads.iter().any(|t| t.tid == me), "{threads:?}");
        assert!(threads.windows(2).all(|w| w[0].tid < w[1].tid));
    }

    #[test]
    fn samples_self() {
        let s = sample_self();
        assert!(s.rss_kb > 0);
        assert!(clock_ticks_per_sec() > 0);
    }
}
