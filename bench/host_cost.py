"""What a faultline host costs, beside the usual way of making one.

    sudo /usr/bin/python3 bench/host_cost.py [ROUNDS]

Each round measures, interleaved so that machine noise hits all alike:

- a host taken as a test takes it: Host() with the spare host ready (the
  harness makes the next host while a test runs; this round waits for it
  first, as a test's own run would), then echod started on it until
  Echod.start() returns (its readiness line, then echod idle in ppoll):
  "host + echod ready" (`faultline bench` measures it too);
- the same with the host made on demand (Host(spare=False): one
  `flhost keep` started and up);
- `ip netns add` + `ip -n NS link set lo up` + `ip netns del`;
- the floor under all of these: one exec of a small dynamically linked
  program and its wait (posix_spawn /bin/true). A host made costs one
  (flhost keep); echod's start one (the keeper forks it, echod execs).

Prints medians; nothing here is asserted.
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
from faultline.bench import host_and_echod_ms, spare_host_ready  # noqa: E402


def ms(f):
    t = time.perf_counter()
    f()
    return (time.perf_counter() - t) * 1000


def ip_netns():
    name = "faultline-bench"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "netns", "del", name], check=True)


def one_exec():
    pid = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
    os.waitpid(pid, 0)


def line(what, values, note=""):
    print(f"{what:<44} median {statistics.median(values):6.2f} ms  "
          f"(min {min(values):.2f}){note}")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    build.ensure_built()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spared, fresh, netns, execs = [], [], [], []
        for _ in range(rounds):
            spare_host_ready()
            spared.append(host_and_echod_ms(work, True))
            fresh.append(host_and_echod_ms(work, False))
            netns.append(ms(ip_netns))
            execs.append(ms(one_exec))
    print(f"rounds: {rounds}")
    line("host + echod ready (spare host)", [h + e for h, e in spared])
    line("  of which Host()", [h for h, _ in spared])
    line("  of which echod start to ready", [e for _, e in spared])
    line("host + echod ready (host made on demand)", [h + e for h, e in fresh])
    line("  of which Host()", [h for h, _ in fresh])
    line("ip netns add + lo up + del", netns,
         f";  {statistics.median(netns) / statistics.median([h for h, _ in fresh]):.2f}x "
         f"a host made on demand")
    line("one exec of /bin/true + wait", execs)


if __name__ == "__main__":
    main()
