#!/usr/bin/env python3
"""Extract and inspect RTMP test vectors from loopback captures.

Subcommands:
  streams PCAP PORT               list TCP connections to PORT (in SYN order)
  extract PCAP PORT INDEX DIR OUT write one connection's byte streams after the
                                  3073-byte handshake: DIR is c2s or s2c
  trim FILE LIMIT OUT             copy FILE's chunk stream up to the last point
                                  <= LIMIT bytes where no message is partial
  dechunk FILE [--chunk-size N]   print the messages of a chunk stream
  body FILE INDEX OUT             write the payload of message INDEX
  amf0 FILE                       print the AMF0 values in FILE

Only the Python standard library is used. The capture must be a libpcap file
(tshark -F pcap) taken on Linux `lo` (Ethernet link type) over IPv4.
"""

import struct
import sys

HANDSHAKE_LEN = 1 + 1536 + 1536  # C0+C1+C2 (or S0+S1+S2), RTMP 1.0 §5.2


# ---------------------------------------------------------------- pcap / TCP

def read_pcap(path):
    data = open(path, "rb").read()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian = ">"
    else:
        raise SystemExit(f"{path}: not a libpcap file (use tshark -F pcap)")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit(f"{path}: link type {linktype}, expected 1 (Ethernet, Linux lo)")
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        yield data[off:off + incl]
        off += incl


def tcp_segments(path):
    """Yields (src, sport, dst, dport, seq, flags, payload) of IPv4 TCP packets."""
    for frame in read_pcap(path):
        if len(frame) < 14 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        if ip[9] != 6:
            continue
        src, dst = ip[12:16], ip[16:20]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        doff = (tcp[12] >> 4) * 4
        flags = tcp[13]
        yield src, sport, dst, dport, seq, flags, tcp[doff:]


def connections(path, port):
    """TCP connections to `port` in SYN order: list of dicts with c2s/s2c bytes."""
    conns = {}
    order = []
    for src, sport, dst, dport, seq, flags, payload in tcp_segments(path):
        if dport == port:
            key, direction = (sport,), "c2s"
        elif sport == port:
            key, direction = (dport,), "s2c"
        else:
            continue
        syn = flags & 0x02
        if key not in conns:
            if not (syn and direction == "c2s"):
                continue  # connection started before the capture
            conns[key] = {"client_port": key[0], "c2s": {}, "s2c": {}, "isn": {}}
            order.append(key)
        c = conns[key]
        if syn:
            c["isn"][direction] = seq
            continue
        if payload:
            c[direction].setdefault(seq, payload)
    out = []
    for key in order:
        c = conns[key]
        res = {"client_port": c["client_port"]}
        for d in ("c2s", "s2c"):
            res[d] = reassemble(c[d], c["isn"].get(d), f"port {key[0]} {d}")
        out.append(res)
    return out


def reassemble(segments, isn, what):
    if isn is None:
        return b""
    buf = bytearray()
    nxt = (isn + 1) & 0xFFFFFFFF
    for seq in sorted(segments, key=lambda s: (s - nxt) & 0xFFFFFFFF):
        payload = segments[seq]
        rel = (seq - nxt) & 0xFFFFFFFF
        if rel > 0x7FFFFFFF:  # retransmission of already-seen bytes
            overlap = ((nxt - seq) & 0xFFFFFFFF)
            payload = payload[overlap:]
            rel = 0
        if rel != 0:
            raise SystemExit(f"{what}: gap of {rel} bytes in the capture")
        buf += payload
        nxt = (nxt + len(payload)) & 0xFFFFFFFF
    return bytes(buf)


# ---------------------------------------------------------------- chunk stream

MESSAGE_TYPES = {
    1: "SetChunkSize", 2: "Abort", 3: "Acknowledgement", 4: "UserControl",
    5: "WindowAcknowledgementSize", 6: "SetPeerBandwidth", 8: "Audio", 9: "Video",
    15: "DataAMF3", 16: "SharedObjectAMF3", 17: "CommandAMF3", 18: "DataAMF0",
    19: "SharedObjectAMF0", 20: "CommandAMF0", 22: "Aggregate",
}


class Truncated(Exception):
    pass


def dechunk(data, chunk_size=128):
    """Parses a chunk stream (RTMP 1.0 §5.3) into messages.

    Returns (messages, safe_points): messages are dicts (csid, fmt of first
    chunk, timestamp, type, msid, payload, end offset); safe_points are chunk
    boundaries at which no message is partially received.
    """
    prev = {}  # csid -> dict(ts, delta, length, type, msid, ext, partial)
    msgs = []
    safe = [0]
    off = 0

    def need(n):
        if off + n > len(data):
            raise Truncated()

    try:
        while off < len(data):
            need(1)
            b0 = data[off]
            fmt, csid = b0 >> 6, b0 & 0x3F
            hlen = 1
            if csid == 0:  # §5.3.1.1: 2-byte form, ids 64-319
                need(2)
                csid = 64 + data[off + 1]
                hlen = 2
            elif csid == 1:  # 3-byte form, ids 64-65599
                need(3)
                csid = 64 + data[off + 1] + data[off + 2] * 256
                hlen = 3
            p = off + hlen
            st = prev.get(csid)
            if fmt != 0 and st is None:
                raise SystemExit(f"offset {off}: fmt {fmt} chunk on csid {csid} with no previous header")
            if fmt == 0:
                need(hlen + 11)
                ts = int.from_bytes(data[p:p + 3], "big")
                length = int.from_bytes(data[p + 3:p + 6], "big")
                mtype = data[p + 6]
                msid = struct.unpack("<I", data[p + 7:p + 11])[0]
                p += 11
            elif fmt == 1:
                need(hlen + 7)
                ts = int.from_bytes(data[p:p + 3], "big")
                length = int.from_bytes(data[p + 3:p + 6], "big")
                mtype = data[p + 6]
                msid = st["msid"]
                p += 7
            elif fmt == 2:
                need(hlen + 3)
                ts = int.from_bytes(data[p:p + 3], "big")
                length, mtype, msid = st["length"], st["type"], st["msid"]
                p += 3
            else:
                ts = None
                length, mtype, msid = st["length"], st["type"], st["msid"]
            # §5.3.1.3: the extended timestamp follows when the 24-bit field is
            # 0xFFFFFF; a type 3 chunk repeats it when its header's one did.
            if fmt != 3:
                ext = ts == 0xFFFFFF
            else:
                ext = st["ext"]
            if ext:
                need(p - off + 4)
                ext_val = struct.unpack(">I", data[p:p + 4])[0]
                p += 4
                if fmt != 3:
                    ts = ext_val
            partial = st["partial"] if st else None
            if partial is None:
                # New message: resolve its absolute timestamp.
                if fmt == 0:
                    abs_ts, delta = ts, 0
                elif fmt in (1, 2):
                    abs_ts, delta = st["ts"] + ts, ts
                else:
                    abs_ts, delta = st["ts"] + st["delta"], st["delta"]
                partial = {"fmt": fmt, "ts": abs_ts, "payload": bytearray()}
            else:
                if fmt != 3:
                    raise SystemExit(f"offset {off}: fmt {fmt} chunk on csid {csid} interrupts a message")
                abs_ts, delta = partial["ts"], st["delta"]
            take = min(chunk_size, length - len(partial["payload"]))
            need(p - off + take)
            partial["payload"] += data[p:p + take]
            p += take
            st = {"ts": abs_ts, "delta": delta, "length": length, "type": mtype, "msid": msid,
                  "ext": ext, "partial": partial}
            prev[csid] = st
            off = p
            if len(partial["payload"]) == length:
                st["partial"] = None
                payload = bytes(partial["payload"])
                msgs.append({"csid": csid, "fmt": partial["fmt"], "timestamp": abs_ts,
                             "type": mtype, "msid": msid, "payload": payload, "end": off})
                if mtype == 1 and len(payload) >= 4:  # §5.4.1 SetChunkSize
                    chunk_size = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
                elif mtype == 2 and len(payload) >= 4:  # §5.4.2 Abort
                    aborted = struct.unpack(">I", payload[:4])[0]
                    if aborted in prev:
                        prev[aborted]["partial"] = None
            if all(s["partial"] is None for s in prev.values()):
                safe.append(off)
    except Truncated:
        pass
    return msgs, safe


# ---------------------------------------------------------------- AMF0

class Amf0Error(Exception):
    pass


def amf0_values(data):
    off = 0
    vals = []
    while off < len(data):
        v, off = amf0_value(data, off)
        vals.append(v)
    return vals


def amf0_value(d, off):
    if off >= len(d):
        raise Amf0Error("truncated")
    m = d[off]
    off += 1
    if m == 0x00:
        return struct.unpack(">d", d[off:off + 8])[0], off + 8
    if m == 0x01:
        return bool(d[off]), off + 1
    if m == 0x02:
        n = struct.unpack(">H", d[off:off + 2])[0]
        return d[off + 2:off + 2 + n].decode("utf-8", "replace"), off + 2 + n
    if m == 0x03:
        return amf0_props(d, off)
    if m == 0x05:
        return None, off
    if m == 0x06:
        return "<undefined>", off
    if m == 0x08:  # ECMA array: u32 count (advisory), then properties
        return amf0_props(d, off + 4)
    if m == 0x0A:
        n = struct.unpack(">I", d[off:off + 4])[0]
        off += 4
        arr = []
        for _ in range(n):
            v, off = amf0_value(d, off)
            arr.append(v)
        return arr, off
    if m == 0x0B:
        return ("<date>", struct.unpack(">d", d[off:off + 8])[0]), off + 10
    if m == 0x0C:
        n = struct.unpack(">I", d[off:off + 4])[0]
        return d[off + 4:off + 4 + n].decode("utf-8", "replace"), off + 4 + n
    raise Amf0Error(f"marker 0x{m:02x} at {off - 1}")


def amf0_props(d, off):
    obj = {}
    while True:
        n = struct.unpack(">H", d[off:off + 2])[0]
        key = d[off + 2:off + 2 + n].decode("utf-8", "replace")
        off += 2 + n
        if n == 0 and d[off] == 0x09:
            return obj, off + 1
        obj[key], off = amf0_value(d, off)


# ---------------------------------------------------------------- CLI

def describe(msg):
    t = MESSAGE_TYPES.get(msg["type"], f"type{msg['type']}")
    p = msg["payload"]
    head = f"csid={msg['csid']} fmt={msg['fmt']} ts={msg['timestamp']} msid={msg['msid']} {t} len={len(p)}"
    if msg["type"] in (18, 20):
        try:
            return head + " " + repr(amf0_values(p))
        except (Amf0Error, struct.error, IndexError) as e:
            return head + f" <amf0 error {e}>"
    if msg["type"] in (1, 3, 5) and len(p) >= 4:
        return head + f" value={struct.unpack('>I', p[:4])[0]}"
    if msg["type"] == 6 and len(p) >= 5:
        return head + f" size={struct.unpack('>I', p[:4])[0]} limit={p[4]}"
    if msg["type"] == 4 and len(p) >= 2:
        return head + f" event={struct.unpack('>H', p[:2])[0]} data={p[2:].hex()}"
    if msg["type"] in (8, 9):
        return head + f" first_bytes={p[:2].hex()}"
    return head


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd = argv[1]
    if cmd == "streams":
        for i, c in enumerate(connections(argv[2], int(argv[3]))):
            print(f"{i}: client port {c['client_port']} c2s={len(c['c2s'])} s2c={len(c['s2c'])}")
    elif cmd == "extract":
        c = connections(argv[2], int(argv[3]))[int(argv[4])]
        data = c[argv[5]]
        if len(data) < HANDSHAKE_LEN:
            raise SystemExit(f"only {len(data)} bytes: no complete handshake")
        open(argv[6], "wb").write(data[HANDSHAKE_LEN:])
        print(f"{argv[6]}: {len(data) - HANDSHAKE_LEN} bytes")
    elif cmd == "trim":
        data = open(argv[2], "rb").read()
        limit = int(argv[3])
        _, safe = dechunk(data)
        cut = max(s for s in safe if s <= limit)
        open(argv[4], "wb").write(data[:cut])
        print(f"{argv[4]}: {cut} of {len(data)} bytes")
    elif cmd == "dechunk":
        data = open(argv[2], "rb").read()
        cs = int(argv[4]) if len(argv) > 4 and argv[3] == "--chunk-size" else 128
        msgs, safe = dechunk(data, cs)
        for i, m in enumerate(msgs):
            print(f"#{i} @{m['end']}: {describe(m)}")
        print(f"{len(msgs)} messages, {len(data)} bytes, last clean boundary {safe[-1]}")
    elif cmd == "body":
        msgs, _ = dechunk(open(argv[2], "rb").read())
        open(argv[4], "wb").write(msgs[int(argv[3])]["payload"])
    elif cmd == "amf0":
        for v in amf0_values(open(argv[2], "rb").read()):
            print(repr(v))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
