//! The WebSocket frame decoder on arbitrary bytes in arbitrary reads, as a server (client
//! frames must be masked) or as a client (server frames must not be).
//!
//! Invariants: no panic; no payload over the limit; control frames are final and at most
//! 125 bytes; a continuation only inside a fragmented message and a new data frame only
//! outside one; every byte is consumed or still buffered; errors are final and carry a close
//! code of 1002, 1007 or 1009; the frames and the error do not depend on the reads; every
//! frame re-encodes to bytes that decode to the same frame.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use reflector::protocol::websocket::{
    accept_key, client_frame, frame_header, FrameDecoder, Opcode, WsError, WsFrame,
};
use reflector_fuzz::SplitPlan;

const MAX_PAYLOAD: usize = 1024;

fn decoder(server: bool) -> FrameDecoder {
    if server {
        FrameDecoder::new(MAX_PAYLOAD)
    } else {
        FrameDecoder::for_client(MAX_PAYLOAD)
    }
}

fn run(server: bool, plan: SplitPlan, input: &[u8]) -> (Vec<WsFrame>, Option<WsError>) {
    let mut d = decoder(server);
    let (mut buf, mut frames, mut consumed, mut fed) = (BytesMut::new(), Vec::new(), 0, 0);
    let mut in_message = false;
    for piece in plan.pieces(input) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            let before = buf.len();
            match d.decode(&mut buf) {
                Ok(Some(f)) => {
                    consumed += before - buf.len();
                    assert!(f.payload.len() <= MAX_PAYLOAD);
                    if matches!(f.opcode, Opcode::Close | Opcode::Ping | Opcode::Pong) {
                        assert!(f.fin && f.payload.len() <= 125);
                    } else {
                        assert_eq!(f.opcode == Opcode::Continuation, in_message);
                        in_message = !f.fin;
                    }
                    frames.push(f);
                }
                Ok(None) => {
                    assert_eq!(before, buf.len());
                    break;
                }
                Err(e) => {
                    assert!([1002, 1007, 1009].contains(&e.close_code()));
                    assert_eq!(d.decode(&mut buf), Err(e.clone()), "errors are final");
                    return (frames, Some(e));
                }
            }
        }
        assert_eq!(consumed + buf.len(), fed, "every byte consumed or buffered");
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let server = mode & 1 == 0;
    let (plan, input) = SplitPlan::take(rest);
    let split = run(server, plan, input);
    let whole = run(server, SplitPlan::whole(), input);
    assert_eq!(split, whole, "the reads changed the outcome");
    // Re-encode what was decoded; it decodes to the same frames.
    let mut wire = Vec::new();
    for f in &whole.0 {
        if server {
            wire.extend_from_slice(&client_frame(f.opcode, f.fin, &f.payload, [mode, 1, 2, 3]));
        } else {
            let (h, n) = frame_header(f.opcode, f.fin, f.payload.len());
            wire.extend_from_slice(&h[..n]);
            wire.extend_from_slice(&f.payload);
        }
    }
    let again = run(server, SplitPlan::whole(), &wire);
    assert_eq!(again, (whole.0, None));
    assert_eq!(accept_key(&String::from_utf8_lossy(input)).len(), 28);
});
