/* Unit tests for MQTT v5 re-authentication in core (core/reauth.c): an AUTH 0x19 naming the
 * CONNECT's method runs ops->reauthenticate with the client's principal; ALLOW answers AUTH 0x00
 * naming the method and replaces the principal and the credential expiry; RETRY answers AUTH
 * 0x18 and keeps both; DENY sends DISCONNECT (0x86 becomes 0x87) and closes; PENDING answers
 * nothing, keeps parsing the client's packets, refuses a second AUTH (0x82), and
 * rq_client_reauth_resume applies the verdict once; protocol errors (another method, no method,
 * a reason other than 0x19, a client without a method) close with 0x82 without running
 * anything. The "net" side is a stub. */
#include "config/config.h"
#include "core/broker_int.h"
#include "tests/unit/check.h"
#include "tests/unit/core/stub_net.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int reauth_result;
static uint8_t reauth_reason;
static int64_t reauth_expiry;
static int reauth_calls;
static char seen_data[32];
static uint32_t seen_pos;

static void stub_auth(struct rq_worker *w, void *conn, const struct rq_connect *k,
                      struct rq_auth_verdict *v)
{
    v->result = RQ_AUTH_ALLOW;
    v->method = "Stub";
    struct rq_principal p = {.username = strdup("alice"), .chain_pos = 2};
    v->principal = rq_principal_take(&p);
}

static struct rq_principal *principal(const char *user, int64_t expiry)
{
    struct rq_principal p = {.username = strdup(user), .expiry = expiry, .chain_pos = 2};
    return rq_principal_take(&p);
}

static void stub_reauth(struct rq_worker *w, void *conn, const struct rq_principal *who,
                        const struct rq_reason *auth, struct rq_auth_verdict *v)
{
    reauth_calls++;
    seen_pos = who->chain_pos;
    size_t n = auth->props.auth_data.len < sizeof seen_data - 1 ? auth->props.auth_data.len
                                                                : sizeof seen_data - 1;
    if (n)
        memcpy(seen_data, auth->props.auth_data.p, n);
    seen_data[n] = '\0';
    v->result = reauth_result;
    v->reason = reauth_reason;
    v->method = "Stub";
    if (reauth_result == RQ_AUTH_ALLOW)
        v->principal = principal("bob", reauth_expiry);
}

static void stub_resume(struct rq_worker *w, void *conn)
{
}

static const struct rq_worker_ops ops = {.authenticate = stub_auth,
                                         .reauthenticate = stub_reauth,
                                         .post = stub_post,
                                         .want_flush = stub_flush,
                                         .want_close = stub_close,
                                         .resume_input = stub_resume};

/* A v5 CONNECT with client id cid and, when method is not NULL, that Authentication Method. */
static size_t connect_pkt(uint8_t *b, const char *cid, const char *method)
{
    size_t ml = method ? strlen(method) : 0, cl = strlen(cid);
    size_t props = method ? 3 + ml : 0;
    size_t len = 0;
    b[len++] = 0x10;
    b[len++] = (uint8_t)(10 + 1 + props + 2 + cl);
    const uint8_t vh[] = {0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60};
    memcpy(b + len, vh, sizeof vh);
    len += sizeof vh;
    b[len++] = (uint8_t)props;
    if (method) {
        b[len++] = 0x15;
        b[len++] = 0;
        b[len++] = (uint8_t)ml;
        memcpy(b + len, method, ml);
        len += ml;
    }
    b[len++] = 0;
    b[len++] = (uint8_t)cl;
    memcpy(b + len, cid, cl);
    return len + cl;
}

/* AUTH with reason, method (NULL: none) and data (NULL: none). */
static size_t auth_pkt(uint8_t *b, uint8_t reason, const char *method, const char *data)
{
    size_t ml = method ? strlen(method) : 0, dl = data ? strlen(data) : 0;
    size_t props = (method ? 3 + ml : 0) + (data ? 3 + dl : 0);
    size_t len = 0;
    b[len++] = 0xF0;
    b[len++] = (uint8_t)(1 + 1 + props);
    b[len++] = reason;
    b[len++] = (uint8_t)props;
    if (method) {
        b[len++] = 0x15;
        b[len++] = 0;
        b[len++] = (uint8_t)ml;
        memcpy(b + len, method, ml);
        len += ml;
    }
    if (data) {
        b[len++] = 0x16;
        b[len++] = 0;
        b[len++] = (uint8_t)dl;
        memcpy(b + len, data, dl);
        len += dl;
    }
    return len;
}

static struct rq_peer peer;

/* A connected v5 client (CONNACK consumed from its output). */
static void connected(struct rq_client *c, struct rq_worker *w, const char *cid, const char *method)
{
    uint8_t b[128];
    rq_client_init(c, w, c, 1883, &peer);
    size_t n = connect_pkt(b, cid, method);
    CHECK_EQ(rq_client_on_bytes(c, b, n), (long)n);
    CHECK(c->connected);
    CHECK(c->out.len > 0 && c->out.data[0] == 0x20);
    c->out.len = 0;
    reauth_calls = stub_close_calls = 0;
}

static void done(struct rq_client *c)
{
    rq_client_on_closed(c, "test over");
    rq_client_free(c);
}

/* The first packet in the client's output: its type nibble, and (for AUTH / DISCONNECT) its
 * reason; *has_method: an Authentication Method property named "m1" follows. */
static int first_out(const struct rq_client *c, uint8_t *reason, bool *has_method)
{
    *reason = 0xFF;
    *has_method = false;
    if (c->out.len < 2)
        return -1;
    const uint8_t *p = c->out.data;
    if (c->out.len >= 3)
        *reason = p[2];
    if (c->out.len >= 9 && p[3] >= 5)
        *has_method = p[4] == 0x15 && p[5] == 0 && p[6] == 2 && memcmp(p + 7, "m1", 2) == 0;
    return p[0] >> 4;
}

static void allow_replaces_principal_and_expiry(struct rq_worker *w)
{
    struct rq_client c;
    uint8_t b[64], reason;
    bool named;
    connected(&c, w, "a1", "m1");
    CHECK(c.principal && strcmp(c.principal->username, "alice") == 0);
    CHECK_EQ(c.cred_expires, 0);
    reauth_result = RQ_AUTH_ALLOW;
    reauth_expiry = (int64_t)time(NULL) + 100;
    size_t n = auth_pkt(b, 0x19, "m1", "new-token");
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK_EQ(reauth_calls, 1);
    CHECK_EQ(seen_pos, 2); /* the principal's method position reaches net */
    CHECK(strcmp(seen_data, "new-token") == 0);
    CHECK_EQ(first_out(&c, &reason, &named), RQ_AUTH);
    CHECK_EQ(reason, 0x00);
    CHECK(named); /* [MQTT-4.12.0-5] */
    CHECK(c.principal && strcmp(c.principal->username, "bob") == 0);
    CHECK(c.principal && c.principal->method && strcmp(c.principal->method, "Stub") == 0);
    CHECK(c.cred_expires > w->now + 90000 && c.cred_expires <= w->now + 100000);
    /* again, without expiry: removed */
    c.out.len = 0;
    reauth_expiry = 0;
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK_EQ(c.cred_expires, 0);
    CHECK(!c.closing);
    done(&c);
}

static void retry_keeps_everything(struct rq_worker *w)
{
    struct rq_client c;
    uint8_t b[64], reason;
    bool named;
    connected(&c, w, "a2", "m1");
    struct rq_principal *before = c.principal;
    c.cred_expires = w->now + 5000;
    reauth_result = RQ_AUTH_RETRY;
    size_t n = auth_pkt(b, 0x19, "m1", NULL);
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK_EQ(first_out(&c, &reason, &named), RQ_AUTH);
    CHECK_EQ(reason, 0x18);
    CHECK(named);
    CHECK(c.principal == before);
    CHECK_EQ(c.cred_expires, w->now + 5000);
    CHECK(!c.closing);
    done(&c);
}

static void deny_disconnects(struct rq_worker *w)
{
    const uint8_t given[] = {0x87, 0x86, 0x10, 0x97};
    const uint8_t sent[] = {0x87, 0x87, 0x87, 0x97};
    for (size_t i = 0; i < sizeof given; i++) {
        struct rq_client c;
        uint8_t b[64], reason;
        bool named;
        connected(&c, w, "a3", "m1");
        reauth_result = RQ_AUTH_DENY;
        reauth_reason = given[i];
        size_t n = auth_pkt(b, 0x19, "m1", "x");
        CHECK_EQ(rq_client_on_bytes(&c, b, n), -1);
        CHECK_EQ(first_out(&c, &reason, &named), RQ_DISCONNECT);
        CHECK_EQ(reason, sent[i]);
        CHECK(c.closing);
        CHECK_EQ(stub_close_calls, 1);
        done(&c);
    }
}

static void pending_keeps_serving(struct rq_worker *w)
{
    struct rq_client c;
    uint8_t b[64], reason;
    bool named;
    connected(&c, w, "a4", "m1");
    reauth_result = RQ_AUTH_PENDING;
    size_t n = auth_pkt(b, 0x19, "m1", "slow");
    b[n++] = 0xC0; /* PINGREQ right after it */
    b[n++] = 0;
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK(c.reauth_pending);
    CHECK_EQ(first_out(&c, &reason, &named), RQ_PINGRESP); /* served meanwhile */
    c.out.len = 0;
    /* the verdict: allowed */
    struct rq_auth_verdict v = {.result = RQ_AUTH_ALLOW, .method = "Stub"};
    v.principal = principal("carol", 0);
    CHECK(rq_client_reauth_resume(&c, &v));
    CHECK(v.principal == NULL);
    CHECK(!c.reauth_pending);
    CHECK_EQ(first_out(&c, &reason, &named), RQ_AUTH);
    CHECK_EQ(reason, 0x00);
    CHECK(c.principal && strcmp(c.principal->username, "carol") == 0);
    CHECK(c.principal && c.principal->chain_pos == 2);
    /* a stale second verdict is refused, touching nothing */
    struct rq_auth_verdict late = {.result = RQ_AUTH_DENY, .reason = 0x87};
    CHECK(!rq_client_reauth_resume(&c, &late));
    CHECK(!c.closing);
    /* pending again, then a second AUTH: protocol error */
    c.out.len = 0;
    n = auth_pkt(b, 0x19, "m1", "slow");
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK(c.reauth_pending);
    CHECK_EQ(rq_client_on_bytes(&c, b, n), -1);
    CHECK_EQ(first_out(&c, &reason, &named), RQ_DISCONNECT);
    CHECK_EQ(reason, 0x82);
    CHECK_EQ(reauth_calls, 2);
    /* the verdict of the first arrives after the close: refused */
    struct rq_auth_verdict after = {.result = RQ_AUTH_ALLOW};
    CHECK(!rq_client_reauth_resume(&c, &after));
    done(&c);
}

/* The answer to a re-authentication was dropped (the pool gives up after the connect timeout):
 * an AUTH twice that long later starts a new one instead of being a protocol error. */
static void lost_answer_does_not_block(struct rq_worker *w)
{
    struct rq_client c;
    uint8_t b[64], reason;
    bool named;
    connected(&c, w, "a5", "m1");
    reauth_result = RQ_AUTH_PENDING;
    size_t n = auth_pkt(b, 0x19, "m1", "lost");
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK(c.reauth_pending);
    uint64_t t0 = w->now;
    w->now = t0 + 2 * 1000 - 1; /* connect timeout 1000 ms: still waiting */
    reauth_result = RQ_AUTH_ALLOW;
    CHECK_EQ(rq_client_on_bytes(&c, b, n), -1);
    CHECK_EQ(first_out(&c, &reason, &named), RQ_DISCONNECT);
    CHECK_EQ(reason, 0x82);
    done(&c);
    connected(&c, w, "a6", "m1");
    reauth_result = RQ_AUTH_PENDING;
    w->now = t0;
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK(c.reauth_pending);
    w->now = t0 + 2 * 1000; /* lost by now */
    reauth_result = RQ_AUTH_ALLOW;
    c.out.len = 0;
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK(!c.reauth_pending && !c.closing);
    CHECK_EQ(first_out(&c, &reason, &named), RQ_AUTH);
    CHECK_EQ(reason, 0x00);
    CHECK_EQ(reauth_calls, 2); /* since the second connected(): the lost one and the new one */
    w->now = t0;
    done(&c);
}

static void protocol_errors(struct rq_worker *w)
{
    struct {
        uint8_t reason;
        const char *method;
        const char *connect_method;
    } cases[] = {
        {0x19, "m2", "m1"}, /* another method [MQTT-4.12.1-1] */
        {0x19, "m", "m1"},  /* a prefix of it */
        {0x19, NULL, "m1"}, /* none */
        {0x18, "m1", "m1"}, /* continue: no exchange in progress */
        {0x00, "m1", "m1"}, /* success is the server's */
        {0x19, "m1", NULL}, /* the client gave no method at CONNECT [MQTT-4.12.0-7] */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rq_client c;
        uint8_t b[64], reason;
        bool named;
        connected(&c, w, "a5", cases[i].connect_method);
        size_t n = auth_pkt(b, cases[i].reason, cases[i].method, "x");
        CHECK_EQ(rq_client_on_bytes(&c, b, n), -1);
        CHECK_EQ(first_out(&c, &reason, &named), RQ_DISCONNECT);
        CHECK_EQ(reason, 0x82);
        CHECK_EQ(reauth_calls, 0);
        done(&c);
    }
}

int main(void)
{
    struct rq_config cfg;
    stub_config(&cfg);
    struct rq_worker *w = stub_worker_new(&cfg, &ops);
    CHECK(w != NULL);
    if (!w)
        return check_exit("reauth");
    allow_replaces_principal_and_expiry(w);
    retry_keeps_everything(w);
    deny_disconnects(w);
    pending_keeps_serving(w);
    lost_answer_does_not_block(w);
    protocol_errors(w);
    stub_worker_free(w);
    return check_exit("reauth");
}
