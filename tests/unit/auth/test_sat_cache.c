/* auth/sat_cache: hit / join / lead, landing a flight hands back every waiter and stores the
 * result (or not, until <= now), LRU eviction at the bound, dead results dropped, and many
 * threads joining one flight. */
#include "auth/sat_cache.h"
#include "tests/unit/check.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void key(uint8_t k[RQ_SAT_KEY], int n)
{
    memset(k, 0, RQ_SAT_KEY);
    memcpy(k, &n, sizeof n);
    k[31] = (uint8_t)n;
}

static struct rq_authn_outcome allow(const char *user)
{
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_ALLOW;
    o.principal.username = strdup(user);
    o.principal.expiry = 1234;
    rq_principal_add_attr(&o.principal, "group", "g1");
    return o;
}

static void test_flight(void)
{
    struct rq_sat_cache *c = rq_sat_cache_new(2);
    uint8_t k[RQ_SAT_KEY];
    key(k, 1);
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    struct rq_sat_waiter w1 = {1, 0}, w2 = {2, 1};
    CHECK_EQ(rq_sat_cache_begin(c, k, 100, &w1, &o), RQ_SAT_LEAD);
    CHECK_EQ(rq_sat_cache_begin(c, k, 100, &w2, &o), RQ_SAT_JOINED);
    CHECK_EQ(rq_sat_cache_flights(c), 1);
    struct rq_authn_outcome a = allow("system:serviceaccount:a:b");
    size_t n = 0;
    struct rq_sat_waiter *w = rq_sat_cache_land(c, k, &a, 100, 200, &n);
    CHECK_EQ(n, 2);
    CHECK(w && w[0].a == 1 && w[1].a == 2 && w[1].b == 1);
    free(w);
    CHECK_EQ(rq_sat_cache_flights(c), 0);
    CHECK_EQ(rq_sat_cache_results(c), 1);
    CHECK_EQ(rq_sat_cache_begin(c, k, 150, &w1, &o), RQ_SAT_HIT);
    CHECK_EQ(o.verdict, RQ_AUTHN_ALLOW);
    CHECK_STR(o.principal.username, "system:serviceaccount:a:b");
    CHECK_STR(rq_principal_attr(&o.principal, "group"), "g1");
    CHECK_EQ(o.principal.expiry, 1234);
    rq_authn_outcome_free(&o);
    rq_authn_outcome_init(&o);
    /* dead at 200: a new flight */
    CHECK_EQ(rq_sat_cache_get(c, k, 200, &o), 0);
    CHECK_EQ(rq_sat_cache_begin(c, k, 200, &w1, &o), RQ_SAT_LEAD);
    /* landed with until <= now: not stored */
    w = rq_sat_cache_land(c, k, &a, 200, 200, &n);
    CHECK_EQ(n, 1);
    free(w);
    CHECK_EQ(rq_sat_cache_results(c), 0);
    /* LRU: 3 results into 2 places; the least recently used goes */
    for (int i = 10; i < 13; i++) {
        key(k, i);
        CHECK_EQ(rq_sat_cache_begin(c, k, 100, &w1, &o), RQ_SAT_LEAD);
        free(rq_sat_cache_land(c, k, &a, 100, 500, &n));
        if (i == 11) { /* touch 10: 11 becomes the oldest */
            key(k, 10);
            CHECK_EQ(rq_sat_cache_get(c, k, 100, &o), 1);
            rq_authn_outcome_free(&o);
            rq_authn_outcome_init(&o);
        }
    }
    CHECK_EQ(rq_sat_cache_results(c), 2);
    key(k, 11);
    CHECK_EQ(rq_sat_cache_get(c, k, 100, &o), 0);
    key(k, 10);
    CHECK_EQ(rq_sat_cache_get(c, k, 100, &o), 1);
    rq_authn_outcome_free(&o);
    /* landing a key without a flight: nothing */
    key(k, 99);
    CHECK(rq_sat_cache_land(c, k, &a, 100, 500, &n) == NULL && n == 0);
    rq_authn_outcome_free(&a);
    /* a flight left open is freed with the cache */
    key(k, 7);
    rq_authn_outcome_init(&o);
    CHECK_EQ(rq_sat_cache_begin(c, k, 100, &w1, &o), RQ_SAT_LEAD);
    rq_sat_cache_free(c);
}

static struct rq_sat_cache *shared;
static _Atomic int leads, joins;

static void *joiner(void *arg)
{
    uint8_t k[RQ_SAT_KEY];
    key(k, 5);
    for (int i = 0; i < 100; i++) {
        struct rq_authn_outcome o;
        rq_authn_outcome_init(&o);
        struct rq_sat_waiter w = {(uint64_t)(uintptr_t)arg, (uint64_t)i};
        int rc = rq_sat_cache_begin(shared, k, 100, &w, &o);
        if (rc == RQ_SAT_LEAD)
            leads++;
        else if (rc == RQ_SAT_JOINED)
            joins++;
        rq_authn_outcome_free(&o);
    }
    return NULL;
}

static void test_threads(void)
{
    shared = rq_sat_cache_new(10);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, joiner, (void *)(uintptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(leads, 1);
    CHECK_EQ(joins, 399);
    uint8_t k[RQ_SAT_KEY];
    key(k, 5);
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_DENY;
    o.reason = 0x87;
    size_t n = 0;
    free(rq_sat_cache_land(shared, k, &o, 100, 110, &n));
    CHECK_EQ(n, 400);
    rq_sat_cache_free(shared);
}

static void test_put_and_refresh(void)
{
    struct rq_sat_cache *c = rq_sat_cache_new(4);
    uint8_t k[RQ_SAT_KEY];
    key(k, 42);
    struct rq_authn_outcome a = allow("sa"), o;
    a.principal.expiry = 110; /* fresh until 110 */
    rq_sat_cache_put(c, k, &a, 100, 500);
    CHECK_EQ(rq_sat_cache_results(c), 1);
    CHECK(!rq_sat_cache_claim_refresh(c, k, 105, 200)); /* still fresh */
    CHECK(rq_sat_cache_claim_refresh(c, k, 120, 130));  /* stale: claimed once */
    CHECK(!rq_sat_cache_claim_refresh(c, k, 121, 131));
    rq_authn_outcome_init(&o);
    CHECK_EQ(rq_sat_cache_get(c, k, 121, &o), 1); /* stale entries still answer */
    rq_authn_outcome_free(&o);
    rq_sat_cache_put(c, k, &a, 100, 600); /* replaces */
    CHECK_EQ(rq_sat_cache_results(c), 1);
    /* a flight holds the key: put leaves it alone */
    uint8_t k2[RQ_SAT_KEY];
    key(k2, 43);
    struct rq_sat_waiter w = {1, 0};
    rq_authn_outcome_init(&o);
    CHECK_EQ(rq_sat_cache_begin(c, k2, 100, &w, &o), RQ_SAT_LEAD);
    rq_sat_cache_put(c, k2, &a, 100, 600);
    CHECK_EQ(rq_sat_cache_flights(c), 1);
    size_t n = 0;
    free(rq_sat_cache_land(c, k2, &a, 100, 600, &n));
    CHECK_EQ(n, 1);
    rq_authn_outcome_free(&a);
    rq_sat_cache_free(c);
}

/* A result's attributes synced with its account's annotations (set_attrs): begin_ex reports
 * until when; the new attributes replace the old ones whole; a missing key is left alone. */
static void test_set_attrs(void)
{
    struct rq_sat_cache *c = rq_sat_cache_new(4);
    uint8_t k[RQ_SAT_KEY], k2[RQ_SAT_KEY];
    key(k, 50);
    key(k2, 51);
    struct rq_authn_outcome a = allow("tok"), o;
    CHECK(rq_principal_add_attr(&a.principal, "old", "1") == 0);
    rq_sat_cache_put(c, k, &a, 100, 500);
    struct rq_sat_waiter w = {7, 0};
    int64_t until = -1;
    rq_authn_outcome_init(&o);
    CHECK_EQ(rq_sat_cache_begin_ex(c, k, 101, &w, &o, &until), RQ_SAT_HIT);
    CHECK_EQ(until, 0); /* never synced */
    rq_authn_outcome_free(&o);
    struct rq_principal fresh = {0};
    CHECK(rq_principal_add_attr(&fresh, "new", "2") == 0);
    CHECK(rq_principal_add_attr(&fresh, "more", "3") == 0);
    rq_sat_cache_set_attrs(c, k, 102, &fresh, 160);
    rq_sat_cache_set_attrs(c, k2, 102, &fresh, 160); /* no such result: nothing */
    CHECK_EQ(rq_sat_cache_results(c), 1);
    rq_authn_outcome_init(&o);
    CHECK_EQ(rq_sat_cache_begin_ex(c, k, 103, &w, &o, &until), RQ_SAT_HIT);
    CHECK_EQ(until, 160);
    CHECK_EQ(o.principal.n_attrs, 2);
    CHECK(o.principal.n_attrs == 2 && strcmp(o.principal.keys[0], "new") == 0 &&
          strcmp(o.principal.values[1], "3") == 0);
    CHECK(o.principal.username && strcmp(o.principal.username, a.principal.username) == 0);
    rq_authn_outcome_free(&o);
    rq_principal_clear(&fresh);
    rq_authn_outcome_free(&a);
    rq_sat_cache_free(c);
}

int main(void)
{
    test_put_and_refresh();
    test_set_attrs();
    test_flight();
    test_threads();
    return check_exit("test_sat_cache");
}
