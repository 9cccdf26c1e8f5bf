"""The seed experiments as functions that return what they observed. The
demo prints them, the tests assert on them: one engine, so the two cannot
drift apart."""

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import capture as cap
from . import paths, procs, tcpstate
from .echod import Echod
from .waiting import wait_until

REAPER_DEFECTS = {
    "none": "no SIGCHLD handler (UNP server-v1)",
    "wait": "one wait() per SIGCHLD loses signals (UNP server-v2)",
    "waitpid": "waitpid(WNOHANG) loop (UNP server-v3)",
}


@dataclass
class CloseTogether:
    """UNP 5.8-5.10: N connections from one client (client-v2) close at the
    same moment, so N children exit together."""
    reap: str
    deterministic: bool
    children: list                      # the server's children before the close
    zombies: list                       # its zombie children afterwards
    client_status: int
    sigchld_events: list = field(default_factory=list)
    reaped_events: list = field(default_factory=list)
    ps_after: str = ""
    sockets_after: str = ""
    pcap: Path = None
    events: Path = None

    def evidence(self):
        return (f"reaper {self.reap}, {len(self.children)} children, "
                f"{len(self.zombies)} zombies, {len(self.sigchld_events)} SIGCHLD "
                f"handled, {len(self.reaped_events)} reaped\n"
                f"process table after the close:\n{self.ps_after}\n"
                f"TCP sockets:\n{self.sockets_after}\n"
                f"pcap: {self.pcap}\nevent log: {self.events}")


def start_client(host, port, conns=1, mode="block", name="echoc", extra=()):
    """echoc on a host with its stdin a pipe we write lines to."""
    argv = [paths.binary("echoc"), "--mode", mode, "--conns", conns, *extra,
            "127.0.0.1", port]
    return host.spawn(argv, name=name, stdin=subprocess.PIPE)


def talk(client, line="hello"):
    """Send one line and wait for its echo on the client's stdout."""
    before = client.stdout().count(line + "\n")
    client.stdin.write((line + "\n").encode())
    client.stdin.flush()
    wait_until(lambda: client.stdout().count(line + "\n") > before, 5.0,
               f"the echo of {line!r} on {client.name}'s stdout",
               seen=lambda: f"stdout {client.stdout()[-500:]!r}, "
                            f"stderr {client.stderr()[-500:]!r}")


def all_exited(pids):
    """Every pid is a zombie or gone: the process has exited."""
    return all(procs.state(p) in (None, "Z") for p in pids)


def close_together(host, reap, clients=5, deterministic=True, capture=True,
                   server_args=()):
    """Run the experiment on host and return what was seen.

    deterministic: stop the server while the children exit, so that all
    their SIGCHLDs collapse into exactly one pending signal, then continue
    it. This is UNP's race made certain: without it, how many signals get
    lost depends on scheduling.
    """
    pcap = host.workdir / f"close-together-{reap}.pcap"
    capturer = cap.Capture(host, pcap).start() if capture else None
    try:
        with Echod(host, reap=reap, args=server_args) as server:
            client = start_client(host, server.port, conns=clients)
            talk(client)
            wait_until(lambda: len(server.children()) == clients, 5.0,
                       f"{clients} children of echod, one per connection",
                       seen=server.ps)
            children = server.children()
            if deterministic:
                server.stop()
            client.stdin.close()
            client_status = client.wait(5.0)
            wait_until(lambda: all_exited(c.pid for c in children), 5.0,
                       f"all {clients} children to exit after the client closed",
                       seen=server.ps)
            if deterministic:
                server.cont()
            server.wait_idle()
            result = CloseTogether(
                reap=reap, deterministic=deterministic, children=children,
                zombies=server.zombies(), client_status=client_status,
                sigchld_events=[e for e in server.events("signal")
                                if e.get("name") == "SIGCHLD"],
                reaped_events=server.events("reaped"),
                ps_after=server.ps(),
                sockets_after=tcpstate.table(host.outer_pid, server.port),
                pcap=pcap if capture else None, events=server.events_path)
    finally:
        if capturer:
            capturer.stop()
    return result
