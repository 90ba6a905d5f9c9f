#!/usr/bin/python3
"""01 connect: CONNACK contents (v5 properties, 3.1.1 return codes), session present, session
takeover, connect timeout and keep alive."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

CLIENTS = {"maxKeepAliveSeconds": 60, "maxPacketSizeBytes": 1048576}
RINGMQ = {"maxInflight": 20, "maxTopicAliases": 10, "connectTimeoutSeconds": 2}


@case
def connack_v5_properties(b):
    c = rq.RawClient(b.port)
    ack = c.connect(version=5, client_id="", keepalive=100)
    check_eq(ack.rc, 0, "CONNACK reason code")
    check_eq(ack.session_present, False, "session present for a new clean session")
    p = ack.props
    check_eq(p.get("receive_maximum"), 20, "Receive Maximum (= ringmq.maxInflight)")
    check_eq(p.get("maximum_packet_size"), 1048576, "Maximum Packet Size (= maxPacketSizeBytes)")
    check_eq(p.get("topic_alias_maximum"), 10, "Topic Alias Maximum (= ringmq.maxTopicAliases)")
    check(p.get("assigned_client_identifier"), "no Assigned Client Identifier for an empty id: %r"
          % p)
    check_eq(p.get("server_keep_alive"), 60, "Server Keep Alive when 100 > maxKeepAliveSeconds")
    c.ping()
    c.disconnect()


@case
def assigned_ids_are_unique(b):
    ids = set()
    for _ in range(3):
        c = rq.connected(b.port, client_id="")
        ids.add(c.connack.props.get("assigned_client_identifier"))
        c.disconnect()
    check(len(ids) == 3 and None not in ids, "assigned client ids not unique: %r" % ids)


@case
def no_server_keepalive_below_max(b):
    c = rq.connected(b.port, keepalive=30)
    ka = c.connack.props.get("server_keep_alive")
    check(ka in (None, 30), "Server Keep Alive %r for a keep alive within the maximum" % ka)
    c.disconnect()


@case
def keepalive_zero_capped(b):
    # [MQTT-3.2.2-21]: a server with a maximum may answer 0 ("no keep alive") with its own value.
    c = rq.connected(b.port, keepalive=0)
    ka = c.connack.props.get("server_keep_alive")
    check(ka in (None, 0, 60), "Server Keep Alive %r for keep alive 0" % ka)
    c.disconnect()


@case
def v311_connack(b):
    c = rq.RawClient(b.port, version=4)
    ack = c.connect(version=4, client_id=rq.uniq("v3"), clean=True)
    check_eq((ack.rc, ack.session_present), (0, False), "3.1.1 CONNACK (rc, session present)")
    check_eq(len(ack.raw), 2, "3.1.1 CONNACK body length")
    c.ping()
    c.disconnect()


@case
def v311_empty_id_clean_session(b):
    c = rq.RawClient(b.port, version=4)
    ack = c.connect(version=4, client_id="", clean=True)
    check_eq(ack.rc, 0, "3.1.1 empty client id with clean session 1")
    c.ping()
    c.disconnect()


@case
def v311_empty_id_persistent_rejected(b):
    # [MQTT-3.1.3-8]: empty client id with CleanSession 0 -> CONNACK 0x02, then close.
    c = rq.RawClient(b.port, version=4)
    ack = c.connect(version=4, client_id="", clean=False)
    check_eq(ack.rc, 2, "3.1.1 CONNACK return code for empty id + clean session 0")
    check(c.expect_closed(3), "connection not closed after CONNACK 2")


# --- MQTT 3.1 ("MQIsdp", level 3), which old devices still speak ------------------------------

@case
def mqtt31_connect_and_publish(b):
    cid = rq.uniq("v31")
    c = rq.connected(b.port, cid, version=3)
    check_eq(c.connack.raw, b"\x00\x00", "3.1 CONNACK")
    t = "v31/" + cid
    check_eq(c.subscribe([(t, 1)]).codes, [1], "3.1 SUBACK")
    check_eq(len(c.publish(t, b"hello", qos=1).raw), 2, "3.1 PUBACK body length")
    check_eq(c.recv_publish(3).payload, b"hello", "3.1 delivery")
    c.disconnect()


@case
def mqtt31_empty_client_id_rejected(b):
    # MQTT 3.1 section 3.1: the client identifier is 1 to 23 characters; return code 2
    # (identifier rejected) and close, whatever Clean Session says.
    for clean in (True, False):
        c = rq.RawClient(b.port, version=3)
        ack = c.connect(version=3, client_id="", clean=clean)
        check_eq((ack.raw, ack.rc), (b"\x00\x02", 2),
                 "3.1 CONNACK for an empty client id (clean session %d)" % clean)
        check(c.expect_closed(3), "connection not closed after CONNACK 2")


@case
def mqtt31_connack_first_byte_reserved(b):
    # 3.1 has no Session Present: the CONNACK's first byte is reserved, 0, even on resume.
    cid = rq.uniq("v31sp")
    c = rq.connected(b.port, cid, version=3, clean=False)
    c.subscribe([("v31/" + cid, 1)])
    c.disconnect()
    c = rq.connected(b.port, cid, version=3, clean=False)
    check_eq(c.connack.raw, b"\x00\x00", "3.1 CONNACK on a resumed session")
    check_eq(c.subscribe([("v31/" + cid, 1)]).codes, [1], "3.1 session still usable")
    c.disconnect()
    c = rq.connected(b.port, cid, version=4, clean=False)  # the same session seen by 3.1.1
    check_eq(c.connack.session_present, True, "3.1.1 Session Present for the same session")
    c.disconnect()


@case
def mqtt31_resent_pubrel_with_dup(b):
    # 3.1 gives a resent PUBREL the DUP flag (fixed header 0x6A); 3.1.1 made it reserved.
    cid = rq.uniq("v31rel")
    t = "v31/" + cid
    s = rq.connected(b.port, version=4)
    s.subscribe([(t, 2)])
    p = rq.connected(b.port, cid, version=3)
    p.send_raw(rq.enc_publish(3, t, b"once", qos=2, pid=5))
    p.wait_for(rq.PUBREC, 3, pid=5)
    p.send_raw(b"\x6a\x02\x00\x05")  # PUBREL, DUP: as if the first one was lost
    check_eq(p.wait_for(rq.PUBCOMP, 3, pid=5).raw, b"\x00\x05", "PUBCOMP for PUBREL with DUP")
    p.send_raw(b"\x6a\x02\x00\x05")  # and once more: still answered
    p.wait_for(rq.PUBCOMP, 3, pid=5)
    p.send_raw(b"\x8a\x06\x00\x09\x00\x01t\x01")  # a resent SUBSCRIBE with DUP
    check_eq(p.wait_for(rq.SUBACK, 3, pid=9).codes, [1], "SUBACK for SUBSCRIBE with DUP")
    p.ping()
    got = s.collect(1.0)
    check_eq([m.payload for m in got], [b"once"], "delivered exactly once")
    p.disconnect()
    s.disconnect()
    # 3.1.1 still refuses DUP on PUBREL (reserved flags)
    q = rq.connected(b.port, version=4)
    q.send_raw(b"\x6a\x02\x00\x05")
    check(q.expect_closed(3), "3.1.1 PUBREL with DUP not closed")


@case
def session_present_v5(b):
    cid = rq.uniq("sp5")
    props = {"session_expiry_interval": 60}
    c = rq.connected(b.port, cid, clean=True, props=props)
    check_eq(c.connack.session_present, False, "session present on clean start")
    c.subscribe("sp/" + cid, qos=1)
    c.disconnect()
    c = rq.connected(b.port, cid, clean=False, props=props)
    check_eq(c.connack.session_present, True, "session present on resume")
    c.disconnect()
    c = rq.connected(b.port, cid, clean=True, props={"session_expiry_interval": 0})
    check_eq(c.connack.session_present, False, "session present with clean start 1")
    c.disconnect()


@case
def session_present_v311(b):
    cid = rq.uniq("sp3")
    c = rq.connected(b.port, cid, version=4, clean=False)
    check_eq(c.connack.session_present, False, "session present for a new persistent session")
    c.subscribe("sp/" + cid, qos=1)
    c.disconnect()
    c = rq.connected(b.port, cid, version=4, clean=False)
    check_eq(c.connack.session_present, True, "session present on resume (3.1.1)")
    c.disconnect()
    c = rq.connected(b.port, cid, version=4, clean=True)
    check_eq(c.connack.session_present, False, "session present with clean session 1")
    c.disconnect()


@case(mosquitto_differs="2.0.11 closes the old connection without DISCONNECT 0x8E")
def takeover_v5(b):
    cid = rq.uniq("take5")
    old = rq.connected(b.port, cid)
    new = rq.connected(b.port, cid)
    res = old.expect_closed(3)
    check(res, "old connection not closed on takeover: %r" % res)
    check_eq(res.rc, 0x8E, "DISCONNECT reason to the old connection (Session taken over)")
    new.ping()
    new.disconnect()


@case
def takeover_v311(b):
    cid = rq.uniq("take3")
    old = rq.connected(b.port, cid, version=4)
    new = rq.connected(b.port, cid, version=4)
    res = old.expect_closed(3)
    check(res, "old 3.1.1 connection not closed on takeover")
    check(res.rc is None, "3.1.1 client got a DISCONNECT packet: %r" % res)
    new.ping()
    new.disconnect()


@case
def takeover_keeps_subscriptions(b):
    cid = rq.uniq("take-sub")
    t = "take/" + cid
    props = {"session_expiry_interval": 60}
    old = rq.connected(b.port, cid, clean=True, props=props)
    old.subscribe(t, qos=1)
    new = rq.connected(b.port, cid, clean=False, props=props)
    check_eq(new.connack.session_present, True, "session present after takeover")
    old.expect_closed(3)
    p = rq.connected(b.port)
    p.publish(t, b"after-takeover", qos=1)
    m = new.recv_publish(3)
    check_eq(m.payload, b"after-takeover", "message on the taken-over session")
    new.disconnect()
    p.disconnect()


@case(ringmq_only="connectTimeoutSeconds",
      mosquitto_differs="no connect timeout")
def connect_timeout(b):
    c = rq.RawClient(b.port)
    t0 = time.monotonic()
    res = c.expect_closed(6)
    dt = time.monotonic() - t0
    check(res, "silent TCP connection not closed within 6 s (connectTimeoutSeconds 2)")
    check(1.5 <= dt <= 4.0, "closed after %.1f s, want about 2 s" % dt)
    check(not res.packets, "got packets before close: %r" % res.packets)
    check(b.wait_log(r"connect timeout|no CONNECT", 0), "no log line about the connect timeout")


@case(ringmq_only="connectTimeoutSeconds")
def connect_timeout_partial_connect(b):
    # Half a CONNECT is no better than nothing.
    c = rq.RawClient(b.port)
    data = rq.enc_connect(5, client_id="partial")
    c.send_raw(data[:6])
    t0 = time.monotonic()
    res = c.expect_closed(6)
    dt = time.monotonic() - t0
    check(res, "half-sent CONNECT not closed within 6 s")
    check(1.5 <= dt <= 4.0, "half-sent CONNECT closed after %.2f s, want about 2 s (a partial"
          " packet is not an error): %r" % (dt, res))
    rq.check_serves(b.port)


@case(mosquitto_differs="checks keep alive only every few seconds, no DISCONNECT 0x8D")
def keepalive_v5(b):
    mark = b.log_mark()
    c = rq.connected(b.port, keepalive=1)
    t0 = time.monotonic()
    res = c.expect_closed(5)
    dt = time.monotonic() - t0
    check(res, "client silent past 1.5 x keep alive not closed")
    check(1.2 <= dt <= 3.0, "closed after %.2f s, want 1.5 s (1.5 x keep alive 1)" % dt)
    check_eq(res.rc, 0x8D, "DISCONNECT reason (Keep Alive timeout)")
    check(b.wait_log(r"keep ?alive", mark), "no log line about the keep alive timeout")


@case(mosquitto_differs="checks keep alive only every few seconds")
def keepalive_v311(b):
    c = rq.connected(b.port, version=4, keepalive=1)
    t0 = time.monotonic()
    res = c.expect_closed(5)
    dt = time.monotonic() - t0
    check(res, "3.1.1 client silent past 1.5 x keep alive not closed")
    check(1.2 <= dt <= 3.0, "closed after %.2f s, want 1.5 s" % dt)


@case
def keepalive_kept_by_pings(b):
    c = rq.connected(b.port, keepalive=1)
    for _ in range(6):
        time.sleep(0.5)
        c.ping(2)
    c.disconnect()


@case
def keepalive_kept_by_publishes(b):
    c = rq.connected(b.port, keepalive=1)
    for i in range(6):
        time.sleep(0.5)
        c.publish("ka/" + c.client_id, b"%d" % i, qos=1)
    c.ping(2)
    c.disconnect()


@case(ringmq_only="Server Keep Alive enforcement is ringmq's choice",
      mosquitto_differs="mosquitto checks the client's value")
def server_keepalive_enforced(b):
    # With maxKeepAliveSeconds 1 a client asking 100 is told 1 and closed after 1.5 s.
    with rq.start_broker(rq.std_yaml(clients={"maxKeepAliveSeconds": 1}, ringmq=RINGMQ)) as b2:
        c = rq.connected(b2.port, keepalive=100)
        check_eq(c.connack.props.get("server_keep_alive"), 1, "Server Keep Alive")
        t0 = time.monotonic()
        res = c.expect_closed(5)
        check(res and time.monotonic() - t0 <= 3.0, "not closed after the server keep alive")


@case
def real_clients_connect(b):
    for v in (4, 5):
        r = rq.mosq_pub(b.port, "rc/" + rq.uniq(), "x", version=v)
        check_eq(r.returncode, 0, "mosquitto_pub -V %d exit code (%s)" % (v, r.stderr))
    for v in (4, 5):
        p = rq.Paho(b.port, version=v)
        p.disconnect()


if __name__ == "__main__":
    rq.run(rq.fixture_broker(lambda: rq.std_yaml(clients=CLIENTS, ringmq=RINGMQ)), timeout=90)
