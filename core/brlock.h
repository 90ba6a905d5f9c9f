/* Big-reader lock: one slot per shard, each on its own cache line. A reader (a shard routing a
 * publish) takes only its own slot, so the publish path never writes a cache line that another
 * core reads or writes; a writer ((un)subscribe, session end) takes every slot in order. Writes
 * are short (a trie insert or removal), so waiting spins, yielding the CPU after a while.
 * Readers must not take any other lock while holding their slot. */
#ifndef RQ_BRLOCK_H
#define RQ_BRLOCK_H

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

struct rq_brlock_slot {
    atomic_int held;
    char pad[64 - sizeof(atomic_int)];
};

struct rq_brlock {
    int n;
    struct rq_brlock_slot *slot; /* 64-byte aligned */
};

static inline int rq_brlock_init(struct rq_brlock *l, int n)
{
    l->n = n;
    l->slot = aligned_alloc(64, sizeof *l->slot * (size_t)n);
    if (!l->slot)
        return -1;
    for (int i = 0; i < n; i++)
        atomic_init(&l->slot[i].held, 0);
    return 0;
}

static inline void rq_brlock_destroy(struct rq_brlock *l)
{
    free(l->slot);
    l->slot = NULL;
}

static inline void rq_brlock_slot_lock(struct rq_brlock_slot *s)
{
    for (unsigned spins = 0;; spins++) {
        if (!atomic_exchange_explicit(&s->held, 1, memory_order_acquire))
            return;
        while (atomic_load_explicit(&s->held, memory_order_relaxed)) {
            if (++spins > 128)
                sched_yield();
        }
    }
}

static inline void rq_brlock_read_lock(struct rq_brlock *l, int shard)
{
    rq_brlock_slot_lock(&l->slot[shard]);
}

static inline void rq_brlock_read_unlock(struct rq_brlock *l, int shard)
{
    atomic_store_explicit(&l->slot[shard].held, 0, memory_order_release);
}

static inline void rq_brlock_write_lock(struct rq_brlock *l)
{
    for (int i = 0; i < l->n; i++)
        rq_brlock_slot_lock(&l->slot[i]);
}

static inline void rq_brlock_write_unlock(struct rq_brlock *l)
{
    for (int i = l->n - 1; i >= 0; i--)
        atomic_store_explicit(&l->slot[i].held, 0, memory_order_release);
}

#endif
