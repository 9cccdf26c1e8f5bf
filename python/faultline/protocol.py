"""What a check says to the server on a connection, and what it must hear
back: the echo of what it sent (an echo server), a request and the start
of the reply (`--request 'GET / HTTP/1.0\\r\\n\\r\\n' --reply 'HTTP/1.'`, a
forking HTTP server), or nothing at all (`--protocol none`: connect and
close, for any TCP server).

The checks of process and socket hygiene (zombies, lost SIGCHLD,
CLOSE_WAIT, descriptors, early RST, EINTR, churn) need no more than that,
through Context.exchange(sock). The checks of echo itself are skipped
unless the protocol is echo.
"""

import codecs
import socket
from dataclasses import dataclass

SHOWN_BYTES = 48    # of a reply, in a message


class WrongReply(AssertionError):
    """The server answered, but not what the protocol expects: a finding
    about the server, with the bytes in its message."""


def shown(data):
    """Bytes in a message: their repr, cut, and their count."""
    more = f"... ({len(data)} bytes)" if len(data) > SHOWN_BYTES else \
        f" ({len(data)} bytes)"
    return f"{bytes(data[:SHOWN_BYTES])!r}{more}"


def unescape(text):
    r"""Bytes from a command-line argument with C-like escapes: \r \n \t
    \\ \xNN (the rest is taken as UTF-8)."""
    try:
        return codecs.escape_decode(text.encode())[0]
    except ValueError as e:
        raise ValueError(f"{text!r}: {e}") from None


def read_reply(sock, wanted):
    """Read until `wanted` bytes, EOF, the socket's timeout or an error;
    returns (bytes, how it stopped: None when complete, "EOF", or the
    exception that ended it: socket.timeout or another OSError)."""
    got = bytearray()
    try:
        while len(got) < wanted:
            chunk = sock.recv(min(65536, wanted - len(got)))
            if not chunk:
                return bytes(got), "EOF"
            got += chunk
    except OSError as e:  # socket.timeout included
        return bytes(got), e
    return bytes(got), None


@dataclass(frozen=True)
class Protocol:
    name: str             # echo, none, request-reply
    request: bytes = b""
    reply: bytes = b""    # what the reply must start with

    @property
    def echoes(self):
        return self.name == "echo"

    def describe(self):
        if self.name == "request-reply":
            return (f"request {self.request!r}, reply starting "
                    f"{self.reply!r}" if self.reply else
                    f"request {self.request!r}, any reply")
        return self.name

    def exchange(self, sock, data=None):
        """One exchange on a connected socket, bounded by its timeout;
        returns what came back (nothing for none). Raises WrongReply."""
        if self.name == "none":
            return b""
        request = data if data is not None else self.request
        if request:
            sock.sendall(request)
        expected = request if self.echoes else self.reply
        got, stop = read_reply(sock, max(len(expected), 1))
        if isinstance(stop, OSError) and not isinstance(stop, socket.timeout):
            raise stop  # a reset: the caller's to word, as before
        how = ("complete" if stop is None else "EOF" if stop == "EOF" else "timeout")
        right = got == expected if self.echoes else got[:1] and got.startswith(expected)
        if right:
            return got
        raise WrongReply(wrong(request, expected, got, how, self.echoes,
                               sock.gettimeout()))


def wrong(sent, expected, got, how, echo, timeout):
    said = f"sent {shown(sent)}" if sent else "sent nothing"
    wanted = "its echo" if echo else (f"a reply starting {expected!r}" if expected
                                      else "a reply")
    stopped = {"EOF": "the server closed the connection",
               "timeout": f"nothing more came within {timeout or 0:g} s",
               "complete": ""}[how]
    if not got:
        return f"{said}; wanted {wanted}, got nothing back: {stopped}"
    if expected.startswith(got):
        return (f"{said}; wanted {wanted}, got only {len(got)} of {len(expected)} "
                f"bytes: {stopped}")
    return f"{said}; wanted {wanted}, got {shown(got)}"


ECHO = Protocol("echo", b"still serving?\n")
NONE = Protocol("none")


def request_reply(request, reply):
    return Protocol("request-reply", request, reply)
