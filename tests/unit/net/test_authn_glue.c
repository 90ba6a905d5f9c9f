/* net/authn_glue.c rq_authn_glue_translate and core/principal.c: the chain's outcome becomes
 * core's verdict without losing anything (username, attributes, expiry, method), the principal
 * moves (the outcome no longer owns it), a deny keeps its reason, pending stays pending. */
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "auth/authn.h"
#include "core/principal.h"
#include "net/authn_glue.h"

static void allow_keeps_everything(void)
{
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_ALLOW;
    o.method = "X509";
    snprintf(o.why, sizeof o.why, "certificate CN=fan");
    o.principal.username = strdup("fan");
    o.principal.expiry = 1900000000;
    CHECK_EQ(rq_principal_add_attr(&o.principal, "building", "17"), 0);
    CHECK_EQ(rq_principal_add_attr(&o.principal, "city", "seattle"), 0);
    struct rq_auth_verdict v = {.conn = 42};
    rq_authn_glue_translate(RQ_AUTHN_ALLOW, &o, &v);
    CHECK_EQ(v.result, RQ_AUTH_ALLOW);
    CHECK_EQ(v.conn, 42);
    CHECK_STR(v.method, "X509");
    CHECK_STR(v.why, "certificate CN=fan");
    CHECK(v.principal != NULL);
    if (v.principal) {
        CHECK_STR(v.principal->username, "fan");
        CHECK_EQ(v.principal->n_attrs, 2);
        CHECK_STR(rq_principal_attr(v.principal, "building"), "17");
        CHECK_STR(rq_principal_attr(v.principal, "city"), "seattle");
        CHECK(rq_principal_attr(v.principal, "nope") == NULL);
        CHECK_EQ(v.principal->expiry, 1900000000);
        CHECK_STR(v.principal->method, "X509");
    }
    CHECK(o.principal.username == NULL && o.principal.n_attrs == 0); /* moved, not copied */
    rq_authn_outcome_free(&o);
    rq_principal_free(v.principal);
}

static void deny_and_pending(void)
{
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_DENY;
    o.reason = 0x86;
    o.method = "Custom";
    struct rq_auth_verdict v = {0};
    rq_authn_glue_translate(RQ_AUTHN_DENY, &o, &v);
    CHECK_EQ(v.result, RQ_AUTH_DENY);
    CHECK_EQ(v.reason, 0x86);
    CHECK(v.principal == NULL);
    struct rq_auth_verdict p = {0};
    rq_authn_glue_translate(RQ_AUTHN_PENDING, &o, &p);
    CHECK_EQ(p.result, RQ_AUTH_PENDING);
    CHECK(p.principal == NULL);
    rq_authn_outcome_free(&o);
}

static void heap_verdict(void)
{
    struct rq_auth_verdict *v = rq_auth_verdict_new(7, RQ_AUTH_ALLOW);
    CHECK(v && v->conn == 7 && v->result == RQ_AUTH_ALLOW && !v->principal);
    struct rq_principal p = {.username = strdup("u")};
    rq_principal_add_attr(&p, "k", "v");
    v->principal = rq_principal_take(&p);
    CHECK(p.username == NULL && p.keys == NULL);
    rq_auth_verdict_free(v); /* frees the principal too (ASan) */
    rq_auth_verdict_free(NULL);
    rq_principal_free(NULL);
}

/* Re-authentication: only the method at chain_pos - 1 runs, with reauth set and the AUTH's
 * method and data; its "not relevant" is RETRY (AUTH 0x18), never a fall-through; a method
 * added without re-authentication, or a principal without a position, is DENY 0x8C. */
static int scripted_verdict, scripted_calls;
static struct rq_authn_creds scripted_seen;

static void scripted(const void *state, const struct rq_authn_creds *c,
                     struct rq_authn_outcome *o)
{
    scripted_calls++;
    scripted_seen = *c;
    o->verdict = scripted_verdict;
    if (o->verdict == RQ_AUTHN_ALLOW)
        o->principal.username = strdup("new");
    if (o->verdict == RQ_AUTHN_NOT_RELEVANT)
        snprintf(o->why, sizeof o->why, "server down");
}

static void no_free(void *state)
{
}

static const struct rq_authn_method_ops s_ops = {"S", scripted, no_free};

static void reauth_paths(void)
{
    struct rq_authn_chain *ch = rq_authn_chain_new("g");
    rq_authn_chain_add(ch, &s_ops, NULL);       /* position 1: cannot re-authenticate */
    rq_authn_chain_add_reauth(ch, &s_ops, NULL); /* position 2 */
    struct rq_principal who = {.username = "alice", .chain_pos = 2, .method = "S"};
    struct rq_reason auth = {.reason = 0x19};
    auth.props.present = RQ_PROP_BIT(RQ_PROP_AUTH_METHOD) | RQ_PROP_BIT(RQ_PROP_AUTH_DATA);
    auth.props.auth_method = (struct rq_str){(const uint8_t *)"m1", 2};
    auth.props.auth_data = (struct rq_str){(const uint8_t *)"tok", 3};
    struct rq_auth_verdict v;

    scripted_verdict = RQ_AUTHN_ALLOW;
    rq_authn_glue_reauth(ch, NULL, 7, &who, &auth, &v);
    CHECK_EQ(v.result, RQ_AUTH_ALLOW);
    CHECK_EQ(v.conn, 7);
    CHECK(scripted_seen.reauth);
    CHECK(scripted_seen.has_auth_method && scripted_seen.auth_method_len == 2);
    CHECK(scripted_seen.auth_data_len == 3 && memcmp(scripted_seen.auth_data, "tok", 3) == 0);
    CHECK(scripted_seen.has_username && scripted_seen.username_len == 5);
    CHECK(!scripted_seen.has_password);
    CHECK(v.principal && v.principal->chain_pos == 2);
    rq_principal_free(v.principal);

    scripted_verdict = RQ_AUTHN_NOT_RELEVANT;
    rq_authn_glue_reauth(ch, NULL, 7, &who, &auth, &v);
    CHECK_EQ(v.result, RQ_AUTH_RETRY);
    CHECK(strstr(v.why, "server down") != NULL);

    scripted_verdict = RQ_AUTHN_PENDING;
    rq_authn_glue_reauth(ch, NULL, 7, &who, &auth, &v);
    CHECK_EQ(v.result, RQ_AUTH_PENDING);
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_DENY;
    o.reason = 0x86;
    rq_authn_glue_reauth_resume(ch, 1, 7, &o, &v);
    CHECK_EQ(v.result, RQ_AUTH_DENY);
    CHECK_EQ(v.reason, 0x86); /* core maps it for DISCONNECT */
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_NOT_RELEVANT;
    rq_authn_glue_reauth_resume(ch, 1, 7, &o, &v);
    CHECK_EQ(v.result, RQ_AUTH_RETRY);

    int calls = scripted_calls;
    who.chain_pos = 1;
    rq_authn_glue_reauth(ch, NULL, 7, &who, &auth, &v);
    CHECK_EQ(v.result, RQ_AUTH_DENY);
    CHECK_EQ(v.reason, 0x8C);
    who.chain_pos = 0;
    rq_authn_glue_reauth(ch, NULL, 7, &who, &auth, &v);
    CHECK_EQ(v.result, RQ_AUTH_DENY);
    CHECK_EQ(v.reason, 0x8C);
    rq_authn_glue_reauth(NULL, NULL, 7, &who, &auth, &v);
    CHECK_EQ(v.reason, 0x8C);
    CHECK_EQ(scripted_calls, calls);
    rq_authn_chain_free(ch);
}

int main(void)
{
    reauth_paths();
    allow_keeps_everything();
    deny_and_pending();
    heap_verdict();
    return check_exit("test_authn_glue");
}
