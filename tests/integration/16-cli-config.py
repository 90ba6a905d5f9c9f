#!/usr/bin/python3
"""16 command line and configuration as an operator meets them: --version, --help,
--check-config on good and bad files (errors name file:line), a config directory, the
flow-style sample of docs/configuration.md, a bad config refusing to start. ringmq only."""

import os
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
    for opt in ("--config", "--threads", "--check-config"):
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


if __name__ == "__main__":
    rq.run(timeout=90)
