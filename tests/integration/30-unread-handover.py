#!/usr/bin/python3
"""30 a CONNECT hand-over held up by a peer that does not read: a WebSocket client floods ping
frames before its CONNECT without reading the pongs, until the broker's socket buffer toward it
is full and a send to it cannot end; then its CONNECT names a session that lives on the other
shard, so the connection is to be handed over to that shard, which waits for the send. The
connect timeout must still close it (before: the hand-over stopped the connect timer and waited
for the send for ever, an authenticated but unconnected connection held as long as the peer
kept it). The session is untouched: a resume on another connection finds it. ringmq only
(shards)."""

import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import placement as pl  # noqa: E402
import unread  # noqa: E402

ONLY = "shards and the hand-over between them are ringmq's"
PORTS = {"tcp": "bindAddress: 127.0.0.1, protocol: Mqtt",
         "ws": "bindAddress: 127.0.0.1, protocol: WebSockets"}
CONNECT_TIMEOUT = 20
# a ping with 125 bytes of payload, masked with the zero key (the payload stays as it is); the
# pong is 127 bytes
PING = bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125
# steps of 1,024 pings (127 KiB of pongs), then of 128: the broker stops reading a client at
# 2 MiB of answers held


@case(ringmq_only=ONLY)
def handover_waiting_for_a_peer_that_does_not_read():
    with pl.start({"connectTimeoutSeconds": CONNECT_TIMEOUT}, ports=PORTS) as b:
        cid = rq.uniq("held")
        s = rq.connected(b.ports["tcp"], client_id=cid, props={"session_expiry_interval": 300})
        home = pl.shard_of(b, cid)
        s.disconnect()
        rq.log("the session of %s lives on shard %d" % (cid, home))
        for attempt in range(16):  # until a WebSocket connection lands on the other shard
            w = rq.WsRawClient(b.ports["ws"], version=5, timeout=10)
            w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            mine = w.sock.getsockname()[1]
            unread.fill(b.ports["ws"], w.sock, lambda n: w.send_bytes(PING * n), 1024, 128,
                        timeout=CONNECT_TIMEOUT - 5)
            mark = b.log_mark()
            w.send_connect(client_id=cid, clean=False, props={"session_expiry_interval": 300})
            m = b.wait_log(r'client="%s"[^\n]*(handing the connection over|\(session\) '
                           r'connected)' % re.escape(cid), mark, timeout=5)
            check(m, "%s: its CONNECT was neither handed over nor served" % cid)
            if m.group(1).startswith("handing"):
                break
            w.close()  # on the session's shard: no hand-over; again
        else:
            raise AssertionError("16 WebSocket connections, none on the other shard")
        rq.log("attempt %d: the hand-over waits for a send to a client that does not read"
               % attempt)
        # the connect timer started at the accept, less than CONNECT_TIMEOUT ago
        deadline = time.monotonic() + CONNECT_TIMEOUT + 10
        while True:
            q = unread.tcp_socket(b.ports["ws"], mine)
            if q is None or q[0] != 1:
                break
            check(time.monotonic() < deadline, "the connection held by its hand-over is still "
                  "open %d s after its CONNECT" % (CONNECT_TIMEOUT + 10))
            time.sleep(0.2)
        check(b.wait_log(r"connect timeout", mark, timeout=5),
              "no log line says the connect timeout closed it")
        check(not b.wait_log(r'client="%s"[^\n]*\) connected' % re.escape(cid), mark, timeout=0),
              "%s connected through the held connection" % cid)
        w.close()
        # the session is where it was
        c = rq.RawClient(b.ports["tcp"], version=5)
        ack = c.connect(client_id=cid, clean=False, props={"session_expiry_interval": 0},
                        timeout=10)
        check_eq(ack.rc, 0, "CONNACK of the resume")
        check(ack.session_present, "the resume found no session")
        c.disconnect()
        b.check_alive()
        rq.check_serves(b.ports["tcp"])
        check_eq(b.stop(), 0, "exit code after SIGTERM")


if __name__ == "__main__":
    rq.run(timeout=240)
