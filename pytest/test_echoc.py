"""echoc's own loops and exit statuses, against servers that misbehave in
one known way: --verify against a server that corrupts one byte (exit 7,
the offset named), the select bytes loop proven to run (it keeps sending
while the server reads nothing; the lockstep loop cannot), the lockstep
loop's premature EOF (exit 4) and a reset (exit 5).

The misbehaving servers are this test's own sockets on the host (a thread
accepts, then does the one wrong thing), or zoo/fork_corrupts_one_byte.
"""

import socket
import threading

import pytest

from faultline import paths, tcpstate
from faultline.clients import PREMATURE, reset
from faultline.server import Server
from faultline.waiting import wait_until

PORT = 9877
# echoc's lockstep loop (str_cli.c LOCKSTEP_CHUNK) has at most this many
# bytes in flight; its select loop sends as long as the kernel takes them.
LOCKSTEP_CHUNK = 16384
# zoo/fork_corrupts_one_byte flips the low bit of the byte at this offset.
CORRUPT_OFFSET = 65536


def echoc(*args):
    return [paths.binary("echoc"), *map(str, args), "127.0.0.1", PORT]


def listener(host):
    sock = host.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", PORT))
    sock.listen(1)
    sock.settimeout(10.0)
    return sock


def shown(proc):
    return f"exit {proc.returncode}, stderr {proc.stderr()[-500:]!r}"


@pytest.mark.parametrize("mode", ["block", "select"])
def test_verify_names_the_offset_of_the_one_corrupted_byte(host, mode):
    with Server(host, f"{paths.BUILD_DIR}/zoo/fork_corrupts_one_byte {PORT}", PORT):
        client = host.spawn(echoc("--bytes", 200000, "--verify", "--mode", mode),
                            name=f"echoc-{mode}")
        status = client.wait(30.0)
        assert status == 7, f"--mode {mode} --verify: want exit 7, {shown(client)}"
        assert f"echo mismatch at byte {CORRUPT_OFFSET}:" in client.stderr(), shown(client)


def test_without_verify_the_corrupted_byte_goes_unnoticed(host):
    """The counterpart: the same run without --verify exits 0, so exit 7
    above is --verify's doing."""
    with Server(host, f"{paths.BUILD_DIR}/zoo/fork_corrupts_one_byte {PORT}", PORT):
        client = host.spawn(echoc("--bytes", 200000))
        assert client.wait(30.0) == 0, shown(client)


def test_select_bytes_loop_keeps_sending_while_the_server_reads_nothing(host):
    total = 1 << 20
    with listener(host) as lsock:
        client = host.spawn(echoc("--bytes", total, "--mode", "select"))
        conn, peer = lsock.accept()
        with conn:
            def queued():
                ours = [s for s in tcpstate.sockets(host.outer_pid, PORT)
                        if s.local[1] == PORT and s.remote == peer]
                return ours[0].rx_queue if ours else 0
            # Nothing read yet: whatever is queued on our end, echoc sent
            # without waiting for an echo.
            wait_until(lambda: queued() > LOCKSTEP_CHUNK, 10.0,
                       f"more than {LOCKSTEP_CHUNK:,} bytes in flight from echoc "
                       f"--mode select (the lockstep loop stops at {LOCKSTEP_CHUNK:,})",
                       seen=lambda: f"{tcpstate.table(host.outer_pid, PORT)}\n"
                                    f"echoc: {shown(client)}")
            echoed = 0
            conn.settimeout(10.0)
            while echoed < total:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                conn.sendall(chunk)
                echoed += len(chunk)
        assert client.wait(30.0) == 0, f"after {echoed:,} bytes echoed: {shown(client)}"


def close_after_eof(conn):
    """FIN (a close with unread bytes would be a RST), then wait for the
    client's own close."""
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(65536):
        pass
    conn.close()


def serve_once(lsock, then):
    """Accept one connection, read up to 100 bytes, echo them, then `then`
    (close_after_eof or reset) it. In a thread: echoc runs meanwhile."""
    def run():
        conn, _ = lsock.accept()
        conn.settimeout(10.0)
        got = conn.recv(100)
        conn.sendall(got)
        then(conn)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("then, status, says", [
    (close_after_eof, 4, PREMATURE),
    (reset, 5, "connection reset by peer"),
], ids=["eof-exits-4", "rst-exits-5"])
def test_lockstep_bytes_loop_exit_status_when_the_server_ends_early(host, then, status,
                                                                    says):
    """100 bytes echoed of the 16 KiB round, then an EOF (premature) or a RST."""
    with listener(host) as lsock:
        server = serve_once(lsock, then)
        client = host.spawn(echoc("--bytes", 100000))
        got = client.wait(30.0)
        server.join(10.0)
        assert got == status and says in client.stderr(), shown(client)
