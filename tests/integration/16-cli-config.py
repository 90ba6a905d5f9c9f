#!/usr/bin/python3
"""16 command line and configuration as an operator meets them: --version, --help,
--check-config on good and bad files (errors name file:line), a config directory, the
flow-style sample of docs/configuration.md, a bad config refusing to start, -p listening on
loopback only unless --bind opens it wider (with a warning for unauthenticated ports beyond
loopback). ringmq only."""

import os
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

ONLY = "ringmq command line"

SAMPLE = """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata: {name: default}
spec:
  advanced:
    clients: {maxKeepAliveSeconds: 60, maxReceiveMaximum: 100, maxPacketSizeBytes: 1048576, \
maxSessionExpirySeconds: 3600, maxMessageExpirySeconds: 3600, \
subscriberQueueLimit: {length: 100, strategy: None}}
  diagnostics: {logs: {level: debug}}
  ringmq: {threads: 2, maxConnections: 1000, maxInflight: 20, maxTopicLevels: 16, \
maxTopicAliases: 10, connectTimeoutSeconds: 2}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: plain}
spec:
  ports:
  - {port: PORT, bindAddress: 127.0.0.1, protocol: Mqtt}
"""


def ringmq(*args, timeout=10):
    return subprocess.run([rq.broker_bin()] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)


def out(r):
    return (r.stdout + r.stderr).decode("utf-8", "replace")


def write(d, name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def tmpdir():
    d = tempfile.mkdtemp(prefix="rqcli-")
    rq.on_cleanup(lambda: subprocess.run(["rm", "-rf", d]))
    return d


@case(ringmq_only=ONLY)
def version():
    r = ringmq("--version")
    check_eq(r.returncode, 0, "--version exit code")
    check(out(r).startswith("ringmq "), "--version output: %r" % out(r))


@case(ringmq_only=ONLY)
def help_text():
    r = ringmq("--help")
    check_eq(r.returncode, 0, "--help exit code")
    for opt in ("--config", "--threads", "--check-config", "--bind"):
        check(opt in out(r), "--help does not mention %s" % opt)


@case(ringmq_only=ONLY)
def unknown_option():
    r = ringmq("--no-such-option")
    check(r.returncode not in (0, None), "unknown option accepted")


@case(ringmq_only=ONLY)
def check_config_good():
    d = tmpdir()
    path = write(d, "ok.yaml", rq.std_yaml())
    r = ringmq("-c", path, "--check-config")
    check_eq(r.returncode, 0, "--check-config on a valid file (%s)" % out(r))


@case(ringmq_only=ONLY)
def check_config_unknown_key():
    d = tmpdir()
    text = rq.std_yaml().replace("maxInflight: 20", "maxInflight: 20\n    maxInflihgt: 3")
    lines = text.splitlines()
    lineno = next(i for i, x in enumerate(lines) if "maxInflihgt" in x) + 1
    path = write(d, "typo.yaml", text)
    r = ringmq("-c", path, "--check-config")
    check(r.returncode != 0, "unknown key accepted")
    check("typo.yaml:%d" % lineno in out(r) and "maxInflihgt" in out(r),
          "error does not name typo.yaml:%d and the key: %r" % (lineno, out(r)))


@case(ringmq_only=ONLY)
def check_config_wrong_type():
    d = tmpdir()
    path = write(d, "type.yaml", rq.std_yaml(ringmq={"maxInflight": "lots"}))
    r = ringmq("-c", path, "--check-config")
    check(r.returncode != 0, "maxInflight: lots accepted")
    check("type.yaml:" in out(r), "error does not name the file: %r" % out(r))


@case(ringmq_only=ONLY)
def check_config_out_of_range():
    d = tmpdir()
    path = write(d, "range.yaml", rq.std_yaml(ringmq={"maxInflight": 70000}))
    r = ringmq("-c", path, "--check-config")
    check(r.returncode != 0, "maxInflight: 70000 accepted")


@case(ringmq_only=ONLY)
def missing_config():
    r = ringmq("-c", "/nonexistent/ringmq.yaml", "--check-config")
    check(r.returncode != 0, "missing config file accepted")
    check("/nonexistent/ringmq.yaml" in out(r), "error does not name the path: %r" % out(r))


@case(ringmq_only=ONLY)
def bad_config_refuses_to_start():
    d = tmpdir()
    port = rq.free_port()
    path = write(d, "bad.yaml", rq.std_yaml(port=port).replace("kind: Broker\n",
                                                              "kind: Broker\nbogus: 1\n"))
    r = ringmq("-c", path, "--threads", "1", timeout=10)
    check(r.returncode != 0, "broker started on an invalid config")
    check(not rq.port_open(port), "port open after a failed start")


@case(ringmq_only=ONLY)
def log_stdout_moves_the_log():
    """--log-stdout (the container image's default): log lines on standard output, none on
    standard error; without it, the other way round."""
    d = tmpdir()
    path = write(d, "bad.yaml", "kind: Broker\nbogus: 1\n")
    for flag, to_out in ((["--log-stdout"], True), ([], False)):
        r = ringmq("-c", path, "--threads", "1", *flag, timeout=10)
        check(r.returncode != 0, "started on an invalid config")
        o, e = r.stdout.decode(), r.stderr.decode()
        check(("bad.yaml" in o) == to_out and ("bad.yaml" in e) != to_out,
              "%s: stdout %r, stderr %r" % (flag or "default", o[-300:], e[-300:]))


@case(ringmq_only=ONLY)
def config_directory():
    d = tmpdir()
    port = rq.free_port()
    text = rq.std_yaml(port=port)
    docs = text.split("---\n")
    write(d, "10-broker.yaml", "---\n" + docs[1])
    write(d, "20-listener.yml", "---\n" + docs[2])
    write(d, "README.txt", "not yaml: [")
    r = ringmq("-c", d, "--check-config")
    check_eq(r.returncode, 0, "--check-config on a directory (%s)" % out(r))
    b = rq.Broker([rq.broker_bin(), "-c", d, "--threads", "1"], port, tmpdir())
    rq.check_serves(b.port, "started from a directory")
    check_eq(b.stop(), 0, "exit code")


@case(ringmq_only=ONLY)
def documented_sample():
    port = rq.free_port()
    b = rq.start_broker(SAMPLE.replace("PORT", str(port)), threads=None)
    c = rq.connected(b.port)
    p = c.connack.props
    check_eq((p.get("receive_maximum"), p.get("topic_alias_maximum"),
              p.get("maximum_packet_size")), (20, 10, 1048576),
             "CONNACK (Receive Maximum, Topic Alias Maximum, Maximum Packet Size)")
    c.disconnect()
    rq.check_serves(b.port)
    check_eq(b.stop(), 0, "exit code")


def listening(port):
    """The addresses sockets of this network namespace listen on at TCP port (from
    /proc/net/tcp and tcp6: hex addresses, each 32-bit word in host order)."""
    out = set()
    for name, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            addr, p = fields[1].split(":")
            if fields[3] != "0A" or int(p, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(addr)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            out.add(socket.inet_ntop(family, raw))
    return out


def cli_broker(*args):
    port = rq.free_port()
    return rq.Broker([rq.broker_bin(), "-p", str(port), "--threads", "1"] + list(args), port,
                     tmpdir())


UNAUTH_WARNING = r"accepts clients from other hosts without authentication"


@case(ringmq_only=ONLY)
def port_listens_on_loopback():
    """Secure by default: -p without -c listens on 127.0.0.1 (and ::1 when this host has it),
    not on 0.0.0.0, and has nothing to warn about."""
    b = cli_broker()
    addrs = listening(b.port)
    check(addrs and addrs <= {"127.0.0.1", "::1"}, "-p %d listens on %s" % (b.port, addrs))
    check("127.0.0.1" in addrs, "-p does not listen on 127.0.0.1: %s" % addrs)
    check(not b.wait_log(UNAUTH_WARNING, 0, 0.3), "warning about a loopback-only port")
    rq.check_serves(b.port)
    check_eq(b.stop(), 0, "exit code")


@case(ringmq_only=ONLY)
def port_with_config_listens_on_loopback():
    """-c with -p: the extra -p listener (no authentication) is loopback-only too."""
    d = tmpdir()
    cfg_port, port = rq.free_port(), rq.free_port()
    path = write(d, "ok.yaml", rq.std_yaml(port=cfg_port))
    b = rq.Broker([rq.broker_bin(), "-c", path, "-p", str(port), "--threads", "1"], port, d)
    addrs = listening(port)
    check(addrs and addrs <= {"127.0.0.1", "::1"}, "-p %d listens on %s" % (port, addrs))
    check_eq(b.stop(), 0, "exit code")


@case(ringmq_only=ONLY)
def bind_opens_wider_and_warns():
    """--bind 0.0.0.0 listens on every address, and the start-up log warns that the port takes
    clients from other hosts without authentication."""
    b = cli_broker("--bind", "0.0.0.0")
    check_eq(listening(b.port), {"0.0.0.0"}, "addresses with --bind 0.0.0.0")
    check(b.wait_log(r"warn .*port %d on 0\.0\.0\.0.*%s" % (b.port, UNAUTH_WARNING), 0, 3),
          "no warning about the unauthenticated port; log:\n%s" % b.log()[-1500:])
    rq.check_serves(b.port)
    check_eq(b.stop(), 0, "exit code")


@case(ringmq_only=ONLY)
def bind_refused_when_meaningless():
    """--bind takes an address literal, and only goes with -p (or no -c at all)."""
    r = ringmq("-p", "1883", "--bind", "everywhere", "--check-config")
    check_eq(r.returncode, 2, "--bind everywhere exit code (%s)" % out(r))
    check("--bind" in out(r), "error does not name --bind: %r" % out(r))
    d = tmpdir()
    path = write(d, "ok.yaml", rq.std_yaml())
    r = ringmq("-c", path, "--bind", "0.0.0.0", "--check-config")
    check_eq(r.returncode, 2, "--bind with -c and no -p: exit code (%s)" % out(r))
    check("bindAddress" in out(r), "error does not point at bindAddress: %r" % out(r))


@case(ringmq_only=ONLY)
def config_port_without_authentication_warns():
    """A configured port without authenticationRef on 0.0.0.0 gets the start-up warning; the
    same on 127.0.0.1 does not."""
    d = tmpdir()
    port = rq.free_port()
    path = write(d, "open.yaml", rq.std_yaml(port=port).replace("bindAddress: 127.0.0.1",
                                                                "bindAddress: 0.0.0.0"))
    b = rq.Broker([rq.broker_bin(), "-c", path, "--threads", "1"], port, d)
    check(b.wait_log(r"port %d on 0\.0\.0\.0 \(listener plain\) %s" % (port, UNAUTH_WARNING),
                     0, 3), "no warning; log:\n%s" % b.log()[-1500:])
    check_eq(b.stop(), 0, "exit code")
    d = tmpdir()
    port = rq.free_port()
    b = rq.Broker([rq.broker_bin(), "-c", write(d, "lo.yaml", rq.std_yaml(port=port)),
                   "--threads", "1"], port, d)
    check(not b.wait_log(UNAUTH_WARNING, 0, 0.5), "warning for a port on 127.0.0.1")
    check_eq(b.stop(), 0, "exit code")


@case(ringmq_only=ONLY)
def port_of_another_broker_is_refused():
    """The shards' sockets share a port through SO_REUSEPORT, which a second process of the same
    user could join without an error and then take half of the connections: a second broker on
    a busy port refuses to start and says why; so does a reload that adds that port."""
    b = cli_broker()
    r = ringmq("-p", str(b.port), "--threads", "1")
    check_eq(r.returncode, 1, "second broker on the same port: exit code; " + out(r)[-500:])
    check("in use by another process" in out(r), "reason missing: " + out(r)[-500:])
    rq.check_serves(b.port)
    d = tmpdir()
    port = rq.free_port()
    path = write(d, "r.yaml", rq.std_yaml(port=port))
    b2 = rq.Broker([rq.broker_bin(), "-c", path, "--threads", "1"], port, d)
    write(d, "r.yaml", rq.std_yaml(port=port).replace(
        "  ports:\n", "  ports:\n  - {port: %d, bindAddress: 127.0.0.1}\n" % b.port, 1))
    b2.signal(signal.SIGHUP)
    check(b2.wait_log(r"in use by another process", 0, 5), "reload: no refusal; log:\n%s"
          % b2.log()[-1500:])
    rq.check_serves(port)
    check_eq(b2.stop(), 0, "exit code")
    check_eq(b.stop(), 0, "exit code")


if __name__ == "__main__":
    rq.run(timeout=90)
