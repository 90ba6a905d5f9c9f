#!/usr/bin/python3
"""28 peer address: below debug level the broker does not ask the kernel for each accepted
connection's address (a getpeername per accept); it asks when a line about the connection is
first written. A line about a connection still names the peer, at info level as at debug:
"ip:port" of the client's own socket."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check  # noqa: E402


def refused_line_names(b, how):
    """A connection whose first packet is not CONNECT is closed with an info line about it: the
    line must carry this client's address."""
    mark = b.log_mark()
    c = rq.RawClient(b.port)
    host, port = c.sock.getsockname()[:2]
    c.send_raw(rq.packet(0xC, 0, b""))  # PINGREQ first
    c.expect_closed()
    m = b.wait_log(r"first packet is not CONNECT", mark, timeout=10.0)
    check(m is not None, "%s: no line about the refused connection; log:\n%s"
          % (how, b.log_since(mark)[-2000:]))
    line = [ln for ln in b.log_since(mark).splitlines() if "first packet is not CONNECT" in ln]
    want = "%s:%d" % (host, port)
    check(line and want in line[0], "%s: the line does not name %s: %r" % (how, want, line))


@case(ringmq_only="log lines")
def info_level_names_the_peer():
    b = rq.start_broker(rq.broker_yaml(log_level="info"))
    refused_line_names(b, "info")
    # a connection that is accepted and served, never logged, then another one logged
    ok = rq.connected(b.port, "quiet-one")
    ok.disconnect() if hasattr(ok, "disconnect") else ok.close()
    refused_line_names(b, "info, after a connection never logged")


@case(ringmq_only="log lines")
def debug_level_names_the_peer():
    b = rq.start_broker(rq.broker_yaml(log_level="debug"))
    refused_line_names(b, "debug")


if __name__ == "__main__":
    rq.run(timeout=120)
