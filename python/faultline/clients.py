"""The small client moves the harness's tests, checks and scenarios make on
sockets they created in a host (Host.connect): read exactly, echo a round
trip, reset instead of close."""

import socket
import struct


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
