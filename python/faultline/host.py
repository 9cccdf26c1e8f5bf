"""Isolated hosts: one network namespace (loopback up) and one PID namespace
per host, made by the C keeper `flhost` (python/faultline/native/flhost.c).

A host costs one small process start (a few milliseconds). Everything run
on it is killed by the kernel when the host closes, and also when this
Python process dies in any way, SIGKILL included: the keeper dies with us
(PR_SET_PDEATHSIG), and with it the host's init, which takes every process
of the PID namespace along; the network namespace, unnamed, goes with its
last process. Nothing is ever mounted under /run/netns.

The host's init also mounts a /proc of the host's own, in a mount namespace
only it is in: looking at a host's processes (processes()) reads that, and
costs what the host holds, not what the machine runs.
"""

import ctypes
import os
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

from . import paths, procs
from .waiting import WaitTimeout, wait_until

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class HostError(RuntimeError):
    pass


class HostUnavailable(HostError):
    """The machine cannot make hosts here (no privilege): tests skip."""


def _read_line(fd, timeout, what):
    """One line from a pipe, within a deadline."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 256)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


class Proc:
    """A command running on a host. `pid` is its pid as this machine's
    /proc sees it; its own event log calls it by its pid inside the host."""

    def __init__(self, host, name, argv, pid, shim, stdout_path, stderr_path):
        self.host = host
        self.name = name
        self.argv = argv
        self.pid = pid
        self._shim = shim
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    def __repr__(self):
        return f"<Proc {self.name} pid={self.pid}>"

    @property
    def stdin(self):
        return self._shim.stdin

    @property
    def returncode(self):
        """Exit code, or -N when killed by signal N, or None if running."""
        return self._shim.poll()

    def alive(self):
        return self._shim.poll() is None

    def wait(self, timeout=10.0):
        try:
            return self._shim.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for {self.name} "
                f"(pid {self.pid}) to exit; it is "
                f"{procs.describe(self.pid)}") from None

    def send_signal(self, signo):
        """procs.send_signal, only while the shim has not reaped the
        command: until then its pid cannot be another process's."""
        if self._shim.poll() is None:
            procs.send_signal(self.pid, signo)

    def stdout(self):
        return Path(self.stdout_path).read_text(errors="replace")

    def stderr(self):
        return Path(self.stderr_path).read_text(errors="replace")

    def wait_for_output(self, needle, timeout=5.0, stream="stdout"):
        """Poll the captured stdout/stderr file until it contains needle."""
        read = self.stdout if stream == "stdout" else self.stderr

        def found():
            if needle in read():
                return True
            if not self.alive():
                raise AssertionError(
                    f"{self.name} exited ({self.returncode}) before printing "
                    f"{needle!r} on {stream}; stderr: {self.stderr().strip()!r}")
            return False

        wait_until(found, timeout, f"{needle!r} on {self.name}'s {stream}",
                   seen=lambda: read()[-2000:])

    def _reap_shim(self, timeout):
        try:
            self._shim.wait(timeout)
        except subprocess.TimeoutExpired:
            self._shim.kill()
            self._shim.wait()
        if self._shim.stdin:
            self._shim.stdin.close()


class Host:
    """An isolated host. Use as a context manager, or call close()."""

    def __init__(self, name, workdir):
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._procs = []
        self._keeper = None
        self._netns_inode = None
        self.proc_error = None
        self.closed = False
        flhost = paths.binary("flhost")
        try:
            self._keeper = subprocess.Popen(
                [str(flhost), "keep", str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise HostError(f"{flhost} is missing: build first (meson compile -C "
                            f"{paths.BUILD_DIR})") from None
        line = _read_line(self._keeper.stdout.fileno(), 5.0,
                          f"host {name} to come up ({flhost} keep)")
        if not line.startswith("ready "):
            err = self._keeper.stderr.read().decode(errors="replace").strip()
            self._keeper.wait()
            if "Operation not permitted" in err:
                raise HostUnavailable(
                    f"cannot create network/PID namespaces: {err} "
                    "(run as root, or with CAP_SYS_ADMIN)")
            raise HostError(f"host {name} failed to start: {err or line!r}")
        # "ready OUTER INIT", and " noproc CALL: strerror" when the init
        # could not mount the host's /proc (looks then scan the machine).
        fields = line.split(maxsplit=3)
        self.outer_pid = int(fields[1])
        self.init_pid = int(fields[2])
        self.proc_error = fields[3].partition(" ")[2].strip() if len(fields) > 3 else None
        self._netns_inode = os.stat(f"/proc/{self.outer_pid}/ns/net").st_ino
        procs.register_host(self._netns_inode, self.init_pid)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<Host {self.name} keeper={self.outer_pid}>"

    @property
    def netns_inode(self):
        return self._netns_inode

    def processes(self):
        """One look at the host's processes (its PID namespace, zombies
        included) as a procs.ProcessTable: build one per look, ask it many
        questions. Empty once the host is closed."""
        return procs.ProcessTable.of_host(self.init_pid)

    def pids(self):
        """The pids of the host's processes, none of them read: the
        cheapest look, for socket holders say (procs.host_pids)."""
        return procs.host_pids(self.init_pid)

    def spawn(self, argv, name=None, stdin=subprocess.DEVNULL, env=None):
        """Start argv on this host; stdout and stderr go to files in the
        host's workdir (name.stdout, name.stderr), which the caller polls."""
        if self.closed:
            raise HostError(f"host {self.name} is closed")
        argv = [str(a) for a in argv]
        name = name or Path(argv[0]).name
        stdout_path = self.workdir / f"{name}.stdout"
        stderr_path = self.workdir / f"{name}.stderr"
        pid_r, pid_w = os.pipe()
        try:
            with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
                shim = subprocess.Popen(
                    [str(paths.binary("flhost")), "exec", str(self.outer_pid),
                     str(pid_w), "--", *argv],
                    stdin=stdin, stdout=out, stderr=err, pass_fds=(pid_w,),
                    env=env)
            os.close(pid_w)
            pid_w = -1
            line = _read_line(pid_r, 5.0, f"{name} to start on host {self.name}")
        finally:
            os.close(pid_r)
            if pid_w >= 0:
                os.close(pid_w)
        pid = int(line) if line.strip().lstrip("-").isdigit() else -1
        if pid <= 0:
            shim.wait()
            # flhost says "flhost: exec(PROG): strerror"; keep the strerror.
            reason = stderr_path.read_text().strip().rpartition("): ")[2]
            raise HostError(f"cannot start {argv[0]}: {reason}")
        proc = Proc(self, name, argv, pid, shim, stdout_path, stderr_path)
        self._procs.append(proc)
        return proc

    def run(self, argv, timeout=10.0, name=None):
        """Run argv to completion on this host; returns (code, stdout, stderr)."""
        proc = self.spawn(argv, name=name)
        code = proc.wait(timeout)
        return code, proc.stdout(), proc.stderr()

    def in_netns(self, fn, *args):
        """Call fn(*args) in a thread that has joined this host's network
        namespace, and return its result. Sockets created there stay in the
        host's stack after the thread ends: that is how Python-side clients
        and churn loops talk to servers on the host."""
        box = {}

        def target():
            try:
                fd = os.open(f"/proc/{self.outer_pid}/ns/net", os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns(net of host {self.name}): "
                                           f"{os.strerror(err)}")
                finally:
                    os.close(fd)
                box["value"] = fn(*args)
            except BaseException as e:  # re-raised in the caller's thread
                box["error"] = e

        thread = threading.Thread(target=target, name=f"netns-{self.name}")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM):
        """A socket in this host's network stack."""
        return self.in_netns(socket.socket, family, type)

    def connect(self, port, addr="127.0.0.1", timeout=5.0):
        sock = self.socket()
        sock.settimeout(timeout)
        sock.connect((addr, port))
        return sock

    def close(self):
        """Kill everything on the host and wait until it is gone."""
        if self.closed:
            return
        self.closed = True
        if self._keeper is not None:
            procs.forget_host(self._netns_inode)
            if self._keeper.stdin:
                self._keeper.stdin.close()  # the keeper's cue to kill init
            try:
                self._keeper.wait(10)
            except subprocess.TimeoutExpired:
                self._keeper.kill()
                self._keeper.wait()
            self._keeper.stdout.close()
            self._keeper.stderr.close()
        for proc in self._procs:
            proc._reap_shim(5.0)
