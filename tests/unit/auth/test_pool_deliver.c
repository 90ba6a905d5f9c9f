/* Delivering outcomes into full shard inboxes (auth/pool.h, done() answering busy): a pool
 * thread whose verdicts for one shard find that shard's inbox full keeps them on the shard's
 * lane and goes on; verdicts for other shards still arrive at once, the held ones arrive when the
 * inbox drains, and ones that can never be delivered are dropped (last = true) once
 * deliver_timeout_ms has passed or the pool stops. Real core/inbox queues stand in for the
 * shards' inboxes; the jobs need no network (their start refuses, so they complete at once). */
#include "auth/pool.h"

#include "core/inbox.h"

#include "../check.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SHARD_A = 0, SHARD_B = 1, A_CAP = 4, WAIT_MS = 20000 };

struct delivered {
    uint64_t tag;
    struct rq_authn_outcome *o;
};

static struct rq_inbox *inbox[2];
static _Atomic long pushed[2], dropped, last_calls;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(void)
{
    nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
}

static int job_start(struct rq_auth_job *j, CURL *e, char *why, size_t whylen)
{
    (void)j;
    (void)e;
    snprintf(why, whylen, "test job: no request");
    return -1;
}

static void job_finish(struct rq_auth_job *j, CURL *e, CURLcode rc, struct rq_authn_outcome *o)
{
    (void)j, (void)e, (void)rc, (void)o;
}

static void job_free(struct rq_auth_job *j)
{
    free(j);
}

static const struct rq_auth_job_ops ops = {job_start, job_finish, job_free};

/* The broker's done() in miniature: post to the tag's shard; full -> busy, or drop when last. */
static int on_done(void *ctx, uint64_t tag, struct rq_authn_outcome *o, bool last)
{
    (void)ctx;
    int shard = (int)(tag >> 32);
    struct delivered d = {tag, o};
    bool wake;
    if (last)
        atomic_fetch_add(&last_calls, 1);
    if (rq_inbox_push(inbox[shard], &d, &wake)) {
        atomic_fetch_add(&pushed[shard], 1);
        return 0;
    }
    if (!last)
        return RQ_AUTH_POOL_BUSY(shard);
    rq_auth_outcome_release(o);
    atomic_fetch_add(&dropped, 1);
    return 0;
}

static int submit(struct rq_auth_pool *p, int shard, uint32_t i)
{
    struct rq_auth_job *j = calloc(1, sizeof *j);
    j->ops = &ops;
    int rc = rq_auth_pool_submit(p, j, ((uint64_t)shard << 32) | i);
    if (rc != 0)
        free(j);
    return rc;
}

/* Pops what has arrived at a shard (the shard's side); returns how many. */
static long drain(int shard)
{
    struct delivered d;
    long n = 0;
    while (rq_inbox_pop(inbox[shard], &d)) {
        CHECK_EQ((int)(d.tag >> 32), shard);
        CHECK(d.o && d.o->verdict == RQ_AUTHN_NOT_RELEVANT);
        rq_auth_outcome_release(d.o);
        n++;
    }
    return n;
}

/* Waits (bounded) until *v reaches want. */
static bool wait_for(_Atomic long *v, long want)
{
    int64_t end = mono_ms() + WAIT_MS;
    while (atomic_load(v) < want && mono_ms() < end)
        nap();
    return atomic_load(v) >= want;
}

static bool wait_waiting(struct rq_auth_pool *p, uint32_t want)
{
    int64_t end = mono_ms() + WAIT_MS;
    while (rq_auth_pool_waiting(p) != want && mono_ms() < end)
        nap();
    return rq_auth_pool_waiting(p) == want;
}

static struct rq_auth_pool *pool_new(uint32_t deliver_timeout_ms)
{
    struct rq_auth_pool_cfg cfg = {.threads = 1, .deliver_timeout_ms = deliver_timeout_ms};
    char err[200];
    for (int i = 0; i < 2; i++) {
        rq_inbox_free(inbox[i]);
        inbox[i] = rq_inbox_new(i == SHARD_A ? A_CAP : 4096, sizeof(struct delivered));
        atomic_store(&pushed[i], 0);
    }
    atomic_store(&dropped, 0);
    atomic_store(&last_calls, 0);
    struct rq_auth_pool *p = rq_auth_pool_new(&cfg, on_done, NULL, err, sizeof err);
    CHECK(p != NULL);
    return p;
}

/* Fills shard A's inbox, then holds `extra` more verdicts for it on the pool thread. */
static void fill_a(struct rq_auth_pool *p, uint32_t extra)
{
    for (uint32_t i = 0; i < A_CAP; i++)
        CHECK_EQ(submit(p, SHARD_A, i), 0);
    CHECK(wait_for(&pushed[SHARD_A], A_CAP));
    for (uint32_t i = 0; i < extra; i++)
        CHECK_EQ(submit(p, SHARD_A, A_CAP + i), 0);
    CHECK(wait_waiting(p, extra));
}

/* One pool thread, shard A's inbox full: B's verdicts all arrive while A's wait; draining A
 * lets the held ones in, in full. */
static void full_inbox_does_not_stall_others(void)
{
    enum { HELD = 20, OTHERS = 200 };
    struct rq_auth_pool *p = pool_new(60000);
    if (!p)
        return;
    fill_a(p, HELD);
    int64_t t0 = mono_ms();
    long got_b = 0;
    for (uint32_t i = 0; i < OTHERS; i++)
        CHECK_EQ(submit(p, SHARD_B, i), 0);
    while (got_b < OTHERS && mono_ms() - t0 < WAIT_MS) {
        got_b += drain(SHARD_B);
        nap();
    }
    CHECK_EQ(got_b, OTHERS);
    fprintf(stderr, "shard B: %d verdicts in %lld ms while %u waited for shard A's full inbox\n",
            OTHERS, (long long)(mono_ms() - t0), rq_auth_pool_waiting(p));
    CHECK_EQ(atomic_load(&pushed[SHARD_A]), A_CAP); /* A's inbox stayed full */
    CHECK_EQ(rq_auth_pool_waiting(p), HELD);
    CHECK(rq_auth_pool_pending(p) >= HELD);
    CHECK(rq_auth_pool_busy_total(p) >= HELD);
    /* the shard drains its inbox: the held verdicts follow */
    long got_a = 0;
    t0 = mono_ms();
    while (got_a < A_CAP + HELD && mono_ms() - t0 < WAIT_MS) {
        got_a += drain(SHARD_A);
        nap();
    }
    CHECK_EQ(got_a, A_CAP + HELD);
    CHECK(wait_waiting(p, 0));
    CHECK_EQ(atomic_load(&dropped), 0);
    CHECK_EQ(atomic_load(&last_calls), 0);
    rq_auth_pool_free(p);
    CHECK_EQ(drain(SHARD_B), 0);
}

/* A verdict whose shard never drains is dropped once deliver_timeout_ms has passed. */
static void undeliverable_dropped_after_timeout(void)
{
    enum { HELD = 5 };
    struct rq_auth_pool *p = pool_new(300);
    if (!p)
        return;
    fill_a(p, HELD);
    CHECK(wait_for(&dropped, HELD));
    CHECK(wait_waiting(p, 0));
    CHECK_EQ(rq_auth_pool_pending(p), 0);
    CHECK_EQ(submit(p, SHARD_B, 0), 0); /* the thread still serves */
    CHECK(wait_for(&pushed[SHARD_B], 1));
    rq_auth_pool_free(p);
    CHECK_EQ(drain(SHARD_A), A_CAP);
    CHECK_EQ(drain(SHARD_B), 1);
}

/* Stop with verdicts held: each gets its last offer before stop returns, nothing leaks. */
static void stop_with_held_verdicts(void)
{
    enum { HELD = 7 };
    struct rq_auth_pool *p = pool_new(60000);
    if (!p)
        return;
    fill_a(p, HELD);
    rq_auth_pool_stop(p);
    CHECK_EQ(atomic_load(&dropped), HELD);
    CHECK_EQ(atomic_load(&last_calls), HELD);
    CHECK_EQ(rq_auth_pool_pending(p), 0);
    CHECK_EQ(rq_auth_pool_waiting(p), 0);
    rq_auth_pool_free(p);
    CHECK_EQ(drain(SHARD_A), A_CAP);
}

int main(void)
{
    full_inbox_does_not_stall_others();
    undeliverable_dropped_after_timeout();
    stop_with_held_verdicts();
    for (int i = 0; i < 2; i++)
        rq_inbox_free(inbox[i]);
    return check_exit("test_pool_deliver");
}
