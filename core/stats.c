/* Per-shard runtime counters (see stats.h). */
#include "core/stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/principal.h"

_Thread_local struct rq_stats *rq_stats_self;
struct rq_stats rq_stats_shared;

static struct rq_stats *g_blocks;
static int g_n;

const uint64_t rq_stats_lat_bounds_us[RQ_LAT_BUCKETS] = {
    1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

int rq_stats_init(int n)
{
    rq_stats_free();
    size_t size = (size_t)(n > 0 ? n : 1) * sizeof *g_blocks;
    g_blocks = aligned_alloc(64, (size + 63) & ~(size_t)63);
    if (!g_blocks)
        return -ENOMEM;
    memset(g_blocks, 0, size);
    g_n = n;
    return 0;
}

void rq_stats_free(void)
{
    free(g_blocks);
    g_blocks = NULL;
    g_n = 0;
}

int rq_stats_shards(void)
{
    return g_n;
}

struct rq_stats *rq_stats_block(int i)
{
    return i >= 0 && i < g_n ? &g_blocks[i] : &rq_stats_shared;
}

void rq_stats_bind(int i)
{
    rq_stats_self = i >= 0 && i < g_n ? &g_blocks[i] : NULL;
}

uint64_t rq_stats_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool own(struct rq_stats *st)
{
    return st == rq_stats_self && st != NULL;
}

static struct rq_stats *mine(void)
{
    return rq_stats_self ? rq_stats_self : &rq_stats_shared;
}

void rq_stats_auth_http(enum rq_auth_server srv, long status)
{
    enum rq_http_class k = status >= 200 && status < 300   ? RQ_HTTP_2XX
                           : status >= 300 && status < 400 ? RQ_HTTP_3XX
                           : status >= 400 && status < 500 ? RQ_HTTP_4XX
                           : status >= 500 && status < 600 ? RQ_HTTP_5XX
                                                           : RQ_HTTP_ERROR;
    struct rq_stats *st = mine();
    rq_stat_cell_add(&st->http[srv][k], 1, own(st));
}

/* Reasons that say the check could not be made, rather than that it said no. */
static bool is_failure_reason(uint8_t reason)
{
    return reason == 0x80 /* Unspecified error */ || reason == 0x83 /* Implementation specific */ ||
           reason == 0x88 /* Server unavailable */ || reason == 0x89 /* Server busy */;
}

enum rq_authn_outcome_ix rq_stats_authn_outcome(int result, uint8_t reason)
{
    if (result == RQ_AUTH_ALLOW || result == RQ_AUTH_OFF)
        return RQ_AO_ALLOW;
    if (result == RQ_AUTH_DENY && !is_failure_reason(reason))
        return RQ_AO_DENY;
    return RQ_AO_FAILURE;
}

void rq_stats_authn_refused(int result, uint8_t reason)
{
    rq_stat_inc(rq_stats_authn_outcome(result, reason) == RQ_AO_DENY ? RQ_ST_AUTHN_DENY
                                                                      : RQ_ST_AUTHN_FAILURE);
}

static enum rq_authn_method_ix method_ix(const char *m)
{
    if (!m)
        return RQ_AM_OTHER;
    if (strcmp(m, "X509") == 0)
        return RQ_AM_X509;
    if (strcmp(m, "Custom") == 0)
        return RQ_AM_CUSTOM;
    if (strcmp(m, "ServiceAccountToken") == 0)
        return RQ_AM_SAT;
    return RQ_AM_OTHER;
}

void rq_stats_authn_latency(const char *method, int result, uint8_t reason, uint64_t us)
{
    struct rq_stats *st = mine();
    struct rq_lat_hist *h = &st->lat[method_ix(method)][rq_stats_authn_outcome(result, reason)];
    size_t b = 0;
    while (b < RQ_LAT_BUCKETS && us > rq_stats_lat_bounds_us[b])
        b++;
    rq_stat_cell_add(&h->bucket[b], 1, own(st));
    rq_stat_cell_add(&h->sum_us, us, own(st));
}

void rq_stats_turn(uint64_t now_ms, uint32_t connections)
{
    struct rq_stats *st = rq_stats_self;
    if (!st)
        return;
    atomic_store_explicit(&st->last_turn_ms, now_ms, memory_order_relaxed);
    atomic_store_explicit(&st->v[RQ_ST_CONNECTIONS], connections, memory_order_relaxed);
    rq_stat_cell_add(&st->v[RQ_ST_LOOP_ITERATIONS], 1, true);
}

void rq_stats_connections(uint32_t connections)
{
    struct rq_stats *st = rq_stats_self;
    if (st)
        atomic_store_explicit(&st->v[RQ_ST_CONNECTIONS], connections, memory_order_relaxed);
}

uint64_t rq_stats_sum(enum rq_stat i)
{
    uint64_t n = atomic_load_explicit(&rq_stats_shared.v[i], memory_order_relaxed);
    for (int s = 0; s < g_n; s++)
        n += atomic_load_explicit(&g_blocks[s].v[i], memory_order_relaxed);
    return n;
}
