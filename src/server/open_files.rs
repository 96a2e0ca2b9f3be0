//! The open-file limit: every RTMP connection is a descriptor, so a limit below
//! `limits.max_connections` means refused connections the operator never asked for.
//! At start-up the soft limit is raised to the hard one where the system allows it (as
//! nginx's `worker_rlimit_nofile` and systemd's `LimitNOFILE` would), and a limit still too low
//! is a warning that names both figures.

/// Descriptors kept free beside those open at start-up, for what comes and goes besides RTMP
/// connections: admin-port clients, relays, Redis, shared-object files.
pub const HEADROOM: u64 = 16;

/// The open-file limit after start-up, whether it was raised, and the RTMP connections it
/// leaves room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub before: u64,
    pub soft: u64,
    pub hard: u64,
    /// Descriptors open when counted (listeners, arbiters' event loops, logs).
    pub in_use: u64,
    /// `soft - in_use - HEADROOM`: past this many connections `accept` would take the last
    /// descriptors the admin port and relays need.
    pub connection_cap: u64,
}

/// Descriptors this process has open now (Linux: /proc/self/fd).
fn in_use() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

fn get() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the pointer we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

/// Raise the soft limit to the hard limit (capped where the kernel would refuse it).
pub fn raise() -> std::io::Result<OpenFiles> {
    let mut limit = get()?;
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads one rlimit we own. Failure leaves the old limit in place.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            limit = get()?;
        }
    }
    let in_use = in_use();
    Ok(OpenFiles {
        before,
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
        in_use,
        connection_cap: limit.rlim_cur.saturating_sub(in_use + HEADROOM).max(1),
    })
}

/// Raise the limit and say what it means for `max_connections`.
pub fn prepare(max_connections: usize) -> Option<OpenFiles> {
    let files = match raise() {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            return None;
        }
    };
    if files.soft > files.before {
        tracing::info!(
            from = files.before,
            to = files.soft,
            "raised the open-file limit to the hard limit"
        );
    }
    let wanted = max_connections as u64;
    if files.connection_cap < wanted {
        tracing::warn!(
            open_file_limit = files.soft,
            hard_limit = files.hard,
            max_connections = wanted,
            needed = wanted + files.in_use + HEADROOM,
            connection_cap = files.connection_cap,
            "the open-file limit is below what limits.max_connections needs: connections are \
             capped at {} and refused past it; raise the limit (ulimit -n, systemd LimitNOFILE, \
             docker --ulimit nofile) or lower limits.max_connections",
            files.connection_cap
        );
    }
    Some(files)
}
