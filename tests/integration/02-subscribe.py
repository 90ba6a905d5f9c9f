#!/usr/bin/python3
"""02 subscribe: topic matching (+, #, $-topics), subscription options (maximum QoS, No Local,
Retain As Published), subscription identifiers, overlapping subscriptions, shared subscriptions,
unsubscribe, and delivery between connections on different shards."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq, sub_opts  # noqa: E402


def topics_of(pubs):
    return sorted(p.topic for p in pubs)


def match_case(b, flt, hits, misses, version=5):
    root = rq.uniq("m")
    s = rq.connected(b.port, version=version)
    ack = s.subscribe(flt.replace("R", root), qos=1)
    check(ack.codes[0] < 0x80, "SUBACK %r for %s" % (ack.codes, flt))
    p = rq.connected(b.port)
    for t in misses + hits:
        p.publish(t.replace("R", root), b"x", qos=1)
    got = topics_of(s.collect(0.5, count=len(hits) + len(misses)))
    want = sorted(t.replace("R", root) for t in hits)
    check_eq(got, want, "topics delivered for filter %s" % flt)
    s.disconnect()
    p.disconnect()


@case
def plus_wildcard(b):
    match_case(b, "R/+/x", hits=["R/a/x", "R//x"], misses=["R/a/b/x", "R/x", "R/a/y"])


@case
def hash_wildcard(b):
    # [MQTT-4.7.1-2]: "sport/#" also matches "sport".
    match_case(b, "R/a/#", hits=["R/a", "R/a/b", "R/a/b/c", "R/a/"], misses=["R/b", "R/ab"])


@case
def plus_and_hash(b):
    match_case(b, "R/+/c/#", hits=["R/a/c", "R/b/c/d/e"], misses=["R/a/b/c", "R/c"], version=4)


@case
def exact_match_only(b):
    match_case(b, "R/a/b", hits=["R/a/b"], misses=["R/a", "R/a/b/c", "R/a/B"])


@case
def dollar_topics_not_matched_by_wildcards(b):
    # [MQTT-4.7.2-1]: filters starting with a wildcard do not match topics starting with '$'.
    root = rq.uniq("d")
    s = rq.connected(b.port)
    s.subscribe([("#", 1), ("+/" + root, 1), ("+/+", 1)])
    s2 = rq.connected(b.port)
    s2.subscribe("$" + root + "/+", qos=1)
    p = rq.connected(b.port)
    p.publish("$" + root + "/x", b"dollar", qos=1)
    got = [m for m in s.collect(0.6) if root in m.topic]
    check_eq(got, [], "messages on $-topic delivered to '#' / '+/...' subscriber")
    m = s2.recv_publish(3)
    check_eq(m.topic, "$" + root + "/x", "explicit $-filter subscriber")
    for c in (s, s2, p):
        c.disconnect()


@case
def suback_granted_qos(b):
    s = rq.connected(b.port)
    r = rq.uniq("g")
    ack = s.subscribe([(r + "/0", 0), (r + "/1", 1), (r + "/2", 2)])
    check_eq(ack.codes, [0, 1, 2], "SUBACK granted QoS")
    s.disconnect()
    s = rq.connected(b.port, version=4)
    ack = s.subscribe([(r + "/0", 0), (r + "/1", 1), (r + "/2", 2)])
    check_eq(ack.codes, [0, 1, 2], "3.1.1 SUBACK granted QoS")
    s.disconnect()


@case
def maximum_qos_downgrade(b):
    t = rq.uniq("q")
    s = rq.connected(b.port)
    s.subscribe([(t + "/0", 0), (t + "/1", 1)])
    p = rq.connected(b.port)
    p.publish(t + "/0", b"a", qos=2)
    p.publish(t + "/1", b"b", qos=2)
    p.publish(t + "/1", b"c", qos=0)
    got = {(m.topic[-1], m.payload): m.qos for m in s.collect(0.6, count=3)}
    check_eq(got, {("0", b"a"): 0, ("1", b"b"): 1, ("1", b"c"): 0},
             "delivered QoS = min(publish QoS, subscription QoS)")
    s.disconnect()
    p.disconnect()


@case
def no_local(b):
    t = rq.uniq("nl")
    a = rq.connected(b.port)
    a.subscribe([(t, sub_opts(1, no_local=True))])
    other = rq.connected(b.port)
    other.subscribe(t, qos=1)
    a.publish(t, b"mine", qos=1)
    a.expect_nothing(0.5, "own message with No Local")
    check_eq(other.recv_publish(3).payload, b"mine", "other subscriber")
    o2 = rq.connected(b.port)
    o2.publish(t, b"theirs", qos=1)
    check_eq(a.recv_publish(3).payload, b"theirs", "No Local subscriber, message of another client")
    for c in (a, other, o2):
        c.disconnect()


@case
def own_messages_without_no_local(b):
    t = rq.uniq("own")
    a = rq.connected(b.port)
    a.subscribe(t, qos=1)
    a.publish(t, b"echo", qos=1)
    check_eq(a.recv_publish(3).payload, b"echo", "own message without No Local")
    a.disconnect()


@case
def retain_as_published(b):
    t = rq.uniq("rap")
    rap = rq.connected(b.port)
    rap.subscribe([(t, sub_opts(1, rap=True))])
    plain = rq.connected(b.port)
    plain.subscribe([(t, sub_opts(1))])
    v3 = rq.connected(b.port, version=4)
    v3.subscribe(t, qos=1)
    p = rq.connected(b.port)
    p.publish(t, b"r", qos=1, retain=True)
    check_eq(rap.recv_publish(3).retain, True, "retain flag with Retain As Published")
    check_eq(plain.recv_publish(3).retain, False, "retain flag on live delivery without RAP")
    check_eq(v3.recv_publish(3).retain, False, "3.1.1 retain flag on live delivery")
    p.publish(t, b"", qos=1, retain=True)  # clear the retained message
    for c in (rap, plain, v3, p):
        c.disconnect()


@case(mosquitto_differs="sends one copy per matching subscription (allowed by [MQTT-3.3.4-3])")
def subscription_identifiers(b):
    t = rq.uniq("sid")
    s = rq.connected(b.port)
    s.subscribe([(t + "/+", 1)], props={"subscription_identifier": 5})
    s.subscribe([(t + "/a", 1)], props={"subscription_identifier": 7})
    s.subscribe([(t + "/#", 1)])  # no identifier
    p = rq.connected(b.port)
    p.publish(t + "/a", b"x", qos=1)
    got = s.collect(0.8)
    check_eq(len(got), 1, "copies delivered to one client with 3 matching subscriptions")
    ids = sorted(got[0].props.get("subscription_identifier", []))
    check_eq(ids, [5, 7], "subscription identifiers on the one copy")
    p.publish(t + "/b", b"y", qos=1)
    got = s.collect(0.8)
    check_eq([sorted(m.props.get("subscription_identifier", [])) for m in got], [[5]],
             "identifiers for a topic matching only the +-filter and #")
    s.disconnect()
    p.disconnect()


@case
def subscription_identifier_replaced(b):
    t = rq.uniq("sidr")
    s = rq.connected(b.port)
    s.subscribe([(t, 1)], props={"subscription_identifier": 3})
    s.subscribe([(t, 1)], props={"subscription_identifier": 4})
    p = rq.connected(b.port)
    p.publish(t, b"x", qos=1)
    m = s.recv_publish(3)
    check_eq(m.props.get("subscription_identifier"), [4], "identifier after re-subscribe")
    s.disconnect()
    p.disconnect()


def overlapping(b, version):
    t = rq.uniq("ov")
    s = rq.connected(b.port, version=version)
    s.subscribe([(t + "/#", 0), (t + "/+", 1), (t + "/a", 2)])
    p = rq.connected(b.port)
    p.publish(t + "/a", b"x", qos=2)
    got = s.collect(0.8)
    check_eq([(m.payload, m.qos) for m in got], [(b"x", 2)],
             "v%d overlapping subscriptions: one copy at the highest QoS" % version)
    s.disconnect()
    p.disconnect()


@case(mosquitto_differs="v5: one copy per matching subscription")
def overlapping_highest_qos_v5(b):
    overlapping(b, 5)


@case
def overlapping_highest_qos_v311(b):
    # [MQTT-3.3.5-1]: one copy at the maximum QoS of the matching subscriptions.
    overlapping(b, 4)


@case
def shared_subscription(b):
    t = rq.uniq("sh")
    g = "$share/g1/" + t + "/+"
    m1, m2 = rq.connected(b.port), rq.connected(b.port)
    for m in (m1, m2):
        check_eq(m.subscribe([(g, 1)]).codes, [1], "SUBACK for a shared subscription")
    normal = rq.connected(b.port)
    normal.subscribe(t + "/+", qos=1)
    p = rq.connected(b.port)
    n = 20
    for i in range(n):
        p.publish("%s/%d" % (t, i), b"%d" % i, qos=1)
    got1 = [x.payload for x in m1.collect(0.6)]
    got2 = [x.payload for x in m2.collect(0.3)]
    every = sorted(got1 + got2, key=int)
    check_eq(every, [b"%d" % i for i in range(n)],
             "shared group: each message to exactly one member (m1 %r, m2 %r)" % (got1, got2))
    check(got1 and got2, "both members get some (m1 %d, m2 %d)" % (len(got1), len(got2)))
    check_eq(len(normal.collect(0.3, count=n)), n, "non-shared subscriber gets every message")
    for c in (m1, m2, normal, p):
        c.disconnect()


@case
def shared_groups_independent(b):
    t = rq.uniq("shg")
    a = rq.connected(b.port)
    a.subscribe("$share/ga/" + t, qos=1)
    bb = rq.connected(b.port)
    bb.subscribe("$share/gb/" + t, qos=1)
    p = rq.connected(b.port)
    for i in range(4):
        p.publish(t, b"%d" % i, qos=1)
    check_eq(len(a.collect(0.5, count=4)), 4, "group ga (one member) gets every message")
    check_eq(len(bb.collect(0.5, count=4)), 4, "group gb (one member) gets every message")
    for c in (a, bb, p):
        c.disconnect()


@case
def shared_member_leaves(b):
    t = rq.uniq("shl")
    g = "$share/g/" + t
    m1, m2 = rq.connected(b.port), rq.connected(b.port)
    m1.subscribe(g, qos=1)
    m2.subscribe(g, qos=1)
    # Wait until the broker has closed m2's connection: it ends the session (and removes the
    # group membership) before it closes, so no publish below can still pick m2.
    m2.send_raw(rq.enc_disconnect(5))
    check(m2.expect_closed(5), "broker did not close after DISCONNECT")
    p = rq.connected(b.port)
    for i in range(6):
        p.publish(t, b"%d" % i, qos=1)
    check_eq(len(m1.collect(0.5, count=6)), 6, "remaining member gets every message")
    m1.disconnect()
    p.disconnect()


@case
def unsubscribe_stops_delivery(b):
    t = rq.uniq("un")
    s = rq.connected(b.port)
    s.subscribe([(t, 1), (t + "/+", 1)])
    p = rq.connected(b.port)
    p.publish(t, b"before", qos=1)
    check_eq(s.recv_publish(3).payload, b"before", "delivery before UNSUBSCRIBE")
    ack = s.unsubscribe([t, t + "/nope"])
    check_eq(ack.codes, [0x00, 0x11], "UNSUBACK reason codes (success, no subscription existed)")
    p.publish(t, b"after", qos=1)
    p.publish(t + "/x", b"other", qos=1)
    got = [m.payload for m in s.collect(0.6)]
    check_eq(got, [b"other"], "delivery after UNSUBSCRIBE of one of two filters")
    s.disconnect()
    p.disconnect()


@case
def unsubscribe_v311(b):
    t = rq.uniq("un3")
    s = rq.connected(b.port, version=4)
    s.subscribe(t, qos=1)
    ack = s.unsubscribe(t)
    check_eq(ack.codes, [], "3.1.1 UNSUBACK has no payload")
    p = rq.connected(b.port)
    p.publish(t, b"after", qos=1)
    s.expect_nothing(0.5, "message after UNSUBSCRIBE")
    s.disconnect()
    p.disconnect()


@case
def mosquitto_clients_cross_versions(b):
    for sv, pv in ((4, 5), (5, 4), (4, 4), (5, 5)):
        t = rq.uniq("mc")
        s = rq.MosqSub(b.port, t + "/#", qos=1, version=sv, count=1)
        r = rq.mosq_pub(b.port, t + "/x", "hello-%d-%d" % (sv, pv), qos=1, version=pv)
        check_eq(r.returncode, 0, "mosquitto_pub exit (%s)" % r.stderr)
        check_eq(s.messages(1), ["%s/x|hello-%d-%d" % (t, sv, pv)],
                 "mosquitto_sub -V %d from mosquitto_pub -V %d" % (sv, pv))
        s.wait(3)


@case
def cross_shard_all_pairs(b):
    # Several connections: with SO_REUSEPORT the kernel spreads them over the shards, so some
    # pairs are on different shards. Every pair must work.
    n = 6
    clients = [rq.connected(b.port) for _ in range(n)]
    root = rq.uniq("xs")
    for i, c in enumerate(clients):
        c.subscribe("%s/%d" % (root, i), qos=1)
    for i, c in enumerate(clients):
        for j in range(n):
            c.publish("%s/%d" % (root, j), b"%d->%d" % (i, j), qos=1)
    for j, c in enumerate(clients):
        got = sorted(m.payload for m in c.collect(0.5, count=n))
        check_eq(got, sorted(b"%d->%d" % (i, j) for i in range(n)),
                 "messages to subscriber %d from every publisher" % j)
    for c in clients:
        c.disconnect()


@case(ringmq_only="the maxTopicLevels default")
def two_hundred_levels_by_default(b):
    # maxTopicLevels defaults to 200 (mosquitto's limit): filters of 200 levels, '+' at every
    # level, with a final '#', and a 200-level literal one all match a 200-level topic, live and
    # retained; 201 levels are over the limit. Matching stays iterative (run under ASan).
    lv = 200
    with rq.start_broker(rq.broker_yaml(clients=rq.STD_CLIENTS)) as b2:
        root = rq.uniq("deep")
        topic = "/".join([root] + ["l%d" % i for i in range(1, lv)])
        filters = ["/".join(["+"] * lv), "/".join(["+"] * (lv - 1) + ["#"]), topic]
        subs = []
        for f in filters:
            s = rq.connected(b2.port)
            check_eq(s.subscribe([(f, 1)]).codes, [1], "SUBACK for a %d-level filter %s..."
                     % (f.count("/") + 1, f[:12]))
            subs.append(s)
        over = rq.connected(b2.port)
        check_eq(over.subscribe([("/".join(["+"] * (lv + 1)), 1), (topic + "/x", 1)]).codes,
                 [0x8F, 0x8F], "SUBACK for 201-level filters")
        p = rq.connected(b2.port)
        check_eq(p.publish(topic, b"deep", qos=1, retain=True).rc, 0, "PUBACK, 200 levels")
        for f, s in zip(filters, subs):
            m = s.recv_publish(3)
            check_eq((m.topic, m.payload), (topic, b"deep"), "delivery for %s..." % f[:12])
        late = rq.connected(b2.port)
        late.subscribe([(filters[0], 1), (filters[1], 1)])
        got = [(m.topic, m.retain) for m in late.collect(1.0, count=2)]
        check_eq(got, [(topic, True)] * 2, "retained, once per 200-level filter [MQTT-3.8.4-4]")
        p.send_raw(rq.enc_publish(5, topic + "/x", b"too deep"))
        res = p.expect_closed(3)
        check_eq(res.rc, 0x90, "DISCONNECT reason for a 201-level topic")
        for c in subs + [over, late]:
            c.disconnect()
        b2.check_alive()


if __name__ == "__main__":
    rq.run(rq.fixture_broker(rq.std_yaml), timeout=90)
