/* The Prometheus text exposition (format 0.0.4) of the counters, health and readiness (see
 * metrics.h). Every family has HELP and TYPE lines; AIO's names keep AIO's spelling (no _total
 * suffix), ringmq's own counters end in _total. */
#include "net/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/broker.h"
#include "core/buf.h"
#include "core/principal.h"
#include "core/retain.h"
#include "net/shard_int.h"

struct rq_metrics_ctl rq_metrics_ctl;

struct out {
    struct rq_buf *b;
    int err;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line || rq_buf_append(o->b, line, (size_t)n) != 0)
        o->err = -ENOMEM;
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with one unlabelled sample. */
static void single(struct out *o, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    family(o, name, type, help);
    put(o, "%s %" PRIu64 "\n", name, v);
}

static int64_t gauge_sum(enum rq_stat i)
{
    return (int64_t)rq_stats_sum(i); /* deltas: the wrapped sum is the signed value */
}

static uint64_t cell(_Atomic uint64_t *x)
{
    return atomic_load_explicit(x, memory_order_relaxed);
}

static void retained(struct out *o)
{
    size_t n = 0;
    struct rq_broker *b = rq_metrics_ctl.broker;
    if (b) {
        pthread_mutex_lock(&b->retain_lock);
        n = rq_retain_count(b->retained);
        pthread_mutex_unlock(&b->retain_lock);
    }
    single(o, "aio_broker_store_retained_messages", "gauge", "Retained messages stored.", n);
    family(o, "aio_broker_store_retained_bytes", "gauge", "Payload bytes of retained messages.");
    put(o, "aio_broker_store_retained_bytes %" PRId64 "\n", gauge_sum(RQ_ST_RETAINED_BYTES));
}

static void aio_messaging(struct out *o)
{
    static const struct {
        const char *name, *help;
        enum rq_stat st;
    } c[] = {
        {"aio_broker_publishes_received", "PUBLISH packets received from clients.",
         RQ_ST_PUBLISHES_RECEIVED},
        {"aio_broker_publishes_sent", "PUBLISH packets sent to clients.", RQ_ST_PUBLISHES_SENT},
        {"aio_broker_payload_bytes_received", "Payload bytes of PUBLISH packets received.",
         RQ_ST_PAYLOAD_BYTES_RECEIVED},
        {"aio_broker_payload_bytes_sent", "Payload bytes of PUBLISH packets sent.",
         RQ_ST_PAYLOAD_BYTES_SENT},
        {"aio_broker_authentication_successes", "CONNECTs allowed by authentication.",
         RQ_ST_AUTHN_SUCCESS},
        {"aio_broker_authentication_failures",
         "CONNECTs authentication could not decide (error, auth server unavailable or busy).",
         RQ_ST_AUTHN_FAILURE},
        {"aio_broker_authentication_deny", "CONNECTs whose credentials were refused.",
         RQ_ST_AUTHN_DENY},
        {"aio_broker_authorization_allow", "Operations allowed by authorization.",
         RQ_ST_AUTHZ_ALLOW},
        {"aio_broker_authorization_deny", "Operations denied by authorization.",
         RQ_ST_AUTHZ_DENY},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        single(o, c[i].name, "counter", c[i].help, rq_stats_sum(c[i].st));
    family(o, "aio_broker_qos0_messages_dropped", "counter",
           "QoS 0 messages dropped: incoming (from a client, not routed), outgoing (toward a "
           "subscriber).");
    put(o, "aio_broker_qos0_messages_dropped{direction=\"incoming\"} %" PRIu64 "\n",
        rq_stats_sum(RQ_ST_QOS0_DROPPED_IN));
    put(o, "aio_broker_qos0_messages_dropped{direction=\"outgoing\"} %" PRIu64 "\n",
        rq_stats_sum(RQ_ST_QOS0_DROPPED_OUT));
}

static void aio_sessions(struct out *o)
{
    family(o, "aio_broker_connected_sessions", "gauge", "Clients connected (past CONNACK).");
    put(o, "aio_broker_connected_sessions %" PRId64 "\n", gauge_sum(RQ_ST_CONNECTED));
    family(o, "aio_broker_total_sessions", "gauge",
           "Sessions, connected or not, by the MQTT version last used with them.");
    put(o, "aio_broker_total_sessions{mqtt_version=\"v3\"} %" PRId64 "\n",
        gauge_sum(RQ_ST_SESSIONS_V3));
    put(o, "aio_broker_total_sessions{mqtt_version=\"v5\"} %" PRId64 "\n",
        gauge_sum(RQ_ST_SESSIONS_V5));
    family(o, "aio_broker_total_subscriptions", "gauge", "Subscriptions of all sessions.");
    put(o, "aio_broker_total_subscriptions %" PRId64 "\n", gauge_sum(RQ_ST_SUBSCRIPTIONS));
    retained(o);
    family(o, "aio_broker_store_will_messages", "gauge", "Will messages held by sessions.");
    put(o, "aio_broker_store_will_messages %" PRId64 "\n", gauge_sum(RQ_ST_WILLS));
}

/* One family with a sample per shard. */
static void per_shard(struct out *o, const char *name, const char *type, const char *help,
                      enum rq_stat st)
{
    family(o, name, type, help);
    for (int i = 0; i < rq_stats_shards(); i++)
        put(o, "%s{shard=\"%d\"} %" PRIu64 "\n", name, i, cell(&rq_stats_block(i)->v[st]));
}

static void shards(struct out *o, uint64_t now_ms)
{
    int n = rq_stats_shards();
    per_shard(o, "ringmq_shard_connections", "gauge",
              "TCP connections of the shard (before CONNECT included).", RQ_ST_CONNECTIONS);
    per_shard(o, "ringmq_shard_loop_iterations_total", "counter",
              "Turns of the shard's io_uring loop.", RQ_ST_LOOP_ITERATIONS);
    per_shard(o, "ringmq_shard_clients_moved_in_total", "counter",
              "Connected clients moved to the shard because their messages went there "
              "(spec.ringmq.placement).", RQ_ST_MOVES_IN);
    per_shard(o, "ringmq_backpressure_pauses_total", "counter",
              "Connections the shard stopped reading because a shard it posts to fell behind.",
              RQ_ST_BACKPRESSURE_PAUSES);
    family(o, "ringmq_shard_inbox_pending_messages", "gauge",
           "Messages other shards posted to the shard that it has not delivered yet.");
    struct rq_broker *b = rq_metrics_ctl.broker;
    for (int i = 0; b && i < n && i < b->n_shards; i++)
        put(o, "ringmq_shard_inbox_pending_messages{shard=\"%d\"} %" PRIu64 "\n", i,
            (uint64_t)atomic_load_explicit(&b->pending[i].n, memory_order_relaxed));
    family(o, "ringmq_shard_last_turn_age_seconds", "gauge",
           "Seconds since the shard's loop last turned (/healthz fails above 5).");
    for (int i = 0; i < n; i++) {
        uint64_t t = cell(&rq_stats_block(i)->last_turn_ms);
        uint64_t age = t && now_ms > t ? now_ms - t : 0;
        put(o, "ringmq_shard_last_turn_age_seconds{shard=\"%d\"} %" PRIu64 ".%03" PRIu64 "\n", i,
            age / 1000, age % 1000);
    }
    family(o, "ringmq_io_backend_info", "gauge", "The I/O backend of each shard (value 1).");
    for (int i = 0; i < n && i < rq_n_shards && rq_shards; i++)
        if (rq_shards[i] && rq_shards[i]->ring_mode)
            put(o, "ringmq_io_backend_info{shard=\"%d\",backend=\"io_uring\",mode=\"%s\"} 1\n", i,
                rq_shards[i]->ring_mode);
}

static void labelled(struct out *o, const char *name, const char *label, const char *const *vals,
                     const enum rq_stat *st, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(o, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, vals[i], rq_stats_sum(st[i]));
}

static void drops_and_tls(struct out *o)
{
    static const char *const reasons[] = {"queue_limit", "too_large", "expired",
                                          "not_authorized"};
    static const enum rq_stat rs[] = {RQ_ST_DROP_QUEUE_LIMIT, RQ_ST_DROP_TOO_LARGE,
                                      RQ_ST_DROP_EXPIRED, RQ_ST_DROP_NOT_AUTHORIZED};
    family(o, "ringmq_messages_dropped_total", "counter", "Messages dropped, by reason.");
    labelled(o, "ringmq_messages_dropped_total", "reason", reasons, rs, 4);
    static const char *const causes[] = {"certificate", "version", "cipher", "protocol",
                                         "alert", "other"};
    static const enum rq_stat cs[] = {RQ_ST_TLS_FAIL_CERTIFICATE, RQ_ST_TLS_FAIL_VERSION,
                                      RQ_ST_TLS_FAIL_CIPHER, RQ_ST_TLS_FAIL_PROTOCOL,
                                      RQ_ST_TLS_FAIL_ALERT, RQ_ST_TLS_FAIL_OTHER};
    family(o, "ringmq_tls_handshake_failures_total", "counter", "TLS handshakes failed, by cause.");
    labelled(o, "ringmq_tls_handshake_failures_total", "cause", causes, cs, 6);
    single(o, "ringmq_network_bytes_received_total", "counter",
           "Bytes read from client sockets (TLS and WebSocket framing included).",
           rq_stats_sum(RQ_ST_NET_BYTES_RECEIVED));
    single(o, "ringmq_network_bytes_sent_total", "counter", "Bytes written to client sockets.",
           rq_stats_sum(RQ_ST_NET_BYTES_SENT));
}

/* Sum of one histogram cell over every block. */
static void hist_sum(int m, int oc, uint64_t *buckets, uint64_t *sum_us)
{
    for (int s = -1; s < rq_stats_shards(); s++) {
        struct rq_lat_hist *h = &rq_stats_block(s)->lat[m][oc];
        for (int b = 0; b <= RQ_LAT_BUCKETS; b++)
            buckets[b] += cell(&h->bucket[b]);
        *sum_us += cell(&h->sum_us);
    }
}

static void auth_latency(struct out *o)
{
    static const char *const methods[RQ_AM_COUNT] = {"X509", "Custom", "ServiceAccountToken",
                                                     "none"};
    static const char *const outcomes[RQ_AO_COUNT] = {"allow", "deny", "failure"};
    const char *name = "ringmq_auth_request_duration_seconds";
    family(o, name, "histogram",
           "Time from a CONNECT to its authentication verdict, by the method that decided (none: "
           "no method of the chain did) and outcome.");
    for (int m = 0; m < RQ_AM_COUNT; m++) {
        for (int oc = 0; oc < RQ_AO_COUNT; oc++) {
            uint64_t bk[RQ_LAT_BUCKETS + 1] = {0}, sum = 0, cum = 0;
            hist_sum(m, oc, bk, &sum);
            for (int b = 0; b <= RQ_LAT_BUCKETS; b++)
                cum += bk[b];
            if (cum == 0)
                continue; /* only the combinations seen */
            cum = 0;
            for (int b = 0; b < RQ_LAT_BUCKETS; b++) {
                cum += bk[b];
                uint64_t us = rq_stats_lat_bounds_us[b];
                put(o, "%s_bucket{method=\"%s\",outcome=\"%s\",le=\"%" PRIu64 ".%06" PRIu64
                    "\"} %" PRIu64 "\n", name, methods[m], outcomes[oc], us / 1000000,
                    us % 1000000, cum);
            }
            cum += bk[RQ_LAT_BUCKETS];
            put(o, "%s_bucket{method=\"%s\",outcome=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", name,
                methods[m], outcomes[oc], cum);
            put(o, "%s_sum{method=\"%s\",outcome=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n", name,
                methods[m], outcomes[oc], sum / 1000000, sum % 1000000);
            put(o, "%s_count{method=\"%s\",outcome=\"%s\"} %" PRIu64 "\n", name, methods[m],
                outcomes[oc], cum);
        }
    }
}

static void auth_misc(struct out *o)
{
    single(o, "ringmq_auth_cache_hits_total", "counter",
           "Authentication answers taken from a result cache (Custom, ServiceAccountToken).",
           rq_stats_sum(RQ_ST_AUTH_CACHE_HIT));
    single(o, "ringmq_auth_cache_misses_total", "counter",
           "Authentications a result cache could not answer (Custom, ServiceAccountToken).",
           rq_stats_sum(RQ_ST_AUTH_CACHE_MISS));
    static const char *const servers[RQ_AUTH_SRV_COUNT] = {"custom", "kubernetes"};
    static const char *const classes[RQ_HTTP_CLASS_COUNT] = {"2xx", "3xx", "4xx", "5xx",
                                                             "error"};
    family(o, "ringmq_auth_server_requests_total", "counter",
           "Requests to authentication servers, by server and HTTP status class (error: no "
           "response).");
    for (int sv = 0; sv < RQ_AUTH_SRV_COUNT; sv++) {
        for (int k = 0; k < RQ_HTTP_CLASS_COUNT; k++) {
            uint64_t n = 0;
            for (int s = -1; s < rq_stats_shards(); s++)
                n += cell(&rq_stats_block(s)->http[sv][k]);
            put(o, "ringmq_auth_server_requests_total{server=\"%s\",status=\"%s\"} %" PRIu64
                "\n", servers[sv], classes[k], n);
        }
    }
    family(o, "ringmq_reauthentications_total", "counter",
           "MQTT v5 re-authentications (AUTH 0x19), by result (retry: AUTH 0x18).");
    put(o, "ringmq_reauthentications_total{result=\"success\"} %" PRIu64 "\n",
        rq_stats_sum(RQ_ST_REAUTH_SUCCESS));
    put(o, "ringmq_reauthentications_total{result=\"failure\"} %" PRIu64 "\n",
        rq_stats_sum(RQ_ST_REAUTH_FAILURE));
    put(o, "ringmq_reauthentications_total{result=\"retry\"} %" PRIu64 "\n",
        rq_stats_sum(RQ_ST_REAUTH_RETRY));
}

static void control(struct out *o)
{
    struct rq_metrics_ctl *c = &rq_metrics_ctl;
    single(o, "ringmq_config_reloads_total", "counter", "Configuration reloads that applied.",
           atomic_load(&c->reloads_ok));
    single(o, "ringmq_config_reload_failures_total", "counter",
           "Configuration reloads refused (the running configuration stayed).",
           atomic_load(&c->reloads_failed));
    single(o, "ringmq_config_last_reload_success_timestamp_seconds", "gauge",
           "Unix time of the last configuration that applied (the start, then each reload).",
           (uint64_t)atomic_load(&c->last_reload_ok));
    single(o, "ringmq_start_time_seconds", "gauge", "Unix time the broker started.",
           (uint64_t)c->start_unix);
    family(o, "ringmq_build_info", "gauge", "The ringmq version (value 1).");
    put(o, "ringmq_build_info{version=\"%s\"} 1\n", RINGMQ_VERSION);
}

int rq_metrics_render(struct rq_buf *out)
{
    struct out o = {.b = out};
    aio_messaging(&o);
    aio_sessions(&o);
    shards(&o, rq_now_ms());
    drops_and_tls(&o);
    auth_latency(&o);
    auth_misc(&o);
    control(&o);
    return o.err;
}

int rq_metrics_stuck_shard(uint64_t now_ms, uint64_t *age_ms)
{
    for (int i = 0; i < rq_stats_shards(); i++) {
        uint64_t t = cell(&rq_stats_block(i)->last_turn_ms);
        if (t < rq_metrics_ctl.start_ms)
            t = rq_metrics_ctl.start_ms; /* not turned yet: counted from the start */
        if (now_ms > t && now_ms - t > RQ_METRICS_STUCK_MS) {
            *age_ms = now_ms - t;
            return i;
        }
    }
    return -1;
}

bool rq_metrics_ready(const char **why)
{
    if (atomic_load(&rq_metrics_ctl.stopping)) {
        *why = "shutting down";
        return false;
    }
    if (!atomic_load(&rq_metrics_ctl.listening)) {
        *why = "listeners not bound yet";
        return false;
    }
    return true;
}

void rq_metrics_test_stall(int shard)
{
    if (atomic_load_explicit(&rq_metrics_ctl.stall_shard, memory_order_relaxed) != shard + 1)
        return;
    int want = shard + 1;
    if (!atomic_compare_exchange_strong(&rq_metrics_ctl.stall_shard, &want, 0))
        return;
    uint32_t ms = atomic_load(&rq_metrics_ctl.stall_ms);
    rq_log(RQ_LOG_WARN, NULL, "shard %d: stalling %u ms (test hook RINGMQ_TEST_STALL_MS)", shard,
           ms);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void rq_metrics_authn_done(struct conn *c, const struct rq_auth_verdict *v)
{
    if (v->result == RQ_AUTH_PENDING || v->result == RQ_AUTH_OFF)
        return;
    uint64_t now = rq_stats_now_us();
    rq_stats_authn_latency(v->method, v->result, v->reason,
                           now > c->auth_started_us ? now - c->auth_started_us : 0);
}
