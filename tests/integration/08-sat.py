#!/usr/bin/python3
"""08 ServiceAccountToken authentication against a test Kubernetes API server
(lib/kube_api.py: real RS256/ES256 bound service-account JWTs, TokenReview and ServiceAccount
answers in the real shapes): v5 K8S-SAT method and v3.1.1 K8S-SAT user name, wrong audience,
expired token, unknown service account, attributes from annotations (legacy prefix too), expiry
disconnect without DISCONNECT and with the will, API down (0x88 for new tokens, cached ones
still connect), RBAC 403 (0x88 and the log line), single flight (100 CONNECTs with one token ->
1 TokenReview), negative cache, kubeconfig and in-cluster sources, no source at all, the
chain order with Custom and X509 on one port, and the JWKS fallback while the API is down. The tokens never reach the log. ringmq only."""

import functools
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import authsrv  # noqa: E402

ONLY = "ServiceAccountToken authentication is a ringmq feature"
BROKER_TOKEN = "broker-sa-token-0123456789"
NS = "aio"

try:
    import kube_api  # noqa: E402  (python3-cryptography, python3-jwt)
except ImportError as _e:
    kube_api = None
    _IMPORT_ERROR = str(_e)


class Env:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rq-sat-")
        rq.on_cleanup(lambda: subprocess.run(["rm", "-rf", self.dir]))
        self.api = kube_api.KubeAPI(self.dir, require_bearer=BROKER_TOKEN)
        rq.on_cleanup(self.api.stop)
        self.api.add_sa(NS, "client-a", {"aio-broker-auth/group": "g1",
                                         "aio-broker-auth/floor": "3",
                                         "kubectl.kubernetes.io/last-applied-configuration": "{}"})
        self.api.add_sa(NS, "legacy", {"aio-mq-broker-auth/group": "old",
                                       "aio-broker-auth/room": "5"})
        self.api.add_sa(NS, "bare")
        self.kubeconfig = self.api.write_kubeconfig(os.path.join(self.dir, "kubeconfig"),
                                                    token=BROKER_TOKEN)
        self.tokens = []

    def token(self, name="client-a", **kw):
        t = self.api.token(NS, name, **kw)
        self.tokens.append(t)
        return t


env = fixtures.once(Env)


SAT = ("  - method: ServiceAccountToken\n    serviceAccountTokenSettings:\n"
       "      audiences: [aio-internal, my-audience]\n")


def broker_yaml(e, ports, kube=None, chain="", auth=""):
    """kube: spec.ringmq.kubernetes keys over the defaults (an explicit kubeconfig, no
    in-cluster directory); a value None drops the key. auth: more spec.ringmq.auth keys."""
    k = {"serviceAccountDir": os.path.join(e.dir, "no-such-dir"), "kubeconfig": e.kubeconfig}
    k.update(kube or {})
    y = ("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\n"
         "metadata: {name: broker}\nspec:\n  diagnostics: {logs: {level: debug}}\n  ringmq:\n"
         "    connectTimeoutSeconds: 10\n    auth: {requestTimeoutSeconds: 4%s}\n"
         "    kubernetes:\n%s" % (auth, "".join("      %s: \"%s\"\n" % kv for kv in k.items()
                                                 if kv[1] is not None)))
    y += ("---\napiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\n"
          "metadata: {name: listeners}\nspec:\n  ports:\n"
          "  - {port: %(plain)d, bindAddress: 127.0.0.1}\n"
          "  - {port: %(sat)d, bindAddress: 127.0.0.1, authenticationRef: sat}\n" % ports)
    y += chain
    y += authsrv.authn("sat", SAT)
    return y


def start(kube=None, chain="", extra_ports=()):
    e = env()
    ports = {k: rq.free_port() for k in ("plain", "sat") + tuple(extra_ports)}
    b = rq.start_broker(broker_yaml(e, ports, kube, chain))
    b.ports = ports
    check(rq.port_open(ports["sat"], 5.0), "SAT port listening")
    return b


def fixture():
    return start()


expect_log = functools.partial(fixtures.expect_log, timeout=10.0)


def sat_connect(b, token, version=5, client_id="", will=None, port=None):
    c = rq.RawClient(port or b.ports["sat"], version=version, timeout=15.0)
    if version == 5:
        ack = c.connect(client_id=client_id, will=will,
                        props={"authentication_method": "K8S-SAT",
                               "authentication_data": token.encode()})
    else:
        ack = c.connect(client_id=client_id or "v3-client", username="K8S-SAT", password=token,
                        will=will)
    return c, ack


def no_tokens_logged(b):
    log = b.log()
    for t in env().tokens + [BROKER_TOKEN]:
        check(t not in log, "a token appears in the broker log")
        check(t.split(".")[-1] not in log, "a token's signature appears in the broker log")


# ---------------------------------------------------------------------------------------------

@case(ringmq_only=ONLY)
def v5_method_and_v311_username(b):
    e = env()
    check(b.wait_log(r"ServiceAccountToken: Kubernetes API from kubeconfig %s, context test"
                     % e.kubeconfig, 0, 5), "startup log names the kubeconfig source")
    for v, alg in ((5, "RS256"), (4, "ES256")):
        mark = b.log_mark()
        c, ack = sat_connect(b, e.token(alg=alg), version=v, client_id="sat-%d" % v)
        check_eq(ack.rc, 0, "v%d CONNACK (%s token)" % (v, alg))
        expect_log(b, mark, r'authenticated by ServiceAccountToken as "system:serviceaccount:aio:'
                   r'client-a": attributes (group=g1, floor=3|floor=3, group=g1); expires',
                   "v%d principal and attributes" % v)
        c.publish("t/sat", b"x", qos=1)
        c.close()
    # a user name that only starts with K8S-SAT is relevant too
    c = rq.RawClient(b.ports["sat"], version=4, timeout=15.0)
    check_eq(c.connect(client_id="k8s-sat-x", username="K8S-SAT-edge", password=e.token()).rc, 0,
             "user name K8S-SAT-edge")
    c.close()
    no_tokens_logged(b)


@case(ringmq_only=ONLY)
def not_relevant_credentials_denied(b):
    for v, want in ((5, 0x87), (4, 5)):
        c = rq.RawClient(b.ports["sat"], version=v, timeout=10.0)
        check_eq(c.connect(username="alice", password="pw").rc, want, "v%d not SAT" % v)


@case(ringmq_only=ONLY)
def wrong_audience_expired_unknown_sa(b):
    e = env()
    cases = [("wrong audience", e.token(audiences=["someone-else"]), r"token audiences"),
             ("expired", e.token(expires_in=-30), r"expired"),
             ("unknown service account", e.token(name="ghost"), r"serviceaccounts .*ghost.* not found"),
             ("not a JWT", "not-a-token", r"invalid bearer token")]
    for what, tok, pattern in cases:
        for v, want in ((5, 0x87), (4, 5)):
            mark = b.log_mark()
            c, ack = sat_connect(b, tok, version=v)
            check_eq(ack.rc, want, "%s v%d" % (what, v))
            c.expect_closed()
            expect_log(b, mark, r"authentication failed \(ServiceAccountToken\): TokenReview: "
                       r"not authenticated: .*(%s)" % pattern, what)
    no_tokens_logged(b)


@case(ringmq_only=ONLY)
def legacy_annotations_and_none(b):
    e = env()
    mark = b.log_mark()
    c, ack = sat_connect(b, e.token(name="legacy"))
    check_eq(ack.rc, 0, "legacy CONNACK")
    expect_log(b, mark, r'as "system:serviceaccount:aio:legacy": attributes (room=5, group=old|'
               r'group=old, room=5)', "legacy prefix attributes")
    c.close()
    mark = b.log_mark()
    c, ack = sat_connect(b, e.token(name="bare"))
    check_eq(ack.rc, 0, "bare CONNACK")
    expect_log(b, mark, r'as "system:serviceaccount:aio:bare": no attributes', "no annotations")
    c.close()


@case(ringmq_only=ONLY)
def expiry_disconnects_and_publishes_will(b):
    e = env()
    w = rq.connected(b.ports["plain"], "sat-will-watcher")
    w.subscribe("will/sat", qos=1)
    c, ack = sat_connect(b, e.token(expires_in=4), client_id="sat-expiring",
                         will={"topic": "will/sat", "payload": b"gone", "qos": 1})
    check_eq(ack.rc, 0, "CONNACK")
    r = c.expect_closed(timeout=20)
    check(r.closed and r.disconnect is None, "closed without DISCONNECT at exp: %r" % r)
    m = w.wait_for(rq.PUBLISH, timeout=10)
    check_eq(m.payload, b"gone", "will payload")


@case(ringmq_only=ONLY)
def api_down_new_tokens_unavailable_cached_connect(b):
    e = env()
    cached = e.token()
    c, ack = sat_connect(b, cached)
    check_eq(ack.rc, 0, "first CONNACK while the API is up")
    c.close()
    e.api.mode = "down"
    try:
        n = e.api.count("tokenreview")
        c, ack = sat_connect(b, cached, client_id="cached-while-down")
        check_eq(ack.rc, 0, "cached token while the API is down")
        c.close()
        check_eq(e.api.count("tokenreview"), n, "no TokenReview for a cached token")
        for v, want in ((5, 0x88), (4, 3)):
            mark = b.log_mark()
            c, ack = sat_connect(b, e.token(), version=v)
            check_eq(ack.rc, want, "new token while the API is down, v%d" % v)
            expect_log(b, mark, r"ServiceAccountToken\): TokenReview: Kubernetes API unreachable",
                       "unreachable log")
    finally:
        e.api.mode = "ok"
    # transport errors are not cached: the same kind of new token works at once
    c, ack = sat_connect(b, e.token())
    check_eq(ack.rc, 0, "after the API is back")
    c.close()


@case(ringmq_only=ONLY)
def api_too_slow_is_server_unavailable(b):
    """An API server slower than requestTimeoutSeconds (4): 0x88, never an allow."""
    e = env()
    e.api.mode = "slow:7"
    try:
        mark = b.log_mark()
        c, ack = sat_connect(b, e.token())
        check_eq(ack.rc, 0x88, "CONNACK when the TokenReview times out")
        expect_log(b, mark, r"ServiceAccountToken\): TokenReview: Kubernetes API unreachable: "
                   r"Timeout", "timeout log")
    finally:
        e.api.mode = "ok"


@case(ringmq_only=ONLY)
def rbac_forbidden(b):
    e = env()
    e.api.mode = "403"
    try:
        for v, want in ((5, 0x88), (4, 3)):
            mark = b.log_mark()
            c, ack = sat_connect(b, e.token(), version=v)
            check_eq(ack.rc, want, "v%d with RBAC missing" % v)
            expect_log(b, mark, r"refused the broker \(HTTP 403", "the client's log line")
        check(b.wait_log(r"error .*ServiceAccountToken: the Kubernetes API refused the broker's "
                         r"own request \(HTTP 403\): it may not create tokenreviews.*ClusterRole "
                         r"system:auth-delegator", 0, 5), "RBAC error log line")
        e.api.mode = "403-sa"
        e.api.add_sa(NS, "rbac-sa")  # annotations not cached yet
        c, ack = sat_connect(b, e.token(name="rbac-sa"))
        check_eq(ack.rc, 0x88, "ServiceAccount read forbidden")
    finally:
        e.api.mode = "ok"


@case(ringmq_only=ONLY)
def single_flight_100_connects_one_review(b):
    e = env()
    tok = e.token(name="legacy")
    e.api.mode = "slow:1.5"
    try:
        n = e.api.count("tokenreview")
        cs = []
        for i in range(100):
            c = rq.RawClient(b.ports["sat"], version=5, timeout=30.0)
            c.send_connect(client_id="flight-%d" % i,
                           props={"authentication_method": "K8S-SAT",
                                  "authentication_data": tok.encode()})
            cs.append(c)
        for c in cs:
            ack = c.recv_packet(30)
            check(ack is not None and ack.type == rq.CONNACK and ack.rc == 0, "CONNACK %r" % ack)
            c.close()
        check_eq(e.api.count("tokenreview") - n, 1, "TokenReviews for 100 CONNECTs of one token")
    finally:
        e.api.mode = "ok"


@case(ringmq_only=ONLY)
def service_account_read_once_for_many_tokens(b):
    """20 pods of one service account (20 distinct tokens) connecting at once: 20 TokenReviews,
    one ServiceAccount read (single flight + the 60 s annotation cache)."""
    e = env()
    e.api.add_sa(NS, "fleet", {"aio-broker-auth/role": "sensor"})
    toks = [e.token(name="fleet") for _ in range(20)]
    n_tr, n_sa = e.api.count("tokenreview"), e.api.count("sa")
    e.api.mode = "slow:0.5"
    try:
        cs = []
        for i, t in enumerate(toks):
            c = rq.RawClient(b.ports["sat"], version=5, timeout=30.0)
            c.send_connect(client_id="fleet-%d" % i,
                           props={"authentication_method": "K8S-SAT",
                                  "authentication_data": t.encode()})
            cs.append(c)
        for c in cs:
            ack = c.recv_packet(30)
            check(ack is not None and ack.type == rq.CONNACK and ack.rc == 0, "CONNACK %r" % ack)
            c.close()
    finally:
        e.api.mode = "ok"
    check_eq(e.api.count("tokenreview") - n_tr, 20, "TokenReviews for 20 distinct tokens")
    check_eq(e.api.count("sa") - n_sa, 1, "ServiceAccount reads for 20 pods of one account")


@case(ringmq_only=ONLY)
def cached_token_follows_annotation_changes():
    """A token stays valid from the cache until exp, but its attributes follow the service
    account's annotations (annotationCacheSeconds: 1): after a change, a reconnect with the same
    token soon gets the new attributes without a new TokenReview; a deleted account denies."""
    e = env()
    e.api.add_sa(NS, "mutable", {"aio-broker-auth/level": "one"})
    ports = {"plain": rq.free_port(), "sat": rq.free_port()}
    b = rq.start_broker(broker_yaml(e, ports, auth=", annotationCacheSeconds: 1"))
    b.ports = ports
    try:
        tok = e.token(name="mutable")
        mark = b.log_mark()
        c, ack = sat_connect(b, tok)
        check_eq(ack.rc, 0, "first CONNACK")
        expect_log(b, mark, r"attributes level=one", "first attributes")
        c.close()
        n = e.api.count("tokenreview")
        e.api.sas[(NS, "mutable")]["annotations"] = {"aio-broker-auth/level": "two"}
        deadline, seen = time.monotonic() + 15, False
        while not seen and time.monotonic() < deadline:
            time.sleep(0.5)
            mark = b.log_mark()
            c, ack = sat_connect(b, tok)
            check_eq(ack.rc, 0, "CONNACK from the cache")
            c.close()
            seen = b.wait_log(r"attributes level=two; expires .* \(cached\)", mark, 2) is not None
        check(seen, "the new annotation reaches a cached token (%d ServiceAccount reads)" % e.api.count("sa"))
        check_eq(e.api.count("tokenreview"), n, "no TokenReview for the cached token")
        e.api.delete_sa(NS, "mutable")
        deadline, rc = time.monotonic() + 15, 0
        while rc == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
            c, ack = sat_connect(b, tok)
            rc = ack.rc
            c.close()
        check_eq(rc, 0x87, "the account deleted: refused")
    finally:
        check_eq(b.stop(), 0, "exit code after SIGTERM")


@case(ringmq_only=ONLY)
def negative_result_cached(b):
    e = env()
    tok = e.token(audiences=["nobody"])
    n = e.api.count("tokenreview")
    for i in range(3):
        c, ack = sat_connect(b, tok)
        check_eq(ack.rc, 0x87, "refused %d" % i)
    check_eq(e.api.count("tokenreview") - n, 1, "TokenReviews for a refused token asked 3 times")


@case(ringmq_only=ONLY)
def kubeconfig_from_environment():
    e = env()
    os.environ["KUBECONFIG"] = e.kubeconfig
    try:
        b = start(kube={"kubeconfig": None, "context": "test"})
    finally:
        del os.environ["KUBECONFIG"]
    try:
        check(b.wait_log(r"Kubernetes API from kubeconfig %s, context test" % e.kubeconfig, 0, 5),
              "source: $KUBECONFIG")
        c, ack = sat_connect(b, e.token())
        check_eq(ack.rc, 0, "CONNACK")
        c.close()
    finally:
        check_eq(b.stop(), 0, "exit code after SIGTERM")


@case(ringmq_only=ONLY)
def kubeconfig_client_certificate():
    """A kubeconfig user with client-certificate-data / client-key-data (no token): the broker
    presents that certificate to an API server that requires one."""
    e = env()
    ca, crt, key = kube_api.make_client_cert(e.dir)
    api = kube_api.KubeAPI(e.dir, client_ca=ca, issuer=kube_api.ISSUER)
    rq.on_cleanup(api.stop)
    api.add_sa(NS, "mtls-client", {"aio-broker-auth/via": "mtls"})
    kc = api.write_kubeconfig(os.path.join(e.dir, "kc-mtls"), client_cert=crt, client_key=key)
    b = start(kube={"kubeconfig": kc})
    try:
        tok = api.token(NS, "mtls-client")
        e.tokens.append(tok)
        mark = b.log_mark()
        c, ack = sat_connect(b, tok)
        check_eq(ack.rc, 0, "CONNACK through a client-certificate kubeconfig")
        expect_log(b, mark, r"attributes via=mtls", "attributes read with the client cert")
        c.close()
        check_eq(api.count("tokenreview"), 1, "TokenReviews at the mTLS API server")
    finally:
        check_eq(b.stop(), 0, "exit code after SIGTERM")
    check(open(key).read().split("\n")[1] not in b.log(), "the client key is not logged")


@case(ringmq_only=ONLY)
def in_cluster_environment_and_token_rotation():
    """Token file + KUBERNETES_SERVICE_HOST/PORT: in-cluster wins over a kubeconfig; the broker
    re-reads its token file when the kubelet rotates it."""
    e = env()
    sa = os.path.join(e.dir, "sa")
    os.makedirs(sa, exist_ok=True)
    with open(os.path.join(sa, "token"), "w") as f:
        f.write(BROKER_TOKEN + "\n")
    with open(os.path.join(sa, "ca.crt"), "w") as f:
        f.write(e.api.ca_pem)
    os.environ["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
    os.environ["KUBERNETES_SERVICE_PORT"] = str(e.api.port)
    try:
        b = start(kube={"serviceAccountDir": sa, "kubeconfig": None})
    finally:
        del os.environ["KUBERNETES_SERVICE_HOST"]
        del os.environ["KUBERNETES_SERVICE_PORT"]
    try:
        check(b.wait_log(r"Kubernetes API from in-cluster \(https://127.0.0.1:%d, token %s/token"
                         % (e.api.port, sa), 0, 5), "source: in-cluster")
        c, ack = sat_connect(b, e.token())
        check_eq(ack.rc, 0, "CONNACK in-cluster")
        c.close()
        rotated = "rotated-broker-token-42"
        tmp = os.path.join(sa, "token.new")
        with open(tmp, "w") as f:
            f.write(rotated)
        os.rename(tmp, os.path.join(sa, "token"))  # as the kubelet does: atomic replace
        e.api.require_bearer = rotated
        deadline = time.monotonic() + 10
        rc = None
        while time.monotonic() < deadline:
            c, ack = sat_connect(b, e.token())
            c.close()
            rc = ack.rc
            if rc == 0:
                break
            time.sleep(0.5)
        check_eq(rc, 0, "CONNACK after the broker's token rotated")
        check(rotated not in b.log(), "the broker's token is not logged")
    finally:
        e.api.require_bearer = BROKER_TOKEN
        check_eq(b.stop(), 0, "exit code after SIGTERM")


@case(ringmq_only=ONLY)
def no_kubernetes_source_is_an_error():
    e = env()
    ports = {"plain": rq.free_port(), "sat": rq.free_port()}
    d = tempfile.mkdtemp(dir=e.dir)
    path = os.path.join(d, "ringmq.yaml")
    with open(path, "w") as f:
        f.write(broker_yaml(e, ports, kube={"serviceAccountDir": d + "/none", "kubeconfig": None}))
    env_ = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG",
                                                           "KUBERNETES_SERVICE_HOST")}
    env_["HOME"] = d
    r = subprocess.run([rq.broker_bin(), "-c", path], capture_output=True, text=True, timeout=20,
                       env=env_)
    out = r.stdout + r.stderr
    check(r.returncode != 0 and "ServiceAccountToken needs the Kubernetes API and none was found"
          in out and "no kubeconfig at %s/.kube/config" % d in out, "error: %r" % out[-800:])
    r = subprocess.run([rq.broker_bin(), "-c", path, "--check-config"], capture_output=True,
                       text=True, timeout=20, env=env_)
    check(r.returncode != 0 and "none was found" in r.stderr, "--check-config: %r" % r.stderr)
    env_["KUBECONFIG"] = e.kubeconfig
    r = subprocess.run([rq.broker_bin(), "-c", path, "--check-config"], capture_output=True,
                       text=True, timeout=20, env=env_)
    check(r.returncode == 0 and "Kubernetes API from kubeconfig %s" % e.kubeconfig in r.stdout,
          "--check-config with $KUBECONFIG: %r" % (r.stdout + r.stderr))


@case(ringmq_only=ONLY)
def chain_order_with_custom_and_x509():
    """[X509, ServiceAccountToken, Custom] on a TLS port: a client certificate -> X509 decides;
    K8S-SAT -> SAT decides (a refused token is not passed on to Custom); anything else -> Custom
    (its server is down: not relevant, nothing else -> 0x87). [Custom, ServiceAccountToken]:
    Custom's server down falls through to SAT."""
    import certs
    if not certs.openssl_available():
        raise rq.Skip("the openssl command line tool is missing")
    e = env()
    f = certs.CertFactory()
    srv_root = f.ca("/CN=SAT Test Server Root", name="srv-root")
    srv = f.server(srv_root, name="srv")
    client_ca = f.ca("/CN=SAT Client CA", name="client-ca")
    dev = f.client("/CN=device-1", client_ca, name="dev")
    dead = "https://127.0.0.1:%d" % rq.free_port()
    custom = authsrv.custom_method(dead, ca_configmap="client-ca")
    x509 = "  - method: X509\n    x509Settings: {trustedClientCaCert: client-ca}\n"
    ports = {"plain": rq.free_port(), "sat": rq.free_port(), "mixed": rq.free_port(),
             "custom_first": rq.free_port()}
    chain = ("  - port: %(mixed)d\n    bindAddress: 127.0.0.1\n    authenticationRef: mixed\n"
             "    tls: {mode: Manual, manual: {secretRef: server-cert}}\n"
             "  - {port: %(custom_first)d, bindAddress: 127.0.0.1, authenticationRef: cfirst}\n"
             % ports)
    y = broker_yaml(e, ports, chain=chain)
    y += authsrv.authn("mixed", x509 + SAT + custom) + authsrv.authn("cfirst", custom + SAT)
    y += certs.secret_yaml("server-cert", srv.chain_pem, srv.key_pem)
    y += certs.configmap_yaml("client-ca", {"ca.crt": client_ca.pem})
    b = rq.start_broker(y)
    try:
        tls = rq.tls_context(srv_root.cert, cert=dev.chain, key=dev.key)
        mark = b.log_mark()
        c = rq.RawClient(ports["mixed"], tls=tls, timeout=15)
        check_eq(c.connect(client_id="dev", props={"authentication_method": "K8S-SAT",
                                                   "authentication_data": e.token().encode()}).rc,
                 0, "certificate + token: X509")
        expect_log(b, mark, r"authenticated by X509", "X509 decided")
        c.close()
        tls = rq.tls_context(srv_root.cert)
        mark = b.log_mark()
        c = rq.RawClient(ports["mixed"], tls=tls, timeout=15)
        check_eq(c.connect(client_id="sat", props={"authentication_method": "K8S-SAT",
                                                   "authentication_data": e.token().encode()}).rc,
                 0, "token without certificate: SAT")
        expect_log(b, mark, r"authenticated by ServiceAccountToken", "SAT decided")
        c.close()
        mark = b.log_mark()
        c = rq.RawClient(ports["mixed"], tls=tls, timeout=15)
        check_eq(c.connect(props={"authentication_method": "K8S-SAT",
                                  "authentication_data": e.token(expires_in=-5).encode()}).rc,
                 0x87, "refused token: SAT decides, Custom not asked")
        expect_log(b, mark, r"failed \(ServiceAccountToken\)", "SAT refused")
        c = rq.RawClient(ports["mixed"], tls=tls, timeout=15)
        check_eq(c.connect(username="alice", password="pw").rc, 0x87, "neither: Custom down")
        c = rq.RawClient(ports["custom_first"], timeout=15)
        mark = b.log_mark()
        check_eq(c.connect(props={"authentication_method": "K8S-SAT",
                                  "authentication_data": e.token().encode()}).rc,
                 0, "Custom down falls through to SAT")
        expect_log(b, mark, r"authenticated by ServiceAccountToken", "SAT after Custom")
        c.close()
    finally:
        check_eq(b.stop(), 0, "exit code after SIGTERM")


@case(ringmq_only=ONLY)
def sigterm_with_reviews_pending():
    """SIGTERM while CONNECTs wait on a slow API server: the pool answers them (Server
    unavailable), is joined before the shards are freed, and the broker exits 0 promptly."""
    e = env()
    b = start()
    e.api.mode = "slow:3"
    try:
        cs = []
        for i in range(5):
            c = rq.RawClient(b.ports["sat"], timeout=10)
            c.send_connect(client_id="term-%d" % i,
                           props={"authentication_method": "K8S-SAT",
                                  "authentication_data": e.token().encode()})
            cs.append(c)
        time.sleep(0.5)
        t0 = time.monotonic()
        check_eq(b.stop(), 0, "exit code after SIGTERM")
        check(time.monotonic() - t0 < 2.8, "stopped before the slow answers")
    finally:
        e.api.mode = "ok"


@case(ringmq_only=ONLY)
def jwks_fallback_while_api_down():
    """localVerification: Fallback: the broker fetches discovery + JWKS at start; while the API
    is down a good RS256 or ES256 token connects (verified locally, not cached), a forged,
    expired or wrong-audience one is refused; the port without Fallback answers 0x88."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    e = env()
    ports = {"plain": rq.free_port(), "sat": rq.free_port(), "fallback": rq.free_port()}
    chain = ("  - {port: %(fallback)d, bindAddress: 127.0.0.1, authenticationRef: fallback}\n"
             % ports)
    y = broker_yaml(e, ports, chain=chain)
    y += authsrv.authn("fallback", SAT + "      ringmq: {localVerification: Fallback}\n")
    b = rq.start_broker(y)
    try:
        check(b.wait_log(r"warn .*localVerification: Fallback.*deleted Pod or ServiceAccount", 0,
                         5), "the trade-off is logged")
        check(b.wait_log(r"2 issuer keys of https://kubernetes.default.svc.cluster.local for "
                         r"local verification", 0, 10), "keys fetched at start")
        check(e.api.count("jwks") >= 1 and e.api.count("discovery") >= 1, "discovery + JWKS")
        good_rs, good_es = e.token(alg="RS256"), e.token(alg="ES256")
        forged = e.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
        expired = e.token(expires_in=-120)
        wrong = e.token(audiences=["other"])
        e.api.mode = "down"
        try:
            for tok, what in ((good_rs, "RS256"), (good_es, "ES256")):
                mark = b.log_mark()
                c, ack = sat_connect(b, tok, port=ports["fallback"])
                check_eq(ack.rc, 0, "%s verified locally" % what)
                expect_log(b, mark, r"authenticated by ServiceAccountToken as \"system:"
                           r"serviceaccount:aio:client-a\".*verified locally", what)
                c.close()
            for tok, what, why in ((forged, "forged", "bad signature"),
                                   (expired, "expired", "expired"),
                                   (wrong, "wrong audience", "not for any configured audience")):
                mark = b.log_mark()
                c, ack = sat_connect(b, tok, port=ports["fallback"])
                check_eq(ack.rc, 0x87, what)
                expect_log(b, mark, r"TokenReview unreachable; verified locally: %s" % why, what)
            c, ack = sat_connect(b, e.token(), port=ports["sat"])
            check_eq(ack.rc, 0x88, "the port without Fallback")
        finally:
            e.api.mode = "ok"
        n = e.api.count("tokenreview")
        c, ack = sat_connect(b, good_rs, port=ports["fallback"])
        check_eq(ack.rc, 0, "API back")
        c.close()
        check_eq(e.api.count("tokenreview") - n, 1, "a local verification is not cached")
        no_tokens_logged(b)
    finally:
        check_eq(b.stop(), 0, "exit code after SIGTERM")


@case(ringmq_only=ONLY)
def reload_brings_sat_and_bad_source_keeps_running():
    """A broker started without ServiceAccountToken resolves the Kubernetes API and starts its
    pool on the SIGHUP that brings the method; a reload whose kubeconfig is missing is refused
    and the running configuration stays."""
    import signal as _signal
    e = env()
    ports = {"plain": rq.free_port(), "sat": rq.free_port()}
    full = broker_yaml(e, ports)
    bare = full.replace(", authenticationRef: sat}", "}")
    b = rq.start_broker(bare)
    b.ports = ports
    try:
        check(b.wait_log(r"Kubernetes API from", 0, 0.5) is None, "no SAT at start")
        cfg = b.argv[b.argv.index("-c") + 1]
        with open(cfg, "w") as f:
            f.write(full)
        mark = b.log_mark()
        b.signal(_signal.SIGHUP)
        expect_log(b, mark, r"ServiceAccountToken: Kubernetes API from kubeconfig", "source")
        expect_log(b, mark, r"reload: generation", "reload done")
        c, ack = sat_connect(b, e.token())
        check_eq(ack.rc, 0, "SAT after the reload")
        c.close()
        with open(cfg, "w") as f:
            f.write(full.replace(e.kubeconfig, e.kubeconfig + ".missing"))
        mark = b.log_mark()
        b.signal(_signal.SIGHUP)
        expect_log(b, mark, r"reload refused, the running configuration stays: kubeconfig "
                   r".*\.missing: No such file or directory", "bad source refused")
        c, ack = sat_connect(b, e.token())
        check_eq(ack.rc, 0, "SAT still works")
        c.close()
    finally:
        check_eq(b.stop(), 0, "exit code after SIGTERM")


@case(ringmq_only=ONLY)
def tokens_never_logged(b):
    no_tokens_logged(b)


if __name__ == "__main__":
    if kube_api is None:
        print("SKIP all: %s (python3-cryptography and python3-jwt are needed)" % _IMPORT_ERROR)
        sys.exit(rq.SKIP_RC)
    rq.run(fixture, timeout=300)
