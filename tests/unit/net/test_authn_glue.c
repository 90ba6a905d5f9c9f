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

int main(void)
{
    allow_keeps_everything();
    deny_and_pending();
    heap_verdict();
    return check_exit("test_authn_glue");
}
