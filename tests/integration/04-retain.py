#!/usr/bin/python3
"""04 retain: set, replace, clear, delivery on subscribe per Retain Handling, the retain flag on
retained and live deliveries, QoS of retained deliveries, message expiry of retained messages."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq, sub_opts  # noqa: E402


def retained(b, flt, version=5, opts=1, wait=0.6):
    """What a fresh subscriber to flt gets right after subscribing."""
    s = rq.connected(b.port, version=version)
    s.subscribe([(flt, opts)])
    got = s.collect(wait)
    s.disconnect()
    return got


def clear(b, *topics):
    p = rq.connected(b.port)
    for t in topics:
        p.publish(t, b"", qos=1, retain=True)
    p.disconnect()


@case
def set_and_deliver(b):
    t = rq.uniq("r")
    p = rq.connected(b.port)
    p.publish(t, b"kept", qos=1, retain=True)
    for v in (5, 4):
        got = retained(b, t, version=v)
        check_eq([(m.payload, m.retain) for m in got], [(b"kept", True)],
                 "v%d retained delivery (payload, retain flag)" % v)
    clear(b, t)
    p.disconnect()


@case
def replace(b):
    t = rq.uniq("r")
    p = rq.connected(b.port)
    p.publish(t, b"first", qos=1, retain=True)
    p.publish(t, b"second", qos=1, retain=True)
    check_eq([m.payload for m in retained(b, t)], [b"second"], "retained after replace")
    clear(b, t)
    p.disconnect()


@case
def clear_with_empty_payload(b):
    t = rq.uniq("r")
    live = rq.connected(b.port)
    live.subscribe(t, qos=1)
    p = rq.connected(b.port)
    p.publish(t, b"gone-soon", qos=1, retain=True)
    live.recv_publish(3)
    p.publish(t, b"", qos=1, retain=True)
    # [MQTT-3.3.1-10]: the zero-byte retained message is still delivered to live subscribers.
    m = live.recv_publish(3)
    check_eq(m.payload, b"", "live delivery of the clearing message")
    check_eq(retained(b, t), [], "retained after clearing")
    live.disconnect()
    p.disconnect()


@case
def non_retained_publish_keeps_retained(b):
    t = rq.uniq("r")
    p = rq.connected(b.port)
    p.publish(t, b"kept", qos=1, retain=True)
    p.publish(t, b"live-only", qos=1, retain=False)
    check_eq([m.payload for m in retained(b, t)], [b"kept"], "retained after a non-retained publish")
    clear(b, t)
    p.disconnect()


@case
def wildcard_gets_all_retained(b):
    root = rq.uniq("rw")
    topics = [root + "/a", root + "/b/c", root + "/d"]
    p = rq.connected(b.port)
    for t in topics:
        p.publish(t, t.encode(), qos=1, retain=True)
    got = retained(b, root + "/#")
    check_eq(sorted(m.topic for m in got), sorted(topics), "retained via '#'")
    check(all(m.retain for m in got), "retain flag on every retained delivery")
    got = retained(b, root + "/+")
    check_eq(sorted(m.topic for m in got), [root + "/a", root + "/d"], "retained via '+'")
    clear(b, *topics)
    p.disconnect()


@case
def retained_qos_is_minimum(b):
    t = rq.uniq("rq")
    p = rq.connected(b.port)
    p.publish(t, b"q2", qos=2, retain=True)
    check_eq([m.qos for m in retained(b, t, opts=1)], [1], "QoS of retained delivery, sub QoS 1")
    check_eq([m.qos for m in retained(b, t, opts=2)], [2], "QoS of retained delivery, sub QoS 2")
    p.publish(t, b"q0", qos=0, retain=True)
    p.ping()  # a QoS 0 publish has no ack: the PINGRESP says the broker has processed it
    check_eq([m.qos for m in retained(b, t, opts=2)], [0], "QoS of a QoS 0 retained message")
    clear(b, t)
    p.disconnect()


@case
def retain_handling(b):
    t = rq.uniq("rh")
    p = rq.connected(b.port)
    p.publish(t, b"R", qos=1, retain=True)
    for rh, first, again in ((0, 1, 1), (1, 1, 0), (2, 0, 0)):
        s = rq.connected(b.port)
        s.subscribe([(t, sub_opts(1, rh=rh))])
        n1 = len(s.collect(0.5))
        s.subscribe([(t, sub_opts(1, rh=rh))])  # subscription exists now
        n2 = len(s.collect(0.5))
        check_eq((n1, n2), (first, again),
                 "Retain Handling %d: retained copies on (new, repeated) subscription" % rh)
        s.disconnect()
    clear(b, t)
    p.disconnect()


@case
def live_retained_flag_v311(b):
    # [MQTT-3.3.1-9] (3.1.1): retain is 0 on delivery to an existing subscription.
    t = rq.uniq("rl")
    s = rq.connected(b.port, version=4)
    s.subscribe(t, qos=1)
    p = rq.connected(b.port)
    p.publish(t, b"x", qos=1, retain=True)
    check_eq(s.recv_publish(3).retain, False, "3.1.1 retain flag on live delivery")
    clear(b, t)
    s.disconnect()
    p.disconnect()


@case
def retained_message_expiry(b):
    t = rq.uniq("rx")
    p = rq.connected(b.port)
    p.publish(t + "/short", b"short", qos=1, retain=True, props={"message_expiry_interval": 1})
    p.publish(t + "/long", b"long", qos=1, retain=True, props={"message_expiry_interval": 30})
    time.sleep(2.2)
    got = retained(b, t + "/#")
    check_eq([m.payload for m in got], [b"long"], "retained after 2 s (expiry 1 s and 30 s)")
    left = got[0].props.get("message_expiry_interval")
    check(left is not None and 1 <= left <= 28,
          "Message Expiry Interval of a retained message 2 s later: %r (want <= 28)" % left)
    clear(b, t + "/long")
    p.disconnect()


@case
def retained_real_clients(b):
    for v in (4, 5):
        t = rq.uniq("rm")
        r = rq.mosq_pub(b.port, t, "kept-%d" % v, qos=1, retain=True, version=v)
        check_eq(r.returncode, 0, "mosquitto_pub -r (%s)" % r.stderr)
        s = rq.MosqSub(b.port, t, qos=1, version=v, count=1, fmt="%r|%p")
        check_eq(s.messages(1), ["1|kept-%d" % v], "mosquitto_sub -V %d of a retained message" % v)
        s.wait(3)
        rq.mosq_pub(b.port, t, None, qos=1, retain=True, version=v)
        s = rq.MosqSub(b.port, t, qos=1, version=v, wait=1)
        check_eq(s.messages(1, timeout=1.5), [], "retained after mosquitto_pub -r -n")


if __name__ == "__main__":
    rq.run(rq.fixture_broker(rq.std_yaml), timeout=90)
