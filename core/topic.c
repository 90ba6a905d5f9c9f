/* Topic names, topic filters (MQTT 5.0 section 4.7, shared subscriptions 4.8.2) and the
 * subscription tree.
 *
 * The tree is a trie with one node per filter level. A node keeps its '+' and '#' children in
 * two dedicated pointers and its literal children in an open-addressing hash table (linear
 * probing, seeded hash, tombstones on removal: core/levels.h, shared with the retained store),
 * so a lookup costs one hash of the topic level
 * and usually one probe. Matching walks the trie iteratively through parent pointers: no
 * recursion (a 32k-level '+' filter cannot blow the stack), no allocation, and no writes except
 * the relaxed-atomic round-robin counter of shared groups.
 *
 * Not done here: locking (the broker wraps the tree), UTF-8 validation (the codec), removing
 * duplicate deliveries of overlapping subscriptions (the broker), authorization. */
#include "core/topic.h"

#include "core/levels.h"
#include "core/rc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)

/* ---------------------------------------------------------------------------------------------
 * Names and filters
 * ------------------------------------------------------------------------------------------- */

bool rq_topic_name_valid(const uint8_t *t, size_t len)
{
    /* [MQTT-4.7.3-1] at least one character; [MQTT-4.7.1-1] no wildcards in topic names. */
    return len > 0 && !memchr(t, '+', len) && !memchr(t, '#', len);
}

unsigned rq_topic_levels(const uint8_t *t, size_t len)
{
    unsigned n = 1;
    for (size_t i = 0; i < len; i++)
        n += t[i] == '/';
    return n;
}

/* Returns true when f starts with "$share/" and a '/' follows the group name. The group or the
 * filter may be empty here; rq_topic_filter_check rejects those. */
bool rq_topic_split_shared(const uint8_t *f, size_t len, const uint8_t **group, size_t *glen,
                           const uint8_t **filter, size_t *flen)
{
    if (len < SHARE_PREFIX_LEN || memcmp(f, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
        return false;
    const uint8_t *g = f + SHARE_PREFIX_LEN;
    size_t rest = len - SHARE_PREFIX_LEN;
    const uint8_t *slash = rest ? memchr(g, '/', rest) : NULL;
    if (!slash)
        return false;
    *group = g;
    *glen = (size_t)(slash - g);
    *filter = slash + 1;
    *flen = rest - *glen - 1;
    return true;
}

static int fail(const char **why, const char *msg, int rc)
{
    if (why)
        *why = msg;
    return -rc;
}

/* Wildcard placement and level count of a filter without its $share prefix. */
static int check_levels(const uint8_t *f, size_t len, unsigned max_levels, const char **why)
{
    size_t levels = 1, start = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = f[i];
        if (c == '/') {
            levels++;
            start = i + 1;
            continue;
        }
        bool alone = i == start && (i + 1 == len || f[i + 1] == '/');
        if (c == '+' && !alone) /* [MQTT-4.7.1-2] */
            return fail(why, "'+' must occupy a whole topic level", RQ_RC_MALFORMED);
        if (c == '#' && (!alone || i + 1 != len)) /* [MQTT-4.7.1-1] */
            return fail(why, "'#' must be the whole last topic level", RQ_RC_MALFORMED);
    }
    if (max_levels && levels > max_levels)
        return fail(why, "topic filter has too many levels", RQ_RC_TOPIC_FILTER_INVALID);
    return 0;
}

int rq_topic_filter_check(const uint8_t *f, size_t len, unsigned max_levels, const char **why)
{
    if (len == 0) /* [MQTT-4.7.3-1] */
        return fail(why, "empty topic filter", RQ_RC_MALFORMED);
    if (len >= SHARE_PREFIX_LEN && memcmp(f, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0) {
        const uint8_t *g, *sf;
        size_t glen, sflen;
        if (!rq_topic_split_shared(f, len, &g, &glen, &sf, &sflen) || sflen == 0)
            return fail(why, "shared subscription without a topic filter", RQ_RC_MALFORMED);
        if (glen == 0) /* [MQTT-4.8.2-1] */
            return fail(why, "empty share name", RQ_RC_MALFORMED);
        if (memchr(g, '+', glen) || memchr(g, '#', glen)) /* [MQTT-4.8.2-2] */
            return fail(why, "wildcard in share name", RQ_RC_MALFORMED);
        f = sf;
        len = sflen;
    }
    return check_levels(f, len, max_levels, why);
}

bool rq_topic_match(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen)
{
    if (tlen && t[0] == '$' && flen && (f[0] == '+' || f[0] == '#')) /* [MQTT-4.7.2-1] */
        return false;
    size_t fp = 0, tp = 0;
    for (;;) {
        if (fp > flen) /* filter exhausted: match iff the topic is too */
            return tp > tlen;
        size_t fe = rq_level_end(f, flen, fp);
        if (rq_level_is_wild(f + fp, fe - fp,
                             '#')) /* also matches the parent level [MQTT-4.7.1-2] */
            return true;
        if (tp > tlen)
            return false;
        size_t te = rq_level_end(t, tlen, tp);
        bool plus = rq_level_is_wild(f + fp, fe - fp, '+');
        if (!plus && (fe - fp != te - tp || memcmp(f + fp, t + tp, fe - fp) != 0))
            return false;
        fp = fe + 1;
        tp = te + 1;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Subscription tree
 * ------------------------------------------------------------------------------------------- */

/* Members of one shared group ($share/<name>/<filter>), stored at the filter's node. */
struct group {
    _Atomic uint32_t rr; /* round-robin counter, relaxed: readers may race, that is fine */
    uint32_t n, cap;
    struct rq_sub_entry *members; /* sorted by session_id */
    size_t nlen;
    uint8_t name[];
};

struct node {
    struct node *parent;
    struct node *plus, *pound; /* '+' and '#' children */
    struct node **kids;        /* literal children: hash table, slots NULL, TOMB or a child */
    uint32_t nkids, ntomb, kcap;
    uint32_t slot; /* index in parent->kids (literal children only) */
    uint32_t nsubs, subcap, ngroups, gcap;
    struct rq_sub_entry *subs; /* non-shared subscriptions, sorted by session_id */
    struct group **groups;     /* sorted by name */
    uint64_t hval;             /* hash of name, literal children only */
    uint32_t nlen;
    uint8_t name[];
};

struct rq_subtree {
    struct node *root;
    size_t count;
    uint64_t seed;
};

static struct node tomb_node;
#define TOMB (&tomb_node)

RQ_LEVEL_TABLE(struct node)

static bool node_empty(const struct node *n)
{
    return !n->nsubs && !n->ngroups && !n->nkids && !n->plus && !n->pound;
}

/* Frees a node's own memory (its groups and children are gone already). */
static void node_free(struct node *n)
{
    for (uint32_t i = 0; i < n->ngroups; i++) {
        free(n->groups[i]->members);
        free(n->groups[i]);
    }
    free(n->groups);
    free(n->subs);
    free(n->kids);
    free(n);
}

/* Removes n and its ancestors while they hold nothing. The root stays. */
static void prune(struct node *n)
{
    while (n->parent && node_empty(n)) {
        struct node *p = n->parent;
        if (p->plus == n)
            p->plus = NULL;
        else if (p->pound == n)
            p->pound = NULL;
        else
            kid_remove(p, n, true);
        node_free(n);
        n = p;
    }
}

static struct node *child_get(struct rq_subtree *t, struct node *n, const uint8_t *s, size_t len,
                              bool create)
{
    struct node **wild = rq_level_is_wild(s, len, '+')   ? &n->plus
                         : rq_level_is_wild(s, len, '#') ? &n->pound
                                                         : NULL;
    if (wild) {
        if (!*wild && create)
            *wild = level_node_new(n, s, len, 0);
        return *wild;
    }
    uint64_t h = rq_level_hash(t->seed, s, len);
    struct node *k = kid_find(n, h, s, len);
    if (k || !create)
        return k;
    if (!(k = level_node_new(n, s, len, h)))
        return NULL;
    if (kid_insert(n, k)) {
        free(k);
        return NULL;
    }
    return k;
}

/* The node of filter f (no $share prefix), created on demand. NULL: missing or -ENOMEM. */
static struct node *node_walk(struct rq_subtree *t, const uint8_t *f, size_t len, bool create)
{
    struct node *n = t->root;
    for (size_t p = 0; p <= len;) {
        size_t e = rq_level_end(f, len, p);
        struct node *c = child_get(t, n, f + p, e - p, create);
        if (!c) {
            if (create)
                prune(n); /* drop the part of the path created before running out of memory */
            return NULL;
        }
        n = c;
        p = e + 1;
    }
    return n;
}

/* Index of the first entry with session_id >= sid. */
static uint32_t sub_lower(const struct rq_sub_entry *a, uint32_t n, uint64_t sid)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid].session_id < sid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int grow(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    uint32_t ncap = *cap ? *cap * 2 : 2;
    void *p = ncap > *cap ? realloc(*arr, (size_t)ncap * elem) : NULL;
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int sub_put(struct rq_sub_entry **a, uint32_t *n, uint32_t *cap,
                   const struct rq_sub_entry *e, bool *replaced)
{
    uint32_t i = sub_lower(*a, *n, e->session_id);
    *replaced = i < *n && (*a)[i].session_id == e->session_id;
    if (*replaced) {
        (*a)[i] = *e;
        return 0;
    }
    if (grow((void **)a, cap, *n + 1, sizeof **a))
        return -ENOMEM;
    memmove(*a + i + 1, *a + i, (size_t)(*n - i) * sizeof **a);
    (*a)[i] = *e;
    (*n)++;
    return 0;
}

static int sub_del(struct rq_sub_entry **a, uint32_t *n, uint32_t *cap, uint64_t sid)
{
    uint32_t i = sub_lower(*a, *n, sid);
    if (i == *n || (*a)[i].session_id != sid)
        return -ENOENT;
    memmove(*a + i, *a + i + 1, (size_t)(*n - i - 1) * sizeof **a);
    if (--*n == 0) {
        free(*a);
        *a = NULL;
        *cap = 0;
    }
    return 0;
}

static int name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

/* Index of the first group whose name is >= name; *found says whether it is equal. */
static uint32_t group_lower(const struct node *n, const uint8_t *name, size_t len, bool *found)
{
    uint32_t lo = 0, hi = n->ngroups;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (name_cmp(n->groups[mid]->name, n->groups[mid]->nlen, name, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < n->ngroups && name_cmp(n->groups[lo]->name, n->groups[lo]->nlen, name, len) == 0;
    return lo;
}

static void group_drop(struct node *n, uint32_t i)
{
    free(n->groups[i]->members);
    free(n->groups[i]);
    memmove(n->groups + i, n->groups + i + 1, (size_t)(n->ngroups - i - 1) * sizeof *n->groups);
    if (--n->ngroups == 0) {
        free(n->groups);
        n->groups = NULL;
        n->gcap = 0;
    }
}

static int group_add(struct node *n, const uint8_t *name, size_t len, const struct rq_sub_entry *e,
                     bool *replaced)
{
    bool found;
    uint32_t i = group_lower(n, name, len, &found);
    if (!found) {
        struct group *g = calloc(1, sizeof *g + len);
        if (!g || grow((void **)&n->groups, &n->gcap, n->ngroups + 1, sizeof *n->groups)) {
            free(g);
            return -ENOMEM;
        }
        memcpy(g->name, name, len);
        g->nlen = len;
        memmove(n->groups + i + 1, n->groups + i, (size_t)(n->ngroups - i) * sizeof *n->groups);
        n->groups[i] = g;
        n->ngroups++;
    }
    struct group *g = n->groups[i];
    int rc = sub_put(&g->members, &g->n, &g->cap, e, replaced);
    if (rc && g->n == 0)
        group_drop(n, i);
    return rc;
}

static int group_del(struct node *n, const uint8_t *name, size_t len, uint64_t sid)
{
    bool found;
    uint32_t i = group_lower(n, name, len, &found);
    if (!found)
        return -ENOENT;
    struct group *g = n->groups[i];
    int rc = sub_del(&g->members, &g->n, &g->cap, sid);
    if (rc == 0 && g->n == 0)
        group_drop(n, i);
    return rc;
}

struct rq_subtree *rq_subtree_new(void)
{
    struct rq_subtree *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (!(t->root = level_node_new(NULL, NULL, 0, 0))) {
        free(t);
        return NULL;
    }
    if (getrandom(&t->seed, sizeof t->seed, GRND_NONBLOCK) != sizeof t->seed)
        t->seed = rq_level_mix64((uint64_t)(uintptr_t)t); /* weaker, but the tree still works */
    return t;
}

/* First child of n to free: wildcard children, then literal ones from slot `from` on. */
static struct node *next_to_free(struct node *n, uint32_t from)
{
    if (n->plus)
        return n->plus;
    if (n->pound)
        return n->pound;
    return kid_next(n, from);
}

/* Post-order walk through parent pointers: no recursion, whatever the depth. */
void rq_subtree_free(struct rq_subtree *t)
{
    if (!t)
        return;
    struct node *n = t->root;
    uint32_t from = 0;
    for (;;) {
        struct node *c = next_to_free(n, from);
        if (c) {
            n = c;
            from = 0;
            continue;
        }
        struct node *p = n->parent;
        if (!p)
            break;
        from = 0; /* wildcard children go first, literal ones are then taken in slot order */
        if (p->plus == n)
            p->plus = NULL;
        else if (p->pound == n)
            p->pound = NULL;
        else
            from = n->slot + 1;
        node_free(n);
        n = p;
    }
    node_free(n);
    free(t);
}

int rq_subtree_add(struct rq_subtree *t, const uint8_t *filter, size_t len,
                   const struct rq_sub_entry *e, bool *replaced)
{
    const uint8_t *g = NULL, *f = filter;
    size_t glen = 0, flen = len;
    bool shared = rq_topic_split_shared(filter, len, &g, &glen, &f, &flen), rep = false;
    struct node *n = node_walk(t, f, flen, true);
    if (!n)
        return -ENOMEM;
    int rc =
        shared ? group_add(n, g, glen, e, &rep) : sub_put(&n->subs, &n->nsubs, &n->subcap, e, &rep);
    if (rc) {
        prune(n);
        return rc;
    }
    t->count += !rep;
    if (replaced)
        *replaced = rep;
    return 0;
}

int rq_subtree_remove(struct rq_subtree *t, const uint8_t *filter, size_t len, uint64_t session_id)
{
    const uint8_t *g = NULL, *f = filter;
    size_t glen = 0, flen = len;
    bool shared = rq_topic_split_shared(filter, len, &g, &glen, &f, &flen);
    struct node *n = node_walk(t, f, flen, false);
    if (!n)
        return -ENOENT;
    int rc = shared ? group_del(n, g, glen, session_id)
                    : sub_del(&n->subs, &n->nsubs, &n->subcap, session_id);
    if (rc)
        return rc;
    t->count--;
    prune(n);
    return 0;
}

size_t rq_subtree_count(const struct rq_subtree *t)
{
    return t->count;
}

static void deliver(const struct node *n, rq_subtree_match_fn fn, void *ctx)
{
    for (uint32_t i = 0; i < n->nsubs; i++)
        fn(ctx, &n->subs[i], false);
    for (uint32_t i = 0; i < n->ngroups; i++) {
        struct group *g = n->groups[i];
        uint32_t k = atomic_fetch_add_explicit(&g->rr, 1, memory_order_relaxed);
        fn(ctx, &g->members[k % g->n], true);
    }
}

/* Depth-first over the nodes that can match, through parent pointers. At a node entered with
 * topic position p: its '#' child matches (also when the topic ends here); if the topic ends
 * here the node's own subscriptions match; otherwise try the '+' child, then the literal
 * child named like the topic level at p. Leaving a node recomputes the parent's position. */
void rq_subtree_match(struct rq_subtree *t, const uint8_t *topic, size_t len,
                      rq_subtree_match_fn fn, void *ctx)
{
    const struct node *root = t->root, *n = root, *c;
    bool dollar = len && topic[0] == '$'; /* [MQTT-4.7.2-1] */
    size_t p = 0, e;
    enum { ENTER, LITERAL, LEAVE } st = ENTER;
    for (;;) {
        switch (st) {
        case ENTER:
            if (n->pound && !(dollar && n == root))
                deliver(n->pound, fn, ctx);
            if (p > len) {
                deliver(n, fn, ctx);
                st = LEAVE;
            } else if (n->plus && !(dollar && n == root)) {
                n = n->plus;
                p = rq_level_end(topic, len, p) + 1;
            } else {
                st = LITERAL;
            }
            break;
        case LITERAL:
            e = rq_level_end(topic, len, p);
            c = kid_find(n, rq_level_hash(t->seed, topic + p, e - p), topic + p, e - p);
            if (c) {
                n = c;
                p = e + 1;
                st = ENTER;
            } else {
                st = LEAVE;
            }
            break;
        case LEAVE:
            if (n == root)
                return;
            c = n;
            n = n->parent;
            if (n->plus == c) {
                p = rq_level_start_before(topic, p);
                st = LITERAL;
            } else {
                p -= 1 + c->nlen; /* a literal child's name is exactly the topic level */
            }
            break;
        }
    }
}
