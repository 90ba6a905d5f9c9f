#!/usr/bin/python3
"""08 ServiceAccountToken re-authentication (MQTT v5 AUTH 0x19 with method K8S-SAT and a new
token, what the AIO SDKs send when the kubelet rotates the token file), against the test
Kubernetes API server of 08-sat (lib/kube_api.py):
  new token reviewed          -> AUTH 0x00 naming K8S-SAT; the expiry moves to the new exp
  API unreachable / slow      -> AUTH 0x18; the connection and its old expiry stay
  token denied (audience)     -> DISCONNECT 0x87 and close
  a client connected with the v3.1.1-style K8S-SAT user name (no Authentication Method) cannot
  re-authenticate: DISCONNECT 0x82 [MQTT-4.12.0-1 / 4.12.1-1]. ringmq only."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402

# The environment (API server, broker configuration, CONNECT helpers) is 08-sat's; its cases
# are not run here.
sat = fixtures.sibling("08-sat.py")

ONLY = sat.ONLY
METHOD = "K8S-SAT"


def auth_packet(token, reason=0x19, method=METHOD):
    props = {"authentication_method": method, "authentication_data": token.encode()}
    return rq.packet(rq.AUTH, 0, bytes([reason]) + rq.enc_props(props))


def wait_auth(c, timeout=15.0):
    p = c.wait_for(rq.AUTH, timeout=timeout)
    check(p is not None, "no AUTH from the broker")
    return p


def alive(c, what):
    check(c.ping(timeout=5) is not None, "%s: no PINGRESP" % what)


def connected(b, token, client_id):
    c, ack = sat.sat_connect(b, token, client_id=client_id)
    check_eq(ack.rc, 0, "CONNACK with a good token")
    return c


@case(ringmq_only=ONLY)
def reauth_moves_the_expiry(b):
    """Connected with a token that expires in 4 s, re-authenticated with one that lives an hour:
    AUTH 0x00 naming K8S-SAT, one more TokenReview, and the client is served past 4 s."""
    e = sat.env()
    t0 = time.monotonic()
    c = connected(b, e.token(expires_in=4), "sat-re-ok")
    reviews = e.api.count("tokenreview")
    mark = b.log_mark()
    c.send_raw(auth_packet(e.token(expires_in=3600)))
    p = wait_auth(c)
    check_eq(p.rc, 0x00, "AUTH reason")
    check_eq(p.props.get("authentication_method"), METHOD, "AUTH names the method")
    check_eq(e.api.count("tokenreview"), reviews + 1, "the new token was reviewed")
    sat.expect_log(b, mark, r"re-authenticated by ServiceAccountToken", "re-authentication logged")
    while time.monotonic() - t0 < 6.5:  # past the first token's exp with a margin
        time.sleep(0.5)
    alive(c, "after the first token's exp")


@case(ringmq_only=ONLY)
def reauth_without_new_exp_still_expires(b):
    """Control for the case above: without re-authentication the same 4 s token ends the
    connection (closed without DISCONNECT)."""
    e = sat.env()
    c = connected(b, e.token(expires_in=4), "sat-re-control")
    r = c.expect_closed(timeout=15)
    check(r.closed and r.rc is None, "closed at exp without DISCONNECT: %r" % r)


@case(ringmq_only=ONLY)
def reauth_api_down_continue_and_keep(b):
    """The API server is down (connections closed unanswered) or slower than the request
    timeout: AUTH 0x18, the connection stays; once it is back, a re-authentication works."""
    e = sat.env()
    c = connected(b, e.token(), "sat-re-down")
    try:
        for mode in ("down", "slow:6"):
            e.api.mode = mode
            c.send_raw(auth_packet(e.token()))  # a new token: not in the cache
            p = wait_auth(c, timeout=20)
            check_eq(p.rc, 0x18, "AUTH reason with the API %s" % mode)
            alive(c, "after AUTH 0x18 (%s)" % mode)
    finally:
        e.api.mode = "ok"
    c.send_raw(auth_packet(e.token()))
    check_eq(wait_auth(c).rc, 0x00, "AUTH once the API is back")


@case(ringmq_only=ONLY)
def reauth_denied_disconnects(b):
    """A token for another audience: DISCONNECT 0x87 and close."""
    e = sat.env()
    c = connected(b, e.token(), "sat-re-deny")
    c.send_raw(auth_packet(e.token(audiences=("someone-else",))))
    r = c.expect_closed(timeout=15)
    check(r.closed and r.rc == 0x87, "DISCONNECT 0x87 then close: %r" % r)


@case(ringmq_only=ONLY)
def reauth_after_username_connect_is_a_protocol_error(b):
    """Connected as user K8S-SAT with the token as password (no Authentication Method): an AUTH
    is a protocol error, DISCONNECT 0x82."""
    e = sat.env()
    c = rq.RawClient(b.ports["sat"], version=5, timeout=15.0)
    ack = c.connect(client_id="sat-re-user", username="K8S-SAT", password=e.token())
    check_eq(ack.rc, 0, "CONNACK for the user-name form")
    c.send_raw(auth_packet(e.token()))
    r = c.expect_closed(timeout=15)
    check(r.closed and r.rc == 0x82, "DISCONNECT 0x82 then close: %r" % r)


@case(ringmq_only=ONLY)
def tokens_never_logged(b):
    sat.no_tokens_logged(b)


if __name__ == "__main__":
    if sat.kube_api is None:
        print("SKIP all: %s (python3-cryptography and python3-jwt are needed)"
              % sat._IMPORT_ERROR)
        sys.exit(rq.SKIP_RC)
    rq.run(sat.fixture, timeout=300)
