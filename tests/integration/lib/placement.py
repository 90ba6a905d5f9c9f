"""placement: helpers of the connection placement tests (29-placement*.py): a broker with its
metrics endpoint, where the log says a client is (its CONNECT, its moves), clients put on a
chosen shard, publishers driven until they move, subscribers that read in a thread, and the
test hook that stalls shard 0 to hold a move in flight (RINGMQ_TEST_STALL_MS + SIGUSR2)."""

import os
import re
import signal
import socket
import threading
import time
import urllib.request

import fixtures
import rqtest as rq
from rqtest import check, check_eq

ONLY = "connection placement is a ringmq feature"
MOVE_TIMEOUT = 15.0   # generous bound for a move (two windows of 256 messages or 0.5 s each)


# ---- broker ------------------------------------------------------------------------------------

def start(ringmq=None, threads=2, ports=None, extra_yaml="", clients=None, env=None):
    """A broker with its metrics endpoint (b.mport) and the given listener ports
    ({name: "YAML flow mapping without the port"}; default one plain MQTT port "tcp"). b.ports
    maps the names to port numbers; b.port is the first."""
    ports = ports or {"tcp": "bindAddress: 127.0.0.1, protocol: Mqtt"}
    if os.environ.get("RQ_PLACEMENT_OFF"):  # to check that the cases claiming a move fail
        ringmq = rq._merge(ringmq or {}, {"placement": {"enabled": False}})
    nums = {k: rq.free_port() for k in ports}
    mport = rq.free_port()
    extra = {"diagnostics": {"logs": {"level": "debug"}, "metrics": {"prometheusPort": mport}}}
    cl = rq._merge(rq.STD_CLIENTS, {"subscriberQueueLimit": {"length": 10000,
                                                             "strategy": "None"}})
    y = rq.broker_yaml(port=nums[next(iter(nums))], clients=rq._merge(cl, clients),
                       ringmq=rq._merge(rq.STD_RINGMQ, ringmq), extra_spec=extra)
    head = y[:y.index("---\napiVersion: mqttbroker.iotoperations.azure.com/v1\n"
                      "kind: BrokerListener")] + extra_yaml
    with rq.env_applied(env):
        b = fixtures.start_listening(head + listeners_yaml(ports, nums), nums, threads=threads)
    b.port = nums[next(iter(nums))]
    b.ports = nums
    b.mport = mport
    b.head = head
    b.threads = threads
    return b


def listeners_yaml(ports, nums):
    y = ("---\napiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\n"
         "metadata: {name: listeners}\nspec:\n  ports:\n")
    for k, spec in ports.items():
        y += "  - {port: %d, %s}\n" % (nums[k], spec)
    return y


def metrics(b):
    """({shard: TCP connections}, {shard: clients moved in}) from /metrics."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.mport, timeout=5) as r:
        text = r.read().decode()
    conns = {int(s): int(v) for s, v in
             re.findall(r'^ringmq_shard_connections\{shard="(\d+)"\} (\d+)', text, re.M)}
    moved = {int(s): int(v) for s, v in
             re.findall(r'^ringmq_shard_clients_moved_in_total\{shard="(\d+)"\} (\d+)', text,
                        re.M)}
    check(conns and moved, "per-shard gauges missing from /metrics")
    return conns, moved


def shard_of(b, cid, timeout=3.0):
    """The shard the log last put cid on (its CONNECT or a move), waited for up to timeout."""
    rx = re.compile(r'\[shard (\d+)\][^\n]*client="%s" \(session\) (?:connected|moved here)'
                    % re.escape(cid))
    deadline = time.monotonic() + timeout
    while True:
        found = rx.findall(b.log())
        if found or time.monotonic() > deadline:
            check(found, "no log line says where %s is" % cid)
            return int(found[-1])
        time.sleep(0.02)


def moves_of(b, cid):
    """[(from, to)] of every move of cid the log shows."""
    rx = r'\[shard (\d+)\][^\n]*client="%s" \(session\) moved here from shard (\d+)' % \
        re.escape(cid)
    return [(int(f), int(t)) for t, f in re.findall(rx, b.log())]


def on_shard(b, want, make, tries=40):
    """make() connects a client (with .client_id); returns the first one the broker put on a
    shard in want (a set), disconnecting the others (DISCONNECT 0x00: no will) and ending
    their sessions (v5: expiry 0 at DISCONNECT; 3.1.1: a clean-session CONNECT)."""
    for _ in range(tries):
        c = make()
        if shard_of(b, c.client_id) in want:
            return c
        port = c.sock.getpeername()[1]
        if c.version == 5:
            c.disconnect(props={"session_expiry_interval": 0})
        else:
            c.disconnect()
            rq.connected(port, client_id=c.client_id, version=4).disconnect()
    raise AssertionError("no connection landed on shards %r in %d tries" % (sorted(want), tries))


def plain(b, port="tcp", version=5, **kw):
    return lambda: rq.connected(b.ports[port], client_id=rq.uniq("p"), version=version, **kw)


def subscriber(b, topic, qos=1, port="tcp", version=5):
    """A subscriber of topic and its shard."""
    s = rq.connected(b.ports[port], client_id=rq.uniq("sub"), version=version)
    s.subscribe(topic, qos=qos)
    return s, shard_of(b, s.client_id)


def elsewhere(b, shard):
    return set(range(b.threads)) - {shard}


BURST, BURST_GAP = 32, 0.02  # about 1600 msg/s: a target flooded faster counts as busy


def drive_until_moved(b, c, topic, timeout=MOVE_TIMEOUT, qos=0):
    """c publishes to topic (subscribers elsewhere) in bursts until the log says it moved;
    returns (from, to). A broker that never moves it fails the case."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        for _ in range(BURST):
            c.publish(topic, b"drive-%d" % n, qos=qos, wait=False)
            n += 1
        mv = moves_of(b, c.client_id)
        if mv:
            return mv[-1]
        check(time.monotonic() < deadline, "%s did not move after %d messages in %.0f s"
              % (c.client_id, n, timeout))
        time.sleep(BURST_GAP)  # pacing (placement refuses a target busier than 50 %)


class Drain(threading.Thread):
    """Reads and discards everything a socket receives (a QoS 0 subscriber that never falls
    behind), until stopped or closed."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.stopped = threading.Event()
        self.bytes = 0
        self.start()
        rq.on_cleanup(self.stop)

    def run(self):
        self.c.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                data = self.c.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.bytes += len(data)

    def stop(self):
        self.stopped.set()
        self.join(2)


class Collector(threading.Thread):
    """A QoS 1 subscriber's reader: acknowledges and records (topic, payload, qos)."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.got = []
        self.error = None
        self.stopping = threading.Event()
        self.start()
        rq.on_cleanup(self.stopping.set)

    def run(self):
        try:
            while not self.stopping.is_set():
                p = self.c.recv_packet(0.2)
                if p is None:
                    continue
                check(p.type == rq.PUBLISH, "subscriber: unexpected %r" % p)
                self.c.ack(p)
                self.got.append((p.topic, p.payload, p.qos))
        except Exception as e:
            self.error = e



def traffic(c, topics, n=1280):
    """n QoS 0 messages over topics (round robin; 5 windows of the rule), paced as
    drive_until_moved does, then one QoS 1 whose PUBACK says the broker parsed them all (after
    a move: on the new shard, so the move is in the log by then)."""
    for i in range(n):
        c.publish(topics[i % len(topics)], b"x%d" % i, qos=0, wait=False)
        if i % BURST == BURST - 1:
            time.sleep(BURST_GAP)  # pacing
    ack = c.publish(topics[0], b"last", qos=1)
    check(ack.type == rq.PUBACK and ack.rc < 0x80, "%s: PUBACK %r" % (c.client_id, ack))


def drained_sub(b, topic, want=None, port="tcp"):
    """A QoS 0 subscriber of topic on a shard in want (any when None), read by a Drain."""
    s = on_shard(b, want if want is not None else set(range(b.threads)), plain(b, port))
    s.subscribe(topic, qos=0)
    s.drain = Drain(s)
    return s, shard_of(b, s.client_id)


def no_moves(b, cids, what):
    conns, moved = metrics(b)
    check_eq(sum(moved.values()), 0, "%s: ringmq_shard_clients_moved_in_total" % what)
    for cid in cids:
        check(not re.search(r'client="%s" \(session\) mov' % re.escape(cid), b.log()),
              "%s: %s moved" % (what, cid))



def pub_elsewhere(b, home, port="tcp", version=5, **kw):
    return on_shard(b, elsewhere(b, home), plain(b, port, version, **kw))


def wait_got(col, pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        found = [g for g in col.got if pred(g)]
        if found:
            return found
        check(col.error is None, "subscriber: %r" % col.error)
        check(time.monotonic() < deadline, "%s: not received" % what)
        time.sleep(0.02)


def log_secs(b, rx):
    """Seconds of the day of every log line matching rx (its timestamp)."""
    return [int(h) * 3600 + int(m) * 60 + float(x) for h, m, x in
            re.findall(r"^\S+T(\d+):(\d+):([\d.]+)Z[^\n]*" + rx, b.log(), re.M)]


class Flood(threading.Thread):
    """Publishes QoS 0 to topic, paced like drive_until_moved, until stopped or the broker closes
    the connection (.closed)."""

    def __init__(self, c, topic):
        super().__init__(daemon=True)
        self.c, self.topic = c, topic
        self.closed = False
        self.stopping = threading.Event()
        self.start()
        rq.on_cleanup(self.stopping.set)

    def run(self):
        n = 0
        wire = [rq.enc_publish(self.c.version, self.topic, b"f%d" % k) for k in range(BURST)]
        try:
            while not self.stopping.is_set():
                self.c.sock.sendall(b"".join(wire))
                n += 1
                time.sleep(BURST_GAP)  # pacing
        except OSError:
            self.closed = True


def wait_moving(b, mark, count=1, timeout=MOVE_TIMEOUT):
    deadline = time.monotonic() + timeout
    while len(re.findall(r"moving to shard", b.log_since(mark))) < count:
        check(time.monotonic() < deadline, "fewer than %d moves began in %.0f s" % (count, timeout))
        time.sleep(0.01)


def reload_listeners(b, names):
    """Rewrites the broker's file with only the ports in names, SIGHUP, waits for the new
    generation."""
    path = os.path.join(b.workdir, "ringmq.yaml")
    with open(path + ".tmp", "w") as f:
        f.write(b.head + listeners_yaml({k: v for k, v in PORTS2.items() if k in names},
                                        b.ports))
    os.replace(path + ".tmp", path)
    mark = b.log_mark()
    b.signal(signal.SIGHUP)
    check(b.wait_log(r"reload: generation \d+ in use", mark, timeout=10),
          "the reload applied; log:\n%s" % b.log_since(mark)[-2000:])


# Four publishers flooding one shard can keep it busier than maxTargetBusyPercent (50) on a
# loaded machine (sanitizer build): moves would wait; races with moves lift the limit.
NOT_BUSY = {"placement": {"maxTargetBusyPercent": 100}}
PORTS2 = {"keep": "bindAddress: 127.0.0.1, protocol: Mqtt",
          "gone": "bindAddress: 127.0.0.1, protocol: Mqtt"}



metric = rq.metric


def wait_gauges(b, want, what, timeout=10.0):
    """Polls /metrics until every sample in want has its value (per-shard connection gauges are
    set when a shard's loop turns: an idle shard's lags until its heartbeat)."""
    deadline = time.monotonic() + timeout
    while True:
        got = {k: metric(b, k) for k in want}
        conns = metrics(b)[0]
        if got == want:
            return conns
        check(time.monotonic() < deadline, "%s: gauges %r, want %r (connections per shard %r)"
              % (what, got, want, conns))
        time.sleep(0.1)


# ---- a move held in flight: its target shard stalled (test hook) --------------------------------
# RINGMQ_TEST_STALL_MS + SIGUSR2 stop shard 0's loop for that long. A publisher on shard 1 whose
# messages go to shard 0 decides to move during the stall: its record waits in shard 0's inbox,
# its session is `moving` until the stall ends. What happens meanwhile is then certain, not a
# race: a takeover CONNECT on shard 1 gets Server busy, a reload or SIGTERM finds it in flight.

STALL_MS = 2500
STALLED = NOT_BUSY  # shard 0 was busy just before the stall


def stalled_broker(ringmq=None, ports=None):
    return start(rq._merge(STALLED, ringmq), ports=ports,
                 env={"RINGMQ_TEST_STALL_MS": str(STALL_MS)})


def stalled_move(b, p, topic):
    """p (on shard 1) publishes sequence numbers to topic (its subscriber on shard 0): the first
    window of the rule, then SIGUSR2 stalls shard 0, then the messages that close the second
    window: the move begins during the stall. Returns the number of messages sent."""
    n = 0
    for n in range(480):
        p.publish(topic, b"%d" % n)
        if n % BURST == BURST - 1:
            time.sleep(BURST_GAP)  # pacing
    n += 1
    mark = b.log_mark()
    b.signal(signal.SIGUSR2)
    fixtures.expect_log(b, mark, r"shard 0: stalling", "shard 0 stalls")
    p.send_raw(b"".join(rq.enc_publish(p.version, topic, b"%d" % k) for k in range(n, n + 64)))
    n += 64
    fixtures.expect_log(b, mark, r'\[shard 1\][^\n]*client="%s" \(session\) moving to shard 0'
                        % re.escape(p.client_id), "the move began during the stall",
                        timeout=STALL_MS / 2000)
    check(not moves_of(b, p.client_id), "%s moved before the stall ended" % p.client_id)
    return n


def socket_on_shard1(b, nudge, tries=20):
    """A TCP connection (nothing sent yet) that shard 1 accepted. Shard 0 is stalled and accepts
    nothing; shard 1's connections gauge is set at the start of each loop turn, so nudge (a
    client on shard 1) pings to make it turn after the accept."""
    for _ in range(tries):
        before = metrics(b)[0][1]
        c = rq.RawClient(b.port)
        for _ in range(5):
            nudge.ping(5)
            if metrics(b)[0][1] > before:
                return c
        c.close()  # queued for the stalled shard 0, which will see it closed
    raise AssertionError("no connection accepted by shard 1 in %d tries" % tries)


def wait_in_order(col, topic, n, what):
    """The subscriber got the publisher's messages 0..n-1, in order."""
    deadline = time.monotonic() + 15
    while len([g for g in col.got if g[0] == topic]) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    got = [int(g[1]) for g in col.got if g[0] == topic]
    check_eq(got, list(range(n)), "%s: the publisher's messages across the move" % what)
