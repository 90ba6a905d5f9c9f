/* Unit tests for net/gen.c: a retired generation is freed only after every reader has passed a
 * quiescent point since the swap and no pin is left; readers see the new generation at their
 * next quiescent point; a stress run with reader threads that pin, use and unpin generations
 * while the control thread publishes and reclaims thousands of them (run under ASan/TSan it
 * catches a generation freed while in use). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/gen.h"
#include "tests/unit/check.h"

static int freed;

/* A generation whose "ports" are a payload a use can check. */
static struct rq_gen *gen_make(uint64_t serial)
{
    struct rq_gen *g = calloc(1, sizeof *g);
    g->serial = serial;
    g->ports = malloc(64);
    memset(g->ports, (int)(serial & 0x7f), 64);
    atomic_init(&g->pins, 0);
    return g;
}

static void gen_free(struct rq_gen *g)
{
    memset(g->ports, 0xff, 64); /* a use after free that ASan misses still sees this */
    free(g->ports);
    free(g);
    freed++;
}

static void test_reclaim_rules(void)
{
    freed = 0;
    struct rq_gen *g1 = gen_make(1), *g2 = gen_make(2), *g3 = gen_make(3);
    struct rq_gens *d = rq_gens_new(2, g1, gen_free);
    CHECK(rq_gens_current(d) == g1);
    uint64_t seen0 = 0, seen1 = 0;
    struct rq_gen *r0 = rq_gens_quiesce(d, 0, &seen0, g1);
    struct rq_gen *r1 = rq_gens_quiesce(d, 1, &seen1, g1);
    CHECK(r0 == g1 && r1 == g1);
    rq_gen_pin(r0); /* a connection on reader 0 accepted under g1 */

    rq_gens_publish(d, g2);
    CHECK(rq_gens_current(d) == g2);
    CHECK_EQ(rq_gens_reclaim(d), 1); /* no reader has passed a quiescent point */
    r0 = rq_gens_quiesce(d, 0, &seen0, r0);
    CHECK(r0 == g2);
    CHECK_EQ(rq_gens_reclaim(d), 1); /* reader 1 still may hold g1 */
    rq_gen_pin(r1);                  /* ... and does: it accepts one more under g1 */
    r1 = rq_gens_quiesce(d, 1, &seen1, r1);
    CHECK(r1 == g2);
    CHECK_EQ(rq_gens_reclaim(d), 1); /* both readers passed, two pins left */
    CHECK_EQ(freed, 0);
    rq_gen_unpin(g1);
    CHECK_EQ(rq_gens_reclaim(d), 1);
    rq_gen_unpin(g1);
    CHECK_EQ(rq_gens_reclaim(d), 0);
    CHECK_EQ(freed, 1);

    /* a quiescent point without a swap changes nothing; an unpinned retiree goes at once */
    CHECK(rq_gens_quiesce(d, 0, &seen0, r0) == g2);
    rq_gens_publish(d, g3);
    r0 = rq_gens_quiesce(d, 0, &seen0, r0);
    r1 = rq_gens_quiesce(d, 1, &seen1, r1);
    CHECK(r0 == g3 && r1 == g3);
    CHECK_EQ(rq_gens_reclaim(d), 0);
    CHECK_EQ(freed, 2);
    rq_gens_free(d); /* the current one too */
    CHECK_EQ(freed, 3);
}

/* Two swaps before a reader looks: both retirees wait for it, then go. */
static void test_two_swaps(void)
{
    freed = 0;
    struct rq_gens *d = rq_gens_new(1, gen_make(1), gen_free);
    uint64_t seen = 0;
    struct rq_gen *r = rq_gens_quiesce(d, 0, &seen, rq_gens_current(d));
    rq_gens_publish(d, gen_make(2));
    rq_gens_publish(d, gen_make(3));
    CHECK_EQ(rq_gens_reclaim(d), 2);
    r = rq_gens_quiesce(d, 0, &seen, r);
    CHECK_EQ(r->serial, 3);
    CHECK_EQ(rq_gens_reclaim(d), 0);
    CHECK_EQ(freed, 2);
    rq_gens_free(d);
}

/* ---- stress: readers pin, use and unpin while the control thread swaps ---- */

enum { READERS = 2, SWAPS = 3000, HELD = 16 };

struct stress {
    struct rq_gens *d;
    atomic_bool stop;
    atomic_long bad, uses;
};

struct reader_arg {
    struct stress *st;
    int id;
};

static bool intact(const struct rq_gen *g)
{
    const uint8_t *p = (const uint8_t *)g->ports;
    for (int i = 0; i < 64; i++)
        if (p[i] != (uint8_t)(g->serial & 0x7f))
            return false;
    return true;
}

static void *reader(void *arg)
{
    struct reader_arg *a = arg;
    struct stress *st = a->st;
    uint64_t seen = 0;
    struct rq_gen *cur = rq_gens_current(st->d); /* set before the thread started */
    struct rq_gen *held[HELD] = {0};             /* "connections" and their pins */
    unsigned turn = 0;
    while (!atomic_load(&st->stop)) {
        cur = rq_gens_quiesce(st->d, a->id, &seen, cur);
        unsigned i = turn++ % HELD;
        if (held[i]) { /* a connection closes */
            if (!intact(held[i]))
                atomic_fetch_add(&st->bad, 1);
            rq_gen_unpin(held[i]);
        }
        rq_gen_pin(cur); /* one is accepted */
        held[i] = cur;
        if (!intact(cur))
            atomic_fetch_add(&st->bad, 1);
        atomic_fetch_add(&st->uses, 1);
    }
    for (int i = 0; i < HELD; i++)
        rq_gen_unpin(held[i]);
    rq_gens_offline(st->d, a->id);
    return NULL;
}

static void test_stress(void)
{
    freed = 0;
    struct stress st = {.d = rq_gens_new(READERS, gen_make(1), gen_free)};
    atomic_init(&st.stop, false);
    atomic_init(&st.bad, 0);
    atomic_init(&st.uses, 0);
    pthread_t t[READERS];
    struct reader_arg args[READERS];
    for (int i = 0; i < READERS; i++) {
        args[i] = (struct reader_arg){&st, i};
        pthread_create(&t[i], NULL, reader, &args[i]);
    }
    size_t most = 0;
    for (uint64_t s = 2; s < 2 + SWAPS; s++) {
        rq_gens_publish(st.d, gen_make(s));
        size_t w = rq_gens_reclaim(st.d);
        most = w > most ? w : most;
    }
    atomic_store(&st.stop, true);
    for (int i = 0; i < READERS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(rq_gens_reclaim(st.d), 0); /* readers gone, every pin returned */
    CHECK_EQ(freed, SWAPS);
    CHECK_EQ(atomic_load(&st.bad), 0);
    CHECK(atomic_load(&st.uses) > 0);
    fprintf(stderr, "stress: %d swaps, %ld uses, at most %zu retired generations waiting\n", SWAPS,
            atomic_load(&st.uses), most);
    rq_gens_free(st.d);
}

int main(void)
{
    test_reclaim_rules();
    test_two_swaps();
    test_stress();
    return check_exit("test_gen");
}
