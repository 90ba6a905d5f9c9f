#!/usr/bin/python3
"""10 Authorization (BrokerAuthorization on ports[].authorizationRef), with X509 principals (the
tutorial's chain: Fabrikam root and intermediate, thermostat with its own attributes, smart-fan
inheriting the intermediate's) and Custom principals (attributes from tools/custom-auth-server.py):
Connect allowed and denied (CONNACK 0x87 / return code 5, client id globs), Publish at QoS 0/1/2 in
both versions (v5 PUBACK / PUBREC 0x87, QoS 0 dropped; 3.1.1 acknowledged and dropped; never
routed, never retained), Subscribe with mixed SUBACKs (0x87 / 0x80), retained messages only
through allowed subscriptions, wills checked at CONNECT, shared subscriptions checked on their
filter, a substituted value holding '+' (CVE-2017-7650), a missing attribute, rules: [] denying
everything, topic aliases resolved before the check, a session resumed by another principal
losing the subscriptions it may not hold, a reload that changes the rules for new connections
only, and config errors at file:line:col. A plain port without authentication watches
everything ('#') to prove that nothing denied is routed. ringmq only."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import certs  # noqa: E402
import authsrv  # noqa: E402

ONLY = "BrokerAuthorization is a ringmq feature"
PASSWORD = "s3cret-Pa55word"
NA = 0x87  # Not authorized

# Custom users: name -> attributes (all with PASSWORD).
USERS = {
    "alice": {"group": "g1", "floor": "3"},
    "dave": {"group": "g1", "floor": "5"},  # alice's rule, another floor (re-authentication)
    "bob": {"floor": "4"},          # rule by username; its Subscribe uses a missing attribute
    "carol": {"group": "g2"},       # no rule applies
    "mallory": {"tenant": "+"},     # a value that must never act as a wildcard
}


class Env:
    def __init__(self):
        f = self.f = certs.CertFactory()
        self.auth = authsrv.AuthServer(f, {u: authsrv.user(PASSWORD, a) for u, a in USERS.items()})
        self.srv_root = f.ca("/CN=ringmq Test Server Root", name="srv-root")
        self.srv = f.server(self.srv_root, name="srv")
        # The tutorial's client chain.
        self.root = f.ca("/CN=Fabrikam Root CA", name="fab-root")
        self.inter = f.ca("/CN=Fabrikam Intermediate CA 1", issuer=self.root, name="fab-int")
        self.thermo = f.client("/CN=thermostat", self.inter, name="thermostat")
        self.fan = f.client("/CN=smart-fan", self.inter, name="smart-fan")
        self.dir = f.dir


env = fixtures.once(Env)


HDR = "---\napiVersion: mqttbroker.iotoperations.azure.com/v1\n"

# The tutorial's policy for the X509 clients, and the Custom clients' policy.
X509_RULES = """    - principals:
        attributes:
        - {group: thermostat_group}
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["telemetry/temperature", "devices/{principal.clientId}/#"]
      - method: Subscribe
        topics: ["commands/{principal.attributes.building}/#"]
    - principals:
        attributes:
        - {factory: seattle}
      brokerResources:
      - method: Connect
        clientIds: ["{principal.username}*"]
      - method: Publish
        topics: ["telemetry/humidity"]
      - method: Subscribe
        topics: ["telemetry/#"]
"""

CUSTOM_RULES = """    - principals:
        attributes:
        - {group: g1}
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["floors/{principal.attributes.floor}/#", "wills/{principal.clientId}"]
      - method: Subscribe
        topics: ["floors/{principal.attributes.floor}/#", "shared/+/in"]
    - principals:
        usernames: [bob]
      brokerResources:
      - method: Connect
        clientIds: ["bob-*"]
      - method: Subscribe
        topics: ["floors/{principal.attributes.building}/#"]
    - principals:
        usernames: [mallory]
      brokerResources:
      - method: Connect
      - method: Subscribe
        topics: ["tenants/{principal.attributes.tenant}/#", "{principal.clientId}/#"]
      stateStoreResources:
      - {method: ReadWrite, keyType: Pattern, keys: ["clients:{principal.clientId}:*"]}
"""


def authz(name, rules):
    return (HDR + "kind: BrokerAuthorization\nmetadata: {name: %s}\nspec:\n"
            "  authorizationPolicies:\n    cache: Enabled\n    rules:\n%s" % (name, rules))


def broker_yaml(e, ports):
    y = ("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\n"
         "metadata: {name: broker}\nspec:\n  diagnostics: {logs: {level: debug}, "
         "metrics: {prometheusPort: %(metrics)d}}\n  ringmq: {metrics: {bindAddress: 127.0.0.1}}\n"
         % ports)
    y += HDR + """kind: BrokerListener
metadata: {name: listeners}
spec:
  ports:
  - {port: %(plain)d, bindAddress: 127.0.0.1}
  - {port: %(custom)d, bindAddress: 127.0.0.1, authenticationRef: custom, authorizationRef: rules}
  - {port: %(open)d, bindAddress: 127.0.0.1, authenticationRef: custom}
  - {port: %(empty)d, bindAddress: 127.0.0.1, authenticationRef: custom, authorizationRef: deny}
  - port: %(x509)d
    bindAddress: 127.0.0.1
    authenticationRef: x509
    authorizationRef: tutorial
    tls: {mode: Manual, manual: {secretRef: server-cert}}
""" % ports
    y += authsrv.authn("custom", authsrv.custom_method(e.auth.url))
    y += HDR + """kind: BrokerAuthentication
metadata: {name: x509}
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      trustedClientCaCert: client-ca
      authorizationAttributes:
        intermediate: {subject: "CN = Fabrikam Intermediate CA 1", attributes: {factory: seattle}}
        thermostat:
          subject: "CN = thermostat"
          attributes: {group: thermostat_group, building: "17"}
"""
    y += authz("rules", CUSTOM_RULES)
    y += authz("tutorial", X509_RULES)
    y += authz("deny", "      []\n")
    y += certs.secret_yaml("server-cert", e.srv.chain_pem, e.srv.key_pem)
    y += e.auth.ca_configmap()
    y += certs.configmap_yaml("client-ca", {"ca.crt": e.root.pem})
    return y


def fixture():
    e = env()
    ports = {k: rq.free_port() for k in ("plain", "custom", "open", "empty", "x509", "metrics")}
    return fixtures.start_listening(broker_yaml(e, ports), ports)


# ---------------------------------------------------------------------------------------------
# Helpers.

expect_log = fixtures.expect_log


def user(b, name, version=5, client_id=None, port="custom", will=None, expect=0):
    """A Custom client of the given user; expect: the CONNACK code wanted (the client is
    returned connected when it is 0)."""
    c = rq.RawClient(b.ports[port], version=version, timeout=10.0)
    ack = c.connect(client_id=client_id or rq.uniq(name), username=name, password=PASSWORD,
                    will=will)
    want = expect if version == 5 or expect == 0 else 5
    check_eq(ack.rc, want, "CONNACK of %s (v%d, client id %s)" % (name, version, client_id))
    if expect:
        c.expect_closed(5.0)
        c.close()
        return None
    return c


def watcher(b, filters="#"):
    """A client on the plain port subscribed to everything: it sees what is routed."""
    w = rq.connected(b.ports["plain"])
    w.subscribe(filters, qos=2)
    return w


def x509(b, cert, client_id, version=5, expect=0):
    e = env()
    ctx = rq.tls_context(e.srv_root.cert, cert.chain, cert.key)
    c = rq.RawClient(b.ports["x509"], tls=ctx, version=version, timeout=10.0)
    ack = c.connect(client_id=client_id)
    want = expect if version == 5 or expect == 0 else 5
    check_eq(ack.rc, want, "CONNACK of %s as %s (v%d)" % (cert, client_id, version))
    if expect:
        c.expect_closed(5.0)
        c.close()
        return None
    return c


def expect_delivered(w, topic, payload, what):
    m = w.recv_publish(5)
    check_eq((m.topic, m.payload), (topic, payload), what)


def reload_with(b, text, what):
    """Writes the broker's configuration file, reloads it (SIGHUP) and waits until the new
    generation is in use; returns the log mark taken before, for the lines that follow."""
    mark = b.log_mark()
    with open(os.path.join(b.workdir, "ringmq.yaml"), "w") as fh:
        fh.write(text)
    b.signal(signal.SIGHUP)
    expect_log(b, mark, r"reload: generation \d+ in use", what)
    return mark


def publish_denied(c, topic, qos, what, retain=False):
    """A denied PUBLISH: v5 QoS 1/2 get 0x87; 3.1.1 QoS 1/2 are acknowledged normally (QoS 2
    through PUBCOMP); QoS 0 gets nothing."""
    ack = c.publish(topic, b"denied " + what.encode(), qos=qos, retain=retain)
    if qos == 1:
        check_eq(ack.rc, NA if c.version == 5 else 0, "PUBACK of denied %s" % what)
    elif qos == 2:
        want = (rq.PUBREC, NA) if c.version == 5 else (rq.PUBCOMP, 0)
        check_eq((ack.type, ack.rc), want, "QoS 2 answer to denied %s" % what)


# ---------------------------------------------------------------------------------------------
# Custom principals.

@case(ringmq_only=ONLY)
def custom_connect_allowed_and_denied(b):
    for v in (5, 4):
        mark = b.log_mark()
        user(b, "alice", v).disconnect()           # attributes {group: g1}
        user(b, "bob", v, client_id="bob-%d" % v).disconnect()  # clientIds glob bob-*
        user(b, "bob", v, client_id="robert-%d" % v, expect=NA)
        expect_log(b, mark, r'CONNECT refused: not authorized to connect: no rule of '
                   r'BrokerAuthorization \'rules\' grants Connect', "bob's refusal v%d" % v)
        user(b, "carol", v, expect=NA)              # no rule names carol
    # the state store part is accepted and said to be ignored, where it is written
    check(b.wait_log(r"ringmq\.yaml:\d+:\d+: ignored: spec\.authorizationPolicies\.rules\[2\]\."
                     r"stateStoreResources \(not applicable to ringmq\)", 0, 1.0) is not None,
          "no log line saying stateStoreResources is ignored")


def enhanced(b, name, client_id):
    """A v5 client authenticated with an Authentication Method (data user:password), so that
    it can re-authenticate."""
    c = rq.RawClient(b.ports["custom"], timeout=10.0)
    ack = c.connect(client_id=client_id, props={"authentication_method": REAUTH_METHOD,
                                                "authentication_data": (name + ":" + PASSWORD)
                                                .encode()})
    check_eq(ack.rc, 0, "CONNACK of %s" % name)
    return c


def reauth_as(c, name):
    props = {"authentication_method": REAUTH_METHOD,
             "authentication_data": (name + ":" + PASSWORD).encode()}
    c.send_raw(rq.packet(rq.AUTH, 0, bytes([0x19]) + rq.enc_props(props)))


REAUTH_METHOD = "ringmq-userpass"


@case(ringmq_only=ONLY)
def reauthentication_switches_the_rules(b):
    """alice (floor 3) re-authenticates as dave (floor 5): afterwards floor 5 is allowed, floor 3
    is not, and her floor-3 subscription is gone; re-authenticating as bob, whose rule does not
    let this client id connect, ends the connection with DISCONNECT 0x87."""
    w = watcher(b)
    c = enhanced(b, "alice", "reauth-alice")
    check_eq(c.subscribe("floors/3/#", qos=1).codes, [1], "SUBACK as alice")
    # the same two topics before and after (cache: Enabled remembers the last decision)
    c.publish("floors/3/b", b"as alice", qos=1)
    expect_delivered(w, "floors/3/b", b"as alice", "alice's floor-3 message routed")
    check_eq(c.collect(5.0, count=1)[0].topic, "floors/3/b", "alice's own subscription")
    for _ in range(2):
        publish_denied(c, "floors/5/b", 1, "floor 5 as alice")
    reauth_as(c, "dave")
    p = c.wait_for(rq.AUTH, timeout=10)
    check(p is not None and p.rc == 0, "AUTH 0x00 after re-authenticating as dave: %r" % p)
    ack = c.publish("floors/5/b", b"as dave", qos=1)
    check(ack.rc in (0x00, 0x10), "floor 5 allowed as dave: PUBACK 0x%02x" % ack.rc)
    expect_delivered(w, "floors/5/b", b"as dave", "dave's floor-5 message routed")
    publish_denied(c, "floors/3/b", 1, "floor 3 as dave")
    w.publish("floors/3/c", b"for alice's old subscription", qos=1)
    check_eq(c.collect(1.0), [], "messages through the subscription dave may not have")
    reauth_as(c, "bob")
    r = c.expect_closed(timeout=10)
    check(r.closed and r.rc == NA, "re-authenticated as bob (no Connect for this client id): "
          "DISCONNECT 0x87 then close: %r" % r)
    w.disconnect()


@case(ringmq_only=ONLY)
def custom_publish_qos_both_versions(b):
    w = watcher(b)
    for v in (5, 4):
        c = user(b, "alice", v)
        for q in (0, 1, 2):
            ok = "floors/3/v%d/q%d" % (v, q)
            ack = c.publish(ok, b"ok", qos=q)
            if q:
                check_eq(ack.rc, 0, "ack of allowed QoS %d v%d" % (q, v))
            expect_delivered(w, ok, b"ok", "allowed QoS %d v%d routed" % (q, v))
            publish_denied(c, "floors/4/v%d/q%d" % (v, q), q, "QoS %d v%d" % (q, v))
        c.ping()  # the QoS 0 denial has been handled too
        check_eq(w.collect(0.5), [], "messages routed after denied PUBLISHes v%d" % v)
        c.disconnect()
    w.disconnect()


@case(ringmq_only=ONLY)
def denied_publish_is_logged_and_never_retained(b):
    for v in (5, 4):
        c = user(b, "alice", v)
        for q in (0, 1, 2):
            publish_denied(c, "floors/9/retained-%d-%d" % (v, q), q, "retained", retain=True)
        c.disconnect()
    c = user(b, "alice")
    c.publish("floors/3/retained", b"kept", qos=1, retain=True)
    # logged at most every 10 s per shard: an earlier denial may have taken the line
    check(b.wait_log(r'PUBLISH to "floors/[0-9]+/[a-z0-9/]+" dropped: not authorized', 0, 5.0)
          is not None, "no log line about a denied PUBLISH")
    w = rq.connected(b.ports["plain"])
    w.subscribe("floors/+/retained", qos=1)
    got = [(m.topic, m.payload) for m in w.collect(5.0, count=1) + w.collect(0.5)]
    check_eq(got, [("floors/3/retained", b"kept")], "retained messages stored")
    c.publish("floors/3/retained", b"", qos=1, retain=True)
    c.disconnect()
    w.disconnect()


@case(ringmq_only=ONLY)
def custom_subscribe_mixed_suback(b):
    plain = rq.connected(b.ports["plain"])
    plain.publish("floors/3/r", b"three", qos=1, retain=True)
    plain.publish("floors/4/r", b"four", qos=1, retain=True)
    for v in (5, 4):
        c = user(b, "alice", v)
        ack = c.subscribe(["floors/3/#", "floors/4/#", "floors/#", "#", "floors/+/r",
                           "$share/g/shared/x/in", "$share/g/floors/4/r"], qos=1)
        bad = NA if v == 5 else 0x80
        check_eq(ack.codes, [1, bad, bad, bad, bad, 1, bad], "SUBACK codes v%d" % v)
        # retained messages only through the granted subscription
        got = [(m.topic, m.payload) for m in c.collect(5.0, count=1) + c.collect(0.5)]
        check_eq(got, [("floors/3/r", b"three")], "retained messages v%d" % v)
        plain.publish("floors/4/live", b"no", qos=1)
        plain.publish("shared/x/in", b"shared", qos=1)
        plain.publish("floors/3/live", b"yes", qos=1)
        got = sorted((m.topic, m.payload) for m in c.collect(5.0, count=2) + c.collect(0.5))
        check_eq(got, [("floors/3/live", b"yes"), ("shared/x/in", b"shared")],
                 "live messages v%d" % v)
        c.disconnect()
    plain.publish("floors/3/r", b"", qos=1, retain=True)
    plain.publish("floors/4/r", b"", qos=1, retain=True)
    plain.disconnect()


@case(ringmq_only=ONLY)
def custom_wills(b):
    for v in (5, 4):
        w = watcher(b, "wills/#")
        mark = b.log_mark()
        cid = rq.uniq("will-ok")
        c = user(b, "alice", v, client_id=cid,
                 will={"topic": "wills/" + cid, "payload": b"gone", "qos": 1})
        c.close()  # no DISCONNECT: the will goes out
        expect_delivered(w, "wills/" + cid, b"gone", "allowed will v%d" % v)
        user(b, "alice", v, client_id=rq.uniq("will-bad"),
             will={"topic": "wills/somebody-else", "payload": b"x"}, expect=NA)
        expect_log(b, mark, r'CONNECT refused: not authorized: the will topic '
                   r'"wills/somebody-else" is not one this client may publish to',
                   "denied will v%d" % v)
        check_eq(w.collect(0.5), [], "a denied will published v%d" % v)
        w.disconnect()


@case(ringmq_only=ONLY)
def missing_attribute_matches_nothing(b):
    c = user(b, "bob", client_id="bob-x")
    # bob's Subscribe topic is floors/{principal.attributes.building}/#: bob has no building
    ack = c.subscribe(["floors/4/#", "floors//#", "floors/+/#"], qos=0)
    check_eq(ack.codes, [NA, NA, NA], "SUBACK of bob")
    publish_denied(c, "floors/4/x", 1, "bob has no Publish rule")
    c.disconnect()


@case(ringmq_only=ONLY)
def substituted_plus_is_no_wildcard(b):
    """mallory's tenant attribute is "+": tenants/{principal.attributes.tenant}/# must not
    become the filter tenants/+/# (CVE-2017-7650)."""
    w = rq.connected(b.ports["plain"])
    c = user(b, "mallory")
    ack = c.subscribe(["tenants/+/#", "tenants/acme/#", "tenants/#"], qos=1)
    check_eq(ack.codes, [NA, NA, NA], "SUBACK of mallory")
    w.publish("tenants/acme/secret", b"s", qos=1)
    check_eq(c.collect(0.5), [], "mallory received a tenant's message")
    c.disconnect()
    w.disconnect()


@case(ringmq_only=ONLY)
def substituted_dollar_reaches_no_sys_topic(b):
    """mallory may subscribe to {principal.clientId}/#: with the client id "$SYS" that must not
    become $SYS/# (the broker's own topics); any other client id gets its own tree."""
    for v in (5, 4):
        c = user(b, "mallory", v, client_id="$SYS")
        bad = NA if v == 5 else 0x80
        check_eq(c.subscribe(["$SYS/#", "$SYS/broker/clients/connected"], qos=0).codes,
                 [bad, bad], "SUBACK of mallory as $SYS v%d" % v)
        c.disconnect()
        c = user(b, "mallory", v, client_id="m-%d" % v)
        check_eq(c.subscribe(["m-%d/#" % v], qos=0).codes, [0], "mallory's own tree v%d" % v)
        c.disconnect()


@case(ringmq_only=ONLY)
def empty_rules_deny_everything(b):
    mark = b.log_mark()
    for v in (5, 4):
        user(b, "alice", v, port="empty", expect=NA)
    expect_log(b, mark, r"no rule of BrokerAuthorization 'deny' grants Connect", "log line")
    check(b.wait_log(r"authorization by BrokerAuthorization deny \(0 rules: every client is "
                     r"denied\)", 0, 1.0) is not None, "startup line of the deny-all port")
    # the same user without authorization on the port may do everything
    c = user(b, "alice", port="open")
    check_eq(c.subscribe("#", qos=0).codes, [0], "SUBACK without authorization")
    c.disconnect()


@case(ringmq_only=ONLY)
def topic_alias_resolved_before_the_check(b):
    """v5: the topic a PUBLISH names through a Topic Alias is the one checked."""
    w = watcher(b, "floors/#")
    c = user(b, "alice")
    c.publish("floors/3/alias", b"set", qos=1, props={"topic_alias": 1})
    expect_delivered(w, "floors/3/alias", b"set", "alias set on an allowed topic")
    c.publish("", b"via alias", qos=1, props={"topic_alias": 1})
    expect_delivered(w, "floors/3/alias", b"via alias", "allowed topic through its alias")
    check_eq(c.publish("floors/4/alias", b"x", qos=1, props={"topic_alias": 2}).rc, NA,
             "denied topic setting an alias")
    check_eq(c.publish("", b"x", qos=1, props={"topic_alias": 2}).rc, NA,
             "denied topic through its alias")
    check_eq(w.collect(0.5), [], "denied messages routed")
    c.disconnect()
    w.disconnect()


def counters(b):
    """aio_broker_authorization_allow and _deny from the metrics endpoint."""
    r = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.ports["metrics"], timeout=5)
    text = r.read().decode()
    got = {}
    for what in ("allow", "deny"):
        m = re.search(r"^aio_broker_authorization_%s (\d+)$" % what, text, re.M)
        check(m is not None, "no aio_broker_authorization_%s sample" % what)
        got[what] = int(m.group(1))
    return got


def expect_counted(b, before, allow, deny, what):
    """The counters move by exactly (allow, deny) from before (waited for: a shard's count
    reaches the scrape once it has answered the client, but within a bounded time)."""
    want = {"allow": before["allow"] + allow, "deny": before["deny"] + deny}
    deadline = time.monotonic() + 5.0
    got = counters(b)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.05)
        got = counters(b)
    check_eq(got, want, "authorization counters after %s" % what)


@case(ringmq_only=ONLY)
def decisions_are_counted(b):
    """Every decision moves aio_broker_authorization_allow or _deny by one: a Connect (its will
    included), a Publish (each QoS, both versions), each filter of a SUBSCRIBE."""
    for v in (5, 4):
        n = counters(b)
        user(b, "carol", v, expect=NA)
        user(b, "alice", v, will={"topic": "wills/somebody-else", "payload": b"x"}, expect=NA)
        expect_counted(b, n, 0, 2, "a denied Connect and a denied will v%d" % v)
        n = counters(b)
        c = user(b, "alice", v)
        expect_counted(b, n, 1, 0, "an allowed Connect v%d" % v)
        n = counters(b)
        for q in (0, 1, 2):
            c.publish("floors/3/count", b"ok", qos=q)
            publish_denied(c, "floors/4/count", q, "counted QoS %d v%d" % (q, v))
        c.ping()
        expect_counted(b, n, 3, 3, "three allowed and three denied PUBLISHes v%d" % v)
        n = counters(b)
        check_eq(c.subscribe(["floors/3/#", "floors/4/#", "#"], qos=0).codes,
                 [0, NA if v == 5 else 0x80, NA if v == 5 else 0x80], "SUBACK v%d" % v)
        expect_counted(b, n, 1, 2, "a SUBSCRIBE of one allowed and two denied filters v%d" % v)
        c.disconnect()
    # a resumed session lives on one shard: a connection accepted on another is handed over
    # there (and authorized there again), still one decision
    n = counters(b)
    cid = rq.uniq("counted")
    for i in range(8):
        c = rq.RawClient(b.ports["custom"], timeout=10.0)
        check_eq(c.connect(client_id=cid, clean=i == 0, username="alice", password=PASSWORD,
                           props={"session_expiry_interval": 0 if i == 7 else 60}).rc, 0,
                 "CONNACK %d" % i)
        c.disconnect()
    expect_counted(b, n, 8, 0, "eight Connects resuming one session")


@case(ringmq_only=ONLY)
def resumed_session_keeps_only_what_the_new_principal_may(b):
    """alice leaves a session subscribed to floors/3/# under client id bob-shared; bob resumes
    it: bob's rules do not cover that filter, so the subscription is gone."""
    mark = b.log_mark()
    props = {"session_expiry_interval": 300}
    a = rq.RawClient(b.ports["custom"], timeout=10.0)
    check_eq(a.connect(client_id="bob-shared", username="alice", password=PASSWORD,
                       props=props).rc, 0, "alice's CONNACK")
    check_eq(a.subscribe("floors/3/#", qos=1).codes, [1], "alice's SUBACK")
    a.disconnect()
    c = rq.RawClient(b.ports["custom"], timeout=10.0)
    ack = c.connect(client_id="bob-shared", clean=False, username="bob", password=PASSWORD,
                    props=props)
    check_eq((ack.rc, ack.session_present), (0, True), "bob resumes the session")
    expect_log(b, mark, r'subscription "floors/3/#" removed: not authorized for this principal',
               "log line")
    p = rq.connected(b.ports["plain"])
    p.publish("floors/3/after", b"x", qos=1)
    check_eq(c.collect(0.7), [], "messages through the removed subscription")
    c.disconnect(props={"session_expiry_interval": 0})
    p.disconnect()


def leave_session(b, v, cid, name):
    """name connects as cid with a lasting session subscribed to floors/3/# at QoS 2, takes a
    QoS 1 and a QoS 2 message without acknowledging them and goes; three more are queued for
    the session. Returns the CONNECT properties and the QoS 2 message's packet id."""
    props = {"session_expiry_interval": 300} if v == 5 else None
    p = rq.connected(b.ports["plain"])
    a = rq.RawClient(b.ports["custom"], version=v, timeout=10.0)
    check_eq(a.connect(client_id=cid, clean=False, username=name, password=PASSWORD,
                       props=props).rc, 0, "CONNACK of %s" % name)
    check_eq(a.subscribe("floors/3/#", qos=2).codes, [2], "SUBACK of %s" % name)
    p.publish("floors/3/inflight-1", b"x", qos=1)
    p.publish("floors/3/inflight-2", b"x", qos=2)
    got = [a.recv_publish(5, ack=False) for _ in range(2)]
    check_eq([(m.topic, m.qos) for m in got], [("floors/3/inflight-1", 1),
                                               ("floors/3/inflight-2", 2)], "in flight")
    a.disconnect()
    for i in range(3):
        p.publish("floors/3/queued-%d" % i, b"x", qos=1)
    p.disconnect()
    return props, got[1].pid


@case(ringmq_only=ONLY)
def resumed_session_hands_over_nothing_undelivered_it_may_not_have(b):
    """Messages queued for a session through floors/3/#, and the ones in flight, are resent when
    alice resumes her session, but not when bob takes it over: the subscription that matched
    them is not bob's to hold (they are dropped, logged and counted). The QoS 2 one in flight
    goes on with PUBREL instead, so that the client forgets its packet id."""
    want = ["floors/3/inflight-1", "floors/3/inflight-2", "floors/3/queued-0",
            "floors/3/queued-1", "floors/3/queued-2"]
    for v in (5, 4):
        cid = "bob-undelivered-%d" % v
        props, _ = leave_session(b, v, cid, "alice")
        c = rq.RawClient(b.ports["custom"], version=v, timeout=10.0)
        ack = c.connect(client_id=cid, clean=False, username="alice", password=PASSWORD,
                        props=props)
        check_eq((ack.rc, ack.session_present), (0, True), "alice resumes v%d" % v)
        check_eq([m.topic for m in c.collect(5.0, count=5)], want, "resent to alice v%d" % v)
        c.disconnect()
        props, pid2 = leave_session(b, v, cid, "alice")
        mark = b.log_mark()
        c = rq.RawClient(b.ports["custom"], version=v, timeout=10.0)
        ack = c.connect(client_id=cid, clean=False, username="bob", password=PASSWORD,
                        props=props)
        check_eq((ack.rc, ack.session_present), (0, True), "bob resumes the session v%d" % v)
        expect_log(b, mark, r"5 undelivered message\(s\) dropped: their topics are not "
                   r"authorized for this principal", "log line v%d" % v)
        rel = c.wait_for(rq.PUBREL, timeout=5)
        check_eq(rel.pid, pid2, "PUBREL of the QoS 2 message in flight v%d" % v)
        c.send_raw(rq.enc_ack(rq.PUBCOMP, v, pid2))
        check_eq([m.topic for m in c.collect(1.0)], [], "undelivered messages handed to bob "
                 "v%d" % v)
        c.disconnect()
        c = rq.RawClient(b.ports["custom"], version=v, timeout=10.0)  # the session ends
        check_eq(c.connect(client_id=cid, username="bob", password=PASSWORD).rc, 0, "clean")
        c.disconnect()


# ---------------------------------------------------------------------------------------------
# X509 principals (the tutorial's chain).

@case(ringmq_only=ONLY)
def x509_tutorial(b):
    e = env()
    w = watcher(b, "telemetry/#")
    for v in (5, 4):
        t = x509(b, e.thermo, "thermostat-%d" % v, v)
        t.publish("telemetry/temperature", b"21", qos=1)
        expect_delivered(w, "telemetry/temperature", b"21", "thermostat's temperature v%d" % v)
        publish_denied(t, "telemetry/humidity", 1, "thermostat's humidity v%d" % v)
        t.publish("devices/thermostat-%d/state" % v, b"on", qos=0)
        bad = NA if v == 5 else 0x80
        check_eq(t.subscribe(["commands/17/#", "commands/18/#", "telemetry/#"], qos=1).codes,
                 [1, bad, bad], "thermostat's SUBACK v%d" % v)
        # smart-fan has no entry of its own: the intermediate's {factory: seattle}
        f = x509(b, e.fan, "smart-fan-%d" % v, v)
        f.publish("telemetry/humidity", b"40", qos=1)
        expect_delivered(w, "telemetry/humidity", b"40", "fan's humidity v%d" % v)
        publish_denied(f, "telemetry/temperature", 2, "fan's temperature v%d" % v)
        check_eq(f.subscribe(["telemetry/#", "commands/17/#"], qos=0).codes, [0, bad],
                 "fan's SUBACK v%d" % v)
        t.publish("telemetry/temperature", b"22", qos=1)
        expect_delivered(f, "telemetry/temperature", b"22", "fan receives v%d" % v)
        expect_delivered(w, "telemetry/temperature", b"22", "watcher receives v%d" % v)
        # Connect clientIds "{principal.username}*": the fan's client id must start with its CN
        x509(b, e.fan, "fan-%d" % v, v, expect=NA)
        check_eq(w.collect(0.5), [], "denied messages routed v%d" % v)
        t.disconnect()
        f.disconnect()
    w.disconnect()


@case(ringmq_only=ONLY)
def x509_wills_shared_and_retained(b):
    """X509 principals through the rest of the checks: a will the thermostat may publish goes
    out, one it may not refuses the CONNECT; shared subscriptions are checked on their filter;
    a denied retained QoS 0 PUBLISH is neither routed nor kept."""
    e = env()
    ctx = rq.tls_context(e.srv_root.cert, e.thermo.chain, e.thermo.key)
    w = watcher(b, "devices/#")
    for v in (5, 4):
        bad = NA if v == 5 else 0x80
        cid = "thermostat-will-%d" % v
        c = rq.RawClient(b.ports["x509"], tls=ctx, version=v, timeout=10.0)
        will = {"topic": "devices/%s/lwt" % cid, "payload": b"offline", "qos": 1}
        check_eq(c.connect(client_id=cid, will=will).rc, 0, "allowed will v%d" % v)
        c.close()  # no DISCONNECT: the will goes out
        expect_delivered(w, "devices/%s/lwt" % cid, b"offline", "thermostat's will v%d" % v)
        c = rq.RawClient(b.ports["x509"], tls=ctx, version=v, timeout=10.0)
        will = {"topic": "devices/somebody-else/lwt", "payload": b"x"}
        check_eq(c.connect(client_id=rq.uniq("thermostat"), will=will).rc, NA if v == 5 else 5,
                 "a will on another device's topic v%d" % v)
        c.close()
        t = x509(b, e.thermo, rq.uniq("thermostat"), v)
        r = watcher(b, "telemetry/humidity")
        publish_denied(t, "telemetry/humidity", 0, "retained humidity v%d" % v, retain=True)
        t.ping(timeout=5)  # the PUBLISH before it has been handled
        check_eq(r.collect(0.5), [], "a denied retained PUBLISH was routed v%d" % v)
        r.disconnect()
        r = watcher(b, "telemetry/humidity")  # a new subscription gets what is retained
        check_eq(r.collect(0.5), [], "a denied retained PUBLISH was kept v%d" % v)
        r.disconnect()
        t.disconnect()
    f = x509(b, e.fan, rq.uniq("smart-fan"), 5)
    check_eq(f.subscribe(["$share/g/telemetry/#", "$share/g/commands/17/#"], qos=1).codes,
             [1, NA], "shared subscriptions checked on their filter")
    t = x509(b, e.thermo, rq.uniq("thermostat"), 5)
    t.publish("telemetry/temperature", b"23", qos=1)
    expect_delivered(f, "telemetry/temperature", b"23", "through the granted shared one")
    t.disconnect()
    f.disconnect()
    check_eq(w.collect(0.5), [], "something else routed to devices/#")
    w.disconnect()


# ---------------------------------------------------------------------------------------------
# Reload: connected clients keep the rules they connected under; new ones get the new rules.

@case(ringmq_only=ONLY)
def reload_of_a_changed_policy_disconnects_its_port(b):
    """As AIO does: a reload that changes a port's BrokerAuthorization disconnects that port's
    clients (v5 DISCONNECT 0x87 with a reason string); they reconnect under the new rules.
    Clients of ports whose policy did not change stay, and a reload that changes nothing
    disconnects nobody."""
    path = os.path.join(b.workdir, "ringmq.yaml")
    original = open(path).read()
    carol_rule = ("    - principals: {usernames: [carol]}\n      brokerResources:\n"
                  "      - method: Connect\n      - {method: Publish, topics: [\"floors/#\"]}\n")
    w = watcher(b, "floors/#")
    alice = user(b, "alice")
    open_port = user(b, "alice", port="open")  # no authorization on that port
    user(b, "carol", expect=NA)
    try:
        # carol may now connect, alice's group nothing
        reload_with(b, original.replace(CUSTOM_RULES, carol_rule), "reload")
        r = alice.expect_closed(timeout=10)
        check(r.closed and r.rc == NA, "alice's connection under the old rules: DISCONNECT "
              "0x87 then close: %r" % r)
        check(open_port.ping(timeout=5) is not None, "a client of a port without authorization "
              "stays")
        carol = user(b, "carol")
        carol.publish("floors/9/new", b"new", qos=1)
        expect_delivered(w, "floors/9/new", b"new", "carol under the new rules")
        user(b, "alice", expect=NA)
        carol.disconnect()
    finally:
        reload_with(b, original, "reload back")
    alice = user(b, "alice")
    reload_with(b, original, "reload without changes")  # the same configuration: nobody goes
    check(alice.ping(timeout=5) is not None, "alice stays when the policy did not change")
    alice.publish("floors/3/same", b"same", qos=1)
    expect_delivered(w, "floors/3/same", b"same", "alice after an unchanged reload")
    alice.disconnect()
    open_port.disconnect()
    w.disconnect()

@case(ringmq_only=ONLY)
def reload_rechecks_the_wills_of_the_clients_it_disconnects(b):
    """A reload that changes a port's policy disconnects its clients without a DISCONNECT from
    them, so their wills go out; each will is checked against the new rules first: one they
    still allow is published, one they deny is dropped (logged and counted as denied)."""
    path = os.path.join(b.workdir, "ringmq.yaml")
    original = open(path).read()
    w = watcher(b, "wills/#")
    keep, lose = rq.uniq("will-keep"), rq.uniq("will-lose")
    # the new rules keep g1's topics, but of the wills only the first client's
    tighter = original.replace('"wills/{principal.clientId}"', '"wills/%s"' % keep)
    check(tighter != original, "the test's rules have the will topic pattern")
    clients = [user(b, "alice", v, client_id=cid,
                    will={"topic": "wills/" + cid, "payload": b"gone " + cid.encode(), "qos": 1})
               for v, cid in ((5, keep), (4, lose))]
    try:
        mark = reload_with(b, tighter, "reload")
        for c in clients:
            c.expect_closed(timeout=10)
        expect_delivered(w, "wills/" + keep, b"gone " + keep.encode(),
                         "the will the new rules still allow")
        expect_log(b, mark, r'will dropped: its topic "wills/%s" is not authorized by the '
                   r"port's new rules" % lose, "the will the new rules deny")
        check_eq(w.collect(1.0), [], "a will the new rules deny was published")
    finally:
        reload_with(b, original, "reload back")
        for c in clients:
            c.close()
        w.disconnect()

# ---------------------------------------------------------------------------------------------
# Configuration errors.

def check_config(text):
    d = env().dir
    path = os.path.join(d, "bad-%s.yaml" % rq.uniq("cfg"))
    with open(path, "w") as fh:
        fh.write(text)
    r = subprocess.run([rq.broker_bin(), "--check-config", "-c", path], capture_output=True,
                       text=True, timeout=30)
    return r, os.path.basename(path)


@case(ringmq_only=ONLY)
def config_errors_name_file_line_col():
    listener = ("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\n"
                "metadata: {name: lst}\nspec:\n  ports:\n  - port: 1883\n"
                "    authorizationRef: rules\n")
    r, name = check_config(listener + authz("rules", "      []\n"))
    check(r.returncode != 0, "authorizationRef without authenticationRef accepted")
    check("%s:7:23: authorizationRef on port 1883 needs an authenticationRef too" % name
          in r.stderr, "message: %r" % r.stderr)
    bad = ("    - principals: {usernames: [u]}\n      brokerResources:\n"
           "      - {method: Publish, topics: [\"a/x-{principal.clientId}\"]}\n")
    r, name = check_config(authz("rules", bad))
    check(r.returncode != 0, "a token inside a level accepted")
    check("%s:11:36: topics 'a/x-{principal.clientId}': a substitution token must be a whole "
          "topic level" % name in r.stderr, "message: %r" % r.stderr)


if __name__ == "__main__":
    if not certs.openssl_available():
        print("SKIP all: the openssl command line tool is missing")
        sys.exit(rq.SKIP_RC)
    rq.run(fixture, timeout=300)
