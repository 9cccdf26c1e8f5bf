"""The five echod models side by side: connections per second and echo
throughput, on loopback inside a faultline host.

    sudo /usr/bin/python3 bench/models.py [ROUNDS]

Each round runs every model once, in turn, so that noise on this shared
machine hits them alike; medians over the rounds and the ratio to the fork
model are printed. Nothing is asserted. Every loop is bounded in count.

  conn/s   2,000 times: connect, echo one byte, close, from one client
           (a loop in the host's network stack: one client, so this
           measures each model's per-connection cost, not its scaling)
  MB/s     echoc --bytes 200000000 --verify, one connection, block mode
"""

import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from faultline import build, paths  # noqa: E402
from faultline.echod import Echod  # noqa: E402
from faultline.host import Host  # noqa: E402

MODELS = {"fork": [], "thread": [], "prefork": ["--workers", "8"],
          "poll": ["--sigpipe", "ignore"], "epoll": ["--sigpipe", "ignore"]}
CONNECTIONS = 2000
BYTES = 200_000_000


def connection_rate(host, port):
    def loop():
        start = time.perf_counter()
        for _ in range(CONNECTIONS):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"x")
                s.recv(1)
        return CONNECTIONS / (time.perf_counter() - start)
    return host.in_netns(loop)


def echo_throughput(host, port):
    start = time.perf_counter()
    code, _, err = host.run([paths.binary("echoc"), "--bytes", BYTES, "--verify",
                             "127.0.0.1", port], timeout=120)
    if code != 0:
        raise RuntimeError(f"echoc failed: {err}")
    return BYTES / (time.perf_counter() - start) / 1e6


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    build.ensure_built()
    rate = {m: [] for m in MODELS}
    mbps = {m: [] for m in MODELS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for model, args in MODELS.items():
                with Host(f"bench-{model}", Path(tmp) / f"{model}-{r}") as host:
                    with Echod(host, model=model, args=args) as server:
                        rate[model].append(connection_rate(host, server.port))
                        mbps[model].append(echo_throughput(host, server.port))
    base_rate = statistics.median(rate["fork"])
    base_mbps = statistics.median(mbps["fork"])
    print(f"rounds: {rounds}; {CONNECTIONS} connect-echo-close per round (one Python "
          f"client), {BYTES // 1_000_000} MB echo with --verify")
    print(f"{'model':<9}{'conn/s':>9}{'x fork':>8}{'MB/s':>9}{'x fork':>8}")
    for model in MODELS:
        r, m = statistics.median(rate[model]), statistics.median(mbps[model])
        print(f"{model:<9}{r:>9.0f}{r / base_rate:>8.2f}{m:>9.0f}{m / base_mbps:>8.2f}")


if __name__ == "__main__":
    main()
