#!/usr/bin/python3
"""13 shards: with --threads 2 the kernel spreads connections over the shards (SO_REUSEPORT);
delivery, shared subscriptions, retained messages, takeovers and sessions must work between any
two connections. Under ringmq the log says which shard a client landed on; the cases make sure
they really used both."""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

THREADS = 2


def shard_of(b, cid, timeout=1.0):
    """Shard of the last connection of cid according to ringmq's log, or None."""
    if rq.MOSQUITTO:
        return None
    rx = r'\[shard (\d+)\][^\n]*client="%s" \(session\) connected' % re.escape(cid)
    deadline = time.monotonic() + timeout
    while True:
        found = re.findall(rx, b.log())
        if found or time.monotonic() > deadline:
            return int(found[-1]) if found else None
        time.sleep(0.05)


def handovers(b, cid):
    """How often ringmq's log says a connection of cid was accepted on one shard and handed to
    the shard of its session (informative; the wording is not a contract)."""
    if rq.MOSQUITTO:
        return 0
    return len(re.findall(r'client="%s" \(connect\)[^\n]*handing the connection'
                          % re.escape(cid), b.log()))


def spread_clients(b, n, version=5):
    """n connected clients, covering every shard when the log tells (up to 30 connections)."""
    clients, shards = [], set()
    for i in range(30):
        c = rq.connected(b.port, version=version if i % 2 == 0 else 4)
        s = shard_of(b, c.client_id)
        if len(clients) < n or (s is not None and s not in shards):
            clients.append(c)
            if s is not None:
                shards.add(s)
        else:
            c.disconnect()
        if len(clients) >= n and (rq.MOSQUITTO or len(shards) >= THREADS):
            break
    if not rq.MOSQUITTO:
        check(len(shards) >= THREADS, "connections landed on shards %r only; log:\n%s"
              % (sorted(shards), b.log()[-1500:]))
    return clients


@case
def all_pairs(b):
    clients = spread_clients(b, 8)
    root = rq.uniq("ap")
    for i, c in enumerate(clients):
        c.subscribe([("%s/%d" % (root, i), 2)])
    for i, c in enumerate(clients):
        for j in range(len(clients)):
            c.publish("%s/%d" % (root, j), b"%d>%d" % (i, j), qos=(i + j) % 3)
    for j, c in enumerate(clients):
        got = sorted(m.payload for m in c.collect(0.8, count=len(clients)))
        check_eq(got, sorted(b"%d>%d" % (i, j) for i in range(len(clients))),
                 "subscriber %d: one message from every publisher" % j)
    for c in clients:
        c.disconnect()


@case
def fanout_order_per_publisher(b):
    clients = spread_clients(b, 6)
    subs, pubs = clients[:3], clients[3:]
    root = rq.uniq("fo")
    for s in subs:
        s.subscribe([(root + "/#", 1)])
    n = 25  # 75 per subscriber: below the queue limit (100), as subscribers read afterwards
    for k in range(n):
        for i, p in enumerate(pubs):
            p.publish("%s/%d" % (root, i), b"%d" % k, qos=1, wait=False)
    for p in pubs:
        for _ in range(n):
            p.wait_for(rq.PUBACK, 5)
    for si, s in enumerate(subs):
        got = s.collect(1.0, count=n * len(pubs))
        check_eq(len(got), n * len(pubs), "subscriber %d: messages (per topic %r)"
                 % (si, sorted((t, sum(1 for m in got if m.topic == t))
                               for t in set(m.topic for m in got))))
        for i in range(len(pubs)):
            seq = [int(m.payload) for m in got if m.topic == "%s/%d" % (root, i)]
            check_eq(seq, list(range(n)), "subscriber %d: order from publisher %d" % (si, i))
    for c in clients:
        c.disconnect()


@case
def shared_subscription_across_shards(b):
    clients = spread_clients(b, 5)
    members, p = clients[:4], clients[4]
    t = rq.uniq("sh")
    for m in members:
        m.subscribe([("$share/grp/" + t, 1)])
    n = 40
    for i in range(n):
        p.publish(t, b"%d" % i, qos=1)
    per = [[int(x.payload) for x in m.collect(0.5)] for m in members]
    every = sorted(sum(per, []))
    check_eq(every, list(range(n)), "each message to exactly one member (split %r)"
             % [len(x) for x in per])
    check(sum(1 for x in per if x) >= 2, "only one member got messages: %r" % [len(x) for x in per])
    for c in clients:
        c.disconnect()


@case
def retained_across_shards(b):
    clients = spread_clients(b, 4)
    root = rq.uniq("rt")
    for i, c in enumerate(clients):
        c.publish("%s/%d" % (root, i), b"%d" % i, qos=1, retain=True)
    for i, c in enumerate(clients):
        c.subscribe([(root + "/+", 1)])
        got = sorted(m.topic for m in c.collect(0.5, count=len(clients)))
        check_eq(got, sorted("%s/%d" % (root, k) for k in range(len(clients))),
                 "retained messages seen by client %d" % i)
    for i in range(len(clients)):
        clients[0].publish("%s/%d" % (root, i), b"", qos=1, retain=True)
    for c in clients:
        c.disconnect()


@case
def takeover_chain(b):
    cid = rq.uniq("tk")
    t = rq.uniq("tk")
    sess = {"session_expiry_interval": 60}
    prev = rq.connected(b.port, cid, props=sess)
    prev.subscribe([(t, 1)])
    for i in range(8):
        nxt = rq.connected(b.port, cid, clean=False, props=sess)
        check_eq(nxt.connack.session_present, True, "session present on takeover %d" % i)
        res = prev.expect_closed(3)
        check(res, "takeover %d: old connection not closed" % i)
        if not rq.MOSQUITTO:
            check_eq(res.rc, 0x8E, "takeover %d: DISCONNECT reason" % i)
        prev = nxt
    p = rq.connected(b.port)
    p.publish(t, b"last", qos=1)
    check_eq(prev.recv_publish(3).payload, b"last", "message to the final connection")
    prev.expect_nothing(0.3, "duplicates")
    prev.disconnect(props={"session_expiry_interval": 0})
    p.disconnect()
    rq.log("takeover chain: %d of 8 connections accepted on another shard" % handovers(b, cid))


@case
def session_follows_client_while_publishing(b):
    # A publisher keeps sending while the subscriber disconnects and comes back (often on the
    # other shard): nothing is lost; a copy seen twice must be a DUP redelivery.
    cid, t = rq.uniq("mv"), rq.uniq("mv")
    sess = {"session_expiry_interval": 60}
    s = rq.connected(b.port, cid, props=sess)
    s.subscribe([(t, 1)])
    n = 300
    done = threading.Event()
    errors = []

    def publisher():
        try:
            p = rq.connected(b.port)
            for i in range(n):
                p.publish(t, b"%d" % i, qos=1)
                time.sleep(0.004)
            p.disconnect()
        except Exception as e:  # reported by the main thread
            errors.append(e)
        finally:
            done.set()

    th = threading.Thread(target=publisher, daemon=True)
    th.start()
    seen = {}
    rounds = 0
    while not done.is_set() or rounds == 0:
        for m in s.collect(0.05, count=12):
            check(m.payload not in seen or m.dup, "copy of %r without DUP" % m.payload)
            seen[m.payload] = True
        s.close() if rounds % 2 else s.disconnect()
        s = rq.connected(b.port, cid, clean=False, props=sess)
        check_eq(s.connack.session_present, True, "session present in round %d" % rounds)
        rounds += 1
    th.join(10)
    check(not errors, "publisher failed: %r" % errors)
    for m in s.collect(0.8):
        seen[m.payload] = True
    missing = sorted(set(range(n)) - set(int(x) for x in seen))
    check_eq(missing, [], "messages lost across %d reconnects" % rounds)
    rq.log("%d reconnects, %d accepted on another shard" % (rounds, handovers(b, cid)))
    s.disconnect(props={"session_expiry_interval": 0})


@case
def qos2_exactly_once_while_moving(b):
    # QoS 2 subscriber that drops its connection at every stage of the flow (after PUBLISH,
    # after PUBREC) and resumes, often on the other shard. Each message must reach it exactly
    # once: a PUBLISH seen again after PUBREC is a duplicate.
    cid, t = rq.uniq("eo"), rq.uniq("eo")
    sess = {"session_expiry_interval": 60}
    s = rq.connected(b.port, cid, props=sess)
    s.subscribe([(t, 2)])
    p = rq.connected(b.port)
    n = 60
    for i in range(n):
        p.publish(t, b"%d" % i, qos=2)  # full flow: brokers may deliver at PUBREL
    recd = set()
    for rnd in range(40):
        try:
            for m in s.collect(0.2, count=3, ack=False):
                check(m.payload not in recd, "duplicate of %r after PUBREC (round %d, dup=%s)"
                      % (m.payload, rnd, m.dup))
                if rnd % 3 == 0 and not m.dup:
                    continue  # drop it unacknowledged: it must come again with DUP
                s.send_raw(rq.enc_ack(rq.PUBREC, 5, m.pid))
                # The PUBREL proves the broker has the PUBREC (a close with unread data sends
                # a RST, which may discard a PUBREC the broker has not read yet).
                s.wait_for(rq.PUBREL, 3, pid=m.pid)
                recd.add(m.payload)
                if rnd % 3 == 1:
                    break  # leave without PUBCOMP: the broker must resend PUBREL only
                s.send_raw(rq.enc_ack(rq.PUBCOMP, 5, m.pid))
            for pk in s.backlog:
                if pk.type == rq.PUBREL:
                    s.send_raw(rq.enc_ack(rq.PUBCOMP, 5, pk.pid))
        finally:
            s.close()
        s = rq.connected(b.port, cid, clean=False, props=sess)
        check_eq(s.connack.session_present, True, "session present in round %d" % rnd)
        if len(recd) == n:
            break
    rq.log("%d resumes (%d accepted on another shard), %d messages before draining"
           % (rnd + 1, handovers(b, cid), len(recd)))
    # Drain: complete every flow still open.
    for m in s.collect(0.8, ack=False):
        check(m.payload not in recd, "duplicate of %r at the end" % m.payload)
        s.ack(m)
        recd.add(m.payload)
    check_eq(sorted(int(x) for x in recd), list(range(n)),
             "QoS 2 messages received")
    s.disconnect(props={"session_expiry_interval": 0})
    p.close()


@case
def backpressure_across_shards(b):
    """A tiny spec.ringmq.shardBacklogLimit (16): bursts of 30 publishes, each sent in one
    write by a publisher on one shard to a subscriber on the other, put more than 16 messages
    in flight to the subscriber's shard at once. The publisher's shard says it pauses reading;
    nothing is lost or reordered; afterwards the publisher is read again (a paused connection
    that was never resumed would lose its last messages and its PINGRESP)."""
    yaml = rq.std_yaml(ringmq={"shardBacklogLimit": 16})
    with rq.start_broker(yaml, threads=THREADS) as b2:
        clients = spread_clients(b2, 2)
        shards = {c.client_id: shard_of(b2, c.client_id) for c in clients}
        sub = clients[0]
        pub = next((c for c in clients[1:] if shards[c.client_id] != shards[sub.client_id]),
                   clients[1])
        root = rq.uniq("bp")
        sub.subscribe([(root, 0)])
        n, bursts = 30, 3
        for k in range(bursts):
            pub.send_raw(b"".join(rq.enc_publish(pub.version, root, b"%d" % (k * n + i))
                                  for i in range(n)))
            time.sleep(0.02)
        got = [int(m.payload) for m in sub.collect(2.0, count=n * bursts)]
        check_eq(got, list(range(n * bursts)), "QoS 0 burst across shards: all, in order")
        if not rq.MOSQUITTO:
            check(re.search(r"shard %d: shard %d is \d+ messages behind: pausing reads"
                            % (shards[pub.client_id], shards[sub.client_id]), b2.log()),
                  "the publisher's shard logs that it pauses; log:\n%s" % b2.log()[-1500:])
        # read again afterwards: a QoS 1 round trip and a ping
        time.sleep(0.05)
        ack = pub.publish(root, b"after", qos=1)
        check_eq(ack.rc, 0, "PUBACK after the bursts")
        check_eq([m.payload for m in sub.collect(1.0, count=1)], [b"after"],
                 "a message published after the bursts")
        pub.send_raw(bytes([0xC0, 0]))
        pub.wait_for(rq.PINGRESP, 2)
        for c in clients:
            c.disconnect()


@case
def paho_many_clients(b):
    root = rq.uniq("pm")
    subs = [rq.Paho(b.port, version=5 if i % 2 else 4) for i in range(4)]
    for s in subs:
        s.subscribe(root + "/#", 2)
    pubs = [rq.Paho(b.port, version=4 if i % 2 else 5) for i in range(4)]
    for i, p in enumerate(pubs):
        for k in range(20):
            p.publish("%s/%d" % (root, i), b"%d" % k, qos=2)
    for j, s in enumerate(subs):
        got = s.collect(1.0, count=80)
        check_eq(len(got), 80, "paho subscriber %d: QoS 2 messages from 4 publishers" % j)
    for c in subs + pubs:
        c.disconnect()


if __name__ == "__main__":
    rq.run(rq.fixture_broker(rq.std_yaml, threads=THREADS), timeout=150)
