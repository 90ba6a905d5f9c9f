#!/usr/bin/python3
"""Connect storms with ServiceAccountToken (K8S-SAT) against ringmq, measured with ringbench.

Starts the test Kubernetes API server (tests/integration/lib/kube_api.py) and one broker with a
plain port and a SAT port, then runs ringbench connect storms (MQTT 5):
  plain  no authentication                                      (the reference)
  plain1k  the same, each CONNECT carrying the warm token as its password (what the token's
         bytes cost without any authentication)
  warm   every client the same token, already in the cache      (target: >= 0.9 x plain)
  cold   every client its own token (--auth-data-file)          (TokenReviews = distinct tokens)
  flight every client one fresh token, --flight-concurrency at once (single flight: 1 review)
and prints connections/s, the broker's CPU per CONNECT and the TokenReview count of each. The
modes alternate within each round (the order turning every round), and the ratios are the
median of the per-round ratios (the
plain rate of this VM moves by 40 % between minutes, so a ratio of medians from different minutes
says less). Numbers depend on the machine: on a shared 2-core VM the generator, the broker and
the Python API server compete for CPU.

  bench/sat-storm.py --ringmq build/ringmq --ringbench build/bench/ringbench -n 2000
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration", "lib"))
import kube_api  # noqa: E402
import rqtest as rq  # noqa: E402

YAML = """apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata: {name: broker}
spec:
  diagnostics: {logs: {level: warn}}
  ringmq:
    batchWaitMicroseconds: %(bw)d
    maxConnections: 200000
    preConnectLimit: {connections: 100000}
    kubernetes: {kubeconfig: "%(kc)s", serviceAccountDir: "%(dir)s/none"}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: listener}
spec:
  ports:
  - {port: %(plain)d, bindAddress: 127.0.0.1}
  - {port: %(sat)d, bindAddress: 127.0.0.1, authenticationRef: sat}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: sat}
spec:
  authenticationMethods:
  - method: ServiceAccountToken
    serviceAccountTokenSettings: {audiences: [aio-internal]}
"""


def storm(rb, port, pid, n, conc, extra):
    """(connected, asked, conn/s, broker CPU us per CONNECT)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as jf:
        cmd = [rb, "--port", str(port), "--pid", str(pid), "--mqtt", "5", "--connect", str(n),
               "--concurrency", str(conc), "--hold", "0", "--quiet", "--json", jf.name] + extra
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        try:
            r = json.load(open(jf.name))["result"]
        except (ValueError, KeyError, OSError):
            sys.exit("ringbench failed:\n%s%s" % (out.stdout, out.stderr))
    cpu = r.get("broker", {}).get("cpu_us")
    return (r["connected"], r["connections"], float(r["conn_per_s"]),
            cpu / r["connected"] if cpu and r["connected"] else None)


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def ratios(res, a, b, i):
    """Median over rounds of res[a][r][i] / res[b][r][i]."""
    return median([x[i] / y[i] for x, y in zip(res[a], res[b]) if x[i] and y[i]])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringmq", default=os.path.join(HERE, "..", "build", "ringmq"))
    ap.add_argument("--ringbench", default=os.path.join(HERE, "..", "build", "bench",
                                                        "ringbench"))
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--flight-concurrency", type=int, default=1000)
    ap.add_argument("--batch-wait", type=int, default=200,
                    help="the broker's spec.ringmq.batchWaitMicroseconds")
    ap.add_argument("--modes", default="plain,plain1k,warm,cold,flight",
                    help="comma-separated subset of plain,plain1k,warm,cold,flight")
    a = ap.parse_args()
    modes = a.modes.split(",")
    d = tempfile.mkdtemp(prefix="sat-storm-")
    api = kube_api.KubeAPI(d, require_bearer="bench")
    for i in range(10):
        api.add_sa("bench", "sa-%d" % i, {"aio-broker-auth/group": "g%d" % i})
    kc = api.write_kubeconfig(os.path.join(d, "kc"), token="bench")
    ports = {"plain": rq.free_port(), "sat": rq.free_port()}
    cfg = os.path.join(d, "ringmq.yaml")
    with open(cfg, "w") as f:
        f.write(YAML % dict(ports, kc=kc, dir=d, bw=a.batch_wait))
    log = open(os.path.join(d, "broker.log"), "w")
    b = subprocess.Popen([os.path.abspath(a.ringmq), "-c", cfg, "--threads", "2"], stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not rq.port_open(ports["sat"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        warm_tok = api.token("bench", "sa-0", expires_in=7200)
        # the warm storm measures the cache: its token is reviewed once before
        storm(a.ringbench, ports["sat"], b.pid, 1, 1, ["--auth-method", "K8S-SAT",
                                                       "--auth-data", warm_tok])
        res = {m: [] for m in modes}
        tok_files = {}

        def one(m, r):
            if m == "plain":
                return storm(a.ringbench, ports["plain"], b.pid, a.n, a.concurrency, [])
            if m == "plain1k":
                return storm(a.ringbench, ports["plain"], b.pid, a.n, a.concurrency,
                             ["--username", "u", "--password", warm_tok])
            n0 = api.count("tokenreview")
            if m == "warm":
                x = storm(a.ringbench, ports["sat"], b.pid, a.n, a.concurrency,
                          ["--auth-method", "K8S-SAT", "--auth-data", warm_tok])
            elif m == "cold":
                x = storm(a.ringbench, ports["sat"], b.pid, a.n, a.concurrency,
                          ["--auth-method", "K8S-SAT", "--auth-data-file", tok_files[r]])
            else:
                fc = min(a.flight_concurrency, a.n)
                x = storm(a.ringbench, ports["sat"], b.pid, fc, fc,
                          ["--auth-method", "K8S-SAT", "--auth-data",
                           api.token("bench", "sa-1", expires_in=7200)])
            return x + (api.count("tokenreview") - n0,)

        for r in range(a.repeat):
            if "cold" in modes:
                tok_files[r] = os.path.join(d, "tokens-%d" % r)
                with open(tok_files[r], "w") as f:
                    for i in range(a.n):
                        f.write(api.token("bench", "sa-%d" % (i % 10), expires_in=7200) + "\n")
            # the order turns every round: a storm's closed connections linger in TIME_WAIT
            # and make the next storms' connect() slower, so a fixed order favours the first
            for m in modes[r % len(modes):] + modes[:r % len(modes)]:
                res[m].append(one(m, r))
        print(json.dumps(res))
        print("connect storm, %d clients, concurrency %d, median of %d rounds:"
              % (a.n, a.concurrency, a.repeat))
        for m in ("plain", "plain1k", "warm", "cold"):
            if m not in res:
                continue
            cps, cpu = median(x[2] for x in res[m]), median(x[3] for x in res[m])
            line = "  %-7s %8.0f conn/s, broker CPU %s us per CONNECT" % (
                m, cps, "%.1f" % cpu if cpu else "?")
            if m != "plain" and "plain" in res:
                rc, ru = ratios(res, m, "plain", 2), ratios(res, m, "plain", 3)
                line += "; per-round ratio to plain: conn/s %.2f, CPU %s" % (
                    rc, "%.2f" % ru if ru else "?")
            if m in ("warm", "cold"):
                line += "; TokenReviews per run %s" % [x[4] for x in res[m]]
            print(line)
        if "warm" in res and "plain1k" in res:
            print("  warm / plain1k: conn/s %.2f, CPU %s (what the method costs beyond the "
                  "token's bytes)" % (ratios(res, "warm", "plain1k", 2),
                                      "%.2f" % (ratios(res, "warm", "plain1k", 3) or 0)))
        if "flight" in res:
            print("  flight: %d clients at once with one fresh token: TokenReviews per run %s"
                  % (min(a.flight_concurrency, a.n), [x[4] for x in res["flight"]]))
    finally:
        b.terminate()
        b.wait(10)
        api.stop()


if __name__ == "__main__":
    main()
