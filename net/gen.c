/* Publication and reclamation of runtime generations (see gen.h). It knows nothing of what a
 * generation holds: net/ports.c builds and frees them.
 *
 * Why it is safe to free a retired generation G (retired at epoch E) once every reader has
 * stored seen >= E and G->pins == 0:
 * - publish stores the new current pointer, then the epoch E (release). A reader that loads
 *   epoch >= E (acquire) and then the current pointer gets the new generation or a later one;
 *   from then on it never takes a new pointer to G.
 * - A reader pins G only while G is its current generation, i.e. before it stores seen >= E
 *   (release). The control thread loads seen (acquire) before it loads pins, so it sees every
 *   such pin; an unpin (release) before the acquire load of 0 ends the last use.
 * - A connection handed to another shard carries its pin along (no new pin is taken). */
#include "net/gen.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>

struct reader {
    alignas(64) _Atomic uint64_t seen; /* written by its shard only: one cache line each */
};

struct rq_gens {
    alignas(64) _Atomic(struct rq_gen *) cur;
    _Atomic uint64_t epoch; /* +1 per publish; written by the control thread only */
    struct reader *readers;
    int n_readers;
    struct rq_gen *retired; /* control thread only */
    rq_gen_free_fn free_gen;
};

struct rq_gens *rq_gens_new(int n_readers, struct rq_gen *first, rq_gen_free_fn free_gen)
{
    struct rq_gens *d = aligned_alloc(64, (sizeof *d + 63) / 64 * 64);
    if (!d)
        return NULL;
    size_t rsz = ((size_t)(n_readers > 0 ? n_readers : 1) * sizeof(struct reader) + 63) / 64 * 64;
    struct reader *r = aligned_alloc(64, rsz);
    if (!r) {
        free(d);
        return NULL;
    }
    for (int i = 0; i < n_readers; i++)
        atomic_init(&r[i].seen, 0);
    atomic_init(&d->cur, first);
    atomic_init(&d->epoch, 0);
    d->readers = r;
    d->n_readers = n_readers;
    d->retired = NULL;
    d->free_gen = free_gen;
    return d;
}

struct rq_gen *rq_gens_current(struct rq_gens *d)
{
    return atomic_load_explicit(&d->cur, memory_order_relaxed); /* the control thread wrote it */
}

void rq_gens_publish(struct rq_gens *d, struct rq_gen *g)
{
    struct rq_gen *old = atomic_load_explicit(&d->cur, memory_order_relaxed);
    atomic_store_explicit(&d->cur, g, memory_order_release);
    uint64_t e = atomic_load_explicit(&d->epoch, memory_order_relaxed) + 1;
    atomic_store_explicit(&d->epoch, e, memory_order_release);
    if (!old)
        return;
    old->retired_epoch = e;
    old->next_retired = d->retired;
    d->retired = old;
}

static bool all_passed(struct rq_gens *d, uint64_t e)
{
    for (int i = 0; i < d->n_readers; i++)
        if (atomic_load_explicit(&d->readers[i].seen, memory_order_acquire) < e)
            return false;
    return true;
}

size_t rq_gens_reclaim(struct rq_gens *d)
{
    size_t waiting = 0;
    struct rq_gen **pp = &d->retired;
    while (*pp) {
        struct rq_gen *g = *pp;
        if (all_passed(d, g->retired_epoch) &&
            atomic_load_explicit(&g->pins, memory_order_acquire) == 0) {
            *pp = g->next_retired;
            d->free_gen(g);
            continue;
        }
        waiting++;
        pp = &g->next_retired;
    }
    return waiting;
}

struct rq_gen *rq_gens_quiesce(struct rq_gens *d, int r, uint64_t *seen, struct rq_gen *cur)
{
    uint64_t e = atomic_load_explicit(&d->epoch, memory_order_acquire);
    if (e == *seen)
        return cur;
    cur = atomic_load_explicit(&d->cur, memory_order_acquire);
    *seen = e;
    atomic_store_explicit(&d->readers[r].seen, e, memory_order_release);
    return cur;
}

struct rq_gen *rq_gens_next(struct rq_gens *d, uint64_t seen, uint64_t *epoch)
{
    uint64_t e = atomic_load_explicit(&d->epoch, memory_order_acquire);
    if (e == seen)
        return NULL;
    *epoch = e;
    return atomic_load_explicit(&d->cur, memory_order_acquire);
}

void rq_gens_passed(struct rq_gens *d, int r, uint64_t *seen, uint64_t epoch)
{
    *seen = epoch;
    atomic_store_explicit(&d->readers[r].seen, epoch, memory_order_release);
}

void rq_gens_offline(struct rq_gens *d, int r)
{
    atomic_store_explicit(&d->readers[r].seen, UINT64_MAX, memory_order_release);
}

void rq_gens_free(struct rq_gens *d)
{
    if (!d)
        return;
    while (d->retired) {
        struct rq_gen *g = d->retired;
        d->retired = g->next_retired;
        d->free_gen(g);
    }
    struct rq_gen *cur = atomic_load_explicit(&d->cur, memory_order_relaxed);
    if (cur)
        d->free_gen(cur);
    free(d->readers);
    free(d);
}
