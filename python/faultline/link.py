"""Faults on a host's links: nftables rules and a tbf rate cap.

Each host is its own network namespace, hence its own nftables ruleset and
its own qdiscs: rules go into the table `inet faultline` of that host and
die with it. Every function returns something with remove(); clear(host)
removes them all.

Where the rules sit, and why each packet is judged once:
  input  hook: packets arriving for the port (tcp dport PORT)
  output hook: packets the port sends       (tcp sport PORT)
Put them on the server's host. On one host (loopback) a client -> server
packet crosses output then input, and matches only `dport` at input; a
server -> client packet matches only `sport` at output; across a veth the
same holds on the server's side. So drop_share drops PERCENT % of each
direction, never twice the same packet.

This kernel has no netem: delays come from fault hooks or strace.
"""

import json
import re
from dataclasses import dataclass

TABLE = "faultline"
FAMILY = "inet"

_SETUP = (f"add table {FAMILY} {TABLE}; "
          f"add chain {FAMILY} {TABLE} input "
          "{ type filter hook input priority filter; policy accept; }; "
          f"add chain {FAMILY} {TABLE} output "
          "{ type filter hook output priority filter; policy accept; }")


class LinkError(RuntimeError):
    pass


def _run(host, argv, what):
    code, out, err = host.run(argv, name=argv[0])
    if code != 0:
        raise LinkError(f"{what} on host {host.name} failed ({code}): "
                        f"{' '.join(map(str, argv))}\n{err.strip()}")
    return out


def _nft(host, *words):
    return _run(host, ["nft", *words], "nft")


@dataclass
class Rules:
    """nftables rules added together; remove() deletes them,
    packets() counts what they matched (each has a counter)."""
    host: object
    handles: list     # [(chain, handle, text)]

    def remove(self):
        for chain, handle, _ in self.handles:
            _nft(self.host, "delete", "rule", FAMILY, TABLE, chain, "handle",
                 str(handle))
        self.handles = []

    def packets(self):
        """Packets matched so far, summed over the rules."""
        total = 0
        wanted = {(c, h) for c, h, _ in self.handles}
        data = json.loads(_nft(self.host, "-j", "list", "table", FAMILY, TABLE))
        for item in data.get("nftables", []):
            rule = item.get("rule")
            if rule and (rule["chain"], rule["handle"]) in wanted:
                for expr in rule["expr"]:
                    if "counter" in expr:
                        total += expr["counter"]["packets"]
        return total

    def describe(self):
        return "\n".join(f"{chain}: {text}" for chain, _, text in self.handles)


def _add(host, rules):
    """rules: [(chain, rule text)] -> Rules, after making sure the table
    and its two base chains exist (`add` is idempotent for them)."""
    _nft(host, _SETUP)
    handles = []
    for chain, text in rules:
        out = _nft(host, "--echo", "--handle", "add", "rule", FAMILY, TABLE,
                   chain, text)
        match = re.search(r"# handle (\d+)", out)
        if not match:
            raise LinkError(f"nft did not echo a handle for {text!r}: {out!r}")
        handles.append((chain, int(match.group(1)), text))
    return Rules(host, handles)


def _port(port):
    port = int(port)
    if not 0 < port < 65536:
        raise ValueError(f"not a TCP port: {port}")
    return port


def reject_with_rst(host, port):
    """Answer every segment to port with a TCP RST (nft `reject with tcp
    reset`, input hook): connect() fails with ECONNREFUSED."""
    return _add(host, [("input", f"tcp dport {_port(port)} counter "
                                 "reject with tcp reset")])


def drop_share(host, port, percent):
    """Drop about percent % of the packets to and from port, chosen by
    `numgen random mod 100`: at the input hook those arriving for port,
    at the output hook those port sends (see the module's note)."""
    percent = int(percent)
    if not 1 <= percent <= 100:
        raise ValueError(f"percent must be 1..100, not {percent}")
    port = _port(port)
    # numgen draws 0..99; nft refuses "< 100", so 100 % is a plain drop.
    share = "" if percent == 100 else f"numgen random mod 100 < {percent} "
    return _add(host, [
        ("input", f"tcp dport {port} {share}counter drop"),
        ("output", f"tcp sport {port} {share}counter drop"),
    ])


def drop_syn(host, port):
    """Drop connection requests to port (SYN without ACK, input hook): the
    client retransmits its SYN until its connect timeout."""
    return _add(host, [("input", f"tcp dport {_port(port)} "
                                 "tcp flags & (syn | ack) == syn counter drop")])


@dataclass
class RateCap:
    """A tbf root qdisc on one interface of a host."""
    host: object
    iface: str
    spec: str

    def remove(self):
        _run(self.host, ["tc", "qdisc", "del", "dev", self.iface, "root"], "tc")

    def stats(self):
        return _run(self.host, ["tc", "-s", "qdisc", "show", "dev", self.iface], "tc")


def rate_cap(host, iface, rate, burst="32kbit", latency="50ms"):
    """Cap what iface sends with a token bucket:
    `tc qdisc add dev IFACE root tbf rate RATE burst BURST latency LATENCY`
    (tc's units: rate 8mbit, burst 32kb, latency 50ms). It shapes egress
    only: on a veth, what this host sends to its peer. burst must hold a
    whole packet: on loopback (MTU 65536) that means burst >= 64kb."""
    argv = ["tc", "qdisc", "add", "dev", iface, "root", "tbf", "rate", str(rate),
            "burst", str(burst), "latency", str(latency)]
    _run(host, argv, "tc")
    return RateCap(host, iface, " ".join(argv[6:]))


def clear(host):
    """Remove every faultline rule and every tbf root qdisc from host."""
    code, _, err = host.run(["nft", "delete", "table", FAMILY, TABLE], name="nft")
    if code != 0 and "No such file" not in err:
        raise LinkError(f"nft delete table on host {host.name}: {err.strip()}")
    for line in _run(host, ["tc", "qdisc", "show"], "tc").splitlines():
        match = re.match(r"qdisc tbf \S+ dev (\S+) root", line)
        if match:
            _run(host, ["tc", "qdisc", "del", "dev", match.group(1), "root"], "tc")


def ruleset(host):
    """The host's whole nftables ruleset, for failure messages."""
    code, out, err = host.run(["nft", "list", "ruleset"], name="nft")
    return out if code == 0 else err
