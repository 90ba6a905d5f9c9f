/* The pool's queueing and stop protocol under concurrency, without a network: jobs whose start
 * refuses (they complete at once on the pool thread) or that fail to connect to a closed local
 * port. Several producer threads submit while the pool runs and while it stops; every accepted
 * job must complete exactly once, nothing after stop returns, and maxPending must hold. */
#include "auth/pool.h"

#include "../check.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { PRODUCERS = 4, PER_PRODUCER = 5000 };

static _Atomic long completed, freed, late_done, bad_verdict;
static _Atomic int stop_returned;
static _Atomic unsigned max_seen_pending;
static struct rq_auth_pool *pool;

struct test_job {
    struct rq_auth_job base;
    bool network; /* try a closed local port instead of refusing at start */
};

static int job_start(struct rq_auth_job *j, CURL *e, char *why, size_t whylen)
{
    if (!((struct test_job *)j)->network) {
        snprintf(why, whylen, "test job refused at start");
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_URL, "https://127.0.0.1:1/");
    return 0;
}

static void job_finish(struct rq_auth_job *j, CURL *e, CURLcode rc, struct rq_authn_outcome *o)
{
    o->verdict = RQ_AUTHN_NOT_RELEVANT;
    snprintf(o->why, sizeof o->why, "finished: %s", curl_easy_strerror(rc));
}

static void job_free(struct rq_auth_job *j)
{
    atomic_fetch_add(&freed, 1);
    free(j);
}

static const struct rq_auth_job_ops ops = {job_start, job_finish, job_free};

static int on_done(void *ctx, uint64_t tag, struct rq_authn_outcome *o, bool last)
{
    if (atomic_load(&stop_returned))
        atomic_fetch_add(&late_done, 1); /* a completion after stop returned */
    if (o->verdict != RQ_AUTHN_NOT_RELEVANT)
        atomic_fetch_add(&bad_verdict, 1); /* CHECK is not thread-safe: counted here */
    atomic_fetch_add(&completed, 1);
    rq_auth_outcome_release(o);
    return 0;
}

struct producer {
    long accepted, busy, shut;
    bool network;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (long i = 0; i < PER_PRODUCER; i++) {
        struct test_job *j = calloc(1, sizeof *j);
        j->base.ops = &ops;
        j->network = p->network && i % 50 == 0;
        int rc = rq_auth_pool_submit(pool, &j->base, (uint64_t)i);
        if (rc == 0) {
            p->accepted++;
            unsigned n = rq_auth_pool_pending(pool), m = atomic_load(&max_seen_pending);
            while (n > m && !atomic_compare_exchange_weak(&max_seen_pending, &m, n))
                ;
        } else {
            job_free(&j->base);
            p->busy += rc == -EBUSY;
            p->shut += rc == -ESHUTDOWN;
        }
    }
    return NULL;
}

static long run(bool network, bool stop_midway, uint32_t max_pending, long *busy, long *shut)
{
    struct rq_auth_pool_cfg cfg = {.threads = 2, .max_pending = max_pending};
    char err[200];
    atomic_store(&completed, 0);
    atomic_store(&freed, 0);
    atomic_store(&stop_returned, 0);
    atomic_store(&max_seen_pending, 0);
    pool = rq_auth_pool_new(&cfg, on_done, NULL, err, sizeof err);
    CHECK(pool != NULL);
    if (!pool)
        return 0;
    pthread_t t[PRODUCERS];
    struct producer p[PRODUCERS];
    memset(p, 0, sizeof p);
    for (int i = 0; i < PRODUCERS; i++) {
        p[i].network = network;
        pthread_create(&t[i], NULL, produce, &p[i]);
    }
    if (stop_midway) {
        rq_auth_pool_stop(pool); /* races with the producers */
        atomic_store(&stop_returned, 1);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    rq_auth_pool_free(pool);
    atomic_store(&stop_returned, 1);
    long accepted = 0;
    *busy = *shut = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        accepted += p[i].accepted;
        *busy += p[i].busy;
        *shut += p[i].shut;
    }
    CHECK_EQ(atomic_load(&completed), accepted);             /* exactly once each */
    CHECK_EQ(atomic_load(&freed), PRODUCERS * PER_PRODUCER); /* every job freed once */
    CHECK(atomic_load(&max_seen_pending) <= max_pending);
    return accepted;
}

int main(void)
{
    long busy, shut;
    long accepted = run(false, false, 100000, &busy, &shut);
    CHECK_EQ(accepted, PRODUCERS * PER_PRODUCER);
    /* a small maxPending: some submits are refused, the rest all complete */
    accepted = run(false, false, 16, &busy, &shut);
    CHECK_EQ(accepted + busy, PRODUCERS * PER_PRODUCER);
    fprintf(stderr, "maxPending 16: %ld accepted, %ld refused with -EBUSY\n", accepted, busy);
    /* stop while producers submit (some jobs on the network): accepted ones complete before stop
     * returns, later ones get -ESHUTDOWN */
    accepted = run(true, true, 100000, &busy, &shut);
    CHECK_EQ(accepted + busy + shut, PRODUCERS * PER_PRODUCER);
    CHECK_EQ(atomic_load(&late_done), 0);
    CHECK_EQ(atomic_load(&bad_verdict), 0);
    fprintf(stderr, "stop race: %ld accepted, %ld refused after stop\n", accepted, shut);
    return check_exit("test_pool_stress");
}
