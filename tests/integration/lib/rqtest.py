"""rqtest: harness for ringmq's integration tests.

What it gives a test file:
  - start_broker(yaml_text, threads=2, extra_args=()) runs $RINGMQ_BIN on a YAML config written into
    a temp dir (or, with RQ_TARGET=mosquitto, /usr/sbin/mosquitto on an equivalent config) and
    waits until its port accepts TCP connections;
  - broker_yaml(...) builds the YAML of one plain listener on 127.0.0.1 with Broker settings;
  - RawClient, a small socket MQTT 3.1.1/5.0 client that encodes and decodes every packet type and
    every v5 property, for exact flows and malformed input;
  - wrappers around mosquitto_pub / mosquitto_sub and paho-mqtt 1.6.1;
  - a case runner (@case, run()) with an overall alarm, cleanup of everything started (brokers,
    subprocesses, paho loops, sockets) even on failure, and the exit codes ctest expects:
    0 pass, 1 fail, 77 skip.

What it does not do: it has no knowledge of ringmq internals; tests only see the wire, the exit
code and the log (stderr) of the broker.
"""

import atexit
import base64
import contextlib
import ctypes
import hashlib
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request

# Brokers started by the tests leave the default metrics endpoint (0.0.0.0:9600 with a config
# file) closed: test servers listen on loopback only (a configured prometheusPort still opens).
os.environ.setdefault("RINGMQ_TEST_NO_DEFAULT_METRICS", "1")

TARGET = os.environ.get("RQ_TARGET", "ringmq")
MOSQUITTO = TARGET == "mosquitto"
MOSQUITTO_BIN = "/usr/sbin/mosquitto"
HOST = "127.0.0.1"

SKIP_RC = 77


class Skip(Exception):
    """Raised by a case (or the fixture) that cannot run here; the reason is printed."""


class TestTimeout(Exception):
    pass


def check(cond, msg):
    """Assertion that survives python -O and carries a readable message."""
    if not cond:
        raise AssertionError(msg)


def check_eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def log(msg):
    sys.stdout.write("    %s\n" % msg)
    sys.stdout.flush()


_uniq = [0]


def uniq(prefix="t"):
    """A client id / topic component unique within this process run."""
    _uniq[0] += 1
    return "%s-%d-%d" % (prefix, os.getpid(), _uniq[0])


# ---------------------------------------------------------------------------------------------
# Cleanup registry: everything a test starts is registered here and torn down at exit.

_cleanups = []
_cleanup_lock = threading.Lock()


def on_cleanup(fn):
    with _cleanup_lock:
        _cleanups.append(fn)
    return fn


def cleanup_all():
    with _cleanup_lock:
        fns = list(reversed(_cleanups))
        _cleanups.clear()
    for fn in fns:
        try:
            fn()
        except Exception:
            pass


atexit.register(cleanup_all)


def _pdeathsig():
    # Children die with us even if we are SIGKILLed (ctest timeout): PR_SET_PDEATHSIG = 1.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:
        pass


_ports_given = set()
_PORT_SPAN = 8000


def _port_range():
    """Ports below the kernel's ephemeral range (outgoing connections never take them), or None
    when the range leaves no room."""
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if low - _PORT_SPAN < 10000:
        return None
    return low - _PORT_SPAN, low


def _port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A port free now and handed out by no other test process of this run: ctest runs tests
    in parallel, and two processes that each bind(0) and close can get the same port (then one
    broker's listener, bound with SO_REUSEPORT, shares it with another test's broker). A counter
    in a locked file under the temporary directory walks a range below the ephemeral ports."""
    import fcntl
    rng = _port_range()
    if rng is not None:
        path = os.path.join(tempfile.gettempdir(), "rqtest-ports.%d" % os.getuid())
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, 32, 0).decode(errors="replace").strip()
            nxt = int(raw) if raw.isdigit() else rng[0]
            for _ in range(_PORT_SPAN):
                port = nxt if rng[0] <= nxt < rng[1] else rng[0]
                nxt = port + 1
                if port not in _ports_given and _port_is_free(port):
                    break
            else:
                port = None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(nxt).encode(), 0)
        finally:
            os.close(fd)
        if port is not None:
            _ports_given.add(port)
            return port
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((HOST, 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _ports_given:
            break
    _ports_given.add(port)
    return port


# ---------------------------------------------------------------------------------------------
# Broker configuration and process control.

def _yaml_map(d, indent):
    """Block-style YAML of a nested dict of scalars (enough for broker settings)."""
    out = []
    pad = " " * indent
    for k, v in d.items():
        if isinstance(v, dict):
            out.append("%s%s:" % (pad, k))
            out.extend(_yaml_map(v, indent + 2))
        elif isinstance(v, bool):
            out.append("%s%s: %s" % (pad, k, "true" if v else "false"))
        else:
            out.append("%s%s: %s" % (pad, k, v))
    return out


def broker_yaml(port=None, clients=None, ringmq=None, log_level="debug", extra_spec=None):
    """YAML of a Broker (with optional spec.advanced.clients and spec.ringmq settings) and one
    plain BrokerListener on 127.0.0.1:<port> (a free port when None)."""
    if port is None:
        port = free_port()
    spec = {}
    if clients:
        spec["advanced"] = {"clients": clients}
    spec["diagnostics"] = {"logs": {"level": log_level}}
    if ringmq:
        spec["ringmq"] = ringmq
    if extra_spec:
        spec.update(extra_spec)
    lines = [
        "---",
        "apiVersion: mqttbroker.iotoperations.azure.com/v1",
        "kind: Broker",
        "metadata:",
        "  name: default",
        "spec:",
    ]
    lines += _yaml_map(spec, 2)
    lines += [
        "---",
        "apiVersion: mqttbroker.iotoperations.azure.com/v1",
        "kind: BrokerListener",
        "metadata:",
        "  name: plain",
        "spec:",
        "  ports:",
        "  - port: %d" % port,
        "    bindAddress: 127.0.0.1",
        "    protocol: Mqtt",
        "",
    ]
    return "\n".join(lines)


STD_CLIENTS = {"maxKeepAliveSeconds": 60, "maxReceiveMaximum": 100,
               "maxPacketSizeBytes": 1048576, "maxSessionExpirySeconds": 3600,
               "maxMessageExpirySeconds": 3600,
               "subscriberQueueLimit": {"length": 100, "strategy": "None"}}
STD_RINGMQ = {"maxConnections": 1000, "maxInflight": 20, "maxTopicLevels": 16,
              "maxTopicAliases": 10, "connectTimeoutSeconds": 2}


def _merge(base, over):
    out = dict(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def std_yaml(port=None, clients=None, ringmq=None):
    """broker_yaml() with the suite's usual settings (STD_CLIENTS, STD_RINGMQ), overridden by
    the given dicts."""
    return broker_yaml(port, _merge(STD_CLIENTS, clients), _merge(STD_RINGMQ, ringmq))


def _yaml_scalars(text):
    """Flat key -> value of every 'key: number' in the YAML (block or flow style). The keys the
    mosquitto translation needs are unique in our configs, so nesting does not matter."""
    vals = {}
    for k, v in re.findall(r"([A-Za-z]+)\s*:\s*([0-9]+)\b", text):
        vals.setdefault(k, int(v))
    for k, v in re.findall(r"([A-Za-z]+)\s*:\s*([A-Za-z]+)\b", text):
        vals.setdefault(k, v)
    return vals


def mosquitto_conf(yaml_text):
    """Translate the few ringmq settings mosquitto also has. Settings without an equivalent
    (maxTopicLevels, connectTimeoutSeconds, session/message expiry caps) are left out; tests of
    them are ringmq-only."""
    v = _yaml_scalars(yaml_text)
    if "port" not in v:
        raise ValueError("no 'port:' in config")
    lines = [
        "per_listener_settings false",
        "allow_anonymous true",
        "persistence false",
        "log_dest stderr",
        "log_type all",
        "log_timestamp false",
        "listener %d 127.0.0.1" % v["port"],
    ]
    if "maxConnections" in v:
        lines.append("max_connections %d" % v["maxConnections"])
    if "maxTopicAliases" in v:
        lines.append("max_topic_alias %d" % v["maxTopicAliases"])
    if "maxPacketSizeBytes" in v:
        lines.append("max_packet_size %d" % v["maxPacketSizeBytes"])
    if "maxKeepAliveSeconds" in v:
        lines.append("max_keepalive %d" % v["maxKeepAliveSeconds"])
    if "maxInflight" in v:
        # mosquitto's Receive Maximum toward clients (sent in CONNACK) and its outgoing window.
        lines.append("max_inflight_messages %d" % v["maxInflight"])
    if "length" in v:
        lines.append("max_queued_messages %d" % v["length"])
    return "\n".join(lines) + "\n", v["port"]


def broker_bin():
    b = os.environ.get("RINGMQ_BIN")
    if not b:
        src = os.environ.get("RINGMQ_SRC", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
        for cand in ("build", "build-integ", "build-debug"):
            p = os.path.join(src, cand, "ringmq")
            if os.access(p, os.X_OK):
                b = p
                break
    if not b or not os.access(b, os.X_OK):
        raise Skip("broker binary not found (RINGMQ_BIN=%r)" % b)
    return b


def port_open(port, timeout=0.2):
    try:
        s = socket.create_connection((HOST, port), timeout=timeout)
        s.close()
        return True
    except OSError:
        return False


_brokers = []  # every broker started by this process, for the checks at the end of run()


class Broker:
    """A running broker process. .port, .pid, .log(), .stop(), .kill(), .rss_kb()."""

    def __init__(self, argv, port, workdir, start_timeout=10.0):
        self.port = port
        self.workdir = workdir
        self.argv = argv
        self.logpath = os.path.join(workdir, "broker.log")
        self._logf = open(self.logpath, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, cwd=workdir,
                                     preexec_fn=_pdeathsig)
        self.pid = self.proc.pid
        self.stop_rc = None  # exit code seen by stop() (SIGTERM), checked by run()
        _brokers.append(self)
        on_cleanup(self._cleanup)
        deadline = time.monotonic() + start_timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("broker exited with %s during start-up; log:\n%s"
                                     % (self.proc.returncode, self.log()[-3000:]))
            if port_open(port):
                break
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("broker did not accept connections on port %d within %.0fs;"
                                     " log:\n%s" % (port, start_timeout, self.log()[-3000:]))
            time.sleep(0.05)

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_mark(self):
        """Length of the log now; log_since(mark) returns what came after."""
        return len(self.log())

    def log_since(self, mark):
        return self.log()[mark:]

    def wait_log(self, pattern, mark=0, timeout=3.0):
        """Wait until the log after mark matches the regex (case-insensitive); returns the match
        or None."""
        rx = re.compile(pattern, re.I)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_since(mark))
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise AssertionError("broker died (exit %s); log tail:\n%s"
                                 % (self.proc.returncode, self.log()[-3000:]))

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def signal(self, sig):
        if self.alive():
            if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGQUIT):
                self._note_early_exit()
                self.ended_by_test = True
            self.proc.send_signal(sig)

    def _note_early_exit(self):
        """Remembers that the broker had exited before the test ended it (a `with` block stops
        it before the case's failure is reported; the report still names it)."""
        if not getattr(self, "ended_by_test", False) and self.proc.poll() is not None:
            self.exited_on_its_own = True

    def stop(self, timeout=10.0):
        """SIGTERM, wait, return the exit code (None if it had to be killed)."""
        self._note_early_exit()
        self.ended_by_test = True
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.stop_rc = "no exit within %.0f s of SIGTERM" % timeout
                return None
            self.stop_rc = self.proc.returncode
        return self.proc.returncode

    def kill(self):
        self._note_early_exit()
        self.ended_by_test = True
        if self.alive():
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def _cleanup(self):
        self.kill()
        try:
            self._logf.close()
        except Exception:
            pass
        if os.environ.get("RQ_KEEP_LOGS"):
            sys.stdout.write("    (broker log kept in %s)\n" % self.logpath)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # Graceful, so that run() sees the exit code and any sanitizer report at exit.
        self.stop(5.0)
        return False

    def problems(self):
        """What run() reports after the cases: a sanitizer report in the log, or an exit code
        other than 0 after SIGTERM."""
        out = []
        m = re.search(r"(ERROR: \w+Sanitizer|runtime error:|WARNING: ThreadSanitizer)[^\n]*",
                      self.log())
        if m:
            out.append("sanitizer: %s" % m.group(0))
        if self.stop_rc not in (None, 0):
            out.append("exit code %r after SIGTERM" % (self.stop_rc,))
        return out


def start_broker(yaml_text=None, threads=2, extra_args=(), start_timeout=10.0, files=None):
    """Start the broker under test on the given YAML (default: broker_yaml()); threads=None
    leaves --threads out. files: {relative path: str or bytes} written into the broker's
    directory (its config dir) before start, e.g. mounted "secrets/<name>/<key>". With
    RQ_TARGET=mosquitto, start mosquitto on a translated config instead."""
    if yaml_text is None:
        yaml_text = broker_yaml()
    workdir = tempfile.mkdtemp(prefix="rqtest-")
    for rel, content in (files or {}).items():
        fpath = os.path.join(workdir, rel)
        os.makedirs(os.path.dirname(fpath), exist_ok=True)
        with open(fpath, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    if MOSQUITTO:
        conf, port = mosquitto_conf(yaml_text)
        path = os.path.join(workdir, "mosquitto.conf")
        with open(path, "w") as f:
            f.write(conf)
        os.chmod(workdir, 0o755)
        os.chmod(path, 0o644)
        argv = [MOSQUITTO_BIN, "-c", path]
    else:
        port = _yaml_scalars(yaml_text).get("port")
        if port is None:
            raise ValueError("no 'port:' in config")
        path = os.path.join(workdir, "ringmq.yaml")
        with open(path, "w") as f:
            f.write(yaml_text)
        argv = [broker_bin(), "-c", path] + ([] if threads is None else ["--threads", str(threads)])
        argv += list(extra_args)
    return Broker(argv, port, workdir, start_timeout)


# ---------------------------------------------------------------------------------------------
# MQTT wire format.

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
PACKET_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
                7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
                12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# v5 properties: id -> (name, kind). Kinds: byte, u16, u32, varint, str, bin, pair.
PROPS = {
    0x01: ("payload_format_indicator", "byte"),
    0x02: ("message_expiry_interval", "u32"),
    0x03: ("content_type", "str"),
    0x08: ("response_topic", "str"),
    0x09: ("correlation_data", "bin"),
    0x0B: ("subscription_identifier", "varint"),
    0x11: ("session_expiry_interval", "u32"),
    0x12: ("assigned_client_identifier", "str"),
    0x13: ("server_keep_alive", "u16"),
    0x15: ("authentication_method", "str"),
    0x16: ("authentication_data", "bin"),
    0x17: ("request_problem_information", "byte"),
    0x18: ("will_delay_interval", "u32"),
    0x19: ("request_response_information", "byte"),
    0x1A: ("response_information", "str"),
    0x1C: ("server_reference", "str"),
    0x1F: ("reason_string", "str"),
    0x21: ("receive_maximum", "u16"),
    0x22: ("topic_alias_maximum", "u16"),
    0x23: ("topic_alias", "u16"),
    0x24: ("maximum_qos", "byte"),
    0x25: ("retain_available", "byte"),
    0x26: ("user_property", "pair"),
    0x27: ("maximum_packet_size", "u32"),
    0x28: ("wildcard_subscription_available", "byte"),
    0x29: ("subscription_identifier_available", "byte"),
    0x2A: ("shared_subscription_available", "byte"),
}
PROP_IDS = {name: pid for pid, (name, _) in PROPS.items()}
MULTI_PROPS = ("user_property", "subscription_identifier")  # may repeat; decoded as lists


def enc_varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc_str(s):
    """UTF-8 string with 2-byte length; bytes are sent as they are (to inject bad UTF-8)."""
    b = s if isinstance(s, (bytes, bytearray)) else s.encode("utf-8")
    return struct.pack(">H", len(b)) + bytes(b)


enc_bin = enc_str


def enc_props(props):
    """props: None, a dict {name: value} (lists for repeatable ones, user_property as a list of
    (k, v)), or a list of (name_or_id, value) pairs, which allows duplicates and unknown ids."""
    if props is None:
        return b"\x00"
    items = []
    if isinstance(props, dict):
        for name, val in props.items():
            if name in MULTI_PROPS and isinstance(val, list):
                items.extend((name, x) for x in val)
            else:
                items.append((name, val))
    else:
        items = list(props)
    body = bytearray()
    for name, val in items:
        pid = name if isinstance(name, int) else PROP_IDS[name]
        kind = PROPS.get(pid, (None, "byte"))[1]
        body += enc_varint(pid)
        if kind == "byte":
            body += struct.pack(">B", val)
        elif kind == "u16":
            body += struct.pack(">H", val)
        elif kind == "u32":
            body += struct.pack(">I", val)
        elif kind == "varint":
            body += enc_varint(val)
        elif kind in ("str", "bin"):
            body += enc_str(val)
        elif kind == "pair":
            body += enc_str(val[0]) + enc_str(val[1])
    return enc_varint(len(body)) + bytes(body)


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + enc_varint(len(body)) + bytes(body)


def sub_opts(qos=0, no_local=False, rap=False, rh=0):
    """SUBSCRIBE options byte (v5 3.8.3.1)."""
    return qos | (4 if no_local else 0) | (8 if rap else 0) | (rh << 4)


def enc_connect(version=5, client_id="", clean=True, keepalive=60, props=None, will=None,
                username=None, password=None, proto_name=None, level=None, reserved=False):
    """CONNECT bytes. will = dict(topic, payload, qos=0, retain=False, props=None)."""
    if proto_name is None:
        proto_name = "MQIsdp" if version == 3 else "MQTT"
    flags = 0
    if clean:
        flags |= 0x02
    if reserved:
        flags |= 0x01
    if will is not None:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = enc_str(proto_name) + bytes([version if level is None else level, flags])
    body += struct.pack(">H", keepalive)
    if version == 5:
        body += enc_props(props)
    body += enc_str(client_id)
    if will is not None:
        if version == 5:
            body += enc_props(will.get("props"))
        body += enc_str(will["topic"])
        payload = will.get("payload", b"")
        body += enc_bin(payload.encode() if isinstance(payload, str) else payload)
    if username is not None:
        body += enc_str(username)
    if password is not None:
        body += enc_bin(password.encode() if isinstance(password, str) else password)
    return packet(CONNECT, 0, body)


def enc_publish(version, topic, payload=b"", qos=0, retain=False, pid=None, props=None, dup=False):
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = enc_str(topic)
    if qos > 0:
        body += struct.pack(">H", pid)
    if version == 5:
        body += enc_props(props)
    return packet(PUBLISH, flags, body + payload)


def enc_ack(ptype, version, pid, rc=0, props=None):
    """PUBACK/PUBREC/PUBREL/PUBCOMP."""
    body = struct.pack(">H", pid)
    if version == 5 and (rc != 0 or props):
        body += bytes([rc]) + enc_props(props)
    return packet(ptype, 0x02 if ptype == PUBREL else 0, body)


def enc_subscribe(version, pid, filters, props=None):
    """filters: list of (filter, options byte) or plain strings (options = QoS 0)."""
    body = struct.pack(">H", pid)
    if version == 5:
        body += enc_props(props)
    for f in filters:
        if isinstance(f, (str, bytes)):
            f = (f, 0)
        body += enc_str(f[0]) + bytes([f[1]])
    return packet(SUBSCRIBE, 0x02, body)


def enc_unsubscribe(version, pid, filters, props=None):
    body = struct.pack(">H", pid)
    if version == 5:
        body += enc_props(props)
    for f in filters:
        body += enc_str(f)
    return packet(UNSUBSCRIBE, 0x02, body)


def enc_disconnect(version, rc=0, props=None):
    if version == 5 and (rc != 0 or props):
        return packet(DISCONNECT, 0, bytes([rc]) + enc_props(props))
    return packet(DISCONNECT, 0, b"")


class Packet:
    """A decoded packet. .type, .name, .flags and per-type fields (see decode_packet)."""

    def __init__(self, ptype, flags, raw):
        self.type = ptype
        self.name = PACKET_NAMES.get(ptype, "RESERVED(%d)" % ptype)
        self.flags = flags
        self.raw = raw
        self.props = {}
        self.rc = None
        self.pid = None

    def __repr__(self):
        fields = {k: v for k, v in self.__dict__.items()
                  if k not in ("type", "name", "raw") and v not in (None, {}, [])}
        return "<%s %s>" % (self.name, fields)


class Reader:
    def __init__(self, data):
        self.d = data
        self.i = 0

    def left(self):
        return len(self.d) - self.i

    def take(self, n):
        if self.i + n > len(self.d):
            raise ValueError("truncated")
        b = self.d[self.i:self.i + n]
        self.i += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def varint(self):
        n, mult = 0, 1
        for _ in range(4):
            b = self.u8()
            n += (b & 0x7F) * mult
            if not b & 0x80:
                return n
            mult *= 128
        raise ValueError("varint longer than 4 bytes")

    def bin(self):
        return bytes(self.take(self.u16()))

    def str(self):
        return self.bin().decode("utf-8")

    def props(self):
        end = self.varint()
        end += self.i
        out = {}
        while self.i < end:
            pid = self.varint()
            if pid not in PROPS:
                raise ValueError("unknown property id 0x%02x" % pid)
            name, kind = PROPS[pid]
            val = {"byte": self.u8, "u16": self.u16, "u32": self.u32, "varint": self.varint,
                   "str": self.str, "bin": self.bin,
                   "pair": lambda: (self.str(), self.str())}[kind]()
            if name in MULTI_PROPS:
                out.setdefault(name, []).append(val)
            else:
                out[name] = val
        return out


def decode_packet(ptype, flags, body, version):
    """Decode a server-to-client packet body."""
    p = Packet(ptype, flags, body)
    r = Reader(body)
    if ptype == CONNACK:
        p.session_present = bool(r.u8() & 1)
        p.rc = r.u8()
        if version == 5 and r.left():
            p.props = r.props()
    elif ptype == PUBLISH:
        p.dup = bool(flags & 0x08)
        p.qos = (flags >> 1) & 3
        p.retain = bool(flags & 1)
        p.topic = r.str()
        if p.qos:
            p.pid = r.u16()
        if version == 5:
            p.props = r.props()
        p.payload = bytes(r.take(r.left()))
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        p.pid = r.u16()
        p.rc = 0
        if version == 5 and r.left():
            p.rc = r.u8()
            if r.left():
                p.props = r.props()
    elif ptype in (SUBACK, UNSUBACK):
        p.pid = r.u16()
        if version == 5:
            p.props = r.props()
        p.codes = list(r.take(r.left()))
    elif ptype in (DISCONNECT, AUTH):
        p.rc = 0
        if r.left():
            p.rc = r.u8()
            if r.left():
                p.props = r.props()
    return p


class Closed(Exception):
    """The broker closed the connection."""


class CloseResult:
    """Result of expect_closed: truthy when the broker closed the connection. .rc is the reason
    code of a DISCONNECT that came first (None if none), .packets what else came before."""

    def __init__(self, closed, disconnect, packets):
        self.closed = closed
        self.disconnect = disconnect
        self.rc = disconnect.rc if disconnect is not None else None
        self.packets = packets

    def __bool__(self):
        return self.closed

    def __repr__(self):
        why = self.disconnect.props.get("reason_string") if self.disconnect is not None else None
        return "<closed=%s disconnect_rc=%s%s before=%r>" % (
            self.closed, None if self.rc is None else "0x%02x" % self.rc,
            " (%s)" % why if why else "", self.packets)


class RawClient:
    """A socket MQTT client speaking exact bytes. Packets that arrive while waiting for another
    type are kept in a backlog and returned by later recv_packet calls, in order."""

    def __init__(self, port, host=HOST, timeout=5.0, version=5, tls=None, server_hostname=None,
                 tls_session=None):
        """tls: an ssl.SSLContext to speak MQTT over TLS (the handshake happens here; ssl errors
        propagate); tls_session: an ssl.SSLSession to offer for resumption. A TLS alert or error
        while reading later counts as the connection closing; it is kept in .tls_error."""
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tls_error = None
        if tls is not None:
            try:
                self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname or host,
                                            session=tls_session)
            except BaseException:
                self.sock.close()
                raise
        self.timeout = timeout
        self.version = version
        self.buf = bytearray()
        self.backlog = []
        self.next_pid = 1
        self.eof = False
        on_cleanup(self.close)

    # --- transport ---------------------------------------------------------------------------

    def send_raw(self, data):
        try:
            self.sock.sendall(bytes(data))
        except OSError as e:
            # Say what the broker sent before it closed (usually a DISCONNECT with a reason).
            raise AssertionError("broker closed the connection while we were sending (%s);"
                                 " before: %r" % (e, self.expect_closed(0.5)))

    def close(self):
        """Abrupt close (no DISCONNECT)."""
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except ssl.SSLError as e:  # only TLS sockets raise this: an alert, a bad record
            self.tls_error = e
            data = b""
        if not data:
            self.eof = True
            raise Closed()
        self.buf += data
        return True

    def _parse_one(self):
        """One complete packet from buf, or None."""
        if len(self.buf) < 2:
            return None
        n, mult, i = 0, 1, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            n += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
            if i > 4:
                raise AssertionError("broker sent a remaining length longer than 4 bytes")
        if len(self.buf) < i + n:
            return None
        hdr = self.buf[0]
        body = bytes(self.buf[i:i + n])
        del self.buf[:i + n]
        return decode_packet(hdr >> 4, hdr & 0x0F, body, self.version)

    def _recv_wire(self, timeout):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            p = self._parse_one()
            if p is not None:
                return p
            if self.eof:
                raise Closed()
            if not self._fill(deadline):
                return None

    def recv_packet(self, timeout=None):
        """Next packet (backlog first); None on timeout; raises Closed on EOF."""
        if self.backlog:
            return self.backlog.pop(0)
        return self._recv_wire(timeout)

    def wait_for(self, ptype, timeout=None, pid=None):
        """Next packet of this type (and packet id); others go to the backlog. Raises an
        AssertionError naming what came instead on timeout or close."""
        for i, p in enumerate(self.backlog):
            if p.type == ptype and (pid is None or p.pid == pid):
                return self.backlog.pop(i)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                p = self._recv_wire(max(0.0, deadline - time.monotonic()))
            except Closed:
                raise AssertionError("connection closed while waiting for %s (got before: %r)"
                                     % (PACKET_NAMES[ptype], self.backlog))
            if p is None:
                raise AssertionError("timeout waiting for %s%s (got instead: %r)"
                                     % (PACKET_NAMES[ptype], "" if pid is None else " pid %d" % pid,
                                        self.backlog))
            if p.type == ptype and (pid is None or p.pid == pid):
                return p
            self.backlog.append(p)

    def expect_nothing(self, timeout=0.5, what="packet"):
        p = self.recv_packet(timeout)
        check(p is None, "expected no %s, got %r" % (what, p))

    def expect_closed(self, timeout=5.0):
        """Wait for the broker to close the connection. Returns a CloseResult (truthy if closed),
        with the reason code of a DISCONNECT that came first."""
        deadline = time.monotonic() + timeout
        seen, disc = [], None
        try:
            while True:
                p = self.recv_packet(max(0.0, deadline - time.monotonic()))
                if p is None:
                    return CloseResult(False, disc, seen)
                if p.type == DISCONNECT and disc is None:
                    disc = p
                else:
                    seen.append(p)
        except Closed:
            return CloseResult(True, disc, seen)

    def alloc_pid(self):
        pid = self.next_pid
        self.next_pid = self.next_pid % 65535 + 1
        return pid

    # --- high-level operations ---------------------------------------------------------------

    def send_connect(self, **kw):
        kw.setdefault("version", self.version)
        self.version = kw["version"]
        self.send_raw(enc_connect(**kw))

    def connect(self, version=None, client_id="", clean=True, keepalive=60, props=None, will=None,
                username=None, password=None, timeout=None, **kw):
        """Send CONNECT and return the CONNACK packet (whatever its reason code)."""
        if version is not None:
            self.version = version
        self.send_connect(client_id=client_id, clean=clean, keepalive=keepalive, props=props,
                          will=will, username=username, password=password, **kw)
        try:
            p = self.recv_packet(timeout)
        except Closed:
            raise AssertionError("connection closed instead of CONNACK")
        check(p is not None, "no CONNACK within timeout")
        check(p.type == CONNACK, "expected CONNACK, got %r" % p)
        self.connack = p
        return p

    def publish(self, topic, payload=b"", qos=0, retain=False, props=None, pid=None, dup=False,
                wait=True):
        """Publish; for QoS 1 wait for PUBACK, for QoS 2 do PUBREC -> PUBREL -> PUBCOMP. Returns
        the final ack packet (PUBACK / PUBCOMP), the PUBREC if its rc >= 0x80, or the pid when
        wait=False or QoS 0."""
        if qos and pid is None:
            pid = self.alloc_pid()
        self.send_raw(enc_publish(self.version, topic, payload, qos, retain, pid, props, dup))
        if qos == 0 or not wait:
            return pid
        if qos == 1:
            return self.wait_for(PUBACK, pid=pid)
        rec = self.wait_for(PUBREC, pid=pid)
        if rec.rc >= 0x80:
            return rec
        self.send_raw(enc_ack(PUBREL, self.version, pid))
        return self.wait_for(PUBCOMP, pid=pid)

    def subscribe(self, filters, props=None, pid=None, qos=None):
        """filters: a string, or list of strings / (filter, options). Returns the SUBACK."""
        if isinstance(filters, (str, bytes)):
            filters = [filters]
        if qos is not None:
            filters = [(f, qos) if isinstance(f, (str, bytes)) else f for f in filters]
        pid = pid or self.alloc_pid()
        self.send_raw(enc_subscribe(self.version, pid, filters, props))
        return self.wait_for(SUBACK, pid=pid)

    def unsubscribe(self, filters, props=None, pid=None):
        if isinstance(filters, str):
            filters = [filters]
        pid = pid or self.alloc_pid()
        self.send_raw(enc_unsubscribe(self.version, pid, filters, props))
        return self.wait_for(UNSUBACK, pid=pid)

    def ack(self, pub):
        """Acknowledge a received PUBLISH fully (QoS 2: PUBREC, wait PUBREL, PUBCOMP)."""
        if pub.qos == 1:
            self.send_raw(enc_ack(PUBACK, self.version, pub.pid))
        elif pub.qos == 2:
            self.send_raw(enc_ack(PUBREC, self.version, pub.pid))
            self.wait_for(PUBREL, pid=pub.pid)
            self.send_raw(enc_ack(PUBCOMP, self.version, pub.pid))

    def recv_publish(self, timeout=None, ack=True):
        """Next PUBLISH (acknowledged when ack=True); AssertionError on timeout."""
        p = self.wait_for(PUBLISH, timeout)
        if ack:
            self.ack(p)
        return p

    def collect(self, timeout=1.0, count=None, ack=True):
        """PUBLISHes until `count` arrived or none came for `timeout` seconds."""
        out = []
        while count is None or len(out) < count:
            try:
                p = self.wait_for(PUBLISH, timeout)
            except AssertionError:
                break
            if ack:
                self.ack(p)
            out.append(p)
        return out

    def ping(self, timeout=None):
        self.send_raw(packet(PINGREQ, 0, b""))
        return self.wait_for(PINGRESP, timeout)

    def disconnect(self, rc=0, props=None, wait=3.0):
        """Send DISCONNECT, then wait (at most `wait` seconds) for the broker to close the
        connection: once it has, the broker has handled the DISCONNECT (session detached, will
        discarded or scheduled), so what the test does next cannot race with it."""
        try:
            self.send_raw(enc_disconnect(self.version, rc, props))
        except (OSError, AssertionError):
            pass
        else:
            if wait:
                try:
                    self.expect_closed(wait)
                except (OSError, AssertionError, ValueError):
                    pass
        self.close()


def connected(port, client_id=None, version=5, clean=True, keepalive=60, props=None, **kw):
    """A RawClient with a successful CONNACK (AssertionError otherwise)."""
    c = RawClient(port, version=version)
    if client_id is None:
        client_id = uniq("c")
    ack = c.connect(version=version, client_id=client_id, clean=clean, keepalive=keepalive,
                    props=props, **kw)
    check(ack.rc == 0, "CONNACK rc 0x%02x for %s" % (ack.rc, client_id))
    c.client_id = client_id
    return c


def metric(b, name):
    """The value of one sample (name with its labels, as exposed) from b's /metrics (b.mport)."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.mport, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^%s (-?\d+)$" % re.escape(name), text, re.M)
    check(m, "no %s in /metrics" % name)
    return int(m.group(1))


def check_serves(port, what="after bad input"):
    """The broker still accepts a fresh client and routes a message to it."""
    t = uniq("alive")
    c = connected(port)
    c.subscribe(t, qos=1)
    c.publish(t, b"ping", qos=1)
    p = c.recv_publish(3)
    check(p.payload == b"ping", "broker does not serve a fresh client %s" % what)
    c.disconnect()


# ---------------------------------------------------------------------------------------------
# TLS and WebSocket clients.

def tls_context(cafile=None, cert=None, key=None, version=None, check_hostname=True):
    """A client ssl.SSLContext trusting cafile, presenting cert (+ chain in the same file) and
    key when given. version: None (1.2 or 1.3), "1.2" or "1.3" (both bounds set to it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    ctx.check_hostname = bool(cafile) and check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED if cafile else ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    if version is not None:
        v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
        ctx.minimum_version = ctx.maximum_version = v
    return ctx


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_CONT, WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
    """One client-to-server WebSocket frame (RFC 6455 5.2); mask=False makes an illegal
    unmasked frame, length overrides the announced payload length."""
    payload = bytes(payload)
    n = len(payload) if length is None else length
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head.append(mbit | n)
    elif n < 65536:
        head.append(mbit | 126)
        head += struct.pack(">H", n)
    else:
        head.append(mbit | 127)
        head += struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + payload


def ws_request(path="/mqtt", host="127.0.0.1", key=None, version="13", protocol="mqtt",
               method="GET", extra=(), omit=()):
    """An opening handshake request. omit: header names (lower case) to leave out."""
    if key is None:
        key = base64.b64encode(os.urandom(16)).decode()
    headers = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)]
    if protocol is not None:
        headers.append(("Sec-WebSocket-Protocol", protocol))
    headers += list(extra)
    lines = ["%s %s HTTP/1.1" % (method, path)]
    lines += ["%s: %s" % (k, v) for k, v in headers if k.lower() not in omit]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


class HttpResponse:
    def __init__(self, head, body):
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        parts = lines[0].split(" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        self.headers = {}
        for l in lines[1:]:
            if ":" in l:
                k, v = l.split(":", 1)
                self.headers.setdefault(k.strip().lower(), v.strip())
        self.body = body

    def __repr__(self):
        return "<HTTP %s %r body=%r>" % (self.status, self.headers, self.body[:200])


def read_http_response(sock, timeout=5.0):
    """Reads a response head (and, if Content-Length says so, its body) from sock. Returns
    (HttpResponse, bytes read past it)."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while b"\r\n\r\n" not in data:
        remaining = deadline - time.monotonic()
        check(remaining > 0, "no complete HTTP response head within %.0fs: %r" % (timeout, data))
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            chunk = b""
        check(chunk, "connection closed before a complete HTTP response head: %r" % bytes(data))
        data += chunk
    head, rest = bytes(data).split(b"\r\n\r\n", 1)
    resp = HttpResponse(head, b"")
    n = int(resp.headers.get("content-length", "0") or 0)
    if resp.status != 101:
        while len(rest) < n and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, OSError):
                break
            if not chunk:
                break
            rest += chunk
        resp.body, rest = rest[:n], rest[n:]
    return resp, rest


class WsRawClient(RawClient):
    """RawClient over a WebSocket: the constructor does the opening handshake (the 101 response
    is in .upgrade and must accept it); send_raw() sends the bytes as one masked binary frame;
    received binary frames feed the MQTT parser. Control frames the broker sends are kept in
    .control as (opcode, payload); .close_code is the code of its close frame (None if none).
    send_frame() / send_bytes() send any frame or bytes."""

    def __init__(self, port, host=HOST, timeout=5.0, version=5, tls=None, path="/mqtt",
                 protocol="mqtt"):
        super().__init__(port, host, timeout, version, tls=tls)
        self.wsbuf = bytearray()
        self.control = []
        self.close_code = None
        self.close_reason = None
        req, key = ws_request(path, host, protocol=protocol)
        self.sock.sendall(req)
        self.upgrade, rest = read_http_response(self.sock, timeout)
        check(self.upgrade.status == 101, "WebSocket upgrade refused: %r" % self.upgrade)
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        check_eq(self.upgrade.headers.get("sec-websocket-accept"), want, "Sec-WebSocket-Accept")
        self.wsbuf += rest

    def send_bytes(self, data):
        self.sock.sendall(bytes(data))

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(ws_frame(opcode, payload, **kw))

    def send_raw(self, data):
        try:
            self.sock.sendall(ws_frame(WS_BINARY, data))
        except OSError as e:
            raise AssertionError("broker closed the connection while we were sending (%s)" % e)

    def _frames(self):
        """Moves complete frames out of wsbuf; returns True if MQTT bytes were added."""
        got = False
        while len(self.wsbuf) >= 2:
            b0, b1 = self.wsbuf[0], self.wsbuf[1]
            check(not b1 & 0x80, "the broker sent a masked frame")
            n, i = b1 & 0x7F, 2
            if n == 126:
                if len(self.wsbuf) < 4:
                    break
                n, i = struct.unpack(">H", self.wsbuf[2:4])[0], 4
            elif n == 127:
                if len(self.wsbuf) < 10:
                    break
                n, i = struct.unpack(">Q", self.wsbuf[2:10])[0], 10
            if len(self.wsbuf) < i + n:
                break
            op, payload = b0 & 0x0F, bytes(self.wsbuf[i:i + n])
            del self.wsbuf[:i + n]
            if op in (WS_BINARY, WS_CONT):
                self.buf += payload
                got = True
            else:
                self.control.append((op, payload))
                if op == WS_CLOSE and self.close_code is None:
                    self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 \
                        else 1005
                    self.close_reason = payload[2:].decode("utf-8", "replace")
        return got

    def _fill(self, deadline):
        while True:
            if self._frames():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            except ssl.SSLError as e:
                self.tls_error = e
                data = b""
            if not data:
                self._frames()
                self.eof = True
                raise Closed()
            self.wsbuf += data

    def expect_ws_close(self, timeout=5.0):
        """Reads until the broker closes the TCP connection; returns (closed, close_code)."""
        res = self.expect_closed(timeout)
        return bool(res), self.close_code


# ---------------------------------------------------------------------------------------------
# mosquitto_pub / mosquitto_sub.

def _mosq_version(version):
    return {3: "mqttv31", 4: "mqttv311", 5: "mqttv5"}[version]


def mosq_pub(port, topic, message, qos=0, version=5, retain=False, extra=(), timeout=10):
    """Run mosquitto_pub; returns the CompletedProcess (check .returncode)."""
    argv = ["mosquitto_pub", "-h", HOST, "-p", str(port), "-V", _mosq_version(version), "-t",
            topic, "-q", str(qos)]
    argv += ["-n"] if message is None else ["-m", message]
    if retain:
        argv.append("-r")
    argv += list(extra)
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                          preexec_fn=_pdeathsig)


class MosqSub:
    """mosquitto_sub in the background. Lines of received messages are 'topic|payload'. The
    constructor returns once the SUBACK has arrived (mosquitto_sub -d says so)."""

    def __init__(self, port, topics, qos=0, version=5, count=None, wait=10, extra=(),
                 fmt="%t|%p"):
        if isinstance(topics, str):
            topics = [topics]
        argv = ["stdbuf", "-oL", "mosquitto_sub", "-d", "-h", HOST, "-p", str(port), "-V", _mosq_version(version),
                "-q", str(qos), "-F", "MSG:" + fmt, "-W", str(wait)]
        for t in topics:
            argv += ["-t", t]
        if count is not None:
            argv += ["-C", str(count)]
        argv += list(extra)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)
        on_cleanup(self.kill)
        self.lines = queue.Queue()
        self.debug = []
        self._subacked = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        check(self._subacked.wait(5), "mosquitto_sub got no SUBACK: %r" % self.debug)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("MSG:"):
                self.lines.put(line[4:])
            else:
                self.debug.append(line)
                if "received SUBACK" in line:
                    self._subacked.set()
        self.lines.put(None)

    def messages(self, n, timeout=5.0):
        """Up to n message lines, waiting at most timeout overall."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                self.lines.put(None)
                break
            out.append(line)
        return out

    def wait(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# ---------------------------------------------------------------------------------------------
# paho-mqtt 1.6.1.

def paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise Skip("python3-paho-mqtt not installed")
    return mqtt


class Paho:
    """A paho client running its network loop in a thread, with blocking helpers. Received
    messages go to .messages (a queue of paho MQTTMessage)."""

    def __init__(self, port, client_id=None, version=5, clean=True, session_expiry=None,
                 keepalive=60, will=None, timeout=5.0, transport="tcp", tls=None, ws_path=None):
        """transport="websockets" for MQTT over WebSockets (ws_path: the request path, paho's
        default /mqtt); tls: an ssl.SSLContext for TLS (tls_set_context)."""
        mqtt = paho()
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes
        self.mqtt = mqtt
        self.version = version
        self.client_id = client_id if client_id is not None else uniq("paho")
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        if version == 5:
            self.c = mqtt.Client(client_id=self.client_id, protocol=proto,
                                 reconnect_on_failure=False, transport=transport)
        else:
            self.c = mqtt.Client(client_id=self.client_id, clean_session=clean, protocol=proto,
                                 reconnect_on_failure=False, transport=transport)
        if ws_path is not None:
            self.c.ws_set_options(path=ws_path)
        if tls is not None:
            self.c.tls_set_context(tls)
        self.messages = queue.Queue()
        self.events = queue.Queue()
        self.connack = None
        self.disconnected = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_subscribe = lambda c, u, mid, *rest: self.events.put(("sub", mid, rest))
        self.c.on_unsubscribe = lambda c, u, mid, *rest: self.events.put(("unsub", mid, rest))
        self.c.on_publish = lambda c, u, mid: self.events.put(("pub", mid, None))
        self.c.on_disconnect = self._on_disconnect
        if will:
            self.c.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                            will.get("retain", False))
        props = None
        if version == 5:
            props = Properties(PacketTypes.CONNECT)
            if session_expiry is not None:
                props.SessionExpiryInterval = session_expiry
        self._connected = threading.Event()
        kw = {}
        if version == 5:
            kw = {"clean_start": clean, "properties": props}
        self.c.connect(HOST, port, keepalive, **kw)
        self.c.loop_start()
        on_cleanup(self.stop)
        check(self._connected.wait(timeout), "paho %s: no CONNACK" % self.client_id)
        check(self.rc == 0, "paho %s: CONNACK rc %s" % (self.client_id, self.rc))

    def _on_connect(self, c, u, flags, rc, props=None):
        self.rc = rc if isinstance(rc, int) else rc.value
        self.session_present = bool(flags.get("session present"))
        self._connected.set()

    def _on_disconnect(self, c, u, rc, props=None):
        self.disconnect_rc = rc
        self.disconnected.set()

    def _wait_event(self, kind, mid, timeout=5.0):
        deadline = time.monotonic() + timeout
        pending = []
        try:
            while True:
                try:
                    ev = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    raise AssertionError("paho %s: no %s ack for mid %s" % (self.client_id, kind,
                                                                           mid))
                if ev[0] == kind and ev[1] == mid:
                    return ev[2]
                pending.append(ev)
        finally:
            for ev in pending:
                self.events.put(ev)

    def subscribe(self, topic, qos=0, timeout=5.0):
        rc, mid = self.c.subscribe(topic, qos)
        check(rc == 0, "paho subscribe failed: %s" % rc)
        return self._wait_event("sub", mid, timeout)

    def unsubscribe(self, topic, timeout=5.0):
        rc, mid = self.c.unsubscribe(topic)
        return self._wait_event("unsub", mid, timeout)

    def publish(self, topic, payload, qos=0, retain=False, timeout=5.0, properties=None):
        info = self.c.publish(topic, payload, qos, retain, properties=properties)
        info.wait_for_publish(timeout)
        check(info.is_published(), "paho %s: publish of %s not completed" % (self.client_id,
                                                                           topic))
        return info

    def recv(self, timeout=5.0):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def collect(self, timeout=1.0, count=None):
        out = []
        while count is None or len(out) < count:
            m = self.recv(timeout)
            if m is None:
                break
            out.append(m)
        return out

    def disconnect(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.disconnected.wait(3)
        self.stop()

    def stop(self):
        try:
            self.c.loop_stop()
        except Exception:
            pass
        try:
            self.c.socket() and self.c.socket().close()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------
# Case runner.

_cases = []


def case(fn=None, *, ringmq_only=None, mosquitto_differs=None):
    """Register a test case, run in file order by run(). ringmq_only="why": skipped under
    RQ_TARGET=mosquitto. mosquitto_differs="how": under mosquitto a failure is reported as an
    expected difference (XFAIL), not a failure."""
    def reg(f):
        f.ringmq_only = ringmq_only
        f.mosquitto_differs = mosquitto_differs
        _cases.append(f)
        return f
    if fn is not None:
        return reg(fn)
    return reg


def _on_alarm(signum, frame):
    raise TestTimeout("overall test timeout reached")


def _on_term(signum, frame):
    cleanup_all()
    os._exit(1)


def run(fixture=None, timeout=60, only=None):
    """Run the registered cases. fixture: callable returning a shared object (usually a Broker)
    passed to each case that takes one argument; it is re-created if a case kills it.
    Exits the process with 0 / 1 / 77."""
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    signal.alarm(timeout)
    only = only or [a for a in sys.argv[1:] if not a.startswith("-")]
    passed, failed, skipped, xfail = [], [], [], []
    shared = None
    print("target: %s" % TARGET)
    try:
        for fn in _cases:
            name = fn.__name__
            if only and name not in only:
                continue
            if MOSQUITTO and fn.ringmq_only:
                print("SKIP %s (ringmq-specific: %s)" % (name, fn.ringmq_only))
                skipped.append(name)
                continue
            t0 = time.monotonic()
            first_broker = len(_brokers)
            try:
                args = ()
                if fixture is not None and fn.__code__.co_argcount >= 1:
                    if shared is None or (isinstance(shared, Broker) and not shared.alive()):
                        shared = fixture()
                    args = (shared,)
                fn(*args)
                if isinstance(shared, Broker):
                    shared.check_alive()
                print("PASS %s (%.1fs)" % (name, time.monotonic() - t0))
                passed.append(name)
            except Skip as e:
                print("SKIP %s: %s" % (name, e))
                skipped.append(name)
            except TestTimeout:
                print("FAIL %s: overall timeout (%ds) reached" % (name, timeout))
                failed.append(name)
                break
            except Exception as e:
                msg = "%s: %s" % (type(e).__name__, e) if not isinstance(e, AssertionError) \
                    else str(e)
                if MOSQUITTO and fn.mosquitto_differs:
                    print("XFAIL %s (mosquitto differs: %s): %s" % (name, fn.mosquitto_differs,
                                                                    msg))
                    xfail.append(name)
                else:
                    print("FAIL %s: %s" % (name, msg))
                    if not isinstance(e, AssertionError) or os.environ.get("RQ_TRACE"):
                        traceback.print_exc(file=sys.stdout)
                    failed.append(name)
                    if isinstance(shared, Broker) and shared.alive() is False:
                        print("    broker died; log tail:\n%s" % shared.log()[-2000:])
                    for b in _brokers[first_broker:]:
                        if b is not shared and not b.alive() and \
                                (getattr(b, "exited_on_its_own", False) or
                                 not getattr(b, "ended_by_test", False)):
                            print("    broker on port %d exited (%s); log tail:\n%s"
                                  % (b.port, b.proc.returncode, b.log()[-2000:]))
            sys.stdout.flush()
        # The shared broker exits cleanly; no broker left a sanitizer report.
        if isinstance(shared, Broker) and shared.alive():
            shared.stop()
        for b in _brokers:
            for problem in b.problems():
                print("FAIL broker %s (port %d): %s; log tail:\n%s"
                      % (os.path.basename(b.argv[0]), b.port, problem, b.log()[-2000:]))
                failed.append("broker-%d" % b.port)
    finally:
        signal.alarm(0)
        cleanup_all()
    print("%d passed, %d failed, %d skipped" % (len(passed), len(failed),
                                                len(skipped) + len(xfail)))
    if failed:
        sys.exit(1)
    if not passed:
        sys.exit(SKIP_RC)
    sys.exit(0)


def fixture_broker(yaml_fn=None, threads=2):
    """A fixture for run(): starts a broker on broker_yaml() or on yaml_fn()."""
    def make():
        return start_broker(yaml_fn() if yaml_fn else broker_yaml(), threads=threads)
    return make


@contextlib.contextmanager
def env_applied(env):
    """os.environ with env's variables set for the block (a broker started inside inherits
    them), then as it was."""
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
