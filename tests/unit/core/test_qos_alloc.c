/* QoS 1 and 2 flows make no heap allocation per acknowledgement or per in-flight message
 * (issue 13): in steady state the only allocation per PUBLISH is the message itself
 * (core/msg.c, shared by every subscriber). The test links with -Wl,--wrap=malloc,calloc,realloc
 * (CMakeLists.txt), so every heap call core makes is counted here.
 *
 * Two workers as two shards: a publisher on shard 0, a QoS 1 and a QoS 2 subscriber on shard 1
 * (every message crosses shards: outbox batch, post, delivery) and one more QoS 2 subscriber on
 * shard 0 (local delivery). The "net" side behaves as net/shard.c does: at the end of a loop
 * turn every connection that asked for a flush has its whole output taken in one piece (one
 * send) and, as it then has nothing left to send, its output buffer released (rq_buf_free). The
 * clients answer every PUBLISH, PUBREC and PUBREL. The publisher also sends several PUBLISHes in
 * one read: their acknowledgements must leave in one flush of its connection. */
#include "config/config.h"
#include "core/broker_int.h"
#include "tests/unit/check.h"

#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
static long n_heap;

void *__wrap_malloc(size_t n)
{
    n_heap++;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
    n_heap++;
    return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
    n_heap++;
    return __real_realloc(p, n);
}

/* ---- the "net" side ---- */

#define MAXC 8
static struct rq_client *dirty[MAXC];
static int n_dirty, n_flush_calls;
static struct rq_post posts[64];
static int n_posts;

static void stub_flush(struct rq_worker *w, void *conn)
{
    n_flush_calls++;
    for (int i = 0; i < n_dirty; i++)
        if (dirty[i] == conn)
            return; /* already on the flush list (net: c->dirty) */
    if (n_dirty < MAXC)
        dirty[n_dirty++] = conn;
}

static void stub_close(struct rq_worker *w, void *conn)
{
}

static bool stub_post(struct rq_worker *from, int shard, const struct rq_post *p)
{
    if (n_posts == 64)
        return false;
    posts[n_posts++] = *p;
    return true;
}

static const struct rq_worker_ops ops = {
    .post = stub_post, .want_flush = stub_flush, .want_close = stub_close};

/* ---- packets ---- */

static size_t put_str(uint8_t *b, const char *s)
{
    size_t n = strlen(s);
    b[0] = (uint8_t)(n >> 8);
    b[1] = (uint8_t)n;
    memcpy(b + 2, s, n);
    return n + 2;
}

static size_t connect_pkt(uint8_t *b, const char *cid)
{
    uint8_t body[64];
    size_t n = put_str(body, "MQTT");
    const uint8_t vh[] = {4, 0x02, 0, 60}; /* 3.1.1, clean session, keepalive 60 */
    memcpy(body + n, vh, sizeof vh);
    n += sizeof vh;
    n += put_str(body + n, cid);
    b[0] = 0x10;
    b[1] = (uint8_t)n;
    memcpy(b + 2, body, n);
    return n + 2;
}

static size_t subscribe_pkt(uint8_t *b, const char *topic, uint8_t qos)
{
    size_t n = 2;
    b[n++] = 0;
    b[n++] = 1; /* packet id 1 */
    n += put_str(b + n, topic);
    b[n++] = qos;
    b[0] = 0x82;
    b[1] = (uint8_t)(n - 2);
    return n;
}

static size_t publish_pkt(uint8_t *b, const char *topic, uint8_t qos, uint16_t pid)
{
    size_t n = 2;
    n += put_str(b + n, topic);
    b[n++] = (uint8_t)(pid >> 8);
    b[n++] = (uint8_t)pid;
    memset(b + n, 'x', 64); /* 64 B payload, as the bench */
    n += 64;
    b[0] = (uint8_t)(0x30 | qos << 1);
    b[1] = (uint8_t)(n - 2);
    return n;
}

static size_t ack_pkt(uint8_t *b, uint8_t type, uint16_t pid)
{
    b[0] = (uint8_t)(type << 4 | (type == RQ_PUBREL ? 2 : 0));
    b[1] = 2;
    b[2] = (uint8_t)(pid >> 8);
    b[3] = (uint8_t)pid;
    return 4;
}

/* ---- the loop ---- */

struct peer {
    struct rq_client c;
    const char *name;
    /* what the last flush carried */
    int got[16]; /* packets by type */
    int sends;   /* flushes that carried bytes (one send each) */
    uint8_t reply[4096];
    size_t reply_len;
};

/* The client's view of what the flush carried: counts packets, queues its answers. */
static void client_reads(struct peer *p, const uint8_t *d, size_t len)
{
    size_t off = 0;
    while (off + 2 <= len) {
        uint8_t t = d[off] >> 4, qos = (d[off] >> 1) & 3;
        size_t rl = d[off + 1]; /* every packet here is shorter than 128 bytes */
        CHECK(rl < 128);
        const uint8_t *v = d + off + 2;
        p->got[t]++;
        uint16_t pid = 0;
        if (t == RQ_PUBLISH && qos) {
            size_t tl = (size_t)v[0] << 8 | v[1];
            pid = (uint16_t)(v[2 + tl] << 8 | v[3 + tl]);
            p->reply_len += ack_pkt(p->reply + p->reply_len, qos == 1 ? RQ_PUBACK : RQ_PUBREC, pid);
        } else if (t == RQ_PUBREC || t == RQ_PUBREL) {
            pid = (uint16_t)(v[0] << 8 | v[1]);
            p->reply_len += ack_pkt(p->reply + p->reply_len, t == RQ_PUBREC ? RQ_PUBREL : RQ_PUBCOMP,
                                    pid);
        }
        off += 2 + rl;
    }
    CHECK_EQ(off, len);
}

static struct peer *peer_of(struct peer *ps, int n, struct rq_client *c)
{
    for (int i = 0; i < n; i++)
        if (&ps[i].c == c)
            return &ps[i];
    return NULL;
}

/* End of a loop turn on both shards: cross-shard posts delivered, then every connection with
 * output flushed in one piece and its buffer released, as net does when the send completes
 * and nothing more is queued. */
static void turn(struct rq_worker **w, struct peer *ps, int n)
{
    for (int round = 0; round < 2; round++) {
        rq_worker_flush(w[0]);
        rq_worker_flush(w[1]);
        int np = n_posts;
        n_posts = 0;
        for (int i = 0; i < np; i++)
            rq_worker_on_post(w[1], &posts[i]); /* every session but one is on shard 1 */
    }
    int nd = n_dirty;
    n_dirty = 0;
    for (int i = 0; i < nd; i++) {
        struct peer *p = peer_of(ps, n, dirty[i]);
        CHECK(p != NULL);
        if (!p || !p->c.out.len)
            continue;
        p->sends++;
        client_reads(p, p->c.out.data, p->c.out.len);
        rq_buf_free(&p->c.out);
        rq_client_on_drained(&p->c);
    }
}

/* Every client sends what it queued; one more turn. */
static void answer(struct rq_worker **w, struct peer *ps, int n)
{
    for (int i = 0; i < n; i++) {
        struct peer *p = &ps[i];
        if (!p->reply_len)
            continue;
        size_t len = p->reply_len;
        p->reply_len = 0;
        CHECK_EQ(rq_client_on_bytes(&p->c, p->reply, len), (long)len);
    }
    turn(w, ps, n);
}

static void connect_peer(struct rq_worker **w, struct peer *ps, int n, int i, int shard,
                         const char *topic, uint8_t qos)
{
    struct peer *p = &ps[i];
    static struct rq_peer addr;
    rq_client_init(&p->c, w[shard], &p->c, 1883, &addr);
    uint8_t b[128];
    size_t len = connect_pkt(b, p->name);
    if (topic)
        len += subscribe_pkt(b + len, topic, qos);
    CHECK_EQ(rq_client_on_bytes(&p->c, b, len), (long)len);
    CHECK(p->c.connected);
    turn(w, ps, n);
}

/* One round: the publisher sends k PUBLISHes of each QoS 1 and 2 in one read; everyone answers
 * until nothing is left. Returns the publisher's sends in the first turn. */
static int round_trip(struct rq_worker **w, struct peer *ps, int n, int k, uint16_t *pid)
{
    struct peer *pub = &ps[0];
    uint8_t b[2048];
    size_t len = 0;
    for (int i = 0; i < k; i++) {
        len += publish_pkt(b + len, "t", 1, (*pid)++);
        len += publish_pkt(b + len, "t", 2, (*pid)++);
    }
    int sends = pub->sends;
    memset(pub->got, 0, sizeof pub->got);
    CHECK_EQ(rq_client_on_bytes(&pub->c, b, len), (long)len);
    turn(w, ps, n);
    sends = pub->sends - sends;
    CHECK_EQ(pub->got[RQ_PUBACK], k); /* all in the one flush */
    CHECK_EQ(pub->got[RQ_PUBREC], k);
    for (int i = 0; i < 4; i++)
        answer(w, ps, n);
    CHECK_EQ(pub->got[RQ_PUBCOMP], k);
    return sends;
}

int main(void)
{
    struct rq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.connect_timeout_ms = 1000;
    cfg.max_connections = 100;
    cfg.max_inflight = 16;
    cfg.max_packet_size = 1 << 20;
    cfg.max_keepalive = 65535;
    cfg.max_receive_max = 65535;
    cfg.max_session_expiry = 3600;
    cfg.queue_limit = 100;
    cfg.shard_backlog = 100000;
    struct rq_broker *b = rq_broker_new(&cfg, 2);
    struct rq_worker *w[2] = {b ? rq_worker_new(b, 0, &ops, NULL) : NULL,
                              b ? rq_worker_new(b, 1, &ops, NULL) : NULL};
    CHECK(w[0] && w[1]);
    if (!w[0] || !w[1])
        return check_exit("qos_alloc");
    w[1]->now = w[0]->now = w[0]->wheel.now;
    w[1]->wheel.now = w[0]->wheel.now;

    static struct peer ps[4] = {{.name = "pub"}, {.name = "sub1"}, {.name = "sub2"},
                                {.name = "local2"}};
    connect_peer(w, ps, 4, 0, 0, NULL, 0);
    connect_peer(w, ps, 4, 1, 1, "t", 1);
    connect_peer(w, ps, 4, 2, 1, "t", 2);
    connect_peer(w, ps, 4, 3, 0, "t", 2);
    CHECK(RQ_SESSION_SHARD(ps[1].c.s->id) == 1 && RQ_SESSION_SHARD(ps[3].c.s->id) == 0);

    uint16_t pid = 1;
    for (int i = 0; i < 20; i++) /* warm up: windows, tables and caches reach their size */
        round_trip(w, ps, 4, 4, &pid);

    long before = n_heap;
    const int rounds = 500, k = 4;
    int got1 = ps[1].got[RQ_PUBLISH], got2 = ps[2].got[RQ_PUBLISH];
    for (int i = 0; i < rounds; i++)
        CHECK_EQ(round_trip(w, ps, 4, k, &pid), 1); /* 2k acknowledgements, one send */
    long allocs = n_heap - before;
    long msgs = (long)rounds * k * 2;
    CHECK_EQ(ps[1].got[RQ_PUBLISH] - got1, msgs);
    CHECK_EQ(ps[2].got[RQ_PUBLISH] - got2, msgs);
    /* 12 acknowledgements per message (PUBACK/PUBREC+PUBCOMP to the publisher, PUBACK or
     * PUBREC/PUBREL/PUBCOMP from and to the subscribers), 3 deliveries, 1 allocation: the
     * message */
    CHECK_EQ(allocs, msgs);
    fprintf(stderr, "qos_alloc: %ld messages (QoS 1 and 2, 3 subscribers, cross-shard), %ld heap "
            "allocations (%.3f per message)\n", msgs, allocs, (double)allocs / (double)msgs);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ps[i].c.s->inf_count, 0);

    for (int i = 0; i < 4; i++) {
        rq_client_on_closed(&ps[i].c, "test over");
        rq_client_free(&ps[i].c);
    }
    rq_worker_shutdown(w[0]);
    rq_worker_shutdown(w[1]);
    rq_worker_free(w[0]);
    rq_worker_free(w[1]);
    rq_broker_free(b);
    rq_buf_cache_release();
    return check_exit("qos_alloc");
}
