#!/usr/bin/python3
"""05 sessions: clean start, session expiry (0, N seconds, changed at DISCONNECT, capped by
maxSessionExpirySeconds), subscriptions and QoS 1/2 messages kept while offline, 3.1.1
persistent sessions, a session resumed many times (it may land on another shard each time)."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

CLIENTS = {"maxSessionExpirySeconds": 3600}


def persistent(b, cid, expiry=60, clean=False, version=5):
    props = {"session_expiry_interval": expiry} if version == 5 else None
    return rq.connected(b.port, cid, version=version, clean=clean, props=props)


def end_session(b, cid, version=5):
    rq.connected(b.port, cid, version=version, clean=True).disconnect()


@case
def offline_messages_delivered_on_resume(b):
    cid, t = rq.uniq("off"), rq.uniq("t")
    s = persistent(b, cid, clean=True)
    s.subscribe([(t, 1)])
    s.disconnect()
    p = rq.connected(b.port)
    for i in range(5):
        p.publish(t, b"%d" % i, qos=1)
    p.publish(t, b"q2", qos=2)
    s = persistent(b, cid)
    check_eq(s.connack.session_present, True, "session present")
    got = s.collect(0.8)
    check_eq([(m.payload, m.qos) for m in got], [(b"%d" % i, 1) for i in range(5)] + [(b"q2", 1)],
             "queued messages (payload, qos) on resume")
    p.publish(t, b"live", qos=1)
    check_eq(s.recv_publish(3).payload, b"live", "subscription kept across the resume")
    s.disconnect()
    end_session(b, cid)
    p.disconnect()


@case
def offline_qos2_delivered_on_resume(b):
    cid, t = rq.uniq("off2"), rq.uniq("t")
    s = persistent(b, cid, clean=True)
    s.subscribe([(t, 2)])
    s.disconnect()
    p = rq.connected(b.port)
    for i in range(3):
        p.publish(t, b"%d" % i, qos=2)
    s = persistent(b, cid)
    got = s.collect(0.8)
    check_eq([(m.payload, m.qos) for m in got], [(b"%d" % i, 2) for i in range(3)],
             "queued QoS 2 messages on resume")
    s.disconnect()
    end_session(b, cid)
    p.disconnect()


@case
def clean_start_discards_session(b):
    cid, t = rq.uniq("cs"), rq.uniq("t")
    s = persistent(b, cid, clean=True)
    s.subscribe([(t, 1)])
    s.disconnect()
    p = rq.connected(b.port)
    p.publish(t, b"queued", qos=1)
    s = persistent(b, cid, clean=True)
    check_eq(s.connack.session_present, False, "session present with Clean Start")
    p.publish(t, b"after", qos=1)
    check_eq(s.collect(0.6), [], "messages (queued or new) after Clean Start")
    s.disconnect()
    p.disconnect()


@case
def session_expiry_zero(b):
    cid, t = rq.uniq("se0"), rq.uniq("t")
    s = persistent(b, cid, expiry=0, clean=True)
    s.subscribe([(t, 1)])
    s.disconnect()
    p = rq.connected(b.port)
    p.publish(t, b"lost", qos=1)
    s = persistent(b, cid, expiry=0)
    check_eq(s.connack.session_present, False, "session present after expiry 0")
    check_eq(s.collect(0.5), [], "messages for a session that ended at disconnect")
    s.disconnect()
    p.disconnect()


@case
def session_expiry_after_n_seconds(b):
    cid = rq.uniq("seN")
    s = persistent(b, cid, expiry=2, clean=True)
    s.subscribe([(rq.uniq("t"), 1)])
    s.disconnect()
    time.sleep(0.7)
    s = persistent(b, cid, expiry=2)
    check_eq(s.connack.session_present, True, "session present 0.7 s into a 2 s expiry")
    s.disconnect()
    time.sleep(3.2)
    s = persistent(b, cid, expiry=2)
    check_eq(s.connack.session_present, False, "session present 3.2 s after a 2 s expiry")
    s.disconnect(props={"session_expiry_interval": 0})


@case
def session_expiry_on_abrupt_close(b):
    cid = rq.uniq("seA")
    s = persistent(b, cid, expiry=1, clean=True)
    s.subscribe([(rq.uniq("t"), 1)])
    s.close()
    time.sleep(2.5)
    s = persistent(b, cid, expiry=1)
    check_eq(s.connack.session_present, False, "session present after close + expiry")
    s.disconnect(props={"session_expiry_interval": 0})


@case
def expiry_set_to_zero_at_disconnect(b):
    cid = rq.uniq("seD")
    s = persistent(b, cid, expiry=60, clean=True)
    s.subscribe([(rq.uniq("t"), 1)])
    s.disconnect(props={"session_expiry_interval": 0})
    s = persistent(b, cid, expiry=60)
    check_eq(s.connack.session_present, False, "session present after DISCONNECT expiry 0")
    s.disconnect(props={"session_expiry_interval": 0})


@case
def expiry_raised_from_zero_at_disconnect(b):
    # [MQTT-3.14.2-2]: a non-zero Session Expiry Interval at DISCONNECT after 0 at CONNECT is a
    # protocol error.
    s = persistent(b, rq.uniq("seZ"), expiry=0, clean=True)
    s.send_raw(rq.enc_disconnect(5, 0, {"session_expiry_interval": 30}))
    res = s.expect_closed(3)
    check(res, "connection not closed")
    check(res.rc in (None, 0x82), "DISCONNECT from the broker: %r (want none or 0x82)" % res)
    rq.check_serves(b.port)


@case(ringmq_only="maxSessionExpirySeconds")
def session_expiry_capped(b):
    s = persistent(b, rq.uniq("cap"), expiry=100000, clean=True)
    check_eq(s.connack.props.get("session_expiry_interval"), 3600,
             "Session Expiry Interval in CONNACK (maxSessionExpirySeconds 3600)")
    s.disconnect(props={"session_expiry_interval": 0})


@case
def v311_persistent_session(b):
    cid, t = rq.uniq("p3"), rq.uniq("t")
    s = persistent(b, cid, clean=False, version=4)
    s.subscribe([(t, 1)])
    s.disconnect()
    p = rq.connected(b.port, version=4)
    for i in range(3):
        p.publish(t, b"%d" % i, qos=1)
    s = persistent(b, cid, version=4)
    check_eq(s.connack.session_present, True, "3.1.1 session present")
    check_eq([m.payload for m in s.collect(0.6)], [b"0", b"1", b"2"], "3.1.1 queued messages")
    s.disconnect()
    end_session(b, cid, version=4)
    p.disconnect()


@case
def paho_persistent_sessions(b):
    for v in (4, 5):
        cid, t = rq.uniq("pp"), rq.uniq("t")
        s = rq.Paho(b.port, cid, version=v, clean=False, session_expiry=60)
        s.subscribe(t, 1)
        s.disconnect()
        p = rq.Paho(b.port, version=v)
        for i in range(10):
            p.publish(t, b"%d" % i, qos=1)
        s = rq.Paho(b.port, cid, version=v, clean=False, session_expiry=60)
        check(s.session_present, "paho v%d: session present" % v)
        got = [m.payload for m in s.collect(1.0, count=10)]
        check_eq(got, [b"%d" % i for i in range(10)], "paho v%d: messages kept offline" % v)
        s.disconnect()
        p.disconnect()
        end_session(b, cid, version=v if v == 5 else 4)


@case
def resume_many_times(b):
    # Each reconnect may land on another shard (SO_REUSEPORT); the session follows, nothing is
    # lost or duplicated.
    cid, t = rq.uniq("mv"), rq.uniq("t")
    s = persistent(b, cid, clean=True)
    s.subscribe([(t, 1)])
    p = rq.connected(b.port)
    got, n = [], 0
    for rnd in range(8):
        s.disconnect()
        for _ in range(3):
            p.publish(t, b"%d" % n, qos=1)
            n += 1
        s = persistent(b, cid)
        check_eq(s.connack.session_present, True, "session present in round %d" % rnd)
        got += [m.payload for m in s.collect(0.5, count=3)]
    check_eq(got, [b"%d" % i for i in range(n)], "messages across 8 resumes")
    s.disconnect()
    end_session(b, cid)
    p.disconnect()


@case
def unacked_survive_resume(b):
    cid, t = rq.uniq("un"), rq.uniq("t")
    s = persistent(b, cid, clean=True)
    s.subscribe([(t, 1)])
    p = rq.connected(b.port)
    for i in range(4):
        p.publish(t, b"%d" % i, qos=1)
    first = s.collect(0.6, ack=False)
    check_eq(len(first), 4, "delivered before the drop")
    s.ack(first[0])
    s.ack(first[1])
    time.sleep(0.2)
    s.close()
    s = persistent(b, cid)
    again = s.collect(0.6)
    check_eq([(m.payload, m.dup) for m in again], [(b"2", True), (b"3", True)],
             "unacknowledged messages redelivered with DUP, acknowledged ones not")
    s.disconnect()
    end_session(b, cid)
    p.disconnect()


if __name__ == "__main__":
    rq.run(rq.fixture_broker(lambda: rq.std_yaml(clients=CLIENTS)), timeout=120)
