"""The client moves of the harness's tests, checks and scenarios: on
sockets they created in a host (Host.connect), read exactly, echo a round
trip, reset instead of close; with echoc, start it with its stdin a pipe
and type lines into it."""

import socket
import struct
import subprocess

from . import paths, procs
from .waiting import wait_until

# What echoc says, and exits 4 for, when the server closed before every
# echo came back (UNP 5.12).
PREMATURE = "server terminated prematurely"


def recv_exactly(sock, n):
    """n bytes, or fewer at end of file (the socket's timeout bounds it)."""
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(min(65536, n - len(got)))
        if not chunk:
            break
        got += chunk
    return bytes(got)


def echo(sock, data=b"ping\n"):
    """Send data and read back as many bytes: the echo, or less at EOF."""
    sock.sendall(data)
    return recv_exactly(sock, len(data))


def reset(sock):
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def start_client(host, port, args=(), name="echoc", addr="127.0.0.1"):
    """echoc on a host, with `args` before ADDR PORT and its stdin a pipe
    that talk() writes lines to."""
    argv = [paths.binary("echoc"), *args, addr, port]
    return host.spawn(argv, name=name, stdin=subprocess.PIPE)


def talk(client, line="hello", wait_echo=True):
    """Type one line into echoc and (unless told not to) wait for its echo
    on the client's stdout."""
    before = client.stdout().count(line + "\n")
    client.stdin.write((line + "\n").encode())
    client.stdin.flush()
    if not wait_echo:
        return
    wait_until(lambda: client.stdout().count(line + "\n") > before, 5.0,
               f"the echo of {line!r} on {client.name}'s stdout",
               seen=lambda: f"stdout {client.stdout()[-500:]!r}, "
                            f"stderr {client.stderr()[-500:]!r}")


def all_exited(pids):
    """Every pid is a zombie or gone: the process has exited."""
    return all(procs.state(p) in (None, "Z") for p in pids)
