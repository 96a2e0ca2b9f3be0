//! The standard `process_*` metrics (as Prometheus' client libraries export them), read from
//! `/proc/self` (proc(5)). Where `/proc` is missing (not Linux, a sandbox) they are left out.

use std::time::{SystemTime, UNIX_EPOCH};

/// One reading of the process' figures; each is `None` when its source could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Process {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// The fields of `/proc/self/stat` used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub threads: u64,
    /// Start time after boot, in clock ticks.
    pub start_ticks: u64,
    pub vsize_bytes: u64,
    pub rss_pages: u64,
}

/// Parse `/proc/self/stat`. The command name (field 2) is in parentheses and may hold spaces
/// and parentheses itself, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3] (proc(5)).
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)?.checked_add(field(15)?)?,
        threads: field(20)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
        rss_pages: field(24)?,
    })
}

/// The boot time (`btime`, seconds since the epoch) from `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft "Max open files" limit from `/proc/self/limits` (`None` when unlimited).
pub fn parse_max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

/// Read the figures now.
pub fn read() -> Process {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_stat(&t));
    let ticks = sysconf(libc::_SC_CLK_TCK).map(|t| t as f64);
    let page = sysconf(libc::_SC_PAGESIZE);
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_boot_time(&t));
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        // The directory handle read_dir holds is one of the entries: not counted.
        .map(|d| (d.count() as u64).saturating_sub(1));
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| parse_max_open_files(&t));
    Process {
        cpu_seconds: stat.zip(ticks).map(|(s, t)| s.cpu_ticks as f64 / t),
        resident_bytes: stat.zip(page).map(|(s, p)| s.rss_pages.saturating_mul(p)),
        virtual_bytes: stat.map(|s| s.vsize_bytes),
        threads: stat.map(|s| s.threads),
        start_time_seconds: stat
            .zip(ticks)
            .zip(boot)
            .map(|((s, t), b)| b as f64 + s.start_ticks as f64 / t),
        open_fds,
        max_fds,
    }
}

/// Seconds since the epoch now (for sanity checks of the start time).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
