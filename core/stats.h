/* Runtime counters for /metrics and $SYS: one block per shard, each on its own cache lines,
 * written only by its shard's thread (relaxed load + store: a plain add on x86, no lock, no
 * shared cache line on the publish path) and summed by the scraper. Code on a shard thread
 * bumps a counter in one line, rq_stat_add(RQ_ST_X, n): the block is found through a
 * thread-local pointer set when the shard's thread starts (rq_stats_bind). Other threads (auth
 * pool, control thread) and unit tests without shards add to one shared block with an atomic
 * add; nothing on the publish path runs there.
 *
 * Gauges (connected sessions, sessions, subscriptions, wills, retained bytes) are kept as
 * per-shard deltas: +1 where a thing appears, -1 where it goes, whichever shard that is; the
 * sum over all blocks is the value (two's complement wrap-around makes a block's negative
 * share fine). */
#ifndef RQ_STATS_H
#define RQ_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rq_stat {
    /* AIO names (aio_broker_ prefix) */
    RQ_ST_PUBLISHES_RECEIVED,
    RQ_ST_PUBLISHES_SENT,
    RQ_ST_PAYLOAD_BYTES_RECEIVED,
    RQ_ST_PAYLOAD_BYTES_SENT,
    RQ_ST_AUTHN_SUCCESS,
    RQ_ST_AUTHN_FAILURE, /* no verdict: an error, the auth server unavailable or busy */
    RQ_ST_AUTHN_DENY,    /* the credentials were checked and refused */
    RQ_ST_AUTHZ_ALLOW,   /* authorization: bumped by the authorization engine */
    RQ_ST_AUTHZ_DENY,
    RQ_ST_QOS0_DROPPED_IN,  /* QoS 0 PUBLISHes from clients not routed (refused topic) */
    RQ_ST_QOS0_DROPPED_OUT, /* QoS 0 deliveries dropped (queue limit, too large, expired) */
    RQ_ST_CONNECTED,      /* gauge: clients past CONNACK */
    RQ_ST_SESSIONS_V3,    /* gauge: sessions (online and offline) last used with 3.1 / 3.1.1 */
    RQ_ST_SESSIONS_V5,    /* gauge: ... with 5 */
    RQ_ST_SUBSCRIPTIONS,  /* gauge */
    RQ_ST_RETAINED_BYTES, /* gauge: payload bytes of retained messages */
    RQ_ST_WILLS,          /* gauge: wills held by sessions */
    /* ringmq_ runtime */
    RQ_ST_DROP_QUEUE_LIMIT, /* messages dropped by reason (any QoS) */
    RQ_ST_DROP_TOO_LARGE,
    RQ_ST_DROP_EXPIRED,
    RQ_ST_DROP_NOT_AUTHORIZED,
    RQ_ST_LOOP_ITERATIONS,
    RQ_ST_CONNECTIONS, /* gauge (absolute, set each loop turn): the shard's TCP connections */
    RQ_ST_BACKPRESSURE_PAUSES,
    RQ_ST_NET_BYTES_RECEIVED, /* bytes read from sockets (TLS and WebSocket framing included) */
    RQ_ST_NET_BYTES_SENT,
    RQ_ST_TLS_FAIL_CERTIFICATE, /* TLS handshake failures by cause */
    RQ_ST_TLS_FAIL_VERSION,
    RQ_ST_TLS_FAIL_CIPHER,
    RQ_ST_TLS_FAIL_PROTOCOL, /* not TLS, malformed records, unexpected messages */
    RQ_ST_TLS_FAIL_ALERT,    /* the client ended it with an alert (e.g. it distrusts our cert) */
    RQ_ST_TLS_FAIL_OTHER,
    RQ_ST_AUTH_CACHE_HIT,
    RQ_ST_AUTH_CACHE_MISS,
    RQ_ST_REAUTH_SUCCESS, /* MQTT v5 re-authentication (AUTH 0x19): bumped by its engine */
    RQ_ST_REAUTH_FAILURE, /* denied: the client is disconnected */
    RQ_ST_REAUTH_RETRY,   /* undecided: AUTH 0x18, the connection keeps its credentials */
    RQ_ST_MOVES_IN,       /* clients moved to this shard by placement (core/placement.h) */
    RQ_ST_COUNT
};

/* Requests to authentication servers: which server, what came back. */
enum rq_auth_server {
    RQ_AUTH_SRV_CUSTOM,     /* the Custom method's auth server */
    RQ_AUTH_SRV_KUBERNETES, /* the Kubernetes API (ServiceAccountToken: TokenReview, SA reads) */
    RQ_AUTH_SRV_COUNT
};
enum rq_http_class {
    RQ_HTTP_2XX,
    RQ_HTTP_3XX,
    RQ_HTTP_4XX,
    RQ_HTTP_5XX,
    RQ_HTTP_ERROR, /* no response: connection, TLS or timeout */
    RQ_HTTP_CLASS_COUNT
};

/* Authentication latency histogram: per method, per outcome. */
enum rq_authn_method_ix {
    RQ_AM_X509,
    RQ_AM_CUSTOM,
    RQ_AM_SAT,
    RQ_AM_OTHER, /* no method decided (label "none") */
    RQ_AM_COUNT
};
enum rq_authn_outcome_ix { RQ_AO_ALLOW, RQ_AO_DENY, RQ_AO_FAILURE, RQ_AO_COUNT };
#define RQ_LAT_BUCKETS 12 /* upper bounds in rq_stats_lat_bounds_us, then +Inf */
extern const uint64_t rq_stats_lat_bounds_us[RQ_LAT_BUCKETS];

struct rq_lat_hist {
    _Atomic uint64_t bucket[RQ_LAT_BUCKETS + 1]; /* not cumulative: the scraper sums */
    _Atomic uint64_t sum_us;
};

struct rq_stats {
    _Alignas(64) _Atomic uint64_t v[RQ_ST_COUNT];
    _Atomic uint64_t http[RQ_AUTH_SRV_COUNT][RQ_HTTP_CLASS_COUNT];
    _Atomic uint64_t last_turn_ms; /* monotonic ms of the shard loop's last turn (/healthz) */
    struct rq_lat_hist lat[RQ_AM_COUNT][RQ_AO_COUNT];
    _Alignas(64) char end_pad[1]; /* the next block starts on a new cache line */
};

/* Allocates n shard blocks (before any shard starts). 0 or -ENOMEM. Again: frees and redoes. */
int rq_stats_init(int n);
void rq_stats_free(void);
int rq_stats_shards(void);
/* Block of shard i (0 <= i < rq_stats_shards()), or the shared block for i < 0. */
struct rq_stats *rq_stats_block(int i);
/* The calling thread writes to shard i's block from now on (its shard thread, at start). */
void rq_stats_bind(int i);

extern _Thread_local struct rq_stats *rq_stats_self;
extern struct rq_stats rq_stats_shared;

static inline void rq_stat_cell_add(_Atomic uint64_t *x, uint64_t n, bool own)
{
    if (own)
        atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + n,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(x, n, memory_order_relaxed);
}

/* Adds n to counter i (a gauge's delta may be negative: pass (uint64_t)-k). */
static inline void rq_stat_add(enum rq_stat i, uint64_t n)
{
    struct rq_stats *st = rq_stats_self;
    rq_stat_cell_add(st ? &st->v[i] : &rq_stats_shared.v[i], n, st != NULL);
}

static inline void rq_stat_inc(enum rq_stat i)
{
    rq_stat_add(i, 1);
}

/* A PUBLISH received from a client / sent to one, with its payload size. */
static inline void rq_stats_publish_in(size_t payload)
{
    rq_stat_inc(RQ_ST_PUBLISHES_RECEIVED);
    rq_stat_add(RQ_ST_PAYLOAD_BYTES_RECEIVED, payload);
}

static inline void rq_stats_publish_out(size_t payload)
{
    rq_stat_inc(RQ_ST_PUBLISHES_SENT);
    rq_stat_add(RQ_ST_PAYLOAD_BYTES_SENT, payload);
}

/* A message dropped for reason (RQ_ST_DROP_*); QoS 0 ones are also AIO's qos0_messages_dropped,
 * incoming (from a client, not routed) or outgoing (toward a subscriber). */
static inline void rq_stats_drop(enum rq_stat reason, uint8_t qos, bool incoming)
{
    rq_stat_inc(reason);
    if (qos == 0)
        rq_stat_inc(incoming ? RQ_ST_QOS0_DROPPED_IN : RQ_ST_QOS0_DROPPED_OUT);
}

/* A gauge delta by a signed amount. */
static inline void rq_stat_delta(enum rq_stat i, int64_t d)
{
    rq_stat_add(i, (uint64_t)d);
}

/* A session's protocol label (total_sessions{mqtt_version}): *cur (the session's, 0 = none
 * yet) becomes v (4 or 5; 0 = the session ends). */
static inline void rq_stats_session_version(uint8_t *cur, uint8_t v)
{
    if (*cur == v)
        return;
    if (*cur)
        rq_stat_add(*cur == 5 ? RQ_ST_SESSIONS_V5 : RQ_ST_SESSIONS_V3, (uint64_t)-1);
    if (v)
        rq_stat_inc(v == 5 ? RQ_ST_SESSIONS_V5 : RQ_ST_SESSIONS_V3);
    *cur = v;
}

/* One request to an authentication server and its HTTP status (0: no response). */
void rq_stats_auth_http(enum rq_auth_server srv, long status);
/* One authentication of a CONNECT: its method ("X509", "Custom", ...; NULL: none), its result
 * (enum rq_auth_result of core/principal.h) and reason, and how long it took. */
void rq_stats_authn_latency(const char *method, int result, uint8_t reason, uint64_t us);
/* The outcome index of a verdict (allow / deny / failure), as counted in
 * authentication_{successes,deny,failures}. */
enum rq_authn_outcome_ix rq_stats_authn_outcome(int result, uint8_t reason);
/* Counts a refused authentication verdict (deny or failure). */
void rq_stats_authn_refused(int result, uint8_t reason);
/* The shard loop turned: heartbeat, iteration count, connections (shard thread). */
void rq_stats_turn(uint64_t now_ms, uint32_t connections);
/* The shard's connections gauge alone (shard thread; before it sleeps: a turn that closed or
 * moved connections shows them gone at once, not at the next wake-up). */
void rq_stats_connections(uint32_t connections);
/* The sum of counter i over all blocks. Any thread. */
uint64_t rq_stats_sum(enum rq_stat i);
/* Monotonic microseconds. */
uint64_t rq_stats_now_us(void);

#endif
