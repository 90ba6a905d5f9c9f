#!/usr/bin/python3
"""Try ServiceAccountToken (K8S-SAT) authentication locally, without a cluster.

Starts the test Kubernetes API server of the integration tests (tests/integration/lib/kube_api.py:
HTTPS on 127.0.0.1, TokenReview, ServiceAccount reads, OIDC discovery), creates a service
account, mints bound service-account tokens for it, and writes into --dir:
  kubeconfig       how the broker reaches that API server (spec.ringmq.kubernetes.kubeconfig)
  ringmq.yaml      a broker configuration: port --mqtt-port with a ServiceAccountToken method
  token            a client token (also printed), valid --lifetime seconds
Then it serves until Ctrl-C; the tokens stop working with it.

Quick start (two terminals):
  tools/sat-token.py --dir /tmp/sat --sa aio/mqtt-client --annotation group=g1
  build/ringmq -c /tmp/sat/ringmq.yaml
  mosquitto_pub -p 1883 -V mqttv5 -D CONNECT authentication-method K8S-SAT \\
      -D CONNECT authentication-data "$(cat /tmp/sat/token)" -t t -m hello
  mosquitto_pub -p 1883 -V mqttv311 -u K8S-SAT -P "$(cat /tmp/sat/token)" -t t -m hello

Options: --audience (repeatable, default aio-internal), --alg RS256|ES256, --lifetime SECONDS,
--count N (N more tokens printed, e.g. for a storm), --annotation NAME=VALUE (repeatable: the
service account's aio-broker-auth/NAME annotations, the client's attributes).
Needs python3-cryptography and python3-jwt (Debian).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration", "lib"))

BROKER_YAML = """apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata: {name: broker}
spec:
  ringmq:
    kubernetes: {kubeconfig: "%(kubeconfig)s"}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: listener}
spec:
  ports:
  - {port: %(port)d, bindAddress: 127.0.0.1, authenticationRef: sat}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: sat}
spec:
  authenticationMethods:
  - method: ServiceAccountToken
    serviceAccountTokenSettings:
      audiences: [%(audiences)s]
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="where kubeconfig, ringmq.yaml, token go")
    ap.add_argument("--sa", default="aio/mqtt-client", help="NAMESPACE/NAME")
    ap.add_argument("--annotation", action="append", default=[], help="NAME=VALUE")
    ap.add_argument("--audience", action="append", default=[])
    ap.add_argument("--alg", choices=("RS256", "ES256"), default="RS256")
    ap.add_argument("--lifetime", type=int, default=3600)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--mqtt-port", type=int, default=1883)
    a = ap.parse_args()
    try:
        import kube_api
    except ImportError as e:
        sys.exit("sat-token: %s (install python3-cryptography and python3-jwt)" % e)
    if "/" not in a.sa:
        sys.exit("sat-token: --sa must be NAMESPACE/NAME")
    ns, name = a.sa.split("/", 1)
    auds = a.audience or ["aio-internal"]
    ann = {}
    for kv in a.annotation:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            sys.exit("sat-token: --annotation must be NAME=VALUE")
        ann["aio-broker-auth/" + k] = v
    os.makedirs(a.dir, exist_ok=True)
    broker_token = os.urandom(16).hex()
    api = kube_api.KubeAPI(a.dir, require_bearer=broker_token)
    api.add_sa(ns, name, ann)
    kc = api.write_kubeconfig(os.path.join(a.dir, "kubeconfig"), token=broker_token)
    os.chmod(kc, 0o600)
    with open(os.path.join(a.dir, "ringmq.yaml"), "w") as f:
        f.write(BROKER_YAML % {"kubeconfig": kc, "port": a.mqtt_port,
                               "audiences": ", ".join(auds)})
    tok = api.token(ns, name, auds, expires_in=a.lifetime, alg=a.alg)
    path = os.path.join(a.dir, "token")
    with open(path, "w") as f:
        f.write(tok)
    os.chmod(path, 0o600)
    print("Kubernetes API (test server): %s" % api.url)
    print("service account %s/%s, annotations %s" % (ns, name, ann or "none"))
    print("broker configuration: %s" % os.path.join(a.dir, "ringmq.yaml"))
    print("token (%s, audiences %s, valid %d s) in %s:\n%s" % (a.alg, ",".join(auds), a.lifetime,
                                                               path, tok))
    for _ in range(a.count):
        print(api.token(ns, name, auds, expires_in=a.lifetime, alg=a.alg))
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
