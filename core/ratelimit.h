/* A log rate limiter for events that a peer, a failing server or a storm can repeat: at most
 * `burst` lines per `interval_ms` window; the events left out are counted and the next line that
 * is written says how many ("N similar suppressed"), so nothing disappears silently.
 *
 * One limiter per kind of line and per source (e.g. one per Custom method for its "not
 * relevant" events). Thread-safe: a limiter may be shared by the threads that report the same
 * kind of event (the auth pool threads); each call takes a small mutex, which is fine for
 * failure paths (never put one on a hot path). The logic takes `now` from the caller, so it is
 * unit-testable; rq_ratelimit_now_ms gives the usual clock.
 *
 * (net/admit.h rq_ratelog is the single-thread, one-line-per-10-s variant used by the shards.) */
#ifndef RQ_RATELIMIT_H
#define RQ_RATELIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct rq_ratelimit {
    pthread_mutex_t lock;
    uint32_t burst;        /* lines allowed per window (>= 1) */
    uint32_t interval_ms;  /* window length (>= 1) */
    uint64_t window_start; /* ms; 0: no line written yet */
    uint32_t in_window;    /* lines written in the current window */
    uint64_t suppressed;   /* events left out since the last line written */
    uint64_t total_suppressed;
};

/* Typical limit of "a few lines a second". */
#define RQ_RATELIMIT_BURST 5
#define RQ_RATELIMIT_INTERVAL_MS 1000u

/* burst 0 counts as 1, interval 0 as 1 ms. */
void rq_ratelimit_init(struct rq_ratelimit *r, uint32_t burst, uint32_t interval_ms);
void rq_ratelimit_destroy(struct rq_ratelimit *r);

/* One event at now_ms (a monotonic clock in ms). True: write its line now, and *suppressed
 * (may be NULL) is how many similar events were left out since the last line written (say so
 * in the line when not 0). False: leave it out (counted). Any thread. */
bool rq_ratelimit_allow(struct rq_ratelimit *r, uint64_t now_ms, uint64_t *suppressed);

/* Events left out in the limiter's life (stats, tests). */
uint64_t rq_ratelimit_suppressed_total(struct rq_ratelimit *r);

/* CLOCK_MONOTONIC in ms. */
uint64_t rq_ratelimit_now_ms(void);

#endif
