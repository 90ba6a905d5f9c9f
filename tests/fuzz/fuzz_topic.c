/* libFuzzer harness for core/topic and core/retain.
 *
 * Input: byte 0 picks max_levels (0..7), the rest is split at '\n' into lines (at most
 * MAX_LINES). Every line is checked as a topic name and a topic filter against small reference
 * implementations written here differently (level arrays instead of cursors). The last line is
 * the topic; the valid filters are subscribed (session = line % 3 + 1, so some repeat and
 * replace) and rq_subtree_match must yield exactly what a brute-force rq_topic_match over the
 * same subscriptions gives: every matching plain subscription once, one member per matching
 * shared group. Removal goes back to count 0. The valid names are also retained and every
 * filter's rq_retain_match is compared with brute force, expiring some entries on the way. */
#include "core/rc.h"
#include "core/retain.h"
#include "core/topic.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FZ_ASSERT(c)                                                                               \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

enum { MAX_LINES = 16, MAX_LEVELS = 64 };

struct line {
    const uint8_t *p;
    size_t len;
};

/* Splits s into levels; returns the count, or 0 when there are more than MAX_LEVELS. */
static size_t split_levels(const uint8_t *s, size_t len, struct line *lv)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '/')
            continue;
        if (n == MAX_LEVELS)
            return 0;
        lv[n++] = (struct line){s + start, i - start};
        start = i + 1;
    }
    return n;
}

static bool lv_is(const struct line *l, char c)
{
    return l->len == 1 && l->p[0] == (uint8_t)c;
}

/* Reference filter check: 0, 1 = malformed, 2 = too many levels, -1 = too long to check. */
static int ref_filter(const uint8_t *f, size_t len, unsigned max)
{
    if (len == 0)
        return 1;
    if (len >= 7 && memcmp(f, "$share/", 7) == 0) {
        const uint8_t *g = f + 7, *slash = memchr(g, '/', len - 7);
        if (!slash || slash == g || slash + 1 == f + len)
            return 1;
        for (const uint8_t *c = g; c < slash; c++)
            if (*c == '+' || *c == '#')
                return 1;
        len -= (size_t)(slash + 1 - f);
        f = slash + 1;
    }
    struct line lv[MAX_LEVELS];
    size_t n = split_levels(f, len, lv);
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        bool hash = memchr(lv[i].p, '#', lv[i].len), plus = memchr(lv[i].p, '+', lv[i].len);
        if ((hash && (!lv_is(&lv[i], '#') || i + 1 != n)) || (plus && !lv_is(&lv[i], '+')))
            return 1;
    }
    return max && n > max ? 2 : 0;
}

/* Reference matcher over level arrays; -1 when either side is too long to check. */
static int ref_match(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen)
{
    struct line fl[MAX_LEVELS], tl[MAX_LEVELS];
    size_t nf = split_levels(f, flen, fl), nt = split_levels(t, tlen, tl);
    if (!nf || !nt)
        return -1;
    if (t[0] == '$' && (lv_is(&fl[0], '+') || lv_is(&fl[0], '#')))
        return 0;
    for (size_t i = 0; i < nf; i++) {
        if (lv_is(&fl[i], '#'))
            return 1;
        if (i == nt)
            return 0;
        if (!lv_is(&fl[i], '+') &&
            (fl[i].len != tl[i].len || memcmp(fl[i].p, tl[i].p, fl[i].len) != 0))
            return 0;
    }
    return nf == nt;
}

static bool same(struct line a, struct line b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* One distinct subscription (full filter string, session). */
struct sub {
    struct line full, group, inner;
    uint64_t sid;
    bool shared, removed;
    size_t gid; /* shared: index of the first sub of the same (group, inner filter) */
    int hits;   /* callbacks counted on this sub (shared: on the group's first sub) */
};

struct subs {
    struct sub s[MAX_LINES];
    size_t n;
    int bad; /* callbacks that name no known subscription */
};

static void on_sub(void *ctx, const struct rq_sub_entry *e, bool shared)
{
    struct subs *ss = ctx;
    size_t k = (size_t)e->sub_id - 1;
    if (k >= ss->n || ss->s[k].removed || ss->s[k].sid != e->session_id ||
        ss->s[k].shared != shared)
        ss->bad++;
    else
        ss->s[shared ? ss->s[k].gid : k].hits++;
}

static void check_tree_match(struct rq_subtree *t, struct subs *ss, struct line topic)
{
    int want[MAX_LINES] = {0};
    for (size_t k = 0; k < ss->n; k++) {
        struct sub *s = &ss->s[k];
        s->hits = 0;
        if (!s->removed && rq_topic_match(s->inner.p, s->inner.len, topic.p, topic.len))
            want[s->gid] = 1; /* one delivery per plain sub, one per group with a member left */
    }
    rq_subtree_match(t, topic.p, topic.len, on_sub, ss);
    FZ_ASSERT(ss->bad == 0);
    for (size_t k = 0; k < ss->n; k++)
        FZ_ASSERT(ss->s[k].hits == want[k]);
}

static void add_sub(struct rq_subtree *t, struct subs *ss, struct line f, uint64_t sid)
{
    size_t k = 0;
    while (k < ss->n && !(ss->s[k].sid == sid && same(ss->s[k].full, f)))
        k++;
    struct sub *s = &ss->s[k];
    bool existed = k < ss->n;
    if (!existed) {
        *s = (struct sub){.full = f, .inner = f, .sid = sid, .gid = k};
        s->shared = rq_topic_split_shared(f.p, f.len, &s->group.p, &s->group.len, &s->inner.p,
                                          &s->inner.len);
        for (size_t j = 0; s->shared && j < k; j++)
            if (ss->s[j].shared && same(ss->s[j].group, s->group) &&
                same(ss->s[j].inner, s->inner)) {
                s->gid = ss->s[j].gid;
                break;
            }
        ss->n++;
    }
    struct rq_sub_entry e = {.session_id = sid, .sub_id = (uint32_t)k + 1, .opts = (uint8_t)k};
    bool rep = false;
    FZ_ASSERT(rq_subtree_add(t, f.p, f.len, &e, &rep) == 0);
    FZ_ASSERT(rep == existed);
}

static void fuzz_tree(const struct line *lines, size_t n, const bool *valid, struct line topic)
{
    struct rq_subtree *t = rq_subtree_new();
    FZ_ASSERT(t);
    struct subs ss = {.n = 0};
    for (size_t i = 0; i + 1 < n; i++)
        if (valid[i])
            add_sub(t, &ss, lines[i], i % 3 + 1);
    FZ_ASSERT(rq_subtree_count(t) == ss.n);
    check_tree_match(t, &ss, topic);
    /* remove every other subscription, check again, then the rest */
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t k = pass; k < ss.n; k += 2) {
            struct sub *s = &ss.s[k];
            FZ_ASSERT(rq_subtree_remove(t, s->full.p, s->full.len, s->sid) == 0);
            FZ_ASSERT(rq_subtree_remove(t, s->full.p, s->full.len, s->sid) == -ENOENT);
            s->removed = true; /* no callback may name it any more */
        }
        check_tree_match(t, &ss, topic);
    }
    FZ_ASSERT(rq_subtree_count(t) == 0);
    rq_subtree_free(t);
}

/* Retained topics: msg = index + 1 into the distinct names. */
struct ret {
    struct line name[MAX_LINES];
    size_t n;
    bool gone[MAX_LINES];
    int seen[MAX_LINES];
    bool expire; /* remove entries with an odd index */
};

static bool on_ret(void *ctx, const uint8_t *topic, size_t len, void *msg)
{
    struct ret *r = ctx;
    size_t k = (size_t)(uintptr_t)msg - 1;
    FZ_ASSERT(k < r->n && !r->gone[k] && same(r->name[k], (struct line){topic, len}));
    r->seen[k]++;
    if (r->expire && (k & 1)) {
        r->gone[k] = true;
        return false;
    }
    return true;
}

static void fuzz_retain(const struct line *lines, size_t n, const bool *name_ok, const bool *valid)
{
    struct rq_retain *st = rq_retain_new();
    FZ_ASSERT(st);
    struct ret r = {.n = 0};
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < r.n && !same(r.name[k], lines[i]))
            k++;
        if (!name_ok[i] || k < r.n)
            continue;
        r.name[r.n++] = lines[i];
        void *old = NULL;
        FZ_ASSERT(rq_retain_set(st, lines[i].p, lines[i].len, (void *)(uintptr_t)r.n, &old) == 0);
        FZ_ASSERT(old == NULL);
    }
    FZ_ASSERT(rq_retain_count(st) == r.n);
    for (size_t i = 0; i < n; i++) {
        if (!valid[i])
            continue;
        struct line f = lines[i], g;
        (void)rq_topic_split_shared(lines[i].p, lines[i].len, &g.p, &g.len, &f.p, &f.len);
        bool want[MAX_LINES];
        for (size_t k = 0; k < r.n; k++) {
            r.seen[k] = 0;
            want[k] = !r.gone[k] && rq_topic_match(f.p, f.len, r.name[k].p, r.name[k].len);
        }
        r.expire = i + 1 == n || i % 4 == 3;
        size_t before = rq_retain_count(st), removed = 0;
        rq_retain_match(st, f.p, f.len, on_ret, &r, NULL);
        for (size_t k = 0; k < r.n; k++) {
            FZ_ASSERT(r.seen[k] == (int)want[k]);
            removed += want[k] && r.gone[k];
        }
        FZ_ASSERT(rq_retain_count(st) == before - removed);
    }
    rq_retain_free(st, NULL);
}

static void check_line(struct line l, unsigned max, bool *name_ok, bool *valid)
{
    const char *why = NULL;
    int rc = rq_topic_filter_check(l.p, l.len, max, &why);
    FZ_ASSERT(rc == 0 || rc == -RQ_RC_MALFORMED || rc == -RQ_RC_TOPIC_FILTER_INVALID);
    FZ_ASSERT(rc == 0 || why);
    int ref = ref_filter(l.p, l.len, max);
    if (ref >= 0)
        FZ_ASSERT(rc == (ref == 0 ? 0 : ref == 1 ? -RQ_RC_MALFORMED : -RQ_RC_TOPIC_FILTER_INVALID));
    size_t slashes = 0;
    for (size_t i = 0; i < l.len; i++)
        slashes += l.p[i] == '/';
    FZ_ASSERT(rq_topic_levels(l.p, l.len) == slashes + 1);
    *name_ok = rq_topic_name_valid(l.p, l.len);
    FZ_ASSERT(*name_ok == (l.len && !memchr(l.p, '+', l.len) && !memchr(l.p, '#', l.len)));
    *valid = rc == 0;
    /* a name matches itself; it is a valid filter too unless it looks like a $share prefix */
    if (*name_ok && (l.len < 7 || memcmp(l.p, "$share/", 7) != 0))
        FZ_ASSERT(rq_topic_filter_check(l.p, l.len, 0, NULL) == 0);
    if (*name_ok)
        FZ_ASSERT(rq_topic_match(l.p, l.len, l.p, l.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned max = data[0] % 8;
    struct line lines[MAX_LINES];
    bool name_ok[MAX_LINES], valid[MAX_LINES];
    size_t n = 0;
    const uint8_t *p = data + 1, *end = data + size;
    while (n < MAX_LINES) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        lines[n++] = (struct line){p, (size_t)((nl ? nl : end) - p)};
        if (!nl)
            break;
        p = nl + 1;
    }
    for (size_t i = 0; i < n; i++)
        check_line(lines[i], max, &name_ok[i], &valid[i]);
    struct line topic = lines[n - 1];
    if (!name_ok[n - 1])
        return 0;
    for (size_t i = 0; i + 1 < n; i++) {
        struct line f = lines[i], g;
        if (!valid[i])
            continue;
        (void)rq_topic_split_shared(lines[i].p, lines[i].len, &g.p, &g.len, &f.p, &f.len);
        int ref = ref_match(f.p, f.len, topic.p, topic.len);
        if (ref >= 0)
            FZ_ASSERT(rq_topic_match(f.p, f.len, topic.p, topic.len) == (ref == 1));
    }
    fuzz_tree(lines, n, valid, topic);
    fuzz_retain(lines, n, name_ok, valid);
    return 0;
}
