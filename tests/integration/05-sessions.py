#!/usr/bin/python3
"""05 sessions: clean start, session expiry (0, N seconds, changed at DISCONNECT, capped by
maxSessionExpirySeconds), subscriptions and QoS 1/2 messages kept while offline, 3.1.1
persistent sessions, a session resumed many times (it may land on another shard each time),
messages in flight when the client left: resent in order within the resumed connection's Receive
Maximum, also when expired or over its Maximum Packet Size."""

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


def resumable(b, cid, t, qos=1, **props):
    """A persistent v5 session subscribed to t, its connection, and a publisher."""
    s = rq.connected(b.port, cid, clean=True, props=dict(session_expiry_interval=60, **props))
    s.subscribe([(t, qos)])
    return s, rq.connected(b.port)


def resume(b, cid, **props):
    s = rq.connected(b.port, cid, clean=False, props=dict(session_expiry_interval=60, **props))
    check_eq(s.connack.session_present, True, "session present")
    return s


def next_packets(c, n, timeout=3.0):
    """The next n packets other than PINGRESP, in arrival order."""
    out = []
    while len(out) < n:
        pk = c.recv_packet(timeout)
        check(pk is not None, "timeout after %r" % out)
        out.append(pk)
    return out


@case(mosquitto_differs="2.0 drops an expired in-flight message at resume")
def inflight_expired_resent_on_resume(b):
    # Delivery of an in-flight message started before it expired: on resume it is resent
    # [MQTT-4.4.0-1] (only a message whose onward delivery has not started is deleted at expiry
    # [MQTT-3.3.2-5]), with a Message Expiry Interval of 0, and its window slot frees at its
    # PUBACK. Receive Maximum 1: a slot kept forever would stall the session.
    cid, t = rq.uniq("ie"), rq.uniq("t")
    s, p = resumable(b, cid, t, receive_maximum=1)
    p.publish(t, b"short", qos=1, props={"message_expiry_interval": 1})
    first = s.recv_publish(3, ack=False)
    s.disconnect()
    time.sleep(1.5)  # the message's 1 s expires
    p.publish(t, b"after", qos=1)
    s = resume(b, cid, receive_maximum=1)
    again = s.recv_publish(3, ack=False)
    check_eq((again.payload, again.dup, again.pid), (b"short", True, first.pid),
             "expired in-flight message resent (payload, dup, packet id)")
    check_eq(again.props.get("message_expiry_interval"), 0, "remaining expiry")
    s.expect_nothing(0.3, "second PUBLISH while the window (1) is full")
    s.ack(again)
    check_eq(s.recv_publish(3).payload, b"after", "the next message once the slot is free")
    s.disconnect()
    end_session(b, cid)
    p.disconnect()


@case(mosquitto_differs="2.0 drops the QoS 2 message without PUBREL")
def inflight_over_max_packet_size_on_resume(b):
    # An in-flight PUBLISH larger than the resumed connection's Maximum Packet Size is discarded
    # as if sent [MQTT-3.1.2-25]: QoS 1 frees its slot; QoS 2 goes on with PUBREL (releasing any
    # state the client kept for the packet id) and frees it at PUBCOMP. Later messages flow.
    cid, t = rq.uniq("ib"), rq.uniq("t")
    s, p = resumable(b, cid, t, qos=2, receive_maximum=2)
    p.publish(t, b"x" * 2000, qos=1)
    p.publish(t, b"y" * 2000, qos=2)
    big = [s.recv_publish(3, ack=False) for _ in range(2)]
    check_eq([m.qos for m in big], [1, 2], "QoS of the large messages")
    s.disconnect()
    s = resume(b, cid, receive_maximum=2, maximum_packet_size=512)
    rel = s.wait_for(rq.PUBREL, 3, pid=big[1].pid)
    s.send_raw(rq.enc_ack(rq.PUBCOMP, 5, rel.pid))
    p.publish(t, b"small1", qos=1)
    p.publish(t, b"small2", qos=1)
    got = s.collect(1.0, count=2)
    check_eq([m.payload for m in got], [b"small1", b"small2"], "later messages delivered")
    check(all(pk.type != rq.PUBLISH for pk in s.backlog), "a large message was sent: %r"
          % s.backlog)
    s.disconnect()
    end_session(b, cid)
    p.disconnect()


@case
def inflight_resent_in_send_order(b):
    # In-flight messages are resent in the order first sent [MQTT-4.6.0-1], PUBRELs included,
    # also when their packet ids wrapped around the broker's table (Receive Maximum 4: ids
    # 15..18 after 14 acknowledged messages).
    cid, t = rq.uniq("io"), rq.uniq("t")
    s, p = resumable(b, cid, t, qos=2, receive_maximum=4)
    for i in range(14):
        p.publish(t, b"a%d" % i, qos=1)
    check_eq(len(s.collect(3.0, count=14)), 14, "acknowledged messages")
    p.publish(t, b"q2", qos=2)
    for i in range(3):
        p.publish(t, b"m%d" % i, qos=1)
    sent = [s.recv_publish(3, ack=False) for _ in range(4)]
    check_eq([m.payload for m in sent], [b"q2", b"m0", b"m1", b"m2"], "first delivery")
    s.send_raw(rq.enc_ack(rq.PUBREC, 5, sent[0].pid))
    s.wait_for(rq.PUBREL, 3, pid=sent[0].pid)
    s.disconnect()
    s = resume(b, cid, receive_maximum=4)
    again = next_packets(s, 4)
    check_eq([(pk.name, pk.pid) for pk in again],
             [("PUBREL", sent[0].pid)] + [("PUBLISH", m.pid) for m in sent[1:]],
             "resent in the order first sent (packet ids %r)" % [m.pid for m in sent])
    check(all(pk.dup for pk in again[1:]), "resent PUBLISHes carry DUP")
    s.send_raw(rq.enc_ack(rq.PUBCOMP, 5, sent[0].pid))
    for m in again[1:]:
        s.ack(m)
    p.publish(t, b"new", qos=1)
    check_eq(s.recv_publish(3).payload, b"new", "a new message after the resends")
    s.disconnect()
    end_session(b, cid)
    p.disconnect()


@case(mosquitto_differs="2.0 resends every in-flight message at once")
def inflight_resent_within_smaller_receive_maximum(b):
    # Six messages in flight, resumed with Receive Maximum 2: two are resent at once, each
    # acknowledgement lets the next one follow, in order, before any newer message.
    cid, t = rq.uniq("ir"), rq.uniq("t")
    s, p = resumable(b, cid, t, receive_maximum=10)
    for i in range(6):
        p.publish(t, b"%d" % i, qos=1)
    first = [s.recv_publish(3, ack=False) for _ in range(6)]
    s.disconnect()
    p.publish(t, b"new", qos=1)
    s = resume(b, cid, receive_maximum=2)
    got = [s.recv_publish(3, ack=False) for _ in range(2)]
    s.expect_nothing(0.5, "more than Receive Maximum (2) PUBLISHes in flight")
    while len(got) < 7:
        s.ack(got[len(got) - 2])
        got.append(s.recv_publish(3, ack=False))
        check(len(got) == 7 or s.recv_packet(0.1) is None,
              "more than 2 in flight after %d acks" % (len(got) - 2))
    check_eq([(m.payload, m.pid, m.dup) for m in got[:6]],
             [(m.payload, m.pid, True) for m in first], "resent: payload, packet id, DUP")
    check_eq((got[6].payload, got[6].dup), (b"new", False), "then the newer message")
    for m in got[5:]:
        s.ack(m)
    s.disconnect()
    end_session(b, cid)
    p.disconnect()


if __name__ == "__main__":
    rq.run(rq.fixture_broker(lambda: rq.std_yaml(clients=CLIENTS)), timeout=120)
