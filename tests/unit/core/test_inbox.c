/* Unit tests for core/inbox: FIFO order, full queue, the wake protocol step by step, and a
 * 4-producer stress run whose consumer really blocks, woken only by pushes reporting wake: a
 * lost wake-up shows up as a wait that times out. */
#include "core/inbox.h"
#include "tests/unit/check.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_fifo_and_wake(void)
{
    struct rq_inbox *q = rq_inbox_new(5, sizeof(uint64_t)); /* rounded up to 8 */
    uint64_t v;
    bool wake = true;

    CHECK(q != NULL);
    if (!q)
        return;
    CHECK(!rq_inbox_pop(q, &v));
    for (uint64_t i = 0; i < 8; i++) {
        CHECK(rq_inbox_push(q, &i, &wake));
        CHECK_EQ(wake, i == 0); /* a new queue counts as empty with its consumer asleep */
    }
    v = 99;
    CHECK(!rq_inbox_push(q, &v, &wake)); /* full */
    CHECK(!wake);
    CHECK(rq_inbox_sleep(q)); /* entries are waiting: do not sleep */
    for (uint64_t i = 0; i < 8; i++) {
        CHECK(rq_inbox_pop(q, &v));
        CHECK_EQ(v, i);
    }
    CHECK(!rq_inbox_pop(q, &v));

    /* Empty but the consumer has not announced sleep: pushes do not wake. */
    v = 100;
    CHECK(rq_inbox_push(q, &v, &wake));
    CHECK(!wake);
    CHECK(rq_inbox_sleep(q));
    CHECK(rq_inbox_pop(q, &v));
    CHECK_EQ(v, 100);

    /* Armed: exactly the next push wakes. */
    CHECK(!rq_inbox_sleep(q));
    CHECK(!rq_inbox_sleep(q)); /* still armed */
    for (uint64_t i = 0; i < 3; i++) {
        CHECK(rq_inbox_push(q, &i, &wake));
        CHECK_EQ(wake, i == 0);
    }
    CHECK(rq_inbox_sleep(q));
    for (uint64_t i = 0; i < 3; i++) {
        CHECK(rq_inbox_pop(q, &v));
        CHECK_EQ(v, i);
    }
    /* A push between the last empty pop and sleep: sleep sees it, no wake is owed. */
    CHECK(!rq_inbox_pop(q, &v));
    CHECK(rq_inbox_push(q, &v, &wake));
    CHECK(!wake);
    CHECK(rq_inbox_sleep(q));
    CHECK(rq_inbox_pop(q, &v));
    CHECK(!rq_inbox_sleep(q));
    rq_inbox_free(q);
}

/* Many laps around a small ring with an odd entry size and random batch sizes. */
static void test_wraparound(void)
{
    struct entry {
        unsigned char b[13];
    } in, out;
    struct rq_inbox *q = rq_inbox_new(3, sizeof in); /* 4 cells */
    uint64_t rng = 12345, pushed = 0, popped = 0;
    bool wake;

    CHECK(q != NULL);
    if (!q)
        return;
    for (unsigned lap = 0; lap < 20000; lap++) {
        unsigned n = 1 + (unsigned)(xorshift(&rng) % 4);
        for (unsigned i = 0; i < n; i++, pushed++) {
            memset(in.b, (int)(pushed & 0xff), sizeof in.b);
            in.b[12] = (unsigned char)(pushed >> 8);
            CHECK(rq_inbox_push(q, &in, &wake));
        }
        if (n == 4)
            CHECK(!rq_inbox_push(q, &in, &wake));
        for (unsigned i = 0; i < n; i++, popped++) {
            CHECK(rq_inbox_pop(q, &out));
            CHECK_EQ(out.b[0], popped & 0xff);
            CHECK_EQ(out.b[11], popped & 0xff);
            CHECK_EQ(out.b[12], (popped >> 8) & 0xff);
        }
        CHECK(!rq_inbox_pop(q, &out));
    }
    rq_inbox_free(q);

    q = rq_inbox_new(0, 8); /* minimum two cells */
    CHECK(q != NULL);
    if (q) {
        uint64_t v = 1;
        CHECK(rq_inbox_push(q, &v, &wake));
        CHECK(rq_inbox_push(q, &v, &wake));
        CHECK(!rq_inbox_push(q, &v, &wake));
        rq_inbox_free(q);
    }
    CHECK(rq_inbox_new(UINT32_MAX, 8) == NULL);
    rq_inbox_free(NULL);
}

/* ---- stress ---------------------------------------------------------------------------- */

#define PRODUCERS 4
#define STRESS_CAPACITY 256

struct msg {
    uint32_t producer;
    uint32_t check; /* producer ^ low bits of seq: catches torn copies */
    uint64_t seq;
};

static struct rq_inbox *sq;
static uint64_t per_producer = 1000000;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static uint64_t tokens; /* wake-ups posted, not yet taken (like MSG_RING CQEs); under mu */
static atomic_uint_fast64_t wakes, fulls;

static void *producer(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    uint64_t rng = 0x2545f4914f6cdd1dull * (id + 1);

    for (uint64_t i = 0; i < per_producer; i++) {
        struct msg m = {.producer = id, .check = id ^ (uint32_t)i, .seq = i};
        bool wake;
        while (!rq_inbox_push(sq, &m, &wake)) {
            atomic_fetch_add_explicit(&fulls, 1, memory_order_relaxed);
            sched_yield(); /* backpressure */
        }
        if (wake) {
            atomic_fetch_add_explicit(&wakes, 1, memory_order_relaxed);
            pthread_mutex_lock(&mu);
            tokens++;
            pthread_cond_signal(&cv);
            pthread_mutex_unlock(&mu);
        }
        /* Bursts with gaps, so the consumer runs dry and goes to sleep often. */
        if ((xorshift(&rng) & 255) == 0)
            sched_yield();
    }
    return NULL;
}

struct consumer_stats {
    uint64_t got, bad, armed, polls, timeouts;
};

/* Blocks until a producer posts a wake-up. A wait that times out is a lost wake-up; after the
 * first one the consumer only polls, so that a broken queue still ends the test quickly. */
static void wait_for_wake(struct consumer_stats *st)
{
    if (st->timeouts) {
        sched_yield();
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 2;
    pthread_mutex_lock(&mu);
    while (tokens == 0) {
        if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT) {
            st->timeouts++;
            break;
        }
    }
    if (tokens)
        tokens--;
    pthread_mutex_unlock(&mu);
}

static void consume(struct consumer_stats *st)
{
    uint64_t next[PRODUCERS] = {0}, total = per_producer * PRODUCERS;
    struct msg m;

    while (st->got < total) {
        if (rq_inbox_pop(sq, &m)) {
            if (m.producer >= PRODUCERS || m.seq != next[m.producer] ||
                m.check != (m.producer ^ (uint32_t)m.seq))
                st->bad++;
            else
                next[m.producer]++;
            st->got++;
            continue;
        }
        if (rq_inbox_sleep(sq)) { /* raced in, or a producer is mid-copy */
            st->polls++;
            sched_yield(); /* let a preempted producer finish its copy */
            continue;
        }
        st->armed++;
        wait_for_wake(st);
    }
    for (unsigned p = 0; p < PRODUCERS; p++)
        CHECK_EQ(next[p], per_producer);
}

static void test_stress(void)
{
    pthread_t th[PRODUCERS];
    struct consumer_stats st = {0};

    sq = rq_inbox_new(STRESS_CAPACITY, sizeof(struct msg));
    CHECK(sq != NULL);
    if (!sq)
        return;
    for (unsigned p = 0; p < PRODUCERS; p++)
        CHECK_EQ(pthread_create(&th[p], NULL, producer, (void *)(uintptr_t)p), 0);
    consume(&st);
    for (unsigned p = 0; p < PRODUCERS; p++)
        CHECK_EQ(pthread_join(th[p], NULL), 0);

    uint64_t w = atomic_load(&wakes);
    CHECK_EQ(st.got, per_producer * PRODUCERS);
    CHECK_EQ(st.bad, 0);
    CHECK_EQ(st.timeouts, 0); /* no lost wake-up */
    CHECK(w <= st.armed + 1); /* no wake while the consumer was busy (+1: the initial arming) */
    CHECK(w >= st.armed);     /* every sleep was ended by a wake */
    CHECK_EQ(tokens, w - st.armed);
    CHECK(st.armed > 0); /* the sleep path was exercised */
    fprintf(stderr,
            "stress: %llu entries, %llu sleeps, %llu wakes, %llu re-polls, %llu full pushes\n",
            (unsigned long long)st.got, (unsigned long long)st.armed, (unsigned long long)w,
            (unsigned long long)st.polls, (unsigned long long)atomic_load(&fulls));
    rq_inbox_free(sq);
}

int main(void)
{
    /* RQ_INBOX_STRESS=<entries per producer> shortens runs under slow sanitizers. */
    const char *env = getenv("RQ_INBOX_STRESS");
    if (env && strtoull(env, NULL, 10) > 0)
        per_producer = strtoull(env, NULL, 10);
    test_fifo_and_wake();
    test_wraparound();
    test_stress();
    return check_exit("test_inbox");
}
