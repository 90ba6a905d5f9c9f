/* Retained message store: a trie with one node per topic level, the message pointer stored at
 * the topic's node. Children live in an open-addressing hash table (linear probing, seeded hash,
 * tombstones on removal: core/levels.h, shared with the subscription tree), so setting a topic
 * costs one hash lookup per level and a filter lookup only walks branches that can match: a literal
 * level is one lookup, '+' fans out over the children of one node, '#' takes a whole subtree.
 *
 * Walks go through parent pointers instead of recursion, so depth is bounded by memory only.
 * Entries the visitor removes are pruned when the walk leaves their node; removal during a walk
 * only writes tombstones, so the slot order the walk follows never moves.
 *
 * Not done here: locking (the broker locks around the store), message lifetime (the caller owns
 * the messages; drop releases them), topic validation (the caller passes valid names and
 * filters), $share prefixes (the caller strips them). */
#include "core/retain.h"

#include "core/levels.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct rnode {
    struct rnode *parent;
    struct rnode **kids; /* hash table: slots NULL, TOMB or a child */
    uint32_t nkids, ntomb, kcap;
    uint32_t slot; /* index in parent->kids */
    void *msg;     /* retained message, owned by the caller; NULL = none */
    uint64_t hval; /* hash of name */
    uint32_t nlen;
    uint8_t name[];
};

struct rq_retain {
    struct rnode *root;
    size_t count;
    uint64_t seed;
    uint8_t *scratch; /* rebuilds topics for the visitor; as long as the longest topic set */
    size_t scap;
};

static struct rnode tomb_node;
#define TOMB (&tomb_node)

RQ_LEVEL_TABLE(struct rnode)

/* Walk state shared by the matching helpers. */
struct walk {
    struct rq_retain *r;
    rq_retain_visit_fn fn;
    void *ctx;
    void (*drop)(void *msg);
};

/* Unlinks and frees n if it holds nothing; returns whether it did. The root stays. */
static bool unlink_empty(struct rnode *n, bool may_shrink)
{
    if (!n->parent || n->msg || n->nkids)
        return false;
    kid_remove(n->parent, n, may_shrink);
    free(n->kids);
    free(n);
    return true;
}

static void prune(struct rnode *n)
{
    while (n->parent) {
        struct rnode *p = n->parent;
        if (!unlink_empty(n, true))
            return;
        n = p;
    }
}

struct rq_retain *rq_retain_new(void)
{
    struct rq_retain *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (!(r->root = level_node_new(NULL, NULL, 0, 0))) {
        free(r);
        return NULL;
    }
    if (getrandom(&r->seed, sizeof r->seed, GRND_NONBLOCK) != sizeof r->seed)
        r->seed = rq_level_mix64((uint64_t)(uintptr_t)r); /* weaker, but the store still works */
    return r;
}

/* Post-order walk through parent pointers: no recursion, whatever the depth. */
void rq_retain_free(struct rq_retain *r, void (*drop)(void *msg))
{
    if (!r)
        return;
    struct rnode *n = r->root;
    uint32_t from = 0;
    for (;;) {
        struct rnode *c = kid_next(n, from);
        if (c) {
            n = c;
            from = 0;
            continue;
        }
        if (n->msg && drop)
            drop(n->msg);
        struct rnode *p = n->parent;
        from = n->slot + 1;
        free(n->kids);
        free(n);
        if (!p)
            break;
        n = p;
    }
    free(r->scratch);
    free(r);
}

static int scratch_reserve(struct rq_retain *r, size_t len)
{
    if (len <= r->scap)
        return 0;
    size_t cap = r->scap ? r->scap : 64;
    while (cap < len)
        cap *= 2;
    uint8_t *p = malloc(cap); /* contents need not survive */
    if (!p)
        return -ENOMEM;
    free(r->scratch);
    r->scratch = p;
    r->scap = cap;
    return 0;
}

/* The topic's node, created on demand. NULL: missing, or -ENOMEM (partial path pruned). */
static struct rnode *node_walk(struct rq_retain *r, const uint8_t *t, size_t len, bool create)
{
    struct rnode *n = r->root;
    for (size_t p = 0; p <= len;) {
        size_t e = rq_level_end(t, len, p);
        uint64_t h = rq_level_hash(r->seed, t + p, e - p);
        struct rnode *c = kid_find(n, h, t + p, e - p);
        if (!c && create && (c = level_node_new(n, t + p, e - p, h)) && kid_insert(n, c)) {
            free(c);
            c = NULL;
        }
        if (!c) {
            if (create)
                prune(n);
            return NULL;
        }
        n = c;
        p = e + 1;
    }
    return n;
}

int rq_retain_set(struct rq_retain *r, const uint8_t *topic, size_t len, void *msg, void **old)
{
    void *prev = NULL;
    struct rnode *n;
    if (msg) {
        if (scratch_reserve(r, len < 64 ? 64 : len) || !(n = node_walk(r, topic, len, true)))
            return -ENOMEM;
        prev = n->msg;
        n->msg = msg;
        r->count += !prev;
    } else if ((n = node_walk(r, topic, len, false))) {
        prev = n->msg;
        n->msg = NULL;
        r->count -= !!prev;
        prune(n);
    }
    if (old)
        *old = prev;
    return 0;
}

size_t rq_retain_count(const struct rq_retain *r)
{
    return r->count;
}

/* Writes n's topic at the end of the scratch buffer. */
static const uint8_t *topic_of(const struct rq_retain *r, const struct rnode *n, size_t *len)
{
    uint8_t *end = r->scratch + r->scap, *p = end;
    for (;;) {
        p -= n->nlen;
        if (n->nlen)
            memcpy(p, n->name, n->nlen);
        n = n->parent;
        if (n == r->root)
            break;
        *--p = '/';
    }
    *len = (size_t)(end - p);
    return p;
}

static void visit(struct walk *w, struct rnode *n)
{
    if (!n->msg)
        return;
    size_t len;
    const uint8_t *t = topic_of(w->r, n, &len);
    if (w->fn(w->ctx, t, len, n->msg))
        return;
    void *msg = n->msg;
    n->msg = NULL; /* the node itself goes when the walk leaves it */
    w->r->count--;
    if (w->drop)
        w->drop(msg);
}

/* Next child of n from slot `from` on; at the root, skips '$' topics for a wildcard level. */
static struct rnode *next_kid(const struct rnode *n, uint32_t from, bool skip_dollar)
{
    for (struct rnode *k; (k = kid_next(n, from)); from = k->slot + 1)
        if (!(skip_dollar && k->nlen && k->name[0] == '$')) /* [MQTT-4.7.2-1] */
            return k;
    return NULL;
}

/* '#': visits every message strictly below s (pre-order), pruning on the way back up. */
static void walk_subtree(struct walk *w, struct rnode *s)
{
    struct rnode *n = s;
    uint32_t from = 0;
    for (;;) {
        struct rnode *c = next_kid(n, from, n == w->r->root);
        if (c) {
            n = c;
            from = 0;
            visit(w, n);
            continue;
        }
        if (n == s)
            return;
        struct rnode *p = n->parent;
        from = n->slot + 1;
        (void)unlink_empty(n, false);
        n = p;
    }
}

/* Same shape as the subscription tree's match: a node entered with filter position fp either
 * ends the filter (visit it), meets '#' (visit it and its subtree), meets '+' (fan out over its
 * children, resuming after the child just left) or a literal level (one lookup). */
void rq_retain_match(struct rq_retain *r, const uint8_t *f, size_t flen, rq_retain_visit_fn fn,
                     void *ctx, void (*drop)(void *msg))
{
    struct walk w = {r, fn, ctx, drop};
    struct rnode *n = r->root, *c;
    size_t fp = 0, e;
    uint32_t from = 0;
    enum { ENTER, FANOUT, LEAVE } st = ENTER;
    for (;;) {
        switch (st) {
        case ENTER:
            e = fp <= flen ? rq_level_end(f, flen, fp) : 0;
            if (fp > flen) {
                visit(&w, n);
                st = LEAVE;
            } else if (rq_level_is_wild(f + fp, e - fp, '#')) {
                visit(&w, n); /* "a/#" matches "a" too */
                walk_subtree(&w, n);
                st = LEAVE;
            } else if (rq_level_is_wild(f + fp, e - fp, '+')) {
                from = 0;
                st = FANOUT;
            } else if ((c = kid_find(n, rq_level_hash(r->seed, f + fp, e - fp), f + fp, e - fp))) {
                n = c;
                fp = e + 1;
            } else {
                st = LEAVE;
            }
            break;
        case FANOUT:
            if ((c = next_kid(n, from, n == r->root))) {
                n = c;
                fp += 2; /* past "+" and its '/' */
                st = ENTER;
            } else {
                st = LEAVE;
            }
            break;
        case LEAVE:
            if (n == r->root)
                return;
            c = n;
            n = n->parent;
            fp = rq_level_start_before(f, fp);
            from = c->slot + 1;
            (void)unlink_empty(c, false);
            e = rq_level_end(f, flen, fp);
            st = rq_level_is_wild(f + fp, e - fp, '+') ? FANOUT : LEAVE;
            break;
        }
    }
}
