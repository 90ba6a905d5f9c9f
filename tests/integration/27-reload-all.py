#!/usr/bin/python3
"""27 reload of everything (SIGHUP and changed files): a reload is all or nothing.

- A half-written file, an unreadable file, a removed Secret (mounted directory): nothing
  changes, one error line naming file:line:col (the file alone when it cannot be read at all),
  ringmq_config_reload_failures_total moves by one; the completed file applies.
- Mounted directories updated the way the kubelet does it (the `..data` symlink swap) are
  noticed without SIGHUP.
- The log level applies live; settings fixed at start are logged as needing a restart and the
  rest of the reload applies; advanced.clients limits apply to new connections.
- Listener ports added, removed (v5 clients get DISCONNECT 0x8B, 3.1.1 clients are closed) or
  changed live; a port that cannot be bound refuses the whole reload.
ringmq only."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

ONLY = "ringmq's configuration reload"
SETPRIV = shutil.which("setpriv")


# ---- helpers ------------------------------------------------------------------------------------

def listener_doc(name, ports):
    """A BrokerListener document; ports: list of (port, extra YAML lines for that port)."""
    lines = ["---", "apiVersion: mqttbroker.iotoperations.azure.com/v1", "kind: BrokerListener",
             "metadata:", "  name: %s" % name, "spec:", "  ports:"]
    for port, extra in ports:
        lines += ["  - port: %d" % port, "    bindAddress: 127.0.0.1"]
        lines += ["    " + e for e in extra]
    return "\n".join(lines) + "\n"


def broker_doc(mport, level="debug", clients=None, ringmq=None):
    y = rq.broker_yaml(port=1, clients=clients, ringmq=ringmq,
                       extra_spec={"diagnostics": {"logs": {"level": level},
                                                   "metrics": {"prometheusPort": mport}}})
    return y[:y.index("kind: BrokerListener")].rsplit("---", 1)[0]


class Setup:
    """A broker on a config directory: broker.yaml (Broker) + listeners.yaml; files = other
    files relative to the directory. drop_dac: run it without CAP_DAC_OVERRIDE (as root), so
    that a mode 000 file is unreadable to it."""

    def __init__(self, ports, files=None, level="debug", clients=None, ringmq=None,
                 drop_dac=False, prepare=None):
        self.dir = tempfile.mkdtemp(prefix="rqtest-")
        os.chmod(self.dir, 0o755)
        self.mport = rq.free_port()
        self.level, self.clients, self.ringmq = level, clients, ringmq
        for rel, content in (files or {}).items():
            self.put(rel, content)
        if prepare:
            prepare(self.dir)
        self.write_broker()
        self.write_listeners(ports)
        argv = [rq.broker_bin(), "-c", self.dir, "--threads", "2"]
        if drop_dac and os.geteuid() == 0:
            if not SETPRIV:
                raise rq.Skip("setpriv (util-linux) is missing: cannot drop CAP_DAC_OVERRIDE")
            argv = [SETPRIV, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search",
                    "--"] + argv
        self.b = rq.Broker(argv, ports[0][0], self.dir)
        self.b.mport = self.mport

    def put(self, rel, content):
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp~"
        with open(tmp, "wb") as fh:
            fh.write(content.encode() if isinstance(content, str) else content)
        os.replace(tmp, path)

    def write_broker(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)
        self.put("broker.yaml", broker_doc(self.mport, self.level, self.clients, self.ringmq))

    def write_listeners(self, ports, name="plain"):
        self.listeners = listener_doc(name, ports)
        self.put("listeners.yaml", self.listeners)


def metric(b, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.mport, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
    check(m, "no %s in /metrics" % name)
    return int(m.group(1))


def failures(b):
    return metric(b, "ringmq_config_reload_failures_total")


def reload_ok(b, mark, what, timeout=10):
    check(b.wait_log(r"reload: generation \d+ in use", mark, timeout=timeout),
          "%s: the reload applied; log:\n%s" % (what, b.log_since(mark)[-2000:]))


def refused(b, mark, rx, what, before, timeout=10):
    """The reload was refused with one error line matching rx, counted once."""
    m = b.wait_log(r"reload refused, the running configuration stays: " + rx, mark, timeout)
    check(m, "%s: refusal logged; log:\n%s" % (what, b.log_since(mark)[-2000:]))
    # one line per refused reload (SIGHUP racing the file watcher's 2 s look may make two)
    lines = re.findall(r"reload refused.*", b.log_since(mark))
    check(all(re.search(rx, l) for l in lines), "%s: every refusal names the cause: %r"
          % (what, lines))
    check_eq(failures(b), before + len(lines), "%s: ringmq_config_reload_failures_total" % what)
    check(not re.search(r"reload: generation \d+ in use", b.log_since(mark)),
          "%s: nothing applied" % what)


def can_connect(port, version=5):
    c = rq.RawClient(port, version=version)
    check_eq(c.connect(client_id=rq.uniq("probe")).rc, 0, "CONNACK on port %d" % port)
    c.disconnect()


def port_refuses(port, timeout=10):
    """True once nothing accepts on port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not rq.port_open(port):
            return True
        time.sleep(0.1)
    return False


# ---- failed reloads -----------------------------------------------------------------------------

@case(ringmq_only=ONLY)
def half_written_file_refused_then_applies():
    """A listener file caught half-written by the file watcher (and by SIGHUP) is refused with
    its file:line:col; the port keeps serving; the completed file applies."""
    port, port2 = rq.free_port(), rq.free_port()
    s = Setup([(port, [])])
    with s.b as b:
        full = listener_doc("plain", [(port, []), (port2, [])])
        half = full[:full.index("name: plain") + 8]  # "name: pl" ... then the file ends
        half += "\nspec:\n  ports:\n  - port: [%d" % port2  # an unclosed flow sequence
        for how in ("watch", "SIGHUP"):
            before = failures(b)
            mark = b.log_mark()
            s.put("listeners.yaml", half)
            if how == "SIGHUP":
                b.signal(signal.SIGHUP)
            refused(b, mark, r".*listeners\.yaml:\d+:\d+: ", "half-written (%s)" % how, before)
            can_connect(port)
            check(not rq.port_open(port2), "the half-written port is not opened")
            mark = b.log_mark()
            s.put("listeners.yaml", s.listeners)  # back as it was, for the next round
            b.signal(signal.SIGHUP)
            reload_ok(b, mark, "restored")
        mark = b.log_mark()
        s.put("listeners.yaml", full)
        reload_ok(b, mark, "the completed file (noticed by the watcher)")


@case(ringmq_only=ONLY)
def unreadable_file_refused():
    """A YAML file the broker cannot read (mode 000, the broker without CAP_DAC_OVERRIDE) and a
    dangling *.yaml symlink: refused; nothing changes."""
    port = rq.free_port()
    s = Setup([(port, [])], drop_dac=True)
    with s.b as b:
        before = failures(b)
        mark = b.log_mark()
        os.chmod(os.path.join(s.dir, "listeners.yaml"), 0)
        b.signal(signal.SIGHUP)
        refused(b, mark, r".*listeners\.yaml: cannot open: Permission denied", "mode 000",
                before)
        can_connect(port)
        os.chmod(os.path.join(s.dir, "listeners.yaml"), 0o644)
        # a dangling symlink is an error too, not a file left out (that could drop a listener)
        before = failures(b)
        mark = b.log_mark()
        os.symlink("gone.yaml", os.path.join(s.dir, "more.yaml"))
        b.signal(signal.SIGHUP)
        refused(b, mark, r".*more\.yaml: cannot open: No such file", "dangling symlink", before)
        can_connect(port)


def kubelet_mount(dirpath, files, stamp):
    """Writes files the way the kubelet updates a Secret volume: a new timestamped directory,
    ..data switched to it by a rename, the keys symlinks through ..data."""
    os.makedirs(dirpath, exist_ok=True)
    ts = os.path.join(dirpath, "..%s" % stamp)
    os.mkdir(ts)
    for k, v in files.items():
        with open(os.path.join(ts, k), "w") as fh:
            fh.write(v)
    old = os.path.realpath(os.path.join(dirpath, "..data")) \
        if os.path.lexists(os.path.join(dirpath, "..data")) else None
    tmp = os.path.join(dirpath, "..data_tmp")
    os.symlink(os.path.basename(ts), tmp)
    os.rename(tmp, os.path.join(dirpath, "..data"))
    for k in files:
        link = os.path.join(dirpath, k)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", k), link)
    if old:
        shutil.rmtree(old)


@case(ringmq_only=ONLY)
def mounted_secret_data_swap_and_removal():
    """A TLS port's Secret mounted the kubelet's way: a ..data swap is served without SIGHUP;
    removing the Secret's directory is refused (the reference's file:line:col) and the old
    certificate stays, also for a client connecting afterwards."""
    import certs
    if not certs.openssl_available():
        raise rq.Skip("the openssl command line tool is missing (certificates are made with it)")
    f = certs.CertFactory()
    root = f.ca("/CN=ringmq 27 Root", name="r27-root")
    first, second = f.server(root, name="r27-a"), f.server(root, name="r27-b")
    port = rq.free_port()
    sdir = lambda d: os.path.join(d, "secrets", "server-cert")  # noqa: E731

    def prepare(d):
        kubelet_mount(sdir(d), {"tls.crt": first.chain_pem, "tls.key": first.key_pem}, "1")

    s = Setup([(port, ["tls: {mode: Manual, manual: {secretRef: server-cert}}"])],
              prepare=prepare)
    with s.b as b:
        check_eq(wait_serial(port, root, first), serial(first), "first certificate")
        c = rq.RawClient(port, tls=rq.tls_context(cafile=root.cert), server_hostname="localhost")
        check_eq(c.connect(client_id=rq.uniq("keep")).rc, 0, "CONNACK")
        kubelet_mount(sdir(s.dir), {"tls.crt": second.chain_pem, "tls.key": second.key_pem}, "2")
        check_eq(wait_serial(port, root, second, timeout=10), serial(second),
                 "served after the ..data swap (no SIGHUP)")
        before = failures(b)
        mark = b.log_mark()
        shutil.rmtree(sdir(s.dir))
        refused(b, mark, r".*listeners\.yaml:\d+:\d+: .*server-cert", "Secret removed", before)
        check_eq(wait_serial(port, root, second, timeout=0), serial(second), "still served")
        c.ping(3)
        c.disconnect()


def serial(cert):
    return open(cert.cert, "rb").read()


def wait_serial(port, root, want, timeout=5.0):
    """The certificate (PEM bytes compared by DER) the port serves once it is want's."""
    import ssl
    deadline = time.monotonic() + timeout
    while True:
        ctx = rq.tls_context(cafile=root.cert)
        c = rq.RawClient(port, tls=ctx, server_hostname="localhost")
        der = c.sock.getpeercert(binary_form=True)
        c.close()
        got = ssl.DER_cert_to_PEM_cert(der).encode()
        if _der(got) == _der(serial(want)) or time.monotonic() > deadline:
            return serial(want) if _der(got) == _der(serial(want)) else got
        time.sleep(0.2)


def _der(pem):
    import ssl
    text = pem.decode()
    first = text[text.index("-----BEGIN"):text.index("-----END")]
    first += text[text.index("-----END"):].split("\n", 1)[0]
    return ssl.PEM_cert_to_DER_cert(first)


if __name__ == "__main__":
    rq.run(timeout=300)
