/* Unit tests for core/topic: name and filter validation, matching, the subscription tree
 * (add/replace/remove/count, overlapping and shared subscriptions, many sessions, deep filters)
 * and a randomized comparison of the tree with rq_topic_match. Links core/topic.c only. */
#include "core/topic.h"

#include "core/rc.h"
#include "tests/unit/check.h"
#include "tests/unit/core/random_topic.h"

#include <errno.h>
#include <stdlib.h>

#define S(x) (const uint8_t *)(x), strlen(x)

static void test_names(void)
{
    CHECK(rq_topic_name_valid(S("a")));
    CHECK(rq_topic_name_valid(S("/")));
    CHECK(rq_topic_name_valid(S("a//b")));
    CHECK(rq_topic_name_valid(S("$SYS/broker")));
    CHECK(!rq_topic_name_valid(S("")));
    CHECK(!rq_topic_name_valid(S("a/+")));
    CHECK(!rq_topic_name_valid(S("a/#")));
    CHECK(!rq_topic_name_valid(S("a+b")));
    CHECK_EQ(rq_topic_levels(S("")), 1);
    CHECK_EQ(rq_topic_levels(S("a")), 1);
    CHECK_EQ(rq_topic_levels(S("a/b")), 2);
    CHECK_EQ(rq_topic_levels(S("/")), 2);
    CHECK_EQ(rq_topic_levels(S("a//b/")), 4);
}

static int fcheck(const char *f, unsigned max)
{
    const char *why = NULL;
    int rc = rq_topic_filter_check(S(f), max, &why);
    if (rc != 0 && !why)
        return 1; /* an error without a reason: make the caller's CHECK fail */
    return rc;
}

static void test_filters(void)
{
    static const char *valid[] = {"a",
                                  "/",
                                  "//",
                                  "a/b",
                                  "a//b",
                                  "/a",
                                  "a/",
                                  "#",
                                  "+",
                                  "+/+",
                                  "/+",
                                  "+/",
                                  "a/#",
                                  "a/+/b",
                                  "+/#",
                                  "a/+/#",
                                  "$SYS/#",
                                  "$share",
                                  "$shared/x",
                                  "$sharex/#",
                                  "$share/g/#",
                                  "$share/g/+",
                                  "$share/g/a/b",
                                  "$share/g//",
                                  "$share/g/$SYS/x",
                                  "$share/ g /x",
                                  "sport/tennis/player1/#",
                                  "a b/c\xc3\xa9"};
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        int rc = fcheck(valid[i], 0);
        if (rc)
            fprintf(stderr, "valid filter rejected: \"%s\"\n", valid[i]);
        CHECK_EQ(rc, 0);
    }
    static const char *malformed[] = {"",
                                      "a#",
                                      "#a",
                                      "a/#/b",
                                      "#/",
                                      "#/a",
                                      "##",
                                      "a/b#",
                                      "+a",
                                      "a+",
                                      "a/+b",
                                      "a/b+/c",
                                      "++",
                                      "+#",
                                      "a/#/",
                                      "$share/",
                                      "$share/g",
                                      "$share/g/",
                                      "$share//a",
                                      "$share//",
                                      "$share/+/a",
                                      "$share/#/a",
                                      "$share/a+b/x",
                                      "$share/g#/x",
                                      "$share/g/a#",
                                      "$share/g/#/x",
                                      "$share/g/+x"};
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
        int rc = fcheck(malformed[i], 0);
        if (rc != -RQ_RC_MALFORMED)
            fprintf(stderr, "malformed filter accepted: \"%s\" (%d)\n", malformed[i], rc);
        CHECK_EQ(rc, -RQ_RC_MALFORMED);
    }
    /* why may be NULL */
    CHECK_EQ(rq_topic_filter_check(S("a#"), 0, NULL), -RQ_RC_MALFORMED);
}

static void test_level_limit(void)
{
    CHECK_EQ(fcheck("a/b/c", 3), 0);
    CHECK_EQ(fcheck("a/b/c/d", 3), -RQ_RC_TOPIC_FILTER_INVALID);
    CHECK_EQ(fcheck("a/b/c/d", 0), 0);
    CHECK_EQ(fcheck("a/b/", 2), -RQ_RC_TOPIC_FILTER_INVALID);
    CHECK_EQ(fcheck("#", 1), 0);
    CHECK_EQ(fcheck("+/+/#", 3), 0);
    CHECK_EQ(fcheck("+/+/+/#", 3), -RQ_RC_TOPIC_FILTER_INVALID);
    /* the $share prefix does not count */
    CHECK_EQ(fcheck("$share/g/a/b/c", 3), 0);
    CHECK_EQ(fcheck("$share/g/a/b/c/d", 3), -RQ_RC_TOPIC_FILTER_INVALID);
    /* malformed wins over too deep when both apply: nothing is accepted either way */
    CHECK(fcheck("a/b/c/d#", 3) != 0);
}

static void test_split(void)
{
    const uint8_t *g, *f;
    size_t gl, fl;
    CHECK(rq_topic_split_shared(S("$share/grp/a/b"), &g, &gl, &f, &fl));
    CHECK_EQ(gl, 3);
    CHECK(memcmp(g, "grp", 3) == 0);
    CHECK_EQ(fl, 3);
    CHECK(memcmp(f, "a/b", 3) == 0);
    CHECK(rq_topic_split_shared(S("$share/g/#"), &g, &gl, &f, &fl));
    CHECK_EQ(fl, 1);
    CHECK(!rq_topic_split_shared(S("$share/g"), &g, &gl, &f, &fl));
    CHECK(!rq_topic_split_shared(S("$share"), &g, &gl, &f, &fl));
    CHECK(!rq_topic_split_shared(S("$shared/g/a"), &g, &gl, &f, &fl));
    CHECK(!rq_topic_split_shared(S("a/b"), &g, &gl, &f, &fl));
}

struct mcase {
    const char *f, *t;
    bool m;
};

static const struct mcase cases[] = {
    {"a", "a", true},
    {"a", "b", false},
    {"a", "a/b", false},
    {"a/b", "a", false},
    {"a/b", "a/b", true},
    {"sport/tennis/player1", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/#", "sport", true},
    {"sport/#", "sport/", true},
    {"sport/#", "sports", false},
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player1/tournament", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+", "sport", true},
    {"+", "/sport", false},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "", true}, /* "" is not a valid name, but the matcher still answers consistently */
    {"#", "a", true},
    {"#", "a/b/c", true},
    {"#", "/", true},
    {"+/#", "a", true},
    {"+/#", "a/b", true},
    {"a/+/b", "a//b", true},
    {"a//b", "a//b", true},
    {"a/+/b", "a/x/y/b", false},
    {"a//+", "a//", true},
    {"a/+/+", "a//", true},
    {"+/+/+", "a//", true},
    {"+/+", "a//", false},
    {"a/#", "a//", true},
    {"+", "/", false},
    {"+/+", "/", true},
    {"/", "/", true},
    {"/#", "/a/b", true},
    {"/#", "a/b", false},
    {"a/", "a", false},
    {"a", "a/", false},
    {"a/b/#", "a/c", false},
    {"+/b/#", "x/b", true},
    {"+/b/#", "x/c", false},
    /* [MQTT-4.7.2-1] '$' topics */
    {"#", "$SYS", false},
    {"#", "$SYS/broker/uptime", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"+", "$SYS", false},
    {"+/#", "$SYS/x", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/+/Clients", "$SYS/monitor/Clients", true},
    {"$SYS", "$SYS", true},
    {"a/#", "a/$SYS", true},
    {"a/+", "a/$x", true},
    {"#", "a$", true},
    {"+/x", "a$/x", true},
};

static void tree_count_cb(void *ctx, const struct rq_sub_entry *e, bool shared)
{
    (*(int *)ctx)++;
}

static void test_match_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const struct mcase *c = &cases[i];
        bool m = rq_topic_match(S(c->f), S(c->t));
        if (m != c->m)
            fprintf(stderr, "match(\"%s\", \"%s\") = %d\n", c->f, c->t, m);
        CHECK_EQ(m, c->m);
        if (!*c->t)
            continue;
        /* the tree must agree, for a plain and a shared subscription */
        struct rq_subtree *t = rq_subtree_new();
        struct rq_sub_entry e = {.session_id = 1};
        char shared[128];
        snprintf(shared, sizeof shared, "$share/g/%s", c->f);
        CHECK_EQ(rq_subtree_add(t, S(c->f), &e, NULL), 0);
        CHECK_EQ(rq_subtree_add(t, S(shared), &e, NULL), 0);
        int n = 0;
        rq_subtree_match(t, S(c->t), tree_count_cb, &n);
        if (n != (c->m ? 2 : 0))
            fprintf(stderr, "tree match(\"%s\", \"%s\") = %d callbacks\n", c->f, c->t, n);
        CHECK_EQ(n, c->m ? 2 : 0);
        rq_subtree_free(t);
    }
}

/* Collects callbacks of rq_subtree_match. */
struct got {
    int n, nshared;
    struct rq_sub_entry e[64];
    bool shared[64];
};

static void got_cb(void *ctx, const struct rq_sub_entry *e, bool shared)
{
    struct got *g = ctx;
    if (g->n < 64) {
        g->e[g->n] = *e;
        g->shared[g->n] = shared;
    }
    g->n++;
    g->nshared += shared;
}

static struct got match(struct rq_subtree *t, const char *topic)
{
    struct got g = {0};
    rq_subtree_match(t, S(topic), got_cb, &g);
    return g;
}

static void test_tree_basic(void)
{
    struct rq_subtree *t = rq_subtree_new();
    CHECK(t != NULL);
    CHECK_EQ(rq_subtree_count(t), 0);
    struct rq_sub_entry e = {.session_id = 7, .sub_id = 1, .opts = 1};
    bool rep = true;
    CHECK_EQ(rq_subtree_add(t, S("a/b"), &e, &rep), 0);
    CHECK(!rep);
    CHECK_EQ(rq_subtree_count(t), 1);
    struct got g = match(t, "a/b");
    CHECK_EQ(g.n, 1);
    CHECK_EQ(g.e[0].sub_id, 1);
    CHECK_EQ(g.e[0].opts, 1);
    CHECK(!g.shared[0]);

    /* same session, same filter: replaces options and subscription id */
    e.sub_id = 9;
    e.opts = 2;
    CHECK_EQ(rq_subtree_add(t, S("a/b"), &e, &rep), 0);
    CHECK(rep);
    CHECK_EQ(rq_subtree_count(t), 1);
    g = match(t, "a/b");
    CHECK_EQ(g.n, 1);
    CHECK_EQ(g.e[0].sub_id, 9);
    CHECK_EQ(g.e[0].opts, 2);
    CHECK_EQ(rq_subtree_add(t, S("a/b"), &e, NULL), 0); /* replaced may be NULL */

    /* other session on the same filter, and other filters */
    struct rq_sub_entry e2 = {.session_id = 8};
    CHECK_EQ(rq_subtree_add(t, S("a/b"), &e2, &rep), 0);
    CHECK(!rep);
    CHECK_EQ(rq_subtree_add(t, S("a/+"), &e2, NULL), 0);
    CHECK_EQ(rq_subtree_add(t, S("#"), &e2, NULL), 0);
    CHECK_EQ(rq_subtree_count(t), 4);
    CHECK_EQ(match(t, "a/b").n, 4);
    CHECK_EQ(match(t, "a/c").n, 2);
    CHECK_EQ(match(t, "x").n, 1);
    CHECK_EQ(match(t, "$SYS/x").n, 0);

    CHECK_EQ(rq_subtree_remove(t, S("a/b"), 99), -ENOENT);
    CHECK_EQ(rq_subtree_remove(t, S("a/c"), 7), -ENOENT);
    CHECK_EQ(rq_subtree_remove(t, S("a"), 7), -ENOENT); /* an inner node is no subscription */
    CHECK_EQ(rq_subtree_remove(t, S("$share/g/a/b"), 7), -ENOENT);
    CHECK_EQ(rq_subtree_remove(t, S("a/b"), 7), 0);
    CHECK_EQ(rq_subtree_remove(t, S("a/b"), 7), -ENOENT);
    CHECK_EQ(rq_subtree_count(t), 3);
    CHECK_EQ(match(t, "a/b").n, 3);
    CHECK_EQ(rq_subtree_remove(t, S("a/b"), 8), 0);
    CHECK_EQ(rq_subtree_remove(t, S("a/+"), 8), 0);
    CHECK_EQ(rq_subtree_remove(t, S("#"), 8), 0);
    CHECK_EQ(rq_subtree_count(t), 0);
    CHECK_EQ(match(t, "a/b").n, 0);
    rq_subtree_free(t);
    rq_subtree_free(NULL);
}

static void test_tree_overlap(void)
{
    /* one session, several matching filters: one callback each; dedup is the broker's job */
    struct rq_subtree *t = rq_subtree_new();
    static const char *filters[] = {"a/b/c", "a/+/c", "a/#", "+/b/c", "#", "a/b/+", "+/+/+"};
    for (size_t i = 0; i < 7; i++) {
        struct rq_sub_entry e = {.session_id = 1, .sub_id = (uint32_t)i + 1};
        CHECK_EQ(rq_subtree_add(t, S(filters[i]), &e, NULL), 0);
    }
    struct got g = match(t, "a/b/c");
    CHECK_EQ(g.n, 7);
    unsigned seen = 0;
    for (int i = 0; i < g.n && i < 64; i++)
        seen |= 1u << g.e[i].sub_id;
    CHECK_EQ(seen, 0xfe);
    CHECK_EQ(match(t, "a/b").n, 2);     /* a/#, # */
    CHECK_EQ(match(t, "a/b/c/d").n, 2); /* a/#, # */
    rq_subtree_free(t);
}

static void test_tree_shared(void)
{
    struct rq_subtree *t = rq_subtree_new();
    for (uint64_t s = 1; s <= 3; s++) {
        struct rq_sub_entry e = {.session_id = s, .sub_id = (uint32_t)s};
        CHECK_EQ(rq_subtree_add(t, S("$share/g1/a/+"), &e, NULL), 0);
    }
    struct rq_sub_entry e9 = {.session_id = 9};
    CHECK_EQ(rq_subtree_add(t, S("$share/g2/a/+"), &e9, NULL), 0);
    CHECK_EQ(rq_subtree_add(t, S("$share/g1/a/#"), &e9, NULL), 0); /* other filter: other group */
    CHECK_EQ(rq_subtree_add(t, S("a/+"), &e9, NULL), 0);
    CHECK_EQ(rq_subtree_count(t), 6);

    int per_member[4] = {0};
    for (int i = 0; i < 30; i++) {
        struct got g = match(t, "a/x");
        CHECK_EQ(g.n, 4); /* one of g1/a/+, g2/a/+, g1/a/#, plain a/+ */
        CHECK_EQ(g.nshared, 3);
        int g1 = 0;
        for (int k = 0; k < g.n; k++)
            if (g.shared[k] && g.e[k].session_id <= 3) {
                g1++;
                per_member[g.e[k].session_id]++;
            }
        CHECK_EQ(g1, 1);
    }
    CHECK_EQ(per_member[1], 10); /* round robin: each member gets every third message */
    CHECK_EQ(per_member[2], 10);
    CHECK_EQ(per_member[3], 10);

    /* membership changes keep exactly one delivery per group */
    CHECK_EQ(rq_subtree_remove(t, S("$share/g1/a/+"), 2), 0);
    CHECK_EQ(rq_subtree_remove(t, S("$share/g1/a/+"), 2), -ENOENT);
    CHECK_EQ(rq_subtree_remove(t, S("$share/g3/a/+"), 1), -ENOENT);
    CHECK_EQ(rq_subtree_remove(t, S("a/+"), 1), -ENOENT);
    int seen1 = 0, seen3 = 0;
    for (int i = 0; i < 10; i++) {
        struct got g = match(t, "a/y");
        CHECK_EQ(g.n, 4);
        for (int k = 0; k < g.n; k++) {
            seen1 += g.shared[k] && g.e[k].session_id == 1;
            seen3 += g.shared[k] && g.e[k].session_id == 3;
        }
    }
    CHECK_EQ(seen1, 5);
    CHECK_EQ(seen3, 5);
    /* replacing a member keeps one entry */
    struct rq_sub_entry e1 = {.session_id = 1, .sub_id = 42};
    bool rep = false;
    CHECK_EQ(rq_subtree_add(t, S("$share/g1/a/+"), &e1, &rep), 0);
    CHECK(rep);
    CHECK_EQ(rq_subtree_count(t), 5);
    CHECK_EQ(match(t, "$SYS/x").n, 0);
    CHECK_EQ(rq_subtree_remove(t, S("$share/g1/a/+"), 1), 0);
    CHECK_EQ(rq_subtree_remove(t, S("$share/g1/a/+"), 3), 0);
    CHECK_EQ(match(t, "a/x").n, 3);
    CHECK_EQ(rq_subtree_remove(t, S("$share/g2/a/+"), 9), 0);
    CHECK_EQ(rq_subtree_remove(t, S("$share/g1/a/#"), 9), 0);
    CHECK_EQ(rq_subtree_remove(t, S("a/+"), 9), 0);
    CHECK_EQ(rq_subtree_count(t), 0);
    rq_subtree_free(t);
}

/* Subscription i of test_tree_many. */
static void many_filter(char *f, size_t n, int i)
{
    if (i % 4 == 0)
        snprintf(f, n, "dev/%d/state", i);
    else if (i % 4 == 1)
        snprintf(f, n, "dev/+/state");
    else if (i % 4 == 2)
        snprintf(f, n, "$share/g%d/dev/#", i % 10);
    else
        snprintf(f, n, "dev/%d/#", i / 4);
}

static void test_tree_many(void)
{
    enum { N = 10000 };
    struct rq_subtree *t = rq_subtree_new();
    char f[64];
    for (int i = 0; i < N; i++) {
        struct rq_sub_entry e = {.session_id = (uint64_t)i + 1};
        many_filter(f, sizeof f, i);
        CHECK_EQ(rq_subtree_add(t, S(f), &e, NULL), 0);
    }
    CHECK_EQ(rq_subtree_count(t), N);
    struct got g = match(t, "dev/0/state");
    /* dev/0/state, 2500 x dev/+/state, groups g0,g2,..,g8 (i % 4 == 2), dev/0/# (i = 3) */
    CHECK_EQ(g.n, 1 + 2500 + 5 + 1);
    CHECK_EQ(g.nshared, 5);
    for (int i = N - 1; i >= 0; i--) { /* remove in another order than added */
        int k = (i * 7919) % N;
        many_filter(f, sizeof f, k);
        int rc = rq_subtree_remove(t, S(f), (uint64_t)k + 1);
        CHECK_EQ(rc, 0);
    }
    CHECK_EQ(rq_subtree_count(t), 0);
    CHECK_EQ(match(t, "dev/0/state").n, 0);
    rq_subtree_free(t);

    /* freeing a populated tree releases everything (ASan checks for leaks) */
    t = rq_subtree_new();
    for (int i = 0; i < 2000; i++) {
        struct rq_sub_entry e = {.session_id = (uint64_t)i};
        snprintf(f, sizeof f, "x/%d/+/%d/#", i % 37, i);
        CHECK_EQ(rq_subtree_add(t, S(f), &e, NULL), 0);
        snprintf(f, sizeof f, "$share/s%d/x/%d", i % 3, i % 11);
        CHECK_EQ(rq_subtree_add(t, S(f), &e, NULL), 0);
    }
    rq_subtree_free(t);
}

static void test_tree_deep(void)
{
    /* 20000 levels: matching and freeing must not recurse per level */
    enum { L = 20000 };
    char *f = malloc(2 * L), *tp = malloc(2 * L);
    for (int i = 0; i < L; i++) {
        f[2 * i] = '+';
        tp[2 * i] = 'a';
        f[2 * i + 1] = tp[2 * i + 1] = '/';
    }
    f[2 * L - 1] = tp[2 * L - 1] = 0;
    struct rq_subtree *t = rq_subtree_new();
    struct rq_sub_entry e = {.session_id = 1};
    CHECK_EQ(rq_topic_filter_check((const uint8_t *)f, 2 * L - 1, 0, NULL), 0);
    CHECK_EQ(rq_topic_filter_check((const uint8_t *)f, 2 * L - 1, 100, NULL),
             -RQ_RC_TOPIC_FILTER_INVALID);
    CHECK_EQ(rq_subtree_add(t, S(f), &e, NULL), 0);
    CHECK_EQ(rq_subtree_add(t, S(tp), &e, NULL), 0);
    CHECK_EQ(match(t, tp).n, 2);
    tp[2 * L - 3] = 0; /* one level less */
    CHECK_EQ(match(t, tp).n, 0);
    tp[2 * L - 3] = '/';
    CHECK(rq_topic_match(S(f), S(tp)));
    CHECK_EQ(rq_subtree_remove(t, S(f), 1), 0);
    CHECK_EQ(match(t, tp).n, 1);
    rq_subtree_free(t); /* with the literal chain still in it */
    free(f);
    free(tp);
}

/* "x/x/.../x" of n levels (n >= 1), each level `lv`, then "/#" when pound. */
static char *levels_of(char lv, int n, bool pound)
{
    char *s = malloc(2 * (size_t)n + 3), *w = s;
    for (int i = 0; i < n; i++) {
        *w++ = lv;
        *w++ = '/';
    }
    if (pound)
        *w++ = '#';
    else
        w--;
    *w = 0;
    return s;
}

/* maxTopicLevels' default (200): a tree holding, for every depth up to 200, the all-'+' filter,
 * the all-'+' filter ending in '#' and the literal filter, matched against 200-level topics;
 * each match must walk the whole set without recursion (run under ASan). */
static void test_tree_200(void)
{
    enum { L = 200 };
    struct rq_subtree *t = rq_subtree_new();
    for (int n = 1; n <= L; n++) {
        struct rq_sub_entry e = {.session_id = (uint64_t)n};
        char *plus = levels_of('+', n, false), *pound = levels_of('+', n - 1, true);
        char *lit = levels_of('a', n, false);
        if (n == 1)
            strcpy(pound, "#");
        CHECK_EQ(rq_topic_filter_check(S(plus), L, NULL), 0);
        CHECK_EQ(rq_topic_filter_check(S(pound), L, NULL), 0);
        CHECK_EQ(rq_subtree_add(t, S(plus), &e, NULL), 0);
        CHECK_EQ(rq_subtree_add(t, S(pound), &e, NULL), 0);
        CHECK_EQ(rq_subtree_add(t, S(lit), &e, NULL), 0);
        free(plus);
        free(pound);
        free(lit);
    }
    CHECK_EQ(rq_subtree_count(t), 3 * L);
    char *topic = levels_of('a', L, false);
    /* 200 levels: the 200-level '+' filter, every '#' filter, the 200-level literal one */
    CHECK_EQ(match(t, topic).n, 1 + L + 1);
    char *other = levels_of('b', L, false); /* no literal filter matches */
    CHECK_EQ(match(t, other).n, 1 + L);
    char *over = levels_of('a', L + 1, false);
    CHECK_EQ(rq_topic_levels(S(over)), L + 1);
    CHECK_EQ(rq_topic_filter_check(S(over), L, NULL), -RQ_RC_TOPIC_FILTER_INVALID);
    CHECK_EQ(match(t, over).n, L); /* only the '#' filters */
    char *top = levels_of('+', L, true);
    CHECK_EQ(rq_topic_filter_check(S(top), L, NULL), -RQ_RC_TOPIC_FILTER_INVALID); /* 201 */
    CHECK(rq_topic_match(S(top), S(over)));
    CHECK(rq_topic_match(S(top), S(topic))); /* '#' matches the parent level too */
    rq_subtree_free(t);
    free(topic);
    free(other);
    free(over);
    free(top);
}

/* Randomized: the tree yields exactly the non-shared subscriptions rq_topic_match accepts. */
static uint32_t rng = 12345;

static void test_tree_random(void)
{
    enum { NF = 60 };
    char filters[NF][32], topic[32];
    for (int round = 0; round < 200; round++) {
        struct rq_subtree *t = rq_subtree_new();
        for (int i = 0; i < NF; i++) {
            random_name(&rng, filters[i], true);
            struct rq_sub_entry e = {.session_id = (uint64_t)i};
            CHECK_EQ(rq_subtree_add(t, S(filters[i]), &e, NULL), 0);
        }
        for (int k = 0; k < 20; k++) {
            random_name(&rng, topic, false);
            struct got g = match(t, topic);
            int want = 0;
            for (int i = 0; i < NF; i++)
                want += rq_topic_match(S(filters[i]), S(topic));
            CHECK_EQ(g.n, want);
            for (int j = 0; j < g.n && j < 64; j++)
                CHECK(rq_topic_match(S(filters[g.e[j].session_id]), S(topic)));
        }
        for (int i = 0; i < NF; i++)
            CHECK_EQ(rq_subtree_remove(t, S(filters[i]), (uint64_t)i), 0);
        CHECK_EQ(rq_subtree_count(t), 0);
        rq_subtree_free(t);
    }
}

int main(void)
{
    test_names();
    test_filters();
    test_level_limit();
    test_split();
    test_match_table();
    test_tree_basic();
    test_tree_overlap();
    test_tree_shared();
    test_tree_many();
    test_tree_deep();
    test_tree_200();
    test_tree_random();
    return check_exit("test_topic");
}
