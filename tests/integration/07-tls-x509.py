#!/usr/bin/python3
"""07 TLS and X.509 client authentication: TLS 1.2 and 1.3 with python ssl, mosquitto_pub/sub
and paho; TLS 1.0/1.1 refused; a stalled handshake closed at the connect timeout; X509 chain
verification in the handshake (no certificate, another CA, an impostor CA, expired, not yet
valid); trust anchors that are roots or intermediates; the mixed key algorithm rule (CONNACK
0x87 / return code 5); username and authorizationAttributes as the log reports them;
disconnect at the earliest notAfter of the chain (no DISCONNECT, will published); Secrets and
ConfigMaps as documents and as mounted directories; only the verified path counts (forged or
unrelated CA certificates in the presented list never give attributes, escape the key algorithm
rule or extend the credentials); one X509 method per BrokerAuthentication. Certificates are made at test time
(lib/certs.py). ringmq only (the mosquitto translation has no TLS)."""

import functools
import os
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import certs  # noqa: E402

ONLY = "TLS and X.509 are ringmq listener features"
CONNECT_TIMEOUT = 2  # spec.ringmq.connectTimeoutSeconds of the brokers here

ROOT_SUBJECT = "CN = Contoso Root CA Cert, OU = Engineering, C = US"


class Pki:
    """Every certificate the cases use, made once (about two seconds of openssl)."""

    def __init__(self):
        f = self.f = certs.CertFactory()
        now = time.time()
        # The broker's own certificate: tls.crt = leaf + intermediate; clients trust the root.
        self.srv_root = f.ca("/CN=ringmq Test Server Root", name="srv-root")
        self.srv_int = f.ca("/CN=ringmq Test Server Intermediate", issuer=self.srv_root,
                            name="srv-int")
        self.srv = f.server(self.srv_int, name="srv")
        # Client CAs (EC) as in the AIO docs' attribute example.
        self.root = f.ca("/C=US/OU=Engineering/CN=Contoso Root CA Cert", name="root")
        self.inter = f.ca("/CN=Contoso Intermediate CA", issuer=self.root, name="inter")
        self.inter2 = f.ca("/CN=Contoso Intermediate CA 2", issuer=self.root, name="inter2")
        self.fan = f.client("/CN=smart-fan", self.inter, name="fan")        # own entry
        self.thermo = f.client("/CN=thermostat", self.inter, name="thermo")  # intermediate's
        self.lock = f.client("/CN=smart-lock", self.inter2, name="lock")     # root's
        # A second trusted root (under another ConfigMap key) without any entry.
        self.fab_root = f.ca("/CN=Fabrikam Root CA", name="fab-root")
        self.fab = f.client("/CN=fabrikam-device", self.fab_root, name="fab")
        # Not trusted: another CA, and an impostor chain reusing the trusted names.
        self.rogue_root = f.ca("/CN=Rogue Root CA", name="rogue-root")
        self.rogue = f.client("/CN=rogue-device", self.rogue_root, name="rogue")
        self.fake_root = f.ca("/C=US/OU=Engineering/CN=Contoso Root CA Cert", name="fake-root")
        self.fake_inter = f.ca("/CN=Contoso Intermediate CA", issuer=self.fake_root,
                               name="fake-inter")
        self.impostor = f.client("/CN=smart-fan", self.fake_inter, name="impostor")
        # Dates.
        self.expired = f.client("/CN=expired-device", self.inter, name="expired",
                                not_before=now - 2 * 86400, not_after=now - 86400)
        self.future = f.client("/CN=future-device", self.inter, name="future",
                               not_before=now + 86400, not_after=now + 30 * 86400)
        # RSA chain, and the two mixed chains.
        self.rsa_root = f.ca("/CN=Contoso RSA Root", alg="rsa", name="rsa-root")
        self.rsa_int = f.ca("/CN=Contoso RSA Intermediate", issuer=self.rsa_root, alg="rsa",
                            name="rsa-int")
        self.rsa_leaf = f.client("/CN=rsa-device", self.rsa_int, alg="rsa", name="rsa-leaf")
        self.mixed_rsa = f.client("/CN=mixed-rsa-leaf", self.inter, alg="rsa", name="mixed-rsa")
        self.mixed_ec = f.client("/CN=mixed-ec-leaf", self.rsa_int, alg="ec", name="mixed-ec")
        # Presented beside a real chain (only the verified path may count): a self-made CA
        # named like the smart-fan entry, a real CA of the trusted root with that name (it
        # verifies, but issued nothing on the client's path), a self-made EC CA, and a
        # self-made EC CA carrying the RSA intermediate's name.
        self.fan_ca_forged = f.ca("/CN=smart-fan", name="fan-ca-forged")
        self.fan_ca_real = f.ca("/CN=smart-fan", issuer=self.root, name="fan-ca-real")
        self.ec_selfmade = f.ca("/CN=Self-made EC CA", name="ec-selfmade")
        self.rsa_int_forged = f.ca("/CN=Contoso RSA Intermediate", name="rsa-int-forged")


pki = fixtures.once(Pki)


def broker_doc():
    return """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata: {name: default}
spec:
  advanced: {clients: {maxPacketSizeBytes: 1048576}}
  diagnostics: {logs: {level: debug}}
  ringmq: {connectTimeoutSeconds: %d}
""" % CONNECT_TIMEOUT


def authn_doc(name, configmap):
    return """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: %s}
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      trustedClientCaCert: %s
      authorizationAttributes:
        root: {subject: "%s", attributes: {organization: contoso}}
        intermediate: {subject: "CN = Contoso Intermediate CA", attributes: {city: seattle}}
        smart-fan: {subject: "CN = smart-fan", attributes: {building: "17"}}
""" % (name, configmap, ROOT_SUBJECT)


def main_yaml(p, ports):
    """Ports: plain (MQTT, no TLS), tls (TLS, no authentication), x509 (TLS + X509 trusting the
    Contoso root, the Fabrikam root and the RSA root, under three ConfigMap keys), int (TLS +
    X509 trusting only the Contoso intermediate), rsaint (TLS + X509 trusting only the RSA
    intermediate)."""
    y = broker_doc()
    y += """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: listeners}
spec:
  ports:
  - {port: %(plain)d, bindAddress: 127.0.0.1, protocol: Mqtt}
  - port: %(tls)d
    bindAddress: 127.0.0.1
    protocol: Mqtt
    tls: {mode: Manual, manual: {secretRef: server-cert}}
  - port: %(x509)d
    bindAddress: 127.0.0.1
    protocol: Mqtt
    authenticationRef: x509-auth
    tls: {mode: Manual, manual: {secretRef: server-cert}}
  - port: %(int)d
    bindAddress: 127.0.0.1
    authenticationRef: x509-int
    tls: {mode: Manual, manual: {secretRef: server-cert}}
  - port: %(rsaint)d
    bindAddress: 127.0.0.1
    authenticationRef: x509-rsaint
    tls: {mode: Manual, manual: {secretRef: server-cert}}
""" % ports
    y += authn_doc("x509-auth", "client-ca")
    y += authn_doc("x509-int", "client-ca-int")
    y += authn_doc("x509-rsaint", "client-ca-rsaint")
    y += certs.secret_yaml("server-cert", p.srv.chain_pem, p.srv.key_pem)
    y += certs.configmap_yaml("client-ca", {"client_ca.pem": p.root.pem,
                                            "fabrikam.pem": p.fab_root.pem,
                                            "rsa.pem": p.rsa_root.pem})
    y += certs.configmap_yaml("client-ca-int", {"client_ca.pem": p.inter.pem})
    y += certs.configmap_yaml("client-ca-rsaint", {"rsa_int.pem": p.rsa_int.pem})
    return y


def fixture():
    p = pki()
    ports = {k: rq.free_port() for k in ("plain", "tls", "x509", "int", "rsaint")}
    return fixtures.start_listening(main_yaml(p, ports), ports, timeout=2.0)


# ---------------------------------------------------------------------------------------------
# Helpers.

def ctx_for(cert=None, version=None, send_chain=True):
    """Client TLS context trusting the broker's root; cert: a certs.Cert to present (its chain
    file, leaf + intermediates, or only the leaf with send_chain=False)."""
    p = pki()
    if cert is None:
        return rq.tls_context(p.srv_root.cert, version=version)
    return rq.tls_context(p.srv_root.cert, cert.chain if send_chain else cert.cert, cert.key,
                          version=version)


def tls_connected(port, cert=None, version=None, mqtt=5, **kw):
    c = rq.RawClient(port, tls=ctx_for(cert, version), version=mqtt)
    cid = kw.pop("client_id", None) or rq.uniq("tls")
    ack = c.connect(client_id=cid, **kw)
    check(ack.rc == 0, "CONNACK rc 0x%02x over TLS %s with %r" % (ack.rc, version, cert))
    c.client_id = cid
    return c


expect_log = functools.partial(fixtures.expect_log, timeout=3.0)


def expect_handshake_refused(port, ctx, what):
    """The TLS handshake (or, in TLS 1.3, where the server checks the client's certificate
    after the client has finished, the first read) fails: the connection ends before any
    CONNACK. Returns how it ended."""
    try:
        c = rq.RawClient(port, tls=ctx)
    except (ssl.SSLError, OSError) as e:
        return "handshake failed: %s" % e
    try:
        c.sock.sendall(rq.enc_connect(5, client_id=rq.uniq("refused")))
    except OSError as e:
        return "closed while sending CONNECT: %s" % e
    try:
        p = c.recv_packet(3.0)
    except rq.Closed:
        return "closed after the client's Finished: %s" % c.tls_error
    raise AssertionError("%s: the connection was not closed: got %r" % (what, p))


def roundtrip(pub, sub, what):
    t = rq.uniq("rt")
    sub.subscribe(t, qos=1)
    pub.publish(t, b"via " + what.encode(), qos=1)
    m = sub.recv_publish(3)
    check_eq((m.topic, m.payload), (t, b"via " + what.encode()), "message %s" % what)


def auth_line(cn, rule):
    """The log line of an accepted X509 client."""
    tail = ("attributes from '%s'" % rule) if rule else "no authorizationAttributes match"
    return r'authenticated by X509 as "%s": certificate CN=%s, %s' % (cn, cn, tail)


def mosq_tls(cert=None, version=None):
    p = pki()
    args = ["--cafile", p.srv_root.cert]
    if version:
        args += ["--tls-version", "tlsv" + version]
    if cert is not None:
        args += ["--cert", cert.chain, "--key", cert.key]
    return args


# ---------------------------------------------------------------------------------------------
# TLS without client authentication.

@case(ringmq_only=ONLY)
def tls12_and_tls13_python(b):
    plain = rq.connected(b.ports["plain"])
    for v in ("1.2", "1.3"):
        c = tls_connected(b.ports["tls"], version=v)
        check_eq(c.sock.version(), "TLSv" + v, "negotiated TLS version")
        roundtrip(c, c, "TLS %s to itself" % v)
        roundtrip(c, plain, "TLS %s to plain TCP" % v)
        roundtrip(plain, c, "plain TCP to TLS %s" % v)
        c.disconnect()
    plain.disconnect()


@case(ringmq_only=ONLY)
def tls_server_chain_sent(b):
    # tls.crt holds leaf + intermediate; the client trusts only the root, so the handshake
    # works only if the broker sends the intermediate.
    c = tls_connected(b.ports["tls"])
    chain_len = None
    try:
        chain_len = len(c.sock._sslobj.get_unverified_chain())  # Python 3.10+
    except AttributeError:
        pass
    if chain_len is not None:
        check(chain_len >= 2, "the broker sent %d certificate(s), want leaf + intermediate"
              % chain_len)
    c.disconnect()


@case(ringmq_only=ONLY)
def tls_mosquitto_clients(b):
    for v in ("1.2", "1.3"):
        for mv in (5, 4):
            t = rq.uniq("mosq")
            s = rq.MosqSub(b.ports["tls"], t, qos=1, version=mv, count=2, extra=mosq_tls(None, v))
            r = rq.mosq_pub(b.ports["tls"], t, "over-tls", qos=1, version=mv,
                            extra=mosq_tls(None, v))
            check_eq(r.returncode, 0, "mosquitto_pub TLS %s v%d exit code (stderr %r)"
                     % (v, mv, r.stderr))
            r = rq.mosq_pub(b.ports["plain"], t, "from-plain", qos=1, version=mv)
            check_eq(r.returncode, 0, "mosquitto_pub plain exit code")
            got = s.messages(2, 5)
            check_eq(sorted(got), sorted(["%s|over-tls" % t, "%s|from-plain" % t]),
                     "mosquitto_sub over TLS %s v%d received" % (v, mv))
            check_eq(s.wait(5), 0, "mosquitto_sub TLS %s exit code" % v)


@case(ringmq_only=ONLY)
def tls_paho(b):
    for mv in (5, 4):
        t = rq.uniq("paho")
        c = rq.Paho(b.ports["tls"], version=mv, tls=ctx_for())
        c.subscribe(t, qos=1)
        plain = rq.connected(b.ports["plain"])
        plain.publish(t, b"to-paho", qos=1)
        m = c.recv(3)
        check(m is not None and m.payload == b"to-paho", "paho v%d over TLS received %r"
              % (mv, m and m.payload))
        plain.subscribe(t + "/back", qos=1)
        c.publish(t + "/back", b"from-paho", qos=1)
        check_eq(plain.recv_publish(3).payload, b"from-paho", "message from paho over TLS")
        c.disconnect()
        plain.disconnect()


@case(ringmq_only=ONLY)
def tls_large_messages_and_bursts(b):
    # Packets larger than a TLS record (16 KiB) and many packets in a row, both directions.
    big = bytes(range(256)) * 1200  # 300 KiB
    for v in ("1.2", "1.3"):
        c = tls_connected(b.ports["tls"], version=v)
        plain = rq.connected(b.ports["plain"])
        t = rq.uniq("big")
        c.subscribe(t, qos=1)
        plain.subscribe(t, qos=1)
        c.publish(t, big, qos=1)
        for who, cl in (("TLS", c), ("plain", plain)):
            check(cl.recv_publish(5).payload == big, "TLS %s: %s subscriber got a damaged "
                  "300 KiB message" % (v, who))
        for i in range(200):
            plain.publish(t, b"m%d" % i, qos=1, wait=False)
        got = [p.payload for p in c.collect(3.0, count=200)]
        check_eq(got, [b"m%d" % i for i in range(200)], "TLS %s: burst of 200 to a TLS client" % v)
        c.disconnect()
        plain.disconnect()


@case(ringmq_only=ONLY)
def tls_close_notify_publishes_will(b):
    # close_notify without MQTT DISCONNECT ends the network connection: the will goes out.
    t = rq.uniq("cn")
    w = rq.connected(b.ports["plain"])
    w.subscribe(t, qos=1)
    c = tls_connected(b.ports["tls"], will={"topic": t, "payload": b"notified", "qos": 1})
    try:
        c.sock.unwrap()
    except (ssl.SSLError, OSError):
        pass
    c.close()
    check_eq(w.recv_publish(3).payload, b"notified", "will after a TLS close_notify")
    w.disconnect()


def client_hello(version, ciphers, sigalgs=True):
    """A minimal ClientHello record (legacy_version = version, no supported_versions, so the
    server has to pick `version` or refuse)."""
    def ext(t, data):
        return struct.pack(">HH", t, len(data)) + data
    body = struct.pack(">H", version) + os.urandom(32) + b"\x00"
    body += struct.pack(">H", 2 * len(ciphers)) + b"".join(struct.pack(">H", c) for c in ciphers)
    body += b"\x01\x00"
    exts = ext(0x000A, b"\x00\x04\x00\x17\x00\x18")  # supported_groups: P-256, P-384
    exts += ext(0x000B, b"\x01\x00")  # ec_point_formats: uncompressed
    if sigalgs:  # ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
        exts += ext(0x000D, b"\x00\x06\x04\x03\x08\x04\x04\x01")
    body += struct.pack(">H", len(exts)) + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


def first_record(port, hello, timeout=3.0):
    """Sends a ClientHello; returns ("ServerHello", version) / ("Alert", description) /
    ("closed", None) / ("other", type)."""
    s = socket.create_connection((rq.HOST, port), timeout=timeout)
    rq.on_cleanup(s.close)
    s.sendall(hello)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while len(data) < 11 and time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        raise AssertionError("no answer to a ClientHello within %.0fs" % timeout)
    except ConnectionResetError:
        pass
    finally:
        s.close()
    if len(data) < 5:
        return ("closed", None)
    if data[0] == 0x15 and len(data) >= 7:
        return ("Alert", data[6])
    if data[0] == 0x16 and len(data) >= 11 and data[5] == 0x02:
        return ("ServerHello", struct.unpack(">H", data[9:11])[0])
    return ("other", data[0])


@case(ringmq_only=ONLY)
def tls10_tls11_refused(b):
    port = b.ports["tls"]
    # Control: the same hand-made hello as TLS 1.2 gets a TLS 1.2 ServerHello, so a refusal
    # below is about the version, not about the hello.
    got = first_record(port, client_hello(0x0303, [0xC02B, 0xC02F, 0xC009, 0xC013]))
    check_eq(got, ("ServerHello", 0x0303), "answer to a TLS 1.2 ClientHello")
    for version, name in ((0x0301, "TLS 1.0"), (0x0302, "TLS 1.1")):
        mark = b.log_mark()
        got = first_record(port, client_hello(version, [0xC009, 0xC00A, 0xC013, 0xC014, 0x002F],
                                              sigalgs=False))
        check(got[0] in ("Alert", "closed"), "%s ClientHello answered with %r (want an alert or"
              " a close)" % (name, got))
        expect_log(b, mark, r"TLS handshake failed: ", "%s refused" % name)
    rq.check_serves(b.ports["plain"], "after old TLS versions")


@case(ringmq_only=ONLY)
def stalled_handshake_closed_at_connect_timeout(b):
    # Half of a real ClientHello, from python's own handshake.
    ctx = ctx_for()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    check(len(hello) > 100 and hello[0] == 0x16, "python produced no ClientHello")
    for what, data in (("nothing sent", b""), ("half a ClientHello", hello[:len(hello) // 2])):
        mark = b.log_mark()
        s = socket.create_connection((rq.HOST, b.ports["tls"]), timeout=5)
        rq.on_cleanup(s.close)
        t0 = time.monotonic()
        if data:
            s.sendall(data)
        s.settimeout(CONNECT_TIMEOUT + 4)
        try:
            rest = s.recv(4096)
        except socket.timeout:
            raise AssertionError("%s: connection still open %.1fs after connecting"
                                 % (what, time.monotonic() - t0))
        except ConnectionResetError:
            rest = b""
        dt = time.monotonic() - t0
        s.close()
        check_eq(rest, b"", "%s: bytes from the broker before it closed" % what)
        check(CONNECT_TIMEOUT - 0.5 <= dt <= CONNECT_TIMEOUT + 1.5,
              "%s: closed after %.2fs, want about the connect timeout (%ds)"
              % (what, dt, CONNECT_TIMEOUT))
        expect_log(b, mark, r"\(transport handshake\)[^\n]*connect timeout",
                   "%s: timeout log line naming the phase" % what)


# ---------------------------------------------------------------------------------------------
# X.509: accepted clients, usernames and attributes.

@case(ringmq_only=ONLY)
def x509_attributes_from_docs(b):
    p = pki()
    cases = [(p.fan, "smart-fan", "leaf with its own entry gets its own"),
             (p.thermo, "intermediate", "leaf without an entry gets its intermediate's"),
             (p.lock, "root", "leaf and intermediate without entries get the root's"),
             (p.fab, None, "chain without any entry (second ConfigMap key)")]
    for v in ("1.2", "1.3"):
        for cert, rule, what in cases:
            mark = b.log_mark()
            c = tls_connected(b.ports["x509"], cert, v)
            expect_log(b, mark, auth_line(cert.cn, rule), "TLS %s, %s" % (v, what))
            c.disconnect()


@case(ringmq_only=ONLY)
def x509_client_can_publish_and_subscribe(b):
    p = pki()
    plain = rq.connected(b.ports["plain"])
    for mv in (5, 4):
        c = tls_connected(b.ports["x509"], p.thermo, mqtt=mv)
        roundtrip(c, plain, "X509 client v%d to plain" % mv)
        roundtrip(plain, c, "plain to X509 client v%d" % mv)
        c.disconnect()
    plain.disconnect()


@case(ringmq_only=ONLY)
def x509_rsa_chain(b):
    """An all-RSA client chain under an EC server certificate, TLS 1.2 and 1.3. Over TLS 1.2
    this needs the CertificateRequest to offer rsa_sign as well as ecdsa_sign: stock wolfSSL
    5.5.4 offers only the server key's type, the client then sends no certificate and the log
    says "TLS handshake failed: peer did not return a certificate (-345)"."""
    p = pki()
    for v in ("1.3", "1.2"):
        mark = b.log_mark()
        try:
            c = tls_connected(b.ports["x509"], p.rsa_leaf, v)
        except (ssl.SSLError, OSError, AssertionError) as e:
            raise AssertionError("RSA client certificate refused over TLS %s (%s); log: %s"
                                 % (v, e, b.log_since(mark).strip()[-400:]))
        expect_log(b, mark, auth_line("rsa-device", None), "RSA chain over TLS %s" % v)
        c.disconnect()


@case(ringmq_only=ONLY)
def x509_mosquitto_clients(b):
    p = pki()
    for v in ("1.2", "1.3"):
        for mv in (5, 4):
            t = rq.uniq("x509")
            mark = b.log_mark()
            s = rq.MosqSub(b.ports["x509"], t, qos=1, version=mv, count=1,
                           extra=mosq_tls(p.fan, v))
            r = rq.mosq_pub(b.ports["x509"], t, "signed", qos=1, version=mv,
                            extra=mosq_tls(p.thermo, v))
            check_eq(r.returncode, 0, "mosquitto_pub with a client certificate, TLS %s v%d "
                     "(stderr %r)" % (v, mv, r.stderr))
            check_eq(s.messages(1, 5), ["%s|signed" % t], "mosquitto_sub TLS %s v%d" % (v, mv))
            check_eq(s.wait(5), 0, "mosquitto_sub exit code")
            expect_log(b, mark, auth_line("smart-fan", "smart-fan"), "mosquitto_sub's login")
            expect_log(b, mark, auth_line("thermostat", "intermediate"), "mosquitto_pub's login")
    # Without a certificate mosquitto_pub cannot connect.
    r = rq.mosq_pub(b.ports["x509"], rq.uniq("x509"), "unsigned", qos=1, extra=mosq_tls(None),
                    timeout=15)
    check(r.returncode != 0, "mosquitto_pub without a client certificate succeeded")


@case(ringmq_only=ONLY)
def x509_paho(b):
    p = pki()
    for mv in (5, 4):
        t = rq.uniq("paho")
        mark = b.log_mark()
        c = rq.Paho(b.ports["x509"], version=mv, tls=ctx_for(p.fan))
        c.subscribe(t, qos=1)
        c.publish(t, b"self", qos=1)
        m = c.recv(3)
        check(m is not None and m.payload == b"self", "paho v%d with a client certificate" % mv)
        c.disconnect()
        expect_log(b, mark, auth_line("smart-fan", "smart-fan"), "paho's login")


@case(ringmq_only=ONLY)
def x509_intermediate_as_trust_anchor(b):
    # The ConfigMap holds only the Contoso intermediate: a leaf it issued, sent alone, is
    # accepted; the root is then unknown, so the intermediate's entry applies.
    p = pki()
    mark = b.log_mark()
    c = rq.RawClient(b.ports["int"], tls=ctx_for(p.thermo, send_chain=False))
    ack = c.connect(client_id=rq.uniq("int"))
    check_eq(ack.rc, 0, "CONNACK for a leaf of the trusted intermediate")
    expect_log(b, mark, auth_line("thermostat", "intermediate"), "anchor = intermediate")
    c.disconnect()
    # A leaf of the sibling intermediate (same root, not trusted here) is refused.
    mark = b.log_mark()
    how = expect_handshake_refused(b.ports["int"], ctx_for(p.lock), "sibling intermediate")
    expect_log(b, mark, r"TLS handshake failed: [^\n]*(signer|verify|unknown|issuer)",
               "sibling intermediate refused (%s)" % how)


@case(ringmq_only=ONLY)
def x509_intermediate_anchor_full_chain(b):
    """The trusted ConfigMap holds an intermediate (not its root) and the client sends its
    usual chain, leaf + that intermediate (mosquitto --cert with a chain file, the tls.crt
    layout). wolfSSL goes on to verify the intermediate against its untrusted issuer and fails
    ("ASN no signer error to confirm failure (-188)"); ringmq's verify callback accepts that
    failure only for a presented certificate that is byte for byte a trust anchor (wolfSSL's
    --enable-altcertchains, which did this before, also let forged CA certificates through)."""
    p = pki()
    mark = b.log_mark()
    try:
        c = rq.RawClient(b.ports["int"], tls=ctx_for(p.thermo))
        ack = c.connect(client_id=rq.uniq("int"))
    except (ssl.SSLError, OSError, AssertionError) as e:
        raise AssertionError("leaf + trusted intermediate refused (%s); log: %s"
                             % (e, b.log_since(mark).strip()[-300:]))
    check_eq(ack.rc, 0, "CONNACK for leaf + trusted intermediate")
    expect_log(b, mark, auth_line("thermostat", "intermediate"), "anchor = intermediate, chain")
    c.disconnect()


# ---------------------------------------------------------------------------------------------
# X.509: refused in the handshake.

@case(ringmq_only=ONLY)
def x509_no_client_certificate(b):
    for v in ("1.2", "1.3"):
        mark = b.log_mark()
        how = expect_handshake_refused(b.ports["x509"], ctx_for(None, v), "no certificate")
        expect_log(b, mark, r"TLS handshake failed: [^\n]*(did not return a certificate|"
                   r"no peer cert|certificate required)", "TLS %s without a certificate (%s)"
                   % (v, how))
    rq.check_serves(b.ports["plain"])


@case(ringmq_only=ONLY)
def x509_leaf_from_another_ca(b):
    p = pki()
    for v in ("1.2", "1.3"):
        mark = b.log_mark()
        how = expect_handshake_refused(b.ports["x509"], ctx_for(p.rogue, v), "other CA")
        expect_log(b, mark, r"TLS handshake failed: [^\n]*(signer|unknown ca|verify)",
                   "TLS %s, leaf of an untrusted CA (%s)" % (v, how))


@case(ringmq_only=ONLY)
def x509_impostor_chain(b):
    # Same subject names as the trusted chain, other keys: the signatures decide.
    p = pki()
    for v in ("1.2", "1.3"):
        mark = b.log_mark()
        how = expect_handshake_refused(b.ports["x509"], ctx_for(p.impostor, v), "impostor")
        expect_log(b, mark, r"TLS handshake failed: ", "TLS %s, impostor chain (%s)" % (v, how))
        check(b.wait_log(r'authenticated by X509 as "smart-fan"', mark, 0.3) is None,
              "the impostor chain was authenticated")


@case(ringmq_only=ONLY)
def x509_expired_leaf(b):
    p = pki()
    for v in ("1.2", "1.3"):
        mark = b.log_mark()
        how = expect_handshake_refused(b.ports["x509"], ctx_for(p.expired, v), "expired")
        expect_log(b, mark, r"TLS handshake failed: [^\n]*(date[^\n]*after|expired)",
                   "TLS %s, expired leaf (%s)" % (v, how))


@case(ringmq_only=ONLY)
def x509_not_yet_valid_leaf(b):
    p = pki()
    for v in ("1.2", "1.3"):
        mark = b.log_mark()
        how = expect_handshake_refused(b.ports["x509"], ctx_for(p.future, v), "not yet valid")
        expect_log(b, mark, r"TLS handshake failed: [^\n]*(date[^\n]*before|not yet valid)",
                   "TLS %s, not yet valid leaf (%s)" % (v, how))


@case(ringmq_only="ringmq's choice: no TLS resumption on ports that verify client certificates")
def x509_no_tls_resumption(b):
    """A port that verifies client certificates makes every connection a full handshake: a
    client offering its previous TLS session (TLS 1.2 session id or ticket, TLS 1.3 ticket) is
    not resumed, presents its certificate again and is authenticated again, so a certificate is
    checked on every connection (a resumed session has none to check)."""
    p = pki()
    for v in ("1.2", "1.3"):
        ctx = ctx_for(p.thermo, v)
        first = rq.RawClient(b.ports["x509"], tls=ctx)
        check_eq(first.connect(client_id=rq.uniq("res")).rc, 0, "first connection, TLS " + v)
        first.ping()  # a TLS 1.3 ticket, if any, has arrived by the time the PINGRESP has
        session = first.sock.session
        first.disconnect()
        again = rq.RawClient(b.ports["x509"], tls=ctx, tls_session=session)
        check(not again.sock.session_reused, "TLS %s session resumed on an X.509 port" % v)
        check_eq(again.connect(client_id=rq.uniq("res")).rc, 0,
                 "second connection offering the old session, TLS " + v)
        again.disconnect()


# ---------------------------------------------------------------------------------------------
# X.509: mixed key algorithms (handshake passes, CONNECT denied).

MIXED_LOG = r"authentication failed \(X509\): mixed key algorithms[^\n]*\(%s[^()]* and %s[^()]*\)"


def expect_mixed_denied(b, cert, tls_version, leaf_alg, other_alg):
    for mv, want in ((5, 0x87), (4, 5)):
        mark = b.log_mark()
        c = rq.RawClient(b.ports["x509"], tls=ctx_for(cert, tls_version), version=mv)
        ack = c.connect(client_id=rq.uniq("mixed"))
        check_eq(ack.rc, want, "v%d CONNACK code for %s over TLS %s" % (mv, cert.cn,
                                                                        tls_version))
        closed = c.expect_closed(3)
        check(closed, "connection still open after the refusing CONNACK: %r" % closed)
        expect_log(b, mark, MIXED_LOG % (leaf_alg, other_alg), "mixed chain log line (v%d)" % mv)


@case(ringmq_only=ONLY)
def x509_mixed_ec_leaf_under_rsa(b):
    p = pki()
    for v in ("1.2", "1.3"):
        expect_mixed_denied(b, p.mixed_ec, v, "EC", "RSA")


@case(ringmq_only=ONLY)
def x509_mixed_rsa_leaf_under_ec(b):
    # Over TLS 1.2 this needs rsa_sign in the CertificateRequest (see x509_rsa_chain).
    p = pki()
    for v in ("1.3", "1.2"):
        expect_mixed_denied(b, p.mixed_rsa, v, "RSA", "EC")


# ---------------------------------------------------------------------------------------------
# X.509: credential expiry.

def expiry_case(b, cert, not_after, what):
    """Clients (v5 and 3.1.1, each with a will) authenticated by cert whose chain expires at
    not_after: each is closed within about a second after it, without DISCONNECT, and its will
    reaches a plain subscriber."""
    t = rq.uniq("will")
    w = rq.connected(b.ports["plain"])
    w.subscribe(t + "/#", qos=1)
    mark = b.log_mark()
    clients = []
    for mv in (5, 4):
        will = {"topic": "%s/v%d" % (t, mv), "payload": b"expired-%d" % mv, "qos": 1}
        c = tls_connected(b.ports["x509"], cert, mqtt=mv, will=will)
        clients.append((mv, c))
    left = not_after - time.time()
    check(left > 0.5, "%s: setup too slow, %.1fs left before notAfter" % (what, left))
    for mv, c in clients:
        c.ping(3)  # alive before notAfter
    for mv, c in clients:
        res = c.expect_closed(max(0.1, not_after - time.time()) + 4)
        closed_at = time.time()
        check(res, "%s: v%d client still connected %.1fs after notAfter"
              % (what, mv, closed_at - not_after))
        check(res.disconnect is None, "%s: v%d client got a DISCONNECT (%r), want a bare close"
              % (what, mv, res))
        check(not res.packets, "%s: v%d client got packets before the close: %r"
              % (what, mv, res.packets))
        check(closed_at >= not_after - 0.3, "%s: v%d client closed %.2fs BEFORE notAfter"
              % (what, mv, not_after - closed_at))
        check(closed_at <= not_after + 1.5, "%s: v%d client closed %.2fs after notAfter, want "
              "about a second" % (what, mv, closed_at - not_after))
    got = sorted((m.topic, m.payload) for m in w.collect(3.0, count=2))
    check_eq(got, [("%s/v4" % t, b"expired-4"), ("%s/v5" % t, b"expired-5")],
             "%s: wills published" % what)
    for mv, c in clients:
        expect_log(b, mark, r'client="%s"[^\n]*credentials expired' % c.client_id,
                   "%s: log line naming the v%d client and the reason" % (what, mv))
    w.disconnect()


@case(ringmq_only=ONLY)
def x509_leaf_expires_while_connected(b):
    p = pki()
    leaf = p.f.client("/CN=short-lived", p.inter, not_after=time.time() + 5)
    expiry_case(b, leaf, leaf.not_after, "leaf notAfter")


@case(ringmq_only=ONLY)
def x509_intermediate_expires_first(b):
    # The earliest notAfter of the chain counts: here the intermediate's, the leaf lives on.
    p = pki()
    inter = p.f.ca("/CN=Contoso Intermediate CA", issuer=p.root, not_after=time.time() + 5)
    leaf = p.f.client("/CN=long-lived", inter, not_after=time.time() + 30 * 86400)
    check(leaf.not_after > inter.not_after + 86400, "test setup: leaf outlives intermediate")
    expiry_case(b, leaf, inter.not_after, "intermediate notAfter")


# ---------------------------------------------------------------------------------------------
# X.509: only the verified path counts. Each probe presents the real certificates plus CA
# certificates that are not on the path from the leaf to a trusted CA; each must be refused or
# get only what the verified path gives.

def ctx_presenting(certs_in_order, key_of, version=None):
    """A client context presenting exactly these certificates, in this order (leaf first)."""
    p = pki()
    path = p.f.bundle(rq.uniq("presented") + ".pem", *certs_in_order)
    return rq.tls_context(p.srv_root.cert, path, key_of.key, version=version)


def try_connect(port, ctx, mqtt=5):
    """(client, CONNACK) when a CONNACK arrives, else (None, how the connection ended)."""
    try:
        c = rq.RawClient(port, tls=ctx, version=mqtt)
    except (ssl.SSLError, OSError) as e:
        return None, "handshake failed: %s" % e
    try:
        c.client_id = rq.uniq("probe")
        return c, c.connect(client_id=c.client_id)
    except (ssl.SSLError, OSError, AssertionError) as e:
        return None, "closed before CONNACK: %s" % e


@case(ringmq_only=ONLY)
def x509_forged_ca_in_presented_list_gives_no_attributes(b):
    """[thermostat leaf, self-made CA 'CN=smart-fan', the real intermediate]: the self-made CA
    is not on the verified path (thermostat <- intermediate <- root), so the smart-fan entry
    must not apply (main before the fix: "attributes from 'smart-fan'"). Refused, or the
    thermostat's own attributes (its intermediate's entry)."""
    p = pki()
    for v in ("1.2", "1.3"):
        mark = b.log_mark()
        c, got = try_connect(b.ports["x509"], ctx_presenting(
            [p.thermo, p.fan_ca_forged, p.inter], p.thermo, v))
        check(b.wait_log(r"attributes from 'smart-fan'", mark, 0.5) is None,
              "TLS %s: a self-made CA in the presented list gave its entry's attributes" % v)
        if c is not None and got.rc == 0:
            expect_log(b, mark, auth_line("thermostat", "intermediate"), "TLS %s" % v)
            c.disconnect()
        else:
            check(c is None or got.rc == 0x87, "TLS %s: CONNACK %r" % (v, got))
            expect_log(b, mark, r"TLS handshake failed: |authentication failed \(X509\)",
                       "TLS %s: forged CA refused (%s)" % (v, got))


@case(ringmq_only=ONLY)
def x509_unrelated_verified_ca_is_ignored(b):
    """[thermostat leaf, a real CA 'CN=smart-fan' of the trusted root, the real intermediate]:
    every certificate verifies, so the handshake passes, but the smart-fan CA issued nothing on
    the thermostat's path: the thermostat gets its intermediate's attributes, not smart-fan's
    (main before the fix matched names in the presented list)."""
    p = pki()
    for order in ([p.thermo, p.fan_ca_real, p.inter], [p.thermo, p.inter, p.fan_ca_real]):
        mark = b.log_mark()
        c, got = try_connect(b.ports["x509"], ctx_presenting(order, p.thermo))
        check(c is not None and got.rc == 0, "handshake/CONNACK with a verifiable extra CA: %r"
              % (got,))
        expect_log(b, mark, auth_line("thermostat", "intermediate"), "extra CA ignored")
        check(b.wait_log(r"attributes from 'smart-fan'", mark, 0.3) is None,
              "an unrelated CA in the presented list gave its entry's attributes")
        c.disconnect()


@case(ringmq_only=ONLY)
def x509_selfmade_ca_does_not_hide_mixed_algorithms(b):
    """The rsaint port trusts the RSA intermediate directly. An EC leaf it issued is refused
    alone (0x87: mixed key algorithms, EC leaf under an RSA CA). Appending a self-made EC CA,
    or a self-made EC CA carrying the RSA intermediate's own name, must not make the chain look
    all-EC (main before the fix: CONNACK 0)."""
    p = pki()
    port = b.ports["rsaint"]
    mark = b.log_mark()
    c, got = try_connect(port, ctx_presenting([p.mixed_ec], p.mixed_ec))
    check(c is not None and got.rc == 0x87, "EC leaf of the RSA intermediate alone: %r" % (got,))
    expect_log(b, mark, MIXED_LOG % ("EC", "RSA"), "EC leaf alone")
    for extra in (p.ec_selfmade, p.rsa_int_forged):
        for v in ("1.2", "1.3"):
            mark = b.log_mark()
            c, got = try_connect(port, ctx_presenting([p.mixed_ec, extra], p.mixed_ec, v))
            check(c is None or got.rc == 0x87, "TLS %s, EC leaf + %s: %r (want refused)"
                  % (v, extra.subject, got))
            check(b.wait_log(r'authenticated by X509 as "mixed-ec-leaf"', mark, 0.3) is None,
                  "TLS %s, EC leaf + %s was authenticated" % (v, extra.subject))
    rq.check_serves(b.ports["plain"])


def start_short_anchor_broker(p, short_int, extra_cas=()):
    """A broker whose only X509 port trusts short_int directly (plus extra_cas)."""
    port, plain = rq.free_port(), rq.free_port()
    y = broker_doc() + """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: short}
spec:
  ports:
  - {port: %d, bindAddress: 127.0.0.1, protocol: Mqtt}
  - port: %d
    bindAddress: 127.0.0.1
    authenticationRef: x509-short
    tls: {mode: Manual, manual: {secretRef: server-cert}}
""" % (plain, port) + authn_doc("x509-short", "short-ca")
    y += certs.secret_yaml("server-cert", p.srv.chain_pem, p.srv.key_pem)
    cas = {"short.pem": short_int.pem}
    for i, ca in enumerate(extra_cas):
        cas["extra%d.pem" % i] = ca.pem
    y += certs.configmap_yaml("short-ca", cas)
    b = rq.start_broker(y)
    b.ports = {"x509": port, "plain": plain}
    return b


@case(ringmq_only=ONLY)
def x509_selfmade_ca_does_not_outlive_trusted_intermediate(b):
    """A port trusts a short-lived intermediate directly. Its leaf, presented with a self-made
    CA appended, must not get credentials that outlive the intermediate's notAfter (main before
    the fix: the expiry came from the presented list, leaf + self-made CA, 30 days)."""
    p = pki()
    short_int = p.f.ca("/CN=Contoso Intermediate CA", issuer=p.root, not_after=time.time() + 6)
    leaf = p.f.client("/CN=long-lived-2", short_int, not_after=time.time() + 30 * 86400)
    sb = start_short_anchor_broker(p, short_int)
    c, got = try_connect(sb.ports["x509"], ctx_presenting([leaf, p.ec_selfmade], leaf))
    if c is not None and got.rc == 0:
        res = c.expect_closed(max(0.1, short_int.not_after - time.time()) + 4)
        check(res, "connection still open %.1fs after the trusted intermediate's notAfter"
              % (time.time() - short_int.not_after))
        check(time.time() <= short_int.not_after + 1.5, "closed %.1fs after notAfter"
              % (time.time() - short_int.not_after))
    else:
        check(c is None or got.rc == 0x87, "leaf + self-made CA: %r" % (got,))


@case(ringmq_only=ONLY)
def x509_expiry_and_attributes_follow_the_verified_path(b):
    """The port trusts a short-lived intermediate and the root above it. The client presents its
    leaf (issued by the short-lived intermediate) with another real intermediate of the same
    root, which verifies but is not its issuer. Verified path: leaf <- short-lived intermediate
    <- root, so the intermediate's entry applies and the connection ends at its notAfter (main
    before the fix built leaf, other intermediate, root by names: the root's entry, 30 days)."""
    p = pki()
    short_int = p.f.ca("/CN=Contoso Intermediate CA", issuer=p.root, not_after=time.time() + 6)
    leaf = p.f.client("/CN=long-lived-3", short_int, not_after=time.time() + 30 * 86400)
    sb = start_short_anchor_broker(p, short_int, extra_cas=(p.root,))
    mark = sb.log_mark()
    c, got = try_connect(sb.ports["x509"], ctx_presenting([leaf, p.inter2], leaf))
    check(c is not None and got.rc == 0, "leaf + unrelated intermediate: %r" % (got,))
    expect_log(sb, mark, auth_line("long-lived-3", "intermediate"), "attributes of the path")
    res = c.expect_closed(max(0.1, short_int.not_after - time.time()) + 4)
    check(res, "connection still open %.1fs after the trusted intermediate's notAfter"
          % (time.time() - short_int.not_after))
    check(time.time() >= short_int.not_after - 0.3, "closed before notAfter")
    expect_log(sb, mark, r'client="%s"[^\n]*credentials expired' % c.client_id,
               "credentials expired at the intermediate's notAfter")


@case(ringmq_only=ONLY)
def x509_rsa_and_ec_paths_with_extras(b):
    """Whole RSA and EC chains, and each with the other family's CA appended where it is not on
    the path (a real, trusted root): accepted with the path's attributes; the extra CA neither
    refuses the client (mixed algorithms) nor changes its attributes."""
    p = pki()
    for cert, chain, rule in ((p.rsa_leaf, [p.rsa_leaf, p.rsa_int], None),
                              (p.thermo, [p.thermo, p.inter], "intermediate"),
                              (p.lock, [p.lock, p.inter2], "root")):
        for extra in ([], [p.rsa_root], [p.root]):
            for v in ("1.2", "1.3"):
                mark = b.log_mark()
                c, got = try_connect(b.ports["x509"], ctx_presenting(chain + extra, cert, v))
                check(c is not None and got.rc == 0, "TLS %s, %s + %r: %r"
                      % (v, cert.cn, [e.name for e in extra], got))
                expect_log(b, mark, auth_line(cert.cn, rule), "TLS %s, %s + %r"
                           % (v, cert.cn, [e.name for e in extra]))
                c.disconnect()


@case(ringmq_only=ONLY)
def x509_intermediate_trusted_directly_under_trusted_root(b):
    """The path stops at the first trusted CA and goes on through trusted CAs that verify it:
    with the intermediate and the root both trusted, a leaf sent alone gets the root's entry
    when neither it nor the intermediate has one (smart-lock under intermediate 2)."""
    p = pki()
    sb = start_short_anchor_broker(p, p.inter2, extra_cas=(p.root,))
    for send_chain in (False, True):
        mark = sb.log_mark()
        c, got = try_connect(sb.ports["x509"], ctx_for(p.lock, send_chain=send_chain))
        check(c is not None and got.rc == 0, "smart-lock (chain sent: %s): %r"
              % (send_chain, got))
        expect_log(sb, mark, auth_line("smart-lock", "root"), "chain sent: %s" % send_chain)
        c.disconnect()


@case(ringmq_only=ONLY)
def x509_leaf_alone_after_its_intermediate_was_seen(b):
    """wolfSSL keeps every CA certificate a client presented (and it verified) for later
    handshakes on the port. A leaf sent without its intermediate, after another client sent
    that intermediate, must not be authenticated on a path that skips the intermediate (main
    before the fix: accepted with "no authorizationAttributes match" and an expiry ignoring
    the intermediate); the client must present it (or the operator trust it)."""
    p = pki()
    leaf = p.f.client("/CN=leaf-alone", p.inter2)
    c, got = try_connect(b.ports["x509"], ctx_presenting([leaf, p.inter2], leaf))
    check(c is not None and got.rc == 0, "leaf + intermediate: %r" % (got,))
    c.disconnect()
    for v in ("1.2", "1.3"):
        mark = b.log_mark()
        c, got = try_connect(b.ports["x509"], ctx_presenting([leaf], leaf, v))
        check(c is None, "TLS %s, leaf without its intermediate: %r" % (v, got))
        expect_log(b, mark, r"TLS handshake failed: [^\n]*no verified path from the client "
                   r"certificate to a trusted client CA", "TLS %s, leaf alone" % v)
        check(b.wait_log(r'authenticated by X509 as "leaf-alone"', mark, 0.3) is None,
              "TLS %s: leaf alone authenticated" % v)


@case(ringmq_only="ringmq's choice: one X509 method per BrokerAuthentication")
def two_x509_methods_are_a_config_error():
    """Two X509 methods in one BrokerAuthentication: --check-config fails naming the second
    method's file:line:col and the first one's line:col (main before the fix accepted it and
    gave TLS only the first method's CAs)."""
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="rq07-")
    rq.on_cleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
    path = os.path.join(d, "two.yaml")
    doc = broker_doc() + """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: listeners}
spec:
  ports:
  - port: %d
    authenticationRef: two-x509
    tls: {mode: Manual, manual: {secretRef: server-cert}}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: two-x509}
spec:
  authenticationMethods:
  - method: X509
    x509Settings: {trustedClientCaCert: ca-one}
  - method: X509
    x509Settings: {trustedClientCaCert: ca-two}
""" % rq.free_port()
    p = pki()
    doc += certs.secret_yaml("server-cert", p.srv.chain_pem, p.srv.key_pem)
    doc += certs.configmap_yaml("ca-one", {"a.pem": p.root.pem})
    doc += certs.configmap_yaml("ca-two", {"b.pem": p.fab_root.pem})
    with open(path, "w") as f:
        f.write(doc)
    lines = doc.split("\n")
    first = next(i for i, t in enumerate(lines) if t.strip() == "- method: X509") + 1
    second = next(i for i, t in enumerate(lines) if t.strip() == "- method: X509"
                  and i + 1 > first) + 1
    r = subprocess.run([rq.broker_bin(), "--check-config", "-c", path], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    check(r.returncode != 0, "two X509 methods accepted: exit 0, output %r" % out[-500:])
    check(("%s:%d:" % (path, second)) in out, "no %s:%d:col in %r" % (path, second, out[-500:]))
    check("second X509 method" in out and ("at %d:" % first) in out,
          "the error does not name both methods: %r" % out[-500:])


# ---------------------------------------------------------------------------------------------
# Secrets and ConfigMaps as mounted directories.

@case(ringmq_only=ONLY)
def mounted_secret_and_configmap():
    p = pki()
    port = rq.free_port()
    y = broker_doc() + """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: mounted}
spec:
  ports:
  - port: %d
    bindAddress: 127.0.0.1
    authenticationRef: x509-auth
    tls: {mode: Manual, manual: {secretRef: mounted-cert}}
""" % port + authn_doc("x509-auth", "mounted-ca")
    files = {
        "secrets/mounted-cert/tls.crt": p.srv.chain_pem,
        "secrets/mounted-cert/tls.key": p.srv.key_pem,
        "configmaps/mounted-ca/ca.crt": p.root.pem,
        "configmaps/mounted-ca/fabrikam.pem": p.fab_root.pem,
    }
    b = rq.start_broker(y, files=files)
    for cert, rule in ((p.thermo, "intermediate"), (p.fab, None)):
        mark = b.log_mark()
        c = tls_connected(port, cert)
        expect_log(b, mark, auth_line(cert.cn, rule), "mounted ConfigMap, %s" % cert.cn)
        c.disconnect()
    mark = b.log_mark()
    expect_handshake_refused(port, ctx_for(p.rogue), "mounted ConfigMap, untrusted CA")
    expect_log(b, mark, r"TLS handshake failed: ", "mounted ConfigMap, untrusted CA")
    check_eq(b.stop(), 0, "exit code after SIGTERM")


if __name__ == "__main__":
    if not certs.openssl_available():
        print("SKIP all: the openssl command line tool is missing (certificates are made with it)")
        sys.exit(rq.SKIP_RC)
    rq.run(fixture, timeout=240)
