"""faultline's test harness: isolated hosts, processes, TCP state, packets.

One module per concern:
  paths      where the build, the binaries and the artifacts are
  build      install missing packages; configure and compile the meson build
  waiting    polling with a deadline that names what it waited for
  host       isolated hosts: network + PID namespaces that die with us
  procs      the process table: children, zombies, descriptors, signals
  tcpstate   the kernel's TCP sockets inside a host
  capture    tcpdump on a host, and reading the pcap (scapy)
  clients    client moves on sockets made in a host (echo, reset) and
             with echoc (start_client, talk)
  artifacts  per-test artifact folders, kept on failure
  server     any server command on a host, ready when it listens
  echod      the reference server as a Server, and its event log
  faults     faults from outside any server: kill/stop the process serving a
             connection, ss -K, forged RST, strace --inject
  link       nftables rules and tbf rate caps on a host's interfaces
  topology   two hosts joined by a veth pair
  checks     the checks any sound echo server passes
  scenario   the scenario engine: a seed experiment is a TOML file
  demo       ./faultline demo: the scenario files' verdicts
  cli        the command line (./faultline, python3 -m faultline), and the
             runner that puts a server under the checks
"""
