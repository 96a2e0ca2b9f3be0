use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

// Real tag bodies. Provenance: FLV files written by ffmpeg from lavfi sources, walked with a
// ten-line FLV tag walker, and the tag bodies (or their first bytes, which is all the
// header inspection reads) pasted here as hex:
//   avc320:    ffmpeg 5.1 (Debian) -f lavfi -i testsrc=size=320x240:rate=25 -t 1
//              -c:v libx264 -g 25 -f flv (testsrc is RGB, so x264 picks High 4:4:4)
//   avc318:    the same with -vf crop=318:238:0:0 (odd size: SPS frame cropping)
//   avc420/avc422: the same crop with -pix_fmt yuv420p / yuv422p
//   avcint:    4:4:4 318x238 with -x264-params interlaced=1 (frame_mbs_only_flag = 0)
//   avcint420: -pix_fmt yuv420p -profile:v main interlaced, crop=318:236
//   avc1080:   testsrc 1920x1080 -pix_fmt yuv420p -preset ultrafast (1088 cropped to 1080)
//   h263:      -c:v flv1; aac44s/aac48m: -f lavfi -i sine=sample_rate=44100|48000 -ac 2|1
//              -c:a aac; mp3: sine 22050 Hz mono -c:a libmp3lame
//   E-RTMP (hevc, av1, vp9, opus, flac, ac3, eac3, multi): ffmpeg 9.0.2 from PyPI
//              imageio-ffmpeg: -c:v libx265 -vf crop=318:238:0:0 | libsvtav1 | libvpx-vp9,
//              -c:a libopus | flac | ac3 | eac3, and for multi.flv/multi2.flv/amulti.flv two
//              inputs mapped into one FLV (ffmpeg writes the second track as Multitrack
//              OneTrack, track id 1; the second video input is 160x120).

// avc320.flv: the whole tag body
const AVC320_SEQ: &str = concat!(
    "170000000001f4000dffe1001967f4000d919b28283f6022000003000200000300641e28532c01000668ebe3",
    "c44844fff8f800",
);
// avc318.flv: the whole tag body
const AVC318_444_SEQ: &str = concat!(
    "170000000001f4000dffe1001a67f4000d919b28283fdde022000003000200000300641e28532c01000668eb",
    "e3c44844fff8f800",
);
// avc420.flv: the whole tag body
const AVC318_420_SEQ: &str = concat!(
    "17000000000164000dffe1001a6764000dacd94141feab011000000300100000030320f142996001000668eb",
    "e3cb22c0fdf8f800",
);
// avc422.flv: the whole tag body
const AVC318_422_SEQ: &str = concat!(
    "1700000000017a000dffe1001a677a000dbcd94141feaf011000000300100000030320f142996001000668eb",
    "e3cb22c0fef8f800",
);
// avcint.flv: the whole tag body
const AVC318_444_INTERLACED_SEQ: &str = concat!(
    "170000000001f40015ffe1001b67f40015919b282821ee2b011000000300100000030321f142996001000668",
    "fba3c44844fff8f800",
);
// avcint420.flv: the whole tag body
const AVC318X236_INTERLACED_SEQ: &str = concat!(
    "1700000000014d4015ffe10019674d4015eca0a087a9b011000003000100000300321f14299601000568fba3",
    "cb20",
);
// avc1080.flv: the whole tag body
const AVC1080_BASELINE_SEQ: &str = concat!(
    "17000000000142c028ffe100196742c028da01e0089f97011000000300100000030320f1832a01000468ce0f",
    "c8",
);
// avc320.flv first 24 bytes of the tag body
const AVC_KEY: &str = "1701000050000002ab0605ffffa7dc45e9bde6d948b7962c";
// avc320.flv first 24 bytes of the tag body
const AVC_INTER: &str = "27010000c800000270419a246c43bffea99602d51ee50043";
// avc320.flv: the whole tag body
const AVC_END: &str = "1702000000";
// h263.flv first 16 bytes of the tag body
const H263_KEY: &str = "120000840292a620202021ffff310101";
// h263.flv first 16 bytes of the tag body
const H263_INTER: &str = "2200008406b13c28b0fa31215b78c56f";
// aac44s.flv: the whole tag body
const AAC_44100_STEREO_SEQ: &str = "af00121056e500";
// aac48m.flv: the whole tag body
const AAC_48000_MONO_SEQ: &str = "af00118856e500";
// aac44s.flv first 12 bytes of the tag body
const AAC_RAW: &str = "af01de02004c61766335392e";
// mp3.flv first 12 bytes of the tag body
const MP3_22050_MONO: &str = "2afff340c400133062843f4f";
// hevc.flv: the whole tag body
const HEVC_METADATA: &str = concat!(
    "d468766331020009636f6c6f72496e666f03000b636f6c6f72436f6e6669670300126d6174726978436f6566",
    "66696369656e7473000000000000000000000009000009",
);
// hevc.flv first 24 bytes of the tag body
const HEVC_KEY: &str = "916876633100005000000b062801af1d20adde42bbe030e9";
// hevc.flv first 24 bytes of the tag body
const HEVC_INTER: &str = "a1687663310000f0000001580201d0294be10c6384100a0b";
// hevc.flv first 24 bytes of the tag body
const HEVC_INTER_X: &str = "a368766331000000240001e024f55fa2c292104a208aa501";
// av1.flv: the whole tag body
const AV1_SEQ: &str = "906176303181000c000a0b0200000561e7fde017c002";
// av1.flv first 16 bytes of the tag body
const AV1_KEY: &str = "916176303112000a0b0200000561e7fd";
// av1.flv first 16 bytes of the tag body
const AV1_INTER: &str = "a161763031120032b40b281000400000";
// vp9.flv: the whole tag body
const VP9_SEQ: &str = "9076703039010000000114870202000000";
// vp9.flv first 16 bytes of the tag body
const VP9_KEY: &str = "9176703039a2498342e013f00ef60a38";
// multi.flv: the whole tag body
const MT_ONE_AVC_SEQ: &str = concat!(
    "9600617663310101f4000bffe1001a67f4000b919b28508fc4e022000003000200000300641e28532c010006",
    "68ebe3c44844fff8f800",
);
// multi.flv first 24 bytes of the tag body
const MT_ONE_AVC_INTER: &str = "a60161766331010000500000009c419a216c433ffdd01b20";
// multi2.flv first 24 bytes of the tag body
const MT_ONE_HEVC_INTER: &str = "a60168766331010000c8000000ac0201d02149e10c63a89d";
// opus.flv: the whole tag body
const OPUS_SEQ: &str = "904f7075734f707573486561640102380180bb0000000000";
// opus.flv first 12 bytes of the tag body
const OPUS_CODED: &str = "914f707573fc7e0299e7f9ec";
// flac.flv: the whole tag body
const FLAC_SEQ: &str =
    "90664c6143040004000000000008150ac440f00000000000000000000000000000000000000000";
// flac.flv: the whole tag body
const FLAC_MULTICHANNEL: &str = "94664c6143010100000004";
// ac3.flv: the whole tag body
const AC3_SEQ: &str = "9061632d33";
// ac3.flv: the whole tag body
const AC3_MULTICHANNEL: &str = "9461632d33010200000003";
// ac3.flv first 12 bytes of the tag body
const AC3_CODED: &str = "9161632d330b77fe95144043";
// eac3.flv first 12 bytes of the tag body
const EAC3_CODED: &str = "9165632d330b77017f3487c0";
// amulti.flv: the whole tag body
const MT_ONE_AAC_SEQ: &str = "95006d70346101120856e500";

// hvcC of hevc.flv's SequenceStart (318x238, libx265) with only its VPS/SPS/PPS arrays kept:
// the x265 SEI array (2.3 kB of encoder settings) was dropped and numOfArrays set to 3.
const HEVC_HVCC: &str = concat!(
    "0104080000009e08000000003cf000fcfff8f800000f03200001001740010c01ffff0408000003009e0800",
    "000300003c959809210001002c4201010408000003009e0800000300003c90014101e3bbcb2b349265780b",
    "702020004000000300400000064222000100084401c172860c4624",
);

fn hevc_seq_ex() -> Vec<u8> {
    let mut v = vec![0x90];
    v.extend_from_slice(b"hvc1");
    v.extend(hex(HEVC_HVCC));
    v
}

/// Legacy CodecID 12 HEVC: the AVC layout (AVCPacketType 0, CompositionTime 0) around the
/// real hvcC, as Chinese CDNs / OBS forks send it.
fn hevc_seq_legacy() -> Vec<u8> {
    let mut v = vec![0x1c, 0x00, 0, 0, 0];
    v.extend(hex(HEVC_HVCC));
    v
}

fn track(t: &VideoTag, i: usize) -> (u8, VideoCodec, PacketKind) {
    let tr = &t.tracks[i];
    (tr.track_id, tr.codec, tr.kind)
}

fn atrack(t: &AudioTag, i: usize) -> (u8, AudioCodec, PacketKind) {
    let tr = &t.tracks[i];
    (tr.track_id, tr.codec, tr.kind)
}

fn wh(width: u32, height: u32) -> Option<VideoParams> {
    Some(VideoParams { width, height })
}

fn ap(sample_rate: u32, channels: u8) -> Option<AudioParams> {
    Some(AudioParams {
        sample_rate,
        channels,
    })
}

// ----- legacy video -------------------------------------------------------------------

#[test]
fn legacy_avc_sequence_headers_give_size_through_sps() {
    let cases = [
        (AVC320_SEQ, 320, 240),
        (AVC318_444_SEQ, 318, 238),
        (AVC318_420_SEQ, 318, 238),
        (AVC318_422_SEQ, 318, 238),
        (AVC318_444_INTERLACED_SEQ, 318, 238),
        (AVC318X236_INTERLACED_SEQ, 318, 236),
        (AVC1080_BASELINE_SEQ, 1920, 1080),
    ];
    for (h, w, ht) in cases {
        let p = hex(h);
        let t = inspect_video(&p).unwrap();
        assert_eq!(t.frame_type, VideoFrameType::Key);
        assert!(!t.enhanced);
        assert_eq!(t.tracks.len(), 1);
        assert_eq!(
            track(&t, 0),
            (0, VideoCodec::Avc, PacketKind::SequenceHeader)
        );
        assert!(t.is_sequence_header());
        assert!(!t.is_keyframe(), "a sequence header does not start a GOP");
        assert_eq!(t.composition_time, Some(0));
        assert_eq!(video_params(&p), wh(w, ht), "{h}");
    }
}

#[test]
fn legacy_avc_frames_and_end_of_sequence() {
    let key = inspect_video(&hex(AVC_KEY)).unwrap();
    assert!(key.is_keyframe());
    assert!(!key.is_sequence_header() && !key.is_disposable() && !key.is_inter());
    assert_eq!(key.composition_time, Some(80));
    assert_eq!(key.codec(), VideoCodec::Avc);

    let inter = inspect_video(&hex(AVC_INTER)).unwrap();
    assert_eq!(inter.frame_type, VideoFrameType::Inter);
    assert!(inter.is_inter() && !inter.is_keyframe() && !inter.is_disposable());
    assert_eq!(inter.composition_time, Some(200));

    let end = inspect_video(&hex(AVC_END)).unwrap();
    assert_eq!(track(&end, 0).2, PacketKind::SequenceEnd);
    assert!(end.is_sequence_end() && !end.is_keyframe());
    assert_eq!(video_params(&hex(AVC_KEY)), None);

    // CompositionTime is signed (SI24).
    let neg = inspect_video(&[0x27, 0x01, 0xff, 0xff, 0xf6, 0x00]).unwrap();
    assert_eq!(neg.composition_time, Some(-10));
}

#[test]
fn legacy_frame_types_h263_and_commands() {
    let key = inspect_video(&hex(H263_KEY)).unwrap();
    assert_eq!(track(&key, 0), (0, VideoCodec::H263, PacketKind::Coded));
    assert!(key.is_keyframe());
    assert_eq!(key.composition_time, None);

    let inter = inspect_video(&hex(H263_INTER)).unwrap();
    assert!(inter.is_inter());

    // Disposable inter frame (FrameType 3), hand-made from the H.263 inter frame.
    let mut d = hex(H263_INTER);
    d[0] = 0x32;
    let disp = inspect_video(&d).unwrap();
    assert_eq!(disp.frame_type, VideoFrameType::DisposableInter);
    assert!(disp.is_disposable() && !disp.is_inter() && !disp.is_keyframe());

    // Generated keyframe (FrameType 4) counts as a keyframe.
    let mut g = hex(AVC_KEY);
    g[0] = 0x47;
    let gen = inspect_video(&g).unwrap();
    assert_eq!(gen.frame_type, VideoFrameType::GeneratedKey);
    assert!(gen.is_keyframe());

    // Video info / command frame: UI8 command, no AVCPacketType.
    let cmd = inspect_video(&[0x57, 0x01]).unwrap();
    assert_eq!(cmd.frame_type, VideoFrameType::Command);
    assert_eq!(track(&cmd, 0), (0, VideoCodec::Avc, PacketKind::Other));
    assert!(cmd.is_command() && !cmd.is_keyframe() && !cmd.is_sequence_header());
    assert_eq!(cmd.composition_time, None);
    assert!(matches!(
        inspect_video(&[0x57]),
        Err(MediaError::Truncated { offset: 1, .. })
    ));

    for (codec_id, codec) in [
        (3, VideoCodec::Screen),
        (4, VideoCodec::Vp6),
        (5, VideoCodec::Vp6Alpha),
        (6, VideoCodec::Screen2),
        (9, VideoCodec::Other(9)),
    ] {
        let t = inspect_video(&[0x20 | codec_id, 0xaa]).unwrap();
        assert_eq!(track(&t, 0), (0, codec, PacketKind::Coded));
    }
}

#[test]
fn legacy_reserved_values_are_errors() {
    assert_eq!(
        inspect_video(&[0x07, 0x01, 0, 0, 0]),
        Err(MediaError::ReservedFrameType { value: 0 })
    );
    assert_eq!(
        inspect_video(&[0x67, 0x01, 0, 0, 0]),
        Err(MediaError::ReservedFrameType { value: 6 })
    );
    assert_eq!(
        inspect_video(&[0x17, 0x03, 0, 0, 0]),
        Err(MediaError::UnknownPacketType {
            what: "AVC",
            value: 3
        })
    );
}

#[test]
fn legacy_hevc_codec_id_12() {
    let p = hevc_seq_legacy();
    let t = inspect_video(&p).unwrap();
    assert_eq!(
        track(&t, 0),
        (0, VideoCodec::LegacyHevc, PacketKind::SequenceHeader)
    );
    assert!(!t.enhanced);
    assert_eq!(video_params(&p), wh(318, 238));
    let f = inspect_video(&[0x2c, 0x01, 0x00, 0x00, 0x28, 0x00, 0x00]).unwrap();
    assert_eq!(track(&f, 0), (0, VideoCodec::LegacyHevc, PacketKind::Coded));
    assert_eq!(f.composition_time, Some(40));
    assert!(f.is_inter());
    assert_eq!(VideoCodec::LegacyHevc.to_string(), "HEVC");
}

// ----- Enhanced RTMP video ------------------------------------------------------------

#[test]
fn ex_hevc_sequence_start_metadata_and_frames() {
    let seq = hevc_seq_ex();
    let t = inspect_video(&seq).unwrap();
    assert!(t.enhanced);
    assert_eq!(t.frame_type, VideoFrameType::Key);
    assert_eq!(
        track(&t, 0),
        (0, VideoCodec::Hevc, PacketKind::SequenceHeader)
    );
    assert_eq!(t.composition_time, None);
    assert_eq!(video_params(&seq), wh(318, 238));

    // ffmpeg sends colorInfo metadata with FrameType Command (ignored for Metadata).
    let md = inspect_video(&hex(HEVC_METADATA)).unwrap();
    assert_eq!(track(&md, 0), (0, VideoCodec::Hevc, PacketKind::Metadata));
    assert!(!md.is_command() && !md.is_keyframe() && !md.is_sequence_header());

    let key = inspect_video(&hex(HEVC_KEY)).unwrap();
    assert!(key.is_keyframe());
    assert_eq!(key.composition_time, Some(80));

    let inter = inspect_video(&hex(HEVC_INTER)).unwrap();
    assert!(inter.is_inter());
    assert_eq!(inter.composition_time, Some(240));

    // CodedFramesX: CompositionTime implied zero, not on the wire.
    let x = inspect_video(&hex(HEVC_INTER_X)).unwrap();
    assert_eq!(track(&x, 0), (0, VideoCodec::Hevc, PacketKind::Coded));
    assert!(x.is_inter());
    assert_eq!(x.composition_time, Some(0));
}

#[test]
fn ex_av1_and_vp9() {
    let seq = hex(AV1_SEQ);
    let t = inspect_video(&seq).unwrap();
    assert_eq!(
        track(&t, 0),
        (0, VideoCodec::Av1, PacketKind::SequenceHeader)
    );
    assert_eq!(video_params(&seq), wh(320, 240));
    let key = inspect_video(&hex(AV1_KEY)).unwrap();
    assert!(key.is_keyframe());
    assert_eq!(key.composition_time, None);
    assert!(inspect_video(&hex(AV1_INTER)).unwrap().is_inter());

    let vp9 = hex(VP9_SEQ);
    let t = inspect_video(&vp9).unwrap();
    assert_eq!(
        track(&t, 0),
        (0, VideoCodec::Vp9, PacketKind::SequenceHeader)
    );
    assert_eq!(video_params(&vp9), None);
    assert!(inspect_video(&hex(VP9_KEY)).unwrap().is_keyframe());
    assert_eq!(VideoCodec::Vp9.to_string(), "VP9");
}

#[test]
fn ex_sequence_end_mpeg2ts_start_and_unknown_fourcc() {
    let end = inspect_video(b"\x92av01").unwrap();
    assert_eq!(
        track(&end, 0),
        (0, VideoCodec::Av1, PacketKind::SequenceEnd)
    );
    let ts = inspect_video(b"\x95av01\x80\x04").unwrap();
    assert_eq!(track(&ts, 0).2, PacketKind::SequenceHeader);
    assert_eq!(video_params(b"\x95av01\x80\x04"), None);
    let vp8 = inspect_video(b"\x91vp08\x9d\x01\x2a").unwrap();
    assert_eq!(vp8.codec(), VideoCodec::Other(FOURCC_VP08));
    assert_eq!(vp8.codec().to_string(), "VP8");
    let odd = inspect_video(b"\xa1xyzw").unwrap();
    assert_eq!(odd.codec(), VideoCodec::Other(fourcc(b"xyzw")));
    assert_eq!(odd.composition_time, None);
    assert_eq!(odd.codec().to_string(), "xyzw");
}

#[test]
fn ex_command_frame_has_no_fourcc() {
    let t = inspect_video(&[0xd0, 0x01]).unwrap();
    assert!(t.enhanced && t.is_command());
    assert_eq!(track(&t, 0), (0, VideoCodec::Other(0), PacketKind::Other));
    assert!(matches!(
        inspect_video(&[0xd0]),
        Err(MediaError::Truncated { .. })
    ));
}

#[test]
fn ex_reserved_frame_and_packet_types() {
    assert_eq!(
        inspect_video(b"\x81avc1\0\0\0"),
        Err(MediaError::ReservedFrameType { value: 0 })
    );
    assert_eq!(
        inspect_video(b"\xe1avc1\0\0\0"),
        Err(MediaError::ReservedFrameType { value: 6 })
    );
    assert_eq!(
        inspect_video(b"\xf1avc1\0\0\0"),
        Err(MediaError::ReservedFrameType { value: 7 })
    );
    // The frame type is ignored for Metadata.
    let md = inspect_video(b"\x84hvc1\x02").unwrap();
    assert_eq!(md.frame_type, VideoFrameType::Command);
    assert_eq!(track(&md, 0).2, PacketKind::Metadata);
    for pt in 8..=15u8 {
        assert_eq!(
            inspect_video(&[0x90 | pt, b'a', b'v', b'c', b'1']),
            Err(MediaError::UnknownPacketType {
                what: "video",
                value: pt
            })
        );
    }
}

#[test]
fn ex_mod_ex_is_skipped() {
    // TimestampOffsetNano (3 bytes), then CodedFrames.
    let mut p = vec![0x97, 0x02, 0x00, 0x0f, 0x42, 0x01];
    p.extend_from_slice(b"hvc1\x00\x00\x10\xaa\xbb");
    let t = inspect_video(&p).unwrap();
    assert_eq!(track(&t, 0), (0, VideoCodec::Hevc, PacketKind::Coded));
    assert!(t.is_keyframe());
    assert_eq!(t.composition_time, Some(16));

    // Two chained ModEx links, then SequenceStart with a real avcC.
    let mut p = vec![0x97, 0x02, 0x00, 0x00, 0x01, 0x07, 0x00, 0x09, 0x10];
    p.extend_from_slice(b"avc1");
    p.extend_from_slice(&hex(AVC318_420_SEQ)[5..]);
    let t = inspect_video(&p).unwrap();
    assert_eq!(
        track(&t, 0),
        (0, VideoCodec::Avc, PacketKind::SequenceHeader)
    );
    assert_eq!(video_params(&p), wh(318, 238));

    // The 16-bit size escape: UI8 0xff (256) means UI16 + 1 follows.
    let mut p = vec![0xa7, 0xff, 0x01, 0x00];
    p.extend(std::iter::repeat_n(0x55, 257));
    p.push(0x03);
    p.extend_from_slice(b"av01\x12\x00");
    let t = inspect_video(&p).unwrap();
    assert_eq!(track(&t, 0), (0, VideoCodec::Av1, PacketKind::Coded));
    assert!(t.is_inter());
    // One byte short of the escaped size.
    assert!(matches!(
        inspect_video(&p[..4 + 256]),
        Err(MediaError::Truncated { .. })
    ));

    // ModEx ahead of Multitrack.
    let mut p = vec![0x97, 0x02, 0, 0, 1, 0x06, 0x01];
    p.extend_from_slice(b"avc1\x03\x00\x00\x00\xee");
    let t = inspect_video(&p).unwrap();
    assert_eq!(track(&t, 0), (3, VideoCodec::Avc, PacketKind::Coded));
}

#[test]
fn ex_multitrack_one_track_from_ffmpeg() {
    let seq = hex(MT_ONE_AVC_SEQ);
    let t = inspect_video(&seq).unwrap();
    assert_eq!(t.tracks.len(), 1);
    assert_eq!(
        track(&t, 0),
        (1, VideoCodec::Avc, PacketKind::SequenceHeader)
    );
    assert_eq!(video_params(&seq), wh(160, 120));

    let inter = inspect_video(&hex(MT_ONE_AVC_INTER)).unwrap();
    assert_eq!(track(&inter, 0), (1, VideoCodec::Avc, PacketKind::Coded));
    assert_eq!(inter.composition_time, Some(80));
    assert!(inter.is_inter());

    let hevc = inspect_video(&hex(MT_ONE_HEVC_INTER)).unwrap();
    assert_eq!(track(&hevc, 0), (1, VideoCodec::Hevc, PacketKind::Coded));
    assert_eq!(hevc.composition_time, Some(200));
}

fn push_u24(v: &mut Vec<u8>, n: usize) {
    v.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes()[1..]);
}

#[test]
fn ex_multitrack_many_tracks() {
    // Hand-built from the E-RTMP v2 multitrack layout: one FourCC, then per track an id
    // and a UI24 size.
    let mut p = vec![0x96, 0x11];
    p.extend_from_slice(b"avc1");
    p.push(0);
    push_u24(&mut p, 7);
    p.extend_from_slice(&[0, 0, 0x28, 1, 2, 3, 4]);
    p.push(1);
    push_u24(&mut p, 5);
    p.extend_from_slice(&[0, 0, 0x50, 9, 9]);
    let t = inspect_video(&p).unwrap();
    assert_eq!(t.tracks.len(), 2);
    assert_eq!(track(&t, 0), (0, VideoCodec::Avc, PacketKind::Coded));
    assert_eq!(track(&t, 1), (1, VideoCodec::Avc, PacketKind::Coded));
    assert_eq!(t.composition_time, Some(40));
    assert!(t.is_keyframe());

    // A declared size past the end is an error, not a short read.
    let mut bad = p.clone();
    bad.truncate(p.len() - 1);
    assert!(matches!(
        inspect_video(&bad),
        Err(MediaError::Truncated { .. })
    ));
}

#[test]
fn ex_multitrack_many_tracks_many_codecs() {
    // Per-track FourCC: an AVC and an HEVC SequenceStart with the real records.
    let avcc = hex(AVC318_420_SEQ)[5..].to_vec();
    let hvcc = hex(HEVC_HVCC);
    let mut p = vec![0x96, 0x20];
    p.extend_from_slice(b"avc1");
    p.push(0);
    push_u24(&mut p, avcc.len());
    p.extend_from_slice(&avcc);
    p.extend_from_slice(b"hvc1");
    p.push(1);
    push_u24(&mut p, hvcc.len());
    p.extend_from_slice(&hvcc);
    let t = inspect_video(&p).unwrap();
    assert_eq!(
        track(&t, 0),
        (0, VideoCodec::Avc, PacketKind::SequenceHeader)
    );
    assert_eq!(
        track(&t, 1),
        (1, VideoCodec::Hevc, PacketKind::SequenceHeader)
    );
    assert!(t.is_sequence_header());
    assert_eq!(video_params(&p), wh(318, 238));

    // The first track being one video_params cannot size, the next one is used.
    let mut q = vec![0x96, 0x20];
    q.extend_from_slice(b"vp09");
    q.push(0);
    push_u24(&mut q, 2);
    q.extend_from_slice(&[1, 0]);
    q.extend_from_slice(b"hvc1");
    q.push(1);
    push_u24(&mut q, hvcc.len());
    q.extend_from_slice(&hvcc);
    assert_eq!(video_params(&q), wh(318, 238));
}

#[test]
fn ex_multitrack_errors() {
    assert_eq!(
        inspect_video(b"\x96\x30avc1\x00\x00\x00\x00"),
        Err(MediaError::UnknownMultitrackType {
            what: "video",
            value: 3
        })
    );
    assert_eq!(
        inspect_video(b"\x96\x06avc1\x00"),
        Err(MediaError::UnknownPacketType {
            what: "video multitrack",
            value: 6
        })
    );
    assert_eq!(
        inspect_video(b"\x96\x07avc1\x00"),
        Err(MediaError::UnknownPacketType {
            what: "video multitrack",
            value: 7
        })
    );
    assert!(matches!(
        inspect_video(b"\x96\x1f"),
        Err(MediaError::Truncated { .. })
    ));
    // ManyTracks with no track at all.
    assert!(matches!(
        inspect_video(b"\x96\x11avc1"),
        Err(MediaError::Truncated { .. })
    ));
}

// ----- audio -----------------------------------------------------------------------------

#[test]
fn legacy_aac_and_mp3() {
    let s = hex(AAC_44100_STEREO_SEQ);
    let t = inspect_audio(&s).unwrap();
    assert!(!t.enhanced && t.is_sequence_header());
    assert_eq!(
        atrack(&t, 0),
        (0, AudioCodec::Aac, PacketKind::SequenceHeader)
    );
    assert_eq!(audio_params(&s), ap(44_100, 2));
    assert_eq!(audio_params(&hex(AAC_48000_MONO_SEQ)), ap(48_000, 1));

    let raw = hex(AAC_RAW);
    let t = inspect_audio(&raw).unwrap();
    assert_eq!(atrack(&t, 0), (0, AudioCodec::Aac, PacketKind::Coded));
    assert!(!t.is_sequence_header());
    assert_eq!(audio_params(&raw), None);

    let mp3 = hex(MP3_22050_MONO);
    let t = inspect_audio(&mp3).unwrap();
    assert_eq!(atrack(&t, 0), (0, AudioCodec::Mp3, PacketKind::Coded));
    assert_eq!(audio_params(&mp3), ap(22_050, 1));

    assert_eq!(
        inspect_audio(&[0xaf, 0x02]),
        Err(MediaError::UnknownPacketType {
            what: "AAC",
            value: 2
        })
    );
    assert!(matches!(
        inspect_audio(&[0xaf]),
        Err(MediaError::Truncated { .. })
    ));
}

#[test]
fn legacy_audio_header_bits() {
    let cases = [
        (0x0f, AudioCodec::PcmPlatformEndian, 44_100, 2),
        (0x12, AudioCodec::Adpcm, 5_512, 1),
        (0x37, AudioCodec::PcmLittleEndian, 11_025, 2),
        (0x42, AudioCodec::Nellymoser16kMono, 16_000, 1),
        (0x52, AudioCodec::Nellymoser8kMono, 8_000, 1),
        (0x6a, AudioCodec::Nellymoser, 22_050, 1),
        (0x72, AudioCodec::G711ALaw, 8_000, 1),
        (0x83, AudioCodec::G711MuLaw, 8_000, 2),
        (0xb2, AudioCodec::Speex, 16_000, 1),
        (0xe2, AudioCodec::Mp3At8k, 8_000, 1),
        (0xf2, AudioCodec::DeviceSpecific, 5_512, 1),
    ];
    for (b, codec, rate, ch) in cases {
        let t = inspect_audio(&[b, 0]).unwrap();
        assert_eq!(atrack(&t, 0), (0, codec, PacketKind::Coded));
        assert_eq!(audio_params(&[b, 0]), ap(rate, ch), "{b:#x}");
    }
    assert_eq!(
        inspect_audio(&[0xc2]).unwrap().codec(),
        AudioCodec::Other(12)
    );
}

#[test]
fn audio_specific_config_variants() {
    // AAC-LC, explicit 24-bit rate 50000 Hz (index 15), stereo.
    let mut w = BitWriter::default();
    w.put(2, 5);
    w.put(15, 4);
    w.put(50_000, 24);
    w.put(2, 4);
    let c = parse_audio_specific_config(&w.bytes()).unwrap();
    assert_eq!(
        (c.object_type, c.sample_rate, c.channel_config),
        (2, 50_000, 2)
    );
    assert_eq!(
        c.params(),
        AudioParams {
            sample_rate: 50_000,
            channels: 2
        }
    );

    // HE-AAC with explicit SBR: core 24 kHz, extension 48 kHz.
    let mut w = BitWriter::default();
    w.put(5, 5);
    w.put(6, 4);
    w.put(2, 4);
    w.put(3, 4);
    w.put(2, 5);
    let c = parse_audio_specific_config(&w.bytes()).unwrap();
    assert_eq!(c.extension_sample_rate, Some(48_000));
    assert_eq!(
        c.params(),
        AudioParams {
            sample_rate: 48_000,
            channels: 2
        }
    );

    // HE-AACv2 (PS): mono core decodes to stereo.
    let mut w = BitWriter::default();
    w.put(29, 5);
    w.put(6, 4);
    w.put(1, 4);
    w.put(3, 4);
    w.put(2, 5);
    let c = parse_audio_specific_config(&w.bytes()).unwrap();
    assert_eq!(
        c.params(),
        AudioParams {
            sample_rate: 48_000,
            channels: 2
        }
    );

    // Escaped object type (31 → 32 + 6 bits), 7.1 channel config, 7350 Hz.
    let mut w = BitWriter::default();
    w.put(31, 5);
    w.put(10, 6);
    w.put(12, 4);
    w.put(7, 4);
    let c = parse_audio_specific_config(&w.bytes()).unwrap();
    assert_eq!((c.object_type, c.sample_rate, c.channels()), (42, 7_350, 8));

    // Channels from a program_config_element are not parsed: 0.
    let c = parse_audio_specific_config(&[0x12, 0x00]).unwrap();
    assert_eq!(c.channels(), 0);

    // Reserved sampling frequency index 13.
    assert!(matches!(
        parse_audio_specific_config(&[0x16, 0x90]),
        Err(MediaError::Malformed { .. })
    ));
    assert!(matches!(
        parse_audio_specific_config(&[0x12]),
        Err(MediaError::Malformed { .. })
    ));
}

#[test]
fn ex_audio_from_ffmpeg() {
    let opus = hex(OPUS_SEQ);
    let t = inspect_audio(&opus).unwrap();
    assert!(t.enhanced);
    assert_eq!(
        atrack(&t, 0),
        (0, AudioCodec::Opus, PacketKind::SequenceHeader)
    );
    assert_eq!(audio_params(&opus), ap(48_000, 2));
    let t = inspect_audio(&hex(OPUS_CODED)).unwrap();
    assert_eq!(atrack(&t, 0), (0, AudioCodec::Opus, PacketKind::Coded));
    assert_eq!(audio_params(&hex(OPUS_CODED)), None);

    let flac = hex(FLAC_SEQ);
    assert_eq!(inspect_audio(&flac).unwrap().codec(), AudioCodec::Flac);
    assert_eq!(audio_params(&flac), ap(44_100, 1));
    let mc = inspect_audio(&hex(FLAC_MULTICHANNEL)).unwrap();
    assert!(mc.is_multichannel_config() && !mc.is_sequence_header());
    assert_eq!(atrack(&mc, 0).2, PacketKind::Other);

    let ac3 = inspect_audio(&hex(AC3_SEQ)).unwrap();
    assert_eq!(
        atrack(&ac3, 0),
        (0, AudioCodec::Ac3, PacketKind::SequenceHeader)
    );
    assert_eq!(audio_params(&hex(AC3_SEQ)), None);
    assert!(inspect_audio(&hex(AC3_MULTICHANNEL))
        .unwrap()
        .is_multichannel_config());
    assert_eq!(
        atrack(&inspect_audio(&hex(AC3_CODED)).unwrap(), 0),
        (0, AudioCodec::Ac3, PacketKind::Coded)
    );
    assert_eq!(
        inspect_audio(&hex(EAC3_CODED)).unwrap().codec(),
        AudioCodec::Eac3
    );

    let mt = hex(MT_ONE_AAC_SEQ);
    let t = inspect_audio(&mt).unwrap();
    assert_eq!(
        atrack(&t, 0),
        (1, AudioCodec::Aac, PacketKind::SequenceHeader)
    );
    assert_eq!(audio_params(&mt), ap(44_100, 1));
}

#[test]
fn ex_audio_hand_built() {
    // SequenceEnd, .mp3, mp4a SequenceStart.
    let t = inspect_audio(b"\x92Opus").unwrap();
    assert!(t.is_sequence_end());
    assert_eq!(
        inspect_audio(b"\x91.mp3\xff\xfb").unwrap().codec(),
        AudioCodec::Mp3
    );
    assert_eq!(audio_params(b"\x90mp4a\x11\x90"), ap(48_000, 2));

    // ModEx then CodedFrames.
    let t = inspect_audio(b"\x97\x02\x00\x0f\x42\x01Opus\xfc").unwrap();
    assert_eq!(atrack(&t, 0), (0, AudioCodec::Opus, PacketKind::Coded));

    // ManyTracks: two AAC configs.
    let mut p = b"\x95\x10mp4a".to_vec();
    p.push(0);
    push_u24(&mut p, 2);
    p.extend_from_slice(&[0x12, 0x10]);
    p.push(1);
    push_u24(&mut p, 2);
    p.extend_from_slice(&[0x11, 0x88]);
    let t = inspect_audio(&p).unwrap();
    assert_eq!(
        atrack(&t, 0),
        (0, AudioCodec::Aac, PacketKind::SequenceHeader)
    );
    assert_eq!(
        atrack(&t, 1),
        (1, AudioCodec::Aac, PacketKind::SequenceHeader)
    );
    assert_eq!(audio_params(&p), ap(44_100, 2));

    // ManyTracksManyCodecs: Opus then FLAC coded frames.
    let mut p = b"\x95\x21Opus".to_vec();
    p.push(0);
    push_u24(&mut p, 1);
    p.push(0xfc);
    p.extend_from_slice(b"fLaC\x02");
    push_u24(&mut p, 2);
    p.extend_from_slice(&[0xff, 0xf8]);
    let t = inspect_audio(&p).unwrap();
    assert_eq!(atrack(&t, 0), (0, AudioCodec::Opus, PacketKind::Coded));
    assert_eq!(atrack(&t, 1), (2, AudioCodec::Flac, PacketKind::Coded));
    assert_eq!(audio_params(&p), None);

    for pt in [3u8, 6, 8, 15] {
        assert_eq!(
            inspect_audio(&[0x90 | pt, b'O', b'p', b'u', b's']),
            Err(MediaError::UnknownPacketType {
                what: "audio",
                value: pt
            })
        );
    }
    assert_eq!(
        inspect_audio(b"\x95\x05Opus\x00"),
        Err(MediaError::UnknownPacketType {
            what: "audio multitrack",
            value: 5
        })
    );
    assert_eq!(
        inspect_audio(b"\x95\x41Opus\x00"),
        Err(MediaError::UnknownMultitrackType {
            what: "audio",
            value: 4
        })
    );
}

#[test]
fn empty_payloads() {
    assert_eq!(inspect_video(&[]), Err(MediaError::Empty));
    assert_eq!(inspect_audio(&[]), Err(MediaError::Empty));
    assert_eq!(video_params(&[]), None);
    assert_eq!(audio_params(&[]), None);
}

/// Every vector with the length of its headers: any shorter prefix must be an error (Empty
/// at 0), and no prefix may panic.
fn video_vectors() -> Vec<(Vec<u8>, usize)> {
    vec![
        (hex(AVC320_SEQ), 5),
        (hex(AVC_KEY), 5),
        (hex(AVC_INTER), 5),
        (hex(AVC_END), 5),
        (hex(H263_KEY), 1),
        (vec![0x57, 0x00], 2),
        (hevc_seq_legacy(), 5),
        (hevc_seq_ex(), 5),
        (hex(HEVC_METADATA), 5),
        (hex(HEVC_KEY), 8),
        (hex(HEVC_INTER_X), 5),
        (hex(AV1_SEQ), 5),
        (hex(VP9_KEY), 5),
        (hex(MT_ONE_AVC_SEQ), 7),
        (hex(MT_ONE_AVC_INTER), 10),
        (vec![0xd0, 0x00], 2),
        (b"\x97\x02\x00\x0f\x42\x01hvc1\x00\x00\x10\xaa".to_vec(), 13),
    ]
}

#[test]
fn truncated_video_at_every_offset() {
    for (v, header) in video_vectors() {
        assert!(inspect_video(&v).is_ok());
        let full = video_params(&v);
        for i in 0..v.len() {
            let r = inspect_video(&v[..i]);
            if i == 0 {
                assert_eq!(r, Err(MediaError::Empty));
            } else if i < header {
                assert!(
                    matches!(r, Err(MediaError::Truncated { .. })),
                    "{:02x?} cut at {i}: {r:?}",
                    &v[..header.min(v.len())]
                );
            }
            let p = video_params(&v[..i]);
            assert!(p.is_none() || p == full, "prefix {i} gave {p:?}");
        }
    }
}

#[test]
fn truncated_audio_at_every_offset() {
    let vectors: Vec<(Vec<u8>, usize)> = vec![
        (hex(AAC_44100_STEREO_SEQ), 2),
        (hex(MP3_22050_MONO), 1),
        (hex(OPUS_SEQ), 5),
        (hex(FLAC_SEQ), 5),
        (hex(MT_ONE_AAC_SEQ), 7),
        (b"\x97\x02\x00\x0f\x42\x01Opus\xfc".to_vec(), 10),
    ];
    for (v, header) in vectors {
        assert!(inspect_audio(&v).is_ok());
        let full = audio_params(&v);
        for i in 0..v.len() {
            let r = inspect_audio(&v[..i]);
            if i == 0 {
                assert_eq!(r, Err(MediaError::Empty));
            } else if i < header {
                assert!(matches!(r, Err(MediaError::Truncated { .. })), "cut at {i}");
            }
            let p = audio_params(&v[..i]);
            assert!(p.is_none() || p == full, "prefix {i} gave {p:?}");
        }
    }
}

// ----- SPS parsing on synthesized parameter sets ------------------------------------------

#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: u32,
}

impl BitWriter {
    fn put(&mut self, value: u64, n: u32) {
        for i in (0..n).rev() {
            if self.bits % 8 == 0 {
                self.bytes.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            let last = self.bytes.last_mut().unwrap();
            *last |= bit << (7 - (self.bits % 8));
            self.bits += 1;
        }
    }
    fn flag(&mut self, b: bool) {
        self.put(u64::from(b), 1);
    }
    fn ue(&mut self, v: u32) {
        let x = u64::from(v) + 1;
        let len = 64 - x.leading_zeros();
        self.put(0, len - 1);
        self.put(x, len);
    }
    fn se(&mut self, v: i64) {
        let k = if v > 0 { 2 * v - 1 } else { -2 * v };
        self.ue(u32::try_from(k).unwrap());
    }
    fn bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }
    /// RBSP trailing bits, then emulation prevention, behind the NAL header.
    fn nal(mut self, header: &[u8]) -> Vec<u8> {
        self.put(1, 1);
        let mut out = header.to_vec();
        let mut zeros = 0;
        for &b in &self.bytes {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }
}

struct SpsSpec {
    profile: u64,
    chroma: u32,
    separate_planes: bool,
    scaling_lists: bool,
    poc_type: u32,
    frame_mbs_only: bool,
    width_mbs: u32,
    height_units: u32,
    crop: Option<[u32; 4]>,
}

fn build_avc_sps(s: &SpsSpec) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.put(s.profile, 8);
    w.put(0, 8);
    w.put(40, 8);
    w.ue(0);
    if s.profile == 100 || s.profile == 244 {
        w.ue(s.chroma);
        if s.chroma == 3 {
            w.flag(s.separate_planes);
        }
        w.ue(0);
        w.ue(0);
        w.flag(false);
        w.flag(s.scaling_lists);
        if s.scaling_lists {
            let lists = if s.chroma == 3 { 12 } else { 8 };
            for i in 0..lists {
                // Alternate: absent, a list ending early via nextScale 0, a full list.
                match i % 3 {
                    0 => w.flag(false),
                    1 => {
                        w.flag(true);
                        w.se(5);
                        w.se(-13); // 8 + 5 - 13 = 0: stop
                    }
                    _ => {
                        w.flag(true);
                        let n = if i < 6 { 16 } else { 64 };
                        for j in 0..n {
                            w.se(if j % 2 == 0 { 3 } else { -2 });
                        }
                    }
                }
            }
        }
    }
    w.ue(0); // log2_max_frame_num_minus4
    w.ue(s.poc_type);
    match s.poc_type {
        0 => w.ue(2),
        1 => {
            w.flag(false);
            w.se(-1);
            w.se(2);
            w.ue(3);
            w.se(1);
            w.se(-4);
            w.se(7);
        }
        _ => {}
    }
    w.ue(4); // max_num_ref_frames
    w.flag(false);
    w.ue(s.width_mbs - 1);
    w.ue(s.height_units - 1);
    w.flag(s.frame_mbs_only);
    if !s.frame_mbs_only {
        w.flag(true);
    }
    w.flag(true);
    w.flag(s.crop.is_some());
    if let Some(c) = s.crop {
        for v in c {
            w.ue(v);
        }
    }
    w.flag(false); // vui_parameters_present_flag
    w.nal(&[0x67])
}

fn sps(spec: SpsSpec) -> Result<VideoParams> {
    parse_avc_sps(&build_avc_sps(&spec))
}

fn base() -> SpsSpec {
    SpsSpec {
        profile: 100,
        chroma: 1,
        separate_planes: false,
        scaling_lists: false,
        poc_type: 0,
        frame_mbs_only: true,
        width_mbs: 120,
        height_units: 68,
        crop: None,
    }
}

#[test]
fn avc_sps_synthesized() {
    assert_eq!(
        sps(base()),
        Ok(VideoParams {
            width: 1920,
            height: 1088
        })
    );
    // 1080p: crop 8 luma rows = 4 crop units at 4:2:0.
    let spec = SpsSpec {
        crop: Some([0, 0, 0, 4]),
        ..base()
    };
    assert_eq!(
        sps(spec),
        Ok(VideoParams {
            width: 1920,
            height: 1080
        })
    );
    // Scaling lists (both early-stopping and full lists) must be skipped correctly.
    let spec = SpsSpec {
        scaling_lists: true,
        crop: Some([1, 2, 3, 4]),
        ..base()
    };
    assert_eq!(
        sps(spec),
        Ok(VideoParams {
            width: 1914,
            height: 1074
        })
    );
    // 4:4:4 with 12 lists; CropUnit 1.
    let spec = SpsSpec {
        profile: 244,
        chroma: 3,
        scaling_lists: true,
        crop: Some([1, 2, 3, 4]),
        ..base()
    };
    assert_eq!(
        sps(spec),
        Ok(VideoParams {
            width: 1917,
            height: 1081
        })
    );
    // Separate colour planes: ChromaArrayType 0, CropUnitY = 2 - frame_mbs_only.
    let spec = SpsSpec {
        profile: 244,
        chroma: 3,
        separate_planes: true,
        frame_mbs_only: false,
        height_units: 34,
        crop: Some([1, 1, 1, 1]),
        ..base()
    };
    assert_eq!(
        sps(spec),
        Ok(VideoParams {
            width: 1918,
            height: 1084
        })
    );
    // 4:2:2 field coding: CropUnitY = 1 * 2.
    let spec = SpsSpec {
        chroma: 2,
        frame_mbs_only: false,
        height_units: 34,
        crop: Some([0, 1, 0, 2]),
        ..base()
    };
    assert_eq!(
        sps(spec),
        Ok(VideoParams {
            width: 1918,
            height: 1084
        })
    );
    // pic_order_cnt_type 1 with its cycle, and 2; baseline (no chroma fields).
    let spec = SpsSpec {
        poc_type: 1,
        ..base()
    };
    assert_eq!(
        sps(spec),
        Ok(VideoParams {
            width: 1920,
            height: 1088
        })
    );
    let spec = SpsSpec {
        profile: 66,
        poc_type: 2,
        width_mbs: 20,
        height_units: 15,
        ..base()
    };
    assert_eq!(
        sps(spec),
        Ok(VideoParams {
            width: 320,
            height: 240
        })
    );
}

#[test]
fn avc_sps_rejects_nonsense() {
    // Cropping more than the picture.
    let spec = SpsSpec {
        width_mbs: 1,
        height_units: 1,
        crop: Some([5, 5, 0, 0]),
        ..base()
    };
    assert!(matches!(sps(spec), Err(MediaError::Malformed { .. })));
    // Out-of-range pic_order_cnt_type.
    let spec = SpsSpec {
        poc_type: 3,
        ..base()
    };
    assert!(matches!(sps(spec), Err(MediaError::Malformed { .. })));
    // Not an SPS NAL unit, empty, and an exp-Golomb code of 40 zeros.
    assert!(parse_avc_sps(&[0x68, 0xee]).is_err());
    assert!(parse_avc_sps(&[]).is_err());
    assert!(parse_avc_sps(&[0x67, 0x42, 0, 0x1e, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0]).is_err());
    // An avcC listing no SPS.
    assert!(matches!(
        parse_avc_decoder_configuration_record(&[1, 0x64, 0, 0x1e, 0xff, 0xe0]),
        Err(MediaError::Malformed { .. })
    ));
    // Every prefix of a real SPS NAL unit fails cleanly or parses.
    let rec = hex(AVC318_420_SEQ);
    let nal = &rec[13..13 + 0x1a];
    assert_eq!(
        parse_avc_sps(nal),
        Ok(VideoParams {
            width: 318,
            height: 238
        })
    );
    for i in 0..nal.len() {
        let _ = parse_avc_sps(&nal[..i]);
    }
}

#[test]
fn hevc_sps_with_sub_layers() {
    // Synthesized HEVC SPS with two sub-layers (profile and level present for one),
    // 4:2:0 1920x1088 with a 1080 conformance window.
    let mut w = BitWriter::default();
    w.put(0, 4);
    w.put(2, 3); // max_sub_layers_minus1
    w.put(1, 1);
    w.put(0x0160_0000, 32); // general profile space/tier/idc + first compat bits...
    w.put(0, 32);
    w.put(0, 24); // ... 88 bits in all
    w.put(93, 8); // general_level_idc
    w.flag(true);
    w.flag(true); // sub-layer 0: profile and level present
    w.flag(false);
    w.flag(false); // sub-layer 1: neither
    w.put(0, 2 * 6); // reserved_zero_2bits for i in 2..8
    w.put(0, 32);
    w.put(0, 32);
    w.put(0, 24); // sub-layer 0 profile (88 bits)
    w.put(90, 8); // sub-layer 0 level
    w.ue(0); // sps_seq_parameter_set_id
    w.ue(1); // chroma_format_idc
    w.ue(1920);
    w.ue(1088);
    w.flag(true);
    w.ue(0);
    w.ue(0);
    w.ue(0);
    w.ue(4);
    w.ue(0); // bit depth etc. (unread)
    let nal = w.nal(&[0x42, 0x01]);
    assert_eq!(
        parse_hevc_sps(&nal),
        Ok(VideoParams {
            width: 1920,
            height: 1080
        })
    );
    for i in 0..nal.len() {
        let _ = parse_hevc_sps(&nal[..i]);
    }
    assert!(parse_hevc_sps(&[0x40, 0x01, 0x0c]).is_err()); // a VPS
}

#[test]
fn helpers_and_display() {
    assert_eq!(
        nal_to_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
        vec![0, 0, 1, 0, 0, 0, 3]
    );
    assert_eq!(fourcc_str(FOURCC_AVC1), "avc1");
    assert_eq!(fourcc_str(0x0001_0203), "0x00010203");
    assert_eq!(VideoCodec::Avc.to_string(), "H.264");
    assert_eq!(VideoCodec::Hevc.to_string(), "HEVC");
    assert_eq!(VideoCodec::Av1.to_string(), "AV1");
    assert_eq!(VideoCodec::Other(13).to_string(), "video codec 13");
    assert_eq!(AudioCodec::Aac.to_string(), "AAC");
    assert_eq!(AudioCodec::Opus.to_string(), "Opus");
    assert_eq!(AudioCodec::Eac3.to_string(), "E-AC-3");
    assert_eq!(AudioCodec::Other(fourcc(b"alac")).to_string(), "alac");
    assert_eq!(
        VideoTag {
            frame_type: VideoFrameType::Key,
            enhanced: false,
            tracks: vec![],
            composition_time: None
        }
        .codec(),
        VideoCodec::Other(0)
    );
    assert!(!MediaError::Empty.to_string().is_empty());
}

// ----- never panic ---------------------------------------------------------------------

fn exercise(bytes: &[u8]) {
    let _ = inspect_video(bytes);
    let _ = inspect_audio(bytes);
    let _ = video_params(bytes);
    let _ = audio_params(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bodies_behind_real_headers_never_panic(
        prefix in 0usize..12,
        body in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let headers: [&[u8]; 12] = [
            b"\x17\x00\x00\x00\x00",
            b"\x1c\x00\x00\x00\x00",
            b"\x90avc1",
            b"\x90hvc1",
            b"\x90av01",
            b"\x96\x00avc1\x00",
            b"\x96\x10hvc1",
            b"\x96\x20",
            b"\x97",
            b"\xaf\x00",
            b"\x90mp4a",
            b"\x95\x20",
        ];
        let mut p = headers[prefix].to_vec();
        p.extend_from_slice(&body);
        exercise(&p);
    }

    #[test]
    fn sps_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut avc = vec![0x67];
        avc.extend_from_slice(&bytes);
        let _ = parse_avc_sps(&avc);
        let mut hevc = vec![0x42, 0x01];
        hevc.extend_from_slice(&bytes);
        let _ = parse_hevc_sps(&hevc);
        let _ = parse_av1_codec_configuration_record(&bytes);
        let mut av1 = vec![0x81, 0, 0, 0, 0x0a, u8::try_from(bytes.len().min(127)).unwrap()];
        av1.extend_from_slice(&bytes);
        let _ = parse_av1_codec_configuration_record(&av1);
        let _ = parse_audio_specific_config(&bytes);
        let _ = parse_hevc_decoder_configuration_record(&bytes);
        let _ = parse_avc_decoder_configuration_record(&bytes);
    }

    #[test]
    fn mutated_real_sps_never_panics(pos in 0usize..26, byte in any::<u8>()) {
        let rec = hex(AVC318_420_SEQ);
        let mut nal = rec[13..13 + 0x1a].to_vec();
        nal[pos.max(1)] = byte;
        let _ = parse_avc_sps(&nal);
    }
}
