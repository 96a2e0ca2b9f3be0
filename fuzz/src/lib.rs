//! Helpers shared by the fuzz targets.

/// How a target cuts its input into reads, taken from the first bytes of the fuzz input so
/// that libFuzzer explores read boundaries as well as content: sans-IO state machines must give
/// the same result whatever the socket reads look like.
#[derive(Debug, Clone, Copy)]
pub struct SplitPlan {
    max_piece: usize,
    seed: u32,
}

/// Largest piece per plan selector (low 3 bits of the first byte); the last means "all at once".
const MAX_PIECES: [usize; 8] = [1, 2, 7, 16, 128, 1000, 4096, usize::MAX];

impl SplitPlan {
    /// Bytes of fuzz input the plan consumes.
    pub const LEN: usize = 4;

    /// Take the plan from the front of `data`; the rest is the payload. Short inputs get the
    /// "all at once" plan.
    pub fn take(data: &[u8]) -> (SplitPlan, &[u8]) {
        match data.split_first_chunk::<{ SplitPlan::LEN }>() {
            Some((head, rest)) => {
                let plan = SplitPlan {
                    max_piece: MAX_PIECES[usize::from(head[0] & 7)],
                    // xorshift needs a non-zero state.
                    seed: u32::from_le_bytes([head[1], head[2], head[3], 0x5A]),
                };
                (plan, rest)
            }
            None => (SplitPlan::whole(), data),
        }
    }

    /// A plan that hands everything over in one read.
    pub fn whole() -> SplitPlan {
        SplitPlan {
            max_piece: usize::MAX,
            seed: 1,
        }
    }

    /// The pieces of `data` under this plan, in order; they concatenate back to `data`.
    pub fn pieces<'a>(&self, data: &'a [u8]) -> Pieces<'a> {
        Pieces {
            rest: data,
            max_piece: self.max_piece,
            state: self.seed,
        }
    }
}

/// Iterator over the pieces of a [`SplitPlan`].
pub struct Pieces<'a> {
    rest: &'a [u8],
    max_piece: usize,
    state: u32,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        // xorshift32: cheap, deterministic, and good enough to vary piece sizes.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let len = match self.max_piece {
            usize::MAX => self.rest.len(),
            max => 1 + (self.state as usize) % max,
        };
        let (piece, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        Some(piece)
    }
}
