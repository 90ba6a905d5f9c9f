#!/usr/bin/python3
"""15 v5 properties: application properties arrive unchanged, Message Expiry Interval is counted
down while queued and expired messages are dropped, topic aliases from clients and toward
clients, a client's Maximum Packet Size, capability properties in CONNACK."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

APP_PROPS = {
    "payload_format_indicator": 1,
    "content_type": "application/json; charset=utf-8",
    "response_topic": "reply/to/me",
    "correlation_data": b"\x00\xffcorr\x01",
    "user_property": [("a", "1"), ("b", "2"), ("a", "3"), ("", ""), ("ключ", "значение")],
}


@case
def application_properties_passthrough(b):
    t = rq.uniq("pp")
    for q in (0, 1, 2):
        s = rq.connected(b.port)
        s.subscribe([(t, 2)])
        p = rq.connected(b.port)
        p.publish(t, b'{"x": 1}', qos=q, props=APP_PROPS)
        m = s.recv_publish(3)
        check_eq(m.payload, b'{"x": 1}', "payload")
        for k, v in APP_PROPS.items():
            check_eq(m.props.get(k), v, "QoS %d property %s" % (q, k))
        s.disconnect()
        p.disconnect()


@case
def properties_kept_for_offline_and_retained(b):
    t = rq.uniq("pq")
    cid = rq.uniq("off")
    sess = {"session_expiry_interval": 60}
    s = rq.connected(b.port, cid, props=sess)
    s.subscribe([(t, 1)])
    s.disconnect()
    p = rq.connected(b.port)
    p.publish(t, b"queued", qos=1, props=APP_PROPS)
    p.publish(t + "/r", b"retained", qos=1, retain=True, props=APP_PROPS)
    s = rq.connected(b.port, cid, clean=False, props=sess)
    m = s.recv_publish(3)
    check_eq(m.props.get("user_property"), APP_PROPS["user_property"], "queued user properties")
    check_eq(m.props.get("correlation_data"), APP_PROPS["correlation_data"], "queued corr. data")
    s.subscribe([(t + "/r", 1)])
    m = s.recv_publish(3)
    for k, v in APP_PROPS.items():
        check_eq(m.props.get(k), v, "retained property %s" % k)
    p.publish(t + "/r", b"", qos=1, retain=True)
    s.disconnect(props={"session_expiry_interval": 0})
    p.disconnect()


@case
def paho_properties(b):
    rq.paho()  # skips if paho is missing
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
    t = rq.uniq("paho")
    s = rq.Paho(b.port, version=5)
    s.subscribe(t, 1)
    p = rq.Paho(b.port, version=5)
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "text/plain"
    props.ResponseTopic = "resp/" + t
    props.CorrelationData = b"id-42"
    props.UserProperty = [("k1", "v1"), ("k2", "v2")]
    p.publish(t, b"hello", qos=1, properties=props)
    m = s.recv(3)
    check(m is not None, "paho subscriber got nothing")
    check_eq((m.properties.ContentType, m.properties.ResponseTopic, m.properties.CorrelationData,
              m.properties.UserProperty),
             ("text/plain", "resp/" + t, b"id-42", [("k1", "v1"), ("k2", "v2")]),
             "paho-received properties")
    s.disconnect()
    p.disconnect()


@case
def message_expiry_live(b):
    t = rq.uniq("mx")
    s = rq.connected(b.port)
    s.subscribe([(t, 1)])
    p = rq.connected(b.port)
    p.publish(t, b"x", qos=1, props={"message_expiry_interval": 30})
    left = s.recv_publish(3).props.get("message_expiry_interval")
    check(left in (29, 30), "Message Expiry Interval on live delivery: %r" % left)
    p.publish(t, b"y", qos=1)
    check("message_expiry_interval" not in s.recv_publish(3).props,
          "Message Expiry Interval added to a message without one")
    s.disconnect()
    p.disconnect()


@case
def message_expiry_counted_down_while_queued(b):
    t, cid = rq.uniq("mq"), rq.uniq("off")
    sess = {"session_expiry_interval": 60}
    s = rq.connected(b.port, cid, props=sess)
    s.subscribe([(t, 1)])
    s.disconnect()
    p = rq.connected(b.port)
    p.publish(t, b"keeps", qos=1, props={"message_expiry_interval": 10})
    p.publish(t, b"expires", qos=1, props={"message_expiry_interval": 1})
    p.publish(t, b"forever", qos=1)
    time.sleep(2.3)
    s = rq.connected(b.port, cid, clean=False, props=sess)
    got = s.collect(0.8)
    check_eq([m.payload for m in got], [b"keeps", b"forever"],
             "queued messages after 2.3 s (expiry 10, 1, none)")
    left = got[0].props.get("message_expiry_interval")
    check(left is not None and 1 <= left <= 8,
          "Message Expiry Interval after 2.3 s queued: %r (want 10 - elapsed)" % left)
    s.disconnect(props={"session_expiry_interval": 0})
    p.disconnect()


@case
def topic_alias_from_client(b):
    t = rq.uniq("ta")
    s = rq.connected(b.port)
    s.subscribe([(t + "/#", 1)])
    p = rq.connected(b.port)
    p.publish(t + "/a", b"1", qos=1, props={"topic_alias": 1})
    p.publish("", b"2", qos=1, props={"topic_alias": 1})
    p.publish(t + "/b", b"3", qos=1, props={"topic_alias": 1})  # remap alias 1
    p.publish("", b"4", qos=1, props={"topic_alias": 1})
    p.publish(t + "/c", b"5", qos=1, props={"topic_alias": 10})
    p.publish("", b"6", qos=1, props={"topic_alias": 10})
    got = [(m.topic, m.payload) for m in s.collect(0.8, count=6)]
    check_eq(got, [(t + "/a", b"1"), (t + "/a", b"2"), (t + "/b", b"3"), (t + "/b", b"4"),
                   (t + "/c", b"5"), (t + "/c", b"6")], "topics resolved from aliases")
    s.disconnect()
    p.disconnect()


@case
def topic_alias_is_per_connection(b):
    t = rq.uniq("tp")
    p1 = rq.connected(b.port)
    p1.publish(t, b"x", qos=1, props={"topic_alias": 1})
    p2 = rq.connected(b.port)
    p2.send_raw(rq.enc_publish(5, "", b"y", props={"topic_alias": 1}))
    res = p2.expect_closed(3)
    check(res and res.rc == 0x82, "alias of another connection used: %r" % res)
    p1.disconnect()


def resolve(aliases, m):
    """Client side of topic aliases: returns the topic of m, learning new mappings."""
    a = m.props.get("topic_alias")
    if m.topic:
        if a is not None:
            aliases[a] = m.topic
        return m.topic
    check(a is not None, "PUBLISH with an empty topic and no alias: %r" % m)
    check(a in aliases, "alias %d used before being set" % a)
    return aliases[a]


@case(mosquitto_differs="2.0.11 sends no topic aliases to clients")
def topic_alias_toward_client(b):
    t = rq.uniq("tc")
    s = rq.connected(b.port, props={"topic_alias_maximum": 5})
    s.subscribe([(t, 1)])
    p = rq.connected(b.port)
    p.publish(t, b"1", qos=1)
    p.publish(t, b"2", qos=1)
    m1, m2 = s.collect(0.8, count=2)
    check_eq(m1.topic, t, "first delivery carries the topic")
    a = m1.props.get("topic_alias")
    check(a is not None and 1 <= a <= 5, "first delivery sets an alias in 1..5: %r" % m1)
    check_eq((m2.topic, m2.props.get("topic_alias")), ("", a),
             "second delivery to the same topic: (topic, alias)")
    s.disconnect()
    p.disconnect()


@case
def topic_alias_toward_client_bounded(b):
    root = rq.uniq("tb")
    s = rq.connected(b.port, props={"topic_alias_maximum": 2})
    s.subscribe([(root + "/+", 1)])
    p = rq.connected(b.port)
    sent = []
    for rnd in range(3):
        for i in range(4):
            sent.append("%s/%d" % (root, i))
            p.publish(sent[-1], b"%d" % rnd, qos=1)
    aliases = {}
    got = s.collect(0.8, count=len(sent))
    for m in got:
        a = m.props.get("topic_alias")
        check(a is None or 1 <= a <= 2, "alias %r above the client's Topic Alias Maximum 2" % a)
    check_eq([resolve(aliases, m) for m in got], sent, "topics resolved on the client side")
    s.disconnect()
    p.disconnect()


@case
def no_alias_toward_client_without_maximum(b):
    t = rq.uniq("tn")
    s = rq.connected(b.port)
    s.subscribe([(t, 1)])
    p = rq.connected(b.port)
    for _ in range(3):
        p.publish(t, b"x", qos=1)
    for m in s.collect(0.8, count=3):
        check_eq((m.topic, m.props.get("topic_alias")), (t, None),
                 "delivery to a client without Topic Alias Maximum")
    s.disconnect()
    p.disconnect()


@case
def client_maximum_packet_size(b):
    t = rq.uniq("mp")
    small = rq.connected(b.port, props={"maximum_packet_size": 200})
    small.subscribe([(t, 1)])
    big = rq.connected(b.port)
    big.subscribe([(t, 1)])
    p = rq.connected(b.port)
    p.publish(t, b"L" * 500, qos=1)
    p.publish(t, b"small", qos=1)
    check_eq([m.payload for m in big.collect(0.6, count=2)], [b"L" * 500, b"small"],
             "subscriber without a limit")
    check_eq([m.payload for m in small.collect(0.6)], [b"small"],
             "subscriber with Maximum Packet Size 200 (the 500-byte message dropped for it only)")
    small.ping()
    for c in (small, big, p):
        c.disconnect()


@case
def client_maximum_packet_size_counts_properties(b):
    # The limit applies to the whole packet, properties included (here: user properties).
    t = rq.uniq("mpp")
    s = rq.connected(b.port, props={"maximum_packet_size": 150})
    s.subscribe([(t, 1)])
    p = rq.connected(b.port)
    p.publish(t, b"tiny", qos=1, props={"user_property": [("k", "v" * 200)]})
    p.publish(t, b"ok", qos=1)
    got = s.collect(0.6)
    check_eq([m.payload for m in got], [b"ok"], "message whose properties exceed the limit")
    s.disconnect()
    p.disconnect()


@case(mosquitto_differs="2.0.11 sends no Reason String here to leave out")
def client_maximum_packet_size_connack(b):
    # [MQTT-3.1.2-25] bounds CONNACK too. A refusing CONNACK drops its Reason String to fit
    # [MQTT-3.2.2-19]; a CONNACK that cannot fit even bare is not sent: the connection closes.
    props = {"authentication_method": "SCRAM-SHA-1"}  # not configured: CONNACK 0x8C
    c = rq.RawClient(b.port)
    ack = c.connect(props=dict(props), client_id="mp1")
    check(ack.rc == 0x8C and "reason_string" in ack.props,
          "without a limit: CONNACK 0x8C with a Reason String, got %r" % ack)
    c.close()
    c = rq.RawClient(b.port)
    ack = c.connect(props=dict(props, maximum_packet_size=8), client_id="mp2")
    check_eq((ack.rc, ack.raw), (0x8C, b"\x00\x8c\x00"),
             "CONNACK within Maximum Packet Size 8 (reason, body without properties)")
    check(c.expect_closed(3), "not closed after CONNACK 0x8C")
    c = rq.RawClient(b.port)
    c.send_connect(props=dict(props, maximum_packet_size=4), client_id="mp3")
    res = c.expect_closed(3)
    check(res and not res.packets, "Maximum Packet Size 4: want a close without CONNACK, got %r"
          % res)
    # a successful CONNACK has nothing it may leave out: exactly its size is enough, one less
    # is not
    size = 2 + len(rq.connected(b.port, "mp4").connack.raw)
    c = rq.connected(b.port, "mp5", props={"maximum_packet_size": size})
    c.ping()
    c.disconnect()
    c = rq.RawClient(b.port)
    c.send_connect(props={"maximum_packet_size": size - 1}, client_id="mp6")
    res = c.expect_closed(3)
    check(res and not res.packets, "Maximum Packet Size %d for a %d-byte CONNACK: want a close "
          "without CONNACK, got %r" % (size - 1, size, res))
    rq.check_serves(b.port)


@case(mosquitto_differs="2.0.11 sends no Reason String here to leave out")
def client_maximum_packet_size_disconnect(b):
    # [MQTT-3.14.2-3]: DISCONNECT drops its Reason String to fit; it is left out when even the
    # bare DISCONNECT (3 bytes) is too large.
    second = rq.enc_connect(5, client_id="again")
    c = rq.connected(b.port)
    c.send_raw(second)
    res = c.expect_closed(3)
    check(res.rc == 0x82 and "reason_string" in res.disconnect.props,
          "without a limit: DISCONNECT 0x82 with a Reason String, got %r" % res)
    c = rq.connected(b.port, props={"maximum_packet_size": 20})
    c.send_raw(second)
    res = c.expect_closed(3)
    check_eq((res.rc, res.disconnect.raw if res.disconnect else None), (0x82, b"\x82"),
             "DISCONNECT within Maximum Packet Size 20 (reason, body)")
    # a SUBACK that cannot fit: the connection ends (DISCONNECT 0x95, bare, fits)
    c = rq.connected(b.port, props={"maximum_packet_size": 20})
    c.send_raw(rq.enc_subscribe(5, 1, [("f/%d" % i, 0) for i in range(30)]))
    res = c.expect_closed(3)
    check(res and res.rc == 0x95 and not [p for p in res.packets if p.type == rq.SUBACK],
          "SUBACK of 35 bytes for Maximum Packet Size 20: want DISCONNECT 0x95, got %r" % res)
    rq.check_serves(b.port)


@case
def connack_capabilities(b):
    c = rq.connected(b.port)
    p = c.connack.props
    for k in ("retain_available", "wildcard_subscription_available",
              "subscription_identifier_available", "shared_subscription_available"):
        check(p.get(k, 1) == 1, "%s = %r but the feature is implemented" % (k, p.get(k)))
    check(p.get("maximum_qos", 2) == 2, "Maximum QoS %r" % p.get("maximum_qos"))
    c.disconnect()


@case
def request_problem_information_zero(b):
    # [MQTT-3.1.2-29]: with Request Problem Information 0 no Reason String / User Property on
    # anything but PUBLISH, CONNACK and DISCONNECT.
    c = rq.connected(b.port, props={"request_problem_information": 0})
    ack = c.unsubscribe(rq.uniq("none"))
    check("reason_string" not in ack.props and "user_property" not in ack.props,
          "UNSUBACK carries problem information: %r" % ack.props)
    c.disconnect()


if __name__ == "__main__":
    rq.run(rq.fixture_broker(rq.std_yaml), timeout=120)
