#!/usr/bin/python3
"""py_forking_socketserver: the standard library's forking echo server,
socketserver.ForkingTCPServer, as its documentation shows it. A real peer,
not written to have a defect; what it does comes from the stdlib:

- children are reaped by collect_children(), called from serve_forever()
  every poll_interval (0.5 s) and before each fork: a zombie lives up to
  half a second. It must PASS zombies, lost-sigchld and churn.
- ForkingMixIn.max_children = 40: with 40 live children the parent blocks
  in waitpid() until one exits, so at most 40 sessions run at once.
  concurrent-clients (100 sessions held open together) must FAIL: a
  documented limit, not a bug.
- request_queue_size = 5: the listen backlog is 5, so a burst of connects
  loses SYNs that the client retries after 1 s (churn says so in its
  summary; it does not fail it).

Usage: py_forking_socketserver.py PORT
"""

import socketserver
import sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)


if __name__ == "__main__":
    with socketserver.ForkingTCPServer(("0.0.0.0", int(sys.argv[1])), Echo) as server:
        server.serve_forever()
