#!/usr/bin/python3
"""14 signals and shutdown: SIGTERM / SIGINT make the broker send DISCONNECT 0x8B (Server
shutting down) to v5 clients, close 3.1.1 clients, log it and exit 0; SIGHUP leaves it serving;
SIGPIPE from a client that vanishes mid-send does not kill it.

(The broker also publishes the wills of the clients it disconnects at shutdown, but every
subscriber is being disconnected at the same moment, so that is not observable here.)"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402


def broker(threads=2):
    return rq.start_broker(rq.std_yaml(), threads=threads)


def wait_exit(b, timeout=5.0):
    try:
        return b.proc.wait(timeout)
    except Exception:
        return None


def shutdown_case(sig):
    with broker() as b:
        v5 = [rq.connected(b.port) for _ in range(4)]
        v3 = [rq.connected(b.port, version=4) for _ in range(2)]
        v5[0].subscribe([("sd/#", 1)])
        mark = b.log_mark()
        b.signal(sig)
        for i, c in enumerate(v5):
            res = c.expect_closed(5)
            check(res, "v5 client %d not closed after %s" % (i, sig.name))
            if rq.MOSQUITTO and res.rc is None:
                rq.log("mosquitto closed v5 client %d without DISCONNECT" % i)
            else:
                check_eq(res.rc, 0x8B, "v5 client %d: DISCONNECT reason (Server shutting down)"
                         % i)
        for i, c in enumerate(v3):
            res = c.expect_closed(5)
            check(res and res.rc is None, "3.1.1 client %d after %s: %r" % (i, sig.name, res))
        rc = wait_exit(b)
        check_eq(rc, 0, "broker exit code after %s" % sig.name)
        check(not rq.port_open(b.port), "port still open after exit")
        check(b.wait_log(r"shut|terminat|signal|exit|stop", mark, 1),
              "no log line about the shutdown; log:\n%s" % b.log_since(mark)[-1500:])


@case(mosquitto_differs="2.0.11 closes without DISCONNECT 0x8B")
def sigterm_disconnects_clients():
    shutdown_case(signal.SIGTERM)


@case(mosquitto_differs="2.0.11 closes without DISCONNECT 0x8B")
def sigint_disconnects_clients():
    shutdown_case(signal.SIGINT)


@case
def sigterm_idle_exits_quickly():
    with broker() as b:
        t0 = time.monotonic()
        b.signal(signal.SIGTERM)
        rc = wait_exit(b)
        check_eq(rc, 0, "exit code of an idle broker after SIGTERM")
        check(time.monotonic() - t0 < 3.0, "idle broker took %.1f s to exit"
              % (time.monotonic() - t0))


@case
def sigterm_with_traffic_in_flight():
    with broker() as b:
        t = rq.uniq("fl")
        cid = rq.uniq("persist")
        s = rq.connected(b.port, cid, props={"session_expiry_interval": 60})
        s.subscribe([(t, 2)])
        slow = rq.connected(b.port, props={"receive_maximum": 1})
        slow.subscribe([(t, 2)])
        p = rq.connected(b.port)
        # 17 of the 50 are QoS 2 and never released: fewer than the broker's Receive Maximum
        # (maxInflight 20), so the publisher is not disconnected before the signal.
        for i in range(50):
            p.publish(t, b"%d" % i, qos=2 if i % 3 == 0 else 1, wait=False)
        p.send_raw(rq.enc_publish(5, t, b"x" * 20)[:10])  # half a packet pending
        time.sleep(0.2)
        b.signal(signal.SIGTERM)
        rc = wait_exit(b, 8)
        check_eq(rc, 0, "exit code with clients mid-flow")


@case
def sighup_keeps_serving():
    with broker() as b:
        c = rq.connected(b.port)
        t = rq.uniq("hup")
        c.subscribe([(t, 1)])
        b.signal(signal.SIGHUP)
        time.sleep(0.5)
        b.check_alive()
        c.publish(t, b"still-here", qos=1)
        check_eq(c.recv_publish(3).payload, b"still-here", "connection kept across SIGHUP")
        rq.check_serves(b.port, "after SIGHUP")
        c.disconnect()
        check_eq(b.stop(), 0, "exit code after SIGHUP then SIGTERM")


@case
def client_vanishes_mid_send():
    # A subscriber that stops reading and then resets the connection while the broker has a
    # lot to write: the broker must survive (SIGPIPE / EPIPE / ECONNRESET).
    with broker() as b:
        t = rq.uniq("pipe")
        victims = []
        for _ in range(3):
            v = rq.connected(b.port)
            v.sock.setsockopt(rq.socket.SOL_SOCKET, rq.socket.SO_RCVBUF, 4096)
            v.subscribe([(t, 0)])
            victims.append(v)
        p = rq.connected(b.port)
        big = b"z" * 60000
        for i in range(40):
            p.publish(t, big, qos=0)
        for v in victims:
            v.sock.setsockopt(rq.socket.SOL_SOCKET, rq.socket.SO_LINGER, b"\x01\x00\x00\x00"
                              b"\x00\x00\x00\x00")  # close -> RST
            v.close()
        for i in range(20):
            p.publish(t, big, qos=0)
        p.ping(3)
        b.check_alive()
        rq.check_serves(b.port, "after clients vanished mid-send")
        check_eq(b.stop(), 0, "exit code")


if __name__ == "__main__":
    rq.run(timeout=120)
