#!/usr/bin/env python3
"""Broker CPU, system calls and context switches per CONNECT: plain against uncached Custom.

One broker (or several binaries, alternated round by round) and one tools/custom-auth-server.py
(through bench/compare.py's helpers); each round runs a plain connect storm and an uncached
Custom storm (one HTTPS request per CONNECT) on the same broker, with `perf stat` attached to
the broker for the counts that do not depend on the machine's load as much as CPU time does.
Round 0 is a warm-up (it opens the pool's connections: 64 TLS handshakes); rows of later rounds
are steady state. Needs perf; --record FILE adds `perf record -g` of the last Custom storm.

    python3 bench/custom-cpu.py --bin build/ringmq --bin /tmp/old-ringmq --rounds 3
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare as C  # noqa: E402


def cpu_us(pid):
    with open("/proc/%d/stat" % pid) as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) * 1e6 / os.sysconf("SC_CLK_TCK")


def storm(b, port, ringbench, n, wd, record=None):
    stat = os.path.join(wd, "perf-stat.txt")
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter,context-switches",
                             "-p", str(b.pid), "-o", stat])
    rec = None
    if record:
        rec = subprocess.Popen(["perf", "record", "-g", "-o", record, "-p", str(b.pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    c0 = cpu_us(b.pid)
    p = subprocess.run([ringbench, "--port", str(port), "--json", os.path.join(wd, "r.json"),
                        "--threads", "1", "--connect", str(n), "--concurrency", "64", "--hold",
                        "0", "--duration", "120", "--pid", str(b.pid)],
                       capture_output=True, text=True)
    c1 = cpu_us(b.pid)
    for x in (perf, rec):
        if x:
            x.send_signal(2)
            x.wait()
    cnt = {}
    for line in open(stat):
        f = line.strip().split(",")
        if len(f) > 3 and f[0][:1].isdigit():
            cnt[f[2]] = float(f[0])
    return {"cpu_us": round((c1 - c0) / n, 1), "ok": p.returncode == 0,
            "syscalls": round(cnt.get("raw_syscalls:sys_enter", 0) / n, 2),
            "cswitches": round(cnt.get("context-switches", 0) / n, 2)}


def run_binary(binary, a, ringbench, wd, pki, auth):
    b = C.start_ringmq(binary, 2, wd, pki, auth)
    rows = []
    try:
        for r in range(a.rounds):
            plain = storm(b, b.port, ringbench, a.n, wd)
            last = r == a.rounds - 1
            custom = storm(b, b.ports["custom"], ringbench, a.n, wd, a.record if last else None)
            row = {"binary": binary, "round": r, "plain": plain, "custom": custom,
                   "ratio": round(custom["cpu_us"] / plain["cpu_us"], 2) if plain["cpu_us"] else None,
                   "load": round(os.getloadavg()[0], 1)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        b.stop()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", action="append", required=True, help="ringmq binary (repeatable)")
    ap.add_argument("--ringbench", default=os.path.join(HERE, "..", "build", "bench", "ringbench"))
    ap.add_argument("--rounds", type=int, default=2, help="per binary and pass; round 0 warms up")
    ap.add_argument("--passes", type=int, default=2, help="alternations of the binaries")
    ap.add_argument("--n", type=int, default=10000, help="CONNECTs per storm")
    ap.add_argument("--record", help="perf record -g of the last Custom storm into this file")
    a = ap.parse_args()
    wd = tempfile.mkdtemp(prefix="custom-cpu-")
    pki = C.make_pki(wd)
    auth = C.AuthServer(wd, pki)
    auth.set_mode("users")  # no Cache-Control: one request per CONNECT
    try:
        for _ in range(a.passes):
            for binary in a.bin:
                run_binary(binary, a, a.ringbench, wd, pki, auth)
    finally:
        auth.stop()


if __name__ == "__main__":
    main()
