/* Bounded lock-free MPSC queue of fixed-size entries, one per shard: any thread pushes, only the
 * owning shard pops. The producer learns when the queue went from empty to non-empty, so it wakes
 * the consumer (IORING_OP_MSG_RING) only then. */
#ifndef RQ_INBOX_H
#define RQ_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rq_inbox;

/* capacity: rounded up to a power of two; entry_size: bytes copied per entry. NULL on ENOMEM. */
struct rq_inbox *rq_inbox_new(uint32_t capacity, size_t entry_size);
void rq_inbox_free(struct rq_inbox *q);

/* Copies entry in. Returns false when full (caller applies backpressure: retry later or drop).
 * *wake is set true when the consumer must be woken: the queue had no unconsumed entries and
 * no wake-up was pending. Any thread. */
bool rq_inbox_push(struct rq_inbox *q, const void *entry, bool *wake);

/* Copies the oldest entry out. Returns false when empty. Consumer thread only. */
bool rq_inbox_pop(struct rq_inbox *q, void *entry);

/* Consumer: call after a pop loop found the queue empty, before sleeping. Returns true when new
 * entries raced in (pop again instead of sleeping). After it returns false, the next push reports
 * wake = true. */
bool rq_inbox_sleep(struct rq_inbox *q);

#endif
