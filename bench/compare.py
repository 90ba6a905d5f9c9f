#!/usr/bin/env python3
"""compare.py: ringmq against mosquitto (and any other broker) on loopback, as ratios.

One command starts ringmq and Debian's mosquitto on free 127.0.0.1 ports with equivalent
settings, runs the same ringbench scenarios against each broker (alternating: scenario by
scenario, and the order flips on each repeat), prints a table with ratios, and writes JSON and
an SVG chart (gnuplot) into --out.

    python3 bench/compare.py                 # the full comparison (about 7 minutes)
    python3 bench/compare.py --smoke         # a few seconds: the test suite runs this
    python3 bench/compare.py --broker emqx=127.0.0.1:1885:4242   # add a broker you started

TLS scenarios (fanin-tls, connect-tls, connect-tls-x509) use certificates made at run time with
the openssl command line tool in the run's temporary directory; both brokers then get two more
listeners with the same server certificate: TLS, and TLS with X.509 client authentication.

Custom authentication scenarios (connect-custom-cached, connect-custom) run against ringmq only
(mosquitto has no Custom method): tools/custom-auth-server.py is started over HTTPS with the
same certificates, ringmq gets one more plain-TCP listener whose chain is Custom, and the auth
server's own CPU time is read from /proc around each storm.

Authorization scenarios (pairwise-custom, pairwise-authz and their -cpu variants at a fixed
40,000 msg/s; ringmq only) use the same auth server and user: ringmq's Custom listener, and one
more with the same chain and a 100-rule BrokerAuthorization; their numbers are compared with each
other in a table of their own (AUTHZ_ROWS).

What it does not do: build anything (pass --ringmq / --ringbench or use build-bench/), tune the
machine, or target anything but 127.0.0.0/8. Only the Python standard library is used.
"""

import argparse
import datetime
import json
import math
import os
import pwd
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# ---------------------------------------------------------------------------------------------
# Scenarios: (name, description, ringbench arguments[, listener]). "--max" scenarios search the
# maximum sustainable rate. The listener is "plain" (default), "tls" (TLS, the server verified
# against the run's CA), "x509" (the same plus a client certificate: X.509 authentication),
# "custom" (plain TCP, Custom authentication through tools/custom-auth-server.py) or "authz" (the
# same plus a 100-rule BrokerAuthorization); the last two exist on ringmq only.

FULL = [
    # connect first, on fresh brokers, so that RSS is not inflated by earlier runs
    ("connect", "connect storm + 10,000 idle connections",
     ["--connect", "10000", "--concurrency", "64", "--hold", "3", "--duration", "120"]),
    # the same storm through the Custom method (ringmq only): every CONNECT has the same
    # username and password; "cached": the auth server's verdicts carry Cache-Control, so only
    # the first CONNECTs (those in flight before the first answer) make a request; "uncached":
    # no Cache-Control, one HTTPS request per CONNECT over the pool's kept-alive connections
    ("connect-custom-cached", "connect storm through Custom auth, cached verdict, 10,000",
     ["--connect", "10000", "--concurrency", "64", "--hold", "3", "--duration", "120"],
     "custom"),
    ("connect-custom", "connect storm through Custom auth, one request per CONNECT, 10,000",
     ["--connect", "10000", "--concurrency", "64", "--hold", "3", "--duration", "120"],
     "custom"),
    ("fanin-qos0", "fan-in 8->1, QoS 0, 64 B",
     ["--max", "--pattern", "fanin", "--pubs", "8", "--subs", "1", "--qos", "0"]),
    ("fanout-qos0", "fan-out 1->100, QoS 0, 64 B",
     ["--max", "--pattern", "fanout", "--pubs", "1", "--subs", "100", "--qos", "0"]),
    ("pairwise-qos0", "pairwise 100->100, QoS 0, 64 B",
     ["--max", "--pattern", "pairwise", "--pubs", "100", "--subs", "100", "--qos", "0"]),
    ("fanin-qos1", "fan-in 8->1, QoS 1, 64 B",
     ["--max", "--pattern", "fanin", "--pubs", "8", "--subs", "1", "--qos", "1"]),
    ("shared-qos0", "shared 8->$share x4, QoS 0, MQTT 5",
     ["--max", "--pattern", "shared", "--pubs", "8", "--subs", "4", "--qos", "0",
      "--mqtt", "5"]),
    ("latency-qos0", "fan-in 8->1, QoS 0 at 10,000 msg/s",
     ["--rate", "10000", "--duration", "10", "--pattern", "fanin", "--pubs", "8", "--subs", "1"]),
    ("latency-qos1", "fan-in 8->1, QoS 1 at 10,000 msg/s",
     ["--rate", "10000", "--duration", "10", "--pattern", "fanin", "--pubs", "8", "--subs", "1",
      "--qos", "1"]),
    # a moderate load as brokers see in the field: 100 publishers, each to its own subscriber,
    # 20 msg/s each, every message acknowledged both ways (publishers wait for PUBACK)
    ("pairwise-qos1-2k", "pairwise 100->100, QoS 1 at 2,000 msg/s",
     ["--rate", "2000", "--duration", "10", "--pattern", "pairwise", "--pubs", "100", "--subs",
      "100", "--qos", "1"]),
    ("fanin-tls", "fan-in 8->1, QoS 0, 64 B, over TLS",
     ["--max", "--pattern", "fanin", "--pubs", "8", "--subs", "1", "--qos", "0"], "tls"),
    # A TLS handshake costs ringbench (OpenSSL 3.0) 0.5-0.8 ms of CPU, as much as it costs a
    # broker: one generator thread saturates at ~1,300/s and would measure itself, so these
    # two storms run two generator threads (their own --threads wins over --gen-threads).
    ("connect-tls", "connect storm over TLS, 2,000 connections (full handshakes)",
     ["--connect", "2000", "--concurrency", "64", "--hold", "1", "--duration", "120",
      "--threads", "2"], "tls"),
    ("connect-tls-x509", "connect storm over TLS with client certificates (X.509 auth), 2,000",
     ["--connect", "2000", "--concurrency", "64", "--hold", "1", "--duration", "120",
      "--threads", "2"], "x509"),
    # Authorization (ringmq only): the same pairwise load with per-client topics through Custom
    # authentication, without and with a 100-rule BrokerAuthorization whose topics carry
    # {principal.clientId}; compared with each other (AUTHZ_ROWS), not with mosquitto.
    ("pairwise-custom", "pairwise 100->100, QoS 0, per-client topics, Custom auth, no authz",
     ["--max", "--pattern", "pairwise", "--pubs", "100", "--subs", "100", "--qos", "0",
      "--client-topics"], "custom"),
    ("pairwise-authz", "the same with a 100-rule BrokerAuthorization ({principal.clientId})",
     ["--max", "--pattern", "pairwise", "--pubs", "100", "--subs", "100", "--qos", "0",
      "--client-topics"], "authz"),
    # the same load at a fixed rate: CPU per message without the noise of a max search
    ("pairwise-custom-cpu", "pairwise 100->100 per-client topics at 40,000 msg/s, no authz",
     ["--rate", "40000", "--duration", "10", "--pattern", "pairwise", "--pubs", "100", "--subs",
      "100", "--qos", "0", "--client-topics"], "custom"),
    ("pairwise-authz-cpu", "the same at 40,000 msg/s with the 100-rule BrokerAuthorization",
     ["--rate", "40000", "--duration", "10", "--pattern", "pairwise", "--pubs", "100", "--subs",
      "100", "--qos", "0", "--client-topics"], "authz"),
]

SMOKE = [
    ("connect", "connect 200", ["--connect", "200", "--hold", "0.3", "--duration", "20"]),
    ("fanin-qos0", "fan-in 4->1 QoS 0 at 1000/s",
     ["--rate", "1000", "--duration", "0.6", "--warmup", "0.1", "--pubs", "4", "--subs", "1",
      "--check"]),
    ("pairwise-qos1-v5", "pairwise 4->4 QoS 1 MQTT 5 at 800/s",
     ["--rate", "800", "--duration", "0.5", "--warmup", "0.1", "--pattern", "pairwise", "--pubs",
      "4", "--subs", "4", "--qos", "1", "--mqtt", "5", "--check"]),
    ("shared-qos2-v5", "shared 3->2 QoS 2 MQTT 5 at 600/s",
     ["--rate", "600", "--duration", "0.5", "--warmup", "0.1", "--pattern", "shared", "--pubs",
      "3", "--subs", "2", "--qos", "2", "--mqtt", "5", "--check"]),
    ("fanout-max", "fan-out 1->5 max search (short)",
     ["--max", "--pattern", "fanout", "--pubs", "1", "--subs", "5", "--probe", "0.3",
      "--trials", "2", "--duration", "0.3", "--drain", "1", "--warmup", "0.05"]),
    ("fanin-tls", "fan-in 2->1 QoS 0 at 500/s over TLS",
     ["--rate", "500", "--duration", "0.5", "--warmup", "0.1", "--pubs", "2", "--subs", "1",
      "--check"], "tls"),
    ("connect-tls-x509", "connect 50 over TLS with client certificates (X.509 auth)",
     ["--connect", "50", "--hold", "0.2", "--duration", "20", "--check"], "x509"),
    ("connect-custom", "connect 50 through Custom auth (one request each; ringmq only)",
     ["--connect", "50", "--hold", "0.2", "--duration", "20", "--check"], "custom"),
    ("pairwise-authz", "pairwise 4->4 QoS 1 at 800/s, per-client topics, 100-rule authorization",
     ["--rate", "800", "--duration", "0.5", "--warmup", "0.1", "--pattern", "pairwise", "--pubs",
      "4", "--subs", "4", "--qos", "1", "--client-topics", "--check"], "authz"),
]

# The auth server's mode (tools/custom-auth-server.py --mode-file) for each Custom scenario
# ("users" when not listed: every CONNECT makes a request).
CUSTOM_MODE = {"connect-custom-cached": "users,cache:3600", "connect-custom": "users"}
# The one user of every Custom and authorization scenario; BrokerAuthorization rules name its
# attribute (CUSTOM_ATTR).
CUSTOM_USER, CUSTOM_PASSWORD, CUSTOM_ATTR = "bench-user", "bench-Pa55word", ("role", "bench")

# Table rows: (label, scenario, metric, higher_is_better, target advantage or None)
ROWS = [
    ("max delivered msg/s, fan-in 8->1 QoS 0", "fanin-qos0", "rate", True, 15),
    ("broker CPU us/msg, fan-in 8->1 QoS 0", "fanin-qos0", "cpu", False, 20),
    ("closed-loop peak msg/s, fan-in 8->1 QoS 0", "fanin-qos0", "probe", True, None),
    ("broker CPU us/msg at that peak, fan-in QoS 0", "fanin-qos0", "probe_cpu", False, None),
    ("max delivered msg/s, fan-out 1->100", "fanout-qos0", "rate", True, 5),
    ("broker CPU us/msg, fan-out 1->100", "fanout-qos0", "cpu", False, None),
    ("closed-loop peak msg/s, fan-out 1->100", "fanout-qos0", "probe", True, None),
    ("max delivered msg/s, pairwise 100->100", "pairwise-qos0", "rate", True, 5),
    ("broker CPU us/msg, pairwise 100->100", "pairwise-qos0", "cpu", False, None),
    ("max delivered msg/s, fan-in 8->1 QoS 1", "fanin-qos1", "rate", True, 10),
    ("broker CPU us/msg, fan-in 8->1 QoS 1", "fanin-qos1", "cpu", False, 8),
    ("max delivered msg/s, shared 8->4", "shared-qos0", "rate", True, None),
    ("latency p50 ms, QoS 0 at 10k msg/s", "latency-qos0", "p50", False, None),
    ("latency p99 ms, QoS 0 at 10k msg/s", "latency-qos0", "p99", False, None),
    ("latency p50 ms, QoS 1 at 10k msg/s", "latency-qos1", "p50", False, None),
    ("latency p99 ms, QoS 1 at 10k msg/s", "latency-qos1", "p99", False, None),
    ("broker CPU us/msg, QoS 0 at 10k msg/s", "latency-qos0", "cpu", False, 3),
    ("broker CPU us/msg, QoS 1 at 10k msg/s", "latency-qos1", "cpu", False, None),
    ("broker CPU us/msg, pairwise QoS 1 at 2k msg/s", "pairwise-qos1-2k", "cpu", False, None),
    ("latency p50 ms, pairwise QoS 1 at 2k msg/s", "pairwise-qos1-2k", "p50", False, None),
    ("latency p99 ms, pairwise QoS 1 at 2k msg/s", "pairwise-qos1-2k", "p99", False, None),
    ("RSS bytes per idle connection (10k)", "connect", "rss_conn", False, 1),
    ("connections per second", "connect", "cps", True, None),
    ("broker RSS before the 10k connections, bytes", "connect", "rss_base", False, None),
    ("max delivered msg/s, fan-in 8->1 QoS 0 over TLS", "fanin-tls", "rate", True, 10),
    ("broker CPU us/msg, fan-in over TLS", "fanin-tls", "cpu", False, None),
    ("TLS connections per second", "connect-tls", "cps", True, None),
    ("TLS + X.509 auth connections per second", "connect-tls-x509", "cps", True, None),
] + [
    ("broker CPU us per CONNECT (10k storm)", "connect", "cpu_conn", False, 2),
    ("Custom auth, cached verdict: connections per second", "connect-custom-cached", "cps", True,
     None),
    ("Custom auth, cached verdict: broker CPU us per CONNECT", "connect-custom-cached",
     "cpu_conn", False, None),
    ("Custom auth, cached verdict: requests to the auth server", "connect-custom-cached",
     "auth_requests", False, None),
    ("Custom auth, uncached: requests to the auth server", "connect-custom", "auth_requests",
     False, None),
    ("Custom auth, uncached: connections per second", "connect-custom", "cps", True, None),
    ("Custom auth, uncached: broker CPU us per CONNECT", "connect-custom", "cpu_conn", False,
     None),
    ("Custom auth, uncached: auth server CPU us per CONNECT", "connect-custom", "auth_cpu_conn",
     False, None),
    ("Custom auth, uncached: auth server busy (cores)", "connect-custom", "auth_cores", False,
     None),
    ("Custom auth, uncached: TLS handshakes to the auth server", "connect-custom",
     "auth_handshakes", False, None),
]

SMOKE_ROWS = [
    ("delivered msg/s, fan-in 4->1 at 1000/s", "fanin-qos0", "rate", True, None),
    ("latency p50 ms, fan-in at 1000/s", "fanin-qos0", "p50", False, None),
    ("max delivered msg/s, fan-out 1->5", "fanout-max", "rate", True, None),
    ("connections per second", "connect", "cps", True, None),
    ("delivered msg/s, fan-in 2->1 over TLS at 500/s", "fanin-tls", "rate", True, None),
    ("TLS + X.509 auth connections per second", "connect-tls-x509", "cps", True, None),
    ("Custom auth (uncached) connections per second", "connect-custom", "cps", True, None),
    ("Custom auth (uncached): TLS handshakes to the auth server", "connect-custom",
     "auth_handshakes", False, None),
    ("delivered msg/s, pairwise 4->4 with 100-rule authorization", "pairwise-authz", "rate",
     True, None),
]

# Custom against plain, ringmq only: (label, scenario, metric, plain metric, bound, at least?)
CUSTOM_TARGETS = [
    ("cached Custom CONNECTs/s / plain CONNECTs/s", "connect-custom-cached", "cps", "cps", 0.9,
     True),
    ("uncached Custom broker CPU per CONNECT / plain", "connect-custom", "cpu_conn", "cpu_conn",
     2.0, False),
]

# Authorization's cost: ringmq with a 100-rule policy against ringmq without one, same run.
# (label, scenario without, scenario with, metric, higher is better)
AUTHZ_ROWS = [
    ("max delivered msg/s, pairwise 100->100 per-client topics", "pairwise-custom",
     "pairwise-authz", "rate", True),
    ("broker CPU us/msg at that rate", "pairwise-custom", "pairwise-authz", "cpu", False),
    ("closed-loop peak msg/s", "pairwise-custom", "pairwise-authz", "probe", True),
    ("broker CPU us/msg at 40,000 msg/s", "pairwise-custom-cpu", "pairwise-authz-cpu", "cpu",
     False),
    ("latency p99 ms at 40,000 msg/s", "pairwise-custom-cpu", "pairwise-authz-cpu", "p99",
     False),
]

AUTH_LISTENERS = ("custom", "authz")  # through the auth server; ringmq only


def scen_listener(entry):
    return entry[3] if len(entry) > 3 else "plain"


def say(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# Brokers


def free_ports(n):
    """n distinct free ports: all bound at once, so that the kernel cannot hand out one twice
    (a port chosen by two separate binds made a broker refuse its own configuration)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    return free_ports(1)[0]


def wait_port(port, proc, secs=10.0):
    end = time.time() + secs
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------------------
# Certificates for the TLS scenarios: an EC P-256 CA, a server certificate for localhost and
# 127.0.0.1, a client certificate. wolfSSL (ringmq) wants the CA to carry basicConstraints CA:TRUE
# and keyUsage keyCertSign, and leaves to be X.509 v3 with extensions: hence the explicit
# extension sections instead of whatever the system's openssl.cnf would add.

PKI_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

SERVER_SECRET = "bench-server"      # ringmq: <config dir>/secrets/bench-server/tls.{crt,key}
CLIENT_CA_CONFIGMAP = "bench-client-ca"  # ringmq: <config dir>/configmaps/bench-client-ca/
AUTH_CA_CONFIGMAP = "bench-auth-ca"  # the CA that verifies the Custom auth server


def make_pki(workdir):
    """Writes the CA, server and client certificates under workdir/pki and the ringmq secret and
    ConfigMap directories under workdir; returns the paths. Raises RuntimeError without openssl."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError("the openssl command line tool is needed for the TLS scenarios "
                           "(tools/deps.sh installs it)")
    d = os.path.join(workdir, "pki")
    os.makedirs(d, exist_ok=True)
    cnf = os.path.join(d, "pki.cnf")
    with open(cnf, "w") as f:
        f.write(PKI_CNF)
    pki = {k: os.path.join(d, k) for k in ("ca.crt", "ca.key", "server.crt", "server.key",
                                             "client.crt", "client.key")}

    def run(*args):
        p = subprocess.run([openssl] + list(args), capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], p.stderr.strip()[-500:]))

    for k in ("ca.key", "server.key", "client.key"):
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", pki[k])
    run("req", "-new", "-x509", "-config", cnf, "-extensions", "ca_ext", "-key", pki["ca.key"],
        "-subj", "/CN=ringbench test CA", "-days", "7", "-sha256", "-out", pki["ca.crt"])
    for i, (leaf, cn, ext) in enumerate((("server", "localhost", "server_ext"),
                                         ("client", "ringbench-client", "client_ext"))):
        csr = os.path.join(d, leaf + ".csr")
        run("req", "-new", "-config", cnf, "-key", pki[leaf + ".key"], "-subj", "/CN=" + cn,
            "-out", csr)
        run("x509", "-req", "-in", csr, "-CA", pki["ca.crt"], "-CAkey", pki["ca.key"],
            "-set_serial", str(0x1000 + i), "-days", "7", "-sha256", "-extfile", cnf,
            "-extensions", ext, "-out", pki[leaf + ".crt"])
    # ringmq reads mounted Secrets and ConfigMaps beside its configuration file
    sec = os.path.join(workdir, "secrets", SERVER_SECRET)
    cm = os.path.join(workdir, "configmaps", CLIENT_CA_CONFIGMAP)
    os.makedirs(sec, exist_ok=True)
    os.makedirs(cm, exist_ok=True)
    shutil.copy(pki["server.crt"], os.path.join(sec, "tls.crt"))
    shutil.copy(pki["server.key"], os.path.join(sec, "tls.key"))
    shutil.copy(pki["ca.crt"], os.path.join(cm, "client_ca.pem"))
    # the auth server of the Custom scenarios serves the same server certificate
    acm = os.path.join(workdir, "configmaps", AUTH_CA_CONFIGMAP)
    os.makedirs(acm, exist_ok=True)
    shutil.copy(pki["ca.crt"], os.path.join(acm, "ca.crt"))
    return pki


def mosquitto_tls_files(workdir, pki):
    """mosquitto started as root drops to its own user before it reads certificates: as root,
    give it copies it owns (in a directory only it can read; the work directory stays unlisted)."""
    if os.geteuid() != 0:
        return pki
    try:
        pw = pwd.getpwnam("mosquitto")
    except KeyError:
        return pki
    d = os.path.join(workdir, "mosquitto-tls")
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chmod(workdir, 0o711)
    files = dict(pki)
    for k in ("ca.crt", "server.crt", "server.key"):
        files[k] = os.path.join(d, k)
        shutil.copy(pki[k], files[k])
        os.chown(files[k], pw.pw_uid, pw.pw_gid)
    os.chown(d, pw.pw_uid, pw.pw_gid)
    return files


def tls_args(listener, pki):
    """ringbench arguments of a listener kind: the server is always verified against the CA;
    the Custom listeners (plain TCP) get the credentials the auth server knows."""
    if listener in AUTH_LISTENERS:
        return ["--username", CUSTOM_USER, "--password", CUSTOM_PASSWORD]
    if listener == "plain":
        return []
    args = ["--tls", "--cafile", pki["ca.crt"]]
    if listener == "x509":
        args += ["--cert", pki["client.crt"], "--key", pki["client.key"]]
    return args


RINGMQ_YAML = """\
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata: {{name: default}}
spec:
  advanced:
    clients:
      subscriberQueueLimit: {{length: 1000, strategy: None}}
  diagnostics: {{logs: {{level: warn}}}}
  ringmq:
    threads: {threads}
    maxInflight: 100
    maxConnections: 100000
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {{name: default}}
spec:
  ports:
  - {{port: {port}, bindAddress: 127.0.0.1, protocol: Mqtt}}
"""

# Appended to the listener's ports, and one more document, when TLS scenarios run.
RINGMQ_TLS_PORTS = """\
  - port: {tls_port}
    bindAddress: 127.0.0.1
    protocol: Mqtt
    tls: {{mode: Manual, manual: {{secretRef: {secret}}}}}
  - port: {x509_port}
    bindAddress: 127.0.0.1
    protocol: Mqtt
    authenticationRef: bench-x509
    tls: {{mode: Manual, manual: {{secretRef: {secret}}}}}
"""
RINGMQ_X509_AUTHN = """\
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {{name: bench-x509}}
spec:
  authenticationMethods:
  - method: X509
    x509Settings: {{trustedClientCaCert: {configmap}}}
"""

# The Custom listener (plain TCP, as the plain connect storm) and its chain; the authorization
# listener is the same with the 100-rule policy.
RINGMQ_CUSTOM_PORT = """\
  - port: {custom_port}
    bindAddress: 127.0.0.1
    protocol: Mqtt
    authenticationRef: bench-custom
  - port: {authz_port}
    bindAddress: 127.0.0.1
    protocol: Mqtt
    authenticationRef: bench-custom
    authorizationRef: bench-authz
"""
RINGMQ_CUSTOM_AUTHN = """\
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {{name: bench-custom}}
spec:
  authenticationMethods:
  - method: Custom
    customSettings: {{endpoint: "https://127.0.0.1:{auth_port}", caCertConfigMap: {configmap}}}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata: {{name: bench-authz}}
spec:
  authorizationPolicies:
    rules:
{rules}"""


def authz_rules():
    """100 rules, every topic with {principal.clientId}: 50 for the bench user's attribute (the
    first carries the benchmark's topics, 49 other per-client trees), 50 for other users."""
    who_bench = "attributes: [{%s: %s}]" % CUSTOM_ATTR
    out = []
    for i in range(100):
        who = who_bench if i < 50 else "usernames: [user-%d]" % i
        pub = sub = "site-%d/{principal.clientId}/#" % i
        if i == 0:
            pub, sub = "rb/+/pairwise/+/{principal.clientId}", "rb/+/pairwise/+/+"
        out.append("    - principals: {%s}\n      brokerResources:\n"
                   "      - method: Connect\n"
                   "      - {method: Publish, topics: [\"%s\"]}\n"
                   "      - {method: Subscribe, topics: [\"%s\"]}\n" % (who, pub, sub))
    return "".join(out)

# The same limits as the ringmq YAML: 100 QoS 1/2 messages in flight per client, 1000 queued
# per client (newest dropped beyond), no persistence, warnings and errors logged only, and
# TCP_NODELAY on client sockets as ringmq does (mosquitto's default, Nagle on, delays small
# packets such as PUBACKs by up to a delayed-ACK timeout on loopback).
MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 100
max_queued_messages 1000
max_connections -1
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
"""

# The same certificate; the second listener asks for a client certificate signed by the CA and
# takes its CN as the username, as ringmq's X509 method does.
MOSQUITTO_TLS = """\
listener {tls_port} 127.0.0.1
certfile {server_crt}
keyfile {server_key}
cafile {ca}
listener {x509_port} 127.0.0.1
certfile {server_crt}
keyfile {server_key}
cafile {ca}
require_certificate true
use_identity_as_username true
"""


class Broker:
    def __init__(self, name, port, pid=None, proc=None, log=None, version="", ports=None):
        self.name, self.port, self.pid, self.proc, self.log = name, port, pid, proc, log
        self.version = version
        self.ports = {"plain": port}  # listener kind -> port
        self.ports.update(ports or {})

    def log_lines(self):
        if not self.log or not os.path.exists(self.log):
            return []
        with open(self.log, errors="replace") as f:
            return [line.rstrip("\n") for line in f if line.strip()]

    def alive(self):
        if self.proc is not None:
            return self.proc.poll() is None
        return os.path.exists("/proc/%d" % self.pid) if self.pid else True

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_ringmq(binary, threads, workdir, pki=None, auth=None):
    names = (["tls", "x509"] if pki else []) + (list(AUTH_LISTENERS) if auth else [])
    port, *more = free_ports(1 + len(names))
    ports = dict(zip(names, more))
    cfg = os.path.join(workdir, "ringmq.yaml")  # its directory holds secrets/ and configmaps/
    with open(cfg, "w") as f:
        f.write(RINGMQ_YAML.format(port=port, threads=threads))
        if pki:  # more ports of the listener, then the BrokerAuthentication documents
            f.write(RINGMQ_TLS_PORTS.format(tls_port=ports["tls"], x509_port=ports["x509"],
                                            secret=SERVER_SECRET))
        if auth:
            f.write(RINGMQ_CUSTOM_PORT.format(custom_port=ports["custom"],
                                              authz_port=ports["authz"]))
        if pki:
            f.write(RINGMQ_X509_AUTHN.format(configmap=CLIENT_CA_CONFIGMAP))
        if auth:
            f.write(RINGMQ_CUSTOM_AUTHN.format(auth_port=auth.port, configmap=AUTH_CA_CONFIGMAP,
                                               rules=authz_rules()))
    log = open(os.path.join(workdir, "ringmq.log"), "w")
    proc = subprocess.Popen([binary, "-c", cfg], stdout=log, stderr=subprocess.STDOUT)
    if not all(wait_port(p, proc) for p in [port] + list(ports.values())):
        proc.kill()
        raise RuntimeError("ringmq did not start (see %s)" % log.name)
    ver = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    return Broker("ringmq", port, proc.pid, proc, log.name, ver, ports)


def start_mosquitto(binary, workdir, pki=None):
    names = ["tls", "x509"] if pki else []
    port, *more = free_ports(1 + len(names))
    ports = dict(zip(names, more))
    cfg = os.path.join(workdir, "mosquitto.conf")
    with open(cfg, "w") as f:
        f.write(MOSQUITTO_CONF.format(port=port))
        if pki:
            f.write(MOSQUITTO_TLS.format(tls_port=ports["tls"], x509_port=ports["x509"],
                                         server_crt=pki["server.crt"],
                                         server_key=pki["server.key"], ca=pki["ca.crt"]))
    log = open(os.path.join(workdir, "mosquitto.log"), "w")
    proc = subprocess.Popen([binary, "-c", cfg], stdout=log, stderr=subprocess.STDOUT)
    if not all(wait_port(p, proc) for p in [port] + list(ports.values())):
        proc.kill()
        raise RuntimeError("mosquitto did not start (see %s)" % log.name)
    ver = ""
    try:
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5).stdout
        ver = out.splitlines()[0] if out else ""
    except (OSError, subprocess.TimeoutExpired):
        pass
    return Broker("mosquitto", port, proc.pid, proc, log.name, ver, ports)


class AuthServer:
    """tools/custom-auth-server.py for the Custom and authorization scenarios: HTTPS with the
    run's server certificate, one user with the attribute CUSTOM_ATTR (PBKDF2 with few iterations: the server remembers verified passwords
    anyway), a mode file switched per scenario, /_stats for its request and handshake counts.
    Its CPU time (all threads) comes from /proc/PID/stat."""

    TOOL = os.path.join(ROOT, "tools", "custom-auth-server.py")

    def __init__(self, workdir, pki):
        d = os.path.join(workdir, "auth-server")
        os.makedirs(d, exist_ok=True)
        self.ca = pki["ca.crt"]
        self.mode_file = os.path.join(d, "mode")
        self.set_mode("users")
        users = subprocess.run(
            [sys.executable, self.TOOL, "--hash-password", CUSTOM_USER, "--password-env", "PW",
             "--attr", "%s=%s" % CUSTOM_ATTR, "--iterations", "1000"], env=dict(os.environ, PW=CUSTOM_PASSWORD),
            capture_output=True, text=True, timeout=60)
        if users.returncode != 0:
            raise RuntimeError("custom-auth-server.py --hash-password: %s" % users.stderr[-300:])
        with open(os.path.join(d, "users.json"), "w") as f:
            f.write(users.stdout)
        port_file = os.path.join(d, "port")
        self.log = os.path.join(d, "auth-server.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, self.TOOL, "--cert", pki["server.crt"], "--key",
                 pki["server.key"], "--users", os.path.join(d, "users.json"), "--port", "0",
                 "--port-file", port_file, "--stats", "--mode-file", self.mode_file],
                stdout=log, stderr=subprocess.DEVNULL)  # one line per request: not kept
        self.pid = self.proc.pid
        end = time.time() + 20
        self.port = None
        while time.time() < end and self.port is None and self.proc.poll() is None:
            if os.path.exists(port_file) and open(port_file).read().strip():
                self.port = int(open(port_file).read())
            else:
                time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("custom-auth-server.py did not start")

    def set_mode(self, mode):
        with open(self.mode_file, "w") as f:
            f.write(mode)

    def cpu_us(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) * 1e6 / os.sysconf("SC_CLK_TCK")

    def stats(self):
        import ssl
        import urllib.request
        ctx = ssl.create_default_context(cafile=self.ca)
        try:
            with urllib.request.urlopen("https://127.0.0.1:%d/_stats" % self.port, context=ctx,
                                        timeout=10) as r:
                return json.loads(r.read())
        except OSError:
            return {}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def mqtt_connect_once(port, username, password):
    """One MQTT 3.1.1 CONNECT with credentials; returns the CONNACK return code (None: none)."""
    def s(b):
        return len(b).to_bytes(2, "big") + b
    body = s(b"MQTT") + bytes([4, 0xC2]) + (30).to_bytes(2, "big") + s(b"bench-warmup") + \
        s(username.encode()) + s(password.encode())
    pkt = bytes([0x10, len(body)]) + body  # < 128 bytes: one-byte remaining length
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as c:
            c.sendall(pkt)
            ack = b""
            while len(ack) < 4:
                more = c.recv(4 - len(ack))
                if not more:
                    return None
                ack += more
            return ack[3]
    except OSError:
        return None


def run_custom(auth, run, scen, port):
    """Runs one Custom or authorization scenario (run() -> ringbench result) and adds what the auth server did:
    its CPU time, requests and TLS handshakes (minus the /_stats call's own) during the run.
    A cached scenario first makes one CONNECT so that the storm finds the verdict cached."""
    auth.set_mode(CUSTOM_MODE.get(scen, "users"))
    if "cache:" in CUSTOM_MODE.get(scen, ""):
        rc = mqtt_connect_once(port, CUSTOM_USER, CUSTOM_PASSWORD)
        if rc != 0:
            say("    warm-up CONNECT through Custom: return code %r" % rc)
    st0, cpu0, t0 = auth.stats(), auth.cpu_us(), time.time()
    res = run()
    cpu1, wall, st1 = auth.cpu_us(), time.time() - t0, auth.stats()
    if res is not None and cpu0 is not None and cpu1 is not None:
        res["auth_server"] = {
            "mode": CUSTOM_MODE.get(scen, "users"), "cpu_us": cpu1 - cpu0,
            "cores": (cpu1 - cpu0) / 1e6 / wall if wall > 0 else None,
            "requests": st1.get("requests", 0) - st0.get("requests", 0),
            "handshakes": st1.get("handshakes", 0) - st0.get("handshakes", 0) - 1}
        a = res["auth_server"]
        say("    auth server: %d requests, %d TLS handshakes, %.0f ms CPU (%.2f cores over the "
            "run, ringbench's whole run)" % (a["requests"], a["handshakes"], a["cpu_us"] / 1e3,
                                             a["cores"] or 0))
    return res


def parse_extra(spec):
    """NAME=127.0.0.1:PORT:PID (PID may be 0 when unknown)."""
    try:
        name, rest = spec.split("=", 1)
        host, port, pid = rest.split(":")
    except ValueError:
        raise SystemExit("--broker %s: expected NAME=127.0.0.1:PORT:PID" % spec)
    if not host.startswith("127."):
        raise SystemExit("--broker %s: only loopback (127.0.0.0/8) targets are allowed" % spec)
    if host != "127.0.0.1":
        raise SystemExit("--broker %s: ringbench connects to 127.0.0.1" % spec)
    return Broker(name, int(port), int(pid) or None)


# ---------------------------------------------------------------------------------------------
# Runs


def run_bench(ringbench, broker, scen, args, workdir, threads, timeout, listener="plain",
              pki=None):
    out = os.path.join(workdir, "%s-%s.json" % (scen, broker.name))
    cmd = [ringbench, "--port", str(broker.ports[listener]), "--json", out, "--label",
           "%s/%s" % (scen, broker.name)]
    if "--threads" not in args:
        cmd += ["--threads", str(threads)]
    cmd += args
    cmd += tls_args(listener, pki)
    if broker.pid:
        cmd += ["--pid", str(broker.pid)]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        say("    %s: ringbench timed out after %d s" % (broker.name, timeout))
        return None
    for line in p.stdout.splitlines():
        say("    " + line)
    if not os.path.exists(out):
        say("    %s: ringbench wrote no result (exit %d)" % (broker.name, p.returncode))
        return None
    with open(out) as f:
        res = json.load(f)
    res["exit"] = p.returncode
    res["listener"] = listener
    res["wall_s"] = round(time.time() - t0, 2)
    res["command"] = " ".join(cmd)
    return res


def metric(res, m):
    """One number out of a ringbench JSON result (None when missing)."""
    if not res or not res.get("result"):
        return None
    r = res["result"]
    if m == "probe":  # the closed-loop probe that starts a max search
        return res["trials"][0]["delivered_rate"] if res.get("trials") else None
    if m == "rate":
        return r["delivered_rate"] if r.get("sustainable") or res["mode"] == "rate" else None
    if m == "cpu":
        v = r["broker"]["cpu_us_per_msg"]
        return v if v > 0 else None
    if m == "probe_cpu":  # CPU per message at the closed-loop peak (each broker saturated)
        t = res["trials"][0] if res.get("trials") else None
        v = t["broker"]["cpu_us_per_msg"] if t and t.get("broker") else 0
        return v if v > 0 else None
    if m == "rss_base":
        return r["broker"]["rss_before_kb"] * 1024.0 if r.get("broker") else None
    if m in ("p50", "p99", "p999"):
        return r["latency_us"][m] / 1000.0
    if m == "rss_conn":
        return r["broker"]["rss_per_conn_bytes"] if r["connected"] else None
    if m == "cps":
        return r["conn_per_s"]
    if m == "cpu_conn":  # broker CPU from the storm's start to the end of --hold, per CONNECT
        return r["broker"]["cpu_us"] / r["connected"] if r.get("connected") else None
    a = res.get("auth_server")
    if m == "auth_cpu_conn":
        return a["cpu_us"] / r["connected"] if a and r.get("connected") else None
    if m == "auth_cores":
        return a.get("cores") if a else None
    if m in ("auth_requests", "auth_handshakes"):
        return a[m[5:]] if a else None
    return None


def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def headroom(res):
    """Share of one core the busiest ringbench thread left unused, and the machine load."""
    if not res or not res.get("result"):
        return None, None
    r = res["result"]
    g = r.get("generator", {})
    return g.get("headroom_pct", 100 - g.get("cpu_pct", 0)), r.get("machine_busy_pct")


def fmt(v, m):
    if v is None:
        return "-"
    if m in ("rate", "cps", "probe"):
        return "{:,.0f}".format(v)
    if m in ("rss_conn", "rss_base", "auth_requests", "auth_handshakes"):
        return "{:,.0f}".format(v)
    if m in ("cpu_conn", "auth_cpu_conn"):
        return "%.1f" % v
    if m == "auth_cores":
        return "%.2f" % v
    if m == "cpu":
        return "%.3f" % v
    return "%.3f" % v


def build_table(rows, results, names):
    table = []
    for label, scen, m, higher, target in rows:
        vals = {n: med([metric(r, m) for r in results.get(scen, {}).get(n, [])]) for n in names}
        base, ref = vals.get(names[0]), vals.get("mosquitto")
        adv = None
        if base and ref:
            adv = base / ref if higher else ref / base
        met = None if target is None or adv is None else adv >= target
        table.append({"metric": label, "scenario": scen, "key": m, "higher_is_better": higher,
                      "values": vals, "advantage": adv, "target": target, "met": met})
    return table


def print_table(table, names):
    w = max(len(r["metric"]) for r in table) + 2
    head = "%-*s" % (w, "metric") + "".join("%14s" % n for n in names)
    head += "%12s%10s%6s" % ("ringmq adv.", "target", "met")
    print(head)
    print("-" * len(head))
    for r in table:
        line = "%-*s" % (w, r["metric"])
        line += "".join("%14s" % fmt(r["values"][n], r["key"]) for n in names)
        line += "%12s" % ("%.2fx" % r["advantage"] if r["advantage"] else "-")
        line += "%10s" % (">= %gx" % r["target"] if r["target"] else "")
        line += "%6s" % ({True: "yes", False: "NO", None: ""}[r["met"]])
        print(line)
    print("(adv. = how many times better ringmq is than mosquitto: higher throughput, or lower "
          "CPU/latency/memory; < 1 means worse)")


def chart(table, path_svg, workdir):
    gp = shutil.which("gnuplot")
    rows = [r for r in table if r["advantage"]]
    if not gp or not rows:
        say("chart: skipped (%s)" % ("gnuplot not installed" if not gp else "no ratios"))
        return None
    dat = os.path.join(workdir, "chart.dat")
    with open(dat, "w") as f:
        for i, r in enumerate(rows):
            lab = r["metric"].replace('"', "'")
            f.write('%d "%s" %g %g\n' % (i, lab, r["advantage"], r["target"] or 0))
    script = os.path.join(workdir, "chart.gp")
    height = 200 + 34 * len(rows)
    with open(script, "w") as f:
        f.write("""set terminal svg size 1000,{h} dynamic font "sans,12" background "white"
set termoption noenhanced
set output "{out}"
set title "ringmq vs mosquitto, same machine, same run: how many times better ringmq is\\n(log scale; right of 1 = ringmq better, left = worse; triangles = the issue's targets)"
set style fill solid 0.75 border -1
set logscale x 10
set xrange [0.05:{xmax}]
set yrange [{n}-0.3:-0.7]
set ytics ({tics})
set grid xtics
set key outside top center horizontal
set xlabel "advantage of ringmq (x), log scale"
set arrow from 1, graph 0 to 1, graph 1 nohead dt 2 lw 2 lc "black"
lo(v) = v < 1 ? v : 1
hi(v) = v < 1 ? 1 : v
plot "{dat}" using (($3 >= 1) ? sqrt(lo($3)*hi($3)) : 1/0):1:(lo($3)):(hi($3)):($1-0.35):($1+0.35) with boxxyerror lc "#3b9d5d" title "ringmq better", \\
     "{dat}" using (($3 < 1) ? sqrt(lo($3)*hi($3)) : 1/0):1:(lo($3)):(hi($3)):($1-0.35):($1+0.35) with boxxyerror lc "#d8783b" title "ringmq worse", \\
     "{dat}" using 3:1:(sprintf("%.2fx", $3)) with labels left offset 1,0 notitle, \\
     "{dat}" using ($4 > 0 ? $4 : 1/0):1 with points pt 9 ps 2 lc "#c02020" title "target"
set terminal pngcairo size 1000,{h} font "sans,10" background "white"
set output "{png}"
replot
""".format(h=height, out=path_svg, png=path_svg[:-4] + ".png", n=len(rows), dat=dat,
           xmax=10 ** math.ceil(math.log10(3 * max(max(r["advantage"], r["target"] or 0)
                                                  for r in rows))),
           tics=", ".join('"%s" %d' % (r["metric"].replace('"', "'"), i)
                          for i, r in enumerate(rows))))
    p = subprocess.run([gp, script], capture_output=True, text=True)
    if p.returncode != 0:
        say("chart: gnuplot failed: %s" % p.stderr.strip()[:300])
        return None
    return path_svg


# ---------------------------------------------------------------------------------------------


def main():
    # a SIGTERM (e.g. from `timeout`) must still stop the brokers this script started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="a few seconds, asserts that it works")
    ap.add_argument("--ringmq", default=os.environ.get("RINGMQ_BIN") or
                    os.path.join(ROOT, "build-bench", "ringmq"))
    ap.add_argument("--ringbench", default=None)
    ap.add_argument("--mosquitto", default="/usr/sbin/mosquitto")
    ap.add_argument("--no-mosquitto", action="store_true")
    ap.add_argument("--broker", action="append", default=[], metavar="NAME=127.0.0.1:PORT:PID",
                    help="also run against a broker started by you")
    ap.add_argument("--threads", type=int, default=2, help="ringmq shard threads (2)")
    ap.add_argument("--gen-threads", type=int, default=1, help="ringbench threads (1)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the median is reported")
    ap.add_argument("--scenarios", default="", help="comma-separated subset of scenario names")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--chart-only", metavar="JSON", help="redraw the chart of a results JSON")
    a = ap.parse_args()
    if a.chart_only:
        with open(a.chart_only) as f:
            doc = json.load(f)
        with tempfile.TemporaryDirectory(prefix="ringbench-") as tmp:
            svg = chart(doc["table"], a.chart_only[:-5] + ".svg", tmp)
        say("wrote %s (.png)" % svg if svg else "no chart")
        return 0 if svg else 1

    if a.ringbench is None:
        build = os.environ.get("RINGMQ_BUILD") or os.path.join(ROOT, "build-bench")
        a.ringbench = os.path.join(build, "bench", "ringbench")
    for what, path in (("ringmq", a.ringmq), ("ringbench", a.ringbench)):
        if not os.access(path, os.X_OK):
            raise SystemExit("compare: %s not found at %s (build first, see bench/README.md)"
                             % (what, path))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 20500 and not a.smoke:
        say("compare: warning: open files limit %d: 10,000 connections need about 20,500" % hard)

    scen = SMOKE if a.smoke else FULL
    if a.scenarios:
        keep = set(a.scenarios.split(","))
        scen = [s for s in scen if s[0] in keep]
    rows = SMOKE_ROWS if a.smoke else ROWS
    if a.scenarios:  # the rows of the scenarios that run, not a table of dashes
        rows = [r for r in rows if r[1] in keep]
    workdir = tempfile.mkdtemp(prefix="ringbench-")
    brokers = []
    started = time.time()
    extra = [parse_extra(s) for s in a.broker]
    use_mosq = not a.no_mosquitto and os.access(a.mosquitto, os.X_OK)
    if not a.no_mosquitto and not use_mosq:
        say("compare: %s not found: ringmq alone" % a.mosquitto)
    pki = None
    if any(scen_listener(e) != "plain" for e in scen):
        try:
            pki = make_pki(workdir)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            shutil.rmtree(workdir, ignore_errors=True)
            raise SystemExit("compare: %s" % e)
    mosq_pki = mosquitto_tls_files(workdir, pki) if pki and use_mosq else pki
    auth = None
    if any(scen_listener(e) in AUTH_LISTENERS for e in scen):
        try:
            auth = AuthServer(workdir, pki)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            shutil.rmtree(workdir, ignore_errors=True)
            raise SystemExit("compare: %s" % e)
        say("  started custom-auth-server.py on 127.0.0.1:%d, pid %d" % (auth.port, auth.pid))

    def start_all():
        """Fresh brokers for every scenario: an overloaded scenario must not leave a backlog or
        a grown heap to the next one."""
        bs = [start_ringmq(a.ringmq, a.threads, workdir, pki, auth)]
        if use_mosq:
            try:
                bs.append(start_mosquitto(a.mosquitto, workdir, mosq_pki))
            except (RuntimeError, OSError):
                bs[0].stop()  # not yet in `brokers`: nobody else would stop it
                raise
        for b in bs:
            more = "".join(", %s %d" % (k, p) for k, p in b.ports.items() if k != "plain")
            say("  started %s on 127.0.0.1:%d%s, pid %d (%s)" % (b.name, b.port, more, b.pid,
                                                               b.version))
        return bs + extra

    def stop_all(bs):
        """Stops the brokers this script started and shows what they logged (warnings and
        errors only, by their configuration)."""
        for b in bs:
            b.stop()
            lines = b.log_lines() if b.proc is not None else []
            if lines:
                say("  %s logged %d line(s):%s" % (b.name, len(lines), "".join(
                    "\n      " + line[:300] for line in lines[:8])))
            if len(lines) > 8:
                say("      ...")

    results = {}
    seen = {}
    try:
        for rep in range(a.repeat):
            for i, entry in enumerate(scen):
                name, desc, args = entry[:3]
                listener = scen_listener(entry)
                brokers = start_all()
                for b in brokers:
                    seen.setdefault(b.name, b)
                order = brokers if (i + rep) % 2 == 0 else list(reversed(brokers))
                say("[%d/%d] %s: %s" % (i + 1, len(scen), name, desc))
                for b in order:
                    if listener not in b.ports:
                        say("    %s: %s, skipped" % (b.name, "no Custom authentication method"
                                                     if listener in AUTH_LISTENERS else
                                                     "no %s listener known" % listener))
                        continue
                    if not b.alive():
                        raise RuntimeError("%s is not running any more (log: %s)" % (b.name, b.log))
                    budget = 60 if a.smoke else 900
                    def run(b=b, name=name, args=args, budget=budget, listener=listener):
                        return run_bench(a.ringbench, b, name, args, workdir, a.gen_threads,
                                         budget, listener, pki)
                    res = (run_custom(auth, run, name, b.ports[listener])
                           if listener in AUTH_LISTENERS else run())
                    if res is not None:
                        res["broker_version"] = b.version
                    results.setdefault(name, {}).setdefault(b.name, []).append(res)
                    time.sleep(0.2 if a.smoke else 1.0)
                stop_all(brokers)
        brokers = list(seen.values())
        names = [b.name for b in brokers]
        table = build_table(rows, results, names)
    except Exception as e:
        for b in brokers:
            if b.log and os.path.exists(b.log):
                with open(b.log, errors="replace") as f:
                    say("--- last lines of %s\n%s" % (b.log, "".join(f.readlines()[-20:])))
        say("compare: %s (work files kept in %s)" % (e, workdir))
        raise SystemExit(1)
    finally:
        for b in brokers:
            b.stop()
        if auth:
            auth.stop()

    print()
    if table:  # empty when only ringmq-only scenarios without rows ran
        print_table(table, names)
    custom = [] if a.smoke else custom_vs_plain(results)  # smoke storms differ in size
    authz = authz_table(results)
    heads = [headroom(r) for s in results.values() for rs in s.values() for r in rs]
    hr = [h for h, _ in heads if h is not None]
    busy = [m for _, m in heads if m is not None]
    if hr:
        print("ringbench headroom: its busiest thread left %.0f%%..%.0f%% of a core unused "
              "(machine busy %.0f%%..%.0f%%)" % (min(hr), max(hr), min(busy), max(busy)))

    os.makedirs(a.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    prefix = os.path.join(a.out, ("smoke-" if a.smoke else "compare-") + stamp)
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    doc = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([os.path.relpath(sys.argv[0], os.getcwd())] + sys.argv[1:]),
        "repo_head": head,  # of this checkout; the binaries may have been built elsewhere
        "binaries": {n: {"path": os.path.abspath(p), "mtime": time.ctime(os.path.getmtime(p))}
                     for n, p in (("ringmq", a.ringmq), ("ringbench", a.ringbench))},
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                    "loadavg_at_end": os.getloadavg()},
        "brokers": [{"name": b.name, "port": b.port, "pid": b.pid, "version": b.version}
                    for b in brokers],
        "elapsed_s": round(time.time() - started, 1),
        "table": table,
        "custom_vs_plain": custom,
        "authz": authz,
        "results": results,
    }
    with open(prefix + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    svg = chart(table, prefix + ".svg", workdir)
    say("wrote %s.json%s" % (prefix, " and %s (.png)" % svg if svg else ""))
    shutil.rmtree(workdir, ignore_errors=True)

    if a.smoke:
        return smoke_verdict(results, names, scen)
    return 0


def custom_vs_plain(results):
    """ringmq's Custom connect storms against its plain one (the issue's targets); printed."""
    out = []
    for label, scen, m, pm, bound, at_least in CUSTOM_TARGETS:
        v = med([metric(r, m) for r in results.get(scen, {}).get("ringmq", [])])
        p = med([metric(r, pm) for r in results.get("connect", {}).get("ringmq", [])])
        if v is None or not p:
            continue
        ratio = v / p
        met = ratio >= bound if at_least else ratio <= bound
        out.append({"metric": label, "scenario": scen, "value": v, "plain": p, "ratio": ratio,
                    "target": ("<= " if not at_least else ">= ") + "%gx" % bound, "met": met})
    if out:
        print("Custom authentication against plain CONNECTs (ringmq only; mosquitto has no "
              "Custom method):")
        for o in out:
            print("  %-50s %8.2fx  target %-7s %s" % (o["metric"], o["ratio"], o["target"],
                                                    "yes" if o["met"] else "NO"))
    return out


def authz_table(results):
    """ringmq with authorization against ringmq without it (AUTHZ_ROWS), printed and returned;
    None when no pair of those scenarios ran."""
    rows = []
    for label, sw, sa, m, higher in AUTHZ_ROWS:
        ws = [metric(x, m) for x in results.get(sw, {}).get("ringmq") or []]
        As = [metric(x, m) for x in results.get(sa, {}).get("ringmq") or []]
        w, a = med(ws), med(As)
        if w is None or a is None:
            continue
        # the ratio of each round (both ran in it, on the same machine state), then their
        # median: one round disturbed by other work moves the ratio less than the medians of
        # each column taken apart would
        per_round = [y / x for x, y in zip(ws, As) if x and y]
        rows.append({"metric": label, "key": m, "without": w, "with": a,
                     "ratio": med(per_round) if per_round else None,
                     "round_ratios": per_round, "higher_is_better": higher})
    if not rows:
        return None
    print()
    print("%-60s%14s%14s%10s" % ("authorization (ringmq, same run)", "without", "100 rules",
                                 "ratio"))
    for r in rows:
        print("%-60s%14s%14s%10s" % (r["metric"], fmt(r["without"], r["key"]),
                                     fmt(r["with"], r["key"]),
                                     "%.3f" % r["ratio"] if r["ratio"] else "-"))
    for r in rows:
        if len(r["round_ratios"]) > 1:
            print("  %s, per round: %s" % (r["metric"],
                                          " ".join("%.3f" % x for x in r["round_ratios"])))
    print("(ratio = median of the rounds' with / without: throughput wants >= 0.9, CPU per "
          "message <= 1.1; the max search is noisy on a shared machine: compare several "
          "--repeat rounds)")
    return rows


def smoke_verdict(results, names, scenarios):
    """The generator worked: messages delivered, nothing lost at a low rate, nothing reordered,
    every connection made, the max search found a rate, and TLS scenarios negotiated TLS."""
    bad = []
    for entry in scenarios:  # a scenario that ran nowhere (e.g. a broker failed to start)
        if entry[0] not in results:
            bad.append("%s: did not run" % entry[0])
    for scen, per in results.items():
        for name, runs in per.items():
            for r in runs:
                if r is None or not r.get("result"):
                    why = (": " + r["error"]) if r and r.get("error") else ""
                    bad.append("%s/%s: no result%s" % (scen, name, why))
                    continue
                res = r["result"]
                if r.get("listener", "plain") in ("tls", "x509") and not (r.get("tls") or {}).get(
                        "version"):
                    bad.append("%s/%s: no TLS handshake completed" % (scen, name))
                if r.get("listener") in AUTH_LISTENERS and not (r.get("auth_server") or {}).get(
                        "requests"):
                    bad.append("%s/%s: no request reached the Custom auth server" % (scen, name))
                if r["mode"] == "connect":
                    if res["connected"] != res["connections"] or res["failed"]:
                        bad.append("%s/%s: %d/%d connected" % (scen, name, res["connected"],
                                                               res["connections"]))
                    continue
                if res["delivered"] <= 0:
                    bad.append("%s/%s: nothing delivered" % (scen, name))
                if r["mode"] == "rate" and (res["lost"] or res["reordered"] or r["exit"]):
                    bad.append("%s/%s: lost %d reordered %d at a low rate" % (
                        scen, name, res["lost"], res["reordered"]))
                if r["mode"] == "max" and res["delivered_rate"] <= 0:
                    bad.append("%s/%s: max search found nothing" % (scen, name))
    for b in bad:
        print("SMOKE FAIL: " + b)
    if not bad:
        print("smoke: ok (%s)" % ", ".join(names))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
