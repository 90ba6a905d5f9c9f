#!/usr/bin/python3
"""22 session race: several CONNECTs with the same client id arrive at the same moment on both
shards (--threads 2). The client-id registry must make exactly one of them the session's owner:
after each round exactly one connection stays open, a PUBLISH reaches it exactly once, and a
persistent session is the one the next CONNECT resumes (not orphaned beside another one).

Each round opens N sockets first (the kernel spreads them over the shards), sends every CONNECT
but its last byte, then the last bytes back to back, so that both shards handle a CONNECT of
the same new client id at once. Rounds alternate clean-start, persistent and mixed CONNECTs."""

import os
import select
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

THREADS = 2
ROUNDS = int(os.environ.get("RQ_RACE_ROUNDS", "500"))
N = 6            # simultaneous CONNECTs per round
SETTLE = 5.0     # generous bound for the taken-over connections to be closed


def poll_open(conns, until_open, timeout):
    """Reads every connection (keeping its packets) until at most `until_open` are open or the
    timeout passes. Returns the list of connections still open."""
    deadline = time.monotonic() + timeout
    while True:
        live = [c for c in conns if not c.eof]
        if len(live) <= until_open:
            return live
        left = deadline - time.monotonic()
        if left <= 0:
            return live
        poller = select.poll()
        for c in live:
            poller.register(c.sock, select.POLLIN)
        ready = {fd for fd, _ in poller.poll(min(left, 0.2) * 1000)}
        for c in live:
            if c.sock.fileno() in ready:
                try:
                    c._fill(time.monotonic() + 0.05)
                except rq.Closed:
                    pass


def packets_of(c):
    """Every complete packet received so far on c (backlog plus buffered bytes)."""
    while True:
        p = c._parse_one()
        if p is None:
            return c.backlog
        c.backlog.append(p)


def connect_bytes(cid, persistent, topic):
    props = {"session_expiry_interval": 60} if persistent else None
    return (rq.enc_connect(5, cid, clean=not persistent, props=props),
            rq.enc_subscribe(5, 1, [(topic, 1)]))


def race_round(b, pub, k, conns):
    """One round; returns None when it held, else what went wrong."""
    cid, topic = rq.uniq("race"), rq.uniq("rt")
    kind = k % 3  # 0: all clean start, 1: all persistent, 2: mixed
    conns += [rq.RawClient(b.port, timeout=SETTLE) for _ in range(N)]
    msgs = []
    for i, c in enumerate(conns):
        persistent = kind == 1 or (kind == 2 and i % 2 == 1)
        con, sub = connect_bytes(cid, persistent, topic)
        msgs.append((c, con, sub))
        c.send_raw(con[:-1])
    for c, con, sub in msgs:
        c.sock.sendall(con[-1:] + sub)
    live = poll_open(conns, 1, SETTLE)
    if len(live) != 1:
        return ("%d of %d connections open after %.0f s (a client id must have one live session;"
                " %s)" % (len(live), N, SETTLE, "clean start" if kind == 0 else
                          "persistent" if kind == 1 else "mixed"))
    s = live[0]
    # The survivor's own CONNACK and SUBACK (its SUBSCRIBE may be handled on the session it
    # resumed or created: either way the subscription is the session's now).
    try:
        ack = s.wait_for(rq.CONNACK, SETTLE)
        check_eq(ack.rc, 0, "survivor's CONNACK")
        s.wait_for(rq.SUBACK, SETTLE)
    except AssertionError as e:
        return "survivor: %s" % e
    pub.publish(topic, b"r%d" % k, qos=1)
    try:
        got = s.recv_publish(SETTLE)
        # A second copy would have been posted to its shard before the publisher's PUBACK, so
        # it arrives before the answer to this PINGREQ.
        s.ping(SETTLE)
    except AssertionError as e:
        return "survivor did not get the PUBLISH: %s" % e
    extra = [p for p in packets_of(s) if p.type == rq.PUBLISH]
    if got.payload != b"r%d" % k or extra:
        return "PUBLISH received %d times: %r" % (1 + len(extra), [got] + extra)
    if any(c is not s and not c.eof for c in conns):
        return "a taken-over connection reopened?"
    if kind == 0:
        s.disconnect()
        return None
    return check_persistent(b, pub, s, cid, topic, k, kind == 1)


def check_persistent(b, pub, s, cid, topic, k, must_keep):
    """The survivor's session is the registered one: a message published while it is offline
    comes with the next resume, once."""
    s.disconnect()
    pub.publish(topic, b"off%d" % k, qos=1)
    c = rq.RawClient(b.port)
    ack = c.connect(version=5, client_id=cid, clean=False,
                    props={"session_expiry_interval": 60})
    if ack.rc != 0:
        return "resume: CONNACK 0x%02x" % ack.rc
    if must_keep and not ack.session_present:
        c.close()
        return "the persistent session was not resumed (session present 0)"
    got = [m.payload for m in c.collect(SETTLE, count=1)] if ack.session_present else []
    c.ping(SETTLE)  # anything else routed to it arrives before the PINGRESP
    got += [p.payload for p in packets_of(c) if p.type == rq.PUBLISH]
    # A mixed round may leave a clean-start, expiry-0 survivor: then no session was kept.
    c.disconnect(props={"session_expiry_interval": 0})
    if ack.session_present and got != [b"off%d" % k]:
        return "resumed session delivered %r, want [b'off%d'] once" % (got, k)
    if not ack.session_present and got:
        return "new session delivered %r" % got
    return None


@case
def same_client_id_race(b):
    pub = rq.connected(b.port)
    t0 = time.monotonic()
    failures = []
    for k in range(ROUNDS):
        conns = []
        try:
            why = race_round(b, pub, k, conns)
        finally:
            for c in conns:
                c.close()
        if why:
            failures.append("round %d: %s" % (k, why))
            if not os.environ.get("RQ_RACE_COUNT"):
                break
    rq.log("%d rounds in %.1f s, %d failed" % (k + 1, time.monotonic() - t0, len(failures)))
    pub.disconnect()
    check(not failures, "; ".join(failures[:5]))


if __name__ == "__main__":
    rq.run(rq.fixture_broker(rq.std_yaml, threads=THREADS), timeout=240)
