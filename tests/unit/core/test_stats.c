/* Unit tests for core/stats: blocks on their own cache lines, counters summed over shard blocks
 * and the shared one, gauges as signed deltas from several threads, the authentication outcome
 * classes and the latency histogram's buckets. */
#include "core/stats.h"
#include "core/principal.h"
#include "tests/unit/check.h"

#include <pthread.h>
#include <stdint.h>

enum { THREADS = 4, ROUNDS = 100000 };

static void *shard_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    rq_stats_bind(id);
    for (int i = 0; i < ROUNDS; i++) {
        rq_stats_publish_in(10);
        /* a gauge that goes up on even shards and down on odd ones: the sum is what counts */
        rq_stat_delta(RQ_ST_SUBSCRIPTIONS, id % 2 ? -1 : 1);
    }
    rq_stats_turn(1234, 7);
    if (id == 2)
        rq_stats_connections(5); /* the gauge alone, as before a sleep: no turn counted */
    return NULL;
}

static void test_sum_over_shards(void)
{
    CHECK_EQ(rq_stats_init(THREADS), 0);
    for (int i = 0; i < THREADS; i++) /* each block on its own cache lines */
        CHECK_EQ((uintptr_t)rq_stats_block(i) % 64, 0);
    CHECK(rq_stats_block(-1) == &rq_stats_shared);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, shard_thread, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    rq_stat_inc(RQ_ST_PUBLISHES_RECEIVED); /* this thread has no shard: the shared block */
    CHECK_EQ(rq_stats_sum(RQ_ST_PUBLISHES_RECEIVED), (uint64_t)THREADS * ROUNDS + 1);
    CHECK_EQ(rq_stats_sum(RQ_ST_PAYLOAD_BYTES_RECEIVED), (uint64_t)THREADS * ROUNDS * 10);
    CHECK_EQ((int64_t)rq_stats_sum(RQ_ST_SUBSCRIPTIONS), 0);
    rq_stat_delta(RQ_ST_SUBSCRIPTIONS, -3);
    CHECK_EQ((int64_t)rq_stats_sum(RQ_ST_SUBSCRIPTIONS), -3);
    CHECK_EQ(rq_stats_block(2)->last_turn_ms, 1234);
    CHECK_EQ(rq_stats_block(2)->v[RQ_ST_CONNECTIONS], 5);
    CHECK_EQ(rq_stats_block(1)->v[RQ_ST_CONNECTIONS], 7);
    CHECK_EQ(rq_stats_block(2)->v[RQ_ST_LOOP_ITERATIONS], 1);
    rq_stats_free();
}

static void test_session_versions(void)
{
    CHECK_EQ(rq_stats_init(1), 0);
    rq_stats_bind(0);
    uint8_t label = 0;
    rq_stats_session_version(&label, 4);
    CHECK_EQ(rq_stats_sum(RQ_ST_SESSIONS_V3), 1);
    rq_stats_session_version(&label, 5); /* resumed by an MQTT 5 client */
    CHECK_EQ(rq_stats_sum(RQ_ST_SESSIONS_V3), 0);
    CHECK_EQ(rq_stats_sum(RQ_ST_SESSIONS_V5), 1);
    rq_stats_session_version(&label, 0); /* ended */
    CHECK_EQ(rq_stats_sum(RQ_ST_SESSIONS_V5), 0);
    rq_stats_bind(-1);
    rq_stats_free();
}

static void test_outcomes_and_histogram(void)
{
    CHECK_EQ(rq_stats_authn_outcome(RQ_AUTH_ALLOW, 0), RQ_AO_ALLOW);
    CHECK_EQ(rq_stats_authn_outcome(RQ_AUTH_DENY, 0x86), RQ_AO_DENY);
    CHECK_EQ(rq_stats_authn_outcome(RQ_AUTH_DENY, 0), RQ_AO_DENY);
    CHECK_EQ(rq_stats_authn_outcome(RQ_AUTH_DENY, 0x88), RQ_AO_FAILURE);
    CHECK_EQ(rq_stats_authn_outcome(RQ_AUTH_DENY, 0x89), RQ_AO_FAILURE);
    CHECK_EQ(rq_stats_authn_outcome(RQ_AUTH_PENDING, 0), RQ_AO_FAILURE); /* no verdict */
    CHECK_EQ(rq_stats_init(1), 0);
    rq_stats_bind(0);
    rq_stats_authn_latency("Custom", RQ_AUTH_ALLOW, 0, 1000);    /* <= 1 ms */
    rq_stats_authn_latency("Custom", RQ_AUTH_ALLOW, 0, 1001);    /* <= 5 ms */
    rq_stats_authn_latency("Custom", RQ_AUTH_ALLOW, 0, 60000000); /* +Inf */
    rq_stats_authn_latency("X509", RQ_AUTH_DENY, 0x86, 10);
    rq_stats_authn_latency("Nope", RQ_AUTH_DENY, 0x89, 10);
    struct rq_stats *st = rq_stats_block(0);
    struct rq_lat_hist *h = &st->lat[RQ_AM_CUSTOM][RQ_AO_ALLOW];
    CHECK_EQ(h->bucket[0], 1);
    CHECK_EQ(h->bucket[1], 1);
    CHECK_EQ(h->bucket[RQ_LAT_BUCKETS], 1);
    CHECK_EQ(h->sum_us, 1000 + 1001 + 60000000);
    CHECK_EQ(st->lat[RQ_AM_X509][RQ_AO_DENY].bucket[0], 1);
    CHECK_EQ(st->lat[RQ_AM_OTHER][RQ_AO_FAILURE].bucket[0], 1);
    rq_stats_authn_refused(RQ_AUTH_DENY, 0x86);
    rq_stats_authn_refused(RQ_AUTH_DENY, 0x88);
    CHECK_EQ(rq_stats_sum(RQ_ST_AUTHN_DENY), 1);
    CHECK_EQ(rq_stats_sum(RQ_ST_AUTHN_FAILURE), 1);
    rq_stats_auth_http(RQ_AUTH_SRV_CUSTOM, 200);
    rq_stats_auth_http(RQ_AUTH_SRV_CUSTOM, 403);
    rq_stats_auth_http(RQ_AUTH_SRV_KUBERNETES, 0);
    CHECK_EQ(st->http[RQ_AUTH_SRV_CUSTOM][RQ_HTTP_2XX], 1);
    CHECK_EQ(st->http[RQ_AUTH_SRV_CUSTOM][RQ_HTTP_4XX], 1);
    CHECK_EQ(st->http[RQ_AUTH_SRV_KUBERNETES][RQ_HTTP_ERROR], 1);
    rq_stats_bind(-1);
    rq_stats_free();
}

int main(void)
{
    test_sum_over_shards();
    test_session_versions();
    test_outcomes_and_histogram();
    return check_exit("test_stats");
}
