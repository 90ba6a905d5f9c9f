#!/usr/bin/python3
"""09 Custom authentication: the broker POSTs each CONNECT's credentials to an HTTPS auth server
(tools/custom-auth-server.py, certificates made at test time) through the auth service pool, and
the answer decides: pass with attributes, deny with the server's reason code (v5 and 3.1.1),
expiry disconnect (no DISCONNECT, will published), an unreachable server or a 422 falls through
to a later X509 method or denies, a slow server never stalls connected clients, packets
pipelined after CONNECT wait for the verdict, configured headers reach the server, Cache-Control
verdicts are cached, maxPending answers 0x89 / return code 3, a verdict for a client that left
is dropped, and the password never reaches the log. ringmq only."""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import certs  # noqa: E402
import authsrv  # noqa: E402

ONLY = "Custom authentication is a ringmq feature"
PASSWORD = "s3cret-Pa55word"


class Env:
    """The PKI, the auth server (with a mode file the cases rewrite) and the broker."""

    def __init__(self):
        f = self.f = certs.CertFactory()
        self.auth = authsrv.AuthServer(
            f, {"alice": authsrv.user(PASSWORD, {"group": "g1", "floor": "3"})}, mode="users",
            stats=True)
        self.srv_root = f.ca("/CN=ringmq Test Server Root", name="srv-root")
        self.srv = f.server(self.srv_root, name="srv")
        self.client_ca = f.ca("/CN=Client CA", name="client-ca")
        self.dev = f.client("/CN=device-1", self.client_ca, name="dev")
        self.dir = f.dir


env = fixtures.once(Env)


X509 = "  - method: X509\n    x509Settings: {trustedClientCaCert: client-ca}\n"


def broker_yaml(e, ports, auth_extra=""):
    ok = e.auth.url
    dead = "https://127.0.0.1:%d" % ports["deadport"]
    y = ("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\nmetadata: {name: broker}\n"
         "spec:\n  diagnostics: {logs: {level: debug}}\n  ringmq:\n    connectTimeoutSeconds: 10\n"
         "    auth: {requestTimeoutSeconds: 5%s}\n" % auth_extra)
    y += """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: listeners}
spec:
  ports:
  - {port: %(plain)d, bindAddress: 127.0.0.1}
  - {port: %(custom)d, bindAddress: 127.0.0.1, authenticationRef: custom}
  - {port: %(down)d, bindAddress: 127.0.0.1, authenticationRef: down}
  - port: %(custom_x509)d
    bindAddress: 127.0.0.1
    authenticationRef: custom-x509
    tls: {mode: Manual, manual: {secretRef: server-cert}}
  - port: %(down_x509)d
    bindAddress: 127.0.0.1
    authenticationRef: down-x509
    tls: {mode: Manual, manual: {secretRef: server-cert}}
""" % ports
    y += authsrv.authn("custom", authsrv.custom_method(ok, {"x-tenant": "tenant-7"}))
    y += authsrv.authn("down", authsrv.custom_method(dead))
    y += authsrv.authn("custom-x509", authsrv.custom_method(ok) + X509)
    y += authsrv.authn("down-x509", authsrv.custom_method(dead) + X509)
    y += certs.secret_yaml("server-cert", e.srv.chain_pem, e.srv.key_pem)
    y += e.auth.ca_configmap()
    y += certs.configmap_yaml("client-ca", {"ca.crt": e.client_ca.pem})
    return y


def start(auth_extra=""):
    e = env()
    ports = {k: rq.free_port() for k in ("plain", "custom", "down", "custom_x509", "down_x509",
                                         "deadport")}
    return fixtures.start_listening(broker_yaml(e, ports, auth_extra), ports, skip=("deadport",))


def fixture():
    return start()


expect_log = fixtures.expect_log


def tls_ctx(cert=None):
    e = env()
    return rq.tls_context(e.srv_root.cert, cert=cert.chain if cert else None,
                          key=cert.key if cert else None)


def raw(b, which="custom", version=5, tls=None):
    return rq.RawClient(b.ports[which], version=version, tls=tls, timeout=10.0)


# ---------------------------------------------------------------------------------------------

@case(ringmq_only=ONLY)
def pass_with_attributes(b):
    e = env()
    e.auth.set_mode("users")
    for v in (5, 4):
        mark = b.log_mark()
        c = raw(b, version=v)
        ack = c.connect(client_id="alice-%d" % v, username="alice", password=PASSWORD)
        check_eq(ack.rc, 0, "v%d CONNACK" % v)
        expect_log(b, mark, r'authenticated by Custom as "alice": attributes (group=g1, floor=3|'
                   r'floor=3, group=g1)', "v%d pass with attributes" % v)
        c.publish("t/x", b"hi", qos=1)
        c.close()
    check(PASSWORD not in b.log(), "the password appears in the broker log")


@case(ringmq_only=ONLY)
def pass_paho_and_mosquitto_pub(b):
    e = env()
    e.auth.set_mode("users")
    mqtt = rq.paho()
    if hasattr(mqtt, "CallbackAPIVersion"):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-alice",
                        protocol=mqtt.MQTTv5)
    else:
        c = mqtt.Client(client_id="paho-alice", protocol=mqtt.MQTTv5)
    c.username_pw_set("alice", PASSWORD)
    rcs = []
    c.on_connect = lambda cl, u, f, rc, p=None: rcs.append(rc)
    c.connect("127.0.0.1", b.ports["custom"])
    c.loop_start()
    deadline = time.monotonic() + 10
    while not rcs and time.monotonic() < deadline:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    check(rcs and int(getattr(rcs[0], "value", rcs[0])) == 0, "paho v5 CONNACK %r" % rcs)
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.ports["custom"]), "-V",
                        "mqttv311", "-u", "alice", "-P", PASSWORD, "-t", "t/m", "-m", "x"],
                       capture_output=True, timeout=20)
    check_eq(r.returncode, 0, "mosquitto_pub exit code (%r)" % r.stderr)
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.ports["custom"]), "-V",
                        "mqttv311", "-u", "alice", "-P", "wrong", "-t", "t/m", "-m", "x"],
                       capture_output=True, timeout=20)
    check(r.returncode != 0, "mosquitto_pub with a wrong password succeeded")


@case(ringmq_only=ONLY)
def enhanced_authentication_at_connect(b):
    """A v5 CONNECT with an Authentication Method goes to the server as enhancedAuthentication
    (the reference server reads the data as user:password)."""
    e = env()
    e.auth.set_mode("users")
    c = raw(b)
    ack = c.connect(client_id="enh", props={"authentication_method": "ringmq-userpass",
                                            "authentication_data": b"alice:" + PASSWORD.encode()})
    check_eq(ack.rc, 0, "CONNACK")
    check_eq(ack.props.get("authentication_method"), "ringmq-userpass",
             "the CONNACK names the Authentication Method")
    c.close()
    c = raw(b)
    ack = c.connect(props={"authentication_method": "ringmq-userpass",
                           "authentication_data": b"alice:wrong"})
    check_eq(ack.rc, 0x86, "CONNACK with bad authentication data")


@case(ringmq_only=ONLY)
def deny_reason_codes(b):
    e = env()
    e.auth.set_mode("users")
    for v, want in ((5, 0x86), (4, 4)):
        c = raw(b, version=v)
        check_eq(c.connect(username="alice", password="wrong").rc, want, "v%d bad password" % v)
        c.expect_closed()
    e.auth.set_mode("deny:135")
    for v, want in ((5, 0x87), (4, 5)):
        c = raw(b, version=v)
        check_eq(c.connect(username="alice", password=PASSWORD).rc, want, "v%d deny 135" % v)
        c.expect_closed()
    e.auth.set_mode("deny:151")  # 0x97 quota exceeded: a v5 code kept, 3.1.1 return code 5
    for v, want in ((5, 0x97), (4, 5)):
        c = raw(b, version=v)
        check_eq(c.connect(username="alice", password=PASSWORD).rc, want, "v%d deny 151" % v)
    e.auth.set_mode("users")


@case(ringmq_only=ONLY)
def expiry_disconnects_and_publishes_will(b):
    e = env()
    e.auth.set_mode("users,expire:3")
    w = rq.connected(b.ports["plain"], "will-watcher")
    w.subscribe("will/custom", qos=1)
    c = raw(b)
    ack = c.connect(client_id="expiring", username="alice", password=PASSWORD,
                    will={"topic": "will/custom", "payload": b"gone", "qos": 1})
    check_eq(ack.rc, 0, "CONNACK")
    e.auth.set_mode("users")
    r = c.expect_closed(timeout=15)
    check(r.closed and r.disconnect is None, "closed without DISCONNECT at expiry: %r" % r)
    m = w.wait_for(rq.PUBLISH, timeout=10)
    check_eq(m.payload, b"gone", "will payload")


@case(ringmq_only=ONLY)
def server_down_falls_through_to_x509(b):
    e = env()
    mark = b.log_mark()
    c = raw(b, "down_x509", tls=tls_ctx(e.dev))
    check_eq(c.connect(client_id="dev1").rc, 0, "CONNACK via X509 after Custom unreachable")
    expect_log(b, mark, r"X509", "X509 decided")
    c.close()


@case(ringmq_only=ONLY)
def server_down_nothing_later_denies(b):
    for v, want in ((5, 0x87), (4, 5)):
        c = raw(b, "down", version=v)
        check_eq(c.connect(username="alice", password=PASSWORD).rc, want, "v%d" % v)


@case(ringmq_only=ONLY)
def status_422_is_not_relevant(b):
    e = env()
    e.auth.set_mode("422")
    c = raw(b, "custom_x509", tls=tls_ctx(e.dev))
    check_eq(c.connect(client_id="dev422", username="alice", password=PASSWORD).rc, 0,
             "422 falls through to X509")
    c.close()
    c = raw(b, "custom")
    check_eq(c.connect(username="alice", password=PASSWORD).rc, 0x87, "422 alone: denied")
    e.auth.set_mode("users")


@case(ringmq_only=ONLY)
def headers_reach_the_server(b):
    e = env()
    e.auth.set_mode("users")
    c = raw(b)
    check_eq(c.connect(username="alice", password=PASSWORD).rc, 0, "CONNACK")
    c.close()
    h = {k.lower(): v for k, v in e.auth.stats()["last_headers"].items()}
    check_eq(h.get("x-tenant"), "tenant-7", "configured header at the server")


@case(ringmq_only=ONLY)
def slow_server_does_not_stall_connected_clients(b):
    e = env()
    sub = rq.connected(b.ports["plain"], "fast-sub")
    sub.subscribe("fast/t")
    e.auth.set_mode("users,slow:3")
    waiting = []
    for i in range(20):
        c = raw(b)
        c.send_connect(client_id="slow-%d" % i, username="alice", password=PASSWORD)
        waiting.append(c)
    time.sleep(0.5)  # the CONNECTs are now waiting on the auth server
    t0 = time.monotonic()
    sub.publish("fast/t", b"ping")
    m = sub.wait_for(rq.PUBLISH, timeout=1.0)
    check(m is not None and time.monotonic() - t0 < 1.0, "publish round trip while 20 wait")
    for c in waiting:
        ack = c.recv_packet(15)
        check(ack is not None and ack.type == rq.CONNACK and ack.rc == 0, "slow CONNACK %r" % ack)
        c.close()
    e.auth.set_mode("users")


@case(ringmq_only=ONLY)
def pipelined_packets_after_allow_never_after_deny(b):
    e = env()
    e.auth.set_mode("users,slow:1")
    watch = rq.connected(b.ports["plain"], "pipe-watch")
    watch.subscribe("pipe/#", qos=1)
    # allowed: SUBSCRIBE and PUBLISH sent with the CONNECT are processed after the CONNACK
    c = raw(b)
    data = rq.enc_connect(5, "pipe-ok", username="alice", password=PASSWORD)
    data += rq.enc_subscribe(5, 1, [("pipe/ok", 1)])
    data += rq.enc_publish(5, "pipe/ok", b"after-allow", qos=1, pid=2)
    c.send_raw(data)
    check_eq(c.recv_packet(10).type, rq.CONNACK, "first packet")
    got = set()
    for _ in range(3):
        p = c.recv_packet(10)
        check(p is not None, "pipelined packets answered")
        got.add(p.type)
    check(rq.SUBACK in got and rq.PUBACK in got, "SUBACK and PUBACK after allow: %r" % got)
    m = watch.wait_for(rq.PUBLISH, timeout=5)
    check_eq(m.payload, b"after-allow", "published after allow")
    c.close()
    # denied: the PUBLISH is never processed
    c = raw(b)
    c.send_raw(rq.enc_connect(5, "pipe-bad", username="alice", password="wrong") +
               rq.enc_publish(5, "pipe/bad", b"after-deny", qos=0))
    ack = c.recv_packet(10)
    check_eq(ack.rc, 0x86, "CONNACK")
    c.expect_closed()
    watch.expect_nothing(1.5, "a message published after a denied CONNECT")
    e.auth.set_mode("users")


@case(ringmq_only=ONLY)
def verdict_after_client_left_is_dropped(b):
    e = env()
    e.auth.set_mode("users,slow:2")
    mark = b.log_mark()
    for i in range(5):
        c = raw(b)
        c.send_connect(client_id="leaver-%d" % i, username="alice", password=PASSWORD)
        time.sleep(0.1)
        c.close()
    expect_log(b, mark, r"authentication reply for connection [0-9a-f]+ dropped: the connection "
               r"is gone", "late verdict dropped", timeout=15)
    e.auth.set_mode("users")
    c = raw(b)
    check_eq(c.connect(username="alice", password=PASSWORD).rc, 0, "after the leavers")
    c.close()
    b.check_alive()
    check(PASSWORD not in b.log_since(mark), "password in the log")


@case(ringmq_only=ONLY)
def max_pending_answers_server_busy():
    e = env()
    b = start(", maxPending: 1")
    try:
        e.auth.set_mode("users,slow:2")
        first = raw(b)
        first.send_connect(client_id="p1", username="alice", password=PASSWORD)
        time.sleep(0.5)
        for v, want in ((5, 0x89), (4, 3)):
            c = raw(b, version=v)
            check_eq(c.connect(username="alice", password=PASSWORD).rc, want,
                     "v%d over maxPending" % v)
        check_eq(first.recv_packet(10).rc, 0, "the pending one")
    finally:
        e.auth.set_mode("users")
        check_eq(b.stop(), 0, "exit code after SIGTERM")


@case(ringmq_only=ONLY)
def cache_control_verdict_cached(b):
    e = env()
    e.auth.set_mode("users,cache:60")
    user = "alice"
    c = raw(b)
    check_eq(c.connect(client_id="c1", username=user, password=PASSWORD).rc, 0, "first")
    c.close()
    n = e.auth.stats()["requests"]
    c = raw(b)
    check_eq(c.connect(client_id="c2", username=user, password=PASSWORD).rc, 0, "second")
    c.close()
    check_eq(e.auth.stats()["requests"], n, "requests after a cached verdict")
    e.auth.set_mode("users")


@case(ringmq_only=ONLY)
def mtls_client_certificate_from_secret():
    """customSettings.auth.x509.secretRef: the broker presents that certificate to an auth
    server that requires one; without it the server refuses the handshake (not relevant)."""
    e = env()
    bc = e.f.client("/CN=ringmq-broker", e.client_ca, name="broker-client")
    mport = e.auth.start(client_ca=e.client_ca.cert, name="mtls-port")
    port, port2 = rq.free_port(), rq.free_port()
    y = ("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\n"
         "metadata: {name: listeners}\nspec:\n  ports:\n"
         "  - {port: %d, bindAddress: 127.0.0.1, authenticationRef: mtls}\n"
         "  - {port: %d, bindAddress: 127.0.0.1, authenticationRef: nocert}\n" % (port, port2))
    y += authsrv.authn("mtls", authsrv.custom_method("https://127.0.0.1:%d" % mport) +
               "      auth: {x509: {secretRef: broker-client}}\n")
    y += authsrv.authn("nocert", authsrv.custom_method("https://127.0.0.1:%d" % mport))
    y += certs.secret_yaml("broker-client", bc.chain_pem, bc.key_pem)
    y += e.auth.ca_configmap()
    b = rq.start_broker(y)
    try:
        c = rq.RawClient(port, timeout=10)
        check_eq(c.connect(username="alice", password=PASSWORD).rc, 0, "with the client cert")
        c.close()
        c = rq.RawClient(port2, timeout=10)
        check_eq(c.connect(username="alice", password=PASSWORD).rc, 0x87, "without it")
    finally:
        check_eq(b.stop(), 0, "exit code after SIGTERM")


@case(ringmq_only=ONLY)
def sigterm_with_requests_pending():
    """SIGTERM while CONNECTs wait on a slow server: the pool answers them (not relevant), is
    joined before the shards are freed, and the broker exits 0 promptly; --auth-threads is
    used."""
    e = env()
    e.auth.set_mode("users,slow:4")
    ports = {k: rq.free_port() for k in ("plain", "custom", "down", "custom_x509", "down_x509",
                                         "deadport")}
    b = rq.start_broker(broker_yaml(e, ports), extra_args=["--auth-threads", "3"])
    try:
        check(b.wait_log(r"authentication service pool: 3 threads", 0, 5), "--auth-threads 3")
        check(rq.port_open(ports["custom"], 5.0), "port")
        cs = []
        for i in range(5):
            c = rq.RawClient(ports["custom"], timeout=10)
            c.send_connect(client_id="term-%d" % i, username="alice", password=PASSWORD)
            cs.append(c)
        time.sleep(0.5)
        t0 = time.monotonic()
        check_eq(b.stop(), 0, "exit code after SIGTERM")
        check(time.monotonic() - t0 < 3.5, "stopped before the slow answers")
    finally:
        e.auth.set_mode("users")


@case(ringmq_only=ONLY)
def request_timeout_must_be_below_connect_timeout():
    e = env()
    ports = {k: rq.free_port() for k in ("plain", "custom", "down", "custom_x509", "down_x509",
                                         "deadport")}
    y = broker_yaml(e, ports).replace("connectTimeoutSeconds: 10", "connectTimeoutSeconds: 5")
    d = os.path.join(e.dir, "bad.yaml")
    with open(d, "w") as fh:
        fh.write(y)
    r = subprocess.run([rq.broker_bin(), "-c", d, "--check-config"], capture_output=True,
                       text=True, timeout=20)
    check(r.returncode != 0 and "requestTimeoutSeconds (5) must be below connectTimeoutSeconds (5)"
          in r.stderr, "config error: %r" % r.stderr)
    r = subprocess.run([rq.broker_bin(), "-c", d, "--auth-threads", "0"], capture_output=True,
                       text=True, timeout=20)
    check(r.returncode == 2 and "--auth-threads must be 1..64" in r.stderr, "bad --auth-threads")


@case(ringmq_only=ONLY)
def reload_brings_custom_and_swaps_it_mid_request():
    """A broker started without any Custom method starts the pool on the SIGHUP that brings
    one; a reload while a request is in flight (the job holds the old method state) still
    answers the waiting client, and the broker stays ASan-clean."""
    import signal as _signal
    e = env()
    e.auth.set_mode("users")
    ports = {k: rq.free_port() for k in ("plain", "custom", "down", "custom_x509", "down_x509",
                                         "deadport")}
    full = broker_yaml(e, ports)
    bare = re.sub(r", authenticationRef: [a-z0-9-]+\}", "}", full)
    bare = re.sub(r"\n    authenticationRef: [a-z0-9-]+", "", bare)
    b = rq.start_broker(bare)
    try:
        check(b.wait_log(r"authentication service pool", 0, 0.5) is None, "no pool at start")
        c = rq.RawClient(ports["custom"], timeout=10)
        check_eq(c.connect().rc, 0, "no authentication before the reload")
        c.close()
        cfg = b.argv[b.argv.index("-c") + 1]
        with open(cfg, "w") as fh:
            fh.write(full)
        mark = b.log_mark()
        b.signal(_signal.SIGHUP)
        expect_log(b, mark, r"authentication service pool: 2 threads", "pool started on reload")
        expect_log(b, mark, r"reload: generation", "reload done")
        c = rq.RawClient(ports["custom"], timeout=10)
        check_eq(c.connect().rc, 0x87, "no credentials after the reload")
        e.auth.set_mode("users,slow:2")
        c = rq.RawClient(ports["custom"], timeout=10)
        c.send_connect(client_id="mid-reload", username="alice", password=PASSWORD)
        time.sleep(0.5)
        mark = b.log_mark()
        b.signal(_signal.SIGHUP)
        expect_log(b, mark, r"reload: generation", "second reload")
        ack = c.recv_packet(15)
        check(ack is not None and ack.type == rq.CONNACK and ack.rc == 0, "answer %r" % ack)
        c.close()
    finally:
        e.auth.set_mode("users")
        check_eq(b.stop(), 0, "exit code after SIGTERM")


@case(ringmq_only=ONLY)
def password_never_logged(b):
    check(PASSWORD not in b.log(), "the password appears in the broker log")


if __name__ == "__main__":
    if not certs.openssl_available():
        print("SKIP all: the openssl command line tool is missing")
        sys.exit(rq.SKIP_RC)
    rq.run(fixture, timeout=300)
