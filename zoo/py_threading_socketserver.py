#!/usr/bin/python3
"""py_threading_socketserver: the standard library's threading echo
server, socketserver.ThreadingTCPServer. A real peer: one thread per
session, joined at shutdown (block_on_close), listen backlog 5
(request_queue_size). Python ignores SIGPIPE at start-up, so a write to a
reset peer raises BrokenPipeError in that session's thread only.

Expected: passes every check (the small backlog slows churn's connects;
it does not fail it).

Usage: py_threading_socketserver.py PORT
"""

import socketserver
import sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)


if __name__ == "__main__":
    with socketserver.ThreadingTCPServer(("0.0.0.0", int(sys.argv[1])), Echo) as server:
        server.serve_forever()
