/* Unit tests for core/timer: exact firing times, callbacks that cancel and re-add, far-future
 * timers, rq_wheel_next as an upper bound, and a long random run against a brute-force model. */
#include "core/timer.h"
#include "tests/unit/check.h"

#include <stdlib.h>

#define BASE 1700000000123ull /* wheel start: not aligned to any level */
#define DAY (24ull * 3600 * 1000)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static struct rq_wheel wheel;

/* ---- directed tests -------------------------------------------------------------------- */

struct rec {
    struct rq_timer t;
    unsigned fired;
    uint64_t fired_at; /* wheel.now when it fired */
    int readd;         /* times left to re-add itself */
    uint64_t period;
    struct rec **group; /* NULL-terminated: timers this one cancels when it fires */
    struct rec *other;  /* timer this one re-arms at now + period when it fires */
};

static void on_rec(struct rq_timer *t, void *arg)
{
    struct rec *r = arg;
    CHECK(t == &r->t);
    CHECK(!rq_timer_pending(t));
    r->fired++;
    r->fired_at = wheel.now;
    for (struct rec **g = r->group; g && *g; g++)
        rq_timer_cancel(&wheel, &(*g)->t);
    if (r->other)
        rq_timer_add(&wheel, &r->other->t, wheel.now + r->period, on_rec, r->other);
    if (r->readd > 0) {
        r->readd--;
        rq_timer_add(&wheel, t, wheel.now + r->period, on_rec, r);
    }
}

static void test_exact(void)
{
    static const uint64_t offs[] = {0,    1,    2,      63,     64,      65,       127,      4095,
                                    4096, 4097, 262143, 262144, 1000000, 16777216, 123456789};
    enum { N = sizeof offs / sizeof offs[0] };
    struct rec r[N] = {0};

    rq_wheel_init(&wheel, BASE);
    CHECK_EQ(rq_wheel_next(&wheel, BASE), -1);
    for (unsigned i = 0; i < N; i++)
        rq_timer_add(&wheel, &r[i].t, BASE + offs[i], on_rec, &r[i]);
    CHECK_EQ(wheel.count, N);
    CHECK_EQ(rq_wheel_next(&wheel, BASE), 0);
    /* Step exactly to each expiry - 1 and then to the expiry. */
    for (unsigned i = 0; i < N; i++) {
        if (offs[i] > 0) {
            rq_wheel_run(&wheel, BASE + offs[i] - 1);
            CHECK_EQ(r[i].fired, 0);
            int64_t n = rq_wheel_next(&wheel, BASE + offs[i] - 1);
            CHECK(n >= 0 && n <= 1);
        }
        CHECK_EQ(rq_wheel_run(&wheel, BASE + offs[i]), 1);
        CHECK_EQ(r[i].fired, 1);
        CHECK_EQ(r[i].fired_at, BASE + offs[i]);
    }
    CHECK_EQ(wheel.count, 0);
    CHECK_EQ(rq_wheel_next(&wheel, wheel.now), -1);
    CHECK_EQ(rq_wheel_run(&wheel, BASE + 10 * DAY), 0);
    CHECK_EQ(wheel.now, BASE + 10 * DAY);

    /* Cancel before firing; re-add moves; a past expiry fires on the next run. */
    struct rec a = {0}, b = {0}, c = {0};
    uint64_t now = wheel.now;
    rq_timer_add(&wheel, &a.t, now + 100, on_rec, &a);
    rq_timer_add(&wheel, &b.t, now + 100, on_rec, &b);
    rq_timer_add(&wheel, &b.t, now + 5000, on_rec, &b);
    rq_timer_cancel(&wheel, &a.t);
    rq_timer_cancel(&wheel, &a.t); /* twice is harmless */
    CHECK(!rq_timer_pending(&a.t));
    CHECK_EQ(wheel.count, 1);
    CHECK_EQ(rq_wheel_run(&wheel, now + 4999), 0);
    rq_timer_add(&wheel, &c.t, now - 50, on_rec, &c);
    CHECK_EQ(rq_wheel_next(&wheel, now + 4999), 0);
    CHECK_EQ(rq_wheel_run(&wheel, now + 4999), 1);
    CHECK_EQ(c.fired, 1);
    CHECK_EQ(rq_wheel_run(&wheel, now + 5000), 1);
    CHECK_EQ(a.fired + b.fired, 1);
    CHECK_EQ(b.fired_at, now + 5000);
}

static void test_cancel_in_callback(void)
{
    struct rec r[4] = {0}, later = {0};
    struct rec *group[] = {&r[0], &r[1], &r[2], &r[3], &later, NULL};

    rq_wheel_init(&wheel, BASE);
    for (unsigned i = 0; i < 4; i++) {
        r[i].group = group; /* each cancels all, itself included (a no-op by then) */
        rq_timer_add(&wheel, &r[i].t, BASE + 10, on_rec, &r[i]);
    }
    rq_timer_add(&wheel, &later.t, BASE + 20, on_rec, &later);
    CHECK_EQ(rq_wheel_run(&wheel, BASE + 100), 1);
    CHECK_EQ(r[0].fired + r[1].fired + r[2].fired + r[3].fired, 1);
    CHECK_EQ(later.fired, 0);
    CHECK_EQ(wheel.count, 0);
    CHECK_EQ(rq_wheel_next(&wheel, BASE + 100), -1);
}

static void on_free(struct rq_timer *t, void *arg)
{
    (*(unsigned *)arg)++;
    free(t); /* owner frees itself in its own callback: the wheel must not touch t again */
}

static void test_readd_in_callback(void)
{
    struct rec per = {.readd = 1000, .period = 7};

    rq_wheel_init(&wheel, BASE);
    rq_timer_add(&wheel, &per.t, BASE + 7, on_rec, &per);
    CHECK_EQ(rq_wheel_run(&wheel, BASE + 1000), 142); /* 7, 14, ..., 994 in one run */
    CHECK_EQ(per.fired_at, BASE + 994);
    CHECK(rq_timer_pending(&per.t));
    CHECK_EQ(rq_wheel_next(&wheel, BASE + 1000), 1);
    rq_timer_cancel(&wheel, &per.t);

    /* Re-add at "now" from the callback: fires again in the same run. */
    struct rec again = {.readd = 3, .period = 0};
    rq_timer_add(&wheel, &again.t, BASE + 1500, on_rec, &again);
    CHECK_EQ(rq_wheel_run(&wheel, BASE + 1500), 4);
    CHECK_EQ(again.fired, 4);
    CHECK(!rq_timer_pending(&again.t));

    /* x and y share a slot; whichever fires first pushes the other 300 ms later. */
    struct rec x = {.period = 300}, y = {.period = 300};
    x.other = &y;
    y.other = &x;
    rq_timer_add(&wheel, &x.t, BASE + 2000, on_rec, &x);
    rq_timer_add(&wheel, &y.t, BASE + 2000, on_rec, &y);
    CHECK_EQ(rq_wheel_run(&wheel, BASE + 2299), 1);
    CHECK_EQ(x.fired + y.fired, 1);
    CHECK_EQ(wheel.count, 1);
    CHECK_EQ(rq_wheel_run(&wheel, BASE + 2300), 1); /* and that one re-arms the first */
    CHECK_EQ(x.fired, 1);
    CHECK_EQ(y.fired, 1);
    rq_timer_cancel(&wheel, &x.t);
    rq_timer_cancel(&wheel, &y.t);

    /* A callback may free its own timer. */
    unsigned freed = 0;
    for (unsigned i = 0; i < 10; i++) {
        struct rq_timer *t = calloc(1, sizeof *t);
        CHECK(t != NULL);
        if (t)
            rq_timer_add(&wheel, t, BASE + 3000 + i % 3, on_free, &freed);
    }
    CHECK_EQ(rq_wheel_run(&wheel, BASE + 3002), 10);
    CHECK_EQ(freed, 10);
    CHECK_EQ(wheel.count, 0);
}

static void test_far_future(void)
{
    /* Up to years: past the wheel's range (2^36 ms, ~795 days), so some are clamped. */
    static const uint64_t offs[] = {DAY,       3 * DAY,        30 * DAY + 17,    400 * DAY + 5,
                                    800 * DAY, 1000 * DAY + 1, 3650 * DAY + 999, 1ull << 40};
    enum { N = sizeof offs / sizeof offs[0] };
    struct rec r[N] = {0};

    /* Driven by rq_wheel_next like the shard loop: few wake-ups, each timer exact. */
    rq_wheel_init(&wheel, BASE);
    for (unsigned i = 0; i < N; i++)
        rq_timer_add(&wheel, &r[i].t, BASE + offs[i], on_rec, &r[i]);
    uint64_t now = BASE;
    unsigned wakeups = 0, fired = 0;
    int64_t n;
    while ((n = rq_wheel_next(&wheel, now)) >= 0 && wakeups < 1000) {
        now += (uint64_t)n;
        fired += rq_wheel_run(&wheel, now);
        wakeups++;
    }
    CHECK_EQ(fired, N);
    CHECK(wakeups <= N * (RQ_WHEEL_LEVELS + 3));
    for (unsigned i = 0; i < N; i++) {
        CHECK_EQ(r[i].fired, 1);
        CHECK_EQ(r[i].fired_at, BASE + offs[i]);
    }

    /* One jump over all of them: fired in order, at their own times. */
    struct rec s[N] = {0};
    rq_wheel_init(&wheel, BASE);
    for (unsigned i = N; i-- > 0;)
        rq_timer_add(&wheel, &s[i].t, BASE + offs[i], on_rec, &s[i]);
    CHECK_EQ(rq_wheel_run(&wheel, BASE + offs[N - 1] - 1), N - 1);
    CHECK_EQ(s[N - 1].fired, 0);
    CHECK_EQ(rq_wheel_run(&wheel, BASE + offs[N - 1]), 1);
    for (unsigned i = 0; i < N; i++)
        CHECK_EQ(s[i].fired_at, BASE + offs[i]);

    /* Stepping a day at a time never fires early or late by more than the step. */
    struct rec d = {0};
    rq_wheel_init(&wheel, BASE);
    rq_timer_add(&wheel, &d.t, BASE + 900 * DAY + 12345, on_rec, &d);
    for (now = BASE; now <= BASE + 901 * DAY && !d.fired; now += DAY) {
        rq_wheel_run(&wheel, now);
        CHECK(d.fired == (now >= d.t.expires));
    }
    CHECK_EQ(d.fired, 1);
    CHECK_EQ(d.fired_at, BASE + 900 * DAY + 12345);
}

/* ---- random steps against a brute-force model ------------------------------------------ */

#define NT 384
#define STEPS 100000

struct mt {
    struct rq_timer t;
    bool pending;
    uint64_t expires;
    uint64_t added_at; /* wheel.now when added */
};

static struct mt mtimers[NT];
static uint64_t run_to, last_fired;
static unsigned cb_fired;

static uint64_t rand_delay(void)
{
    switch (rnd_below(10)) {
    case 0:
        return 0;
    case 1:
        return rnd_below(64);
    case 2:
        return rnd_below(4096);
    case 3:
        return rnd_below(1u << 20);
    case 4:
        return rnd_below(1ull << 30);
    case 5:
        return rnd_below(1ull << 38); /* beyond the wheel's range */
    default:
        return rnd_below(300);
    }
}

static void on_model(struct rq_timer *t, void *arg);

static void model_add(struct mt *m, uint64_t expires)
{
    rq_timer_add(&wheel, &m->t, expires, on_model, m);
    m->pending = true;
    m->expires = expires;
    m->added_at = wheel.now;
}

static void model_cancel(struct mt *m)
{
    rq_timer_cancel(&wheel, &m->t);
    m->pending = false;
}

static void on_model(struct rq_timer *t, void *arg)
{
    struct mt *m = arg;
    CHECK(m->pending);               /* exactly once */
    CHECK(m->expires <= run_to);     /* never before */
    CHECK(m->expires >= last_fired); /* in expiry order */
    /* exactly at its expiry, unless it was added when already due */
    CHECK_EQ(wheel.now, m->expires > m->added_at ? m->expires : m->added_at);
    m->pending = false;
    last_fired = m->expires;
    cb_fired++;

    /* Callbacks play too; new expiries are >= now so the order check stays meaningful. */
    uint64_t r = rnd_below(16);
    if (r < 4)
        model_add(m, wheel.now + rand_delay());
    else if (r < 6)
        model_cancel(&mtimers[rnd_below(NT)]);
    else if (r < 8) {
        struct mt *other = &mtimers[rnd_below(NT)]; /* one rnd() call per statement */
        model_add(other, wheel.now + rand_delay());
    }
}

static void check_model(uint64_t now)
{
    uint64_t min = UINT64_MAX;
    size_t pending = 0;
    for (unsigned i = 0; i < NT; i++) {
        if (!mtimers[i].pending)
            continue;
        pending++;
        CHECK(rq_timer_pending(&mtimers[i].t));
        if (mtimers[i].expires < min)
            min = mtimers[i].expires;
    }
    CHECK_EQ(wheel.count, pending);
    int64_t n = rq_wheel_next(&wheel, now);
    if (!pending) {
        CHECK_EQ(n, -1);
        return;
    }
    CHECK(n >= 0);
    CHECK((uint64_t)n <= (min > now ? min - now : 0)); /* never later than the true expiry */
}

static void test_model(void)
{
    uint64_t now = BASE, total_fired = 0, expected = 0;

    rq_wheel_init(&wheel, now);
    for (unsigned step = 0; step < STEPS; step++) {
        struct mt *m = &mtimers[rnd_below(NT)];
        uint64_t r = rnd_below(100);
        if (r < 45) {
            uint64_t e = rnd_below(8) ? now + rand_delay() : now - rnd_below(1000);
            model_add(m, e);
        } else if (r < 60) {
            model_cancel(m);
        } else {
            uint64_t jump = rnd_below(4) ? rnd_below(200) : rand_delay();
            run_to = now + jump;
            last_fired = 0;
            cb_fired = 0;
            for (unsigned i = 0; i < NT; i++)
                expected += mtimers[i].pending && mtimers[i].expires <= run_to;
            unsigned fired = rq_wheel_run(&wheel, run_to);
            CHECK_EQ(fired, cb_fired);
            total_fired += fired;
            now = run_to;
            CHECK_EQ(wheel.now, now);
            for (unsigned i = 0; i < NT; i++) /* everything due has fired */
                CHECK(!mtimers[i].pending || mtimers[i].expires > now);
        }
        check_model(now);
    }
    CHECK(total_fired >= expected); /* plus those added by callbacks and fired in the same run */
    fprintf(stderr, "model: %llu timers fired, wheel at +%llu ms\n",
            (unsigned long long)total_fired, (unsigned long long)(now - BASE));
}

static void test_now(void)
{
    uint64_t a = rq_now_ms(), b = rq_now_ms();
    CHECK(a > 0);
    CHECK(b >= a);
}

int main(void)
{
    test_exact();
    test_cancel_in_callback();
    test_readd_in_callback();
    test_far_future();
    test_model();
    test_now();
    return check_exit("test_timer");
}
