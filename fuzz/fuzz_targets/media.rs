//! Audio/video tag inspection on arbitrary bytes.
//!
//! Invariants: no panic; the parameter extractors only answer for payloads the inspectors
//! accept, and a video payload with parameters is a sequence header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reflector::protocol::media::{audio_params, inspect_audio, inspect_video, video_params};

fuzz_target!(|data: &[u8]| {
    let video = inspect_video(data);
    if video_params(data).is_some() {
        let tag = video.expect("video_params implies inspect_video succeeds");
        assert!(tag.is_sequence_header());
    }
    let audio = inspect_audio(data);
    if audio_params(data).is_some() {
        assert!(audio.is_ok(), "audio_params implies inspect_audio succeeds");
    }
});
