//! Chunk stream decoder on arbitrary bytes in arbitrary reads.
//!
//! Invariants: no panic; the decoder never holds more than its limits allow; no message is
//! longer than `max_message_len`; every byte fed is either consumed or still in the buffer;
//! and the messages (and the error, if any) are the same whether the bytes arrive at once or
//! in pieces.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use reflector::protocol::amf0::AmfLimits;
use reflector::protocol::chunk::{ChunkDecoder, ChunkLimits};
use reflector::protocol::message::{Message, RawMessage};
use reflector_fuzz::SplitPlan;

/// Small limits, so that the fuzzer reaches them with small inputs.
const LIMITS: ChunkLimits = ChunkLimits {
    max_message_len: 4096,
    max_chunk_streams: 8,
    max_pending_bytes: 6000,
};

#[derive(Debug, PartialEq)]
struct Outcome {
    messages: Vec<RawMessage>,
    error: Option<String>,
}

fn run<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut decoder = ChunkDecoder::new(LIMITS);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    let mut fed = 0u64;
    for piece in pieces {
        buf.extend_from_slice(piece);
        fed += piece.len() as u64;
        loop {
            let result = decoder.decode(&mut buf);
            assert!(decoder.pending_bytes() <= LIMITS.max_pending_bytes);
            assert!(decoder.chunk_streams() <= LIMITS.max_chunk_streams);
            match result {
                Ok(Some(message)) => {
                    assert!(message.payload.len() <= LIMITS.max_message_len as usize);
                    // Typed decode of whatever the chunk layer delivers must not panic either.
                    let _ = Message::decode(&message, &AmfLimits::default());
                    messages.push(message);
                }
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        messages,
                        error: Some(format!("{error:?}")),
                    }
                }
            }
        }
        assert_eq!(decoder.bytes_consumed() + buf.len() as u64, fed);
    }
    Outcome {
        messages,
        error: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let (plan, input) = SplitPlan::take(data);
    let split = run(plan.pieces(input));
    let whole = run(std::iter::once(input));
    assert!(
        split == whole,
        "split reads changed the outcome: {} messages, error {:?} vs {} messages, error {:?}",
        split.messages.len(),
        split.error,
        whole.messages.len(),
        whole.error
    );
});
