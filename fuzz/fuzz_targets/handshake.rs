//! Handshake state machines on arbitrary peer bytes in arbitrary reads: the server fed as if
//! the bytes were C0+C1+C2, a client (plain or digest, after `start`) as if they were S0+S1+S2.
//!
//! Invariants: no panic; errors are final (the next call returns the same error); the answer
//! is written exactly once and has the right size (S0+S1+S2 = 3073 bytes, C2 = 1536); S2 echoes
//! C1 (verbatim for a simple C1, all but the 32-byte signature for a digest C1); Done comes
//! exactly when 3073 peer bytes were consumed; and the outcome does not depend on the reads.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use reflector::protocol::handshake::{
    ClientHandshake, HandshakeError, HandshakeScheme, HandshakeState, ServerHandshake,
    HANDSHAKE_SIZE,
};
use reflector_fuzz::SplitPlan;

/// C0/S0 + C1/S1 + C2/S2.
const FULL: usize = 1 + 2 * HANDSHAKE_SIZE;
/// C0/S0 + C1/S1: what must be in before the answer goes out.
const FIRST_TWO: usize = 1 + HANDSHAKE_SIZE;

#[derive(Debug, PartialEq)]
struct Outcome {
    result: Result<HandshakeState, HandshakeError>,
    consumed: usize,
    sent: usize,
}

trait Side {
    fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeState, HandshakeError>;
}

impl Side for ServerHandshake {
    fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeState, HandshakeError> {
        ServerHandshake::process(self, input, out)
    }
}

impl Side for ClientHandshake {
    fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeState, HandshakeError> {
        ClientHandshake::process(self, input, out)
    }
}

/// Feed `pieces` to `side`; `answer_len` is what it must write once the peer's first two
/// blocks are in.
fn run<'a>(
    side: &mut dyn Side,
    pieces: impl Iterator<Item = &'a [u8]>,
    answer_len: usize,
) -> (Outcome, BytesMut) {
    let mut input = BytesMut::new();
    let mut out = BytesMut::new();
    let mut fed = 0usize;
    let mut result = Ok(HandshakeState::InProgress);
    for piece in pieces {
        input.extend_from_slice(piece);
        fed += piece.len();
        result = side.process(&mut input, &mut out);
        let consumed = fed - input.len();
        match &result {
            Ok(HandshakeState::Done) => {
                assert_eq!(consumed, FULL);
                assert_eq!(out.len(), answer_len);
                break;
            }
            Ok(HandshakeState::InProgress) => {
                assert!(consumed < FULL);
                // The answer goes out exactly when the first two blocks are in, all at once.
                if consumed >= FIRST_TWO {
                    assert_eq!(out.len(), answer_len);
                } else {
                    assert_eq!(out.len(), 0);
                }
            }
            Err(error) => {
                let again = side.process(&mut input, &mut out);
                assert_eq!(again.as_ref(), Err(error), "handshake errors are final");
                break;
            }
        }
    }
    let consumed = fed - input.len();
    (
        Outcome {
            result,
            consumed,
            sent: out.len(),
        },
        out,
    )
}

fn server(plan: SplitPlan, input: &[u8]) -> Outcome {
    let mut handshake = ServerHandshake::new();
    let (outcome, out) = run(&mut handshake, plan.pieces(input), FULL);
    if outcome.sent == FULL {
        let c1 = &input[1..FIRST_TWO];
        let s2 = &out[FIRST_TWO..];
        match handshake.scheme() {
            Some(HandshakeScheme::Simple) => assert_eq!(s2, c1),
            Some(_) => assert_eq!(s2[..HANDSHAKE_SIZE - 32], c1[..HANDSHAKE_SIZE - 32]),
            None => panic!("S0+S1+S2 sent without a scheme"),
        }
        assert_eq!(out[0], 3);
        assert_eq!(
            handshake.client_version().map(|v| v.to_vec()),
            Some(c1[4..8].to_vec())
        );
    }
    outcome
}

fn client(plan: SplitPlan, input: &[u8], digest: bool) -> Outcome {
    let mut handshake = ClientHandshake::new(digest);
    let mut c0c1 = BytesMut::new();
    handshake.start(&mut c0c1);
    assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
    let mut again = BytesMut::new();
    handshake.start(&mut again);
    assert!(again.is_empty(), "start twice writes nothing");
    let (outcome, out) = run(&mut handshake, plan.pieces(input), HANDSHAKE_SIZE);
    if outcome.sent == HANDSHAKE_SIZE && handshake.scheme() == Some(HandshakeScheme::Simple) {
        // A simple C2 echoes S1.
        assert_eq!(out[..], input[1..FIRST_TWO]);
    }
    outcome
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let (plan, input) = SplitPlan::take(data);
    let whole = SplitPlan::whole();
    assert_eq!(server(plan, input), server(whole, input));
    let digest = mode & 1 == 1;
    assert_eq!(client(plan, input, digest), client(whole, input, digest));
});
