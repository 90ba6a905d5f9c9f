/* Unit tests for core/retain: set/replace/clear, filter lookups with wildcards and the '$'
 * rule, visitor-driven removal with pruning, deep topics, and a randomized comparison with
 * rq_topic_match. Links core/retain.c, plus core/topic.c for the reference matcher. */
#include "core/retain.h"

#include "core/topic.h"
#include "tests/unit/check.h"
#include "tests/unit/core/random_topic.h"

#include <stdlib.h>

#define S(x) (const uint8_t *)(x), strlen(x)

/* Messages are small heap strings holding their topic, so ASan sees leaks and double drops. */
static int live_msgs;

static void *msg_new(const char *topic)
{
    live_msgs++;
    return strdup(topic);
}

static void msg_drop(void *m)
{
    live_msgs--;
    free(m);
}

static void set(struct rq_retain *r, const char *topic)
{
    void *old = NULL;
    CHECK_EQ(rq_retain_set(r, S(topic), msg_new(topic), &old), 0);
    if (old)
        msg_drop(old);
}

static void clear(struct rq_retain *r, const char *topic)
{
    void *old = NULL;
    CHECK_EQ(rq_retain_set(r, S(topic), NULL, &old), 0);
    if (old)
        msg_drop(old);
}

/* Collects visited topics in a '|'-separated, sorted list for easy comparison. */
struct seen {
    int n;
    char topics[64][64];
    bool keep;                 /* what the visitor answers */
    const char *remove_prefix; /* if set, entries whose topic starts with it are removed */
};

static bool seen_cb(void *ctx, const uint8_t *topic, size_t len, void *msg)
{
    struct seen *s = ctx;
    /* the topic passed to the visitor is the one stored with the message */
    CHECK(strlen(msg) == len && memcmp(msg, topic, len) == 0);
    if (s->n < 64 && len < 64) {
        memcpy(s->topics[s->n], topic, len);
        s->topics[s->n][len] = 0;
    }
    s->n++;
    if (s->remove_prefix) {
        size_t plen = strlen(s->remove_prefix);
        return len < plen || memcmp(topic, s->remove_prefix, plen) != 0;
    }
    return s->keep;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static const char *joined(struct seen *s)
{
    static char out[4096];
    int n = s->n < 64 ? s->n : 64;
    qsort(s->topics, (size_t)n, sizeof s->topics[0], cmp_str);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(out, "|");
        strcat(out, s->topics[i]);
    }
    return out;
}

static const char *lookup(struct rq_retain *r, const char *filter)
{
    struct seen s = {.keep = true};
    rq_retain_match(r, S(filter), seen_cb, &s, msg_drop);
    return joined(&s);
}

static void test_set_replace_clear(void)
{
    struct rq_retain *r = rq_retain_new();
    CHECK(r != NULL);
    CHECK_EQ(rq_retain_count(r), 0);
    void *m1 = msg_new("a/b"), *m2 = msg_new("a/b"), *old = (void *)1;
    CHECK_EQ(rq_retain_set(r, S("a/b"), m1, &old), 0);
    CHECK(old == NULL);
    CHECK_EQ(rq_retain_count(r), 1);
    CHECK_EQ(rq_retain_set(r, S("a/b"), m2, &old), 0);
    CHECK(old == m1); /* replaced: the caller releases the old one */
    msg_drop(old);
    CHECK_EQ(rq_retain_count(r), 1);
    CHECK_STR(lookup(r, "a/b"), "a/b");
    CHECK_EQ(rq_retain_set(r, S("a/c"), NULL, &old), 0); /* clearing nothing */
    CHECK(old == NULL);
    CHECK_EQ(rq_retain_set(r, S("a"), NULL, &old), 0); /* an inner node holds no message */
    CHECK(old == NULL);
    CHECK_EQ(rq_retain_count(r), 1);
    CHECK_EQ(rq_retain_set(r, S("a/b"), NULL, &old), 0);
    CHECK(old == m2);
    msg_drop(old);
    CHECK_EQ(rq_retain_count(r), 0);
    CHECK_STR(lookup(r, "#"), "");

    /* a parent and its child hold separate messages */
    set(r, "a");
    set(r, "a/b");
    set(r, "a/b/c");
    CHECK_EQ(rq_retain_count(r), 3);
    clear(r, "a/b");
    CHECK_STR(lookup(r, "#"), "a|a/b/c");
    clear(r, "a");
    CHECK_STR(lookup(r, "#"), "a/b/c");
    clear(r, "a/b/c");
    CHECK_EQ(rq_retain_count(r), 0);

    /* levels longer than one hash word */
    set(r, "building-0042/floor-seven/temperature");
    set(r, "building-0042/floor-seven/humidity");
    CHECK_STR(lookup(r, "building-0042/+/temperature"), "building-0042/floor-seven/temperature");
    CHECK_STR(lookup(r, "building-0042/floor-seven/humidity"),
              "building-0042/floor-seven/humidity");
    clear(r, "building-0042/floor-seven/temperature");
    clear(r, "building-0042/floor-seven/humidity");
    CHECK_EQ(rq_retain_count(r), 0);
    CHECK_EQ(live_msgs, 0);
    rq_retain_free(r, msg_drop);
    rq_retain_free(NULL, NULL);
}

static void test_match(void)
{
    struct rq_retain *r = rq_retain_new();
    static const char *topics[] = {"a",           "a/b",    "a/c",  "a/b/c",       "a//b",
                                   "a/",          "/",      "/a",   "b",           "$SYS",
                                   "$SYS/uptime", "$x/a/b", "a/$x", "sport/tennis"};
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
        set(r, topics[i]);
    CHECK_EQ(rq_retain_count(r), 14);
    CHECK_STR(lookup(r, "#"), "/|/a|a|a/|a/$x|a//b|a/b|a/b/c|a/c|b|sport/tennis");
    CHECK_STR(lookup(r, "+"), "a|b");
    CHECK_STR(lookup(r, "a"), "a");
    CHECK_STR(lookup(r, "a/b"), "a/b");
    CHECK_STR(lookup(r, "a/x"), "");
    CHECK_STR(lookup(r, "a/+"), "a/|a/$x|a/b|a/c");
    CHECK_STR(lookup(r, "a/#"), "a|a/|a/$x|a//b|a/b|a/b/c|a/c");
    CHECK_STR(lookup(r, "a/+/b"), "a//b");
    CHECK_STR(lookup(r, "a/+/+"), "a//b|a/b/c");
    CHECK_STR(lookup(r, "+/+"), "/|/a|a/|a/$x|a/b|a/c|sport/tennis");
    CHECK_STR(lookup(r, "+/b"), "a/b");
    CHECK_STR(lookup(r, "+/#"), "/|/a|a|a/|a/$x|a//b|a/b|a/b/c|a/c|b|sport/tennis");
    CHECK_STR(lookup(r, "/#"), "/|/a");
    CHECK_STR(lookup(r, "/+"), "/|/a");
    CHECK_STR(lookup(r, "a/"), "a/");
    CHECK_STR(lookup(r, "sport/#"), "sport/tennis");
    CHECK_STR(lookup(r, "sport/+"), "sport/tennis");
    CHECK_STR(lookup(r, "sport"), "");
    /* [MQTT-4.7.2-1] */
    CHECK_STR(lookup(r, "$SYS/#"), "$SYS|$SYS/uptime");
    CHECK_STR(lookup(r, "$SYS/+"), "$SYS/uptime");
    CHECK_STR(lookup(r, "$SYS"), "$SYS");
    CHECK_STR(lookup(r, "+/uptime"), "");
    CHECK_STR(lookup(r, "$x/+/b"), "$x/a/b");
    CHECK_STR(lookup(r, "$x/#"), "$x/a/b");
    CHECK_EQ(rq_retain_count(r), 14);
    rq_retain_free(r, msg_drop);
    CHECK_EQ(live_msgs, 0);
}

static void test_visitor_removal(void)
{
    struct rq_retain *r = rq_retain_new();
    char t[64];
    for (int i = 0; i < 200; i++) {
        snprintf(t, sizeof t, "dev/%d/state", i);
        set(r, t);
        snprintf(t, sizeof t, "dev/%d", i);
        set(r, t);
    }
    set(r, "dev");
    set(r, "other/x");
    CHECK_EQ(rq_retain_count(r), 402);

    /* expire everything below dev/ with '+': 200 visits, all removed, nodes pruned */
    struct seen s = {.keep = false};
    rq_retain_match(r, S("dev/+/state"), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 200);
    CHECK_EQ(rq_retain_count(r), 202);
    CHECK_STR(lookup(r, "+/+/state"), "");
    CHECK_EQ(live_msgs, 202);

    /* '#' over a subtree, removing only part of it while the walk goes on */
    s = (struct seen){.remove_prefix = "dev/1"};
    rq_retain_match(r, S("dev/#"), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 201); /* dev and dev/0..199 */
    /* dev/1, dev/10..19, dev/100..199 removed: 1 + 10 + 100 */
    CHECK_EQ(rq_retain_count(r), 202 - 111);
    s = (struct seen){.keep = true};
    rq_retain_match(r, S("dev/#"), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 201 - 111);

    /* remove everything with '#': the store ends empty, only the root left */
    s = (struct seen){.keep = false};
    rq_retain_match(r, S("#"), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 201 - 111 + 1);
    CHECK_EQ(rq_retain_count(r), 0);
    CHECK_EQ(live_msgs, 0);
    CHECK_STR(lookup(r, "#"), "");

    /* drop may be NULL: the visitor then owns what it removes (here: nothing to free) */
    static char fixed[] = "k";
    CHECK_EQ(rq_retain_set(r, S("k"), fixed, NULL), 0);
    s = (struct seen){.keep = false};
    rq_retain_match(r, S("k"), seen_cb, &s, NULL);
    CHECK_EQ(s.n, 1);
    CHECK_EQ(rq_retain_count(r), 0);

    /* refill after pruning works */
    set(r, "dev/1/state");
    CHECK_STR(lookup(r, "dev/+/state"), "dev/1/state");
    rq_retain_free(r, msg_drop);
    CHECK_EQ(live_msgs, 0);
}

static void test_many_and_deep(void)
{
    struct rq_retain *r = rq_retain_new();
    char t[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(t, sizeof t, "site/%d/dev/%d", i % 50, i);
        set(r, t);
    }
    CHECK_EQ(rq_retain_count(r), 20000);
    struct seen s = {.keep = true};
    rq_retain_match(r, S("site/7/dev/+"), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 400);
    s = (struct seen){.keep = true};
    rq_retain_match(r, S("+/+/dev/19999"), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 1);
    for (int i = 0; i < 20000; i += 2) {
        snprintf(t, sizeof t, "site/%d/dev/%d", i % 50, i);
        clear(r, t);
    }
    CHECK_EQ(rq_retain_count(r), 10000);
    s = (struct seen){.keep = true};
    rq_retain_match(r, S("#"), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 10000);
    rq_retain_free(r, msg_drop); /* frees the rest */
    CHECK_EQ(live_msgs, 0);

    /* 20000 levels: set, match and free must not recurse per level */
    enum { L = 20000 };
    char *deep = malloc(2 * L);
    for (int i = 0; i < L; i++) {
        deep[2 * i] = 'a';
        deep[2 * i + 1] = '/';
    }
    deep[2 * L - 1] = 0;
    r = rq_retain_new();
    set(r, deep);
    s = (struct seen){.keep = true};
    rq_retain_match(r, S("#"), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 1);
    s = (struct seen){.keep = true};
    rq_retain_match(r, S(deep), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 1);
    for (int i = 0; i < L; i++)
        deep[2 * i] = '+';
    s = (struct seen){.keep = true};
    rq_retain_match(r, S(deep), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 1);
    s = (struct seen){.keep = false};
    rq_retain_match(r, S("a/#"), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 1);
    CHECK_EQ(rq_retain_count(r), 0);
    rq_retain_free(r, msg_drop);
    free(deep);
    CHECK_EQ(live_msgs, 0);
}

/* maxTopicLevels' default (200): every prefix of a 200-level topic retained, looked up with
 * filters of '+' at every level, with and without a final '#' (run under ASan). */
static void test_200_levels(void)
{
    enum { L = 200 };
    char topic[2 * L], filter[2 * L + 2];
    struct rq_retain *r = rq_retain_new();
    for (int n = 1; n <= L; n++) {
        for (int i = 0; i < n; i++) {
            topic[2 * i] = (char)('a' + i % 26);
            topic[2 * i + 1] = '/';
        }
        topic[2 * n - 1] = 0;
        set(r, topic);
    }
    CHECK_EQ(rq_retain_count(r), L);
    struct seen s = {.keep = true};
    rq_retain_match(r, S("#"), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, L);
    for (int i = 0; i < L; i++) {
        filter[2 * i] = '+';
        filter[2 * i + 1] = '/';
    }
    filter[2 * L - 1] = 0; /* 200 x '+': the 200-level topic */
    s = (struct seen){.keep = true};
    rq_retain_match(r, S(filter), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 1);
    filter[2 * (L - 1) - 1] = '/'; /* 199 x '+' then '#': the 199- and 200-level topics */
    filter[2 * (L - 1)] = '#';
    filter[2 * (L - 1) + 1] = 0;
    s = (struct seen){.keep = true};
    rq_retain_match(r, S(filter), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, 2);
    memcpy(filter, "+/#", 4); /* all: '#' matches the parent level too */
    s = (struct seen){.keep = true};
    rq_retain_match(r, S(filter), seen_cb, &s, msg_drop);
    CHECK_EQ(s.n, L);
    rq_retain_free(r, msg_drop);
    CHECK_EQ(live_msgs, 0);
}

/* Randomized: the store visits exactly the stored topics rq_topic_match accepts. */
static uint32_t rng = 777;

static void test_random(void)
{
    enum { NT = 40 };
    char topics[NT][32], filter[32];
    for (int round = 0; round < 300; round++) {
        struct rq_retain *r = rq_retain_new();
        for (int i = 0; i < NT; i++) {
            random_name(&rng, topics[i], false);
            set(r, topics[i]);
        }
        for (int k = 0; k < 20; k++) {
            random_name(&rng, filter, true);
            struct seen s = {.keep = true};
            rq_retain_match(r, S(filter), seen_cb, &s, msg_drop);
            /* distinct stored topics that match */
            int want = 0;
            for (int i = 0; i < NT; i++) {
                bool dup = false;
                for (int j = 0; j < i && !dup; j++)
                    dup = strcmp(topics[i], topics[j]) == 0;
                want += !dup && rq_topic_match(S(filter), S(topics[i]));
            }
            CHECK_EQ(s.n, want);
            for (int j = 0; j < s.n && j < 64; j++)
                CHECK(rq_topic_match(S(filter), S(s.topics[j])));
        }
        /* remove all matching one filter through the visitor, the rest stays */
        random_name(&rng, filter, true);
        size_t before = rq_retain_count(r);
        struct seen s = {.keep = false};
        rq_retain_match(r, S(filter), seen_cb, &s, msg_drop);
        CHECK_EQ(rq_retain_count(r), before - (size_t)s.n);
        s = (struct seen){.keep = true};
        rq_retain_match(r, S(filter), seen_cb, &s, msg_drop);
        CHECK_EQ(s.n, 0);
        rq_retain_free(r, msg_drop);
        CHECK_EQ(live_msgs, 0);
    }
}

int main(void)
{
    test_set_replace_clear();
    test_match();
    test_visitor_removal();
    test_many_and_deep();
    test_200_levels();
    test_random();
    return check_exit("test_retain");
}
