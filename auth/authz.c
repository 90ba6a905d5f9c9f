/* BrokerAuthorization: compiling rules, matching principals, substituting tokens, the Connect
 * decision and the per-client access object (see authz.h). The filter sets themselves are
 * auth/authz_set.c. */
#include "auth/authz.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/authz_set.h"
#include "config/config.h"
#include "core/topic.h"

enum part_kind { P_LIT, P_PLUS, P_POUND, P_USER, P_CID, P_ATTR };

/* A topic level, or a segment of a Connect client id pattern. */
struct part {
    uint8_t kind;  /* enum part_kind */
    const char *s; /* P_LIT: the bytes (into the configuration); P_ATTR: the name (owned) */
    size_t len;
};

struct pattern {
    struct part *parts;
    size_t n;
    bool glob; /* client id: a trailing '*' (prefix match) */
};

struct crule {
    const struct rq_authz_rule *cfg;
    bool connect_any; /* a Connect resource without clientIds */
    struct pattern *ids, *pub, *sub;
    size_t n_ids, n_pub, n_sub;
};

struct key_rule {
    const char *key;
    uint32_t rule;
};

struct rq_authz {
    const struct rq_authz_cfg *cfg;
    struct crule *rules;
    size_t n_rules;
    struct key_rule *by_user, *by_cid; /* sorted by key */
    size_t n_user, n_cid;
    uint32_t *by_attr; /* rules with attribute maps, in order */
    size_t n_attr;
};

/* ---- compiling ------------------------------------------------------------------------------- */

/* The token starting at s (s[0] == '{', checked by the loader): its kind; *len its length. */
static int token(const char *s, size_t n, struct part *pt, size_t *len)
{
    const char *end = memchr(s, '}', n);
    if (!end)
        return -1;
    *len = (size_t)(end - s) + 1;
    static const char attr[] = "{principal.attributes.";
    if (*len == 20 && memcmp(s, "{principal.username}", 20) == 0) {
        pt->kind = P_USER;
    } else if (*len == 20 && memcmp(s, "{principal.clientId}", 20) == 0) {
        pt->kind = P_CID;
    } else if (*len > sizeof attr && memcmp(s, attr, sizeof attr - 1) == 0) {
        pt->kind = P_ATTR;
        pt->len = *len - sizeof attr; /* name without the closing '}' */
        if (!(pt->s = strndup(s + sizeof attr - 1, pt->len)))
            return -ENOMEM;
    } else {
        return -1;
    }
    return 0;
}

static int push_part(struct pattern *pt, struct part p)
{
    struct part *np = realloc(pt->parts, (pt->n + 1) * sizeof *np);
    if (!np)
        return -ENOMEM;
    pt->parts = np;
    pt->parts[pt->n++] = p;
    return 0;
}

#define MAX_LEVELS 512 /* the loader refuses topic patterns with more levels */

/* A topic: one part per level. -1: not a pattern the loader accepts; -ENOMEM. */
static int compile_topic(const char *t, struct pattern *pt)
{
    size_t n = strlen(t), levels = 1;
    for (size_t i = 0; i < n; i++)
        levels += t[i] == '/';
    if (levels > MAX_LEVELS || strncmp(t, "$share/", 7) == 0)
        return -1;
    for (size_t p = 0; p <= n;) {
        const char *slash = memchr(t + p, '/', n - p);
        size_t e = slash ? (size_t)(slash - t) : n, tl = 0;
        struct part part = {.kind = P_LIT, .s = t + p, .len = e - p};
        if (part.len == 1 && (t[p] == '+' || t[p] == '#'))
            part.kind = t[p] == '+' ? P_PLUS : P_POUND;
        else if (part.len && t[p] == '{') {
            int rc = token(t + p, e - p, &part, &tl);
            if (rc || tl != e - p) {
                if (!rc && part.kind == P_ATTR)
                    free((void *)part.s);
                return rc == -ENOMEM ? rc : -1;
            }
        } else if (memchr(part.s, '+', part.len) || memchr(part.s, '#', part.len)) {
            return -1; /* a wildcard inside a level */
        }
        int rc = push_part(pt, part);
        if (rc) {
            if (part.kind == P_ATTR)
                free((void *)part.s);
            return rc;
        }
        if (part.kind == P_POUND && e != n)
            return -1;
        p = e + 1;
    }
    return 0;
}

/* A Connect client id: literal runs and tokens; a trailing '*' sets glob. */
static int compile_client_id(const char *s, struct pattern *pt)
{
    size_t n = strlen(s);
    if (n && s[n - 1] == '*') {
        pt->glob = true;
        n--;
    }
    for (size_t i = 0; i < n;) {
        struct part part = {.kind = P_LIT, .s = s + i};
        size_t len = 0;
        if (s[i] == '{') {
            int rc = token(s + i, n - i, &part, &len);
            if (rc)
                return rc;
        } else {
            const char *b = memchr(s + i, '{', n - i);
            len = b ? (size_t)(b - (s + i)) : n - i;
            part.len = len;
        }
        int rc = push_part(pt, part);
        if (rc) {
            if (part.kind == P_ATTR)
                free((void *)part.s);
            return rc;
        }
        i += len;
    }
    return 0;
}

static void pattern_free(struct pattern *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->parts[i].kind == P_ATTR)
            free((void *)p->parts[i].s);
    free(p->parts);
}

static void patterns_free(struct pattern *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pattern_free(&p[i]);
    free(p);
}

/* Appends the compiled patterns of resource r to *arr (count *n). */
static int add_patterns(const struct rq_authz_resource *r, struct pattern **arr, size_t *n)
{
    struct pattern *na = realloc(*arr, (*n + r->n_patterns) * sizeof *na);
    if (!na && *n + r->n_patterns)
        return -ENOMEM;
    *arr = na;
    for (size_t i = 0; i < r->n_patterns; i++) {
        struct pattern *pt = &na[(*n)++];
        memset(pt, 0, sizeof *pt);
        int rc = r->method == RQ_AUTHZ_CONNECT ? compile_client_id(r->patterns[i], pt)
                                               : compile_topic(r->patterns[i], pt);
        if (rc)
            return rc;
    }
    return 0;
}

static int compile_rule(const struct rq_authz_rule *r, struct crule *c)
{
    c->cfg = r;
    for (size_t i = 0; i < r->n_resources; i++) {
        const struct rq_authz_resource *res = &r->resources[i];
        int rc = 0;
        switch (res->method) {
        case RQ_AUTHZ_CONNECT:
            c->connect_any |= res->n_patterns == 0;
            rc = add_patterns(res, &c->ids, &c->n_ids);
            break;
        case RQ_AUTHZ_PUBLISH: rc = add_patterns(res, &c->pub, &c->n_pub); break;
        default: rc = add_patterns(res, &c->sub, &c->n_sub); break;
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    const struct key_rule *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->rule > y->rule) - (x->rule < y->rule);
}

/* The principal index: usernames and client ids to rules, rules with attribute maps. */
static int build_index(struct rq_authz *z)
{
    size_t nu = 0, nc = 0;
    for (size_t i = 0; i < z->n_rules; i++) {
        nu += z->rules[i].cfg->n_usernames;
        nc += z->rules[i].cfg->n_client_ids;
    }
    z->by_user = calloc(nu ? nu : 1, sizeof *z->by_user);
    z->by_cid = calloc(nc ? nc : 1, sizeof *z->by_cid);
    z->by_attr = calloc(z->n_rules ? z->n_rules : 1, sizeof *z->by_attr);
    if (!z->by_user || !z->by_cid || !z->by_attr)
        return -ENOMEM;
    for (uint32_t i = 0; i < z->n_rules; i++) {
        const struct rq_authz_rule *r = z->rules[i].cfg;
        for (size_t j = 0; j < r->n_usernames; j++)
            z->by_user[z->n_user++] = (struct key_rule){r->usernames[j], i};
        for (size_t j = 0; j < r->n_client_ids; j++)
            z->by_cid[z->n_cid++] = (struct key_rule){r->client_ids[j], i};
        if (r->n_attr_sets)
            z->by_attr[z->n_attr++] = i;
    }
    qsort(z->by_user, z->n_user, sizeof *z->by_user, key_cmp);
    qsort(z->by_cid, z->n_cid, sizeof *z->by_cid, key_cmp);
    return 0;
}

struct rq_authz *rq_authz_compile(const struct rq_authz_cfg *cfg, char *err, size_t errlen)
{
    struct rq_authz *z = calloc(1, sizeof *z);
    if (!z || !(z->rules = calloc(cfg->n_rules ? cfg->n_rules : 1, sizeof *z->rules))) {
        free(z);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    z->cfg = cfg;
    for (size_t i = 0; i < cfg->n_rules; i++) {
        z->n_rules++;
        int rc = compile_rule(&cfg->rules[i], &z->rules[i]);
        if (rc) {
            snprintf(err, errlen, "BrokerAuthorization %s, rule at %s: %s", cfg->name,
                     cfg->rules[i].origin ? cfg->rules[i].origin : "?",
                     rc == -ENOMEM ? "out of memory" : "a pattern does not compile");
            rq_authz_free(z);
            return NULL;
        }
    }
    if (build_index(z)) {
        snprintf(err, errlen, "out of memory");
        rq_authz_free(z);
        return NULL;
    }
    return z;
}

void rq_authz_free(struct rq_authz *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < z->n_rules; i++) {
        patterns_free(z->rules[i].ids, z->rules[i].n_ids);
        patterns_free(z->rules[i].pub, z->rules[i].n_pub);
        patterns_free(z->rules[i].sub, z->rules[i].n_sub);
    }
    free(z->rules);
    free(z->by_user);
    free(z->by_cid);
    free(z->by_attr);
    free(z);
}

const char *rq_authz_name(const struct rq_authz *z)
{
    return z->cfg->name;
}

/* ---- one client ------------------------------------------------------------------------------ */

/* What a client is, for matching and substitution. */
struct who {
    const struct rq_principal *p;
    const uint8_t *cid;
    size_t cid_len; /* cid is not NUL-terminated */
};

/* Marks in on[] the rules whose key list holds key. */
static void mark_key(const struct key_rule *a, size_t n, const char *key, size_t klen, bool *on)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* first entry >= key */
        size_t mid = lo + (hi - lo) / 2;
        size_t ml = strlen(a[mid].key);
        int c = memcmp(a[mid].key, key, ml < klen ? ml : klen);
        if (c < 0 || (c == 0 && ml < klen))
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < n && strlen(a[lo].key) == klen && memcmp(a[lo].key, key, klen) == 0; lo++)
        on[a[lo].rule] = true;
}

static bool attrs_hold(const struct rq_authz_rule *r, const struct rq_principal *p)
{
    for (size_t i = 0; p && i < r->n_attr_sets; i++) {
        const struct rq_authz_attrs *set = &r->attr_sets[i];
        bool all = true;
        for (size_t j = 0; j < set->n_attrs && all; j++) {
            const char *v = rq_principal_attr(p, set->attrs[j].key);
            all = v && strcmp(v, set->attrs[j].value) == 0;
        }
        if (all)
            return true;
    }
    return false;
}

/* The value a token stands for (bytes, *len), or NULL when missing or empty. */
static const char *value_of(const struct who *w, const struct part *pt, size_t *len)
{
    const char *v = NULL;
    switch (pt->kind) {
    case P_USER: v = w->p ? w->p->username : NULL; break;
    case P_ATTR: v = w->p ? rq_principal_attr(w->p, pt->s) : NULL; break;
    case P_CID: *len = w->cid_len; return w->cid_len ? (const char *)w->cid : NULL;
    default: return NULL;
    }
    *len = v ? strlen(v) : 0;
    return *len ? v : NULL;
}

/* Does the Connect client id pattern match w's client id? */
static bool id_matches(const struct who *w, const struct pattern *pt)
{
    size_t off = 0;
    for (size_t i = 0; i < pt->n; i++) {
        const struct part *p = &pt->parts[i];
        size_t len = p->len;
        const char *s = p->kind == P_LIT ? p->s : value_of(w, p, &len);
        if (!s && p->kind != P_LIT)
            return false; /* a missing value matches nothing */
        if (len > w->cid_len - off || (len && memcmp(w->cid + off, s, len) != 0))
            return false;
        off += len;
    }
    return pt->glob || off == w->cid_len;
}

static bool connect_allowed(const struct crule *r, const struct who *w)
{
    if (r->connect_any)
        return true;
    for (size_t i = 0; i < r->n_ids; i++)
        if (id_matches(w, &r->ids[i]))
            return true;
    return false;
}

/* Adds pattern pt, substituted for w, to set s. A missing value, or one that holds '/', '+' or
 * '#', leaves the pattern out: it could not match any topic. So does a value starting with '$'
 * as the first level: "{principal.clientId}/#" is a client's own tree, and a client that picks
 * the client id "$SYS" must not get the broker's $SYS/# through it (a wildcard there would not
 * match '$' topics either [MQTT-4.7.2-1]). 0 or -ENOMEM. */
static int add_substituted(struct rq_authz_set *s, const struct pattern *pt, const struct who *w)
{
    struct rq_authz_level lv[MAX_LEVELS];
    if (pt->n > MAX_LEVELS)
        return 0;
    for (size_t i = 0; i < pt->n; i++) {
        const struct part *p = &pt->parts[i];
        lv[i] = (struct rq_authz_level){.p = (const uint8_t *)p->s, .len = p->len};
        if (p->kind == P_PLUS || p->kind == P_POUND) {
            lv[i].wild = p->kind == P_PLUS ? '+' : '#';
        } else if (p->kind != P_LIT) {
            size_t len = 0;
            const char *v = value_of(w, p, &len);
            if (!v || memchr(v, '/', len) || memchr(v, '+', len) || memchr(v, '#', len) ||
                (i == 0 && v[0] == '$'))
                return 0;
            lv[i].p = (const uint8_t *)v;
            lv[i].len = len;
        }
    }
    return rq_authz_set_add(s, lv, pt->n);
}

/* authorizationPolicies.cache: the client's last PUBLISH decision is remembered. A publisher
 * mostly sends to the same topic, and the trie walk of a policy with many rules touches nodes
 * that other clients' traffic has pushed out of the CPU cache (~6 % of the broker's CPU with a
 * 100-rule policy at 40,000 msg/s, bench/README.md). Exact: the sets of one access object never
 * change, and re-authentication builds a new access object (with an empty cache). */
#define LAST_TOPIC_MAX 120

struct client_access {
    struct rq_access base;
    struct rq_authz_set *pub, *sub;
    bool cache;
    bool last_ok;
    uint16_t last_len; /* 0: nothing remembered */
    uint8_t last[LAST_TOPIC_MAX];
};

static bool may_publish(struct rq_access *a, const uint8_t *t, size_t len)
{
    struct client_access *ca = (struct client_access *)a;
    if (ca->cache && len && len == ca->last_len && memcmp(ca->last, t, len) == 0)
        return ca->last_ok;
    bool ok = rq_authz_set_covers(ca->pub, t, len);
    if (ca->cache && len && len <= LAST_TOPIC_MAX) {
        memcpy(ca->last, t, len);
        ca->last_len = (uint16_t)len;
        ca->last_ok = ok;
    }
    return ok;
}

static bool may_subscribe(struct rq_access *a, const uint8_t *f, size_t len)
{
    const uint8_t *g, *inner;
    size_t glen, ilen;
    if (rq_topic_split_shared(f, len, &g, &glen, &inner, &ilen)) { /* checked on FILTER */
        f = inner;
        len = ilen;
    }
    return rq_authz_set_covers(((struct client_access *)a)->sub, f, len);
}

static void access_free(struct rq_access *a)
{
    struct client_access *ca = (struct client_access *)a;
    rq_authz_set_free(ca->pub);
    rq_authz_set_free(ca->sub);
    free(ca);
}

static const struct rq_access_ops access_ops = {
    .publish = may_publish,
    .subscribe = may_subscribe,
    .free = access_free,
};

/* Fills ca's sets from the rules marked in on[]; *connect: one of them allows Connect. */
static int build_sets(const struct rq_authz *z, const bool *on, const struct who *w,
                      struct client_access *ca, bool *connect)
{
    *connect = false;
    for (size_t i = 0; i < z->n_rules; i++) {
        if (!on[i])
            continue;
        const struct crule *r = &z->rules[i];
        *connect = *connect || connect_allowed(r, w);
        for (size_t j = 0; j < r->n_pub; j++)
            if (add_substituted(ca->pub, &r->pub[j], w))
                return -ENOMEM;
        for (size_t j = 0; j < r->n_sub; j++)
            if (add_substituted(ca->sub, &r->sub[j], w))
                return -ENOMEM;
    }
    if (rq_authz_set_freeze(ca->pub) || rq_authz_set_freeze(ca->sub))
        return -ENOMEM;
    return 0;
}

int rq_authz_client(const struct rq_authz *z, const struct rq_principal *p, const uint8_t *cid,
                    size_t cid_len, struct rq_access **out, char *why, size_t whylen)
{
    *out = NULL;
    struct who w = {.p = p, .cid = cid, .cid_len = cid_len};
    bool *on = calloc(z->n_rules ? z->n_rules : 1, sizeof *on);
    struct client_access *ca = calloc(1, sizeof *ca);
    if (!on || !ca || !(ca->pub = rq_authz_set_new()) || !(ca->sub = rq_authz_set_new())) {
        free(on);
        if (ca)
            access_free(&ca->base);
        return RQ_AUTHZ_NOMEM;
    }
    ca->base.ops = &access_ops;
    ca->cache = z->cfg->cache;
    if (p && p->username)
        mark_key(z->by_user, z->n_user, p->username, strlen(p->username), on);
    mark_key(z->by_cid, z->n_cid, (const char *)cid, cid_len, on);
    for (size_t i = 0; i < z->n_attr; i++)
        on[z->by_attr[i]] = on[z->by_attr[i]] || attrs_hold(z->rules[z->by_attr[i]].cfg, p);
    bool connect;
    int rc = build_sets(z, on, &w, ca, &connect);
    free(on);
    if (rc) {
        access_free(&ca->base);
        return RQ_AUTHZ_NOMEM;
    }
    if (!connect) {
        snprintf(why, whylen,
                 "not authorized to connect: no rule of BrokerAuthorization '%s' "
                 "grants Connect to this principal and client id",
                 z->cfg->name);
        access_free(&ca->base);
        return RQ_AUTHZ_DENIED;
    }
    *out = &ca->base;
    return RQ_AUTHZ_OK;
}

/* ---- comparing policies (reload) ------------------------------------------------------------ */

static bool strs_same(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

/* One attribute map: the same keys with the same values, in any order (a map's keys are
 * unique, the loader refuses duplicates; all must hold either way). */
static bool attrs_same(const struct rq_authz_attrs *a, const struct rq_authz_attrs *b)
{
    if (a->n_attrs != b->n_attrs)
        return false;
    for (size_t i = 0; i < a->n_attrs; i++) {
        size_t j = 0;
        while (j < b->n_attrs && strcmp(a->attrs[i].key, b->attrs[j].key) != 0)
            j++;
        if (j == b->n_attrs || a->attrs[i].len != b->attrs[j].len ||
            memcmp(a->attrs[i].value, b->attrs[j].value, a->attrs[i].len) != 0)
            return false;
    }
    return true;
}

static bool rule_same(const struct rq_authz_rule *a, const struct rq_authz_rule *b)
{
    if (!strs_same(a->usernames, a->n_usernames, b->usernames, b->n_usernames) ||
        !strs_same(a->client_ids, a->n_client_ids, b->client_ids, b->n_client_ids) ||
        a->n_attr_sets != b->n_attr_sets || a->n_resources != b->n_resources)
        return false;
    for (size_t i = 0; i < a->n_attr_sets; i++)
        if (!attrs_same(&a->attr_sets[i], &b->attr_sets[i]))
            return false;
    for (size_t i = 0; i < a->n_resources; i++)
        if (a->resources[i].method != b->resources[i].method ||
            !strs_same(a->resources[i].patterns, a->resources[i].n_patterns,
                       b->resources[i].patterns, b->resources[i].n_patterns))
            return false;
    return true;
}

bool rq_authz_cfg_same(const struct rq_authz_cfg *a, const struct rq_authz_cfg *b)
{
    if (!a || !b)
        return a == b;
    if (strcmp(a->name, b->name) != 0 || a->cache != b->cache || a->n_rules != b->n_rules)
        return false;
    for (size_t i = 0; i < a->n_rules; i++)
        if (!rule_same(&a->rules[i], &b->rules[i]))
            return false;
    return true;
}
