/* Unit tests for net/admit.c: the descriptor budget taken from RLIMIT_NOFILE, connections
 * counted at accept against preConnectLimit.connections, first-packet bytes against
 * preConnectLimit.bytes (with the small per-connection allowance that is never refused), and
 * the rate limiter for repeatable log lines. */
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>

#include "config/config.h"
#include "net/admit.h"
#include "tests/unit/check.h"

static void test_fd_budget(void)
{
    struct rlimit old, rl;
    getrlimit(RLIMIT_NOFILE, &old);
    rl = old;
    rl.rlim_cur = 64;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr, "setrlimit failed: fd budget not tested\n");
        return;
    }
    struct rq_config cfg = {.preconnect_conns = 1000, .preconnect_bytes = 1 << 20};
    rq_admit_init(&cfg, 2, 1);
    /* 64 less stdio and more, 2 shards x (1 listener + ring + spare), 16 spare */
    uint32_t budget = rq_admit_fd_budget();
    CHECK_EQ(budget, 64 - (4 + 2 * 3 + 16));
    uint32_t n = 0;
    while (n < 1000 && rq_admit_accept() == RQ_ADMIT_OK)
        n++;
    CHECK_EQ(n, budget);
    CHECK_EQ(rq_admit_accept(), RQ_ADMIT_NO_FD);
    /* One descriptor closed (its connection past CONNECT): one more fits. */
    size_t none = 0;
    rq_admit_fd_closed();
    rq_admit_preconnect_done(&none);
    CHECK_EQ(rq_admit_accept(), RQ_ADMIT_OK);
    CHECK_EQ(rq_admit_accept(), RQ_ADMIT_NO_FD);
    setrlimit(RLIMIT_NOFILE, &old);
    /* A large limit: the spare stops at 64. */
    rq_admit_init(&cfg, 1, 1);
    if (old.rlim_cur >= 100000 && old.rlim_cur != RLIM_INFINITY)
        CHECK(rq_admit_fd_budget() >= old.rlim_cur - 100);
}

static void test_preconnect_connections(void)
{
    struct rq_config cfg = {.preconnect_conns = 2, .preconnect_bytes = 1 << 20};
    rq_admit_init(&cfg, 1, 1);
    CHECK_EQ(rq_admit_preconnect_limit(), 2);
    CHECK_EQ(rq_admit_accept(), RQ_ADMIT_OK);
    CHECK_EQ(rq_admit_accept(), RQ_ADMIT_OK);
    CHECK_EQ(rq_admit_accept(), RQ_ADMIT_PRECONNECT);
    /* A refused one counted nothing: after one is past CONNECT, exactly one more fits. */
    size_t charged = 0;
    rq_admit_preconnect_done(&charged);
    CHECK_EQ(rq_admit_accept(), RQ_ADMIT_OK);
    CHECK_EQ(rq_admit_accept(), RQ_ADMIT_PRECONNECT);
}

static void test_bytes(void)
{
    struct rq_config cfg = {.preconnect_conns = 100, .preconnect_bytes = 65536};
    rq_admit_init(&cfg, 1, 1);
    CHECK_EQ(rq_admit_bytes_limit(), 65536);
    size_t a = 0, b = 0, c = 0;
    CHECK(rq_admit_hold(&a, 40000));
    CHECK_EQ(a, 40000);
    CHECK(rq_admit_hold(&a, 60000)); /* 60000 in all: within */
    CHECK(!rq_admit_hold(&b, 8192)); /* 68192 > 65536 and b holds more than the allowance */
    CHECK_EQ(b, 8192);               /* charged all the same: the memory is held */
    /* Over the budget, a connection within the small allowance still passes. */
    CHECK(rq_admit_hold(&c, RQ_ADMIT_FIRST_PACKET_FREE));
    /* Shrinking releases; b released entirely when it is past CONNECT. */
    rq_admit_preconnect_done(&b);
    CHECK_EQ(b, 0);
    CHECK(rq_admit_hold(&a, 1000));
    CHECK_EQ(a, 1000);
    size_t d = 0;
    CHECK(rq_admit_hold(&d, 60000)); /* 1000 + 4096 + 60000 */
    CHECK(!rq_admit_hold(&d, 61000));
}

static void test_ratelog(void)
{
    struct rq_ratelog r = {0};
    uint64_t skipped = 99;
    CHECK(rq_ratelog_due(&r, 5, &skipped));
    CHECK_EQ(skipped, 0);
    CHECK(!rq_ratelog_due(&r, 6, &skipped));
    CHECK(!rq_ratelog_due(&r, 5 + RQ_RATELOG_MS - 1, &skipped));
    CHECK(rq_ratelog_due(&r, 5 + RQ_RATELOG_MS, &skipped));
    CHECK_EQ(skipped, 2);
    CHECK(!rq_ratelog_due(&r, 6 + RQ_RATELOG_MS, &skipped));
    /* A clock at 0 (a loop's first turn) still counts as having written one. */
    struct rq_ratelog z = {0};
    CHECK(rq_ratelog_due(&z, 0, &skipped));
    CHECK(!rq_ratelog_due(&z, 1, &skipped));
}

int main(void)
{
    test_fd_budget();
    test_preconnect_connections();
    test_bytes();
    test_ratelog();
    return check_exit("test_admit");
}
