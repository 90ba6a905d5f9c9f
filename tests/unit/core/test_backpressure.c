/* Unit tests for the backpressure accounting in core/broker.c: messages routed to another
 * shard count in its pending counter (broker->pending) from rq_worker_flush until that shard has
 * delivered them (rq_worker_on_post), and rq_worker_backpressure turns on above cfg->shard_backlog
 * and off only below a quarter of it. Two real workers and a real session; the "net" side is a post
 * capture. */
#include "config/config.h"
#include "core/broker_int.h"
#include "tests/unit/check.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static struct rq_post captured[16];
static int n_captured;
static bool refuse_posts;

static bool cap_post(struct rq_worker *from, int shard, const struct rq_post *p)
{
    if (refuse_posts || n_captured == 16)
        return false;
    captured[n_captured++] = *p;
    return true;
}

static void no_flush(struct rq_worker *w, void *conn)
{
}

static const struct rq_worker_ops ops = {
    .post = cap_post, .want_flush = no_flush, .want_close = no_flush};

static struct rq_msg *msg(const char *topic)
{
    struct rq_str t = {(const uint8_t *)topic, (uint32_t)strlen(topic)};
    struct rq_str p = {(const uint8_t *)"x", 1};
    return rq_msg_new(t, p, NULL, 1, false, 0, 0, 0); /* QoS 1: kept for an offline session */
}

static uint64_t pending(struct rq_worker *w)
{
    return atomic_load(&w->b->pending[w->id].n);
}

int main(void)
{
    struct rq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_inflight = 16;
    cfg.queue_limit = 100;
    cfg.shard_backlog = 1000;
    const uint64_t HIGH = 1000, LOW = 250; /* LOW = a quarter of HIGH */
    struct rq_broker *b = rq_broker_new(&cfg, 2);
    CHECK(b != NULL);
    if (!b)
        return check_exit("backpressure");
    struct rq_worker *w0 = rq_worker_new(b, 0, &ops, NULL);
    struct rq_worker *w1 = rq_worker_new(b, 1, &ops, NULL);
    CHECK(w0 && w1);
    if (!w0 || !w1)
        return check_exit("backpressure");

    /* a session on shard 1 subscribed to "t" (QoS 1); three messages published on shard 0 */
    struct rq_session *s = rq_session_new(w1, (const uint8_t *)"sub", 3);
    CHECK(s != NULL);
    bool existed = false;
    CHECK_EQ(rq_session_subscribe(s, (const uint8_t *)"t", 1, 1, 0, &existed), 0);
    s->expiry = RQ_EXPIRY_NEVER;
    for (int i = 0; i < 3; i++) {
        struct rq_msg *m = msg("t");
        rq_route(w0, m);
        rq_msg_unref(m);
    }
    struct rq_msg *other = msg("nobody/listens");
    rq_route(w0, other);
    rq_msg_unref(other);
    CHECK_EQ(pending(w1), 0); /* nothing counts before the flush */
    rq_worker_flush(w0);
    CHECK_EQ(n_captured, 1); /* one post for the iteration */
    CHECK_EQ(pending(w1), 3);
    CHECK_EQ(pending(w0), 0);
    CHECK(!rq_worker_backpressure(w0)); /* 3 is far below the high-water mark */
    rq_worker_on_post(w1, &captured[0]);
    CHECK_EQ(pending(w1), 0);
    CHECK_EQ(s->q_len, 3); /* offline session: queued, not lost */

    /* a refused post does not leave its messages counted */
    refuse_posts = true;
    struct rq_msg *m = msg("t");
    rq_route(w0, m);
    rq_msg_unref(m);
    rq_worker_flush(w0);
    CHECK_EQ(pending(w1), 0);
    refuse_posts = false;

    /* hysteresis: on above HIGH, stays on down to LOW, off below LOW */
    atomic_store(&b->pending[1].n, HIGH);
    CHECK(!rq_worker_backpressure(w0)); /* at HIGH: not above it */
    atomic_store(&b->pending[1].n, HIGH + 1);
    CHECK(rq_worker_backpressure(w0));
    CHECK(w0->throttled);
    CHECK_EQ(w0->throttle_count, 1);
    CHECK(!rq_worker_backpressure(w1)); /* a shard's own backlog does not throttle it */
    atomic_store(&b->pending[1].n, LOW + 1);
    CHECK(rq_worker_backpressure(w0));
    atomic_store(&b->pending[1].n, LOW);
    CHECK(rq_worker_backpressure(w0)); /* at LOW: not below it */
    atomic_store(&b->pending[1].n, LOW - 1);
    CHECK(!rq_worker_backpressure(w0));
    atomic_store(&b->pending[1].n, HIGH + 5);
    CHECK(rq_worker_backpressure(w0));
    CHECK_EQ(w0->throttle_count, 2);
    atomic_store(&b->pending[1].n, 0);
    CHECK(!rq_worker_backpressure(w0));

    rq_worker_free(w0);
    rq_worker_free(w1);
    rq_broker_free(b);
    return check_exit("backpressure");
}
