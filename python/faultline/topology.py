"""Two hosts joined by a veth pair, the client's and the server's:

    client host  veth0 198.18.0.1/24 <----> veth1 198.18.0.2/24  server host

Addresses from 198.18.0.0/15 (RFC 2544, benchmarking): never routed, and
neither namespace is connected to the machine's own network. The pair is
created from inside the client host, its peer end moved straight into the
server host's namespace (named by /proc/<keeper>/ns/net: `ip` runs inside
the client's PID namespace, where the server's keeper pid means nothing,
but /proc is the machine's). A veth pair dies with its namespaces, and
they die with their hosts: closing leaves no interface behind. Without
root both hosts are in one user namespace: moving the peer end into the
server's namespace takes CAP_NET_ADMIN over both.

    with TwoHosts(artifact_dir) as net:
        server = Echod(net.server).start()
        sock = net.client.connect(9877, addr=net.server_addr)
"""

from pathlib import Path

from .host import Host, HostError
from .interrupts import cleanup


class TwoHosts:
    def __init__(self, workdir, client_addr="198.18.0.1",
                 server_addr="198.18.0.2", prefix=24,
                 client_iface="veth0", server_iface="veth1"):
        self.workdir = Path(workdir)
        self.client_addr = client_addr
        self.server_addr = server_addr
        self.prefix = prefix
        self.client_iface = client_iface
        self.server_iface = server_iface
        self.client = None
        self.server = None

    def __repr__(self):
        return (f"<TwoHosts {self.client_iface} {self.client_addr} <-> "
                f"{self.server_iface} {self.server_addr}>")

    def _batch(self, host, lines):
        """Run `ip -batch` on host: one process for all its commands."""
        path = host.workdir / "ip.batch"
        path.write_text("\n".join(lines) + "\n")
        code, out, err = host.run(["ip", "-batch", str(path)], name="ip-batch")
        if code != 0:
            raise HostError(f"ip -batch on host {host.name} failed ({code}): "
                            f"{err.strip()}\n{path.read_text()}")

    def start(self):
        try:
            self.client = Host("client", self.workdir / "client")
            self.server = Host("server", self.workdir / "server", user_of=self.client)
            peer_ns = f"/proc/{self.server.outer_pid}/ns/net"
            self._batch(self.client, [
                f"link add {self.client_iface} type veth peer name "
                f"{self.server_iface} netns {peer_ns}",
                f"addr add {self.client_addr}/{self.prefix} dev {self.client_iface}",
                f"link set {self.client_iface} up",
            ])
            self._batch(self.server, [
                f"addr add {self.server_addr}/{self.prefix} dev {self.server_iface}",
                f"link set {self.server_iface} up",
            ])
        except BaseException:
            with cleanup("closing the two hosts"):
                self.close()
            raise
        return self

    def close(self):
        for host in (self.client, self.server):
            if host is not None:
                host.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        with cleanup("closing the two hosts"):
            self.close()

    @property
    def hosts(self):
        return (self.client, self.server)

    def links(self):
        """`ip -o link` of both ends, for failure messages."""
        text = []
        for host, iface in ((self.client, self.client_iface),
                            (self.server, self.server_iface)):
            code, out, err = host.run(["ip", "-o", "addr", "show", "dev", iface],
                                      name="ip-show")
            text.append(f"{host.name}: {out.strip() or err.strip()}")
        return "\n".join(text)
