use super::*;

/// A real `/proc/self/stat` line whose command name holds `) (` and spaces.
const STAT: &str = "4242 (a) b (c d) S 1 4242 4242 0 -1 4194560 1200 0 3 0 250 75 0 0 20 0 \
                    9 0 123456 987654321 3210 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 \
                    17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

#[test]
fn stat_fields_are_counted_from_the_last_parenthesis() {
    let s = parse_stat(STAT).unwrap();
    assert_eq!(
        s,
        Stat {
            cpu_ticks: 325,
            threads: 9,
            start_ticks: 123_456,
            vsize_bytes: 987_654_321,
            rss_pages: 3210,
        }
    );
}

#[test]
fn a_truncated_or_garbled_stat_is_none() {
    assert_eq!(parse_stat(""), None);
    assert_eq!(parse_stat("1 (x) S 1 2 3"), None);
    assert_eq!(parse_stat(&STAT.replace(" 250 ", " x ")), None);
}

#[test]
fn boot_time_and_open_file_limit() {
    let stat = "cpu  1 2 3\nintr 5\nbtime 1764800000\nprocesses 9\n";
    assert_eq!(parse_boot_time(stat), Some(1_764_800_000));
    assert_eq!(parse_boot_time("cpu 1\n"), None);
    let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                  Max cpu time              unlimited            unlimited            seconds   \n\
                  Max open files            1024                 524288               files     \n";
    assert_eq!(parse_max_open_files(limits), Some(1024));
    let unlimited = "Max open files            unlimited            unlimited            files\n";
    assert_eq!(parse_max_open_files(unlimited), None);
}

#[test]
fn this_process_reads_sensibly_on_linux() {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return;
    }
    let p = read();
    let rss = p.resident_bytes.unwrap();
    assert!(rss > 100_000, "rss {rss}");
    assert!(p.virtual_bytes.unwrap() >= rss);
    assert!(p.threads.unwrap() >= 1);
    let started = p.start_time_seconds.unwrap();
    let now = unix_now();
    assert!(
        started <= now + 1.0 && started > now - 86_400.0 * 30.0,
        "{started} vs {now}"
    );
    let (open, max) = (p.open_fds.unwrap(), p.max_fds.unwrap());
    assert!(open >= 3 && open <= max, "{open} of {max}");
    assert!(p.cpu_seconds.unwrap() >= 0.0);
}
