/* Unit tests for core's side of authorization (ops->authorize, core/access.h): a denied Connect
 * gets CONNACK 0x87 (3.1.1: return code 5) and a denied will the same; a denied PUBLISH gets
 * PUBACK 0x87 in v5, a plain PUBACK in 3.1.1, nothing at QoS 0, and is never routed; SUBSCRIBE
 * answers 0x87 / 0x80 for the denied filters alone; rq_client_reauthorize swaps the permissions,
 * removes the subscriptions they no longer cover and the queued messages on topics they do not,
 * and closes a client whose Connect is no longer allowed. The "net" and "auth" sides are stubs: the permissions allow topics by prefix. */
#include "config/config.h"
#include "core/broker_int.h"
#include "core/stats.h"
#include "tests/unit/check.h"
#include "tests/unit/core/stub_net.h"

#include <stdlib.h>
#include <string.h>

static int authz_result = RQ_AUTH_ALLOW;
static const char *allowed = "ok/"; /* what a new access object allows (prefix) */
static int frees;

struct stub_access {
    struct rq_access base;
    const char *prefix;
};

static bool st_allows(struct rq_access *a, const uint8_t *t, size_t len)
{
    const char *p = ((struct stub_access *)a)->prefix;
    return len >= strlen(p) && memcmp(t, p, strlen(p)) == 0;
}

static void st_free(struct rq_access *a)
{
    frees++;
    free(a);
}

static const struct rq_access_ops st_ops = {st_allows, st_allows, st_free};

static int stub_authorize(struct rq_worker *w, void *conn, const struct rq_principal *p,
                          const uint8_t *cid, size_t cid_len, struct rq_access **out, char *why,
                          size_t whylen)
{
    *out = NULL;
    if (authz_result == RQ_AUTH_DENY) {
        snprintf(why, whylen, "stub says no");
        return RQ_AUTH_DENY;
    }
    if (authz_result == RQ_AUTH_ALLOW) {
        struct stub_access *a = calloc(1, sizeof *a);
        a->base.ops = &st_ops;
        a->prefix = allowed;
        *out = &a->base;
    }
    return authz_result;
}

static const struct rq_worker_ops ops = {.post = stub_post,
                                         .want_flush = stub_flush,
                                         .want_close = stub_close,
                                         .authorize = stub_authorize};

static size_t put_str(uint8_t *b, const char *s)
{
    size_t n = strlen(s);
    b[0] = (uint8_t)(n >> 8);
    b[1] = (uint8_t)n;
    memcpy(b + 2, s, n);
    return n + 2;
}

/* CONNECT (clean start), with a will on will_topic when not NULL. */
static size_t connect_pkt(uint8_t *b, int version, const char *cid, const char *will_topic)
{
    uint8_t body[256];
    size_t n = 0;
    const uint8_t vh[] = {0, 4, 'M', 'Q', 'T', 'T', (uint8_t)version,
                          (uint8_t)(0x02 | (will_topic ? 0x04 : 0)), 0, 60};
    memcpy(body, vh, sizeof vh);
    n += sizeof vh;
    if (version == 5)
        body[n++] = 0;
    n += put_str(body + n, cid);
    if (will_topic) {
        if (version == 5)
            body[n++] = 0;
        n += put_str(body + n, will_topic);
        n += put_str(body + n, "bye");
    }
    b[0] = 0x10;
    b[1] = (uint8_t)n;
    memcpy(b + 2, body, n);
    return n + 2;
}

static size_t publish_pkt(uint8_t *b, int version, const char *topic, int qos, uint16_t pid)
{
    uint8_t body[256];
    size_t n = put_str(body, topic);
    if (qos) {
        body[n++] = (uint8_t)(pid >> 8);
        body[n++] = (uint8_t)pid;
    }
    if (version == 5)
        body[n++] = 0;
    memcpy(body + n, "data", 4);
    n += 4;
    b[0] = (uint8_t)(0x30 | qos << 1);
    b[1] = (uint8_t)n;
    memcpy(b + 2, body, n);
    return n + 2;
}

/* SUBSCRIBE of the NULL-terminated filters at QoS 1, packet id 7. */
static size_t subscribe_pkt(uint8_t *b, int version, const char *const *f)
{
    uint8_t body[256];
    size_t n = 0;
    body[n++] = 0;
    body[n++] = 7;
    if (version == 5)
        body[n++] = 0;
    for (; *f; f++) {
        n += put_str(body + n, *f);
        body[n++] = 1;
    }
    b[0] = 0x82;
    b[1] = (uint8_t)n;
    memcpy(b + 2, body, n);
    return n + 2;
}

static struct rq_peer peer;

static void feed(struct rq_client *c, const uint8_t *b, size_t n)
{
    c->out.len = 0;
    rq_client_on_bytes(c, b, n);
}

static void done(struct rq_client *c)
{
    rq_client_on_closed(c, "test over");
    rq_client_free(c);
}

/* A connected client (CONNACK 0 checked), its output emptied. */
static void connected(struct rq_client *c, struct rq_worker *w, int version, const char *cid)
{
    uint8_t b[256];
    rq_client_init(c, w, c, 1883, &peer);
    stub_close_calls = 0;
    authz_result = RQ_AUTH_ALLOW;
    feed(c, b, connect_pkt(b, version, cid, NULL));
    CHECK(c->connected);
    CHECK(c->access != NULL);
    c->out.len = 0;
}

static void connect_denied(struct rq_worker *w)
{
    uint64_t denied_before = rq_stats_sum(RQ_ST_AUTHZ_DENY);
    for (int v = 4; v <= 5; v++) {
        for (int will = 0; will < 2; will++) {
            struct rq_client c;
            uint8_t b[256];
            rq_client_init(&c, w, &c, 1883, &peer);
            stub_close_calls = 0;
            authz_result = will ? RQ_AUTH_ALLOW : RQ_AUTH_DENY;
            feed(&c, b, connect_pkt(b, v, "denied", will ? "not-ok/will" : NULL));
            CHECK(!c.connected && c.closing);
            CHECK_EQ(stub_close_calls, 1);
            /* CONNACK: 0x20, length, flags, then 0x87 (v5) or return code 5 */
            CHECK(c.out.len >= 4 && c.out.data[0] == 0x20);
            CHECK_EQ(c.out.len >= 4 ? c.out.data[3] : 0, v == 5 ? 0x87 : 5);
            done(&c);
        }
    }
    CHECK_EQ(rq_stats_sum(RQ_ST_AUTHZ_DENY) - denied_before, 4);
    /* no authorization on the port: everything allowed, no access object */
    struct rq_client c;
    uint8_t b[256];
    rq_client_init(&c, w, &c, 1883, &peer);
    authz_result = RQ_AUTH_OFF;
    feed(&c, b, connect_pkt(b, 5, "open", "anything/at/all"));
    CHECK(c.connected && c.access == NULL);
    done(&c);
}

static void publish_denied(struct rq_worker *w)
{
    for (int v = 4; v <= 5; v++) {
        struct rq_client c;
        uint8_t b[256];
        connected(&c, w, v, "pub");
        uint64_t before = rq_stats_sum(RQ_ST_AUTHZ_DENY);
        feed(&c, b, publish_pkt(b, v, "no/x", 1, 9));
        /* v5: PUBACK 9 with 0x87; 3.1.1: a plain PUBACK */
        CHECK(c.out.len >= 4 && c.out.data[0] == 0x40 && c.out.data[3] == 9);
        if (v == 5)
            CHECK(c.out.len >= 5 && c.out.data[4] == 0x87);
        else
            CHECK_EQ(c.out.len, 4);
        feed(&c, b, publish_pkt(b, v, "no/x", 0, 0));
        CHECK_EQ(c.out.len, 0);
        feed(&c, b, publish_pkt(b, v, "no/x", 2, 10));
        CHECK(c.out.len >= 4 && c.out.data[0] == 0x50); /* PUBREC */
        if (v == 5)
            CHECK(c.out.len >= 5 && c.out.data[4] == 0x87);
        CHECK_EQ(rq_stats_sum(RQ_ST_AUTHZ_DENY) - before, 3);
        feed(&c, b, publish_pkt(b, v, "ok/x", 1, 11));
        CHECK(c.out.len >= 4 && c.out.data[0] == 0x40);
        if (v == 5) /* allowed: 0x10, no subscriber took it */
            CHECK(c.out.len >= 5 && c.out.data[4] == 0x10);
        CHECK_EQ(rq_stats_sum(RQ_ST_AUTHZ_DENY) - before, 3);
        done(&c);
    }
}

static void subscribe_mixed_and_reauthorize(struct rq_worker *w)
{
    for (int v = 4; v <= 5; v++) {
        struct rq_client c;
        uint8_t b[256];
        connected(&c, w, v, "sub");
        feed(&c, b, subscribe_pkt(b, v, (const char *const[]){"ok/a", "no/b", "ok/#", NULL}));
        size_t at = v == 5 ? 5 : 4; /* codes after type, length, packet id (and properties) */
        CHECK(c.out.len == at + 3 && c.out.data[0] == 0x90);
        if (c.out.len == at + 3) {
            CHECK_EQ(c.out.data[at], 1);
            CHECK_EQ(c.out.data[at + 1], v == 5 ? 0x87 : 0x80);
            CHECK_EQ(c.out.data[at + 2], 1);
        }
        CHECK_EQ(c.s->n_subs, 2);
        /* a window of one: the first message is in flight, the next two wait in the queue */
        c.recv_max_out = 1;
        for (int i = 0; i < 3; i++) {
            struct rq_msg *m = rq_msg_new((struct rq_str){(const uint8_t *)"ok/q", 4},
                                          (struct rq_str){(const uint8_t *)"x", 1}, NULL, 1,
                                          false, 0, 0, 0);
            rq_route(w, m);
            rq_msg_unref(m);
        }
        rq_worker_flush(w);
        CHECK_EQ(c.s->inf_count, 1);
        CHECK_EQ(c.s->q_len, 2);
        /* re-authentication: the new principal may use new/ only */
        allowed = "new/";
        int f0 = frees;
        CHECK_EQ(rq_client_reauthorize(&c), 0);
        CHECK_EQ(frees - f0, 1); /* the old permissions are gone */
        CHECK_EQ(c.s->n_subs, 0);
        CHECK_EQ(c.s->q_len, 0);     /* not handed to the new principal */
        CHECK_EQ(c.s->inf_count, 1); /* sent on this connection before: its ack may come */
        CHECK(!c.closing);
        feed(&c, b, publish_pkt(b, v, "ok/x", 1, 12));
        if (v == 5)
            CHECK(c.out.len >= 5 && c.out.data[4] == 0x87);
        /* a principal that may no longer connect is closed */
        authz_result = RQ_AUTH_DENY;
        CHECK_EQ(rq_client_reauthorize(&c), -1);
        CHECK(c.closing);
        allowed = "ok/";
        done(&c);
    }
}

int main(void)
{
    struct rq_config cfg;
    stub_config(&cfg);
    cfg.max_message_expiry = 3600;
    cfg.max_topic_levels = 16;
    struct rq_worker *w = stub_worker_new(&cfg, &ops);
    CHECK(w != NULL);
    if (!w)
        return check_exit("test_authz_hooks");
    connect_denied(w);
    publish_denied(w);
    subscribe_mixed_and_reauthorize(w);
    stub_worker_free(w);
    return check_exit("test_authz_hooks");
}
