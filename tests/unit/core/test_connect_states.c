/* Unit tests for the CONNECT state machine in core/connect.c and core/client.c: a pending
 * verdict suspends the CONNECT (nothing consumed, nothing answered, further input not parsed);
 * rq_client_auth_resume is the one entry point that resumes it (allow: the client takes the
 * principal and net is asked to parse the kept input again; deny: CONNACK with the reason,
 * closing, nothing after the CONNECT parsed [MQTT-3.1.4-5]); a verdict for a client that no
 * longer waits is refused; the connect timer closes a CONNECT still waiting; a connection
 * handed over with its principal is never authenticated again. The "net" side is a stub. */
#include "config/config.h"
#include "core/broker_int.h"
#include "tests/unit/check.h"
#include "tests/unit/core/stub_net.h"

#include <stdlib.h>
#include <string.h>

static int auth_result = RQ_AUTH_OFF;
static int auth_calls, resume_calls;

static void stub_auth(struct rq_worker *w, void *conn, const struct rq_connect *k,
                      struct rq_auth_verdict *v)
{
    auth_calls++;
    v->result = auth_result;
    v->method = "Stub";
    if (auth_result == RQ_AUTH_ALLOW) {
        struct rq_principal p = {.username = strdup("sync")};
        v->principal = rq_principal_take(&p);
    }
}

static void stub_resume(struct rq_worker *w, void *conn)
{
    resume_calls++;
}

static const struct rq_worker_ops ops = {.authenticate = stub_auth,
                                         .post = stub_post,
                                         .want_flush = stub_flush,
                                         .want_close = stub_close,
                                         .resume_input = stub_resume};

/* CONNECT (client id cid, version 5 or 4) followed by n PINGREQs. */
static size_t build(uint8_t *b, int version, const char *cid, int pings)
{
    size_t len = 0, cl = strlen(cid);
    b[len++] = 0x10;
    b[len++] = (uint8_t)(10 + (version == 5) + 2 + cl);
    const uint8_t vh[] = {0, 4, 'M', 'Q', 'T', 'T', (uint8_t)version, 0x02, 0, 60};
    memcpy(b + len, vh, sizeof vh);
    len += sizeof vh;
    if (version == 5)
        b[len++] = 0;
    b[len++] = 0;
    b[len++] = (uint8_t)cl;
    memcpy(b + len, cid, cl);
    len += cl;
    for (int i = 0; i < pings; i++) {
        b[len++] = 0xC0;
        b[len++] = 0;
    }
    return len;
}

static struct rq_peer peer;

static void new_client(struct rq_client *c, struct rq_worker *w)
{
    rq_client_init(c, w, c, 1883, &peer);
    auth_calls = resume_calls = stub_close_calls = 0;
}

static void done(struct rq_client *c)
{
    rq_client_on_closed(c, "test over");
    rq_client_free(c);
}

static void pending_then_allowed(struct rq_worker *w)
{
    struct rq_client c;
    uint8_t b[128];
    size_t n = build(b, 5, "a", 2);
    new_client(&c, w);
    auth_result = RQ_AUTH_PENDING;
    CHECK_EQ(rq_client_on_bytes(&c, b, n), 0); /* the CONNECT stays with the input */
    CHECK_EQ(c.phase, RQ_PH_AUTHENTICATING);
    CHECK(rq_client_suspended(&c));
    CHECK_EQ(c.out.len, 0);
    CHECK_EQ(rq_client_on_bytes(&c, b, n), 0); /* parsing stopped */
    CHECK_EQ(auth_calls, 1);

    struct rq_auth_verdict v = {.result = RQ_AUTH_ALLOW, .method = "Stub"};
    struct rq_principal p = {.username = strdup("alice"), .expiry = 0};
    v.principal = rq_principal_take(&p);
    CHECK(rq_client_auth_resume(&c, &v));
    CHECK(v.principal == NULL); /* taken */
    CHECK_EQ(resume_calls, 1);
    CHECK_EQ(c.phase, RQ_PH_ATTACHING);
    CHECK(c.principal && strcmp(c.principal->username, "alice") == 0);
    CHECK(c.principal && c.principal->method && strcmp(c.principal->method, "Stub") == 0);
    /* net parses the kept input again: CONNECT (not authenticated again), then the PINGREQs */
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK_EQ(auth_calls, 1);
    CHECK_EQ(c.phase, RQ_PH_CONNECTED);
    CHECK(c.connected);
    CHECK(c.out.len >= 4 && c.out.data[0] == 0x20 && c.out.data[3] == 0x00);
    size_t ack = c.out.len >= 2 ? (size_t)c.out.data[1] + 2 : 0;
    CHECK_EQ(c.out.len, ack + 4); /* CONNACK, then two PINGRESPs */
    CHECK(c.out.len == ack + 4 && c.out.data[ack] == 0xD0 && c.out.data[ack + 2] == 0xD0);
    /* a second verdict: the client no longer waits */
    struct rq_auth_verdict late = {.result = RQ_AUTH_DENY, .reason = 0x87};
    CHECK(!rq_client_auth_resume(&c, &late));
    CHECK_EQ(c.phase, RQ_PH_CONNECTED);
    done(&c);
}

static void pending_then_denied(struct rq_worker *w)
{
    struct rq_client c;
    uint8_t b[128];
    size_t n = build(b, 4, "d", 1);
    new_client(&c, w);
    auth_result = RQ_AUTH_PENDING;
    CHECK_EQ(rq_client_on_bytes(&c, b, n), 0);
    struct rq_auth_verdict v = {.result = RQ_AUTH_DENY, .reason = 0x86, .method = "Stub"};
    CHECK(rq_client_auth_resume(&c, &v));
    CHECK_EQ(resume_calls, 0); /* nothing after the CONNECT is parsed */
    CHECK_EQ(stub_close_calls, 1);
    CHECK_EQ(c.phase, RQ_PH_CLOSING);
    CHECK_EQ(c.out.len, 4); /* CONNACK return code 4, and no PINGRESP */
    CHECK(c.out.len == 4 && c.out.data[0] == 0x20 && c.out.data[3] == 4);
    CHECK(c.principal == NULL);
    done(&c);
}

static void pending_at_the_connect_timeout(struct rq_worker *w)
{
    struct rq_client c;
    uint8_t b[128];
    size_t n = build(b, 5, "t", 0);
    new_client(&c, w);
    auth_result = RQ_AUTH_PENDING;
    CHECK_EQ(rq_client_on_bytes(&c, b, n), 0);
    w->now += 500;
    rq_wheel_run(&w->wheel, w->now);
    CHECK_EQ(c.phase, RQ_PH_AUTHENTICATING); /* the timer keeps running while it waits */
    w->now += 1000;
    rq_wheel_run(&w->wheel, w->now);
    CHECK_EQ(c.phase, RQ_PH_CLOSING);
    CHECK_EQ(stub_close_calls, 1);
    struct rq_auth_verdict v = {.result = RQ_AUTH_ALLOW};
    CHECK(!rq_client_auth_resume(&c, &v)); /* too late */
    done(&c);
}

static void handed_over_not_authenticated_again(struct rq_worker *w)
{
    struct rq_client c;
    uint8_t b[128];
    size_t n = build(b, 5, "h", 1);
    new_client(&c, w);
    auth_result = RQ_AUTH_DENY; /* would refuse, were it asked */
    struct rq_principal p = {.username = strdup("fan"), .expiry = 0, .method = "X509"};
    rq_client_handover_arrived(&c, rq_principal_take(&p));
    CHECK_EQ(resume_calls, 1);
    CHECK_EQ(c.phase, RQ_PH_ATTACHING);
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK_EQ(auth_calls, 0);
    CHECK_EQ(c.phase, RQ_PH_CONNECTED);
    CHECK(c.principal && strcmp(c.principal->username, "fan") == 0);
    done(&c);
}

static void synchronous_paths(struct rq_worker *w)
{
    struct rq_client c;
    uint8_t b[128];
    size_t n = build(b, 5, "s", 1);
    new_client(&c, w);
    auth_result = RQ_AUTH_ALLOW;
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK_EQ(c.phase, RQ_PH_CONNECTED);
    CHECK_EQ(resume_calls, 0);
    CHECK(c.principal && strcmp(c.principal->username, "sync") == 0);
    done(&c);
    new_client(&c, w);
    auth_result = RQ_AUTH_OFF;
    CHECK_EQ(rq_client_on_bytes(&c, b, n), (long)n);
    CHECK_EQ(c.phase, RQ_PH_CONNECTED);
    CHECK(c.principal == NULL);
    done(&c);
}

int main(void)
{
    struct rq_config cfg;
    stub_config(&cfg);
    struct rq_worker *w = stub_worker_new(&cfg, &ops);
    CHECK(w != NULL);
    if (!w)
        return check_exit("connect_states");
    pending_then_allowed(w);
    pending_then_denied(w);
    pending_at_the_connect_timeout(w);
    handed_over_not_authenticated_again(w);
    synchronous_paths(w);
    stub_worker_free(w);
    return check_exit("connect_states");
}
