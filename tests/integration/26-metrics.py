#!/usr/bin/python3
"""26 metrics, health, $SYS and the systemd notify protocol.

- GET /metrics on spec.diagnostics.metrics.prometheusPort: counters move by exactly the traffic
  sent (publishes, payload bytes, sessions, subscriptions, retained, wills, drops by reason,
  authentication outcomes with their latency histogram and auth server requests, config
  reloads); the text is valid Prometheus exposition format (a strict line parser here:
  HELP/TYPE before samples, valid names and labels, no duplicates, histograms cumulative);
- other paths 404, other methods 405; prometheusPort 0 opens no port;
- /healthz fails while a shard loop does not turn (test hook RINGMQ_TEST_STALL_MS + SIGUSR2)
  and recovers; /readyz fails at once on SIGTERM while the MQTT listener still accepts
  (shutdownDelaySeconds);
- $SYS/broker/... arrive (retained) every sysTopicsIntervalSeconds, '#' never matches them,
  clients cannot publish there, sysTopics false turns them off;
- TLS handshake failures are counted by cause (not TLS: protocol; TLS 1.0 only: version; a
  client that distrusts the server, TLS 1.3 and 1.2: alert; an untrusted or missing client
  certificate on an X509 port: certificate);
- per-shard: connections, inbox depth of a stuck shard, backpressure pauses of the shard
  posting to it; authorization allow/deny per operation;
- sd_notify: READY=1 once the listeners accept, WATCHDOG=1 while the shards turn (and not while
  one is stuck), STOPPING=1 on SIGTERM, through a NOTIFY_SOCKET datagram socket."""

import math
import os
import re
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

ONLY = "ringmq's metrics endpoint"


# ---- broker and HTTP helpers -------------------------------------------------------------------

def start(ringmq=None, metrics_port=None, env=None, clients=None):
    """A broker with its metrics endpoint on a free port (or metrics_port). Returns (broker,
    port of the endpoint)."""
    mport = rq.free_port() if metrics_port is None else metrics_port
    extra = {"diagnostics": {"logs": {"level": "debug"},
                             "metrics": {"prometheusPort": mport}}}
    yaml_text = rq.broker_yaml(clients=rq._merge(rq.STD_CLIENTS, clients),
                               ringmq=rq._merge(rq.STD_RINGMQ, ringmq),
                               extra_spec=extra)
    with rq.env_applied(env):
        b = rq.start_broker(yaml_text)
    return b, mport


def http(port, path, method="GET", body=None, timeout=5.0):
    s = socket.create_connection((rq.HOST, port), timeout=timeout)
    try:
        req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, path)
        if body is not None:
            req += "Content-Length: %d\r\n" % len(body)
        s.sendall(req.encode() + b"\r\n" + (body or b""))
        resp, _ = rq.read_http_response(s, timeout)
        return resp
    finally:
        s.close()


def wait_http(port, path, status, timeout=15.0):
    """Polls path until it answers status; returns that response."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = http(port, path)
            if last.status == status:
                return last
        except (OSError, AssertionError) as e:
            # refused, or accepted and closed at once (connections just closed by the test may
            # still count against the per-address limit until the server's next turn)
            last = e
        time.sleep(0.1)
    raise AssertionError("%s did not answer %d within %.0fs; last: %r" % (path, status, timeout,
                                                                          last))


# ---- a strict parser of the Prometheus text format (0.0.4) -------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
SAMPLE_RE = re.compile(r"^(%s)(\{(.*)\})? (\S+)( -?\d+)?$" % NAME)
LABEL_RE = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)' % LABEL)


def parse_labels(text, where):
    labels = {}
    pos = 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        check(m, "%s: bad label syntax at %r" % (where, text[pos:]))
        check(m.group(1) not in labels, "%s: label %s twice" % (where, m.group(1)))
        labels[m.group(1)] = m.group(2)
        pos = m.end()
    return labels


def parse_value(text, where):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf"))
    check(re.match(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$", text), "%s: bad value %r"
          % (where, text))
    return float(text)


def family_of(name, types):
    """The declared family a sample name belongs to (histogram/summary suffixes)."""
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) in ("histogram", "summary"):
            return name[:-len(suffix)]
    return None


def parse_exposition(text):
    """Returns {(name, frozenset(labels.items())): value} and {family: type}; AssertionError on
    any deviation from the format."""
    check(text.endswith("\n"), "exposition does not end with a newline")
    types, helps, samples, seen_sample_family = {}, {}, {}, set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d %r" % (n, line)
        check(line, "%s: empty line" % where)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            check(len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"),
                  "%s: a comment line that is neither HELP nor TYPE" % where)
            check(re.fullmatch(NAME, parts[2]), "%s: bad metric name" % where)
            if parts[1] == "TYPE":
                check(len(parts) == 4 and parts[3] in TYPES, "%s: bad TYPE" % where)
                check(parts[2] not in types, "%s: TYPE twice" % where)
                check(parts[2] not in seen_sample_family, "%s: TYPE after samples" % where)
                types[parts[2]] = parts[3]
            else:
                check(len(parts) == 4 and parts[3], "%s: HELP without text" % where)
                check(parts[2] not in helps, "%s: HELP twice" % where)
                helps[parts[2]] = parts[3]
            continue
        m = SAMPLE_RE.match(line)
        check(m, "%s: not a sample line" % where)
        name = m.group(1)
        fam = family_of(name, types)
        check(fam, "%s: sample of a family without TYPE" % where)
        check(fam in helps, "%s: family without HELP" % where)
        seen_sample_family.add(fam)
        labels = parse_labels(m.group(3) or "", where)
        key = (name, frozenset(labels.items()))
        check(key not in samples, "%s: duplicate sample" % where)
        samples[key] = parse_value(m.group(4), where)
    check_histograms(samples, types)
    return samples, types


def check_histograms(samples, types):
    for fam, t in types.items():
        if t != "histogram":
            continue
        series = {}
        for (name, labels), v in samples.items():
            if name == fam + "_bucket":
                d = dict(labels)
                le = d.pop("le")
                series.setdefault(frozenset(d.items()), []).append(
                    (math.inf if le == "+Inf" else float(le), v))
        for labels, buckets in series.items():
            buckets.sort()
            check(buckets[-1][0] == math.inf, "%s%s: no +Inf bucket" % (fam, dict(labels)))
            counts = [v for _, v in buckets]
            check(counts == sorted(counts), "%s%s: buckets not cumulative" % (fam, dict(labels)))
            check_eq(samples.get((fam + "_count", labels)), counts[-1],
                     "%s%s: _count = +Inf bucket" % (fam, dict(labels)))
            check((fam + "_sum", labels) in samples, "%s%s: no _sum" % (fam, dict(labels)))


def scrape(port):
    r = http(port, "/metrics")
    check_eq(r.status, 200, "GET /metrics status")
    check(r.headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
          "Content-Type %r" % r.headers.get("content-type"))
    samples, _ = parse_exposition(r.body.decode())
    return samples


def val(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    check(key in samples, "no sample %s%s" % (name, labels or ""))
    return samples[key]


def wait_value(port, name, want, timeout=10.0, **labels):
    """Scrapes until name{labels} == want (gauges settle when the shards turn)."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = val(scrape(port), name, **labels)
        if got == want:
            return
        time.sleep(0.05)
    raise AssertionError("%s%s = %r, want %r" % (name, labels or "", got, want))


def listening_ports(pid):
    """TCP ports pid listens on (from /proc: sockets in LISTEN owned by the process)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", link)
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and cols[9] in inodes:
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


# ---- cases ------------------------------------------------------------------------------------

AIO_NAMES = ["publishes_received", "publishes_sent", "payload_bytes_received",
             "payload_bytes_sent", "authentication_successes", "authentication_failures",
             "authentication_deny", "authorization_allow", "authorization_deny",
             "connected_sessions", "total_subscriptions", "store_retained_messages",
             "store_retained_bytes", "store_will_messages"]


@case(ringmq_only=ONLY)
def exposition_format_valid():
    b, mp = start()
    with b:
        c = rq.connected(b.port)  # something in the gauges
        c.subscribe("fmt/#", qos=1)
        r = http(mp, "/metrics")
        check_eq(r.status, 200, "status")
        samples, types = parse_exposition(r.body.decode())
        for n in AIO_NAMES:
            check_eq(types.get("aio_broker_" + n), "gauge" if n in (
                "connected_sessions", "total_subscriptions", "store_retained_messages",
                "store_retained_bytes", "store_will_messages") else "counter", "TYPE of " + n)
        val(samples, "aio_broker_qos0_messages_dropped", direction="incoming")
        val(samples, "aio_broker_qos0_messages_dropped", direction="outgoing")
        val(samples, "aio_broker_total_sessions", mqtt_version="v5")
        for sh in ("0", "1"):
            check(val(samples, "ringmq_shard_loop_iterations_total", shard=sh) > 0,
                  "shard %s loop iterations" % sh)
            val(samples, "ringmq_shard_connections", shard=sh)
            val(samples, "ringmq_shard_inbox_pending_messages", shard=sh)
        check(any(n == "ringmq_io_backend_info" and dict(l).get("backend") == "io_uring"
                  for n, l in samples), "no ringmq_io_backend_info{backend=io_uring}")
        for t in ("ringmq_config_reloads_total", "ringmq_config_reload_failures_total",
                  "ringmq_config_last_reload_success_timestamp_seconds",
                  "ringmq_tls_handshake_failures_total", "ringmq_messages_dropped_total",
                  "ringmq_auth_request_duration_seconds", "ringmq_auth_cache_hits_total",
                  "ringmq_auth_server_requests_total", "ringmq_backpressure_pauses_total"):
            check(t in types, "family %s missing" % t)
        check(abs(val(samples, "ringmq_config_last_reload_success_timestamp_seconds")
                  - time.time()) < 600, "last good configuration time is not about now")
        # the parser itself rejects what it should
        for bad in ("x 1\n", "# TYPE x counter\nx 1\n", "# HELP x h\n# TYPE x counter\nx{a=b} 1\n",
                    "# HELP x h\n# TYPE x counter\nx 1\nx 1\n", "# HELP 1x h\n"):
            try:
                parse_exposition(bad)
            except AssertionError:
                continue
            raise AssertionError("the parser accepted %r" % bad)
        c.disconnect()


@case(ringmq_only=ONLY)
def counters_move_exactly():
    """Known traffic moves each counter by exactly its amount; gauges say what exists."""
    n, size = 25, 10
    b, mp = start(ringmq={"sysTopics": False})  # no $SYS retained messages in the counts
    with b:
        before = scrape(mp)
        sub = rq.connected(b.port, version=5)
        sub.subscribe("cnt/#", qos=1)
        pub = rq.connected(b.port, version=4)
        for i in range(n):
            pub.publish("cnt/%d" % i, b"x" * size, qos=1)
        got = sub.collect(timeout=5, count=n)
        check_eq(len(got), n, "messages delivered")
        wait_value(mp, "aio_broker_publishes_sent",
                   val(before, "aio_broker_publishes_sent") + n)
        after = scrape(mp)

        def delta(name, **labels):
            return val(after, name, **labels) - val(before, name, **labels)
        check_eq(delta("aio_broker_publishes_received"), n, "publishes_received")
        check_eq(delta("aio_broker_payload_bytes_received"), n * size, "payload_bytes_received")
        check_eq(delta("aio_broker_payload_bytes_sent"), n * size, "payload_bytes_sent")
        check_eq(val(after, "aio_broker_connected_sessions"), 2, "connected_sessions")
        check_eq(val(after, "aio_broker_total_sessions", mqtt_version="v3"), 1, "v3 sessions")
        check_eq(val(after, "aio_broker_total_sessions", mqtt_version="v5"), 1, "v5 sessions")
        check_eq(val(after, "aio_broker_total_subscriptions"), 1, "subscriptions")
        check(delta("ringmq_network_bytes_received_total") > n * size, "network bytes received")

        # retained: three stored (7 bytes each), then one cleared
        for i in range(3):
            pub.publish("ret/%d" % i, b"r" * 7, qos=1, retain=True)
        wait_value(mp, "aio_broker_store_retained_messages", 3)
        check_eq(val(scrape(mp), "aio_broker_store_retained_bytes"), 21, "retained bytes")
        pub.publish("ret/0", b"", qos=1, retain=True)
        wait_value(mp, "aio_broker_store_retained_messages", 2)
        check_eq(val(scrape(mp), "aio_broker_store_retained_bytes"), 14, "retained bytes")

        # a will held while its client is connected; gone after DISCONNECT 0x00
        w = rq.connected(b.port, version=5, will={"topic": "will/x", "payload": b"bye"})
        wait_value(mp, "aio_broker_store_will_messages", 1)
        w.disconnect()
        wait_value(mp, "aio_broker_store_will_messages", 0)

        # a QoS 0 PUBLISH to $SYS is refused: dropped incoming, not authorized
        s0 = scrape(mp)
        pub.publish("$SYS/broker/x", b"no", qos=0)
        pub.ping()
        s1 = scrape(mp)
        check_eq(val(s1, "aio_broker_qos0_messages_dropped", direction="incoming")
                 - val(s0, "aio_broker_qos0_messages_dropped", direction="incoming"), 1,
                 "qos0 dropped incoming")
        check_eq(val(s1, "ringmq_messages_dropped_total", reason="not_authorized")
                 - val(s0, "ringmq_messages_dropped_total", reason="not_authorized"), 1,
                 "dropped not_authorized")

        # subscriptions and sessions go away with their clients (clean sessions)
        sub.unsubscribe("cnt/#")
        wait_value(mp, "aio_broker_total_subscriptions", 0)
        sub.disconnect()
        pub.disconnect()
        wait_value(mp, "aio_broker_connected_sessions", 0)
        wait_value(mp, "aio_broker_total_sessions", 0, mqtt_version="v3")
        wait_value(mp, "aio_broker_total_sessions", 0, mqtt_version="v5")


@case(ringmq_only=ONLY)
def drops_by_reason():
    """Messages dropped for the queue limit, the client's maximum packet size and expiry are
    counted by reason (QoS 0 ones as AIO's outgoing qos0_messages_dropped too)."""
    b, mp = start(ringmq={"sysTopics": False},
                  clients={"subscriberQueueLimit": {"length": 10, "strategy": "None"}})
    with b:
        s0 = scrape(mp)
        pub = rq.connected(b.port)
        # queue limit: an offline session with a QoS 1 subscription takes 10 of 13
        off = rq.connected(b.port, client_id="offline-sub", clean=True,
                           props={"session_expiry_interval": 60})
        off.subscribe("q/t", qos=1)
        off.disconnect()
        for i in range(13):
            pub.publish("q/t", b"m%d" % i, qos=1)
        # too large: a QoS 0 message over the subscriber's Maximum Packet Size
        small = rq.connected(b.port, props={"maximum_packet_size": 64})
        small.subscribe("big/t", qos=0)
        pub.publish("big/t", b"x" * 200, qos=1)
        small.ping()
        # expired: queued for an offline session, expired before it comes back
        exp = rq.connected(b.port, client_id="expiring-sub", props={"session_expiry_interval": 60})
        exp.subscribe("e/t", qos=1)
        exp.disconnect()
        pub.publish("e/t", b"soon gone", qos=1, props={"message_expiry_interval": 1})
        time.sleep(2.2)
        back = rq.connected(b.port, client_id="expiring-sub", clean=False,
                            props={"session_expiry_interval": 60})
        back.expect_nothing(0.5, "an expired message")
        s1 = scrape(mp)

        def d(reason):
            return (val(s1, "ringmq_messages_dropped_total", reason=reason)
                    - val(s0, "ringmq_messages_dropped_total", reason=reason))
        check_eq((d("queue_limit"), d("too_large"), d("expired")), (3, 1, 1),
                 "dropped (queue_limit, too_large, expired)")
        check_eq(val(s1, "aio_broker_qos0_messages_dropped", direction="outgoing")
                 - val(s0, "aio_broker_qos0_messages_dropped", direction="outgoing"), 1,
                 "qos0 dropped outgoing")
        for c in (pub, small, back):
            c.disconnect()


@case(ringmq_only=ONLY)
def endpoint_answers_once_mqtt_port_accepts():
    """Probes and scrapers may start as soon as an MQTT port accepts: the endpoint listens from
    then on (it used to open after the MQTT ports; a scrape right after start was refused)."""
    import subprocess
    d = tempfile.mkdtemp(prefix="rq-early-")
    rq.on_cleanup(lambda: subprocess.run(["rm", "-rf", d]))
    for i in range(10):
        port, mp = rq.free_port(), rq.free_port()
        path = os.path.join(d, "c%d.yaml" % i)
        with open(path, "w") as f:
            f.write(rq.broker_yaml(port=port, extra_spec={
                "diagnostics": {"logs": {"level": "info"}, "metrics": {"prometheusPort": mp}}}))
        p = subprocess.Popen([rq.broker_bin(), "-c", path], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rq.on_cleanup(p.kill)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and p.poll() is None:
            try:
                socket.create_connection((rq.HOST, port), timeout=2).close()
                break
            except OSError:
                pass
        check(p.poll() is None, "broker %d exited with %s" % (i, p.returncode))
        try:
            socket.create_connection((rq.HOST, mp), timeout=2).close()
            ok = True
        except OSError as e:
            ok = e
        check(ok is True, "start %d: MQTT port accepts, metrics port: %s" % (i, ok))
        p.terminate()
        check_eq(p.wait(10), 0, "exit code")


@case(ringmq_only=ONLY)
def config_reload_counters():
    """A reload that fails validation counts as a failure and changes nothing; a good one counts
    and moves the time of the last good configuration. (The file watcher may reload the changed
    file as well as SIGHUP: at least one each.)"""
    b, mp = start()
    with b:
        path = os.path.join(b.workdir, "ringmq.yaml")
        with open(path) as fh:
            good = fh.read()
        s0 = scrape(mp)
        t0 = val(s0, "ringmq_config_last_reload_success_timestamp_seconds")
        with open(path, "w") as fh:
            fh.write(good.replace("kind: BrokerListener", "kind: BrokerListener\nbogus: 1", 1))
        b.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (val(scrape(mp), "ringmq_config_reload_failures_total")
               == val(s0, "ringmq_config_reload_failures_total")) and time.monotonic() < deadline:
            time.sleep(0.1)
        s1 = scrape(mp)
        check(val(s1, "ringmq_config_reload_failures_total")
              > val(s0, "ringmq_config_reload_failures_total"), "reload failure not counted")
        check_eq(val(s1, "ringmq_config_reloads_total"), val(s0, "ringmq_config_reloads_total"),
                 "good reloads after a bad file")
        time.sleep(1.1)  # the timestamp has a resolution of one second
        with open(path, "w") as fh:
            fh.write(good)
        b.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (val(scrape(mp), "ringmq_config_reloads_total")
               == val(s0, "ringmq_config_reloads_total")) and time.monotonic() < deadline:
            time.sleep(0.1)
        s2 = scrape(mp)
        check(val(s2, "ringmq_config_reloads_total") > val(s0, "ringmq_config_reloads_total"),
              "good reload not counted")
        check(val(s2, "ringmq_config_last_reload_success_timestamp_seconds") > t0,
              "time of the last good configuration did not move")
        rq.connected(b.port).disconnect()


@case(ringmq_only=ONLY)
def not_found_and_method_not_allowed():
    b, mp = start()
    with b:
        check_eq(http(mp, "/").status, 404, "GET /")
        check_eq(http(mp, "/metrics/x").status, 404, "GET /metrics/x")
        r = http(mp, "/metrics", method="POST", body=b"abc")
        check_eq(r.status, 405, "POST /metrics")
        check("GET" in r.headers.get("allow", ""), "405 without Allow: %r" % r.headers)
        check_eq(http(mp, "/healthz", method="DELETE").status, 405, "DELETE /healthz")
        check_eq(http(mp, "/readyz", method="HEAD").status, 200, "HEAD /readyz")
        check_eq(http(mp, "/healthz").status, 200, "GET /healthz")
        check_eq(http(mp, "/readyz").status, 200, "GET /readyz")


@case(ringmq_only=ONLY)
def bounded_connections():
    """Idle HTTP connections beyond the per-address limit are refused or closed; the endpoint
    still answers once they are gone."""
    b, mp = start()
    with b:
        idle = []
        for _ in range(12):
            s = socket.create_connection((rq.HOST, mp), timeout=5)
            idle.append(s)
        closed = 0
        for s in idle:
            s.settimeout(2)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except socket.timeout:
                pass
            except OSError:
                closed += 1
        check(closed >= 4, "only %d of 12 idle connections from one address were closed (limit "
              "8 per address)" % closed)
        for s in idle:
            s.close()
        wait_http(mp, "/healthz", 200)


@case(ringmq_only=ONLY)
def port_zero_disables():
    b, _ = start(metrics_port=0)
    with b:
        check(b.wait_log(r"metrics and health endpoint off", 0, 3), "no log line saying so")
        check_eq(listening_ports(b.pid), {b.port}, "ports the broker listens on")


@case(ringmq_only=ONLY)
def healthz_fails_while_a_shard_is_stuck():
    b, mp = start(env={"RINGMQ_TEST_STALL_MS": "9000"})
    with b:
        wait_http(mp, "/healthz", 200)
        # idle shards turn too (a heartbeat): an idle broker stays healthy past the 5 s
        t0 = time.monotonic()
        while time.monotonic() - t0 < 6.5:
            check_eq(http(mp, "/healthz").status, 200, "/healthz of an idle broker")
            time.sleep(0.5)
        b.signal(signal.SIGUSR2)
        r = wait_http(mp, "/healthz", 503, timeout=15)
        check(b"shard 0" in r.body, "503 body %r" % r.body)
        m = scrape(mp)
        check(val(m, "ringmq_shard_last_turn_age_seconds", shard="0") > 5,
              "last turn age of the stuck shard")
        check(val(m, "ringmq_shard_last_turn_age_seconds", shard="1") < 5,
              "last turn age of the other shard")
        check_eq(http(mp, "/metrics").status, 200, "/metrics while a shard is stuck")
        wait_http(mp, "/healthz", 200, timeout=20)  # it turns again once the stall ends
        c = rq.connected(b.port)
        c.disconnect()


def shard_of(b, c, timeout=5.0):
    """The shard serving RawClient c, from the broker's debug line naming its address."""
    local = c.sock.getsockname()[1]
    m = b.wait_log(r"\[shard (\d+)\] 127\.0\.0\.1:%d " % local, 0, timeout)
    check(m, "no log line names the shard of 127.0.0.1:%d" % local)
    return int(m.group(1))


def one_per_shard(b, n=2):
    """Clients connected until one is served by each of shards 0..n-1 (SO_REUSEPORT spreads
    them by source port); the others disconnected. Returns them indexed by shard."""
    got, spare = {}, []
    deadline = time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        c = rq.connected(b.port)
        s = shard_of(b, c)
        if s in got:
            spare.append(c)
        else:
            got[s] = c
    check_eq(sorted(got), list(range(n)), "shards reached")
    for c in spare:
        c.disconnect()
    return [got[i] for i in range(n)]


def wait_at_least(port, name, want, timeout=10.0, **labels):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = val(scrape(port), name, **labels)
        if got >= want:
            return got
        time.sleep(0.05)
    raise AssertionError("%s%s = %r, want >= %r" % (name, labels or "", got, want))


@case(ringmq_only=ONLY)
def inbox_depth_backpressure_and_connections_per_shard():
    """Per-shard gauges and counters say what happens on that shard: one client on each shard
    is ringmq_shard_connections 1 each; while shard 0 is stuck (test hook), the messages shard
    1 routes to shard 0's subscriber wait in shard 0's inbox (ringmq_shard_inbox_pending_messages
    exactly that many), and past spec.ringmq.shardBacklogLimit shard 1 stops reading its client
    (ringmq_backpressure_pauses_total{shard="1"} moves); once shard 0 turns again the inbox
    drains to 0 and every message arrives."""
    b, mp = start(ringmq={"sysTopics": False, "shardBacklogLimit": 16},
                  env={"RINGMQ_TEST_STALL_MS": "8000"})
    with b:
        sub, pub = one_per_shard(b)
        sub.subscribe("bp/t", qos=0)
        wait_value(mp, "ringmq_shard_connections", 1, shard="0")
        wait_value(mp, "ringmq_shard_connections", 1, shard="1")
        s0 = scrape(mp)
        check_eq(val(s0, "ringmq_shard_inbox_pending_messages", shard="0"), 0, "inbox idle")
        mark = b.log_mark()
        b.signal(signal.SIGUSR2)
        check(b.wait_log(r"shard 0: stalling", mark, 10), "shard 0 did not stall")
        n = 10
        for i in range(n):
            pub.publish("bp/t", b"m%d" % i, qos=0)
        pub.ping(5)  # shard 1 has read and routed them
        wait_value(mp, "ringmq_shard_inbox_pending_messages", n, shard="0")
        check_eq(val(scrape(mp), "ringmq_shard_inbox_pending_messages", shard="1"), 0,
                 "shard 1's inbox")
        # past the backlog limit (16): shard 1 pauses its publishing client
        paused0 = val(s0, "ringmq_backpressure_pauses_total", shard="1")
        deadline = time.monotonic() + 6
        while (val(scrape(mp), "ringmq_backpressure_pauses_total", shard="1") == paused0
               and time.monotonic() < deadline and n < 400):
            pub.publish("bp/t", b"m%d" % n, qos=0)
            n += 1
            time.sleep(0.01)
        s1 = scrape(mp)
        check(val(s1, "ringmq_backpressure_pauses_total", shard="1") > paused0,
              "no pause counted on shard 1 after %d messages toward a stuck shard" % n)
        check_eq(val(s1, "ringmq_backpressure_pauses_total", shard="0"),
                 val(s0, "ringmq_backpressure_pauses_total", shard="0"), "pauses on shard 0")
        check(val(s1, "ringmq_shard_inbox_pending_messages", shard="0") > 16,
              "inbox of the stuck shard past the limit")
        got = sub.collect(timeout=30, count=n)
        check_eq(len(got), n, "messages delivered once shard 0 turned again")
        wait_value(mp, "ringmq_shard_inbox_pending_messages", 0, shard="0")
        pub.ping(10)  # reads resumed
        for c in (sub, pub):
            c.disconnect()
        wait_value(mp, "ringmq_shard_connections", 0, shard="0")
        wait_value(mp, "ringmq_shard_connections", 0, shard="1")


@case(ringmq_only=ONLY)
def readyz_fails_on_sigterm_before_listeners_close():
    b, mp = start(ringmq={"shutdownDelaySeconds": 4})
    with b:
        wait_http(mp, "/readyz", 200)
        c = rq.connected(b.port)
        b.signal(signal.SIGTERM)
        r = wait_http(mp, "/readyz", 503, timeout=3)
        check(b"shutting down" in r.body, "503 body %r" % r.body)
        check(rq.port_open(b.port), "MQTT listener closed while /readyz failed")
        late = rq.connected(b.port)  # still accepted during the delay
        check_eq(http(mp, "/healthz").status, 200, "/healthz during the delay")
        res = c.expect_closed(15)
        check(res, "client not closed after the delay")
        late.expect_closed(5)
        check_eq(b.proc.wait(15), 0, "exit code")


@case(ringmq_only=ONLY)
def tls_handshake_failures_by_cause():
    import ssl
    import warnings
    import certs
    f = certs.CertFactory()
    root = f.ca("/CN=Metrics Test Root", name="m-root")
    server = f.server(root, name="m-srv")
    other = f.ca("/CN=Metrics Other Root", name="m-other")
    stranger = f.client("/CN=stranger", other, name="m-stranger")
    mport, port, xport = rq.free_port(), rq.free_port(), rq.free_port()
    y = rq.broker_yaml(port=port, extra_spec={"diagnostics": {"metrics": {
        "prometheusPort": mport}}})
    tls = "tls: {mode: Manual, manual: {secretRef: server-cert}}"
    y = y.replace("bindAddress: 127.0.0.1", "bindAddress: 127.0.0.1\n    " + tls, 1)
    # a second port where the only method is X509: client certificates from root required
    y += ("---\napiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\n"
          "metadata: {name: x509-port}\nspec:\n  ports:\n  - port: %d\n    bindAddress: "
          "127.0.0.1\n    authenticationRef: x509\n    %s\n"
          "---\napiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\n"
          "metadata: {name: x509}\nspec:\n  authenticationMethods:\n  - method: X509\n"
          "    x509Settings: {trustedClientCaCert: client-ca}\n" % (xport, tls))
    y += certs.configmap_yaml("client-ca", {"ca.pem": root.pem})
    b = rq.start_broker(y, files={"secrets/server-cert/tls.crt": server.chain_pem,
                                  "secrets/server-cert/tls.key": server.key_pem})
    causes = ("certificate", "version", "cipher", "protocol", "alert", "other")

    def counts():
        s = scrape(mport)
        return {c: val(s, "ringmq_tls_handshake_failures_total", cause=c) for c in causes}
    with b:
        c0 = counts()
        # not TLS at all
        s = socket.create_connection((rq.HOST, port), timeout=5)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        check_eq(s.recv(100), b"", "a plain-text peer is closed")
        s.close()
        deadline = time.monotonic() + 5
        while counts()["protocol"] == c0["protocol"] and time.monotonic() < deadline:
            time.sleep(0.05)
        check_eq(counts()["protocol"] - c0["protocol"], 1, "protocol failures")
        # a client that offers TLS 1.0 only (the broker takes 1.2 and 1.3)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        except (ValueError, ssl.SSLError) as e:
            raise rq.Skip("this Python/OpenSSL cannot offer TLS 1.0: %s" % e)
        c1 = counts()
        try:
            ctx.wrap_socket(socket.create_connection((rq.HOST, port), timeout=5),
                            server_hostname="localhost").close()
        except (ssl.SSLError, OSError):
            pass
        deadline = time.monotonic() + 5
        while counts() == c1 and time.monotonic() < deadline:
            time.sleep(0.05)
        c2 = counts()
        check_eq({k: c2[k] - c1[k] for k in causes if c2[k] != c1[k]}, {"version": 1},
                 "failures of a TLS 1.0 client")

        def failed_handshake(p, ctx, what):
            before = counts()
            try:
                c = ctx.wrap_socket(socket.create_connection((rq.HOST, p), timeout=5),
                                    server_hostname="localhost")
                c.sendall(b"\x10\x00")  # TLS 1.3: a refused client certificate shows here
                c.recv(10)
                c.close()
            except (ssl.SSLError, OSError):
                pass
            deadline = time.monotonic() + 5
            while counts() == before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)  # nothing more comes
            after = counts()
            return {k: after[k] - before[k] for k in causes if after[k] != before[k]}
        # the client does not trust the broker's certificate: it ends with an alert (TLS 1.3:
        # sent in the clear, where wolfSSL reports a parse error; counted as protocol before)
        for v in ("1.3", "1.2"):
            check_eq(failed_handshake(port, rq.tls_context(cafile=other.cert, version=v),
                                      "distrust"),
                     {"alert": 1}, "failures of a TLS %s client that distrusts the server" % v)
        # the X509 port: a client certificate from an untrusted CA, and none at all
        check_eq(failed_handshake(xport, rq.tls_context(cafile=root.cert, cert=stranger.cert,
                                                        key=stranger.key), "stranger"),
                 {"certificate": 1}, "failures of an untrusted client certificate")
        check_eq(failed_handshake(xport, rq.tls_context(cafile=root.cert), "no cert"),
                 {"certificate": 1}, "failures without a client certificate")
        c2 = counts()
        # a good client still gets through, and is no failure
        ok = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ok.check_hostname, ok.verify_mode = False, ssl.CERT_NONE
        c = rq.RawClient(port, tls=ok)
        check_eq(c.connect(client_id=rq.uniq("tls")).rc, 0, "CONNACK over TLS")
        c.disconnect()
        check_eq(counts(), c2, "failures after a good handshake")


@case(ringmq_only=ONLY)
def authentication_counters_and_latency():
    """Custom authentication: successes and deny (a bad password; an unreachable server, which
    makes the only method not relevant, so the chain denies with 0x87) move AIO's counters by
    exactly that, failures (no verdict: 0x88/0x89) not at all; the latency histogram, the auth
    server requests by status and the cache misses count the same CONNECTs. Then the server
    answers 0x88 (a failure, 4xx), HTTP 500 (Custom not relevant: deny 0x87, 5xx) and a pass
    it allows to cache (one request, one cache hit)."""
    import authsrv
    import certs
    password = "m3trics-pw"
    srv = authsrv.AuthServer(certs.CertFactory(), {"alice": authsrv.user(password)},
                             ca_subject="/CN=Metrics Auth CA", mode="users")
    mport, ok_port, down_port, dead = (rq.free_port() for _ in range(4))
    y = ("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\nmetadata: {name: broker}\n"
         "spec:\n  diagnostics: {metrics: {prometheusPort: %d}}\n  ringmq:\n"
         "    connectTimeoutSeconds: 10\n    auth: {requestTimeoutSeconds: 5}\n---\n"
         "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\n"
         "metadata: {name: listeners}\nspec:\n  ports:\n"
         "  - {port: %d, bindAddress: 127.0.0.1, authenticationRef: allow}\n"
         "  - {port: %d, bindAddress: 127.0.0.1, authenticationRef: down}\n"
         % (mport, ok_port, down_port))
    y += authsrv.authn("allow", authsrv.custom_method(srv.url))
    y += authsrv.authn("down", authsrv.custom_method("https://127.0.0.1:%d" % dead))
    y += srv.ca_configmap()
    b = rq.start_broker(y)
    with b:
        check(rq.port_open(down_port, 5.0), "second port not listening")
        s0 = scrape(mport)
        for _ in range(2):
            c = rq.RawClient(ok_port, timeout=10)
            check_eq(c.connect(client_id=rq.uniq("a"), username="alice", password=password).rc,
                     0, "CONNACK with the right password")
            c.disconnect()
        c = rq.RawClient(ok_port, timeout=10)
        check_eq(c.connect(username="alice", password="wrong").rc, 0x86, "bad password")
        c.close()
        c = rq.RawClient(down_port, timeout=10)
        check_eq(c.connect(username="alice", password=password).rc, 0x87, "auth server down")
        c.close()
        s1 = scrape(mport)

        def d(name, **labels):
            return val(s1, name, **labels) - val(s0, name, **labels)
        check_eq(d("aio_broker_authentication_successes"), 2, "authentication_successes")
        check_eq(d("aio_broker_authentication_deny"), 2, "authentication_deny")
        check_eq(d("aio_broker_authentication_failures"), 0, "authentication_failures")
        h = "ringmq_auth_request_duration_seconds_count"
        check_eq(val(s1, h, method="Custom", outcome="allow"), 2, "latency: allowed")
        check_eq(val(s1, h, method="Custom", outcome="deny"), 1, "latency: denied by Custom")
        check_eq(val(s1, h, method="none", outcome="deny"), 1, "latency: no method decided")
        check(val(s1, "ringmq_auth_request_duration_seconds_sum", method="Custom",
                  outcome="allow") > 0, "latency sum")
        req = "ringmq_auth_server_requests_total"
        check_eq(d(req, server="custom", status="2xx"), 2, "auth server 2xx")
        check_eq(d(req, server="custom", status="4xx"), 1, "auth server 4xx (bad password)")
        check_eq(d(req, server="custom", status="error"), 1, "auth server unreachable")
        check_eq(d("ringmq_auth_cache_misses_total"), 4, "cache misses")
        check_eq(d("ringmq_auth_cache_hits_total"), 0, "cache hits (the server said no caching)")

        # the auth server says it cannot decide (0x88 Server unavailable): a failure
        srv.set_mode("deny:136")
        c = rq.RawClient(ok_port, timeout=10)
        check_eq(c.connect(username="alice", password=password).rc, 0x88, "deny:136")
        c.close()
        # the auth server fails (HTTP 500): Custom is not relevant, the chain denies (0x87)
        srv.set_mode("status:500")
        c = rq.RawClient(ok_port, timeout=10)
        check_eq(c.connect(username="alice", password=password).rc, 0x87, "HTTP 500")
        c.close()
        # a cached pass: the second CONNECT is answered from the cache (no request)
        srv.set_mode("users,cache:60")
        for _ in range(2):
            c = rq.RawClient(ok_port, timeout=10)
            check_eq(c.connect(client_id=rq.uniq("a"), username="alice", password=password).rc,
                     0, "CONNACK (cache:60)")
            c.disconnect()
        s2 = scrape(mport)

        def d2(name, **labels):  # a histogram series appears with its first observation
            return val(s2, name, **labels) - s1.get((name, frozenset(labels.items())), 0)
        check_eq(d2("aio_broker_authentication_failures"), 1, "authentication_failures")
        check_eq(d2("aio_broker_authentication_deny"), 1, "authentication_deny (HTTP 500)")
        check_eq(d2("aio_broker_authentication_successes"), 2, "successes (one from the cache)")
        check_eq(d2(req, server="custom", status="4xx"), 1, "auth server 4xx (deny:136)")
        check_eq(d2(req, server="custom", status="5xx"), 1, "auth server 5xx")
        check_eq(d2(req, server="custom", status="2xx"), 1, "auth server 2xx (one request)")
        check_eq(d2("ringmq_auth_cache_misses_total"), 3, "cache misses")
        check_eq(d2("ringmq_auth_cache_hits_total"), 1, "cache hits")
        check_eq(d2(h, method="Custom", outcome="failure"), 1, "latency: failure")
        check_eq(d2(h, method="none", outcome="deny"), 1, "latency: no method decided (500)")
        check_eq(d2(h, method="Custom", outcome="allow"), 2, "latency: allowed (cached too)")


@case(ringmq_only=ONLY)
def authorization_counters():
    """A port with Custom authentication and a BrokerAuthorization: each PUBLISH its rules allow
    moves aio_broker_authorization_allow by one, and each operation they deny (a PUBLISH, a
    SUBSCRIBE filter, a CONNECT) moves aio_broker_authorization_deny by one."""
    import authsrv
    import certs
    password = "authz-m3trics"
    srv = authsrv.AuthServer(certs.CertFactory(), {u: authsrv.user(password)
                                                   for u in ("alice", "carol")},
                             ca_subject="/CN=Metrics Authz CA")
    mport, port = rq.free_port(), rq.free_port()
    hdr = "---\napiVersion: mqttbroker.iotoperations.azure.com/v1\n"
    y = ("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\n"
         "metadata: {name: broker}\nspec:\n  diagnostics: {metrics: {prometheusPort: %d}}\n"
         "  ringmq: {sysTopics: false}\n" % mport)
    y += hdr + ("kind: BrokerListener\nmetadata: {name: listeners}\nspec:\n  ports:\n"
                "  - {port: %d, bindAddress: 127.0.0.1, authenticationRef: custom, "
                "authorizationRef: rules}\n" % port)
    y += authsrv.authn("custom", authsrv.custom_method(srv.url)) + srv.ca_configmap()
    y += hdr + ("kind: BrokerAuthorization\nmetadata: {name: rules}\nspec:\n"
                "  authorizationPolicies:\n    rules:\n"
                "    - principals: {usernames: [alice]}\n      brokerResources:\n"
                "      - method: Connect\n      - {method: Publish, topics: [\"ok/#\"]}\n"
                "      - {method: Subscribe, topics: [\"ok/#\"]}\n")
    b = rq.start_broker(y)
    with b:
        c = rq.connected(port, username="alice", password=password)
        c.subscribe("ok/#", qos=1)

        def step(what, fn, allow, deny):
            s0 = scrape(mport)
            fn()
            s1 = scrape(mport)
            got = tuple(val(s1, "aio_broker_authorization_" + k)
                        - val(s0, "aio_broker_authorization_" + k) for k in ("allow", "deny"))
            check_eq(got, (allow, deny), what + ": (allow, deny) moved by")

        step("2 allowed PUBLISHes", lambda: [check_eq(c.publish("ok/%d" % i, b"x", qos=1).rc, 0,
                                                      "PUBACK") for i in range(2)], 2, 0)
        check_eq(len(c.collect(timeout=5, count=2)), 2, "allowed messages delivered")
        step("a denied PUBLISH", lambda: check_eq(c.publish("no/1", b"x", qos=1).rc, 0x87,
                                                  "PUBACK"), 0, 1)
        step("a denied SUBSCRIBE filter",
             lambda: check_eq(c.subscribe("no/#", qos=1).codes, [0x87], "SUBACK"), 0, 1)

        def denied_connect():
            d = rq.RawClient(port)
            check_eq(d.connect(username="carol", password=password).rc, 0x87,
                     "CONNACK of a client no rule names")
            d.close()
        step("a denied CONNECT", denied_connect, 0, 1)
        c.disconnect()



@case(ringmq_only=ONLY)
def kubernetes_requests_and_sat_cache():
    """ServiceAccountToken: the requests to the Kubernetes API (TokenReviews, ServiceAccount
    reads) counted by status class exactly as the test API server counts them; a token seen
    before is a cache hit without a request; with RBAC missing (403) the requests are 4xx and
    the CONNECT an authentication failure (0x88)."""
    import shutil
    import kube_api
    d = tempfile.mkdtemp(prefix="rq-sat-metrics-")
    rq.on_cleanup(lambda: shutil.rmtree(d, ignore_errors=True))
    api = kube_api.KubeAPI(d, require_bearer="broker-token")
    rq.on_cleanup(api.stop)
    api.add_sa("ns1", "dev")
    kc = api.write_kubeconfig(os.path.join(d, "kubeconfig"), token="broker-token")
    mport, port = rq.free_port(), rq.free_port()
    y = ("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\n"
         "metadata: {name: broker}\nspec:\n  diagnostics: {metrics: {prometheusPort: %d}}\n"
         "  ringmq:\n    sysTopics: false\n    connectTimeoutSeconds: 10\n"
         "    auth: {requestTimeoutSeconds: 4}\n"
         "    kubernetes: {serviceAccountDir: \"%s\", kubeconfig: \"%s\"}\n"
         "---\napiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\n"
         "metadata: {name: listeners}\nspec:\n  ports:\n"
         "  - {port: %d, bindAddress: 127.0.0.1, authenticationRef: sat}\n"
         "---\napiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\n"
         "metadata: {name: sat}\nspec:\n  authenticationMethods:\n"
         "  - method: ServiceAccountToken\n    serviceAccountTokenSettings:\n"
         "      audiences: [aio-internal]\n"
         % (mport, os.path.join(d, "no-such-dir"), kc, port))
    b = rq.start_broker(y)

    def sat(token):
        c = rq.RawClient(port, timeout=15)
        ack = c.connect(client_id=rq.uniq("sat"), props={
            "authentication_method": "K8S-SAT", "authentication_data": token.encode()})
        c.close()
        return ack.rc

    def requests():
        return sum(api.count(k) for k in ("tokenreview", "sa"))
    req = "ringmq_auth_server_requests_total"
    with b:
        check(rq.port_open(port, 5.0), "SAT port listening")
        s0, r0 = scrape(mport), requests()
        token = api.token("ns1", "dev", ["aio-internal"])
        check_eq(sat(token), 0, "CONNACK with a good token")
        check_eq(sat(token), 0, "CONNACK with the same token again")
        s1, r1 = scrape(mport), requests()

        def d(a, b_, name, **labels):
            return val(b_, name, **labels) - val(a, name, **labels)
        check(r1 - r0 >= 1, "the test API server saw no request")
        check_eq(d(s0, s1, req, server="kubernetes", status="2xx"), r1 - r0,
                 "kubernetes 2xx = requests the API server answered")
        check_eq((d(s0, s1, "ringmq_auth_cache_misses_total"),
                  d(s0, s1, "ringmq_auth_cache_hits_total")), (1, 1), "cache (misses, hits)")
        check_eq(d(s0, s1, "aio_broker_authentication_successes"), 2, "successes")
        api.mode = "403"
        check_eq(sat(api.token("ns1", "dev", ["aio-internal"])), 0x88, "RBAC missing")
        s2, r2 = scrape(mport), requests()
        check(r2 - r1 >= 1, "the test API server saw no request with RBAC missing")
        check_eq(d(s1, s2, req, server="kubernetes", status="4xx"), r2 - r1, "kubernetes 4xx")
        check_eq(d(s1, s2, req, server="kubernetes", status="2xx"), 0, "kubernetes 2xx")
        check_eq(d(s1, s2, "aio_broker_authentication_failures"), 1, "failures")
        check_eq(d(s0, s2, req, server="custom", status="2xx"), 0, "no Custom requests")

def read_until(c, done, timeout):
    """PUBLISHes to c until done(p) is true or timeout seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            p = c.wait_for(rq.PUBLISH, max(0.05, deadline - time.monotonic()))
        except AssertionError:
            return
        if done(p):
            return


@case(ringmq_only=ONLY)
def sys_topics_arrive_and_hash_does_not_match():
    b, mp = start(ringmq={"sysTopicsIntervalSeconds": 1})
    with b:
        allc = rq.connected(b.port)
        allc.subscribe("#", qos=0)
        sysc = rq.connected(b.port)
        sysc.subscribe("$SYS/broker/#", qos=0)
        want = {"version", "uptime", "clients/connected", "clients/total", "messages/received",
                "messages/sent", "bytes/received", "bytes/sent", "subscriptions/count",
                "retained messages/count"}
        got = {}

        def take(p):
            got[p.topic[len("$SYS/broker/"):]] = (p.payload.decode(), p.retain)
            return want <= set(got)
        read_until(sysc, take, 10)
        check(want <= set(got), "missing $SYS topics: %s" % sorted(want - set(got)))
        check(got["version"][0].startswith("ringmq version "), "version %r" % (got["version"],))
        check(re.fullmatch(r"\d+ seconds", got["uptime"][0]), "uptime %r" % (got["uptime"],))
        # values move: a publish, then messages/received counts it
        pub = rq.connected(b.port)
        for _ in range(3):
            pub.publish("plain/t", b"v", qos=1)
        seen = []

        def counted(p):
            if p.topic == "$SYS/broker/messages/received":
                seen.append(int(p.payload))
            return seen and seen[-1] >= 3
        read_until(sysc, counted, 10)
        check(seen and seen[-1] >= 3, "$SYS/broker/messages/received: %s" % seen)
        # '#' got the plain messages only, never $SYS
        topics = {p.topic for p in allc.collect(timeout=1.5)}
        check(all(not t.startswith("$") for t in topics), "'#' matched %s" % sorted(topics))
        check("plain/t" in topics, "'#' did not get plain/t: %s" % sorted(topics))
        # retained: a late subscriber gets the values at once, with the retain flag
        late = rq.connected(b.port)
        late.subscribe("$SYS/broker/version", qos=0)
        p = late.recv_publish(timeout=3)
        check(p.retain and p.payload.startswith(b"ringmq version"), "late subscriber: %r" % p)
        # clients still cannot publish under $SYS (v5 QoS 1: 0x87 Not authorized)
        ack = pub.publish("$SYS/broker/version", b"fake", qos=1)
        check_eq(ack.rc, 0x87, "PUBACK reason for a PUBLISH to $SYS")
        for c in (allc, sysc, pub, late):
            c.disconnect()


@case(ringmq_only=ONLY)
def sys_topics_off():
    b, mp = start(ringmq={"sysTopics": False, "sysTopicsIntervalSeconds": 1})
    with b:
        c = rq.connected(b.port)
        c.subscribe("$SYS/#", qos=0)
        c.expect_nothing(2.5, "$SYS message with sysTopics false")
        c.disconnect()


def notify_socket():
    d = tempfile.mkdtemp(prefix="rqnotify-")
    path = os.path.join(d, "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    rq.on_cleanup(lambda: (s.close(), os.unlink(path), os.rmdir(d)))
    return s, path


def wait_notify(s, want, timeout=10.0):
    """Datagrams until one holds the line `want`; returns all lines seen."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            break
        seen += msg.split("\n")
        if want in msg.split("\n"):
            return seen
    raise AssertionError("no %s from the broker within %.0fs; got %r" % (want, timeout, seen))


@case(ringmq_only=ONLY)
def sd_notify_ready_watchdog_stopping():
    s, path = notify_socket()
    b, mp = start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000",
                       "RINGMQ_TEST_STALL_MS": "9000"})
    with b:
        wait_notify(s, "READY=1")
        check(rq.port_open(b.port), "READY=1 before the listener accepts")
        wait_notify(s, "WATCHDOG=1")
        wait_notify(s, "WATCHDOG=1")
        # a stuck shard: no more WATCHDOG=1 while /healthz fails
        b.signal(signal.SIGUSR2)
        wait_http(mp, "/healthz", 503, timeout=15)
        s.settimeout(0.01)
        try:  # what was sent before the shard counted as stuck
            while True:
                s.recv(4096)
        except socket.timeout:
            pass
        s.settimeout(1.0)
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            msg = ""
        if "WATCHDOG=1" in msg:
            check_eq(http(mp, "/healthz").status, 200, "WATCHDOG=1 sent while /healthz fails")
        wait_http(mp, "/healthz", 200, timeout=20)
        wait_notify(s, "WATCHDOG=1")
        b.signal(signal.SIGTERM)
        wait_notify(s, "STOPPING=1")
        check_eq(b.proc.wait(10), 0, "exit code")



@case(ringmq_only=ONLY)
def sd_notify_abstract_socket_and_foreign_watchdog():
    """NOTIFY_SOCKET may name an abstract socket ('@...', as systemd does for some units);
    WATCHDOG_USEC meant for another process (WATCHDOG_PID not ours) arms no watchdog."""
    name = "ringmq-notify-%d-%s" % (os.getpid(), rq.uniq("n"))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    rq.on_cleanup(s.close)
    b, mp = start(env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "200000",
                       "WATCHDOG_PID": "1"})
    with b:
        seen = wait_notify(s, "READY=1")
        check(rq.port_open(b.port), "READY=1 before the listener accepts")
        s.settimeout(1.5)
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            msg = ""
        check("WATCHDOG=1" not in seen + msg.split("\n"),
              "WATCHDOG=1 for a watchdog of another process: %r" % msg)
        b.signal(signal.SIGTERM)
        wait_notify(s, "STOPPING=1")
        check_eq(b.proc.wait(10), 0, "exit code")

if __name__ == "__main__":
    rq.run(timeout=240)
