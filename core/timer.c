/* Hierarchical timer wheel: RQ_WHEEL_LEVELS levels of 64 slots, level L slot width 64^L ms.
 *
 * What it does: keeps intrusive timers in circular doubly-linked lists (one per slot), adds and
 * cancels in O(1), fires timers exactly at their expiry (no granularity loss: far timers cascade
 * down to finer levels as time advances) and jumps over idle time using the occupied bitmaps.
 * What it does not do: threads (one wheel per shard, owner thread only), reentrant runs (a
 * callback must not call rq_wheel_run), or clock reading beyond rq_now_ms().
 *
 * Placement. For a timer expiring at e when the wheel is at time now (e > now), the level is that
 * of the highest bit where e and now differ, L = msb(e ^ now) / 6, and the slot is e's digit at
 * that level. So at levels below the top, e agrees with now above level L and its digit at L is
 * strictly greater than now's: the slot is reached when now enters it, at which point the timer
 * is placed again and lands on a lower level (e ^ now is smaller), eventually in the level-0 slot
 * whose millisecond is e itself. A timer with e <= now goes to the level-0 slot of now ("due").
 *
 * The top level is circular: a timer up to 63 top-level units ahead goes to its own digit; one
 * further ahead is clamped to the slot just behind now's digit (63 units ahead) and placed again
 * when that slot comes up. Either way a slot never lies at now's digit for levels >= 1, and the
 * time a slot "comes up" is the first start of a unit with that digit after now (level_event()).
 *
 * Invariants: occupied[L] bit s is set iff slots[L][s] is non-empty; the level-0 slot at now's
 * digit holds only due timers; count is the number of pending timers, including those moved to
 * a local list by rq_wheel_run and not fired yet.
 */
#include "core/timer.h"

#include <assert.h>
#include <stddef.h>
#include <time.h>

#define SLOT_MASK (RQ_WHEEL_SLOTS - 1)
#define TOP (RQ_WHEEL_LEVELS - 1)

static_assert(RQ_WHEEL_SLOTS == 64, "occupied bitmaps are one uint64_t per level");
static_assert(RQ_WHEEL_LEVELS * RQ_WHEEL_BITS < 64, "wheel range must fit in 64-bit ms");

static unsigned shift_of(unsigned level)
{
    return level * RQ_WHEEL_BITS;
}

static unsigned digit(uint64_t t, unsigned level)
{
    return (unsigned)(t >> shift_of(level)) & SLOT_MASK;
}

static void list_init(struct rq_timer *head)
{
    head->next = head->prev = head;
}

static bool list_empty(const struct rq_timer *head)
{
    return head->next == head;
}

static void list_append(struct rq_timer *head, struct rq_timer *t)
{
    t->prev = head->prev;
    t->next = head;
    head->prev->next = t;
    head->prev = t;
}

/* Moves every entry of src to the fresh head dst; src is left empty. */
static void list_take(struct rq_timer *dst, struct rq_timer *src)
{
    if (list_empty(src)) {
        list_init(dst);
        return;
    }
    dst->next = src->next;
    dst->prev = src->prev;
    dst->next->prev = dst;
    dst->prev->next = dst;
    list_init(src);
}

/* When cancelling leaves a list empty, its head may be a wheel slot (clear its occupied bit) or
 * the local list of rq_wheel_run (nothing to do). Slot heads are recognised by address. */
static void clear_if_slot(struct rq_wheel *w, const struct rq_timer *head)
{
    const struct rq_timer *first = &w->slots[0][0];
    uintptr_t a = (uintptr_t)head, lo = (uintptr_t)first;
    uintptr_t hi = (uintptr_t)(first + RQ_WHEEL_LEVELS * RQ_WHEEL_SLOTS);
    if (a < lo || a >= hi)
        return;
    size_t idx = (size_t)(a - lo) / sizeof(struct rq_timer);
    w->occupied[idx / RQ_WHEEL_SLOTS] &= ~(1ull << (idx % RQ_WHEEL_SLOTS));
}

/* Puts t (not linked anywhere) into the slot chosen as described at the top of the file. */
static void place(struct rq_wheel *w, struct rq_timer *t)
{
    uint64_t now = w->now, e = t->expires;
    unsigned level = 0, slot = digit(now, 0);

    if (e > now) {
        level = (unsigned)(63 - __builtin_clzll(e ^ now)) / RQ_WHEEL_BITS;
        if (level < TOP) {
            slot = digit(e, level);
        } else {
            unsigned sh = shift_of(TOP);
            uint64_t ahead = (e >> sh) - (now >> sh); /* >= 1 */
            level = TOP;
            slot =
                ahead < RQ_WHEEL_SLOTS ? digit(e, TOP) : (digit(now, TOP) + SLOT_MASK) & SLOT_MASK;
        }
    }
    list_append(&w->slots[level][slot], t);
    w->occupied[level] |= 1ull << slot;
}

/* Time at which the next occupied slot of this level comes up: exact expiry at level 0, a
 * cascade point (<= every expiry in the slot) above. UINT64_MAX when the level is empty. */
static uint64_t level_event(const struct rq_wheel *w, unsigned level)
{
    uint64_t occ = w->occupied[level];
    if (!occ)
        return UINT64_MAX;
    unsigned d = digit(w->now, level);
    uint64_t rot = d ? (occ >> d) | (occ << (64 - d)) : occ; /* bit i = slot d + i */
    unsigned dist = (unsigned)__builtin_ctzll(rot);
    if (dist == 0)
        return w->now;
    unsigned sh = shift_of(level);
    return ((w->now >> sh) + dist) << sh;
}

static uint64_t next_event(const struct rq_wheel *w)
{
    uint64_t best = UINT64_MAX;
    for (unsigned level = 0; level < RQ_WHEEL_LEVELS; level++) {
        uint64_t t = level_event(w, level);
        if (t < best)
            best = t;
    }
    return best;
}

/* w->now has just reached a cascade point: re-place the slots it entered. No callbacks run. */
static void cascade(struct rq_wheel *w)
{
    for (unsigned level = TOP; level >= 1; level--) {
        unsigned d = digit(w->now, level);
        if (!(w->occupied[level] & (1ull << d)))
            continue;
        struct rq_timer local;
        list_take(&local, &w->slots[level][d]);
        w->occupied[level] &= ~(1ull << d);
        for (struct rq_timer *t = local.next, *next; t != &local; t = next) {
            next = t->next;
            place(w, t);
        }
    }
}

/* Merges two NULL-terminated lists sorted by expires (singly linked through next). */
static struct rq_timer *merge(struct rq_timer *a, struct rq_timer *b)
{
    struct rq_timer head = {0}, *tail = &head;
    while (a && b) {
        struct rq_timer **min = b->expires < a->expires ? &b : &a;
        tail->next = *min;
        tail = *min;
        *min = (*min)->next;
    }
    tail->next = a ? a : b;
    return head.next;
}

/* The due slot mixes expiries only when timers were added in the past; fire those in order.
 * Bottom-up merge sort: bins[i] holds a sorted run of 2^i entries. */
static void sort_due(struct rq_timer *head)
{
    bool sorted = true;
    for (struct rq_timer *t = head->next; t->next != head && sorted; t = t->next)
        sorted = t->expires <= t->next->expires;
    if (sorted)
        return;

    struct rq_timer *bins[64] = {0}, *l = head->next;
    head->prev->next = NULL;
    while (l) {
        struct rq_timer *run = l;
        l = l->next;
        run->next = NULL;
        unsigned i = 0;
        for (; i < 63 && bins[i]; i++) {
            run = merge(bins[i], run);
            bins[i] = NULL;
        }
        bins[i] = merge(bins[i], run);
    }
    struct rq_timer *res = NULL;
    for (unsigned i = 0; i < 64; i++)
        if (bins[i])
            res = merge(bins[i], res);

    struct rq_timer *prev = head;
    for (struct rq_timer *t = res; t; t = t->next) {
        t->prev = prev;
        prev->next = t;
        prev = t;
    }
    prev->next = head;
    head->prev = prev;
}

/* Fires the level-0 slot at w->now until it stays empty. The slot is moved to a local list
 * first, so callbacks may cancel or re-add any timer, including ones still waiting in the local
 * list; a timer they add at or before now lands in the slot again and fires in the next pass. */
static unsigned fire_due(struct rq_wheel *w)
{
    unsigned fired = 0, d = digit(w->now, 0);
    struct rq_timer *slot = &w->slots[0][d];

    while (!list_empty(slot)) {
        struct rq_timer due;
        list_take(&due, slot);
        w->occupied[0] &= ~(1ull << d);
        sort_due(&due);
        while (!list_empty(&due)) {
            struct rq_timer *t = due.next;
            rq_timer_cancel(w, t);
            t->fn(t, t->arg); /* t may be freed or re-added from here on */
            fired++;
        }
    }
    return fired;
}

void rq_wheel_init(struct rq_wheel *w, uint64_t now_ms)
{
    for (unsigned level = 0; level < RQ_WHEEL_LEVELS; level++) {
        for (unsigned s = 0; s < RQ_WHEEL_SLOTS; s++)
            list_init(&w->slots[level][s]);
        w->occupied[level] = 0;
    }
    w->now = now_ms;
    w->count = 0;
}

void rq_timer_add(struct rq_wheel *w, struct rq_timer *t, uint64_t expires_ms, rq_timer_fn fn,
                  void *arg)
{
    rq_timer_cancel(w, t);
    t->expires = expires_ms;
    t->fn = fn;
    t->arg = arg;
    place(w, t);
    w->count++;
}

void rq_timer_cancel(struct rq_wheel *w, struct rq_timer *t)
{
    if (!rq_timer_pending(t))
        return;
    struct rq_timer *p = t->prev, *n = t->next;
    p->next = n;
    n->prev = p;
    if (p == n) /* t was the only entry; p is the list head */
        clear_if_slot(w, p);
    t->next = t->prev = NULL;
    w->count--;
}

/* A now_ms earlier than the wheel's time is treated as the wheel's time (the clock is
 * monotonic), so timers added in the past still fire. Each step jumps straight to the next
 * occupied slot of any level, so idle gaps cost nothing however long. */
unsigned rq_wheel_run(struct rq_wheel *w, uint64_t now_ms)
{
    unsigned fired = 0;
    for (;;) {
        fired += fire_due(w);
        uint64_t t = next_event(w);
        if (t > now_ms || t == UINT64_MAX)
            break;
        w->now = t; /* >= w->now: slots only lie ahead of the wheel's time */
        cascade(w);
    }
    if (now_ms > w->now)
        w->now = now_ms;
    return fired;
}

int64_t rq_wheel_next(const struct rq_wheel *w, uint64_t now_ms)
{
    if (w->count == 0)
        return -1;
    uint64_t t = next_event(w);
    if (t == UINT64_MAX) /* only timers detached by a running rq_wheel_run: due now */
        return 0;
    if (t <= now_ms)
        return 0;
    uint64_t d = t - now_ms;
    return d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
}

uint64_t rq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC on Linux */
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
