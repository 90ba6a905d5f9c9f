#!/usr/bin/python3
"""03 publish/QoS: exact QoS 0/1/2 packet flows in both directions, duplicates, exactly-once
across a reconnect, redelivery with DUP, Receive Maximum in both directions, ordering, and real
clients (paho, mosquitto_pub/sub) at every QoS."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

RINGMQ = {"maxInflight": 20}


def pair(b, version=5, sub_qos=2, topic=None, sub_props=None, sub_kw=None):
    t = topic or rq.uniq("q")
    s = rq.connected(b.port, version=version, **(sub_kw or {}))
    check_eq(s.subscribe([(t, sub_qos)], props=sub_props).codes, [sub_qos], "SUBACK")
    p = rq.connected(b.port, version=version)
    return t, s, p


@case
def qos0_flow(b):
    for v in (5, 4):
        t, s, p = pair(b, v)
        r = p.publish(t, b"zero", qos=0)
        check(r is None, "QoS 0 publish")
        m = s.recv_publish(3)
        check_eq((m.qos, m.pid, m.dup, m.payload), (0, None, False, b"zero"),
                 "v%d QoS 0 delivery (qos, pid, dup, payload)" % v)
        p.expect_nothing(0.3, "ack for QoS 0")
        s.disconnect()
        p.disconnect()


@case
def qos1_flow(b):
    for v in (5, 4):
        t, s, p = pair(b, v)
        pid = 4242
        p.send_raw(rq.enc_publish(v, t, b"one", qos=1, pid=pid))
        ack = p.wait_for(rq.PUBACK, 3)
        check_eq((ack.pid, ack.rc), (pid, 0x00), "PUBACK (packet id, reason: a subscriber took it)")
        m = s.recv_publish(3, ack=False)
        check_eq((m.qos, m.dup, m.payload), (1, False, b"one"), "v%d QoS 1 delivery" % v)
        check(m.pid and m.pid > 0, "QoS 1 delivery without a packet id")
        s.send_raw(rq.enc_ack(rq.PUBACK, v, m.pid))
        s.expect_nothing(0.4, "redelivery after PUBACK")
        s.disconnect()
        p.disconnect()


@case
def qos2_flow(b):
    for v in (5, 4):
        t, s, p = pair(b, v)
        pid = 777
        p.send_raw(rq.enc_publish(v, t, b"two", qos=2, pid=pid))
        rec = p.wait_for(rq.PUBREC, 3)
        check_eq((rec.pid, rec.rc), (pid, 0x00), "PUBREC (pid, reason: a subscriber took it)")
        # The broker may deliver on PUBLISH or on PUBREL ([MQTT-4.3.3] method A or B), so the
        # publisher's flow completes first.
        p.send_raw(rq.enc_ack(rq.PUBREL, v, pid))
        comp = p.wait_for(rq.PUBCOMP, 3)
        check_eq((comp.pid, comp.rc), (pid, 0), "PUBCOMP to publisher")
        m = s.recv_publish(3, ack=False)
        check_eq((m.qos, m.dup, m.payload), (2, False, b"two"), "v%d QoS 2 delivery" % v)
        s.send_raw(rq.enc_ack(rq.PUBREC, v, m.pid))
        rel = s.wait_for(rq.PUBREL, 3)
        check_eq((rel.pid, rel.flags), (m.pid, 0x2), "PUBREL to subscriber (pid, flags)")
        s.send_raw(rq.enc_ack(rq.PUBCOMP, v, m.pid))
        s.expect_nothing(0.4, "more packets after PUBCOMP")
        s.disconnect()
        p.disconnect()


@case
def qos2_duplicate_publish_not_redelivered(b):
    # Publisher resends PUBLISH (DUP) before PUBREL: the broker must not deliver it twice.
    t, s, p = pair(b)
    p.send_raw(rq.enc_publish(5, t, b"once", qos=2, pid=9))
    p.wait_for(rq.PUBREC, 3)
    p.send_raw(rq.enc_publish(5, t, b"once", qos=2, pid=9, dup=True))
    check_eq(p.wait_for(rq.PUBREC, 3).pid, 9, "PUBREC for the duplicate")
    p.send_raw(rq.enc_ack(rq.PUBREL, 5, 9))
    p.wait_for(rq.PUBCOMP, 3)
    got = s.collect(0.6)
    check_eq([m.payload for m in got], [b"once"], "copies delivered")
    s.disconnect()
    p.disconnect()


@case
def qos2_pid_reusable_after_pubcomp(b):
    t, s, p = pair(b)
    for i in range(3):
        p.publish(t, b"%d" % i, qos=2, pid=5)
    check_eq([m.payload for m in s.collect(0.6, count=3)], [b"0", b"1", b"2"],
             "three messages with the same packet id, one after the other")
    s.disconnect()
    p.disconnect()


@case
def qos2_publisher_reconnect_pubrel(b):
    # Publisher loses the connection after PUBREC, resumes its session and sends PUBREL.
    t, s, _ = pair(b)
    cid = rq.uniq("pub2")
    props = {"session_expiry_interval": 60}
    p = rq.connected(b.port, cid, props=props)
    p.send_raw(rq.enc_publish(5, t, b"x", qos=2, pid=31))
    p.wait_for(rq.PUBREC, 3)
    p.close()
    p = rq.connected(b.port, cid, clean=False, props=props)
    check_eq(p.connack.session_present, True, "publisher session present")
    p.send_raw(rq.enc_ack(rq.PUBREL, 5, 31))
    comp = p.wait_for(rq.PUBCOMP, 3)
    check_eq((comp.pid, comp.rc), (31, 0), "PUBCOMP after resumed PUBREL")
    check_eq([m.payload for m in s.collect(0.6)], [b"x"], "copies delivered")
    s.disconnect()
    p.disconnect(props={"session_expiry_interval": 0})


@case
def qos2_exactly_once_across_reconnect(b):
    cid = rq.uniq("sub2")
    props = {"session_expiry_interval": 60}
    t = rq.uniq("eo")
    s = rq.connected(b.port, cid, props=props)
    s.subscribe(t, qos=2)
    p = rq.connected(b.port)
    p.publish(t, b"exactly-once", qos=2)
    m = s.recv_publish(3, ack=False)
    check_eq(m.dup, False, "DUP on first delivery")
    s.close()  # no PUBREC
    s = rq.connected(b.port, cid, clean=False, props=props)
    check_eq(s.connack.session_present, True, "session present")
    m2 = s.recv_publish(3, ack=False)
    check_eq((m2.payload, m2.pid, m2.dup, m2.qos), (b"exactly-once", m.pid, True, 2),
             "redelivery (payload, same pid, DUP, qos)")
    s.ack(m2)
    s.expect_nothing(0.6, "further copies")
    s.close()
    s = rq.connected(b.port, cid, clean=False, props=props)
    s.expect_nothing(0.6, "copies after the flow completed")
    s.disconnect(props={"session_expiry_interval": 0})
    p.disconnect()


@case
def qos2_pubrel_resent_after_reconnect(b):
    # Subscriber sent PUBREC, then lost the connection: the broker resends PUBREL, not PUBLISH.
    cid = rq.uniq("sub2r")
    props = {"session_expiry_interval": 60}
    t = rq.uniq("rel")
    s = rq.connected(b.port, cid, props=props)
    s.subscribe(t, qos=2)
    p = rq.connected(b.port)
    p.publish(t, b"x", qos=2)
    m = s.recv_publish(3, ack=False)
    s.send_raw(rq.enc_ack(rq.PUBREC, 5, m.pid))
    s.wait_for(rq.PUBREL, 3)
    s.close()
    s = rq.connected(b.port, cid, clean=False, props=props)
    pk = s.recv_packet(3)
    check(pk is not None and pk.type == rq.PUBREL and pk.pid == m.pid,
          "after reconnect: want PUBREL pid %d, got %r" % (m.pid, pk))
    s.send_raw(rq.enc_ack(rq.PUBCOMP, 5, m.pid))
    s.expect_nothing(0.6, "PUBLISH after PUBREL was resent")
    s.disconnect(props={"session_expiry_interval": 0})
    p.disconnect()


@case
def qos1_redelivery_with_dup_v311(b):
    cid = rq.uniq("sub1")
    t = rq.uniq("dup")
    s = rq.connected(b.port, cid, version=4, clean=False)
    s.subscribe(t, qos=1)
    p = rq.connected(b.port, version=4)
    p.publish(t, b"again", qos=1)
    m = s.recv_publish(3, ack=False)
    s.close()
    s = rq.connected(b.port, cid, version=4, clean=False)
    m2 = s.recv_publish(3)
    check_eq((m2.payload, m2.pid, m2.dup), (b"again", m.pid, True),
             "3.1.1 redelivery (payload, same pid, DUP)")
    s.expect_nothing(0.5, "further copies")
    s.disconnect()
    rq.connected(b.port, cid, version=4, clean=True).disconnect()
    p.disconnect()


@case
def ordering_qos1(b):
    t, s, p = pair(b, sub_qos=1)
    n = 100
    for i in range(n):
        p.publish(t, b"%d" % i, qos=1, wait=False)
    for i in range(n):
        p.wait_for(rq.PUBACK, 3)
    got = [m.payload for m in s.collect(0.8, count=n)]
    check_eq(got, [b"%d" % i for i in range(n)], "order of QoS 1 messages from one publisher")
    s.disconnect()
    p.disconnect()


@case
def large_messages(b):
    # Packets larger than one receive buffer, back to back, in both directions; payloads differ
    # byte by byte so that a misplaced boundary shows.
    t, s, p = pair(b, sub_qos=2)
    sizes = [16383, 16384, 16385, 17000, 4, 65535, 65536, 65537, 200000, 1, 33000, 100000]
    payloads = [bytes((i * 7 + k) % 251 for k in range(n)) for i, n in enumerate(sizes)]
    for i, pl in enumerate(payloads):
        p.publish(t, pl, qos=i % 3, wait=False)
    for i in range(len(payloads)):
        if i % 3 == 1:
            p.wait_for(rq.PUBACK, 5)
        elif i % 3 == 2:
            rec = p.wait_for(rq.PUBREC, 5)
            p.send_raw(rq.enc_ack(rq.PUBREL, 5, rec.pid))
            p.wait_for(rq.PUBCOMP, 5, pid=rec.pid)
    p.ping(3)
    got = s.collect(1.5, count=len(sizes))
    # Order differs between QoS levels (QoS 2 may be delivered at PUBREL), so match by size.
    check_eq(sorted(len(m.payload) for m in got), sorted(sizes), "sizes of messages received")
    for m in got:
        i = sizes.index(len(m.payload))
        check(m.payload == payloads[i], "payload %d (%d bytes) corrupted" % (i, sizes[i]))
    s.disconnect()
    p.disconnect()


@case(mosquitto_differs="2.0.11 sends 3 more after one PUBACK (5 in flight with Receive Maximum 3)")
def receive_maximum_toward_client(b):
    t, s, p = pair(b, sub_qos=1, sub_kw={"props": {"receive_maximum": 3}})
    n = 10
    for i in range(n):
        p.publish(t, b"%d" % i, qos=1)
    first = s.collect(0.8, ack=False)
    check_eq(len(first), 3, "unacknowledged messages in flight with Receive Maximum 3")
    got = list(first)
    s.ack(first[0])
    more = s.collect(0.6, ack=False)
    check_eq(len(more), 1, "messages released by one PUBACK")
    got += more
    for m in first[1:] + more:
        s.ack(m)
    while len(got) < n:
        batch = s.collect(0.6, ack=False)
        check(batch and len(batch) <= 3, "in-flight batch of %d (Receive Maximum 3)" % len(batch))
        for m in batch:
            s.ack(m)
        got += batch
    check_eq([m.payload for m in got], [b"%d" % i for i in range(n)], "all messages, in order")
    s.disconnect()
    p.disconnect()


@case(mosquitto_differs="2.0.11 overshoots the client's Receive Maximum once acks come back")
def receive_maximum_qos2_toward_client(b):
    t, s, p = pair(b, sub_qos=2, sub_kw={"props": {"receive_maximum": 2}})
    for i in range(5):
        p.publish(t, b"%d" % i, qos=2)
    first = s.collect(0.8, ack=False)
    check_eq(len(first), 2, "QoS 2 messages in flight with Receive Maximum 2")
    # PUBREC alone does not free the slot; PUBCOMP does [MQTT-4.9.0-2].
    s.send_raw(rq.enc_ack(rq.PUBREC, 5, first[0].pid))
    s.wait_for(rq.PUBREL, 3)
    s.expect_nothing(0.5, "PUBLISH while the QoS 2 flow is not complete")
    s.send_raw(rq.enc_ack(rq.PUBCOMP, 5, first[0].pid))
    check_eq(len(s.collect(0.6, ack=False)), 1, "messages released by PUBCOMP")
    s.disconnect()
    p.disconnect()


@case(mosquitto_differs="2.0.11 does not enforce its Receive Maximum on incoming QoS 2")
def client_exceeds_receive_maximum(b):
    p = rq.connected(b.port)
    rm = p.connack.props.get("receive_maximum", 65535)
    check_eq(rm, 20, "broker Receive Maximum in CONNACK")
    t = rq.uniq("rmx")
    for i in range(rm):
        p.send_raw(rq.enc_publish(5, t, b"x", qos=2, pid=i + 1))
    for i in range(rm):
        p.wait_for(rq.PUBREC, 3)
    p.send_raw(rq.enc_publish(5, t, b"x", qos=2, pid=rm + 1))
    res = p.expect_closed(3)
    check(res, "connection not closed after Receive Maximum + 1 unacknowledged QoS 2")
    check_eq(res.rc, 0x93, "DISCONNECT reason (Receive Maximum exceeded)")
    rq.check_serves(b.port)


@case(mosquitto_differs="answers PUBCOMP 0x00 for an unknown packet id")
def pubrel_unknown_pid(b):
    p = rq.connected(b.port)
    p.send_raw(rq.enc_ack(rq.PUBREL, 5, 999))
    comp = p.wait_for(rq.PUBCOMP, 3)
    check_eq((comp.pid, comp.rc), (999, 0x92), "PUBCOMP for an unknown PUBREL")
    p.ping()
    p.disconnect()


@case(mosquitto_differs="2.0.11 answers PUBREC 0x00: it routes QoS 2 messages at PUBREL")
def no_matching_subscribers(b):
    # v5: PUBACK / PUBREC 0x10 when no subscription takes the message (as mosquitto and EMQX);
    # 3.1.1 has no reason codes. The flow goes on as for 0x00 (0x10 is a success code).
    t = rq.uniq("nobody")
    p = rq.connected(b.port)
    check_eq(p.publish(t, b"1", qos=1).rc, 0x10, "v5 PUBACK without subscribers")
    p.send_raw(rq.enc_publish(5, t, b"2", qos=2, pid=20))
    check_eq(p.wait_for(rq.PUBREC, 3, pid=20).rc, 0x10, "v5 PUBREC without subscribers")
    p.send_raw(rq.enc_ack(rq.PUBREL, 5, 20))
    check_eq(p.wait_for(rq.PUBCOMP, 3, pid=20).rc, 0x00, "PUBCOMP after PUBREC 0x10")
    # only the publisher's own No Local subscription matches: nobody takes it
    p.subscribe([(t, rq.sub_opts(1, no_local=True))])
    check_eq(p.publish(t, b"3", qos=1).rc, 0x10, "v5 PUBACK with only a No Local self-match")
    p.expect_nothing(0.3, "PUBLISH to the publisher's No Local subscription")
    # a subscriber, then none again
    s = rq.connected(b.port)
    s.subscribe([(t + "/#", 1)])
    check_eq(p.publish(t, b"4", qos=1).rc, 0x00, "v5 PUBACK with a subscriber")
    check_eq(s.recv_publish(3).payload, b"4", "delivered to the subscriber")
    s.unsubscribe([t + "/#"])
    check_eq(p.publish(t, b"5", qos=1).rc, 0x10, "v5 PUBACK after the subscriber left")
    # a shared subscription is a subscriber
    s.subscribe([("$share/g/" + t, 1)])
    check_eq(p.publish(t, b"6", qos=1).rc, 0x00, "v5 PUBACK with a shared subscriber")
    check_eq(s.recv_publish(3).payload, b"6", "delivered to the shared subscriber")
    s.disconnect()
    p.disconnect()
    q = rq.connected(b.port, version=4)
    check_eq(q.publish(rq.uniq("nobody"), b"x", qos=1).raw, b"\x00\x01",
             "3.1.1 PUBACK without subscribers: packet id only")
    q.disconnect()


@case
def no_matching_subscribers_retained(b):
    # Decision (as mosquitto 2.0.11, checked with RQ_TARGET=mosquitto): a retained message
    # without subscribers is stored and still answered 0x10, which says "accepted, nobody
    # subscribed right now", not "dropped".
    t = rq.uniq("kept")
    p = rq.connected(b.port)
    check_eq(p.publish(t, b"kept", qos=1, retain=True).rc, 0x10,
             "v5 PUBACK for a retained message without subscribers")
    s = rq.connected(b.port)
    s.subscribe([(t, 1)])
    m = s.recv_publish(3)
    check_eq((m.payload, m.retain), (b"kept", True), "the retained message was stored")
    p.publish(t, b"", qos=1, retain=True)  # clear it
    s.disconnect()
    p.disconnect()


@case(mosquitto_differs="2.0.11 lets clients publish to $SYS and $share/ topics")
def reserved_topics_refused(b):
    # $SYS/... is the broker's own; "$share/..." is a subscription prefix, never a topic. v5 QoS
    # 1/2: 0x87 Not authorized; 3.1.1: acknowledged and dropped; QoS 0: dropped. Nothing is
    # delivered or retained; the connection stays; the broker logs why.
    watcher = rq.connected(b.port)
    # ("$share/..." cannot be subscribed to as a plain filter; the plain "$share" can)
    watcher.subscribe([("$SYS/#", 2), ("$share", 2)])
    mark = b.log_mark()
    for v in (5, 4):
        p = rq.connected(b.port, version=v)
        for topic in ("$SYS/broker/clients/connected", "$SYS", "$share/g/t", "$share"):
            want = 0x87 if v == 5 else 0
            p.send_raw(rq.enc_publish(v, topic, b"forged", qos=0, retain=True))
            ack = p.publish(topic, b"forged", qos=1, retain=True)
            check_eq((ack.type, ack.rc), (rq.PUBACK, want), "v%d QoS 1 to %s: PUBACK" % (v, topic))
            p.send_raw(rq.enc_publish(v, topic, b"forged", qos=2, pid=77))
            rec = p.wait_for(rq.PUBREC, 3, pid=77)
            check_eq(rec.rc, want, "v%d QoS 2 to %s: PUBREC reason" % (v, topic))
            if v == 4:  # 3.1.1 goes on with PUBREL: answered, nothing was kept for it
                p.send_raw(rq.enc_ack(rq.PUBREL, 4, 77))
                p.wait_for(rq.PUBCOMP, 3, pid=77)
        p.ping()
        p.disconnect()
    # (the broker's own $SYS/broker/... values arrive too, retained: tests/26)
    forged = [m for m in watcher.collect(timeout=0.5) if m.payload == b"forged"]
    check(not forged, "a client's message on $SYS or $share: %r" % forged)
    later = rq.connected(b.port)
    later.subscribe([("$SYS/#", 1)])
    forged = [m for m in later.collect(timeout=0.3) if m.payload == b"forged"]
    check(not forged, "a retained message a client put on $SYS: %r" % forged)
    later.disconnect()
    watcher.disconnect()
    check(b.wait_log(r"PUBLISH to \"\$SYS/broker/clients/connected\" dropped: \$SYS topics are "
                     r"the broker's own", mark),
          "no log line for the refused PUBLISH; log:\n%s" % b.log_since(mark)[-1500:])
    # rate-limited: for the 24 refusals above, one line per shard (2) at most, not 24
    lines = [ln for ln in b.log_since(mark).splitlines() if "dropped: $" in ln]
    check(1 <= len(lines) <= 2, "refusals logged %d times, want once per shard per 10 s:\n%s"
          % (len(lines), "\n".join(lines)))


@case
def unknown_puback_ignored(b):
    p = rq.connected(b.port)
    p.send_raw(rq.enc_ack(rq.PUBACK, 5, 555))
    p.ping()
    p.disconnect()


@case
def paho_qos_flows(b):
    for v in (4, 5):
        for q in (0, 1, 2):
            t = rq.uniq("paho")
            s = rq.Paho(b.port, version=v)
            s.subscribe(t, q)
            p = rq.Paho(b.port, version=v)
            n = 30
            for i in range(n):
                p.publish(t, b"%d" % i, qos=q)
            got = s.collect(1.0, count=n)
            check_eq([m.payload for m in got], [b"%d" % i for i in range(n)],
                     "paho v%d QoS %d payloads" % (v, q))
            check(all(m.qos == q for m in got), "paho v%d delivered QoS %r" %
                  (v, sorted(set(m.qos for m in got))))
            s.disconnect()
            p.disconnect()


@case
def mosquitto_clients_qos2(b):
    for v in (4, 5):
        t = rq.uniq("mq2")
        s = rq.MosqSub(b.port, t, qos=2, version=v, count=3, fmt="%q|%p")
        for i in range(3):
            r = rq.mosq_pub(b.port, t, "m%d" % i, qos=2, version=v)
            check_eq(r.returncode, 0, "mosquitto_pub -q 2 exit (%s)" % r.stderr)
        check_eq(s.messages(3), ["2|m0", "2|m1", "2|m2"], "mosquitto_sub -V %d -q 2" % v)
        s.wait(3)


if __name__ == "__main__":
    rq.run(rq.fixture_broker(lambda: rq.std_yaml(ringmq=RINGMQ)), timeout=120)
