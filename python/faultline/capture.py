"""Packet capture on a host (tcpdump) and reading the pcap (scapy).

tcpdump is known to be capturing once it prints "listening on" (it misses
nothing after that line); --immediate-mode and -U make each packet reach
the file as it is seen. Stopping is the delicate part: on SIGINT tcpdump
drops whatever still waits in its ring buffer ("20 packets received by
filter, 9 captured"). So stop() first sends a barrier, a raw frame with
the local-experimental EtherType out of the captured interface, and waits
until that frame is in the file: tcpdump handles packets in order, so every
packet before the barrier is then on disk. scapy is imported only when a
pcap is read: its import costs about a third of a second.
"""

import os
import re
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from .interrupts import INTERRUPTS, cleanup
from .waiting import WaitTimeout, wait_until

BARRIER_ETHERTYPE = 0x88B5  # IEEE 802 local experimental

# Snapshot lengths (tcpdump -s). WHOLE_FRAME keeps every byte of a frame on
# loopback (MTU 65536, plus the Ethernet header), so a ladder can show what
# was said. HEADERS_AND_SOME caps each packet at 512 bytes for captures that
# move volume (megabytes, hundreds of connections): in immediate mode each
# slot of tcpdump's ring is as large as the snapshot length, and a ring of
# 64 KiB slots holds only ~500 packets before the kernel drops the rest.
WHOLE_FRAME = 65536 + 14
HEADERS_AND_SOME = 512


class CaptureIncomplete(AssertionError):
    """The kernel dropped packets before tcpdump read them."""


class Capture:
    def __init__(self, host, path, iface="lo", bpf="tcp", snaplen=WHOLE_FRAME):
        """snaplen: bytes kept of each packet; whole packets by default, so
        that a ladder shows what each one carried; HEADERS_AND_SOME where
        the test moves volume."""
        self.host = host
        self.snaplen = snaplen
        self.path = Path(path)
        self.iface = iface
        self.bpf = f"({bpf}) or ether proto {BARRIER_ETHERTYPE:#06x}"
        self.proc = None
        self.summary = ""

    def start(self, timeout=5.0):
        # -Z root: Debian's tcpdump otherwise drops to user tcpdump and
        # cannot write into a root-owned artifact folder. -B 32768: each
        # slot of the capture ring is as large as the snapshot length, so
        # tcpdump's default (262144 bytes in a 2 MiB ring) holds a handful
        # of packets and drops the rest under load ("70 packets dropped by
        # kernel"); payload lengths come from the IP header, not from the
        # captured bytes, so a short snapshot length loses only previews.
        self.proc = self.host.spawn(
            ["tcpdump", "-i", self.iface, "-n", "-s", str(self.snaplen), "-B", "32768",
             "-U",
             "--immediate-mode", "-Z", "root", "-w", str(self.path), self.bpf],
            name=f"tcpdump-{self.iface}")
        self.proc.wait_for_output("listening on", timeout, stream="stderr")
        return self

    def _send_barrier(self):
        marker = b"faultline-capture-barrier-" + os.urandom(8).hex().encode()

        # The socket is the host's; binding names the interface in its
        # network namespace, whichever namespace this thread is in.
        with self.host.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
            raw.bind((self.iface, 0))
            header = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01"
            raw.send(header + BARRIER_ETHERTYPE.to_bytes(2, "big") + marker)
        return marker

    def stop(self, timeout=5.0, complete=True):
        """Stop tcpdump once everything sent so far is on disk; returns the
        pcap path. After a Ctrl-C (complete=False, or a KeyboardInterrupt on
        its way out) tcpdump is only asked to stop: waiting for the barrier
        frame could take the whole timeout (tcpdump not capturing yet),
        and nobody reads that pcap's last packets."""
        if self.proc is None:
            return self.path
        proc, self.proc = self.proc, None
        complete = complete and not isinstance(sys.exception(), INTERRUPTS)
        if proc.alive() and complete:
            marker = self._send_barrier()
            wait_until(lambda: marker in self.path.read_bytes() or not proc.alive(),
                       timeout, f"tcpdump on {self.host.name} to write the barrier frame",
                       seen=proc.stderr)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout)
        self.summary = proc.stderr()
        if code != 0:
            raise WaitTimeout(f"tcpdump on {self.host.name} ended with {code}: "
                              f"{self.summary.strip()}")
        dropped = re.search(r"(\d+) packets? dropped by kernel", self.summary)
        if dropped and int(dropped.group(1)) > 0:
            # A capture with holes would make packet assertions lie.
            raise CaptureIncomplete(f"tcpdump on {self.host.name} lost packets: "
                                    f"{' '.join(self.summary.split())}; pcap {self.path}")
        return self.path

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        with cleanup(f"stopping the packet capture on {self.host.name}"):
            self.stop()


FLAG_ORDER = "FSRPAUEC"


@dataclass(frozen=True)
class Segment:
    """One TCP segment as the capture saw it."""
    index: int
    time: float
    src: tuple
    dst: tuple
    flags: str      # tcpdump letters: S F R P A ...
    seq: int
    ack: int
    length: int     # payload bytes on the wire
    payload: bytes = b""  # what the capture kept of them (the snapshot length)

    @property
    def cut(self):
        """The capture kept less of the payload than was sent."""
        return len(self.payload) < self.length

    def has(self, flag):
        return flag in self.flags

    def row(self):
        return (f"{self.index:>4} {self.time:17.6f} {self.src[0]}:{self.src[1]} > "
                f"{self.dst[0]}:{self.dst[1]} [{self.flags}] seq={self.seq} "
                f"ack={self.ack} len={self.length}")


def snaplen_of(path):
    """The snapshot length a pcap was written with (its file header), or
    None for a file that is not a classic pcap."""
    with open(path, "rb") as f:
        header = f.read(24)
    if len(header) < 24:
        return None
    for order in ("little", "big"):
        if int.from_bytes(header[:4], order) in (0xA1B2C3D4, 0xA1B23C4D):
            return int.from_bytes(header[16:20], order)
    return None


def read_segments(path):
    """Every TCP segment in a pcap, in capture order."""
    from scapy.layers.inet import IP, TCP  # slow import: only when reading
    from scapy.layers.inet6 import IPv6
    from scapy.utils import PcapReader

    segments = []
    with PcapReader(str(path)) as reader:
        for index, packet in enumerate(reader):
            if TCP not in packet:
                continue
            tcp = packet[TCP]
            if IP in packet:
                ip = packet[IP]
                length = ip.len - ip.ihl * 4 - tcp.dataofs * 4
            else:
                ip = packet[IPv6]
                length = ip.plen - tcp.dataofs * 4
            flags = "".join(f for f in FLAG_ORDER if f in str(tcp.flags))
            # The payload length from the headers: the capture may have
            # kept only the first bytes of each packet (Capture's snaplen).
            segments.append(Segment(
                index=index, time=float(packet.time),
                src=(ip.src, tcp.sport), dst=(ip.dst, tcp.dport), flags=flags,
                seq=tcp.seq, ack=tcp.ack, length=length,
                payload=bytes(tcp.payload)[:max(length, 0)]))
    return segments


@dataclass
class Conversation:
    """One TCP connection: who opened it (client) and what each side sent."""
    client: tuple
    server: tuple
    segments: list

    def _from(self, side, flag):
        return [s for s in self.segments if s.src == side and s.has(flag)]

    @property
    def handshake(self):
        """True when SYN, SYN-ACK and the client's ACK were all seen."""
        syn = [s for s in self._from(self.client, "S") if not s.has("A")]
        synack = [s for s in self._from(self.server, "S") if s.has("A")]
        return bool(syn and synack and any(
            s.src == self.client and s.flags == "A" for s in self.segments))

    def fins_from(self, side):
        return self._from(self.client if side == "client" else self.server, "F")

    def rsts_from(self, side):
        return self._from(self.client if side == "client" else self.server, "R")

    def resets_from(self, side):
        """The RSTs from side that reset this connection.

        Left out: a RST sent after both FINs were acknowledged. By then the
        connection no longer exists (RFC 9293 3.10.7.1), so such a RST is the
        closed port answering a stray segment, not an abort. Seen twice in
        CI under load: the server's socket sent one more pure ACK, numbered
        one below its next sequence number, after its own FIN had been
        acknowledged; the client's TIME_WAIT socket answered it with an ACK,
        and the server's closed port reset that."""
        over = self.closed_in_order_at
        rsts = self.rsts_from(side)
        return rsts if over is None else [s for s in rsts if s.index < over]

    @property
    def closed_in_order_at(self):
        """The capture index of the segment that acknowledged the second
        FIN, when each side's first FIN was acknowledged by the other before
        any RST; else None."""
        done = None
        for side, other in ((self.client, self.server), (self.server, self.client)):
            fin = next((s for s in self.segments if s.src == side and s.has("F")), None)
            if fin is None:
                return None
            after_fin = next((s for s in self.segments
                              if s.index > fin.index and s.src == other
                              and (s.has("R") or (s.has("A") and _covers(s.ack, fin)))), None)
            if after_fin is None or after_fin.has("R"):
                return None
            done = max(done or 0, after_fin.index)
        return done

    def data_from(self, side):
        who = self.client if side == "client" else self.server
        return sum(s.length for s in self.segments if s.src == who)

    @property
    def closed(self):
        """Both sides sent FIN: an orderly close, as after the four-way
        handshake."""
        return bool(self.fins_from("client") and self.fins_from("server"))

    def describe(self):
        return "\n".join(s.row() for s in self.segments)


def _covers(ack, fin):
    """ack acknowledges fin (whose FIN takes the sequence number after its
    payload), in 32-bit sequence space."""
    fin_end = (fin.seq + fin.length + 1) % 2**32
    return (ack - fin_end) % 2**32 < 2**31


def conversations(segments, server_port):
    """Group segments into connections to server_port, in order of SYN."""
    found = {}
    for s in segments:
        if s.dst[1] == server_port:
            client, server = s.src, s.dst
        elif s.src[1] == server_port:
            client, server = s.dst, s.src
        else:
            continue
        key = (client, server)
        if key not in found:
            found[key] = Conversation(client=client, server=server, segments=[])
        found[key].segments.append(s)
    return list(found.values())


def describe(segments, limit=60):
    rows = [s.row() for s in segments[:limit]]
    if len(segments) > limit:
        rows.append(f"... {len(segments) - limit} more")
    return "\n".join(rows) if rows else "(no TCP segments captured)"
