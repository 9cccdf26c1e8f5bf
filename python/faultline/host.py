"""Isolated hosts: one network namespace (loopback up) and one PID namespace
per host, made by the C keeper `flhost` (python/faultline/native/flhost.c).

A host costs one small process start (a few milliseconds), and one is
made ahead of the Host() that takes it (_Spare). The keeper also starts
every command on its host (Host.spawn). Everything run on it is killed by
the kernel when the host closes, and also when this Python process dies in
any way, SIGKILL included: the keeper dies with us (PR_SET_PDEATHSIG), and
with it the host's init, which takes every process of the PID namespace
along; the network namespace, unnamed, goes with its last process. Nothing
is ever mounted under /run/netns.

The host's init also mounts a /proc of the host's own, in a mount namespace
only it is in: looking at a host's processes (processes()) reads that, and
costs what the host holds, not what the machine runs.

Without root the keeper first makes a user namespace in which the caller
keeps its uid and has every capability (flhost.c says how), and everything
on the host runs so. This
process, outside it, can no longer join the host's network namespace from a
thread (setns(2) wants CAP_SYS_ADMIN over the namespace's owner, and a
thread cannot join a user namespace). A socket keeps its network namespace
for life, though: socket() then asks the keeper, which is in the host, to
make one and pass it back (SCM_RIGHTS, about as fast as the thread); and
in_netns() runs its function in a forked child that joins the host, and
hands back the result, sockets included (a fork: milliseconds).
unavailable() says, in one line, why hosts cannot be made here.
"""

import ctypes
import os
import pickle
import pwd
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from . import paths, procs
from .interrupts import cleanup, worker_thread
from .waiting import WaitTimeout, wait_until_written

CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
# The keeper's requests (flhost.c): their kinds, the largest, an answer.
_SOCKET, _SPAWN = 1, 2
_REQUEST_MAX = 256 * 1024
_SPAWN_ANSWER = struct.Struct("ii28s")
# An answer waits for a fork and an exec: seconds only on a machine in trouble.
_ANSWER_TIMEOUT = 10.0
_libc = ctypes.CDLL(None, use_errno=True)


class HostError(RuntimeError):
    pass


class StartFailed(HostError):
    """The keeper could not start a command: call (exec, chdir...) failed
    with errno."""

    def __init__(self, message, call, errno):
        super().__init__(message)
        self.call, self.errno = call, errno


class HostUnavailable(HostError):
    """The machine cannot make hosts here (no privilege): tests skip."""


def _unshare(flags, what):
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare({what}): {os.strerror(err)}")


def _sysctl(name):
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


def _userns_advice():
    """What keeps unprivileged user namespaces off here, and the sysctl
    that allows them."""
    for name, off, on in (("kernel.apparmor_restrict_unprivileged_userns", "1", "0"),
                          ("user.max_user_namespaces", "0", "15000"),
                          ("kernel.unprivileged_userns_clone", "0", "1")):
        if _sysctl(name) == off:
            return (f"this kernel refuses user namespaces to users ({name}={off}): "
                    f"allow them with 'sudo sysctl -w {name}={on}', or run as root")
    return "this kernel refuses user namespaces to users: run as root"


def _try_host_namespaces(report):
    """In a throwaway child: make the namespaces flhost makes; write what
    failed ("call: strerror") to the report descriptor."""
    try:
        if os.geteuid() != 0:
            uid, gid = os.geteuid(), os.getegid()
            _unshare(CLONE_NEWUSER, "CLONE_NEWUSER")
            for name, text in (("uid_map", f"0 {uid} 1"), ("setgroups", "deny"),
                               ("gid_map", f"0 {gid} 1")):
                try:
                    Path("/proc/self", name).write_text(text + "\n")
                except OSError as e:
                    raise OSError(e.errno, f"write /proc/self/{name}: "
                                           f"{os.strerror(e.errno)}") from None
        _unshare(CLONE_NEWNET | CLONE_NEWPID, "CLONE_NEWNET|CLONE_NEWPID")
    except OSError as e:
        os.write(report, e.strerror.encode())


def unavailable():
    """Why this process cannot make hosts (None when it can): one line
    with the way out. Tried in a throwaway child, so it works before any
    build and whatever threads this process runs."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            _try_host_namespaces(w)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as report:
        failed = report.read().decode(errors="replace")
    os.waitpid(pid, 0)
    if not failed:
        return None
    if os.geteuid() == 0:
        return f"{failed}: this machine cannot make network and PID namespaces"
    return f"not root, and {failed}: {_userns_advice()}"


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


_MAX_OUTCOME = 1 << 18


def _with_admin_path(env):
    """env with the administrator's directories on its PATH: on a host
    every command may administer it (nft, tc), and an ordinary user's PATH
    (Debian's) lacks /usr/sbin and /sbin."""
    path = env.get("PATH", os.defpath).split(os.pathsep)
    missing = [d for d in ("/usr/sbin", "/sbin") if d not in path]
    if not missing:
        return env
    return dict(env, PATH=os.pathsep.join(path + missing))


def command_path(env=None):
    """The PATH a command started on a host is looked up in (env: the
    command's environment, os.environ when None)."""
    return _with_admin_path(os.environ if env is None else env).get("PATH", os.defpath)


def _dumps_with_sockets(obj, fds):
    """pickle.dumps, each socket in obj replaced by its index in fds (a
    list it fills with their descriptors)."""
    import io

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, socket.socket):
                fds.append(o.fileno())
                return ("socket", len(fds) - 1, o.gettimeout())
            return None

    out = io.BytesIO()
    Pickler(out).dump(obj)
    return out.getvalue()


def _loads_with_sockets(data, fds):
    import io

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid):
            _, index, timeout = pid
            sock = socket.socket(fileno=fds[index])
            sock.settimeout(timeout)
            return sock

    return Unpickler(io.BytesIO(data)).load()


class Proc:
    """A command running on a host. `pid` is its pid as this machine's
    /proc sees it; its own event log calls it by its pid inside the host.

    The host's keeper forked it and reaps it: its wait status arrives on
    a pipe (status_fd) the keeper writes once it has reaped it, even when
    the host closes (then SIGKILL, most often); a pipe closed unwritten
    means the keeper itself died, and everything on the host with it
    (SIGKILL too). pidfd is the process's own, so a signal can never reach
    another process that reused the pid."""

    def __init__(self, host, name, argv, pid, pidfd, status_fd, stdin,
                 stdout_path, stderr_path):
        self.host = host
        self.name = name
        self.argv = argv
        self.pid = pid
        self._pidfd = pidfd
        self._status_fd = status_fd
        self._returncode = None
        self._status_lock = threading.Lock()
        self.stdin = stdin
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    def __repr__(self):
        return f"<Proc {self.name} pid={self.pid}>"

    def _read_status(self):
        """The status, if the keeper has sent it: never blocks."""
        with self._status_lock:
            if self._returncode is None:
                try:
                    data = os.read(self._status_fd, 4)
                except BlockingIOError:
                    return None
                if len(data) == 4:
                    self._release(os.waitstatus_to_exitcode(struct.unpack("i", data)[0]))
                else:  # the keeper went with its host: so did this process
                    self._release(-signal.SIGKILL)
            return self._returncode

    def _release(self, returncode):
        self._returncode = returncode
        for fd in (self._status_fd, self._pidfd):
            if fd is not None:
                os.close(fd)
        self._status_fd = self._pidfd = None

    @property
    def returncode(self):
        """Exit code, or -N when killed by signal N, or None if running."""
        return self._read_status()

    def alive(self):
        return self._read_status() is None

    def wait(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self._read_status() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(
                    f"timed out after {timeout:g}s waiting for {self.name} "
                    f"(pid {self.pid}) to exit; it is "
                    f"{procs.describe(self.pid)}")
            waiting = select.poll()  # not select(): descriptors may be >= 1024
            waiting.register(self._status_fd, select.POLLIN)
            waiting.poll(left * 1000)
        return self._returncode

    def send_signal(self, signo):
        """Through the process's own pidfd: a process that has exited,
        reaped or not, is not signalled, nor one that took its pid."""
        if self._read_status() is None:
            procs.send_signal(self.pid, signo, pidfd=self._pidfd)

    def stdout(self):
        return Path(self.stdout_path).read_text(errors="replace")

    def stderr(self):
        return Path(self.stderr_path).read_text(errors="replace")

    def wait_for_output(self, needle, timeout=5.0, stream="stdout"):
        """Wait until the captured stdout/stderr file contains needle: looked
        at again whenever the file is written (inotify), not on a timer."""
        read = self.stdout if stream == "stdout" else self.stderr

        def found():
            if needle in read():
                return True
            if not self.alive():
                raise AssertionError(
                    f"{self.name} exited ({self.returncode}) before printing "
                    f"{needle!r} on {stream}; stderr: {self.stderr().strip()!r}")
            return False

        path = self.stdout_path if stream == "stdout" else self.stderr_path
        wait_until_written(path, found, timeout, f"{needle!r} on {self.name}'s {stream}",
                           seen=lambda: read()[-2000:])

    def _closed_with_host(self, timeout):
        """The host is down, its keeper gone: the status is in, or never
        will be."""
        if self.stdin is not None:
            with cleanup(f"closing the stdin of {self.name}"):
                self.stdin.close()
        try:
            self.wait(timeout)
        except WaitTimeout:  # gone with its host all the same
            with self._status_lock:
                if self._returncode is None:
                    self._release(-signal.SIGKILL)


class _Keeper:
    """A running `flhost keep`, its host up: the process, the control
    socket (closed, the host ends; asked, the keeper makes sockets and
    starts commands in the host) and the fields of its ready line."""

    def __init__(self, joins):
        flhost = paths.binary("flhost")
        self.control, keepers_end = socket.socketpair(socket.AF_UNIX,
                                                      socket.SOCK_SEQPACKET)
        # A message must fit the sender's buffer (the kernel doubles what
        # is asked, up to net.core.wmem_max): the largest request is what
        # this buffer allows, up to what the keeper reads.
        self.control.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _REQUEST_MAX)
        self.request_max = min(_REQUEST_MAX, self.control.getsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF) - 1024)
        self.control.settimeout(_ANSWER_TIMEOUT)
        try:
            self.process = subprocess.Popen(
                [str(flhost), "keep", str(os.getpid()), *joins],
                stdin=keepers_end.fileno(), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
        except FileNotFoundError:
            self.control.close()
            raise HostError(f"{flhost} is missing: build first (meson compile -C "
                            f"{paths.BUILD_DIR})") from None
        finally:
            keepers_end.close()
        try:
            line = _read_line(self.process.stdout.fileno(), 5.0,
                              f"a host to come up ({flhost} keep)")
        except BaseException:
            self.close()
            raise
        if not line.startswith("ready "):
            err = self.process.stderr.read().decode(errors="replace").strip()
            self.close()
            if "Operation not permitted" in err:
                raise HostUnavailable(unavailable() or f"cannot make a host: {err}")
            raise HostError(f"a host failed to start: {err or line!r}")
        # "ready OUTER INIT", and " noproc CALL: strerror" when the init
        # could not mount the host's /proc (looks then scan the machine).
        fields = line.split(maxsplit=3)
        self.outer_pid = int(fields[1])
        self.init_pid = int(fields[2])
        self.proc_error = fields[3].partition(" ")[2].strip() if len(fields) > 3 else None

    def close(self):
        """The host down (the keeper takes everything on it along), and
        the keeper reaped."""
        self.control.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


class _Spare:
    """One host made ahead of the Host() that will take it, so that a test
    does not wait for a keeper to start: taking one makes the next, in a
    thread of its own. That thread lives as long as this process, because
    a keeper dies with the thread that started it (PR_SET_PDEATHSIG is the
    parent thread's). Only for hosts of their own user namespace, or of
    none (root): a host that must join another's is made when asked."""

    def __init__(self):
        self._forget()
        # A forked child has no maker thread, and its copy of the lock may
        # be held by a thread that did not come along: it starts afresh.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self):
        self._ready = threading.Condition()
        self._spare = None  # a _Keeper, or what making one raised
        self._wanted = False
        self._maker = None

    def want(self):
        """Have a host made ahead, if none is made or being made."""
        with self._ready:
            self._want()

    def _want(self):
        if self._maker is None:
            self._maker = worker_thread(self._make, name="spare-host", daemon=True)
            self._maker.start()
        self._wanted = True
        self._ready.notify_all()

    def ready(self):
        with self._ready:
            return self._spare is not None

    def take(self):
        """A host up: the spare, or the one being made (asked for now if
        none is). The next spare is asked for when the host taken closes
        (Host.close): made now, it would compete with the taker's own start
        for the CPU and for this process's GIL."""
        with self._ready:
            if self._spare is None:
                self._want()
            while self._spare is None:
                self._ready.wait()
            spare, self._spare = self._spare, None
        if isinstance(spare, HostUnavailable):
            raise spare
        if isinstance(spare, BaseException) or spare.process.poll() is not None:
            # What failed then (a busy machine's timeout, say) may not now;
            # a keeper that died while it waited is no host.
            if not isinstance(spare, BaseException):
                spare.close()
            return _Keeper([])
        return spare

    def _make(self):
        while True:
            with self._ready:
                while not self._wanted or self._spare is not None:
                    self._ready.wait()
                self._wanted = False
            try:
                made = _Keeper([])
            except BaseException as e:  # raised to the Host() that takes it
                made = e
            with self._ready:
                self._spare = made
                self._ready.notify_all()


_spare = _Spare()


class Host:
    """An isolated host. Use as a context manager, or call close()."""

    def __init__(self, name, workdir, user_of=None, spare=True):
        """user_of: a host whose user namespace this one joins, when hosts
        have their own (without root); hosts that share a link must.
        spare: False to make the host now rather than take the one made
        ahead (bench/host_cost.py measures both)."""
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._procs = []
        self._keeper = None
        self._netns_inode = None
        self._broken = None
        self.closed = False
        self._ports_for_users = False
        self._control_lock = threading.Lock()
        joins = [str(user_of.outer_pid)] if user_of is not None and os.geteuid() else []
        try:
            self._keeper = _spare.take() if spare and not joins else _Keeper(joins)
        except HostUnavailable:
            raise
        except HostError as e:
            raise HostError(f"host {name}: {e}") from None
        keeper = self._keeper
        self.outer_pid = keeper.outer_pid
        self.init_pid = keeper.init_pid
        self.proc_error = keeper.proc_error
        self._netns_inode = os.stat(f"/proc/{self.outer_pid}/ns/net").st_ino
        # Whether a thread of ours may join the host's network namespace:
        # only when the host has no user namespace of its own (root).
        self.own_user_namespace = (os.stat(f"/proc/{self.outer_pid}/ns/user").st_ino
                                   != os.stat("/proc/self/ns/user").st_ino)
        procs.register_host(self._netns_inode, self.init_pid)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        with cleanup(f"closing host {self.name}"):
            self.close()

    def __repr__(self):
        return f"<Host {self.name} keeper={self.outer_pid}>"

    @property
    def netns_inode(self):
        return self._netns_inode

    def pin_netns(self):
        """The host's network namespace held open (procs.NetnsPin): to look
        for what its end left behind by namespace, pin before close()."""
        if self.closed:
            raise HostError(f"host {self.name} is closed: pin its namespace before")
        pin = procs.NetnsPin(self.outer_pid)
        if pin.inode != self._netns_inode:  # the keeper gone, its pid taken
            pin.close()
            raise HostError(f"host {self.name}: its keeper {self.outer_pid} is not in "
                            f"its namespace any more")
        return pin

    def processes(self):
        """One look at the host's processes (its PID namespace, zombies
        included) as a procs.ProcessTable: build one per look, ask it many
        questions. Empty once the host is closed."""
        return procs.ProcessTable.of_host(self.init_pid)

    def pids(self):
        """The pids of the host's processes, none of them read: the
        cheapest look, for socket holders say (procs.host_pids)."""
        return procs.host_pids(self.init_pid)

    def spawn(self, argv, name=None, stdin=subprocess.DEVNULL, env=None, user=None):
        """Start argv on this host; stdout and stderr go to files in the
        host's workdir (name.stdout, name.stderr), which the caller polls.
        stdin: subprocess.DEVNULL, or subprocess.PIPE (then proc.stdin is
        the pipe's end, a binary file). user: a user name or uid to run it
        as, with no capabilities (root only: without root everything on a
        host already runs as the caller).

        The host's keeper starts the command (it is in the host's
        namespaces already): one exec per command, and no process of ours
        between it and the host."""
        if self.closed:
            raise HostError(f"host {self.name} is closed")
        argv = [str(a) for a in argv]
        if not argv:
            raise HostError(f"host {self.name}: an empty command, nothing to start")
        uid, gid = self._as_user(user) if user is not None else (-1, -1)
        name = name or Path(argv[0]).name
        env = _with_admin_path(os.environ if env is None else env)
        stdout_path = self.workdir / f"{name}.stdout"
        stderr_path = self.workdir / f"{name}.stderr"
        theirs, ours = [], []
        try:
            if stdin == subprocess.PIPE:
                stdin_r, stdin_w = os.pipe()
                ours.append(stdin_w)
            elif stdin == subprocess.DEVNULL:
                stdin_r = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            else:
                raise ValueError(f"stdin must be DEVNULL or PIPE, not {stdin!r}")
            theirs.append(stdin_r)
            for path in (stdout_path, stderr_path):
                theirs.append(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                                      | os.O_CLOEXEC, 0o666))
            status_r, status_w = os.pipe()
            ours.append(status_r)
            theirs.append(status_w)
            os.set_blocking(status_r, False)
            pid, pidfd = self._keeper_spawns(argv, env, uid, gid, theirs)
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        proc = Proc(self, name, argv, pid, pidfd, status_r,
                    os.fdopen(stdin_w, "wb") if stdin == subprocess.PIPE else None,
                    stdout_path, stderr_path)
        self._procs.append(proc)
        return proc

    def _keeper_spawns(self, argv, env, uid, gid, fds):
        """The spawn request (flhost.c, serve_spawn): (pid, pidfd)."""
        try:
            cwd = os.fsencode(os.getcwd())
        except FileNotFoundError:  # removed: the keeper's own, "/"
            cwd = b""
        envs = [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()]
        # In this process's working directory, as a child of ours would be:
        # the keeper's is "/" (a spare's was made long before).
        strings = b"".join(s + b"\0" for s in [cwd, *map(os.fsencode, argv), *envs])
        request = struct.pack("iIIii", _SPAWN, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF,
                              len(argv), len(envs)) + strings
        if len(request) > self._keeper.request_max:
            raise HostError(f"cannot start {argv[0]}: its arguments and environment "
                            f"take {len(request):,} bytes, over the "
                            f"{self._keeper.request_max:,} a request to the host's "
                            f"keeper may")
        data, got = self._ask_keeper(request, fds, _SPAWN_ANSWER.size,
                                     f"to start {argv[0]}")
        if len(data) != _SPAWN_ANSWER.size:
            for fd in got:
                os.close(fd)
            raise HostError(f"host {self.name}: its keeper ({self.outer_pid}) did not "
                            f"answer a request to start {argv[0]}")
        err, pid, call = _SPAWN_ANSWER.unpack(data)
        if err:
            for fd in got:
                os.close(fd)
            call = call.rstrip(b"\0").decode(errors="replace")
            raise StartFailed(f"cannot start {argv[0]}: {call}: {os.strerror(err)}",
                              call, err)
        return pid, got[0]

    def _ask_keeper(self, request, fds, answer_size, what):
        """One request and its answer: (data, descriptors). A request whose
        answer did not come (an interrupt, a keeper that did not answer in
        time) leaves the host unusable: the answer still on its way would
        be taken for the next one's."""
        with self._control_lock:
            if self._broken:
                raise HostError(f"host {self.name} is unusable: {self._broken}")
            try:
                socket.send_fds(self._keeper.control, [request], fds)
            except OSError as e:
                raise HostError(f"host {self.name}: its keeper ({self.outer_pid}) "
                                f"is gone: {e.strerror or e}") from None
            try:
                data, got, flags, _ = socket.recv_fds(self._keeper.control, answer_size, 1,
                                                      socket.MSG_CMSG_CLOEXEC)
            except BaseException as e:
                self._broken = (f"a request {what} got no answer "
                                f"({type(e).__name__}: {e})")
                if isinstance(e, TimeoutError):
                    raise HostError(f"host {self.name}: its keeper ({self.outer_pid}) "
                                    f"did not answer a request {what} within "
                                    f"{_ANSWER_TIMEOUT:g} s") from None
                if isinstance(e, OSError):
                    raise HostError(f"host {self.name}: its keeper ({self.outer_pid}) "
                                    f"is gone: {e.strerror or e}") from None
                raise
        if flags & socket.MSG_CTRUNC:
            for fd in got:
                os.close(fd)
            raise HostError(f"host {self.name}: the descriptor its keeper passed back "
                            f"{what} did not arrive (too many open files here?)")
        return data, got

    def _as_user(self, user):
        """flhost's UID GID for user; the first time, lets ordinary users
        bind ports below 1024 on this host (its network namespace only),
        so a server on port 7 runs as one as it would as root."""
        if os.geteuid() != 0:
            raise HostError(f"running a server as user {user} needs root: without "
                            f"root, everything on a host already runs as you")
        try:
            entry = pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(user)
        except KeyError:
            raise HostError(f"no such user: {user}") from None
        if entry.pw_uid == 0:
            raise HostError(f"user {user} is root: name an unprivileged user")
        if not self._ports_for_users:
            code, _, err = self.run(["/bin/sh", "-c", "echo 0 > "
                                     "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
                                    name="unprivileged-ports")
            if code != 0:
                raise HostError(f"cannot open ports below 1024 to users on host "
                                f"{self.name}: {err.strip()}")
            self._ports_for_users = True
        return entry.pw_uid, entry.pw_gid

    def run(self, argv, timeout=10.0, name=None):
        """Run argv to completion on this host; returns (code, stdout, stderr)."""
        proc = self.spawn(argv, name=name)
        code = proc.wait(timeout)
        return code, proc.stdout(), proc.stderr()

    def in_netns(self, fn, *args):
        """Call fn(*args) in this host's network namespace and return its
        result. Sockets created there stay in the host's stack afterwards:
        that is how Python-side clients and churn loops talk to servers on
        the host. As root fn runs in a thread of this process; without root
        in a forked child (see the top of this file): its result, and what
        it raises, come back pickled, sockets as sockets, but what it does
        to this process's objects stays in the child."""
        if self.own_user_namespace:
            return self._in_netns_forked(fn, args)
        box = {}

        def target():
            try:
                self._join("net", CLONE_NEWNET)
                box["value"] = fn(*args)
            except BaseException as e:  # re-raised in the caller's thread
                box["error"] = e

        # A daemon: when Ctrl-C interrupts the join below, the process must
        # not wait at exit for fn (a churn loop, say) to finish on its own.
        thread = worker_thread(target, name=f"netns-{self.name}", daemon=True)
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _join(self, kind, nstype):
        """This thread into the host's namespace of that kind."""
        fd = os.open(f"/proc/{self.outer_pid}/ns/{kind}", os.O_RDONLY)
        try:
            if _libc.setns(fd, nstype) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({kind} of host {self.name}): "
                                   f"{os.strerror(err)}")
        finally:
            os.close(fd)

    def _in_netns_forked(self, fn, args):
        """in_netns() for a host with its own user namespace: a forked child
        (single-threaded, so it may join a user namespace) joins the host's
        user and network namespaces, calls fn, and sends back the pickled
        outcome in one SOCK_SEQPACKET message, the descriptors of the
        sockets in it attached."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                ours.close()
                _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                try:
                    self._join("user", CLONE_NEWUSER)
                    self._join("net", CLONE_NEWNET)
                    outcome = ("value", fn(*args))
                except BaseException as e:
                    outcome = ("error", e)
                fds = []
                try:
                    data = _dumps_with_sockets(outcome, fds)
                except Exception as e:
                    fds = []
                    data = _dumps_with_sockets(("error", HostError(
                        f"in_netns({getattr(fn, '__name__', fn)!r}) on host "
                        f"{self.name}: its outcome does not pickle: {e}")), fds)
                socket.send_fds(theirs, [data], fds)
                status = 0
            finally:
                os._exit(status)
        theirs.close()
        try:
            data, fds, flags, _ = socket.recv_fds(ours, _MAX_OUTCOME, 64)
        finally:
            ours.close()
            os.waitpid(pid, 0)
        if not data:
            raise HostError(f"in_netns on host {self.name}: the child ({pid}) "
                            "died before handing back fn's outcome")
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            raise HostError(f"in_netns on host {self.name}: fn's outcome is over "
                            f"{_MAX_OUTCOME} bytes or {64} sockets")
        kind, value = _loads_with_sockets(data, fds)
        if kind == "error":
            raise value
        return value

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0):
        """A socket in this host's network stack."""
        if not self.own_user_namespace:
            return self.in_netns(socket.socket, family, type, proto)
        if self.closed:
            raise HostError(f"host {self.name} is closed")
        data, fds = self._ask_keeper(struct.pack("4i", _SOCKET, family, type, proto), [],
                                     4, "for a socket")
        if len(data) != 4:
            for fd in fds:
                os.close(fd)
            raise HostError(f"host {self.name}: its keeper ({self.outer_pid}) did not "
                            f"answer a request for a socket")
        err = struct.unpack("i", data)[0]
        if err:
            raise OSError(err, f"socket({family!r}, {type!r}, {proto}) on host "
                               f"{self.name}: {os.strerror(err)}")
        return socket.socket(fileno=fds[0])

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
            self._keeper.close()
            _spare.want()  # the next test's host, made while this one ends
        for proc in self._procs:
            proc._closed_with_host(5.0)
