/* Bounded lock-free MPSC queue of fixed-size entries (a shard's inbox).
 *
 * What it does: any number of producer threads copy entries into a ring of cells; the single
 * consumer (the owning shard) copies them out in order; producers learn when the consumer has to
 * be woken. What it does not do: block, allocate after rq_inbox_new, or wake anybody itself (the
 * caller sends IORING_OP_MSG_RING, writes an eventfd, ... when push reports wake).
 *
 * Ring. Each cell carries a sequence number: seq == pos means "free for the producer of position
 * pos", seq == pos + 1 means "holds the entry of position pos", and the consumer sets it to
 * pos + capacity when it has copied the entry out (free for the next lap). Producers claim a
 * position with a CAS on tail after seeing its cell free; the copy is published by a release
 * store of seq, which the consumer reads with acquire (and vice versa when a cell is recycled),
 * so entry bytes need no atomics. A producer that is preempted between claim and publish holds
 * up the consumer at that position only until it runs again (the usual price of array MPSC).
 *
 * Wake protocol. Bit 0 of tail is the ARMED flag, the rest is the next position to claim, so
 * "is the consumer asleep" and "which position is mine" are decided by one atomic operation on
 * one word, in one total order (no store/load fence pairs, no seq_cst needed):
 *  - rq_inbox_sleep (consumer, about to block): if tail's position is still the consumer's head
 *    (every claimed entry consumed), CAS ARMED in and return false: the consumer may block.
 *    Otherwise entries were claimed after its last empty pop; return true: pop again.
 *  - rq_inbox_push: the claiming CAS also clears ARMED; if it was set, this push is the first
 *    since the consumer armed, and it reports wake = true (after publishing its entry, so the
 *    woken consumer finds it).
 * No lost wake-up: a push's claim is ordered before or after the consumer's arming CAS on tail.
 * Before: the arming CAS sees tail moved past head and fails, so sleep returns true. After: the
 * claim sees ARMED and that producer wakes the consumer. No spurious wakes while the consumer is
 * busy: ARMED is only set by rq_inbox_sleep and only the first claim after it reports wake.
 * The queue starts ARMED (empty, no wake pending), so the first push ever reports wake; a
 * consumer that never slept then sees one extra wake-up, which is harmless.
 */
#include "core/inbox.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_LINE 64
#define ARMED 1u
#define MAX_CAPACITY (1u << 30)

struct cell {
    _Atomic uint64_t seq;
    unsigned char data[]; /* entry_size bytes */
};

struct rq_inbox {
    /* read-only after creation, shared by everybody */
    unsigned char *cells;
    size_t cell_size;
    size_t entry_size;
    uint64_t mask;
    /* producers' line: (next position << 1) | ARMED */
    alignas(CACHE_LINE) _Atomic uint64_t tail;
    /* consumer's line: next position to pop */
    alignas(CACHE_LINE) uint64_t head;
};

static struct cell *cell_at(const struct rq_inbox *q, uint64_t pos)
{
    return (struct cell *)(q->cells + (size_t)(pos & q->mask) * q->cell_size);
}

struct rq_inbox *rq_inbox_new(uint32_t capacity, size_t entry_size)
{
    if (capacity > MAX_CAPACITY || entry_size > SIZE_MAX / 2 / MAX_CAPACITY)
        return NULL;
    uint64_t cap = 2; /* a lap must differ from "full": at least two cells */
    while (cap < capacity)
        cap <<= 1;
    size_t cell_size = (sizeof(struct cell) + entry_size + 7) & ~(size_t)7;
    size_t bytes = (size_t)cap * cell_size;
    bytes = (bytes + CACHE_LINE - 1) & ~(size_t)(CACHE_LINE - 1);

    struct rq_inbox *q = aligned_alloc(CACHE_LINE, sizeof *q);
    if (!q)
        return NULL;
    q->cells = aligned_alloc(CACHE_LINE, bytes);
    if (!q->cells) {
        free(q);
        return NULL;
    }
    q->cell_size = cell_size;
    q->entry_size = entry_size;
    q->mask = cap - 1;
    for (uint64_t i = 0; i < cap; i++)
        atomic_init(&cell_at(q, i)->seq, i);
    atomic_init(&q->tail, ARMED); /* position 0, consumer counted as asleep */
    q->head = 0;
    return q;
}

void rq_inbox_free(struct rq_inbox *q)
{
    if (!q)
        return;
    free(q->cells);
    free(q);
}

bool rq_inbox_push(struct rq_inbox *q, const void *entry, bool *wake)
{
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    struct cell *c;

    *wake = false;
    for (;;) {
        uint64_t pos = tail >> 1;
        c = cell_at(q, pos);
        /* acquire: the consumer's copy-out of the previous lap happens before our copy-in */
        uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        int64_t diff = (int64_t)(seq - pos);
        if (diff == 0) {
            /* relaxed: entry bytes are ordered by seq; ARMED only needs tail's total order */
            if (atomic_compare_exchange_weak_explicit(&q->tail, &tail, (pos + 1) << 1,
                                                      memory_order_relaxed, memory_order_relaxed))
                break;
        } else if (diff < 0) {
            return false; /* the cell still holds last lap's entry: full */
        } else {
            /* another producer took pos; reload */
            tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
        }
    }
    memcpy(c->data, entry, q->entry_size);
    atomic_store_explicit(&c->seq, (tail >> 1) + 1, memory_order_release);
    *wake = (tail & ARMED) != 0; /* tail = the value our CAS replaced */
    return true;
}

bool rq_inbox_pop(struct rq_inbox *q, void *entry)
{
    struct cell *c = cell_at(q, q->head);
    uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    if (seq != q->head + 1)
        return false; /* empty, or the producer of head has not finished its copy */
    memcpy(entry, c->data, q->entry_size);
    /* release: our copy-out happens before the next lap's producer copies in */
    atomic_store_explicit(&c->seq, q->head + q->mask + 1, memory_order_release);
    q->head++;
    return true;
}

bool rq_inbox_sleep(struct rq_inbox *q)
{
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        if ((tail >> 1) != q->head)
            return true; /* claimed since the last empty pop (maybe still being copied) */
        if (tail & ARMED)
            return false; /* already armed: the next push still owes the wake-up */
        if (atomic_compare_exchange_weak_explicit(&q->tail, &tail, tail | ARMED,
                                                  memory_order_relaxed, memory_order_relaxed))
            return false;
    }
}
