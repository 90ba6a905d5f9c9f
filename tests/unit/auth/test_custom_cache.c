/* The Custom verdict cache: hits copy the verdict, dead entries miss, a full cache refuses new
 * verdicts until entries die (then sweeps them), a key is replaced in place. */
#include "auth/custom_cache.h"

#include "../check.h"

#include <stdlib.h>
#include <string.h>

static void key_of(uint8_t k[RQ_CUSTOM_CACHE_KEY], uint8_t n)
{
    memset(k, 0, RQ_CUSTOM_CACHE_KEY);
    k[0] = n; /* same bucket for n and n + 16 in a 16-bucket table: chains are exercised */
    k[31] = n;
}

static void allow(struct rq_authn_outcome *o, const char *group, int64_t expiry)
{
    rq_authn_outcome_init(o);
    o->verdict = RQ_AUTHN_ALLOW;
    o->principal.expiry = expiry;
    CHECK_EQ(rq_principal_add_attr(&o->principal, "group", group), 0);
    snprintf(o->why, sizeof o->why, "pass");
}

static void test_hit_miss(void)
{
    struct rq_custom_cache *c = rq_custom_cache_new(4);
    uint8_t k1[32], k2[32];
    key_of(k1, 1);
    key_of(k2, 17);
    struct rq_authn_outcome in, out;
    allow(&in, "g1", 5000);
    rq_custom_cache_put(c, k1, &in, 1000, 1060);
    rq_authn_outcome_free(&in);
    rq_authn_outcome_init(&in);
    in.verdict = RQ_AUTHN_DENY;
    in.reason = 0x86;
    rq_custom_cache_put(c, k2, &in, 1000, 1060);
    CHECK_EQ(rq_custom_cache_count(c), 2);

    rq_authn_outcome_init(&out);
    CHECK_EQ(rq_custom_cache_get(c, k1, "alice", 5, 1059, &out), 1);
    CHECK(out.verdict == RQ_AUTHN_ALLOW && out.principal.expiry == 5000);
    CHECK_STR(out.principal.username, "alice");
    CHECK(out.principal.n_attrs == 1 && strcmp(out.principal.values[0], "g1") == 0);
    CHECK(strstr(out.why, "cached") != NULL);
    rq_authn_outcome_free(&out);
    rq_authn_outcome_init(&out);
    CHECK_EQ(rq_custom_cache_get(c, k2, NULL, 0, 1059, &out), 1);
    CHECK(out.verdict == RQ_AUTHN_DENY && out.reason == 0x86 && !out.principal.username);
    rq_authn_outcome_free(&out);
    rq_authn_outcome_init(&out);
    /* dead at `until`: a miss, and dropped */
    CHECK_EQ(rq_custom_cache_get(c, k1, "alice", 5, 1060, &out), 0);
    CHECK_EQ(rq_custom_cache_count(c), 1);
    rq_custom_cache_free(c);
}

static void test_full(void)
{
    struct rq_custom_cache *c = rq_custom_cache_new(2);
    uint8_t k[4][32];
    struct rq_authn_outcome in, out;
    for (int i = 0; i < 4; i++)
        key_of(k[i], (uint8_t)(i + 1));
    allow(&in, "a", 0);
    rq_custom_cache_put(c, k[0], &in, 1000, 1010);
    rq_custom_cache_put(c, k[1], &in, 1000, 2000);
    rq_custom_cache_put(c, k[2], &in, 1000, 2000); /* full of live entries: refused */
    CHECK_EQ(rq_custom_cache_count(c), 2);
    rq_authn_outcome_init(&out);
    CHECK_EQ(rq_custom_cache_get(c, k[2], NULL, 0, 1001, &out), 0);
    /* a replacement of a held key is not refused */
    rq_authn_outcome_free(&in);
    allow(&in, "b", 0);
    rq_custom_cache_put(c, k[1], &in, 1001, 2000);
    CHECK_EQ(rq_custom_cache_count(c), 2);
    CHECK_EQ(rq_custom_cache_get(c, k[1], NULL, 0, 1001, &out), 1);
    CHECK_STR(out.principal.n_attrs ? out.principal.values[0] : NULL, "b");
    rq_authn_outcome_free(&out);
    rq_authn_outcome_init(&out);
    /* k[0] has died: the next store sweeps it and fits */
    rq_custom_cache_put(c, k[3], &in, 1020, 2000);
    CHECK_EQ(rq_custom_cache_count(c), 2);
    CHECK_EQ(rq_custom_cache_get(c, k[3], NULL, 0, 1021, &out), 1);
    rq_authn_outcome_free(&out);
    rq_authn_outcome_free(&in);
    rq_custom_cache_free(c);
}

int main(void)
{
    test_hit_miss();
    test_full();
    return check_exit("test_custom_cache");
}
