/* Unit tests for connection placement (core/placement.c): the window rule alone (shares,
 * hysteresis over two windows, time-closed and dropped windows, residency after a move); the
 * rule driven by real routing on a two-shard broker (a publisher whose messages all go to a
 * subscriber on the other shard stops being parsed right after the PUBLISH that decided the
 * move; nothing moves when placement is off, the target is busy, the client subscribes itself,
 * or the shard's move budget is spent); and the session's part: while it moves a CONNECT for
 * its client id is answered Server busy, after it arrives a resume is handed to its new shard,
 * and a session a clean-start CONNECT replaced meanwhile does not leave. The "net" side is a
 * stub. */
#include "config/config.h"
#include "core/broker_int.h"
#include "core/placement.h"
#include "tests/unit/check.h"
#include "tests/unit/core/stub_net.h"

#include <stdlib.h>
#include <string.h>

/* ---- the window rule alone ---- */

/* n messages at `now`, `hit` of them to shard `to`, the rest nowhere (no subscriber); returns
 * the last non-negative answer (-1: none). */
static int feed(struct rq_client *c, int n, int hit, int to, uint64_t now)
{
    int got = -1;
    for (int i = 0; i < n; i++) {
        int r = rq_place_count(c, i < hit ? to : RQ_ROUTE_HERE, now, 90, 10000);
        if (r >= 0)
            got = r;
    }
    return got;
}

static void rule_two_windows(void)
{
    struct rq_client c;
    memset(&c, 0, sizeof c);
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, 240, 1, 1000), -1); /* 94 %: chooses, once */
    CHECK_EQ(c.pl_agreed, 2);
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, 240, 1, 1001), 1); /* the same again: move */

    memset(&c, 0, sizeof c);
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, 229, 1, 1000), -1); /* 89 %: below the share */
    CHECK_EQ(c.pl_agreed, 0);
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, 240, 1, 1001), -1); /* one choosing window only */
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, 240, 1, 1002), 1);

    memset(&c, 0, sizeof c); /* half and half, for any number of windows */
    for (int i = 0; i < 10; i++)
        CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, 128, 1, 1000 + i), -1);
}

static void rule_alternating_and_spread(void)
{
    struct rq_client c;
    memset(&c, 0, sizeof c);
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, RQ_PLACE_WINDOW, 1, 1000), -1);
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, RQ_PLACE_WINDOW, 2, 1001), -1); /* another shard */
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, RQ_PLACE_WINDOW, 1, 1002), -1);
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, RQ_PLACE_WINDOW, 1, 1003), 1);

    /* messages to two other shards in one window: the first one's share only */
    memset(&c, 0, sizeof c);
    for (int w = 0; w < 4; w++)
        for (int i = 0; i < RQ_PLACE_WINDOW; i++)
            CHECK_EQ(rq_place_count(&c, i % 2 ? 1 : 2, 1000 + w, 90, 10000), -1);
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 4 * RQ_PLACE_WINDOW; i++)
        CHECK_EQ(rq_place_count(&c, RQ_ROUTE_SPREAD, 1000, 50, 10000), -1);
}

static void rule_time(void)
{
    struct rq_client c;
    memset(&c, 0, sizeof c);
    /* a slow publisher: fewer than a window's messages close it after RQ_PLACE_MIN_MS */
    CHECK_EQ(feed(&c, RQ_PLACE_MIN_MSGS, RQ_PLACE_MIN_MSGS, 1, 1000), -1);
    CHECK_EQ(c.pl_n, RQ_PLACE_MIN_MSGS); /* not closed: too early */
    CHECK_EQ(rq_place_count(&c, 1, 1000 + RQ_PLACE_MIN_MS, 90, 10000), -1); /* closes */
    CHECK_EQ(c.pl_n, 0);
    CHECK_EQ(c.pl_agreed, 2);
    CHECK_EQ(feed(&c, RQ_PLACE_MIN_MSGS - 1, RQ_PLACE_MIN_MSGS - 1, 1, 1600), -1);
    CHECK_EQ(rq_place_count(&c, 1, 1600 + RQ_PLACE_MIN_MS, 90, 10000), 1);

    /* too few messages in the time: the window goes on */
    memset(&c, 0, sizeof c);
    CHECK_EQ(feed(&c, 3, 3, 1, 1000), -1);
    CHECK_EQ(feed(&c, 1, 1, 1, 3000), -1);
    CHECK_EQ(c.pl_n, 4);
    /* a window over RQ_PLACE_MAX_MS is dropped, and so is what the one before chose */
    memset(&c, 0, sizeof c);
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, RQ_PLACE_WINDOW, 1, 1000), -1);
    CHECK_EQ(c.pl_agreed, 2);
    CHECK_EQ(feed(&c, 3, 3, 1, 1001), -1);
    CHECK_EQ(rq_place_count(&c, 1, 1002 + RQ_PLACE_MAX_MS, 90, 10000), -1);
    CHECK_EQ(c.pl_agreed, 0);
    CHECK_EQ(c.pl_n, 1); /* this message starts a new window */
}

static void rule_residency_and_counts(void)
{
    struct rq_client c;
    memset(&c, 0, sizeof c);
    c.pl_moved = 5000; /* moved at 5 s: not again before 15 s */
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, RQ_PLACE_WINDOW, 1, 6000), -1);
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, RQ_PLACE_WINDOW, 1, 6001), -1);
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, RQ_PLACE_WINDOW, 1, 14999), -1);
    CHECK_EQ(feed(&c, RQ_PLACE_WINDOW, RQ_PLACE_WINDOW, 1, 15000), 1);

    /* many messages: the counters never pass a window */
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 70000; i++)
        (void)rq_place_count(&c, RQ_ROUTE_HERE, 1000, 90, 10000);
    CHECK(c.pl_n < RQ_PLACE_WINDOW);
}

/* ---- the rule driven by routing, on two shards ---- */

static const struct rq_worker_ops ops = {.post = stub_post,
                                         .want_flush = stub_flush,
                                         .want_close = stub_close,
                                         .resume_input = NULL};

static struct rq_peer peer;

static size_t connect_pkt(uint8_t *b, const char *cid, bool clean)
{
    size_t len = 0, cl = strlen(cid);
    b[len++] = 0x10;
    b[len++] = (uint8_t)(10 + 1 + 2 + cl);
    const uint8_t vh[] = {0, 4, 'M', 'Q', 'T', 'T', 5, clean ? 0x02 : 0x00, 0, 60};
    memcpy(b + len, vh, sizeof vh);
    len += sizeof vh;
    b[len++] = 0; /* no properties */
    b[len++] = 0;
    b[len++] = (uint8_t)cl;
    memcpy(b + len, cid, cl);
    return len + cl;
}

static const uint8_t publish_t[] = {0x30, 5, 0, 1, 't', 0, 'x'};
static const uint8_t subscribe_t[] = {0x82, 7, 0, 1, 0, 0, 1, 't', 0};

/* A connected v5 client with client id cid on w (CONNACK consumed). */
static void connected(struct rq_client *c, struct rq_worker *w, const char *cid, bool clean)
{
    uint8_t b[64];
    size_t n = connect_pkt(b, cid, clean);
    rq_client_init(c, w, c, 1883, &peer);
    CHECK_EQ(rq_client_on_bytes(c, b, n), (long)n);
    CHECK_EQ(c->phase, RQ_PH_CONNECTED);
    rq_buf_reset(&c->out);
}

static void done(struct rq_client *c)
{
    rq_client_on_closed(c, "test over");
    rq_client_free(c);
}

/* n PUBLISHes to "t" in one buffer: how many bytes the client took. */
static long publish_n(struct rq_client *c, int n)
{
    size_t len = (size_t)n * sizeof publish_t;
    uint8_t *b = malloc(len);
    for (int i = 0; i < n; i++)
        memcpy(b + (size_t)i * sizeof publish_t, publish_t, sizeof publish_t);
    long used = rq_client_on_bytes(c, b, len);
    free(b);
    return used;
}

struct two {
    struct rq_config cfg;
    struct rq_broker *b;
    struct rq_worker *w[2];
    struct rq_client sub; /* on shard 1, subscribed to "t" */
};

static void two_new(struct two *t, void (*tune)(struct rq_config *))
{
    stub_config(&t->cfg);
    t->cfg.placement_enabled = true;
    t->cfg.placement_min_share_pct = 90;
    t->cfg.placement_max_moves = 100;
    t->cfg.placement_min_resident_s = 10;
    t->cfg.placement_max_busy_pct = 50;
    if (tune)
        tune(&t->cfg);
    t->b = rq_broker_new(&t->cfg, 2);
    for (int i = 0; i < 2; i++) {
        t->w[i] = rq_worker_new(t->b, i, &ops, NULL);
        t->w[i]->now = t->w[i]->wheel.now;
    }
    connected(&t->sub, t->w[1], "sub", true);
    CHECK_EQ(rq_client_on_bytes(&t->sub, subscribe_t, sizeof subscribe_t),
             (long)sizeof subscribe_t);
    rq_buf_reset(&t->sub.out);
}

static void two_free(struct two *t)
{
    done(&t->sub);
    /* the routed batches were never posted (the stub's post would drop them): free them */
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            if (t->w[i]->outbox[k])
                rq_batch_discard(t->w[i]->outbox[k]);
            t->w[i]->outbox[k] = NULL;
        }
    for (int i = 0; i < 2; i++) {
        rq_worker_shutdown(t->w[i]);
        rq_worker_free(t->w[i]);
    }
    rq_broker_free(t->b);
}

static void routed_publisher_moves(void)
{
    struct two t;
    two_new(&t, NULL);
    struct rq_client p;
    connected(&p, t.w[0], "pub", true);
    /* two windows of messages all to shard 1: parsing stops right after the deciding one */
    CHECK_EQ(publish_n(&p, 3 * RQ_PLACE_WINDOW), (long)(2 * RQ_PLACE_WINDOW * sizeof publish_t));
    CHECK_EQ(t.w[0]->route_shard, 1);
    CHECK_EQ(p.move_to, 1);
    CHECK(p.pl_moved != 0);
    CHECK_EQ(publish_n(&p, 1), 0); /* nothing parsed while it moves */
    done(&p);
    two_free(&t);
}

static void off(struct rq_config *c)
{
    c->placement_enabled = false;
}
static void no_budget(struct rq_config *c)
{
    c->placement_max_moves = 0;
}
static void one_per_second(struct rq_config *c)
{
    c->placement_max_moves = 1;
}

static void stays(void (*tune)(struct rq_config *), uint32_t busy, bool subscribes)
{
    struct two t;
    two_new(&t, tune);
    atomic_store(&t.b->pending[1].busy_pct, busy);
    struct rq_client p;
    connected(&p, t.w[0], "pub", true);
    if (subscribes) { /* it has a subscription of its own (to another topic) */
        const uint8_t sub_u[] = {0x82, 7, 0, 1, 0, 0, 1, 'u', 0};
        CHECK_EQ(rq_client_on_bytes(&p, sub_u, sizeof sub_u), (long)sizeof sub_u);
    }
    CHECK_EQ(publish_n(&p, 3 * RQ_PLACE_WINDOW), (long)(3 * RQ_PLACE_WINDOW * sizeof publish_t));
    CHECK_EQ(p.move_to, -1);
    done(&p);
    two_free(&t);
}

static void move_budget(void)
{
    struct two t;
    two_new(&t, one_per_second);
    struct rq_client p1, p2;
    connected(&p1, t.w[0], "p1", true);
    connected(&p2, t.w[0], "p2", true);
    CHECK(publish_n(&p1, 2 * RQ_PLACE_WINDOW) > 0);
    CHECK_EQ(p1.move_to, 1);
    CHECK_EQ(publish_n(&p2, 2 * RQ_PLACE_WINDOW), (long)(2 * RQ_PLACE_WINDOW * sizeof publish_t));
    CHECK_EQ(p2.move_to, -1); /* this second's move is spent */
    t.w[0]->now += 1000;
    CHECK(publish_n(&p2, 2 * RQ_PLACE_WINDOW) > 0);
    CHECK_EQ(p2.move_to, 1);
    t.w[0]->throttled = true; /* backpressure: no move */
    struct rq_client p3;
    connected(&p3, t.w[0], "p3", true);
    t.w[0]->now += 1000;
    CHECK_EQ(publish_n(&p3, 2 * RQ_PLACE_WINDOW), (long)(2 * RQ_PLACE_WINDOW * sizeof publish_t));
    CHECK_EQ(p3.move_to, -1);
    done(&p1);
    done(&p2);
    done(&p3);
    two_free(&t);
}

/* ---- the session's part ---- */

static void session_moving_busy_then_arrived(void)
{
    struct two t;
    two_new(&t, NULL);
    struct rq_client p;
    connected(&p, t.w[0], "mover", true);
    struct rq_session *s = p.s;
    s->expiry = 600; /* kept offline when its test client goes */
    uint64_t old = s->id;
    CHECK(rq_place_session_leave(s, 1));
    CHECK(s->moving);
    CHECK_EQ(RQ_SESSION_SHARD(s->id), 1);
    CHECK(s->id != old);
    CHECK(rq_smap_get(t.w[0]->sessions, old) == NULL);
    rq_client_unbind(&p); /* what net's shell does: the client goes with the record */

    /* a CONNECT for its client id meanwhile, on either shard: Server busy, nothing created */
    for (int i = 0; i < 2; i++) {
        uint8_t b[64];
        size_t n = connect_pkt(b, "mover", i == 0);
        struct rq_client q;
        rq_client_init(&q, t.w[i], &q, 1883, &peer);
        CHECK_EQ(rq_client_on_bytes(&q, b, n), -1);
        CHECK(q.out.len >= 4 && q.out.data[0] == 0x20 && q.out.data[3] == RQ_RC_SERVER_BUSY);
        done(&q);
    }
    pthread_mutex_lock(&t.b->reg_lock);
    CHECK(rq_reg_find(t.b->reg, (const uint8_t *)"mover", 5) == s);
    pthread_mutex_unlock(&t.b->reg_lock);

    CHECK(rq_place_session_arrive(t.w[1], s));
    CHECK(!s->moving);
    CHECK(rq_smap_get(t.w[1]->sessions, s->id) == s);
    CHECK(s->w == t.w[1]);
    /* a resume on shard 0 now goes to shard 1 */
    uint8_t b[64];
    size_t n = connect_pkt(b, "mover", false);
    struct rq_client q;
    rq_client_init(&q, t.w[0], &q, 1883, &peer);
    CHECK_EQ(rq_client_on_bytes(&q, b, n), 0);
    CHECK_EQ(q.phase, RQ_PH_HANDED_OVER);
    CHECK_EQ(q.migrate_to, 1);
    done(&q);
    done(&p);
    two_free(&t);
}

static void session_replaced_does_not_leave(void)
{
    struct two t;
    two_new(&t, NULL);
    struct rq_client p, q;
    connected(&p, t.w[0], "dup", true);
    struct rq_session *s = p.s;
    uint64_t id = s->id;
    connected(&q, t.w[1], "dup", true); /* clean start on shard 1: replaces it in the registry */
    CHECK(!rq_place_session_leave(s, 1));
    CHECK(!s->moving);
    CHECK_EQ(s->id, id);
    CHECK(rq_smap_get(t.w[0]->sessions, id) == s); /* its END_SESSION finds it here */
    CHECK(s->client == &p);
    done(&p);
    done(&q);
    two_free(&t);
}

int main(void)
{
    rule_two_windows();
    rule_alternating_and_spread();
    rule_time();
    rule_residency_and_counts();
    routed_publisher_moves();
    stays(off, 0, false);
    stays(no_budget, 0, false);
    stays(NULL, 80, false); /* target busier than maxTargetBusyPercent */
    stays(NULL, 0, true);   /* a client with a subscription does not move (version 1) */
    move_budget();
    session_moving_busy_then_arrived();
    session_replaced_does_not_leave();
    return check_exit("test_placement");
}
