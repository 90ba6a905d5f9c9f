#!/usr/bin/python3
"""06 will: the will message is published after a keep alive timeout, a protocol error or an
abrupt close, not after a normal DISCONNECT, and after DISCONNECT 0x04; Will Delay Interval
(and session end before it); will retain, QoS and properties; 3.1.1 wills."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

# mosquitto checks keep alive only every few seconds.
KA_SLACK = 8.0 if rq.MOSQUITTO else 0.0


def watcher(b, t, qos=1):
    w = rq.connected(b.port)
    w.subscribe([(t, qos)])
    return w


def with_will(b, t, payload=b"gone", version=5, qos=1, retain=False, will_props=None,
              keepalive=60, props=None, cid=None):
    will = {"topic": t, "payload": payload, "qos": qos, "retain": retain, "props": will_props}
    return rq.connected(b.port, cid, version=version, keepalive=keepalive, props=props, will=will)


@case
def will_on_abrupt_close(b):
    for v in (5, 4):
        t = rq.uniq("w")
        w = watcher(b, t)
        c = with_will(b, t, b"abrupt-%d" % v, version=v)
        c.close()
        m = w.recv_publish(3)
        check_eq((m.topic, m.payload), (t, b"abrupt-%d" % v), "v%d will after abrupt close" % v)
        w.disconnect()


@case
def will_on_keepalive_timeout(b):
    t = rq.uniq("w")
    w = watcher(b, t)
    with_will(b, t, b"silent", keepalive=1)
    t0 = time.monotonic()
    m = w.recv_publish(4 + KA_SLACK)
    check_eq(m.payload, b"silent", "will after keep alive timeout")
    check(time.monotonic() - t0 >= 1.0, "will published before 1.5 x keep alive")
    w.disconnect()


@case
def will_on_protocol_error(b):
    for v in (5, 4):
        t = rq.uniq("w")
        w = watcher(b, t)
        c = with_will(b, t, b"bad-%d" % v, version=v)
        c.send_raw(bytes([0x30 | 0x06, 0x03, 0x00, 0x01, 0x61]))  # PUBLISH QoS 3
        check(c.expect_closed(3), "v%d connection not closed after PUBLISH QoS 3" % v)
        check_eq(w.recv_publish(3).payload, b"bad-%d" % v, "v%d will after protocol error" % v)
        w.disconnect()


@case
def no_will_on_normal_disconnect(b):
    for v in (5, 4):
        t = rq.uniq("w")
        w = watcher(b, t)
        c = with_will(b, t, version=v)
        c.disconnect(rc=0)
        w.expect_nothing(1.0, "v%d will after DISCONNECT 0x00" % v)
        w.disconnect()


@case
def will_on_disconnect_with_will(b):
    t = rq.uniq("w")
    w = watcher(b, t)
    c = with_will(b, t, b"asked-for")
    c.disconnect(rc=0x04)
    check_eq(w.recv_publish(3).payload, b"asked-for", "will after DISCONNECT 0x04")
    w.disconnect()


@case
def will_on_takeover(b):
    # v5 3.1.4: on takeover the old connection's will is published (no delay, session ends as
    # the new one uses Clean Start).
    t = rq.uniq("w")
    cid = rq.uniq("tw")
    w = watcher(b, t)
    with_will(b, t, b"taken-over", cid=cid)
    rq.connected(b.port, cid)
    check_eq(w.recv_publish(3).payload, b"taken-over", "will of a taken-over connection")
    w.disconnect()


@case
def will_delay(b):
    t = rq.uniq("w")
    w = watcher(b, t)
    c = with_will(b, t, b"late", will_props={"will_delay_interval": 2},
                  props={"session_expiry_interval": 30})
    c.close()
    t0 = time.monotonic()
    w.expect_nothing(1.5, "will before its 2 s delay")
    m = w.recv_publish(3)
    dt = time.monotonic() - t0
    check_eq(m.payload, b"late", "delayed will")
    check(dt <= 3.5, "delayed will after %.1f s (delay 2 s)" % dt)
    w.disconnect()


@case
def will_delay_cancelled_by_reconnect(b):
    t = rq.uniq("w")
    cid = rq.uniq("wr")
    props = {"session_expiry_interval": 30}
    w = watcher(b, t)
    c = with_will(b, t, b"never", will_props={"will_delay_interval": 2}, props=props, cid=cid)
    c.close()
    time.sleep(0.5)
    c = rq.connected(b.port, cid, clean=False, props=props)
    w.expect_nothing(2.5, "will after the client came back within the delay")
    c.disconnect(props={"session_expiry_interval": 0})
    w.disconnect()


@case
def will_at_session_end_before_delay(b):
    # [MQTT-3.1.3-9]: the will is sent when the session ends, if that is before the delay.
    t = rq.uniq("w")
    w = watcher(b, t)
    c = with_will(b, t, b"session-end", will_props={"will_delay_interval": 30},
                  props={"session_expiry_interval": 1})
    c.close()
    t0 = time.monotonic()
    m = w.recv_publish(4)
    check_eq(m.payload, b"session-end", "will at session end")
    check(time.monotonic() - t0 <= 3.0, "will at session end came late")
    w.disconnect()


@case(mosquitto_differs="2.0.11 waits for the will delay although the session ended at close")
def will_delay_with_session_expiry_zero(b):
    # The session ends when the network connection closes, so the delay does not apply.
    t = rq.uniq("w")
    w = watcher(b, t)
    c = with_will(b, t, b"now", will_props={"will_delay_interval": 30})
    c.close()
    check_eq(w.recv_publish(3).payload, b"now", "will with delay 30 and session expiry 0")
    w.disconnect()


@case
def will_retained(b):
    t = rq.uniq("w")
    c = with_will(b, t, b"last-words", retain=True)
    c.close()
    time.sleep(0.5)
    s = rq.connected(b.port)
    s.subscribe([(t, 1)])
    m = s.recv_publish(3)
    check_eq((m.payload, m.retain), (b"last-words", True), "retained will (payload, retain)")
    s.publish(t, b"", qos=1, retain=True)
    s.disconnect()


@case
def will_qos_and_properties(b):
    t = rq.uniq("w")
    w = watcher(b, t, qos=2)
    props = {"content_type": "text/plain", "payload_format_indicator": 1,
             "user_property": [("k", "v"), ("k", "v2")], "response_topic": "r/t",
             "correlation_data": b"\x00\x01"}
    c = with_will(b, t, b"props", qos=2, will_props=props)
    c.close()
    m = w.recv_publish(3)
    check_eq(m.qos, 2, "will QoS")
    for k, v in props.items():
        check_eq(m.props.get(k), v, "will property %s" % k)
    w.disconnect()


@case
def will_paho(b):
    for v in (4, 5):
        t = rq.uniq("w")
        w = watcher(b, t)
        p = rq.Paho(b.port, version=v, will={"topic": t, "payload": b"paho-will", "qos": 1})
        p.stop()  # loop stops, socket closed without DISCONNECT
        check_eq(w.recv_publish(3).payload, b"paho-will", "paho v%d will" % v)
        w.disconnect()


if __name__ == "__main__":
    rq.run(rq.fixture_broker(rq.std_yaml), timeout=120)
