"""faultline's test harness: isolated hosts, processes, TCP state, packets.

One module per concern:
  paths        where the build, the binaries and the artifacts are
  build        install missing packages; configure and compile the meson build
  waiting      polling with a deadline that names what it waited for
  interrupts   Ctrl-C wins over the errors of the cleanups it sets off
  host         isolated hosts: network + PID namespaces that die with us
               (the helper that guarantees it: native/flhost.c)
  procs        the process table: children, zombies, descriptors, signals
  tcpstate     the kernel's TCP sockets inside a host
  capture      tcpdump on a host, and reading the pcap (scapy)
  ladder       ladder diagrams of a run from its pcap and event logs: one
               model, drawn as SVG, text and Mermaid (faultline ladder)
  clients      client moves on sockets made in a host (echo, reset) and
               with echoc (start_client, talk)
  artifacts    per-test artifact folders, kept on failure
  server       any server command on a host, ready when it listens; the
               fixture that checks what it left at exit
  echod        the reference server as a Server, and its event log
  eventschema  the event log's contract: every event, its fields and writer
  faults       faults from outside any server: kill/stop the process serving a
               connection, ss -K, forged RST, strace --inject
  link         nftables rules and tbf rate caps on a host's interfaces
  topology     two hosts joined by a veth pair
  protocol     what a check says on a connection and must hear back (echo,
               a request and its reply, nothing)
  checks       the checks any sound echo server passes
  checkrun     running checks: verdicts (pass, FAIL, ERROR, skip), a dead
               server's, the reports (text, JSON, JUnit)
  evidence     what a verdict shows: bounded on a terminal, whole on disk
  scenario     the scenario engine: a seed experiment is a TOML file
  demo         ./faultline demo: the scenario files' verdicts
  report       report.html, one page per artifact folder
  browser      headless Chromium: report.html as a person sees it
  storm        a seeded random fault storm on every model (faultline storm)
  shrink       a failed storm run shrunk to a scenario file
  mutants      one-line source changes the suite must notice
  bench        echod's models beside minimal servers, socat and inetd
  plugin       the pytest plugin: fixtures and hooks, for anyone's suite
  action       the GitHub Action's step: faultline check into a job summary
  cli          the command line (./faultline, python3 -m faultline)
"""
