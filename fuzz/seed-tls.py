#!/usr/bin/env python3
"""Turns real captures (pcapng files `mailwire run ... --pcap` wrote, with their Decryption
Secrets Blocks) into seeds for the TLS fuzz targets:
  corpus/tls_decrypt/seed-<name>-<conn>   one TCP connection each, in tls_decrypt's format
  corpus/keylog_parse/seed-<name>         the key log text of the file's secrets blocks
  corpus/secrets_blocks/seed-<name>       the file itself
  usage: seed-tls.py CORPUS_DIR FILE.pcapng...
Only the standard library: the pcapng blocks, Ethernet, IPv4/IPv6 and TCP are read by hand."""
import os
import struct
import sys

PORTS = [110, 995, 25, 465, 587, 2525]  # as in fuzz_targets/tls_decrypt.rs


def blocks(data):
    at, order = 0, "<"
    while at + 12 <= len(data):
        kind = struct.unpack_from("<I", data, at)[0]
        if kind == 0x0A0D0D0A:
            order = ">" if data[at + 8:at + 12] == b"\x1a\x2b\x3c\x4d" else "<"
        length = struct.unpack_from(order + "I", data, at + 4)[0]
        if length < 12 or at + length > len(data):
            return
        yield struct.unpack_from(order + "I", data, at)[0], data[at + 8:at + length - 4], order
        at += length


def tcp_of(frame):
    """(src, sport, dst, dport, seq, flags, payload) of an Ethernet frame, or None."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from(">H", frame, 12)[0]
    ip = frame[14:]
    if ethertype == 0x0800 and len(ip) >= 20 and ip[9] == 6:
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        src, dst, tcp = ip[12:16], ip[16:20], ip[ihl:total]
    elif ethertype == 0x86DD and len(ip) >= 40 and ip[6] == 6:
        plen = struct.unpack_from(">H", ip, 4)[0]
        src, dst, tcp = ip[8:24], ip[24:40], ip[40:40 + plen]
    else:
        return None
    if len(tcp) < 20:
        return None
    sport, dport, seq = struct.unpack_from(">HHI", tcp, 0)
    off = (tcp[12] >> 4) * 4
    return src, sport, dst, dport, seq, tcp[13], tcp[off:]


def main():
    out, files = sys.argv[1], sys.argv[2:]
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0]
        data = open(path, "rb").read()
        keylog, frames = b"", []
        for kind, body, order in blocks(data):
            if kind == 0x0000000A and len(body) >= 8:
                stype, slen = struct.unpack_from(order + "II", body, 0)
                if stype == 0x544C534B:  # "TLSK"
                    keylog += body[8:8 + slen].rstrip(b"\0")
                    if not keylog.endswith(b"\n"):
                        keylog += b"\n"
            elif kind == 6 and len(body) >= 20:
                caplen = struct.unpack_from(order + "I", body, 12)[0]
                frames.append(body[20:20 + caplen])
        conns = {}
        for frame in frames:
            t = tcp_of(frame)
            if t is None:
                continue
            src, sport, dst, dport, seq, flags, payload = t
            key = tuple(sorted([(src, sport), (dst, dport)]))
            conns.setdefault(key, []).append(t)
        for n, segs in enumerate(conns.values()):
            syn = next((s for s in segs if s[5] & 0x02 and not s[5] & 0x10), segs[0])
            client = (syn[0], syn[1])
            server_port = syn[3]
            port = PORTS.index(server_port) if server_port in PORTS else 1
            isn, nxt = {}, {}
            script = bytearray()
            for src, sport, dst, dport, seq, flags, payload in segs:
                side = 0 if (src, sport) == client else 1
                isn.setdefault(side, seq)
                rel = (seq - isn[side]) & 0xFFFFFFFF
                if rel > 0xFFFF:
                    continue
                control = side
                control |= 0x02 if flags & 0x02 else 0
                control |= 0x04 if flags & 0x01 else 0
                control |= 0x08 if flags & 0x10 else 0
                control |= 0x10 if flags & 0x04 else 0
                if rel == nxt.get(side, 0):
                    control |= 0x80
                nxt[side] = rel + len(payload) + (1 if flags & 0x02 else 0) + (1 if flags & 0x01 else 0)
                script += struct.pack(">BHH", control, rel, len(payload)) + payload
            seed = struct.pack(">BH", port, len(keylog)) + keylog + bytes(script)
            os.makedirs(f"{out}/tls_decrypt", exist_ok=True)
            open(f"{out}/tls_decrypt/seed-{name}-{n}", "wb").write(seed)
        for target, content in (("keylog_parse", keylog), ("secrets_blocks", data)):
            if content:
                os.makedirs(f"{out}/{target}", exist_ok=True)
                open(f"{out}/{target}/seed-{name}", "wb").write(content)


if __name__ == "__main__":
    main()
