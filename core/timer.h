/* Hierarchical timer wheel with intrusive timers: O(1) add and cancel, millisecond resolution.
 * One wheel per shard; not thread-safe (only the owning thread touches it). */
#ifndef RQ_TIMER_H
#define RQ_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rq_timer;
typedef void (*rq_timer_fn)(struct rq_timer *t, void *arg);

/* Embed in the owning object. Zero-initialised = not pending. */
struct rq_timer {
    struct rq_timer *next, *prev; /* NULL when not pending */
    uint64_t expires;             /* absolute ms */
    rq_timer_fn fn;
    void *arg;
};

#define RQ_WHEEL_LEVELS 6
#define RQ_WHEEL_BITS 6
#define RQ_WHEEL_SLOTS (1u << RQ_WHEEL_BITS)

struct rq_wheel {
    uint64_t now; /* ms; time up to which timers have been run */
    struct rq_timer slots[RQ_WHEEL_LEVELS][RQ_WHEEL_SLOTS]; /* list heads (circular) */
    uint64_t occupied[RQ_WHEEL_LEVELS];                      /* bit per non-empty slot */
    size_t count;
};

void rq_wheel_init(struct rq_wheel *w, uint64_t now_ms);

/* (Re)arms t to fire at absolute time expires_ms (a time in the past fires on the next run).
 * Cancels it first if pending. */
void rq_timer_add(struct rq_wheel *w, struct rq_timer *t, uint64_t expires_ms, rq_timer_fn fn,
                  void *arg);
void rq_timer_cancel(struct rq_wheel *w, struct rq_timer *t);
static inline bool rq_timer_pending(const struct rq_timer *t)
{
    return t->next != 0;
}

/* Fires every timer with expires <= now_ms, in order of expiry (ties in any order). A callback
 * may add or cancel any timer, including its own. Returns the number fired. */
unsigned rq_wheel_run(struct rq_wheel *w, uint64_t now_ms);

/* Milliseconds until the earliest pending timer may fire (0 if due), or -1 when none. May be
 * earlier than the exact expiry (cascading boundaries), never later. */
int64_t rq_wheel_next(const struct rq_wheel *w, uint64_t now_ms);

/* Monotonic clock in ms. */
uint64_t rq_now_ms(void);

#endif
