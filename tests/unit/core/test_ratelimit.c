/* The log rate limiter: burst per window, the count of what was left out reported on the next
 * line, a new window after the interval, a clock that goes back, and threads sharing one. */
#include <pthread.h>

#include "../check.h"
#include "core/ratelimit.h"

static void burst_then_suppress(void)
{
    struct rq_ratelimit r;
    rq_ratelimit_init(&r, 3, 1000);
    uint64_t n = 99;
    for (int i = 0; i < 3; i++) {
        CHECK(rq_ratelimit_allow(&r, 5000 + (uint64_t)i, &n));
        CHECK_EQ(n, 0);
    }
    for (int i = 0; i < 7; i++)
        CHECK(!rq_ratelimit_allow(&r, 5100, &n));
    CHECK_EQ(rq_ratelimit_suppressed_total(&r), 7);
    /* still inside the window at 5999 */
    CHECK(!rq_ratelimit_allow(&r, 5999, &n));
    /* the next window: the first line says 8 were left out, the next ones 0 */
    CHECK(rq_ratelimit_allow(&r, 6000, &n));
    CHECK_EQ(n, 8);
    CHECK(rq_ratelimit_allow(&r, 6001, &n));
    CHECK_EQ(n, 0);
    CHECK(rq_ratelimit_allow(&r, 6002, NULL));
    CHECK(!rq_ratelimit_allow(&r, 6003, NULL));
    CHECK_EQ(rq_ratelimit_suppressed_total(&r), 9);
    rq_ratelimit_destroy(&r);
}

static void clock_back_and_zero(void)
{
    struct rq_ratelimit r;
    rq_ratelimit_init(&r, 0, 0); /* 1 line per ms */
    uint64_t n;
    CHECK(rq_ratelimit_allow(&r, 0, &n)); /* now 0 is a valid time */
    CHECK(rq_ratelimit_allow(&r, 10, &n));
    CHECK(!rq_ratelimit_allow(&r, 10, &n));
    CHECK(rq_ratelimit_allow(&r, 3, &n)); /* went back: a new window, not silence */
    CHECK_EQ(n, 1);
    rq_ratelimit_destroy(&r);
}

enum { THREADS = 4, EVENTS = 10000 };
static struct rq_ratelimit shared;
static uint64_t written[THREADS], reported[THREADS];

static void *hammer(void *arg)
{
    int t = (int)(long)arg;
    for (int i = 0; i < EVENTS; i++) {
        uint64_t n;
        if (rq_ratelimit_allow(&shared, 1000, &n)) {
            written[t]++;
            reported[t] += n;
        }
    }
    return NULL;
}

static void threads_account_for_every_event(void)
{
    rq_ratelimit_init(&shared, 2, 10);
    pthread_t th[THREADS];
    for (long t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, hammer, (void *)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    uint64_t w = 0, rep = 0;
    for (int t = 0; t < THREADS; t++) {
        w += written[t];
        rep += reported[t];
    }
    /* every event is either written or suppressed; suppressed ones are reported by a later line
     * or still pending in the limiter */
    CHECK_EQ(w + rq_ratelimit_suppressed_total(&shared), (uint64_t)THREADS * EVENTS);
    CHECK(rep + shared.suppressed == rq_ratelimit_suppressed_total(&shared));
    CHECK_EQ(w, 2); /* one window: its burst */
    rq_ratelimit_destroy(&shared);
}

int main(void)
{
    burst_then_suppress();
    clock_back_and_zero();
    threads_account_for_every_event();
    CHECK(rq_ratelimit_now_ms() > 0);
    return check_exit("ratelimit");
}
