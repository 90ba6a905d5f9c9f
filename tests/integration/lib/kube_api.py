"""kube_api: a test Kubernetes API server (HTTPS, 127.0.0.1 only) for ServiceAccountToken.

It issues real bound service-account JWTs (RS256 and ES256, keys generated at start) and answers
what ringmq asks, with the status codes and JSON shapes of the real API server (checked against
kubectl, see check_with_kubectl):

    POST /apis/authentication.k8s.io/v1/tokenreviews   201, status.authenticated/user/audiences;
                                                       failure: status {"user": {}, "error": ..}
                                                       with no "authenticated" (omitempty)
    GET  /api/v1/namespaces/NS/serviceaccounts/NAME     200 ServiceAccount, 404 Status NotFound
    GET  /.well-known/openid-configuration, /openid/v1/jwks  (OIDC discovery)
    GET  /api, /apis, /api/v1, /apis/authentication.k8s.io/v1 (legacy discovery, for kubectl)

Modes (api.mode = ...): "ok"; "403" (the broker lacks RBAC: 403 Forbidden Status for every
request), "403-sa" (only the ServiceAccount read is forbidden), "401"; "slow:S" (answers after S
seconds); "down" (closes every connection without an answer). require_bearer: the token the
broker must present (else 401); client_ca: the broker must present a client certificate of that
CA (make_client_cert). api.count(kind) counts requests ("tokenreview", "sa", ...).

    api = KubeAPI(workdir)                    # starts; api.stop() or process exit ends it
    api.add_sa("ns", "name", {"aio-broker-auth/group": "g1"})
    tok = api.token("ns", "name", ["aio-internal"], expires_in=3600, alg="ES256")
    api.write_kubeconfig(path, token="broker-token")

Python standard library + python3-cryptography + python3-jwt (Debian), under /usr/bin/python3.
"""

import base64
import datetime
import http.server
import ipaddress
import json
import os
import re
import socketserver
import ssl
import threading
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ISSUER = "https://kubernetes.default.svc.cluster.local"
REVIEW = "/apis/authentication.k8s.io/v1/tokenreviews"
SA_RE = re.compile(r"^/api/v1/namespaces/([a-z0-9.-]+)/serviceaccounts/([a-z0-9.-]+)$")


def _b64u(n):
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _status(code, reason, message, details=None):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details or {}, "code": code}


def _pem(obj):
    if hasattr(obj, "private_bytes"):
        return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return obj.public_bytes(serialization.Encoding.PEM)


def make_client_cert(dirpath, cn="system:serviceaccount:ringmq:broker", name="kube-client"):
    """A client CA and a client certificate signed by it (PEM files); returns
    (ca_path, cert_path, key_path). For a KubeAPI(client_ca=ca_path)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test kubernetes client CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(dirpath, "%s-%s" % (name, n)) for n in ("ca.crt", "tls.crt", "tls.key")]
    for path, obj in zip(paths, (ca, cert, key)):
        with open(path, "wb") as f:
            f.write(_pem(obj))
    return paths


def make_tls(dirpath, name="kube-api"):
    """A CA and a server certificate for 127.0.0.1 / localhost (PEM files); returns
    (ca_path, cert_path, key_path)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test kubernetes CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(dirpath, "%s-%s" % (name, n)) for n in ("ca.crt", "tls.crt", "tls.key")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass  # peers that hang up mid-handshake (a broker stopping, a timeout) are expected


class KubeAPI:
    def __init__(self, workdir, require_bearer=None, issuer=ISSUER, client_ca=None):
        self.dir = workdir
        self.issuer = issuer
        self.require_bearer = require_bearer
        self.mode = "ok"
        self.lock = threading.Lock()
        self.counts = {}
        self.sas = {}  # (ns, name) -> {"uid":..., "annotations": {...}}
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.kids = {"RS256": "rsa-" + uuid.uuid4().hex[:12], "ES256": "ec-" + uuid.uuid4().hex[:12]}
        self.ca_path, cert, key = make_tls(workdir)
        with open(self.ca_path) as f:
            self.ca_pem = f.read()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if client_ca:  # clients must present a certificate of this CA (kubeconfig client certs)
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        api = self

        class Handler(_Handler):
            pass
        Handler.api = api
        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- state ------------------------------------------------------------------------------

    def count(self, kind):
        with self.lock:
            return self.counts.get(kind, 0)

    def _bump(self, kind):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def add_sa(self, ns, name, annotations=None):
        self.sas[(ns, name)] = {"uid": str(uuid.uuid4()), "annotations": dict(annotations or {})}

    def delete_sa(self, ns, name):
        self.sas.pop((ns, name), None)

    def token(self, ns, name, audiences=("aio-internal",), expires_in=3600, alg="RS256",
              iat=None, key=None):
        """A bound service-account token (as `kubectl create token` makes), pod-bound."""
        now = int(time.time()) if iat is None else iat
        sa = self.sas.get((ns, name), {"uid": str(uuid.uuid4())})
        claims = {
            "aud": list(audiences), "exp": now + expires_in, "iat": now, "nbf": now,
            "iss": self.issuer, "jti": str(uuid.uuid4()),
            "sub": "system:serviceaccount:%s:%s" % (ns, name),
            "kubernetes.io": {
                "namespace": ns, "serviceaccount": {"name": name, "uid": sa["uid"]},
                "pod": {"name": name + "-pod", "uid": str(uuid.uuid4())},
                "node": {"name": "node-1", "uid": str(uuid.uuid4())}}}
        signer = key or (self.rsa if alg == "RS256" else self.ec)
        return jwt.encode(claims, signer, algorithm=alg, headers={"kid": self.kids[alg]})

    def jwks(self):
        rn = self.rsa.public_key().public_numbers()
        en = self.ec.public_key().public_numbers()
        return {"keys": [
            {"use": "sig", "kty": "RSA", "kid": self.kids["RS256"], "alg": "RS256",
             "n": _b64u(rn.n), "e": _b64u(rn.e)},
            {"use": "sig", "kty": "EC", "kid": self.kids["ES256"], "alg": "ES256",
             "crv": "P-256", "x": _b64u(en.x), "y": _b64u(en.y)}]}

    def write_kubeconfig(self, path, token=None, token_file=None, namespace="default",
                         client_cert=None, client_key=None):
        """client_cert / client_key: PEM files, written inline as client-*-data."""
        user = {}
        if token:
            user["token"] = token
        if token_file:
            user["tokenFile"] = token_file
        for k, f in (("client-certificate-data", client_cert), ("client-key-data", client_key)):
            if f:
                with open(f, "rb") as fh:
                    user[k] = base64.b64encode(fh.read()).decode()
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
               "clusters": [{"name": "test", "cluster": {
                   "server": self.url,
                   "certificate-authority-data": base64.b64encode(self.ca_pem.encode()).decode()}}],
               "users": [{"name": "broker", "user": user}],
               "contexts": [{"name": "test", "context": {"cluster": "test", "user": "broker",
                                                        "namespace": namespace}}]}
        with open(path, "w") as f:  # JSON is YAML
            json.dump(cfg, f, indent=1)
        return path

    # -- TokenReview ------------------------------------------------------------------------

    def review(self, spec):
        """status of a TokenReview for spec (what the API server computes)."""
        tok = spec.get("token") or ""
        want = spec.get("audiences") or []
        try:
            hdr = jwt.get_unverified_header(tok)
            alg = hdr.get("alg")
            if alg not in ("RS256", "ES256") or hdr.get("kid") != self.kids[alg]:
                raise jwt.InvalidTokenError("no key for kid")
            pub = (self.rsa if alg == "RS256" else self.ec).public_key()
            claims = jwt.decode(tok, pub, algorithms=[alg], issuer=self.issuer,
                                options={"verify_aud": False}, leeway=0)
        except jwt.ExpiredSignatureError:
            return {"user": {}, "error": "[invalid bearer token, service account token has "
                                         "expired]"}
        except jwt.InvalidTokenError:
            return {"user": {}, "error": "[invalid bearer token, square/go-jose: error in "
                                         "cryptographic primitive]"}
        aud = claims.get("aud") or []
        aud = [aud] if isinstance(aud, str) else aud
        inter = [a for a in want if a in aud] if want else aud
        if want and not inter:
            return {"user": {}, "error": "[invalid bearer token, token audiences %s is invalid "
                                         "for the target audiences %s]"
                                         % (json.dumps(aud), json.dumps(want))}
        k = claims.get("kubernetes.io", {})
        ns, name = k.get("namespace"), k.get("serviceaccount", {}).get("name")
        sa = self.sas.get((ns, name))
        if sa is None:
            return {"user": {}, "error": "[invalid bearer token, serviceaccounts \"%s\" not "
                                         "found]" % name}
        if sa["uid"] != k.get("serviceaccount", {}).get("uid"):
            return {"user": {}, "error": "[invalid bearer token, service account UID (%s) does "
                                         "not match claim (%s)]" % (sa["uid"],
                                                                    k["serviceaccount"]["uid"])}
        extra = {"authentication.kubernetes.io/pod-name": [k["pod"]["name"]],
                 "authentication.kubernetes.io/pod-uid": [k["pod"]["uid"]],
                 "authentication.kubernetes.io/credential-id": ["JTI=" + claims["jti"]],
                 "authentication.kubernetes.io/node-name": [k["node"]["name"]],
                 "authentication.kubernetes.io/node-uid": [k["node"]["uid"]]}
        return {"authenticated": True,
                "user": {"username": "system:serviceaccount:%s:%s" % (ns, name),
                         "uid": sa["uid"],
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:" + ns,
                                    "system:authenticated"],
                         "extra": extra},
                "audiences": inter}


_API_RESOURCES = {
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "serviceaccounts", "singularName": "serviceaccount", "namespaced": True,
         "kind": "ServiceAccount", "verbs": ["get", "list"], "shortNames": ["sa"]}]},
    "/apis/authentication.k8s.io/v1": {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "authentication.k8s.io/v1",
        "resources": [{"name": "tokenreviews", "singularName": "tokenreview", "namespaced": False,
                       "kind": "TokenReview", "verbs": ["create"]}]},
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "authentication.k8s.io",
         "versions": [{"groupVersion": "authentication.k8s.io/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "authentication.k8s.io/v1", "version": "v1"}}]},
}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api = None

    def log_message(self, *a):
        pass

    def _send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _gate(self, kind):
        """Counts, applies the mode; False when the request was answered here."""
        api = self.api
        api._bump(kind)
        mode = api.mode
        if mode == "down":
            self.close_connection = True
            self.connection.close()
            return False
        if mode.startswith("slow:"):
            time.sleep(float(mode[5:]))
        if mode == "401" or (api.require_bearer and self.headers.get("Authorization") !=
                             "Bearer " + api.require_bearer):
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return False
        if mode == "403" or (mode == "403-sa" and kind == "sa"):
            what = ("tokenreviews", "authentication.k8s.io", "create") if kind == "tokenreview" \
                else ("serviceaccounts", "", "get")
            self._send(403, _status(403, "Forbidden",
                                    "%s%s is forbidden: User \"system:serviceaccount:ringmq:"
                                    "broker\" cannot %s resource \"%s\" in API group \"%s\""
                                    % (what[0], "." + what[1] if what[1] else "", what[2],
                                       what[0], what[1]),
                                    {"group": what[1], "kind": what[0]}))
            return False
        return True

    def do_GET(self):
        path = self.path.split("?")[0]
        api = self.api
        m = SA_RE.match(path)
        if m:
            if not self._gate("sa"):
                return
            ns, name = m.groups()
            sa = api.sas.get((ns, name))
            if sa is None:
                return self._send(404, _status(404, "NotFound",
                                               "serviceaccounts \"%s\" not found" % name,
                                               {"name": name, "kind": "serviceaccounts"}))
            md = {"name": name, "namespace": ns, "uid": sa["uid"], "resourceVersion": "1",
                  "creationTimestamp": "2026-01-01T00:00:00Z"}
            if sa["annotations"]:
                md["annotations"] = sa["annotations"]
            return self._send(200, {"kind": "ServiceAccount", "apiVersion": "v1",
                                    "metadata": md})
        if path == "/.well-known/openid-configuration":
            if self._gate("discovery"):
                self._send(200, {"issuer": api.issuer, "jwks_uri": api.url + "/openid/v1/jwks",
                                 "response_types_supported": ["id_token"],
                                 "subject_types_supported": ["public"],
                                 "id_token_signing_alg_values_supported": ["ES256", "RS256"]})
            return
        if path == "/openid/v1/jwks":
            if self._gate("jwks"):
                self._send(200, api.jwks())
            return
        if path in _API_RESOURCES:
            api._bump("api-discovery")
            return self._send(200, _API_RESOURCES[path])
        api._bump("other")
        self._send(404, _status(404, "NotFound", "the server could not find the requested "
                                "resource", {}))

    def do_POST(self):
        path = self.path.split("?")[0]
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if path != REVIEW:
            self.api._bump("other")
            return self._send(404, _status(404, "NotFound", "the server could not find the "
                                           "requested resource", {}))
        if not self._gate("tokenreview"):
            return
        try:
            body = json.loads(raw)
            spec = body["spec"]
        except (ValueError, KeyError, TypeError):
            return self._send(400, _status(400, "BadRequest", "invalid TokenReview"))
        out = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
               "metadata": {"creationTimestamp": None}, "spec": spec,
               "status": self.api.review(spec)}
        self._send(201, out)
