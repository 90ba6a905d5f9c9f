#!/usr/bin/python3
"""09 Custom re-authentication (MQTT v5 AUTH 0x19): a client that connected with an
Authentication Method sends AUTH 0x19 with the same method and new data; the broker POSTs
{"type":"auth"} to the auth server (tools/custom-auth-server.py, its mode file rewritten between
the CONNECT and the AUTH) through the method that authenticated the client.
  success           -> AUTH 0x00 naming the method; expiry and attributes replaced
  server unusable   -> AUTH 0x18; the connection and its old expiry stay (logged, rate-limited)
  denied            -> DISCONNECT 0x87 and close
  another method, no method at CONNECT, a second AUTH while one is pending, a reason other than
  0x19 -> DISCONNECT 0x82; an X509-authenticated client -> DISCONNECT 0x8C
The client publishes and receives while its re-authentication is pending; a verdict for a client
that left is dropped (ASan build: no use after free). ringmq only."""

import functools
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import certs  # noqa: E402
import authsrv  # noqa: E402

ONLY = "Custom re-authentication is a ringmq feature"
METHOD = "ringmq-userpass"
PASSWORD = "s3cret-Pa55word"
BOB_PASSWORD = "b0b-Pa55word"


class Env:
    """The PKI, the auth server (mode file rewritten by the cases) and its users."""

    def __init__(self):
        f = self.f = certs.CertFactory()
        users = {"alice": authsrv.user(PASSWORD, {"group": "g1", "floor": "3"}),
                 "bob": authsrv.user(BOB_PASSWORD, {"group": "g2"})}
        self.auth = authsrv.AuthServer(f, users, mode="users")
        self.srv_root = f.ca("/CN=ringmq Test Server Root", name="srv-root")
        self.srv = f.server(self.srv_root, name="srv")
        self.client_ca = f.ca("/CN=Client CA", name="client-ca")
        self.dev = f.client("/CN=device-1", self.client_ca, name="dev")
        self.dir = f.dir


env = fixtures.once(Env)


X509 = "  - method: X509\n    x509Settings: {trustedClientCaCert: client-ca}\n"


def broker_yaml(e, ports):
    y = ("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\n"
         "metadata: {name: broker}\nspec:\n  diagnostics: {logs: {level: debug}}\n"
         "  ringmq:\n    connectTimeoutSeconds: 10\n    auth: {requestTimeoutSeconds: 4}\n")
    y += """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: listeners}
spec:
  ports:
  - {port: %(plain)d, bindAddress: 127.0.0.1}
  - {port: %(custom)d, bindAddress: 127.0.0.1, authenticationRef: custom}
  - port: %(x509)d
    bindAddress: 127.0.0.1
    authenticationRef: x509
    tls: {mode: Manual, manual: {secretRef: server-cert}}
""" % ports
    y += authsrv.authn("custom", authsrv.custom_method(e.auth.url))
    y += authsrv.authn("x509", X509)
    y += certs.secret_yaml("server-cert", e.srv.chain_pem, e.srv.key_pem)
    y += e.auth.ca_configmap()
    y += certs.configmap_yaml("client-ca", {"ca.crt": e.client_ca.pem})
    return y


def fixture():
    e = env()
    ports = {k: rq.free_port() for k in ("plain", "custom", "x509")}
    return fixtures.start_listening(broker_yaml(e, ports), ports)


expect_log = functools.partial(fixtures.expect_log, timeout=10.0)


def auth_packet(reason=0x19, method=METHOD, data=None):
    props = {}
    if method is not None:
        props["authentication_method"] = method
    if data is not None:
        props["authentication_data"] = data
    return rq.packet(rq.AUTH, 0, bytes([reason]) + rq.enc_props(props))


def creds(user="alice", password=PASSWORD):
    return (user + ":" + password).encode()


def enhanced(b, client_id, user="alice", password=PASSWORD, port="custom", **kw):
    """A v5 client connected with the Authentication Method (data user:password)."""
    c = rq.RawClient(b.ports[port], timeout=10.0, **kw)
    ack = c.connect(client_id=client_id, props={"authentication_method": METHOD,
                                                "authentication_data": creds(user, password)})
    check_eq(ack.rc, 0, "CONNACK of %s" % client_id)
    check_eq(ack.props.get("authentication_method"), METHOD, "CONNACK names the method")
    return c


def wait_auth(c, timeout=10.0):
    """The broker's AUTH answer (other packets that arrive first are kept by the client)."""
    p = c.wait_for(rq.AUTH, timeout=timeout)
    check(p is not None, "no AUTH from the broker")
    return p


def alive(c, what):
    check(c.ping(timeout=5) is not None, "%s: no PINGRESP" % what)


# ---------------------------------------------------------------------------------------------

@case(ringmq_only=ONLY)
def reauth_success_moves_the_expiry(b):
    """Connected with credentials that expire in 6 s; re-authenticated at once with ones that
    expire in 60 s: AUTH 0x00 naming the method, and the client is still served after the first
    expiry has passed."""
    e = env()
    e.auth.set_mode("users,expire:6")
    t0 = time.monotonic()
    c = enhanced(b, "re-ok")
    e.auth.set_mode("users,expire:60")
    mark = b.log_mark()
    c.send_raw(auth_packet(data=creds()))
    p = wait_auth(c)
    check_eq(p.rc, 0x00, "AUTH reason")
    check_eq(p.props.get("authentication_method"), METHOD, "AUTH names the method")
    expect_log(b, mark, r're-authenticated by Custom as "[^"]*": attributes group=g1, '
               r'floor=3; expires', "re-authentication logged")
    while time.monotonic() - t0 < 8.5:  # past the first expiry (6 s) with a margin
        time.sleep(0.5)
    alive(c, "after the first expiry")
    c.disconnect()
    e.auth.set_mode("users")


@case(ringmq_only=ONLY)
def reauth_replaces_a_longer_expiry_with_a_shorter_one(b):
    """The expiry is replaced, not extended: 60 s at CONNECT, 3 s at re-authentication closes
    the connection (no DISCONNECT) about 3 s later, its will published."""
    e = env()
    w = rq.connected(b.ports["plain"], "re-will-watch")
    w.subscribe("will/re", qos=1)
    e.auth.set_mode("users,expire:60")
    c = rq.RawClient(b.ports["custom"], timeout=10.0)
    ack = c.connect(client_id="re-short", props={"authentication_method": METHOD,
                                                 "authentication_data": creds()},
                    will={"topic": "will/re", "payload": b"expired", "qos": 1})
    check_eq(ack.rc, 0, "CONNACK")
    e.auth.set_mode("users,expire:3")
    c.send_raw(auth_packet(data=creds()))
    check_eq(wait_auth(c).rc, 0x00, "AUTH reason")
    e.auth.set_mode("users")
    r = c.expect_closed(timeout=15)
    check(r.closed and r.disconnect is None, "closed at the new expiry, no DISCONNECT: %r" % r)
    m = w.wait_for(rq.PUBLISH, timeout=10)
    check_eq(m.payload, b"expired", "will published")
    w.disconnect()


@case(ringmq_only=ONLY)
def reauth_replaces_attributes_and_user_of_the_answer(b):
    """Attributes come whole from the re-authentication's answer: alice (group=g1, floor=3)
    re-authenticates with bob's credentials; the server answers bob's attributes (group=g2)
    and nothing of alice's is kept."""
    e = env()
    e.auth.set_mode("users")
    c = enhanced(b, "re-attrs")
    mark = b.log_mark()
    c.send_raw(auth_packet(data=creds("bob", BOB_PASSWORD)))
    check_eq(wait_auth(c).rc, 0x00, "AUTH reason")
    m = expect_log(b, mark, r're-authenticated by Custom as "[^"]*": attributes ([^;\n]*)',
                   "re-authentication logged")
    attrs = m.group(1)
    check("group=g2" in attrs and "floor" not in attrs and "g1" not in attrs,
          "attributes replaced whole: %r" % attrs)
    alive(c, "after re-authentication")
    c.disconnect()


@case(ringmq_only=ONLY)
def reauth_server_unusable_continue_and_keep(b):
    """The auth server drops the connection, answers 500, 422 or unreadable JSON: AUTH 0x18,
    the connection stays with its old credentials (and old expiry: it is closed when that
    passes); each cause is logged; a later re-authentication succeeds."""
    e = env()
    e.auth.set_mode("users,expire:15")
    t0 = time.monotonic()
    c = enhanced(b, "re-down")
    for mode, cause in (("drop", r"auth server request failed"),
                        ("status:500", r"status 500"),
                        ("422", r"supported versions"),
                        ("invalid-json", r"auth server: ")):
        e.auth.set_mode(mode)
        mark = b.log_mark()
        c.send_raw(auth_packet(data=creds()))
        p = wait_auth(c)
        check_eq(p.rc, 0x18, "AUTH reason with mode %s" % mode)
        check_eq(p.props.get("authentication_method"), METHOD, "AUTH 0x18 names the method")
        expect_log(b, mark, r"Custom https://127\.0\.0\.1:\d+: .*%s.*not relevant to the "
                   r"re-authentication" % cause, "not relevant logged (%s)" % mode)
        alive(c, "after AUTH 0x18 (%s)" % mode)
    e.auth.set_mode("users")
    # the old expiry (15 s after CONNECT) still holds: closed without DISCONNECT
    r = c.expect_closed(timeout=30)
    check(r.closed and r.disconnect is None, "closed at the old expiry: %r" % r)
    check(time.monotonic() - t0 > 12, "closed at the old expiry, not before")
    # and a client whose server works again re-authenticates
    c = enhanced(b, "re-down-2")
    c.send_raw(auth_packet(data=creds()))
    check_eq(wait_auth(c).rc, 0x00, "AUTH after the server is back")
    c.disconnect()


@case(ringmq_only=ONLY)
def reauth_timeout_continue(b):
    """The auth server answers after requestTimeoutSeconds (4 s): AUTH 0x18, connection kept."""
    e = env()
    e.auth.set_mode("users")
    c = enhanced(b, "re-timeout")
    e.auth.set_mode("users,slow:6")  # over requestTimeoutSeconds: 4
    c.send_raw(auth_packet(data=creds()))
    p = wait_auth(c, timeout=15)
    check_eq(p.rc, 0x18, "AUTH reason after a timeout")
    e.auth.set_mode("users")
    alive(c, "after the timeout")
    c.disconnect()


@case(ringmq_only=ONLY)
def reauth_denied_disconnects(b):
    """403 from the server: DISCONNECT 0x87 and close; a 403 with 0x86 (which DISCONNECT cannot
    carry) is 0x87 too; 0x97 (Quota exceeded) is kept."""
    e = env()
    for mode, want in (("deny:135", 0x87), ("users", 0x87), ("deny:151", 0x97)):
        e.auth.set_mode("users")
        c = enhanced(b, "re-deny")
        e.auth.set_mode(mode)
        data = creds("alice", "wrong") if mode == "users" else creds()
        c.send_raw(auth_packet(data=data))
        r = c.expect_closed(timeout=15)
        check(r.closed and r.rc == want, "mode %s: DISCONNECT 0x%02x then close: %r"
              % (mode, want, r))
    e.auth.set_mode("users")


@case(ringmq_only=ONLY)
def protocol_errors_disconnect_0x82(b):
    """Another method, no method, a reason other than 0x19, and AUTH from clients that gave no
    Authentication Method at CONNECT (user name + password on the Custom port; no
    authentication at all on the plain port): DISCONNECT 0x82. The server is never asked."""
    e = env()
    e.auth.set_mode("users")
    for what, pkt in (("another method", auth_packet(method="SCRAM-SHA-1", data=creds())),
                      ("no method", auth_packet(method=None, data=None)),
                      ("reason 0x18", auth_packet(reason=0x18, data=creds())),
                      ("reason 0x00", auth_packet(reason=0x00, data=creds()))):
        c = enhanced(b, "re-proto")
        mark = b.log_mark()
        c.send_raw(pkt)
        r = c.expect_closed(timeout=10)
        check(r.closed and r.rc == 0x82, "%s: DISCONNECT 0x82: %r" % (what, r))
        check(b.wait_log(r"re-authenticated|not relevant to the re-authentication", mark, 0.5)
              is None, "%s: the method ran" % what)
    c = rq.RawClient(b.ports["custom"], timeout=10.0)
    check_eq(c.connect(client_id="re-userpass", username="alice", password=PASSWORD).rc, 0,
             "user name + password")
    c.send_raw(auth_packet(data=creds()))
    r = c.expect_closed(timeout=10)
    check(r.closed and r.rc == 0x82, "AUTH without a method at CONNECT: %r" % r)
    c = rq.connected(b.ports["plain"], "re-plain")
    c.send_raw(auth_packet(data=creds()))
    r = c.expect_closed(timeout=10)
    check(r.closed and r.rc == 0x82, "AUTH on a port without authentication: %r" % r)


@case(ringmq_only=ONLY)
def x509_client_cannot_reauthenticate(b):
    """A client authenticated by X509 that named an Authentication Method at CONNECT: its AUTH
    0x19 gets DISCONNECT 0x8C (X509 cannot re-authenticate)."""
    e = env()
    tls = rq.tls_context(e.srv_root.cert, cert=e.dev.chain, key=e.dev.key)
    c = rq.RawClient(b.ports["x509"], timeout=10.0, tls=tls)
    ack = c.connect(client_id="re-x509", props={"authentication_method": METHOD})
    check_eq(ack.rc, 0, "CONNACK")
    mark = b.log_mark()
    c.send_raw(auth_packet(data=b"anything"))
    r = c.expect_closed(timeout=10)
    check(r.closed and r.rc == 0x8C, "DISCONNECT 0x8C: %r" % r)
    expect_log(b, mark, r"X509 cannot re-authenticate", "reason logged")


@case(ringmq_only=ONLY)
def second_auth_while_pending_and_traffic_meanwhile(b):
    """While a re-authentication waits on a slow server, the client publishes (QoS 1, PUBACK)
    and receives; a second AUTH meanwhile is a protocol error (DISCONNECT 0x82)."""
    e = env()
    e.auth.set_mode("users")
    c = enhanced(b, "re-busy")
    c.subscribe([("busy/t", 1)])
    other = rq.connected(b.ports["plain"], "re-busy-peer")
    e.auth.set_mode("users,slow:3")
    mark = b.log_mark()
    c.send_raw(auth_packet(data=creds()))
    expect_log(b, mark, r"re-authentication pending", "pending", timeout=5)
    c.publish("busy/own", b"mine", qos=1)  # waits for its PUBACK
    other.publish("busy/t", b"to-you", qos=0)
    m = c.wait_for(rq.PUBLISH, timeout=5)
    check(m is not None and m.payload == b"to-you", "received while pending: %r" % m)
    # the verdict has not come yet: an AUTH that arrived meanwhile would be in the backlog
    check(all(p.type != rq.AUTH for p in c.backlog), "the verdict came before: %r" % c.backlog)
    p = wait_auth(c)
    check_eq(p.rc, 0x00, "the pending re-authentication's answer")
    # a second AUTH while one is pending
    c.send_raw(auth_packet(data=creds()))
    expect_log(b, mark, r"re-authentication pending", "pending again", timeout=5)
    c.send_raw(auth_packet(data=creds()))
    r = c.expect_closed(timeout=10)
    check(r.closed and r.rc == 0x82, "second AUTH while pending: %r" % r)
    other.disconnect()
    e.auth.set_mode("users")


@case(ringmq_only=ONLY)
def verdict_after_the_client_left_is_dropped(b):
    """Clients that leave (or are taken over) while their re-authentication waits: the late
    verdicts are dropped and counted, nothing is applied to anyone else."""
    e = env()
    e.auth.set_mode("users")
    cs = [enhanced(b, "re-leave-%d" % i) for i in range(4)]
    e.auth.set_mode("users,slow:3")
    mark = b.log_mark()
    for c in cs:
        c.send_raw(auth_packet(data=creds()))
    expect_log(b, mark, r"re-authentication pending", "pending")
    for c in cs[:3]:
        c.close()
    taker = enhanced(b, "re-leave-3")  # takes the last one's session over
    r = cs[3].expect_closed(timeout=10)
    check(r.closed and r.rc == 0x8E, "taken over: %r" % r)
    expect_log(b, mark, r"re-authentication reply for connection [0-9a-f]+ dropped: the "
               r"connection is gone", "late verdict dropped", timeout=15)
    taker.expect_nothing(2.0, "AUTH meant for the taken-over connection")
    alive(taker, "the new connection")
    taker.disconnect()
    e.auth.set_mode("users")
    b.check_alive()


@case(ringmq_only=ONLY)
def not_relevant_log_is_rate_limited(b):
    """A burst of re-authentications against a server answering 503: each one answered AUTH
    0x18, the log holds at most a few 'not relevant' lines a second, and every event left out is
    counted on a later line ('N similar suppressed'): lines + suppressed counts = events."""
    import re
    e = env()
    e.auth.set_mode("users")
    cs = [enhanced(b, "re-rl-%d" % i) for i in range(20)]
    e.auth.set_mode("status:503")
    mark = b.log_mark()
    t0 = time.monotonic()
    for c in cs:
        c.send_raw(auth_packet(data=creds()))
    for c in cs:
        check_eq(wait_auth(c).rc, 0x18, "AUTH 0x18")
    burst = time.monotonic() - t0
    time.sleep(1.2)  # a new window: the next line reports what was left out before it
    cs[0].send_raw(auth_packet(data=creds()))
    check_eq(wait_auth(cs[0]).rc, 0x18, "AUTH 0x18")
    expect_log(b, mark, r"not relevant to the re-authentication", "a line")
    time.sleep(0.3)
    lines = [ln for ln in b.log_since(mark).splitlines()
             if "not relevant to the re-authentication" in ln]
    suppressed = sum(int(m.group(1)) for ln in lines
                     for m in [re.search(r"\((\d+) similar suppressed\)", ln)] if m)
    check(len(lines) <= 5 * (int(burst) + 2) + 1, "rate-limited: %d lines in %.1f s"
          % (len(lines), burst + 1.2))
    check(len(lines) + suppressed >= 21, "every event written or counted: %d lines + %d "
          "suppressed" % (len(lines), suppressed))
    check(suppressed > 0 or burst > 1.0, "a burst of 20 in %.1f s suppressed nothing" % burst)
    for c in cs:
        c.disconnect()
    e.auth.set_mode("users")


@case(ringmq_only=ONLY)
def reauth_after_handover_to_the_session_shard(b):
    """A connection accepted on one shard and handed to the shard of its session (with its
    principal and pinned generation) re-authenticates there like any other."""
    import re
    e = env()
    e.auth.set_mode("users")
    cid = "re-moving"
    sess = {"session_expiry_interval": 60}
    props = dict(sess, authentication_method=METHOD, authentication_data=creds())
    c = rq.RawClient(b.ports["custom"], timeout=10.0)
    check_eq(c.connect(client_id=cid, props=props).rc, 0, "first CONNACK")
    c.disconnect()
    rx = r'client="%s" \(connect\)[^\n]*handing the connection' % cid
    moved = None
    for i in range(16):
        before = len(re.findall(rx, b.log()))
        c = rq.RawClient(b.ports["custom"], timeout=10.0)
        ack = c.connect(client_id=cid, clean=False, props=props)
        check_eq(ack.rc, 0, "CONNACK %d" % i)
        check(ack.session_present, "session present %d" % i)
        if len(re.findall(rx, b.log())) > before:
            moved = c
            break
        c.disconnect()
    check(moved is not None, "no connection was handed over in 16 tries (2 shards)")
    mark = b.log_mark()
    moved.send_raw(auth_packet(data=creds("bob", BOB_PASSWORD)))
    check_eq(wait_auth(moved).rc, 0x00, "AUTH after the hand-over")
    expect_log(b, mark, r'client="%s" \(session\) re-authenticated by Custom as "[^"]*": '
               r'attributes group=g2' % cid, "re-authenticated on the session's shard")
    moved.disconnect(props={"session_expiry_interval": 0})


@case(ringmq_only=ONLY)
def passwords_never_logged(b):
    log = b.log()
    check(PASSWORD not in log and BOB_PASSWORD not in log, "a password in the broker log")


if __name__ == "__main__":
    if not certs.openssl_available():
        print("SKIP all: the openssl command line tool is missing")
        sys.exit(rq.SKIP_RC)
    rq.run(fixture, timeout=300)
