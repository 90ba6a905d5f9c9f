/* Metrics and health for the control thread's HTTP endpoint (net/http.h) and $SYS: renders
 * the per-shard counters of core/stats.h in the Prometheus text exposition format, answers
 * whether every shard loop is turning, and holds what the control thread itself counts
 * (reloads, readiness). The shard-side hooks (authentication latency, TLS handshake failures,
 * the test stall) are here too, so that net/ files call them in one line. */
#ifndef RQ_METRICS_H
#define RQ_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/stats.h"

/* An idle shard loop still turns this often (ms): its heartbeat. */
#define RQ_METRICS_TURN_MS 1000
/* /healthz fails when a shard's loop has not turned for this long (ms). */
#define RQ_METRICS_STUCK_MS 5000

struct conn;
struct rq_auth_verdict;
struct rq_broker;
struct rq_buf;

/* What the control thread sets and the exposition / probes read (any thread). */
struct rq_metrics_ctl {
    struct rq_broker *broker;       /* retained store, shard inbox backlogs */
    _Atomic uint64_t reloads_ok;
    _Atomic uint64_t reloads_failed;
    _Atomic int64_t last_reload_ok; /* Unix seconds: the start, then each good reload */
    int64_t start_unix;
    uint64_t start_ms;              /* monotonic */
    _Atomic bool listening;         /* every shard's listeners bound and accepting */
    _Atomic bool stopping;          /* SIGTERM / SIGINT received */
    /* Test hook (RINGMQ_TEST_STALL_MS, see main.c): the shard id + 1 to stall once, and how
     * long. */
    _Atomic int stall_shard;
    _Atomic uint32_t stall_ms;
};
extern struct rq_metrics_ctl rq_metrics_ctl;

/* The exposition text of every metric, appended to out. 0, or -ENOMEM. Any thread. */
int rq_metrics_render(struct rq_buf *out);
/* The first shard whose loop has not turned for RQ_METRICS_STUCK_MS (its age in *age_ms), or
 * -1 when all turn. */
int rq_metrics_stuck_shard(uint64_t now_ms, uint64_t *age_ms);
/* Whether /readyz is ok; else *why says what is missing. */
bool rq_metrics_ready(const char **why);

/* Shard thread, top of each loop turn: the test stall, when armed for this shard. */
void rq_metrics_test_stall(int shard);
/* Shard thread: the authentication of c's CONNECT ended with v (PENDING and OFF are ignored):
 * its latency since c->auth_started_us. */
void rq_metrics_authn_done(struct conn *c, const struct rq_auth_verdict *v);
/* Shard thread: the TLS handshake of ssl (a WOLFSSL *) failed with this wolfSSL error
 * (metrics_tls.c); rx, rx_len: the bytes of the read that failed. A fatal alert received from
 * the client (also one sent in the clear where wolfSSL expected an encrypted record) names the
 * cause "alert", whatever error wolfSSL then reports. */
void rq_metrics_tls_failure(void *ssl, int err, const uint8_t *rx, size_t rx_len);

/* $SYS/broker/... (metrics_sys.c): posts the current values to shard 0, which publishes them
 * as retained messages. Control thread. */
struct rq_shard;
void rq_sys_publish(struct rq_shard **shards, int n);

/* systemd notify protocol (metrics_notify.c): sends state ("READY=1", "STOPPING=1",
 * "WATCHDOG=1", ...) to $NOTIFY_SOCKET. 1 sent, 0 no socket set, -1 failed. */
int rq_sd_notify(const char *state);
/* The watchdog interval systemd asks for (WATCHDOG_USEC, for this process), or 0. */
uint64_t rq_sd_watchdog_usec(void);

#endif
