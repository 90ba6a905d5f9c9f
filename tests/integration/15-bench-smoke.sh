#!/usr/bin/env bash
# 15 bench smoke: the benchmark harness still works (so that it cannot rot).
#
# Runs bench/compare.py --smoke against the ringmq binary under test (and Debian's mosquitto when
# it is installed): a 200-connection storm, QoS 0/1/2 runs at low fixed rates over MQTT 3.1.1
# and 5 (fan-in, pairwise, shared subscriptions) that must deliver every message in order, a
# short max-rate search, and TLS: fan-in over TLS (the broker verified against a CA made at run
# time) and a 50-connection storm with client certificates (X.509 authentication). ringmq only
# (mosquitto has no Custom method; skipped for it), through tools/custom-auth-server.py: a
# 50-connection storm with Custom authentication (one request per CONNECT), and pairwise 4->4
# QoS 1 with per-client topics (ringbench --client-topics) through a 100-rule
# BrokerAuthorization whose topics carry {principal.clientId}. compare.py exits non-zero when
# ringbench delivered nothing, lost or reordered a message at a low rate, failed a connection,
# completed no TLS handshake in a TLS scenario, or made no request to the auth server in a
# Custom or authorization scenario (a policy that denied the bench's topics delivers nothing).
# Also checks that ringbench refuses non-loopback targets, inconsistent TLS options and
# --client-topics without the pairwise pattern.
# Everything stays on 127.0.0.1.
# Exit: 0 pass, 1 fail, 77 skip.
set -u
# test servers listen on loopback only: the brokers leave the default metrics endpoint
# (0.0.0.0:9600 with a configuration file) closed
export RINGMQ_TEST_NO_DEFAULT_METRICS=1

fail() { echo "FAIL: $*"; exit 1; }

BIN=${RINGMQ_BIN:-}
SRC=${RINGMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${RINGMQ_BUILD:-$SRC/build}
BENCH=$BUILD/bench/ringbench
[ -n "$BIN" ] && [ -x "$BIN" ] || fail "RINGMQ_BIN is not an executable: '$BIN'"
[ -x "$BENCH" ] || fail "ringbench was not built: $BENCH (bench/CMakeLists.txt)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || { echo "SKIP: no python3"; exit 77; }

echo "--- ringbench refuses what it must refuse"
out=$("$BENCH" --cafile /etc/hostname 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "needs --tls" <<<"$out" || fail "--cafile without --tls: rc=$rc: $out"
out=$("$BENCH" --tls --cert /etc/hostname 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "go together" <<<"$out" || fail "--cert without --key: rc=$rc: $out"
out=$("$BENCH" --tls --tls-version 1.1 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "--tls-version 1.1 accepted: $out"
out=$("$BENCH" --host 10.1.2.3 --rate 10 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "loopback" <<<"$out" || fail "non-loopback host: rc=$rc: $out"
out=$("$BENCH" --pattern pairwise --pubs 2 --subs 3 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "pairwise with pubs != subs accepted: $out"
out=$("$BENCH" --client-topics --rate 10 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "goes with --pattern pairwise" <<<"$out" ||
    fail "--client-topics without pairwise: rc=$rc: $out"

echo "--- compare.py --smoke"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
timeout 240 "$PY" "$SRC/bench/compare.py" --smoke --ringmq "$BIN" --ringbench "$BENCH" \
    --out "$tmp" >"$tmp/out.txt" 2>"$tmp/err.txt"
rc=$?
cat "$tmp/out.txt"
if [ "$rc" -ne 0 ]; then
    echo "--- stderr"
    tail -60 "$tmp/err.txt"
    fail "compare.py --smoke exited $rc"
fi
grep -q "^smoke: ok" "$tmp/out.txt" || fail "no 'smoke: ok' line"
ls "$tmp"/smoke-*.json >/dev/null 2>&1 || fail "no JSON written"
echo "PASS"
exit 0
