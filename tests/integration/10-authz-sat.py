#!/usr/bin/python3
"""10 Authorization with ServiceAccountToken principals: the attributes come from the
ServiceAccount's aio-broker-auth/ annotations (legacy aio-mq-broker-auth/ too), the username is
system:serviceaccount:NS:NAME; rules over both, with substitution, for Connect, Publish and
Subscribe, in both protocol versions (v5 K8S-SAT method, v3.1.1 K8S-SAT user name). Uses the
test Kubernetes API server of 08-sat (lib/kube_api.py). ringmq only."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402

# 08-sat's environment (API server, service accounts client-a {group: g1, floor: 3}, legacy
# {group: old, room: 5}, bare); its cases are not run here.
sat = fixtures.sibling("08-sat.py")

ONLY = sat.ONLY
NA = 0x87

RULES = """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata: {name: sat-rules}
spec:
  authorizationPolicies:
    rules:
    - principals:
        attributes:
        - {group: g1}
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["floors/{principal.attributes.floor}/#"]
      - method: Subscribe
        topics: ["floors/{principal.attributes.floor}/#"]
    - principals:
        usernames: ["system:serviceaccount:aio:legacy"]
      brokerResources:
      - method: Connect
        clientIds: ["legacy-*"]
      - method: Publish
        topics: ["rooms/{principal.attributes.room}/{principal.clientId}"]
"""


def fixture():
    e = sat.env()
    ports = {k: rq.free_port() for k in ("plain", "sat")}
    y = sat.broker_yaml(e, ports, chain=RULES)
    y = y.replace("authenticationRef: sat}", "authenticationRef: sat, authorizationRef: sat-rules}")
    b = rq.start_broker(y)
    b.ports = ports
    check(rq.port_open(ports["sat"], 5.0), "SAT port listening")
    return b


def connect(b, token, version, client_id, expect=0):
    c, ack = sat.sat_connect(b, token, version=version, client_id=client_id)
    want = expect if version == 5 or expect == 0 else 5
    check_eq(ack.rc, want, "CONNACK of %s v%d" % (client_id, version))
    return c


@case(ringmq_only=ONLY)
def annotations_drive_publish_and_subscribe(b):
    """client-a's annotations (group g1, floor 3): floor 3 allowed, floor 4 denied, in both
    versions; a mixed SUBSCRIBE gets the denied filter refused and the other granted."""
    e = sat.env()
    w = rq.connected(b.ports["plain"])
    w.subscribe("#", qos=1)
    for v in (5, 4):
        c = connect(b, e.token("client-a"), v, rq.uniq("sat-a"))
        ack = c.publish("floors/3/t", b"ok", qos=1)
        check(ack.rc in (0x00, 0x10), "floor 3 PUBACK v%d: 0x%02x" % (v, ack.rc))
        m = w.recv_publish(5)
        check_eq((m.topic, m.payload), ("floors/3/t", b"ok"), "floor 3 routed v%d" % v)
        ack = c.publish("floors/4/t", b"no", qos=1)
        check_eq(ack.rc, NA if v == 5 else 0, "floor 4 PUBACK v%d" % v)
        bad = NA if v == 5 else 0x80
        sub = c.subscribe(["floors/3/#", "floors/4/#", "$share/g/floors/3/x",
                           "$share/g/floors/4/x"], qos=1)
        check_eq(sub.codes, [1, bad, 1, bad], "SUBACK v%d (shared filters checked on FILTER)" % v)
        c.ping()
        check_eq(w.collect(0.5), [], "nothing routed from floor 4 v%d" % v)
        c.disconnect()
    w.disconnect()


@case(ringmq_only=ONLY)
def qos_retained_and_wills(b):
    """The same principal for QoS 0 and 2 and retained messages (a denied one is never routed
    nor retained), and its will topic checked at CONNECT (denied: 0x87 / return code 5)."""
    e = sat.env()
    w = rq.connected(b.ports["plain"])
    w.subscribe("floors/#", qos=2)
    for v in (5, 4):
        c = connect(b, e.token("client-a"), v, rq.uniq("sat-q"))
        c.publish("floors/3/q0", b"q0", qos=0)
        ack = c.publish("floors/3/q2", b"q2", qos=2)
        check_eq(ack.type, rq.PUBCOMP, "QoS 2 allowed v%d ends with PUBCOMP" % v)
        got = sorted((m.topic, m.payload) for m in w.collect(5.0, count=2))
        check_eq(got, [("floors/3/q0", b"q0"), ("floors/3/q2", b"q2")], "allowed v%d" % v)
        c.publish("floors/4/q0", b"no", qos=0)
        ack = c.publish("floors/4/q2", b"no", qos=2)
        want = (rq.PUBREC, NA) if v == 5 else (rq.PUBCOMP, 0)
        check_eq((ack.type, ack.rc), want, "QoS 2 denied v%d" % v)
        c.publish("floors/4/ret", b"no", qos=1, retain=True)
        c.ping()
        check_eq(w.collect(0.5), [], "nothing routed from floor 4 v%d" % v)
        c.disconnect()
        late = rq.connected(b.ports["plain"])
        late.subscribe("floors/4/ret", qos=1)
        check_eq(late.collect(1.0), [], "a denied retained message was not stored v%d" % v)
        late.disconnect()
        ok_will = {"topic": "floors/3/will", "payload": b"w"}
        c, ack = sat.sat_connect(b, e.token("client-a"), version=v, client_id=rq.uniq("sat-w"),
                                 will=ok_will)
        check_eq(ack.rc, 0, "allowed will v%d" % v)
        c.disconnect()
        bad_will = {"topic": "floors/4/will", "payload": b"w"}
        c, ack = sat.sat_connect(b, e.token("client-a"), version=v, client_id=rq.uniq("sat-w"),
                                 will=bad_will)
        check_eq(ack.rc, NA if v == 5 else 5, "denied will v%d" % v)
    w.disconnect()


@case(ringmq_only=ONLY)
def username_rule_with_legacy_annotations(b):
    """The legacy account (aio-mq-broker-auth/room=5, no group): its username rule lets client
    ids legacy-* connect and publish to rooms/5/<client id> only; another client id is refused
    at CONNECT (0x87 / return code 5)."""
    e = sat.env()
    for v in (5, 4):
        cid = "legacy-%d" % v
        c = connect(b, e.token("legacy"), v, cid)
        ack = c.publish("rooms/5/%s" % cid, b"ok", qos=1)
        check(ack.rc in (0x00, 0x10), "own room topic v%d: 0x%02x" % (v, ack.rc))
        ack = c.publish("rooms/5/someone-else", b"no", qos=1)
        check_eq(ack.rc, NA if v == 5 else 0, "another client's topic v%d" % v)
        c.disconnect()
        c, ack = sat.sat_connect(b, e.token("legacy"), version=v, client_id="other-%d" % v)
        check_eq(ack.rc, NA if v == 5 else 5, "client id outside legacy-* v%d" % v)


@case(ringmq_only=ONLY)
def account_without_annotations_may_not_connect(b):
    """bare has no annotations and no rule names it: CONNACK 0x87 / return code 5."""
    e = sat.env()
    for v in (5, 4):
        c, ack = sat.sat_connect(b, e.token("bare"), version=v, client_id=rq.uniq("bare"))
        check_eq(ack.rc, NA if v == 5 else 5, "bare v%d" % v)


if __name__ == "__main__":
    if sat.kube_api is None:
        print("SKIP all: %s (python3-cryptography and python3-jwt are needed)"
              % sat._IMPORT_ERROR)
        sys.exit(rq.SKIP_RC)
    rq.run(fixture, timeout=300)
