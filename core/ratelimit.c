/* Log rate limiter (ratelimit.h): a fixed window of `burst` lines, the rest counted. No
 * logging here: callers write their own lines with the count this gives them. */
#include "core/ratelimit.h"

#include <time.h>

void rq_ratelimit_init(struct rq_ratelimit *r, uint32_t burst, uint32_t interval_ms)
{
    pthread_mutex_init(&r->lock, NULL);
    r->burst = burst ? burst : 1;
    r->interval_ms = interval_ms ? interval_ms : 1;
    r->window_start = 0;
    r->in_window = 0;
    r->suppressed = 0;
    r->total_suppressed = 0;
}

void rq_ratelimit_destroy(struct rq_ratelimit *r)
{
    pthread_mutex_destroy(&r->lock);
}

bool rq_ratelimit_allow(struct rq_ratelimit *r, uint64_t now_ms, uint64_t *suppressed)
{
    pthread_mutex_lock(&r->lock);
    /* A new window when none was opened yet, when it has passed, or when the clock went back
     * (a caller's clock that is not monotonic must not silence the limiter for ever). */
    if (r->window_start == 0 || now_ms < r->window_start ||
        now_ms - r->window_start >= r->interval_ms) {
        r->window_start = now_ms ? now_ms : 1;
        r->in_window = 0;
    }
    bool ok = r->in_window < r->burst;
    if (ok) {
        r->in_window++;
        if (suppressed)
            *suppressed = r->suppressed;
        r->suppressed = 0;
    } else {
        r->suppressed++;
        r->total_suppressed++;
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

uint64_t rq_ratelimit_suppressed_total(struct rq_ratelimit *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t n = r->total_suppressed;
    pthread_mutex_unlock(&r->lock);
    return n;
}

uint64_t rq_ratelimit_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
