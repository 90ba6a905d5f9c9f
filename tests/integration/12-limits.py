#!/usr/bin/python3
"""12 limits: the configured limits of Broker spec.advanced.clients and spec.ringmq as clients
see them: maxConnections, maxTopicLevels, subscriberQueueLimit (None / DropOldest),
maxReceiveMaximum, maxInflight, maxPacketSizeBytes, maxTopicAliases, maxMessageExpirySeconds,
threads, and the descriptor limit (RLIMIT_NOFILE, at start and lowered while running): accepting
backs off instead of spinning, log lines are rate-limited, clients connect again once
descriptors are free. Each case starts its own broker with the limit under test."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402


def broker(clients=None, ringmq=None, threads=2):
    return rq.start_broker(rq.std_yaml(clients=clients, ringmq=ringmq), threads=threads)


@case(ringmq_only="CONNACK 0x97 / rc 3 at maxConnections",
      mosquitto_differs="closes the socket without CONNACK")
def max_connections():
    with broker(ringmq={"maxConnections": 3}) as b:
        time.sleep(0.2)  # the start-up probe connection is gone
        held = [rq.connected(b.port) for _ in range(3)]
        c = rq.RawClient(b.port)
        ack = c.connect(version=5, client_id=rq.uniq("over"))
        check_eq("0x%02x" % ack.rc, "0x97", "v5 CONNACK reason above maxConnections (Quota)")
        check(c.expect_closed(3), "refused v5 connection not closed")
        c = rq.RawClient(b.port, version=4)
        ack = c.connect(version=4, client_id=rq.uniq("over3"))
        check_eq(ack.rc, 3, "3.1.1 CONNACK return code above maxConnections")
        check(c.expect_closed(3), "refused 3.1.1 connection not closed")
        check(b.wait_log(r"maxConnections|quota", 0), "no log line about the refusal")
        held.pop().disconnect()
        time.sleep(0.3)
        rq.connected(b.port).disconnect()


@case(ringmq_only="maxTopicLevels")
def max_topic_levels():
    with broker(ringmq={"maxTopicLevels": 4}) as b:
        for v, bad_code in ((5, 0x8F), (4, 0x80)):
            c = rq.connected(b.port, version=v)
            ack = c.subscribe([("a/b/c/d", 1), ("a/b/c/d/e", 1), ("a/b/c/#", 1), ("+/+/+/+/#", 1)])
            check_eq(ack.codes, [1, bad_code, 1, bad_code],
                     "v%d SUBACK codes for filters of 4, 5, 4, 5 levels" % v)
            c.publish("a/b/c/d", b"ok", qos=1)
            c.send_raw(rq.enc_publish(v, "a/b/c/d/e", b"deep"))
            res = c.expect_closed(3)
            check(res, "v%d PUBLISH to a 5-level topic: not closed" % v)
            if v == 5:
                check_eq(res.rc, 0x90, "DISCONNECT reason for a topic above maxTopicLevels")
            else:
                check(res.rc is None, "3.1.1 got a DISCONNECT packet")
        rq.check_serves(b.port)


def queue_limit(strategy):
    length = 5
    with broker(clients={"subscriberQueueLimit": {"length": length, "strategy": strategy}}) as b:
        cid, t = rq.uniq("ql"), rq.uniq("t")
        props = {"session_expiry_interval": 60}
        s = rq.connected(b.port, cid, props=props)
        s.subscribe([(t, 1)])
        s.disconnect()
        p = rq.connected(b.port)
        n = 12
        for i in range(n):
            p.publish(t, b"%d" % i, qos=1)
        s = rq.connected(b.port, cid, clean=False, props=props)
        got = [int(m.payload) for m in s.collect(0.8)]
        check(1 <= len(got) <= length,
              "offline subscriber got %d messages with queue length %d: %r" % (len(got), length,
                                                                               got))
        return got


@case(ringmq_only="subscriberQueueLimit strategy None",
      mosquitto_differs="max_queued_messages does not count the in-flight window")
def queue_limit_none():
    got = queue_limit("None")
    check_eq(got, [0, 1, 2, 3, 4], "strategy None keeps the first messages")


@case(ringmq_only="subscriberQueueLimit strategy DropOldest")
def queue_limit_drop_oldest():
    got = queue_limit("DropOldest")
    check_eq(got, [7, 8, 9, 10, 11], "strategy DropOldest keeps the newest messages")


@case(ringmq_only="maxReceiveMaximum caps the client's Receive Maximum")
def max_receive_maximum():
    with broker(clients={"maxReceiveMaximum": 4}) as b:
        t = rq.uniq("rm")
        s = rq.connected(b.port, props={"receive_maximum": 50})
        s.subscribe([(t, 1)])
        p = rq.connected(b.port)
        for i in range(10):
            p.publish(t, b"%d" % i, qos=1)
        first = s.collect(0.8, ack=False)
        check_eq(len(first), 4, "in flight with client Receive Maximum 50, maxReceiveMaximum 4")
        for m in first:
            s.ack(m)
        rest = s.collect(0.8)
        check_eq(len(first) + len(rest), 10, "all messages after acknowledging")


@case(mosquitto_differs="does not enforce its Receive Maximum on incoming QoS 2")
def max_inflight():
    with broker(ringmq={"maxInflight": 5}) as b:
        c = rq.connected(b.port)
        check_eq(c.connack.props.get("receive_maximum"), 5, "CONNACK Receive Maximum")
        t = rq.uniq("mi")
        for i in range(5):
            c.send_raw(rq.enc_publish(5, t, b"x", qos=2, pid=i + 1))
        for i in range(5):
            c.wait_for(rq.PUBREC, 3)
        c.send_raw(rq.enc_ack(rq.PUBREL, 5, 1))
        c.wait_for(rq.PUBCOMP, 3)
        c.send_raw(rq.enc_publish(5, t, b"x", qos=2, pid=6))  # 5 in flight again: allowed
        c.wait_for(rq.PUBREC, 3)
        c.send_raw(rq.enc_publish(5, t, b"x", qos=2, pid=7))
        res = c.expect_closed(3)
        check(res, "6th unreleased QoS 2 PUBLISH: not closed")
        check_eq(res.rc, 0x93, "DISCONNECT reason (Receive Maximum exceeded)")


@case(mosquitto_differs="2.0.11 compares the remaining length, not the whole packet, with the limit")
def max_packet_size_exact():
    limit = 1000
    with broker(clients={"maxPacketSizeBytes": limit}) as b:
        c = rq.connected(b.port)
        check_eq(c.connack.props.get("maximum_packet_size"), limit, "CONNACK Maximum Packet Size")
        t = rq.uniq("mp")
        c.subscribe([(t, 1)], props=None)
        n = limit - len(rq.enc_publish(5, t, b"", qos=1, pid=1))
        while len(rq.enc_publish(5, t, b"x" * n, qos=1, pid=1)) > limit:
            n -= 1  # the remaining length field grows with the payload
        check_eq(len(rq.enc_publish(5, t, b"x" * n, qos=1, pid=1)), limit, "test packet size")
        c.publish(t, b"x" * n, qos=1)
        m = c.recv_publish(3)
        check_eq(len(m.payload), n, "payload of a packet of exactly the limit")
        c.send_raw(rq.enc_publish(5, t, b"x" * (n + 1), qos=1, pid=2))
        res = c.expect_closed(3)
        check(res, "packet 1 byte above maxPacketSizeBytes: not closed")
        check_eq(res.rc, 0x95, "DISCONNECT reason (Packet too large)")


@case
def max_topic_aliases():
    with broker(ringmq={"maxTopicAliases": 2}) as b:
        c = rq.connected(b.port)
        check_eq(c.connack.props.get("topic_alias_maximum"), 2, "CONNACK Topic Alias Maximum")
        t = rq.uniq("ta")
        c.subscribe([(t, 1)])
        c.publish(t, b"a", qos=1, props={"topic_alias": 2})
        c.publish("", b"b", qos=1, props={"topic_alias": 2})
        check_eq([(m.topic, m.payload) for m in c.collect(0.6, count=2)], [(t, b"a"), (t, b"b")],
                 "messages published with alias 2")
        c.send_raw(rq.enc_publish(5, t, b"c", props={"topic_alias": 3}))
        res = c.expect_closed(3)
        check(res, "alias 3 with Topic Alias Maximum 2: not closed")
        check_eq(res.rc, 0x94, "DISCONNECT reason (Topic Alias invalid)")


@case(ringmq_only="maxMessageExpirySeconds")
def max_message_expiry():
    with broker(clients={"maxMessageExpirySeconds": 5}) as b:
        t = rq.uniq("me")
        s = rq.connected(b.port)
        s.subscribe([(t, 1)])
        p = rq.connected(b.port)
        p.publish(t, b"x", qos=1, props={"message_expiry_interval": 1000})
        m = s.recv_publish(3)
        left = m.props.get("message_expiry_interval")
        check(left is not None and left <= 5,
              "Message Expiry Interval %r delivered with maxMessageExpirySeconds 5" % left)


@case(ringmq_only="spec.ringmq.threads and shard log lines")
def threads_from_config():
    yaml = rq.std_yaml(ringmq={"threads": 3})
    with rq.start_broker(yaml, threads=None) as b:
        check(b.wait_log(r"shard 2\b", 0, timeout=3), "no log line of shard 2 with threads: 3;"
              " log:\n%s" % b.log()[-1500:])
        check(not b.wait_log(r"shard 3\b", 0, timeout=0.2), "a 4th shard with threads: 3")
        rq.check_serves(b.port)


@case(ringmq_only="--threads overrides spec.ringmq.threads")
def threads_cli_overrides():
    yaml = rq.std_yaml(ringmq={"threads": 3})
    with rq.start_broker(yaml, threads=1) as b:
        check(not b.wait_log(r"shard 1\b", 0, timeout=0.5), "shard 1 started with --threads 1")
        rq.check_serves(b.port)


def cpu_seconds(pid):
    """User + system CPU time of the whole process (all threads), from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fd_broker(nofile=None):
    """A broker (2 shards, log level info) started under prlimit --nofile=N when N is given."""
    if not shutil.which("prlimit"):
        raise rq.Skip("prlimit (util-linux) not installed")
    port = rq.free_port()
    d = tempfile.mkdtemp(prefix="rqfd-")
    path = os.path.join(d, "ringmq.yaml")
    with open(path, "w") as f:
        f.write(rq.broker_yaml(port=port, log_level="info"))
    argv = [rq.broker_bin(), "-c", path, "--threads", "2"]
    if nofile:
        argv = ["prlimit", "--nofile=%d:%d" % (nofile, nofile)] + argv
    return rq.Broker(argv, port, d)


def saturate(b, n):
    """Opens n connections that send nothing (more than the descriptors allow), then measures
    the broker's CPU time and new log lines over 3 s. Returns (sockets, cpu s, lines)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection((rq.HOST, b.port), timeout=5)
        rq.on_cleanup(s.close)
        socks.append(s)
    time.sleep(0.5)
    mark, cpu0 = b.log_mark(), cpu_seconds(b.pid)
    time.sleep(3)
    cpu, lines = cpu_seconds(b.pid) - cpu0, len(b.log_since(mark).splitlines())
    rq.log("saturated: %.2f s of CPU and %d log lines in 3 s" % (cpu, lines))
    return socks, cpu, lines


def connects_again(b, socks):
    """Once the silent connections are gone, a new client gets its CONNACK within 10 s. Until
    the broker has seen them go, it may still refuse at accept (closed at once): the client
    tries again, as clients do."""
    for s in socks:
        s.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            c = rq.RawClient(b.port, timeout=5)
            ack = c.connect(version=5, client_id=rq.uniq("after"), timeout=5)
            break
        except (AssertionError, OSError) as e:
            check(time.monotonic() < deadline, "no CONNACK within 10 s of freeing the "
                  "descriptors: %s" % e)
            time.sleep(0.2)
    check_eq(ack.rc, 0, "CONNACK after descriptors were freed")
    c.disconnect()


@case(ringmq_only="descriptor budget from RLIMIT_NOFILE")
def descriptor_limit():
    """The issue's probe: started with 128 descriptors, 200 silent connections. The broker
    holds what its descriptor budget allows and refuses the rest without spinning (was: EMFILE,
    accept re-armed every loop turn: seconds of CPU and hundreds of thousands of identical
    lines in 3 s); a client connects once the others are gone."""
    with fd_broker(nofile=128) as b:
        socks, cpu, lines = saturate(b, 200)
        check(cpu < 0.5, "broker used %.2f s of CPU in 3 s while out of descriptors" % cpu)
        check(lines < 20, "%d log lines in 3 s while out of descriptors" % lines)
        check(b.wait_log(r"descriptors|Too many open files", 0, 1),
              "no log line about the descriptor limit")
        connects_again(b, socks)
        rq.check_serves(b.port)


@case(ringmq_only="accept backs off on EMFILE")
def descriptor_exhaustion_burst():
    """With 64 descriptors, 100 connections arrive while the broker is stopped (SIGSTOP): on
    SIGCONT the kernel accepts them until accept fails with EMFILE. Accepting backs off
    (bounded CPU, a few lines), and resumes when descriptors are free again."""
    with fd_broker(nofile=64) as b:
        held = [socket.create_connection((rq.HOST, b.port), timeout=5) for _ in range(20)]
        for s in held:
            rq.on_cleanup(s.close)
        time.sleep(0.3)
        b.signal(signal.SIGSTOP)
        try:
            burst = []
            for _ in range(100):
                s = socket.create_connection((rq.HOST, b.port), timeout=5)
                rq.on_cleanup(s.close)
                burst.append(s)
        finally:
            b.signal(signal.SIGCONT)
        socks, cpu, lines = saturate(b, 0)
        check(cpu < 0.5, "broker used %.2f s of CPU in 3 s while accept fails" % cpu)
        check(lines < 20, "%d log lines in 3 s while accept fails" % lines)
        check(b.wait_log(r"Too many open files", 0, 1), "no log line about EMFILE")
        connects_again(b, held + burst)
        check(b.wait_log(r"accepting again", 0, 3), "no log line saying accepting resumed")
        rq.check_serves(b.port)


if __name__ == "__main__":
    rq.run(timeout=120)
