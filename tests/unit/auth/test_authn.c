/* The authentication chain: order, relevance, the first relevant method decides, nothing
 * relevant denies, pending answers resume at the right method. Methods here are scripted. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "auth/authn.h"

struct script {
    int verdict;
    uint8_t reason;
    int calls;
};

static void scripted_check(const void *state, const struct rq_authn_creds *c,
                           struct rq_authn_outcome *o)
{
    struct script *s = (struct script *)state;
    s->calls++;
    o->verdict = s->verdict;
    o->reason = s->reason;
    if (s->verdict == RQ_AUTHN_ALLOW)
        o->principal.username = strdup("alice");
}

static void no_free(void *state)
{
}

static const struct rq_authn_method_ops a_ops = {"A", scripted_check, no_free};
static const struct rq_authn_method_ops b_ops = {"B", scripted_check, no_free};
static const struct rq_authn_method_ops c_ops = {"C", scripted_check, no_free};

static bool saw_reauth;
static void reauth_check(const void *state, const struct rq_authn_creds *c,
                         struct rq_authn_outcome *o)
{
    saw_reauth = c->reauth;
    scripted_check(state, c, o);
}
static const struct rq_authn_method_ops rr_ops = {"RR", reauth_check, no_free};

static struct rq_authn_chain *chain3(struct script *a, struct script *b, struct script *c)
{
    struct rq_authn_chain *ch = rq_authn_chain_new("test");
    rq_authn_chain_add(ch, &a_ops, a);
    rq_authn_chain_add(ch, &b_ops, b);
    rq_authn_chain_add(ch, &c_ops, c);
    return ch;
}

static int run(struct rq_authn_chain *ch, struct rq_authn_outcome *o, size_t *pending)
{
    struct rq_authn_creds cr = {.version = 5};
    rq_authn_outcome_init(o);
    return rq_authn_chain_run(ch, 0, &cr, o, pending);
}

static void first_relevant_decides(void)
{
    struct script a = {RQ_AUTHN_NOT_RELEVANT, 0, 0}, b = {RQ_AUTHN_DENY, 0x86, 0}, c = {RQ_AUTHN_ALLOW, 0, 0};
    struct rq_authn_chain *ch = chain3(&a, &b, &c);
    struct rq_authn_outcome o;
    size_t p = 99;
    CHECK_EQ(run(ch, &o, &p), RQ_AUTHN_DENY);
    CHECK_STR(o.method, "B");
    CHECK_EQ(o.reason, 0x86);
    CHECK_EQ(c.calls, 0); /* a relevant-but-invalid method ends the chain */
    rq_authn_outcome_free(&o);

    b.verdict = RQ_AUTHN_ALLOW;
    CHECK_EQ(run(ch, &o, &p), RQ_AUTHN_ALLOW);
    CHECK_STR(o.method, "B");
    CHECK_STR(o.principal.username, "alice");
    rq_authn_outcome_free(&o);
    rq_authn_chain_free(ch);
}

static void nothing_relevant_denies(void)
{
    struct script a = {RQ_AUTHN_NOT_RELEVANT, 0, 0}, b = {RQ_AUTHN_NOT_RELEVANT, 0, 0},
                  c = {RQ_AUTHN_NOT_RELEVANT, 0, 0};
    struct rq_authn_chain *ch = chain3(&a, &b, &c);
    struct rq_authn_outcome o;
    size_t p;
    CHECK_EQ(run(ch, &o, &p), RQ_AUTHN_DENY);
    CHECK_EQ(o.reason, 0x87);
    CHECK(strstr(o.why, "relevant") != NULL);
    CHECK_EQ(a.calls + b.calls + c.calls, 3);
    rq_authn_outcome_free(&o);
    rq_authn_chain_free(ch);
}

static void deny_without_code_is_not_authorized(void)
{
    struct script a = {RQ_AUTHN_DENY, 0x05, 0}, b = {0, 0, 0}, c = {0, 0, 0};
    struct rq_authn_chain *ch = chain3(&a, &b, &c);
    struct rq_authn_outcome o;
    size_t p;
    CHECK_EQ(run(ch, &o, &p), RQ_AUTHN_DENY);
    CHECK_EQ(o.reason, 0x87); /* a success-range code never reaches a CONNACK as a refusal */
    rq_authn_outcome_free(&o);
    rq_authn_chain_free(ch);
}

static void pending_resumes(void)
{
    struct script a = {RQ_AUTHN_NOT_RELEVANT, 0, 0}, b = {RQ_AUTHN_PENDING, 0, 0}, c = {RQ_AUTHN_ALLOW, 0, 0};
    struct rq_authn_chain *ch = chain3(&a, &b, &c);
    struct rq_authn_outcome o;
    size_t p = 99, next = 99;
    struct rq_authn_creds cr = {.version = 5};
    CHECK_EQ(run(ch, &o, &p), RQ_AUTHN_PENDING);
    CHECK_EQ(p, 1);
    CHECK_STR(o.method, "B");
    /* B's server was unreachable: not relevant, the chain goes on with C */
    rq_authn_outcome_free(&o);
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_NOT_RELEVANT;
    CHECK_EQ(rq_authn_chain_resume(ch, p, &cr, &o, &next), RQ_AUTHN_ALLOW);
    CHECK_STR(o.method, "C");
    CHECK_EQ(c.calls, 1);
    rq_authn_outcome_free(&o);
    /* B answered deny: that ends the chain without C */
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_DENY;
    o.reason = 0x86;
    CHECK_EQ(rq_authn_chain_resume(ch, p, &cr, &o, &next), RQ_AUTHN_DENY);
    CHECK_STR(o.method, "B");
    CHECK_EQ(o.reason, 0x86);
    CHECK_EQ(c.calls, 1);
    rq_authn_outcome_free(&o);
    rq_authn_chain_free(ch);
}

static void chain_queries(void)
{
    struct script a = {0, 0, 0}, b = {0, 0, 0}, c = {0, 0, 0};
    struct rq_authn_chain *ch = chain3(&a, &b, &c);
    CHECK_EQ(rq_authn_chain_len(ch), 3);
    CHECK(rq_authn_chain_has(ch, "B"));
    CHECK(!rq_authn_chain_has(ch, "X509"));
    CHECK_STR(rq_authn_chain_name(ch), "test");
    struct rq_principal pr = {0};
    CHECK_EQ(rq_principal_add_attr(&pr, "city", "seattle"), 0);
    CHECK_EQ(pr.n_attrs, 1);
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    o.principal = pr;
    rq_authn_outcome_free(&o);
    rq_authn_chain_free(ch);
}

/* Re-authentication runs only the method that authenticated (chain_pos - 1), never falls
 * through, and refuses methods that cannot do it with 0x8C. */
static void reauth_runs_only_that_method(void)
{
    struct script a = {RQ_AUTHN_NOT_RELEVANT, 0, 0}, r = {RQ_AUTHN_ALLOW, 0, 0},
                  c = {RQ_AUTHN_ALLOW, 0, 0};
    struct rq_authn_chain *ch = rq_authn_chain_new("re");
    rq_authn_chain_add(ch, &a_ops, &a);
    rq_authn_chain_add_reauth(ch, &rr_ops, &r);
    rq_authn_chain_add(ch, &c_ops, &c);
    struct rq_authn_outcome o;
    size_t p;
    /* CONNECT: A not relevant, RR allows: its position is in the principal */
    CHECK_EQ(run(ch, &o, &p), RQ_AUTHN_ALLOW);
    CHECK_EQ(o.principal.chain_pos, 2);
    CHECK(!saw_reauth);
    size_t at = o.principal.chain_pos - 1;
    rq_authn_outcome_free(&o);

    struct rq_authn_creds cr = {.version = 5, .reauth = true};
    rq_authn_outcome_init(&o);
    CHECK_EQ(rq_authn_chain_reauth(ch, at, &cr, &o), RQ_AUTHN_ALLOW);
    CHECK(saw_reauth);
    CHECK_STR(o.method, "RR");
    CHECK_EQ(o.principal.chain_pos, 2);
    CHECK_EQ(a.calls, 1); /* only at CONNECT */
    CHECK_EQ(c.calls, 0);
    /* not relevant stays not relevant: C (which would allow) is never asked */
    r.verdict = RQ_AUTHN_NOT_RELEVANT;
    CHECK_EQ(rq_authn_chain_reauth(ch, at, &cr, &o), RQ_AUTHN_NOT_RELEVANT);
    CHECK_EQ(c.calls, 0);
    CHECK_STR(o.method, "RR");
    /* deny with a success-range code: 0x87 */
    r.verdict = RQ_AUTHN_DENY;
    r.reason = 0x10;
    CHECK_EQ(rq_authn_chain_reauth(ch, at, &cr, &o), RQ_AUTHN_DENY);
    CHECK_EQ(o.reason, 0x87);
    /* pending, then the answer settles without another method */
    r.verdict = RQ_AUTHN_PENDING;
    CHECK_EQ(rq_authn_chain_reauth(ch, at, &cr, &o), RQ_AUTHN_PENDING);
    rq_authn_outcome_free(&o);
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_NOT_RELEVANT;
    CHECK_EQ(rq_authn_chain_reauth_resume(ch, at, &o), RQ_AUTHN_NOT_RELEVANT);
    CHECK_EQ(c.calls, 0);
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_ALLOW;
    CHECK_EQ(rq_authn_chain_reauth_resume(ch, at, &o), RQ_AUTHN_ALLOW);
    CHECK_EQ(o.principal.chain_pos, 2);
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_PENDING; /* a method that answers pending twice: undecided */
    CHECK_EQ(rq_authn_chain_reauth_resume(ch, at, &o), RQ_AUTHN_NOT_RELEVANT);
    /* a method added without re-authentication (A, C) or a position outside the chain: 0x8C, nothing called */
    int calls = a.calls + c.calls;
    CHECK_EQ(rq_authn_chain_reauth(ch, 2, &cr, &o), RQ_AUTHN_DENY);
    CHECK_EQ(o.reason, 0x8C);
    CHECK(strstr(o.why, "cannot re-authenticate") != NULL);
    CHECK_EQ(rq_authn_chain_reauth(ch, 7, &cr, &o), RQ_AUTHN_DENY);
    CHECK_EQ(o.reason, 0x8C);
    CHECK_EQ(a.calls + c.calls, calls);
    rq_authn_outcome_free(&o);
    rq_authn_chain_free(ch);
}

int main(void)
{
    reauth_runs_only_that_method();
    first_relevant_decides();
    nothing_relevant_denies();
    deny_without_code_is_not_authorized();
    pending_resumes();
    chain_queries();
    return check_exit("test_authn");
}
