//! The open-file budget of a run: every player is a socket, and these machines cap open
//! files at 20000 (hard), so a run that cannot fit is refused before it starts rather than
//! failing half-way with EMFILE.

/// Files the tool holds besides its players' sockets: stdio, the publisher and a late
/// joiner, /proc files being read, and per thread a runtime's epoll, eventfd and timer.
pub fn files_needed(players: usize, threads: usize) -> u64 {
    players as u64 + 32 + 4 * threads as u64
}

/// Most players that fit under `limit` open files with `threads` threads.
pub fn players_that_fit(limit: u64, threads: usize) -> u64 {
    limit.saturating_sub(files_needed(0, threads))
}

/// `Err` with the message to print when `players` (connections held at once) cannot fit
/// under the soft limit `soft` (already raised to the hard limit `hard` if allowed).
pub fn check(players: usize, threads: usize, soft: u64, hard: u64) -> Result<(), String> {
    let need = files_needed(players, threads);
    if need <= soft {
        return Ok(());
    }
    Err(format!(
        "refusing to run: {players} players need about {need} open files, above the \
         open-file limit of {soft} (hard limit {hard}); at most {} players fit in one \
         process here. Raise the hard limit (ulimit -Hn, LimitNOFILE) or split the players \
         over several reflector-load processes",
        players_that_fit(soft, threads)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_cannot_fit_and_says_how_many_can() {
        assert!(check(16_000, 8, 20_000, 20_000).is_ok());
        let fit = players_that_fit(20_000, 8);
        assert_eq!(fit, 20_000 - 32 - 32);
        assert!(check(fit as usize, 8, 20_000, 20_000).is_ok());
        let err = check(fit as usize + 1, 8, 20_000, 20_000).expect_err("one too many");
        assert!(err.contains("refusing to run"), "{err}");
        assert!(err.contains("open-file limit of 20000"), "{err}");
        assert!(err.contains(&format!("at most {fit} players")), "{err}");
    }
}
