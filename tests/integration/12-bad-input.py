#!/usr/bin/python3
"""12 bad input: malformed packets and protocol errors. For each, a v5 client gets a DISCONNECT
(or a CONNACK before CONNECT completed) with the reason code below and is then closed; a 3.1.1
client is closed; the broker logs why and still serves a fresh client afterwards.

Where MQTT 5 leaves the choice between codes, the codes asserted are ringmq's documented ones
(malformed 0x81 for bad encodings, protocol error 0x82 for bad sequences)."""

import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

MAX_PACKET = 4096
CLIENTS = {"maxPacketSizeBytes": MAX_PACKET}
RINGMQ = {"maxTopicAliases": 10}

MALFORMED, PROTOCOL_ERROR = 0x81, 0x82


def refused(b, data, rc5, versions=(5, 4), log=None, what=""):
    """Connect, send data, expect DISCONNECT rc5 (v5) / a plain close (3.1.1), then check the
    broker log (regex) and that a fresh client is served."""
    for v in versions:
        c = rq.connected(b.port, version=v)
        mark = b.log_mark()
        c.send_raw(data(v) if callable(data) else data)
        res = c.expect_closed(3)
        check(res, "v%d %s: connection not closed (%r)" % (v, what, res))
        if v == 5:
            want = rc5 if isinstance(rc5, tuple) else (rc5,)
            got = None if res.rc is None else "0x%02x" % res.rc
            if rq.MOSQUITTO and res.rc not in want:
                # Reason codes are ringmq's choices; mosquitto is only checked for the close.
                rq.log("mosquitto: %s -> DISCONNECT %s (ringmq: %s)" % (what, got, want))
            else:
                check(res.rc in want, "v5 %s: DISCONNECT reason %s, want %s"
                      % (what, got, " or ".join("0x%02x" % x for x in want)))
        else:
            check(res.rc is None, "3.1.1 %s: got a DISCONNECT packet" % what)
        check(not [p for p in res.packets if p.type == rq.PUBLISH],
              "v%d %s: message delivered before close: %r" % (v, what, res.packets))
        if log:
            check(b.wait_log(log, mark), "v%d %s: no log line matching %r; log:\n%s"
                  % (v, what, log, b.log_since(mark)[-1500:]))
    rq.check_serves(b.port, "after %s" % what)


def refused_connect(b, data, rc, version=5, allow_close=False, what=""):
    """Send a bad CONNECT: expect CONNACK rc (in the given version's format; rc may be a tuple of
    acceptable codes; None: no CONNACK at all) then close, or only a close when allow_close."""
    want = rc if isinstance(rc, tuple) else (rc,)
    c = rq.RawClient(b.port, version=version)
    c.send_raw(data)
    res = c.expect_closed(3)
    check(res, "%s: connection not closed" % what)
    acks = [p for p in res.packets if p.type == rq.CONNACK]
    if rc is None:
        check(not acks, "%s: got %r, want a close without CONNACK" % (what, acks))
    elif not acks:
        check(allow_close, "%s: closed without CONNACK (want rc %s)" % (what, want))
    else:
        check(acks[0].rc in want, "%s: CONNACK return code 0x%02x, want %s"
              % (what, acks[0].rc, " or ".join("0x%02x" % x for x in want)))
    rq.check_serves(b.port, "after %s" % what)


def pub(v, topic, payload=b"x", qos=0, pid=None, props=None, flags=None):
    data = rq.enc_publish(v, topic, payload, qos, False, pid, props)
    if flags is not None:
        data = bytes([0x30 | flags]) + data[1:]
    return data


# --- framing ---------------------------------------------------------------------------------

@case
def remaining_length_five_bytes(b):
    refused(b, b"\x30\xff\xff\xff\xff\x01", MALFORMED, log="malformed|protocol error",
            what="remaining length of 5 bytes")


@case
def packet_larger_than_maximum(b):
    refused(b, lambda v: pub(v, "big", b"x" * (MAX_PACKET + 100)), 0x95,
            what="PUBLISH above maxPacketSizeBytes")


@case
def huge_remaining_length_before_connect(b):
    # 256 MB announced in the first packet: closed at once, nothing of that size allocated.
    rss0 = b.rss_kb()
    conns = []
    for _ in range(4):
        c = rq.RawClient(b.port)
        c.send_raw(b"\x10\xff\xff\xff\x7f" + b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + b"A" * 4000)
        conns.append(c)
    for c in conns:
        res = c.expect_closed(3)
        check(res, "CONNECT announcing 256 MB not closed")
        check(not any(p.type == rq.CONNACK and p.rc == 0 for p in res.packets),
              "CONNACK success for a 256 MB CONNECT: %r" % res.packets)
    rss1 = b.rss_kb()
    check(rss1 - rss0 < 32 * 1024, "broker RSS grew from %d kB to %d kB" % (rss0, rss1))
    rq.check_serves(b.port)


@case
def huge_remaining_length_after_connect(b):
    rss0 = b.rss_kb()
    c = rq.connected(b.port)
    c.send_raw(b"\x30\xff\xff\xff\x7f" + rq.enc_str("t") + b"x" * 60000)
    res = c.expect_closed(3)
    check(res, "PUBLISH announcing 256 MB not closed")
    check_eq(res.rc, 0x95, "DISCONNECT reason for a 256 MB PUBLISH")
    check(b.rss_kb() - rss0 < 32 * 1024, "broker RSS grew by %d kB" % (b.rss_kb() - rss0))
    rq.check_serves(b.port)


@case
def first_packet_not_connect(b):
    for data in (b"\xc0\x00", rq.enc_publish(5, "t", b"x"), rq.enc_subscribe(5, 1, ["t"])):
        c = rq.RawClient(b.port)
        c.send_raw(data)
        res = c.expect_closed(3)
        check(res, "first packet 0x%02x: not closed" % data[0])
        check(res.rc is None and not res.packets,
              "first packet 0x%02x: got packets before close: %r" % (data[0], res))
    rq.check_serves(b.port)


@case
def reserved_packet_type(b):
    refused(b, b"\x00\x00", (MALFORMED, PROTOCOL_ERROR), what="packet type 0")


# --- fixed-header flags --------------------------------------------------------------------

@case
def reserved_flags_subscribe(b):
    refused(b, lambda v: bytes([0x80]) + rq.enc_subscribe(v, 1, ["t"])[1:], MALFORMED,
            what="SUBSCRIBE with flags 0")


@case(mosquitto_differs="2.0.11 ignores PINGREQ flags")
def reserved_flags_pingreq(b):
    refused(b, b"\xc1\x00", MALFORMED, what="PINGREQ with flags 1")


@case
def reserved_flags_pubrel(b):
    refused(b, lambda v: b"\x60" + rq.enc_ack(rq.PUBREL, v, 1)[1:], MALFORMED,
            what="PUBREL with flags 0")


@case
def reserved_flags_unsubscribe(b):
    refused(b, lambda v: bytes([0xa0]) + rq.enc_unsubscribe(v, 1, ["t"])[1:], MALFORMED,
            what="UNSUBSCRIBE with flags 0")


@case(mosquitto_differs="2.0.11 accepts DUP on a QoS 0 PUBLISH")
def publish_qos0_with_dup(b):
    # [MQTT-3.3.1-2]: DUP must be 0 on a QoS 0 PUBLISH; the message is not delivered.
    refused(b, lambda v: pub(v, "t", flags=0x08), MALFORMED, log="DUP set on a QoS 0 PUBLISH",
            what="QoS 0 PUBLISH with DUP")


@case
def publish_qos3(b):
    refused(b, lambda v: pub(v, "t", flags=0x06) + b"", MALFORMED, log="malformed|protocol error",
            what="PUBLISH QoS 3")


# --- strings and topics --------------------------------------------------------------------

@case
def topic_invalid_utf8(b):
    refused(b, lambda v: pub(v, b"a/\xff"), MALFORMED, what="topic with byte 0xFF")
    refused(b, lambda v: pub(v, b"a/\xed\xa0\x80"), MALFORMED, what="topic with a surrogate")


@case
def topic_nul_character(b):
    refused(b, lambda v: pub(v, b"a\x00b"), MALFORMED, what="topic with U+0000")


@case
def filter_invalid_utf8(b):
    refused(b, lambda v: rq.enc_subscribe(v, 1, [(b"f/\xc3", 0)]), MALFORMED,
            what="filter with truncated UTF-8")


@case
def wildcard_in_topic_name(b):
    refused(b, lambda v: pub(v, "a/+"), MALFORMED, what="'+' in a topic name")
    refused(b, lambda v: pub(v, "a/#"), MALFORMED, what="'#' in a topic name")


@case
def misplaced_wildcard_in_filter(b):
    for f in ("a/#/b", "a+", "a/b#", "#a"):
        refused(b, lambda v: rq.enc_subscribe(v, 1, [(f, 0)]), MALFORMED,
                what="filter %r" % f)


@case
def empty_topic_without_alias(b):
    refused(b, lambda v: pub(v, ""), PROTOCOL_ERROR, what="empty topic without an alias")


@case
def string_longer_than_packet(b):
    # Topic length 100 in a 10-byte PUBLISH.
    refused(b, b"\x30\x0a\x00\x64abcdefgh", MALFORMED, what="string length past the packet end")


# --- packet identifiers, sequence -----------------------------------------------------------

@case
def packet_id_zero(b):
    refused(b, lambda v: pub(v, "t", qos=1, pid=0), PROTOCOL_ERROR, what="PUBLISH QoS 1 pid 0")
    refused(b, lambda v: rq.enc_subscribe(v, 0, [("t", 0)]), (PROTOCOL_ERROR, MALFORMED),
            what="SUBSCRIBE pid 0")


@case
def second_connect(b):
    refused(b, lambda v: rq.enc_connect(v, client_id="again"), PROTOCOL_ERROR,
            log="malformed|protocol error", what="second CONNECT")


@case
def server_packets_from_client(b):
    refused(b, b"\x20\x02\x00\x00", PROTOCOL_ERROR, what="CONNACK from a client")


@case(mosquitto_differs="2.0.11 ignores SUBACK (3.1.1) and PINGRESP from a client")
def suback_from_client(b):
    refused(b, b"\x90\x03\x00\x01\x00", PROTOCOL_ERROR, versions=(4,), what="SUBACK from a client")
    refused(b, b"\x90\x04\x00\x01\x00\x00", PROTOCOL_ERROR, versions=(5,),
            what="SUBACK from a client")
    refused(b, b"\xd0\x00", PROTOCOL_ERROR, what="PINGRESP from a client")


@case
def subscribe_without_filters(b):
    # [MQTT-3.8.3-2]: a SUBSCRIBE with no topic filter is a protocol error.
    refused(b, lambda v: rq.packet(rq.SUBSCRIBE, 2, b"\x00\x01" + (b"\x00" if v == 5 else b"")),
            PROTOCOL_ERROR, what="SUBSCRIBE without filters")


# --- properties ----------------------------------------------------------------------------

@case
def duplicate_property(b):
    props = [("content_type", "a"), ("content_type", "b")]
    refused(b, pub(5, "t", props=props), PROTOCOL_ERROR, versions=(5,),
            what="duplicate Content Type")


@case
def property_not_allowed_in_packet(b):
    refused(b, pub(5, "t", props={"session_expiry_interval": 5}), MALFORMED, versions=(5,),
            what="Session Expiry Interval in PUBLISH")


@case(mosquitto_differs="2.0.11 accepts a Subscription Identifier from a client")
def publish_with_subscription_identifier(b):
    # [MQTT-3.3.4-6]: a PUBLISH from a client must not carry a Subscription Identifier.
    refused(b, pub(5, "t", props={"subscription_identifier": 7}), PROTOCOL_ERROR, versions=(5,),
            log=r"subscription identifier in a PUBLISH from a client",
            what="Subscription Identifier in PUBLISH")


@case(mosquitto_differs="2.0.11 accepts wildcards in a Response Topic")
def response_topic_with_wildcard(b):
    # [MQTT-3.3.2-14]: the Response Topic is a topic name: no wildcards.
    for rt in ("reply/+", "reply/#"):
        refused(b, pub(5, "t", props={"response_topic": rt}), PROTOCOL_ERROR, versions=(5,),
                log=r"wildcard in the response topic", what="Response Topic %r" % rt)
    c = rq.RawClient(b.port, version=5)
    will = dict(topic="w", payload=b"x", props={"response_topic": "r/#"})
    c.send_raw(rq.enc_connect(5, client_id="rt", will=will))
    res = c.expect_closed(3)
    acks = [p for p in res.packets if p.type == rq.CONNACK]
    check(res and acks and acks[0].rc == PROTOCOL_ERROR,
          "will Response Topic r/#: want CONNACK 0x82 and close, got %r" % res)


@case(mosquitto_differs="2.0.11 accepts reason codes PUBREL does not define")
def pubrel_undefined_reason_code(b):
    # PUBREL defines only 0x00 and 0x92 (5.0 section 3.6.2.1): anything else is malformed, not
    # answered with PUBCOMP 0x92 as before.
    for rc in (0x10, 0x80, 0x87):
        refused(b, rq.packet(rq.PUBREL, 2, bytes([0, 1, rc])), MALFORMED, versions=(5,),
                log=r"reason code not defined for this acknowledgement",
                what="PUBREL reason 0x%02x" % rc)
    refused(b, rq.packet(rq.PUBACK, 0, bytes([0, 1, 0x92])), MALFORMED, versions=(5,),
            what="PUBACK reason 0x92")


@case(mosquitto_differs="2.0.11 takes a will on $SYS/")
def will_topic_reserved(b):
    # A will is published later on the client's behalf: $SYS and $share/ are refused at CONNECT
    # (v5 0x87, 3.1.1 return code 5 Not authorized).
    for v, want in ((5, 0x87), (4, 0x05)):
        for topic in ("$SYS/broker/uptime", "$share/g/t"):
            refused_connect(b, rq.enc_connect(v, client_id="w", will=dict(topic=topic)), want,
                            version=v, what="v%d will topic %s" % (v, topic))


@case
def unknown_property(b):
    refused(b, pub(5, "t", props=[(0x7f, 1)]), MALFORMED, versions=(5,),
            what="unknown property id 0x7F")


@case
def properties_length_past_end(b):
    body = rq.enc_str("t") + b"\x20\x01\x01"  # properties length 32, only 2 bytes follow
    refused(b, rq.packet(rq.PUBLISH, 0, body), MALFORMED, versions=(5,),
            what="property length past the packet end")


@case
def topic_alias_zero(b):
    refused(b, pub(5, "t", props={"topic_alias": 0}), 0x94, versions=(5,), what="topic alias 0")


@case
def topic_alias_above_maximum(b):
    refused(b, pub(5, "t", props={"topic_alias": 11}), 0x94, versions=(5,),
            what="topic alias 11 with Topic Alias Maximum 10")


@case
def unknown_topic_alias(b):
    refused(b, pub(5, "", props={"topic_alias": 3}), PROTOCOL_ERROR, versions=(5,),
            what="empty topic with an alias never set")


@case
def subscribe_option_reserved_bits(b):
    refused(b, rq.enc_subscribe(5, 1, [("t", 0xc0)]), MALFORMED, versions=(5,),
            what="subscription options with reserved bits")
    refused(b, rq.enc_subscribe(5, 1, [("t", 0x30)]), MALFORMED, versions=(5,),
            what="Retain Handling 3")


@case(mosquitto_differs="2.0.11 accepts No Local on a shared subscription")
def no_local_on_shared_subscription(b):
    # [MQTT-3.8.3-4]
    refused(b, rq.enc_subscribe(5, 1, [("$share/g/t", rq.sub_opts(0, no_local=True))]),
            PROTOCOL_ERROR, versions=(5,), what="No Local on a shared subscription")


# --- CONNECT -------------------------------------------------------------------------------

@case
def connect_reserved_flag(b):
    refused_connect(b, rq.enc_connect(5, client_id="r", reserved=True), MALFORMED,
                    allow_close=True, what="CONNECT reserved flag")


@case
def connect_will_qos3(b):
    data = bytearray(rq.enc_connect(5, client_id="w", will={"topic": "w", "payload": b"x"}))
    data[9] |= 0x18  # will QoS 3
    refused_connect(b, bytes(data), MALFORMED, allow_close=True, what="will QoS 3")


@case
def connect_will_qos_without_will(b):
    data = bytearray(rq.enc_connect(5, client_id="w"))
    data[9] |= 0x08  # will QoS 1, will flag 0 [MQTT-3.1.2-11]
    refused_connect(b, bytes(data), (MALFORMED, PROTOCOL_ERROR), allow_close=True,
                    what="will QoS without will")


@case
def connect_password_without_username_v311(b):
    # [MQTT-3.1.2-22] (3.1.1 only; MQTT 5 allows it).
    c = rq.RawClient(b.port, version=4)
    c.send_raw(rq.enc_connect(4, client_id="p", password="secret"))
    res = c.expect_closed(3)
    check(res, "3.1.1 password without user name: not closed")
    check(not any(p.type == rq.CONNACK and p.rc == 0 for p in res.packets),
          "3.1.1 password without user name accepted")
    rq.check_serves(b.port)


@case(mosquitto_differs="2.0.11 answers level 6 with the 3.1.1 CONNACK 0x01")
def connect_protocol_level_6(b):
    # A level above 5 is a client newer than us: the v5-format CONNACK 0x84 (5.0 section
    # 3.1.2.2), then the close.
    c = rq.RawClient(b.port, version=5)
    c.send_raw(rq.enc_connect(5, client_id="l6", level=6))
    res = c.expect_closed(3)
    check(res, "protocol level 6: not closed")
    acks = [p for p in res.packets if p.type == rq.CONNACK]
    check(len(acks) == 1, "protocol level 6: want one CONNACK, got %r" % res.packets)
    check_eq((acks[0].raw[:2], len(acks[0].raw) > 2), (b"\x00\x84", True),
             "protocol level 6: CONNACK (flags and reason, v5 format with properties)")
    rq.check_serves(b.port)


@case
def connect_protocol_levels_0_to_2(b):
    # 3.1.1 [MQTT-3.1.2-2]: an unsupported level, 0 included, gets CONNACK 0x01, then the close
    # (level 0 was closed without CONNACK before).
    for level in (0, 1, 2):
        mark = b.log_mark()
        refused_connect(b, rq.enc_connect(4, client_id="l%d" % level, level=level), 0x01,
                        version=4, what="protocol level %d" % level)
        check(rq.MOSQUITTO or b.wait_log(r"CONNECT refused: unsupported protocol name or level",
                                         mark),
              "protocol level %d: no log line; log:\n%s" % (level, b.log_since(mark)[-800:]))


@case(mosquitto_differs="2.0.11 closes without CONNACK")
def connect_level3_with_mqtt_name(b):
    # 3.1.1 [MQTT-3.1.2-2]: unsupported level -> CONNACK 0x01 and close.
    refused_connect(b, rq.enc_connect(4, client_id="l3", proto_name="MQTT", level=3), 0x01,
                    version=4, what="level 3 with protocol name MQTT")


@case
def connect_wrong_protocol_name(b):
    refused_connect(b, rq.enc_connect(4, client_id="n", proto_name="MQTX"), 0x01, version=4,
                    allow_close=True, what="protocol name MQTX")


@case
def connect_truncated_fields(b):
    # Declares a client id longer than what is left.
    body = rq.enc_str("MQTT") + b"\x05\x02\x00\x3c\x00" + struct.pack(">H", 50) + b"short"
    refused_connect(b, rq.packet(rq.CONNECT, 0, body), MALFORMED, version=5, allow_close=True,
                    what="v5 client id past the packet end")
    # 3.1.1 has no return code for a malformed CONNECT: close without CONNACK [MQTT-4.8.0-1].
    body = rq.enc_str("MQTT") + b"\x04\x02\x00\x3c" + struct.pack(">H", 50) + b"short"
    refused_connect(b, rq.packet(rq.CONNECT, 0, body), None, version=4,
                    what="3.1.1 client id past the packet end")


FORGED_ID = "evil\n2026-01-01T00:00 error forged \\x0a \"q\" \u202e"


def peer_text_traffic(port):
    """A client whose id and topic carry a newline, a backslash, quotes and a right-to-left
    override: connect, a refused $SYS publish, a malformed packet (the close is logged with the
    id), then a clean session that ends (logged with the id)."""
    c = rq.connected(port, client_id=FORGED_ID)
    c.publish("$SYS/a\nb", b"x", qos=1)
    c.send_raw(pub(5, "t", flags=0x08))
    c.expect_closed(3)
    rq.connected(port, client_id=FORGED_ID + "2").disconnect()


@case(ringmq_only="log format")
def peer_text_escaped_in_log(b):
    # A client id with a newline forged a log line (the session's lines printed it raw).
    mark = b.log_mark()
    peer_text_traffic(b.port)
    check(b.wait_log(r"session \"evil\\x0a2026.*\" ended", mark),
          "no escaped session line; log:\n%s" % b.log_since(mark)[-2000:])
    text = b.log_since(mark)
    for ln in text.splitlines():
        check(not ln.startswith("2026-01-01"), "a client forged a log line: %r" % ln)
        check("\u202e" not in ln, "raw right-to-left override in the log: %r" % ln)
    check("\\x5cx0a \\x22q\\x22 \\u202e" in text,
          "backslash, quotes and U+202E not escaped; log:\n%s" % text[-2000:])
    check("PUBLISH to \"$SYS/a\\x0ab\" dropped" in text,
          "topic not escaped in the refusal line; log:\n%s" % text[-2000:])


@case(ringmq_only="log format")
def peer_text_in_json_log(b):
    import json
    yaml = rq.std_yaml(clients=CLIENTS, ringmq=dict(RINGMQ, logFormat="json"))
    with rq.start_broker(yaml) as b2:
        peer_text_traffic(b2.port)
        check(b2.wait_log(r"ended", 0), "no session line in the JSON log")
        ids = set()
        for ln in b2.log().splitlines():
            try:
                rec = json.loads(ln)
            except ValueError:
                check(False, "log line is not JSON: %r" % ln)
                continue
            ids.add(rec.get("client"))
            check("\n" not in rec.get("msg", ""), "newline inside a JSON message: %r" % ln)
        check("evil\\x0a2026-01-01T00:00 error forged \\x5cx0a \\x22q\\x22 \\u202e" in ids,
              "client ids in the JSON log: %r" % ids)


@case
def broker_survives_garbage(b):
    # A burst of assorted junk on several connections; the broker must keep serving.
    junk = [b"\xff" * 64, b"\x10\x00", b"\x10\x7f" + b"\x00" * 20, bytes(range(256)),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]
    for j in junk:
        c = rq.RawClient(b.port)
        c.send_raw(j)
        c.expect_closed(3)
    rq.check_serves(b.port)


if __name__ == "__main__":
    rq.run(rq.fixture_broker(lambda: rq.std_yaml(clients=CLIENTS, ringmq=RINGMQ)), timeout=120)
