#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ from tests/vectors plus a few hand-made
inputs. Run from anywhere: `python3 fuzz/make_corpus.py`. Seeds are small on purpose (the
fuzzer mutates small inputs faster); long real streams are cut to their first few KiB."""

import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VECTORS = os.path.join(ROOT, "tests", "vectors")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from rtmp_vectors import dechunk  # noqa: E402

# Split plans (see fuzz/src/lib.rs): selector byte, then 3 seed bytes.
WHOLE = bytes([7, 1, 2, 3])
BYTEWISE = bytes([0, 1, 2, 3])
SMALL = bytes([3, 9, 8, 7])
MEDIUM = bytes([5, 4, 5, 6])


def read(*path):
    with open(os.path.join(VECTORS, *path), "rb") as f:
        return f.read()


def write(target, data, name=None):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = name or hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def amf0_str(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def amf0_num(n):
    return b"\x00" + struct.pack(">d", n)


def amf0_obj(props, marker=b"\x03"):
    out = marker
    for k, v in props:
        out += struct.pack(">H", len(k)) + k.encode() + v
    return out + b"\x00\x00\x09"


def u29(n):
    if n < 0x80:
        return bytes([n])
    if n < 0x4000:
        return bytes([(n >> 7) | 0x80, n & 0x7F])
    if n < 0x200000:
        return bytes([(n >> 14) | 0x80, ((n >> 7) & 0x7F) | 0x80, n & 0x7F])
    return bytes([(n >> 22) | 0x80, ((n >> 15) & 0x7F) | 0x80, ((n >> 8) & 0x7F) | 0x80, n & 0xFF])


def amf3_str_body(s):
    b = s.encode()
    return u29(len(b) << 1 | 1) + b


def chunk_seeds():
    chunks = os.path.join(VECTORS, "chunks")
    for name in sorted(os.listdir(chunks)):
        data = read("chunks", name)
        if len(data) < 1024:
            # Whole play sessions, in several read patterns.
            for plan in (WHOLE, BYTEWISE, SMALL):
                write("chunk_decoder", plan + data)
        else:
            # The first messages (commands, metadata, sequence headers) of the long streams.
            _, safe = dechunk(data)
            cut = max(p for p in safe if p <= 3000)
            write("chunk_decoder", MEDIUM + data[:cut])
    # Hand-made: extended timestamp, 3-byte basic header, Set Chunk Size 1 then a 3-byte
    # message in three fmt 3 chunks, Abort mid-message.
    ext = bytes([0x03]) + b"\xff\xff\xff" + b"\x00\x00\x02" + b"\x09" + b"\x01\x00\x00\x00"
    ext += struct.pack(">I", 0x01000000) + b"\x17\x00"
    long_csid = bytes([0x01, 0xFF, 0xFF]) + b"\x00\x00\x01" + b"\x00\x00\x01\x08" + bytes(4) + b"\xaf"
    scs = bytes([0x02]) + bytes(3) + b"\x00\x00\x04\x01" + bytes(4) + struct.pack(">I", 1)
    three = bytes([0x04]) + bytes(3) + b"\x00\x00\x03\x09" + bytes(4) + b"a" + b"\xc4b" + b"\xc4c"
    abort = (bytes([0x05]) + bytes(3) + b"\x00\x00\x03\x09" + bytes(4) + b"x"
             + bytes([0x02]) + bytes(3) + b"\x00\x00\x04\x02" + bytes(4) + struct.pack(">I", 5)
             + bytes([0x45]) + bytes(3) + b"\x00\x00\x01\x08" + b"y")
    write("chunk_decoder", SMALL + ext + long_csid + scs + three + abort)


def amf0_seeds():
    for name in sorted(os.listdir(os.path.join(VECTORS, "amf0"))):
        write("amf0", read("amf0", name))
    # Every AMF0 command and data body of the short sessions and the server stream.
    for name in ("ffmpeg-play-c2s.bin", "rtmpdump-play-c2s.bin", "nginx-play-s2c.bin",
                 "rtmp2sink-publish-c2s.bin"):
        msgs, _ = dechunk(read("chunks", name))
        seen = set()
        for m in msgs:
            if m["type"] in (18, 20) and m["payload"] not in seen:
                seen.add(m["payload"])
                write("amf0", m["payload"])
    # Hand-made: reference, strict array, date, long string, XML, typed object, AvmPlus,
    # undefined/unsupported, and a nested ECMA array.
    obj = amf0_obj([("a", amf0_num(1)), ("b", b"\x05")])
    write("amf0", obj + b"\x07\x00\x00" + b"\x0a\x00\x00\x00\x02" + amf0_num(2) + b"\x06")
    write("amf0", b"\x0b" + struct.pack(">d", 1.7e12) + b"\xff\xc4" + b"\x0c\x00\x00\x00\x03abc"
          + b"\x0f\x00\x00\x00\x04<a/>" + b"\x0d")
    write("amf0", amf0_obj([("x", amf0_str("y"))], b"\x10\x00\x03Foo"))
    write("amf0", b"\x11\x06" + amf3_str_body("hello") + b"\x11\x04\x7f" + b"\x01\x01")
    write("amf0", b"\x08\x00\x00\x00\x01" + b"\x00\x01k" + amf0_obj([("n", b"\x08\x00\x00\x00\x00\x00\x00\x09")])
          + b"\x00\x00\x09")


def amf3_seeds():
    seeds = [
        b"\x04" + u29(0x1FFFFFFF),
        b"\x05" + struct.pack(">d", -0.5),
        # string, then an array whose key and value reuse it by reference (index 0)
        b"\x09" + u29(2 << 1 | 1) + amf3_str_body("k") + b"\x06\x00" + b"\x01" + b"\x04\x01" + b"\x06\x00",
        # anonymous dynamic object {a: 1}, then a sealed typed object
        b"\x0a\x0b\x01" + amf3_str_body("a") + b"\x04\x01" + b"\x01",
        b"\x0a" + u29(1 << 4 | 0b0011) + amf3_str_body("Pt") + amf3_str_body("x") + b"\x05" + struct.pack(">d", 2.0),
        b"\x0c" + u29(3 << 1 | 1) + b"\x00\x01\x02",
        b"\x0d" + u29(2 << 1 | 1) + b"\x00" + struct.pack(">ii", -1, 7),
        b"\x0e" + u29(1 << 1 | 1) + b"\x01" + struct.pack(">I", 0xFFFFFFFF),
        b"\x0f" + u29(1 << 1 | 1) + b"\x00" + struct.pack(">d", 3.25),
        b"\x10" + u29(2 << 1 | 1) + b"\x00" + amf3_str_body("") + b"\x01\x06" + amf3_str_body("s"),
        b"\x11" + u29(1 << 1 | 1) + b"\x00" + b"\x06" + amf3_str_body("key") + b"\x03",
        b"\x08\x01" + struct.pack(">d", 1.7e12),
        b"\x07" + amf3_str_body("<x/>"),
        b"\x0b" + amf3_str_body("<y/>"),
        # externalizable ArrayCollection around a dense array
        b"\x0a\x07" + amf3_str_body("flex.messaging.io.ArrayCollection") + b"\x09\x03\x01\x04\x05",
        # object reference: an array holding the same object twice
        b"\x09\x05\x01" + b"\x0a\x0b\x01" + amf3_str_body("v") + b"\x02\x01" + b"\x0a\x02",
    ]
    for s in seeds:
        write("amf3", s)


def handshake_seeds():
    fake_c2 = bytes(range(256)) * 6
    for name in sorted(os.listdir(os.path.join(VECTORS, "handshake"))):
        if not name.endswith(".bin"):
            continue
        c0c1 = read("handshake", name)
        for mode, plan in ((0, WHOLE), (1, MEDIUM)):
            write("handshake", bytes([mode]) + plan + c0c1 + fake_c2)
    write("handshake", bytes([1]) + BYTEWISE + b"\x03" + bytes(100))


def command_seeds():
    for name in ("ffmpeg-publish-c2s.bin", "ffmpeg-play-c2s.bin", "rtmpdump-play-c2s.bin",
                 "rtmp2src-play-c2s.bin", "nginx-play-s2c.bin", "rtmp2sink-publish-c2s.bin"):
        msgs, _ = dechunk(read("chunks", name))
        seen = set()
        for m in msgs:
            if m["type"] in (8, 9):
                continue  # media seeds go to the media target
            key = (m["type"], m["payload"])
            if key not in seen:
                seen.add(key)
                write("command", bytes([m["type"]]) + m["payload"])
    # AMF3 command (format byte then AMF0 with an AvmPlus string), shared object, aggregate.
    write("command", b"\x11\x00" + amf0_str("play") + amf0_num(3) + b"\x05" + b"\x11\x06" + amf3_str_body("vec"))
    so = struct.pack(">H", 2) + b"so" + struct.pack(">I", 1) + struct.pack(">I", 1) + bytes(4)
    so += b"\x03" + struct.pack(">I", 8) + struct.pack(">H", 1) + b"x" + b"\x00" + struct.pack(">d", 1)[:4]
    so += b"\x01" + struct.pack(">I", 0)
    write("command", b"\x13" + so)
    tag = b"\x09" + b"\x00\x00\x02" + b"\x00\x00\x28\x00" + b"\x00\x00\x00" + b"\x17\x01" + struct.pack(">I", 13)
    write("command", b"\x16" + tag + tag)
    write("command", b"\x04" + b"\x00\x03" + struct.pack(">II", 1, 3000))


def media_seeds():
    seen = set()
    for name in ("ffmpeg-publish-c2s.bin", "rtmp2sink-publish-c2s.bin"):
        msgs, _ = dechunk(read("chunks", name))
        for m in msgs:
            if m["type"] in (8, 9):
                p = m["payload"][:64]
                if p[:2] not in seen:
                    seen.add(p[:2])
                    write("media", m["payload"][:512])
    # E-RTMP: hvc1 SequenceStart (truncated record), av01 coded frames, Opus SequenceStart,
    # multitrack (one track type) avc1 coded frames, ModEx with a timestamp offset, VP9.
    write("media", bytes([0x90]) + b"hvc1" + bytes([0x01]) + bytes(22))
    write("media", bytes([0x91]) + b"av01" + b"\x12\x00\x0a")
    write("media", bytes([0x90]) + b"vp09" + bytes([0x01, 0, 0, 0]))
    write("media", bytes([0x96, 0x00]) + b"avc1" + b"\x00" + b"\x00\x00\x00\x01\x02")
    write("media", bytes([0x97]) + b"\x00\x00\x01\x00\x10\x00" + b"avc1")
    write("media", bytes([0x90]) + b"Opus" + b"OpusHead" + bytes([1, 2, 0x38, 1, 0x80, 0xBB, 0, 0, 0, 0, 0]))
    write("media", bytes([0x90]) + b"fLaC" + b"\x00\x00\x00\x22" + bytes(34))
    write("media", bytes([0x2e, 0xff, 0xf1]))
    write("media", bytes([0xaf, 0x00, 0x12, 0x10]))
    write("media", bytes([0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x04,
                          0x67, 0x64, 0x00, 0x1f, 0x01, 0x00]))


def http_head_seeds():
    player = (b"GET /live/cam%201.flv?key=a%2Bb+c&x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
              b"User-Agent: flv.js\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n")
    ws = (b"GET /live/a.flv HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
          b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          b"Sec-WebSocket-Version: 13\r\nOrigin: http://x\r\n\r\n")
    write("http_head", WHOLE + player)
    write("http_head", BYTEWISE + player)
    write("http_head", SMALL + ws)
    write("http_head", WHOLE + ws.replace(b"Version: 13", b"Version: 8"))
    write("http_head", MEDIUM + b"\r\nHEAD http://h:1/live/a.flv HTTP/1.0\r\n\r\n")
    write("http_head", WHOLE + b"OPTIONS * HTTP/1.1\r\nHost: a\r\nOrigin: x\r\n"
          b"Access-Control-Request-Method: GET\r\n\r\n")
    write("http_head", WHOLE + b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
    write("http_head", WHOLE + b"GET /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    write("http_head", WHOLE + b"GET /a HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n")
    write("http_head", SMALL + b"GET /a HTTP/1.1\nHost: a\n\n")
    write("http_head", WHOLE + b"GET /" + b"a" * 1100 + b" HTTP/1.1\r\n")


def ws_frame(op, payload, fin=True, mask=None, rsv=0):
    h = bytes([(0x80 if fin else 0) | rsv | op])
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        h += bytes([m | n])
    elif n < 65536:
        h += bytes([m | 126]) + struct.pack(">H", n)
    else:
        h += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        h += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return h + payload


def websocket_seeds():
    mask = b"\x37\xfa\x21\x3d"
    server, client = b"\x00", b"\x01"
    hello = ws_frame(1, b"Hello", mask=mask)
    frag = ws_frame(2, b"Hel", fin=False, mask=mask) + ws_frame(9, b"ping", mask=mask) + \
        ws_frame(0, b"lo", mask=mask)
    write("websocket", server + WHOLE + hello + ws_frame(8, b"\x03\xe8bye", mask=mask))
    write("websocket", server + BYTEWISE + frag)
    write("websocket", server + SMALL + ws_frame(2, bytes(300), mask=mask) + ws_frame(10, b"", mask=mask))
    write("websocket", server + WHOLE + ws_frame(2, b"x"))  # unmasked
    write("websocket", server + WHOLE + b"\x82\xff\x80" + bytes(7))  # top bit
    write("websocket", server + WHOLE + ws_frame(9, b"p", fin=False, mask=mask))
    write("websocket", server + WHOLE + ws_frame(2, b"r", mask=mask, rsv=0x40))
    write("websocket", server + WHOLE + ws_frame(8, b"\x03\xe8\xff", mask=mask))
    flv_tag = b"\x09\x00\x00\x05\x00\x00\x28\x00\x00\x00\x00\x17\x01\x00\x00\x00\x00\x00\x00\x10"
    write("websocket", client + MEDIUM + ws_frame(2, b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
          + ws_frame(2, flv_tag) + ws_frame(2, bytes(200)) + ws_frame(8, b"\x03\xe9"))


def main():
    chunk_seeds()
    amf0_seeds()
    amf3_seeds()
    handshake_seeds()
    command_seeds()
    media_seeds()
    http_head_seeds()
    websocket_seeds()


if __name__ == "__main__":
    main()
