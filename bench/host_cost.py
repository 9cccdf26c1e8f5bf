"""What a faultline host costs, beside the usual way of making one.

    sudo /usr/bin/python3 bench/host_cost.py [ROUNDS]

Each round makes and destroys, interleaved so that machine noise hits both
alike: (a) a harness Host (flhost: network + PID namespace, lo up), and
(b) `ip netns add` + `ip -n NS link set lo up` + `ip netns del`. Also the
cost of a host with echod started (until Echod.start() returns: its
readiness line, then echod idle in ppoll) and stopped, and of the start
alone, and the floor under all of these: one exec of a small
dynamically linked program and its wait (posix_spawn /bin/true), of which
a host makes one (flhost keep) and echod's start two (flhost exec, then
echod). Prints medians and the ratio; nothing here is asserted.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from faultline import build  # noqa: E402
from faultline.echod import Echod  # noqa: E402
from faultline.host import Host  # noqa: E402


def ms(f):
    t = time.perf_counter()
    f()
    return (time.perf_counter() - t) * 1000


def harness_host(workdir):
    Host("bench", workdir).close()


def ip_netns():
    name = "faultline-bench"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "netns", "del", name], check=True)


def one_exec():
    pid = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
    os.waitpid(pid, 0)


def echod_ready(workdir, start_ms):
    """A host with echod up and stopped; start_ms gets the part from spawn
    to Echod.start() returning (its readiness line, then idle in ppoll)."""
    with Host("bench", workdir) as host:
        server = Echod(host)
        start_ms.append(ms(server.start))
        server.terminate()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    build.ensure_built()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        a, b, c, d, e = [], [], [], [], []
        for _ in range(rounds):
            a.append(ms(lambda: harness_host(work)))
            b.append(ms(ip_netns))
            c.append(ms(lambda: echod_ready(work, d)))
            e.append(ms(one_exec))
    ma, mb, mc, md, me = (statistics.median(x) for x in (a, b, c, d, e))
    print(f"rounds: {rounds}")
    print(f"harness Host create+close     median {ma:6.2f} ms  (min {min(a):.2f})")
    print(f"ip netns add+lo up+del        median {mb:6.2f} ms  (min {min(b):.2f})")
    print(f"ratio ip netns / Host         {mb / ma:6.2f}x")
    print(f"Host + echod ready + SIGTERM  median {mc:6.2f} ms")
    print(f"  of which echod start to ready median {md:6.2f} ms  (min {min(d):.2f})")
    print(f"one exec of /bin/true + wait  median {me:6.2f} ms  (min {min(e):.2f})")


if __name__ == "__main__":
    main()
