#!/usr/bin/python3
"""Connect storms with ServiceAccountToken (K8S-SAT) against ringmq, measured with ringbench.

Starts the test Kubernetes API server (tests/integration/lib/kube_api.py) and one broker with a
plain port and a SAT port, then runs ringbench connect storms (MQTT 5):
  plain  no authentication                                      (the reference)
  warm   every client the same token, already in the cache      (target: >= 0.9 x plain)
  cold   every client its own token (--auth-data-file)          (TokenReviews = distinct tokens)
  flight every client one fresh token, --flight-concurrency at once (single flight: 1 review)
and prints connections/s and the TokenReview count of each. Numbers depend on the machine: on a
shared 2-core VM the generator, the broker and the Python API server compete for CPU.

  bench/sat-storm.py --ringmq build/ringmq --ringbench build/bench/ringbench -n 2000
"""

import argparse
import json
import os
import re
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
    cmd = [rb, "--port", str(port), "--pid", str(pid), "--mqtt", "5", "--connect", str(n),
           "--concurrency", str(conc), "--hold", "0"] + extra
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    m = re.search(r"(\d+)/(\d+) connected in ([\d.]+) s = (\d+) conn/s", out.stdout)
    if not m:
        sys.exit("ringbench failed:\n%s%s" % (out.stdout, out.stderr))
    return int(m.group(1)), int(m.group(2)), float(m.group(4))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringmq", default=os.path.join(HERE, "..", "build", "ringmq"))
    ap.add_argument("--ringbench", default=os.path.join(HERE, "..", "build", "bench",
                                                        "ringbench"))
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--flight-concurrency", type=int, default=1000)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="sat-storm-")
    api = kube_api.KubeAPI(d, require_bearer="bench")
    for i in range(10):
        api.add_sa("bench", "sa-%d" % i, {"aio-broker-auth/group": "g%d" % i})
    kc = api.write_kubeconfig(os.path.join(d, "kc"), token="bench")
    ports = {"plain": rq.free_port(), "sat": rq.free_port()}
    cfg = os.path.join(d, "ringmq.yaml")
    with open(cfg, "w") as f:
        f.write(YAML % dict(ports, kc=kc, dir=d))
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
        res = {"plain": [], "warm": [], "cold": [], "flight": []}
        for r in range(a.repeat):
            res["plain"].append(storm(a.ringbench, ports["plain"], b.pid, a.n, a.concurrency, []))
            n0 = api.count("tokenreview")
            res["warm"].append(storm(a.ringbench, ports["sat"], b.pid, a.n, a.concurrency,
                                     ["--auth-method", "K8S-SAT", "--auth-data", warm_tok]))
            res["warm"][-1] += (api.count("tokenreview") - n0,)
            tf = os.path.join(d, "tokens-%d" % r)
            with open(tf, "w") as f:
                for i in range(a.n):
                    f.write(api.token("bench", "sa-%d" % (i % 10), expires_in=7200) + "\n")
            n0 = api.count("tokenreview")
            res["cold"].append(storm(a.ringbench, ports["sat"], b.pid, a.n, a.concurrency,
                                     ["--auth-method", "K8S-SAT", "--auth-data-file", tf]))
            res["cold"][-1] += (api.count("tokenreview") - n0,)
            n0 = api.count("tokenreview")
            fc = min(a.flight_concurrency, a.n)
            res["flight"].append(storm(a.ringbench, ports["sat"], b.pid, fc, fc,
                                       ["--auth-method", "K8S-SAT", "--auth-data",
                                        api.token("bench", "sa-1", expires_in=7200)]))
            res["flight"][-1] += (api.count("tokenreview") - n0,)
        med = {k: sorted(x[2] for x in v)[len(v) // 2] for k, v in res.items()}
        print(json.dumps(res))
        print("connect storm, %d clients, concurrency %d, median of %d:" % (a.n, a.concurrency,
                                                                          a.repeat))
        print("  plain %8.0f conn/s" % med["plain"])
        print("  warm  %8.0f conn/s  (%.2f x plain; TokenReviews per run %s)"
              % (med["warm"], med["warm"] / med["plain"], [x[3] for x in res["warm"]]))
        print("  cold  %8.0f conn/s  (%.2f x plain; TokenReviews per run %s for %d distinct "
              "tokens)" % (med["cold"], med["cold"] / med["plain"], [x[3] for x in res["cold"]],
                           a.n))
        print("  flight: %d clients at once with one fresh token: TokenReviews per run %s"
              % (min(a.flight_concurrency, a.n), [x[3] for x in res["flight"]]))
    finally:
        b.terminate()
        b.wait(10)
        api.stop()


if __name__ == "__main__":
    main()
