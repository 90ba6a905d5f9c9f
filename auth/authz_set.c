/* The per-client filter set of authorization (see authz_set.h): a trie in flat arrays (nodes by
 * index, literal names in one byte arena), checked by walking the topic once with the set of
 * live nodes at each depth. It knows nothing of rules, principals or substitution
 * (auth/authz.c). */
#include "auth/authz_set.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/levels.h"

struct node {
    uint32_t *kids; /* literal children (node indices), sorted by (name length, name bytes) */
    uint32_t nkids, kcap;
    uint32_t plus; /* the '+' child; 0 = none (node 0 is the root, never a child) */
    uint32_t name_off, name_len;
    bool pound; /* a filter ends here with '#': this level and everything below it */
    bool term;  /* a filter ends exactly here */
};

struct rq_authz_set {
    struct node *nodes;
    uint32_t n, cap;
    uint8_t *names; /* arena of literal level names */
    size_t names_len, names_cap;
    size_t count;
    uint32_t *cur, *next; /* scratch of the checks: live nodes at this depth, at the next */
    uint32_t *kid_pool;   /* frozen: every node's kids, one array (node.kids point into it) */
};

static int grow(void **p, size_t need, size_t *cap, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 4;
    while (ncap < need)
        ncap *= 2;
    void *q = realloc(*p, ncap * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = ncap;
    return 0;
}

static uint32_t node_new(struct rq_authz_set *s)
{
    size_t cap = s->cap;
    if (grow((void **)&s->nodes, (size_t)s->n + 1, &cap, sizeof *s->nodes))
        return 0;
    s->cap = (uint32_t)cap;
    memset(&s->nodes[s->n], 0, sizeof *s->nodes);
    return s->n++;
}

struct rq_authz_set *rq_authz_set_new(void)
{
    struct rq_authz_set *s = calloc(1, sizeof *s);
    if (s)
        (void)node_new(s); /* the root, node 0 (0 is also node_new's failure) */
    if (!s || s->n != 1) {
        rq_authz_set_free(s);
        return NULL;
    }
    return s;
}

void rq_authz_set_free(struct rq_authz_set *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; !s->kid_pool && i < s->n; i++)
        free(s->nodes[i].kids);
    free(s->kid_pool);
    free(s->nodes);
    free(s->names);
    free(s->cur); /* next is in the same block */
    free(s);
}

static int name_cmp(const struct rq_authz_set *s, uint32_t k, const uint8_t *p, size_t len)
{
    const struct node *n = &s->nodes[k];
    if (n->name_len != len)
        return n->name_len < len ? -1 : 1;
    return len ? memcmp(s->names + n->name_off, p, len) : 0;
}

/* Index in n's kids of the first child whose name is >= (p, len). */
static uint32_t kid_lower(const struct rq_authz_set *s, const struct node *n, const uint8_t *p,
                          size_t len)
{
    uint32_t lo = 0, hi = n->nkids;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (name_cmp(s, n->kids[mid], p, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static uint32_t kid_find(const struct rq_authz_set *s, uint32_t at, const uint8_t *p, size_t len)
{
    const struct node *n = &s->nodes[at];
    uint32_t i = kid_lower(s, n, p, len);
    return i < n->nkids && name_cmp(s, n->kids[i], p, len) == 0 ? n->kids[i] : 0;
}

/* The literal child (p, len) of node at, created when missing. 0 when out of memory. */
static uint32_t kid_get(struct rq_authz_set *s, uint32_t at, const uint8_t *p, size_t len)
{
    uint32_t i = kid_lower(s, &s->nodes[at], p, len);
    if (i < s->nodes[at].nkids && name_cmp(s, s->nodes[at].kids[i], p, len) == 0)
        return s->nodes[at].kids[i];
    if (len > UINT32_MAX || grow((void **)&s->names, s->names_len + len, &s->names_cap, 1))
        return 0;
    size_t kcap = s->nodes[at].kcap;
    if (grow((void **)&s->nodes[at].kids, (size_t)s->nodes[at].nkids + 1, &kcap, sizeof(uint32_t)))
        return 0;
    s->nodes[at].kcap = (uint32_t)kcap;
    uint32_t k = node_new(s); /* may move s->nodes */
    if (!k)
        return 0;
    struct node *n = &s->nodes[at];
    if (len)
        memcpy(s->names + s->names_len, p, len);
    s->nodes[k].name_off = (uint32_t)s->names_len;
    s->nodes[k].name_len = (uint32_t)len;
    s->names_len += len;
    memmove(n->kids + i + 1, n->kids + i, (n->nkids - i) * sizeof *n->kids);
    n->kids[i] = k;
    n->nkids++;
    return k;
}

int rq_authz_set_add(struct rq_authz_set *s, const struct rq_authz_level *lv, size_t n)
{
    uint32_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (lv[i].wild == '#') {
            s->count += !s->nodes[at].pound;
            s->nodes[at].pound = true;
            return 0;
        }
        uint32_t k;
        if (lv[i].wild == '+') {
            k = s->nodes[at].plus;
            if (!k && (k = node_new(s)) != 0)
                s->nodes[at].plus = k;
        } else {
            k = kid_get(s, at, lv[i].p, lv[i].len);
        }
        if (!k)
            return -ENOMEM;
        at = k;
    }
    s->count += !s->nodes[at].term;
    s->nodes[at].term = true;
    return 0;
}

/* Frozen, a set is only read for as long as its client stays connected: its nodes' kid lists
 * move into one array and every array shrinks to what it holds. A client's sets are then a
 * handful of blocks instead of one per trie node with room to grow (a 100-rule policy gave each
 * client ~18 KB in ~200 blocks, spread among the broker's other per-client memory). */
static void compact(struct rq_authz_set *s)
{
    size_t total = 0;
    for (uint32_t i = 0; i < s->n; i++)
        total += s->nodes[i].nkids;
    uint32_t *pool = total ? malloc(total * sizeof *pool) : NULL;
    if (!pool)
        return; /* no kids, or no memory: the set works as it is */
    for (uint32_t i = 0, off = 0; i < s->n; i++) {
        struct node *n = &s->nodes[i];
        if (n->nkids)
            memcpy(pool + off, n->kids, n->nkids * sizeof *pool);
        free(n->kids);
        n->kids = pool + off;
        n->kcap = n->nkids;
        off += n->nkids;
    }
    s->kid_pool = pool;
    struct node *nodes = realloc(s->nodes, s->n * sizeof *nodes);
    if (nodes) {
        s->nodes = nodes;
        s->cap = s->n;
    }
    uint8_t *names = s->names_len ? realloc(s->names, s->names_len) : NULL;
    if (names) {
        s->names = names;
        s->names_cap = s->names_len;
    }
}

int rq_authz_set_freeze(struct rq_authz_set *s)
{
    if (s->cur || s->kid_pool)
        return -EINVAL; /* frozen once */
    compact(s);
    s->cur = malloc(2 * (size_t)s->n * sizeof *s->cur);
    s->next = s->cur ? s->cur + s->n : NULL;
    return s->cur ? 0 : -ENOMEM;
}

size_t rq_authz_set_count(const struct rq_authz_set *s)
{
    return s->count;
}

/* One level of f against the live nodes cur[0..nc): the next live nodes into nxt (returned
 * count), or SIZE_MAX when a '#' of the set already covers the rest of f. */
static size_t step(const struct rq_authz_set *s, const uint32_t *cur, size_t nc, uint32_t *nxt,
                   const uint8_t *lv, size_t len, bool at_top, bool top_dollar)
{
    bool plus = rq_level_is_wild(lv, len, '+'), pound = rq_level_is_wild(lv, len, '#');
    size_t nn = 0;
    for (size_t i = 0; i < nc; i++) {
        const struct node *n = &s->nodes[cur[i]];
        if (n->pound && !top_dollar) /* '#' covers this level and all below, '#' too */
            return SIZE_MAX;
        if (pound) {
            /* a requested '#' is covered by an allowed '#' only; at the top also by '+/#':
             * there "#" stands for topics of one level or more, and so does "+/#" */
            if (at_top && n->plus && s->nodes[n->plus].pound && !top_dollar)
                return SIZE_MAX;
            continue;
        }
        if (n->plus && !top_dollar)
            nxt[nn++] = n->plus; /* '+' covers any one level, a requested '+' too */
        if (!plus) {
            uint32_t k = kid_find(s, cur[i], lv, len);
            if (k)
                nxt[nn++] = k;
        }
    }
    return nn;
}

bool rq_authz_set_covers(struct rq_authz_set *s, const uint8_t *f, size_t len)
{
    uint32_t *cur = s->cur, *nxt = s->next, *t;
    if (!cur || !nxt)
        return false; /* not frozen */
    size_t nc = 1;
    cur[0] = 0;
    for (size_t p = 0;;) {
        size_t e = rq_level_end(f, len, p);
        bool top_dollar = p == 0 && e > 0 && f[0] == '$'; /* [MQTT-4.7.2-1] */
        size_t nn = step(s, cur, nc, nxt, f + p, e - p, p == 0, top_dollar);
        if (nn == SIZE_MAX)
            return true;
        if (nn == 0)
            return false;
        t = cur;
        cur = nxt;
        nxt = t;
        nc = nn;
        if (e == len)
            break;
        p = e + 1;
    }
    /* f ended: a filter of the set ending here, or one going on with '#' (which also matches
     * its parent level [MQTT-4.7.1-2]), covers it */
    for (size_t i = 0; i < nc; i++)
        if (s->nodes[cur[i]].term || s->nodes[cur[i]].pound)
            return true;
    return false;
}
