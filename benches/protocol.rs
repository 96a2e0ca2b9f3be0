//! Throughput of the sans-IO protocol core on realistic traffic: chunk decode and encode of a
//! live audio/video mix, and AMF0/command parsing of real client bodies (tests/vectors).
//!
//! `cargo bench --bench protocol`; numbers from a shared machine are only comparable with
//! numbers from the same run.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use reflector::protocol::amf0::{self, AmfLimits};
use reflector::protocol::chunk::{chunk_message, ChunkDecoder, ChunkEncoder, ChunkLimits};
use reflector::protocol::command::Command;
use reflector::protocol::message::{type_id, Message, RawMessage};

const FFMPEG_CONNECT: &[u8] = include_bytes!("../tests/vectors/amf0/ffmpeg-connect.bin");
const SET_DATA_FRAME: &[u8] = include_bytes!("../tests/vectors/amf0/setdataframe-onmetadata.bin");

/// Chunk stream ids as ffmpeg uses them for a publisher's media.
const VIDEO_CSID: u32 = 6;
const AUDIO_CSID: u32 = 4;

/// Bytes handed to the decoder per call, like one socket read.
const READ_SIZE: usize = 16 * 1024;

/// One second of a live stream: 25 video frames of 40 KB and 43 AAC frames of 400 bytes
/// (1024 samples at 44.1 kHz), interleaved by timestamp as a publisher sends them.
fn media_second() -> Vec<(u32, RawMessage)> {
    let frame = |type_id, timestamp, len: usize, first: u8| RawMessage {
        type_id,
        stream_id: 1,
        timestamp,
        payload: Bytes::from(
            std::iter::once(first)
                .chain((1..len).map(|i| (i % 251) as u8))
                .collect::<Vec<u8>>(),
        ),
    };
    let mut messages = Vec::new();
    for i in 0..25u32 {
        let first = if i == 0 { 0x17 } else { 0x27 };
        messages.push((VIDEO_CSID, frame(type_id::VIDEO, i * 40, 40_000, first)));
    }
    for i in 0..43u32 {
        messages.push((AUDIO_CSID, frame(type_id::AUDIO, i * 1024 / 44, 400, 0xAF)));
    }
    messages.sort_by_key(|(_, m)| m.timestamp);
    messages
}

fn encode_with_encoder(messages: &[(u32, RawMessage)], chunk_size: u32, out: &mut BytesMut) {
    let mut encoder = ChunkEncoder::new();
    encoder.set_chunk_size(chunk_size, out);
    for (csid, message) in messages {
        encoder.encode(*csid, message, out);
    }
}

fn chunk_layer(c: &mut Criterion) {
    let messages = media_second();
    for chunk_size in [4096u32, 65_536] {
        let mut wire = BytesMut::new();
        encode_with_encoder(&messages, chunk_size, &mut wire);
        let wire = wire.freeze();

        let mut group = c.benchmark_group(format!("chunk/{}KiB", chunk_size / 1024));
        group.throughput(Throughput::Bytes(wire.len() as u64));

        group.bench_function("decode", |b| {
            b.iter_batched(
                || (ChunkDecoder::new(ChunkLimits::default()), BytesMut::new()),
                |(mut decoder, mut buf)| {
                    let mut n = 0;
                    for read in wire.chunks(READ_SIZE) {
                        buf.extend_from_slice(read);
                        while let Some(message) = decoder.decode(&mut buf).expect("decodes") {
                            black_box(&message);
                            n += 1;
                        }
                    }
                    assert_eq!(n, messages.len() + 1);
                },
                BatchSize::SmallInput,
            )
        });

        let mut out = BytesMut::with_capacity(wire.len() * 2);
        group.bench_function("encode ChunkEncoder", |b| {
            b.iter(|| {
                out.clear();
                encode_with_encoder(black_box(&messages), chunk_size, &mut out);
                black_box(out.len())
            })
        });
        group.bench_function("encode chunk_message", |b| {
            b.iter(|| {
                out.clear();
                for (csid, message) in black_box(&messages) {
                    chunk_message(*csid, message, chunk_size, &mut out);
                }
                black_box(out.len())
            })
        });
        group.finish();
    }
}

fn amf_and_commands(c: &mut Criterion) {
    let limits = AmfLimits::default();
    let mut group = c.benchmark_group("amf0");
    group.bench_function("decode ffmpeg connect", |b| {
        b.iter(|| amf0::decode_all(black_box(FFMPEG_CONNECT), &limits).expect("decodes"))
    });
    group.bench_function("decode @setDataFrame onMetaData", |b| {
        b.iter(|| amf0::decode_all(black_box(SET_DATA_FRAME), &limits).expect("decodes"))
    });
    let values = amf0::decode_all(SET_DATA_FRAME, &limits).expect("decodes");
    let mut out = Vec::with_capacity(1024);
    group.bench_function("encode @setDataFrame onMetaData", |b| {
        b.iter(|| {
            out.clear();
            amf0::encode_all(black_box(&values), &mut out).expect("encodes");
            black_box(out.len())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("command");
    let values = amf0::decode_all(FFMPEG_CONNECT, &limits).expect("decodes");
    group.bench_function("parse connect", |b| {
        b.iter(|| Command::parse(black_box(&values)).expect("parses"))
    });
    let raw = RawMessage {
        type_id: type_id::COMMAND_AMF0,
        stream_id: 0,
        timestamp: 0,
        payload: Bytes::from_static(FFMPEG_CONNECT),
    };
    group.bench_function("Message::decode + parse connect", |b| {
        b.iter(
            || match Message::decode(black_box(&raw), &limits).expect("decodes") {
                Message::Command { values, .. } => Command::parse(&values).expect("parses"),
                other => panic!("not a command: {other:?}"),
            },
        )
    });
    group.finish();
}

criterion_group!(benches, chunk_layer, amf_and_commands);
criterion_main!(benches);
