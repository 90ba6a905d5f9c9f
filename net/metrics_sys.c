/* $SYS/broker/...: the mosquitto-compatible subset that dashboards read (see metrics.h and
 * core/stats_sys.h). Values as mosquitto spells them: numbers as decimal text, uptime as
 * "N seconds", version as "ringmq version X". */
#include "net/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/broker.h"
#include "core/retain.h"
#include "core/stats_sys.h"
#include "core/timer.h"
#include "net/post.h"

enum { SYS_ENTRIES = 12 };

static void put(struct rq_sys_batch *b, const char *topic, const char *fmt, uint64_t v)
    __attribute__((format(printf, 3, 0)));
static void put(struct rq_sys_batch *b, const char *topic, const char *fmt, uint64_t v)
{
    struct rq_sys_entry *e = &b->e[b->n++];
    snprintf(e->topic, sizeof e->topic, "$SYS/broker/%s", topic);
    snprintf(e->value, sizeof e->value, fmt, v);
}

static uint64_t retained_count(void)
{
    struct rq_broker *b = rq_metrics_ctl.broker;
    if (!b)
        return 0;
    pthread_mutex_lock(&b->retain_lock);
    size_t n = rq_retain_count(b->retained);
    pthread_mutex_unlock(&b->retain_lock);
    return n;
}

void rq_sys_publish(struct rq_shard **shards, int n)
{
    (void)shards;
    if (n < 1)
        return;
    struct rq_sys_batch *b = malloc(sizeof *b + SYS_ENTRIES * sizeof b->e[0]);
    if (!b)
        return;
    b->n = 0;
    uint64_t up = (rq_now_ms() - rq_metrics_ctl.start_ms) / 1000;
    const char *num = "%" PRIu64;
    put(b, "version", "ringmq version " RINGMQ_VERSION, 0); /* no conversion: v unused */
    put(b, "uptime", "%" PRIu64 " seconds", up);
    put(b, "clients/connected", num, (uint64_t)(int64_t)rq_stats_sum(RQ_ST_CONNECTED));
    put(b, "clients/total", num,
        rq_stats_sum(RQ_ST_SESSIONS_V3) + rq_stats_sum(RQ_ST_SESSIONS_V5));
    put(b, "messages/received", num, rq_stats_sum(RQ_ST_PUBLISHES_RECEIVED));
    put(b, "messages/sent", num, rq_stats_sum(RQ_ST_PUBLISHES_SENT));
    put(b, "publish/messages/received", num, rq_stats_sum(RQ_ST_PUBLISHES_RECEIVED));
    put(b, "publish/messages/sent", num, rq_stats_sum(RQ_ST_PUBLISHES_SENT));
    put(b, "bytes/received", num, rq_stats_sum(RQ_ST_NET_BYTES_RECEIVED));
    put(b, "bytes/sent", num, rq_stats_sum(RQ_ST_NET_BYTES_SENT));
    put(b, "subscriptions/count", num, rq_stats_sum(RQ_ST_SUBSCRIPTIONS));
    put(b, "retained messages/count", num, retained_count());
    struct rq_post p = {.kind = RQ_POST_SYS, .ptr = b};
    if (rq_shard_post_external(0, &p) != 0)
        free(b); /* shard 0's inbox is full or it is stopping: the next interval publishes */
}
