/* The ServiceAccountToken method: checks, single flights and their answers. See sat.h for the
 * rules; sat_job.c holds the HTTP requests. */
#include "auth/sat_int.h"

#include "auth/custom_msg.h" /* rq_rfc3339_format */
#include "core/log.h"
#include "core/stats.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An ALLOW for a token without exp (legacy secret tokens) is kept this long. */
#define NO_EXP_CACHE_S 60
/* ServiceAccount annotations: kept (stale after annotationCacheSeconds) this long. */
#define SA_KEEP_S 3600

uint64_t rq_sat_requests(void)
{
    return atomic_load(&rq_sat_n_requests);
}

/* ---- the method state ------------------------------------------------------------------- */

struct rq_sat_method *rq_sat_method_new(struct rq_kube *kube, char *const *auds, size_t n_auds,
                                        bool local_fallback)
{
    struct rq_sat_method *m = calloc(1, sizeof *m);
    if (!m || !(m->auds = calloc(n_auds ? n_auds : 1, sizeof *m->auds)) ||
        (local_fallback && !(m->jw = rq_sat_jwks_new()))) {
        if (m)
            free(m->auds);
        free(m);
        return NULL;
    }
    atomic_init(&m->refs, 1);
    for (size_t i = 0; i < n_auds; i++, m->n_auds++) {
        if (!(m->auds[i] = strdup(auds[i]))) {
            rq_sat_method_release(m);
            return NULL;
        }
    }
    rq_kube_ref(kube);
    m->kube = kube;
    return m;
}

void rq_sat_method_start(struct rq_sat_method *m, struct rq_sat_ctx *ctx)
{
    rq_sat_jwks_maybe_refresh(m, ctx, (int64_t)time(NULL));
}

void rq_sat_method_ref(struct rq_sat_method *m)
{
    atomic_fetch_add(&m->refs, 1);
}

void rq_sat_method_release(struct rq_sat_method *m)
{
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    for (size_t i = 0; i < m->n_auds; i++)
        free(m->auds[i]);
    free(m->auds);
    rq_sat_jwks_free(m->jw);
    rq_kube_release(m->kube);
    free(m);
}

/* ---- keys ------------------------------------------------------------------------------- */

static void hash_field(wc_Sha256 *h, const void *p, size_t len)
{
    uint8_t l[8];
    for (int i = 0; i < 8; i++)
        l[i] = (uint8_t)((uint64_t)len >> (8 * i));
    wc_Sha256Update(h, l, sizeof l);
    if (len)
        wc_Sha256Update(h, p, (word32)len);
}

/* tag, then each part with its length: no two different inputs hash the same bytes. */
static int make_key(uint8_t out[RQ_SAT_KEY], const char *tag, char *const *parts, size_t n,
                    const void *last, size_t last_len)
{
    wc_Sha256 h;
    if (wc_InitSha256(&h) != 0)
        return -1;
    hash_field(&h, tag, strlen(tag));
    for (size_t i = 0; i < n; i++)
        hash_field(&h, parts[i], strlen(parts[i]));
    hash_field(&h, last, last_len);
    int rc = wc_Sha256Final(&h, out);
    wc_Sha256Free(&h);
    return rc == 0 ? 0 : -1;
}

/* ---- flights ------------------------------------------------------------------------------ */

struct sat_flight *rq_sat_flight_new(int kind, struct rq_sat_ctx *ctx, struct rq_sat_method *m)
{
    struct sat_flight *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->kind = kind;
    f->ctx = ctx;
    rq_sat_method_ref(m);
    f->m = m;
    rq_authn_outcome_init(&f->o);
    return f;
}

static struct sat_flight *flight_new(int kind, struct rq_sat_ctx *ctx, struct rq_sat_method *m,
                                     const uint8_t key[RQ_SAT_KEY])
{
    struct sat_flight *f = rq_sat_flight_new(kind, ctx, m);
    if (f)
        memcpy(f->key, key, RQ_SAT_KEY);
    return f;
}

void rq_sat_flight_free(struct sat_flight *f)
{
    rq_jwks_free(f->keys);
    if (f->token) {
        explicit_bzero(f->token, f->token_len);
        free(f->token);
    }
    rq_authn_outcome_free(&f->o);
    rq_sat_method_release(f->m);
    free(f);
}

/* The ALLOW line's text: attributes and expiry (core logs it after the user name). */
static void describe_allow(struct rq_authn_outcome *o, bool cached)
{
    const struct rq_principal *p = &o->principal;
    char buf[sizeof o->why], when[32];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s", p->n_attrs ? "attributes" : "no attributes");
    for (size_t i = 0; i < p->n_attrs && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s=%s", i ? ", " : " ", p->keys[i],
                              p->values[i]);
    if (p->expiry && n < sizeof buf && rq_rfc3339_format(p->expiry, when, sizeof when) > 0)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "; expires %s", when);
    if (cached && n < sizeof buf)
        snprintf(buf + n, sizeof buf - n, " (cached)");
    memcpy(o->why, buf, sizeof o->why);
}

/* How long a token's result may be kept: 0 = not at all. */
static int64_t keep_until(const struct rq_sat_ctx *ctx, const struct rq_authn_outcome *o,
                          int64_t now)
{
    if (o->verdict == RQ_AUTHN_ALLOW)
        return o->principal.expiry ? o->principal.expiry : now + NO_EXP_CACHE_S;
    if (o->verdict == RQ_AUTHN_DENY && o->reason == 0x87 && ctx->negative_s)
        return now + ctx->negative_s;
    return 0; /* transport errors, RBAC, 5xx: never cached */
}

/* A waiter's b: its chain position, and this bit when it re-authenticates. */
#define REAUTH_BIT (1ull << 63)

void rq_sat_reauth_outcome(struct rq_authn_outcome *o)
{
    /* could not decide now (API unreachable, RBAC, busy): AUTH 0x18, the connection stays */
    if (o->verdict == RQ_AUTHN_DENY && (o->reason == 0x88 || o->reason == 0x89))
        o->verdict = RQ_AUTHN_NOT_RELEVANT;
}

/* Sends each waiter its own copy of o (the last one gets o itself). Consumes w and o. */
static void deliver_all(struct rq_sat_ctx *ctx, struct rq_sat_waiter *w, size_t n,
                        struct rq_authn_outcome *o)
{
    for (size_t i = 0; i < n; i++) {
        struct rq_authn_outcome copy;
        rq_authn_outcome_init(&copy);
        if (i + 1 == n) {
            copy = *o;
            rq_authn_outcome_init(o);
        } else {
            copy.verdict = o->verdict;
            copy.reason = o->reason;
            copy.method = o->method;
            memcpy(copy.why, o->why, sizeof copy.why);
            const struct rq_principal *p = &o->principal;
            copy.principal.expiry = p->expiry;
            bool oom = p->username && !(copy.principal.username = strdup(p->username));
            for (size_t a = 0; !oom && a < p->n_attrs; a++)
                oom = rq_principal_add_attr(&copy.principal, p->keys[a], p->values[a]) != 0;
            if (oom)
                rq_sat_unavailable(&copy, "out of memory");
        }
        bool reauth = (w[i].b & REAUTH_BIT) != 0;
        if (reauth)
            rq_sat_reauth_outcome(&copy);
        ctx->deliver(w[i].a, (size_t)(w[i].b & ~REAUTH_BIT), reauth, &copy);
        rq_authn_outcome_free(&copy);
    }
    free(w);
    rq_authn_outcome_free(o);
}

/* The token flight f ended with o (consumed): cache it and answer everyone waiting. */
static void token_landed(struct sat_flight *f, struct rq_authn_outcome *o)
{
    struct rq_sat_ctx *ctx = f->ctx;
    int64_t now = (int64_t)time(NULL);
    o->method = "ServiceAccountToken";
    if (o->verdict == RQ_AUTHN_ALLOW && !f->no_cache) /* local answers describe themselves */
        describe_allow(o, false);
    size_t n = 0;
    struct rq_sat_waiter *w = rq_sat_cache_land(ctx->cache, f->key, o, now,
                                                f->no_cache ? 0 : keep_until(ctx, o, now), &n);
    rq_sat_flight_free(f);
    deliver_all(ctx, w, n, o);
}

/* The review of f allowed; the ServiceAccount's answer sa (ALLOW with the attributes, or a
 * DENY) completes it. */
static void token_with_sa(struct sat_flight *f, const struct rq_authn_outcome *sa)
{
    struct rq_authn_outcome o = f->o;
    rq_authn_outcome_init(&f->o);
    if (sa->verdict != RQ_AUTHN_ALLOW) {
        rq_authn_outcome_free(&o);
        o.verdict = sa->verdict;
        o.reason = sa->reason;
        memcpy(o.why, sa->why, sizeof o.why);
    } else {
        for (size_t i = 0; i < sa->principal.n_attrs; i++)
            if (rq_principal_add_attr(&o.principal, sa->principal.keys[i],
                                      sa->principal.values[i]) != 0) {
                rq_sat_unavailable(&o, "out of memory");
                break;
            }
    }
    token_landed(f, &o);
}

/* The SA flight s ended with o (consumed): cache, then complete every token flight on it. */
static void sa_landed(struct sat_flight *s, struct rq_authn_outcome *o)
{
    struct rq_sat_ctx *ctx = s->ctx;
    int64_t now = (int64_t)time(NULL);
    /* annotations are fresh for sa_cache_s (principal.expiry holds that time) and kept
     * SA_KEEP_S, stale: a cached token keeps its attributes while the API cannot be asked */
    int64_t until = keep_until(ctx, o, now);
    if (o->verdict == RQ_AUTHN_ALLOW) {
        o->principal.expiry = now + ctx->sa_cache_s;
        until = now + (ctx->sa_cache_s > SA_KEEP_S ? ctx->sa_cache_s : SA_KEEP_S);
    }
    if (s->refresh) {
        if (until)
            rq_sat_cache_put(ctx->cache, s->key, o, now, until);
        rq_authn_outcome_free(o);
        rq_sat_flight_free(s);
        return;
    }
    size_t n = 0;
    struct rq_sat_waiter *w = rq_sat_cache_land(ctx->cache, s->key, o, now, until, &n);
    for (size_t i = 0; i < n; i++)
        if (w[i].a) /* 0: a refresh nobody waits for (fresh_attributes) */
            token_with_sa((struct sat_flight *)(uintptr_t)w[i].a, o);
    free(w);
    rq_authn_outcome_free(o);
    rq_sat_flight_free(s);
}

/* Submits f's job; on failure f lands with Server unavailable / busy. */
void rq_sat_launch(struct sat_flight *f)
{
    const char *why = "out of memory";
    struct rq_auth_job *job =
        f->kind == FLIGHT_TOKEN ? rq_sat_job_review(f, &why) : rq_sat_job_sa(f, &why);
    int rc = job ? rq_auth_pool_submit(f->ctx->pool, job, (uint64_t)(uintptr_t)f) : -ENOMEM;
    if (rc == 0)
        return;
    if (job)
        job->ops->free(job);
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    rq_sat_unavailable(&o, "%s",
                       rc == -EBUSY       ? "too many authentication requests pending"
                       : rc == -ESHUTDOWN ? "the authentication service pool is stopping"
                                          : why);
    if (rc == -EBUSY)
        o.reason = 0x89; /* Server busy; 3.1.1: return code 3 */
    if (f->kind == FLIGHT_TOKEN)
        token_landed(f, &o);
    else if (f->kind == FLIGHT_SA)
        sa_landed(f, &o);
    else {
        rq_sat_jwks_landed(f, &o);
        rq_authn_outcome_free(&o);
    }
}

static int sa_key_of(const char *ns, const char *name, uint8_t key[RQ_SAT_KEY])
{
    char *parts[] = {(char *)ns};
    return make_key(key, "sa", parts, 1, name, strlen(name));
}

static int sa_key(const struct sat_flight *f, uint8_t key[RQ_SAT_KEY])
{
    return sa_key_of(f->ns, f->name, key);
}

/* A read of ns/name's annotations that replaces their stale cached entry when it lands. */
static void revalidate(struct rq_sat_method *m, struct rq_sat_ctx *ctx, const uint8_t *key,
                       const char *ns, const char *name)
{
    struct sat_flight *s = flight_new(FLIGHT_SA, ctx, m, key);
    if (!s)
        return;
    s->refresh = true;
    snprintf(s->ns, sizeof s->ns, "%s", ns);
    snprintf(s->name, sizeof s->name, "%s", name);
    rq_sat_launch(s);
}

/* The review of f allowed (o): read (or wait for) its ServiceAccount's annotations. */
static void need_sa(struct sat_flight *f, struct rq_authn_outcome *o)
{
    uint8_t key[RQ_SAT_KEY];
    f->o = *o;
    rq_authn_outcome_init(o);
    struct rq_authn_outcome sa;
    rq_authn_outcome_init(&sa);
    if (sa_key(f, key) != 0) {
        rq_sat_unavailable(&sa, "hash failed");
        return token_with_sa(f, &sa);
    }
    struct rq_sat_waiter w = {(uint64_t)(uintptr_t)f, 0};
    int64_t now = (int64_t)time(NULL);
    int rc = rq_sat_cache_begin(f->ctx->cache, key, now, &w, &sa);
    if (rc == RQ_SAT_JOINED)
        return;
    if (rc == RQ_SAT_LEAD) {
        struct sat_flight *s = flight_new(FLIGHT_SA, f->ctx, f->m, key);
        if (s) {
            memcpy(s->ns, f->ns, sizeof s->ns);
            memcpy(s->name, f->name, sizeof s->name);
            return rq_sat_launch(s);
        }
        /* cannot run it: answer the flight (us and whoever joined) */
        rq_sat_unavailable(&sa, "out of memory");
        size_t n = 0;
        struct rq_sat_waiter *ws = rq_sat_cache_land(f->ctx->cache, key, &sa, 0, 0, &n);
        for (size_t i = 0; i < n; i++)
            if (ws[i].a)
                token_with_sa((struct sat_flight *)(uintptr_t)ws[i].a, &sa);
        free(ws);
        rq_authn_outcome_free(&sa);
        return;
    }
    if (rc != RQ_SAT_HIT)
        rq_sat_unavailable(&sa, "out of memory");
    else if (sa.verdict == RQ_AUTHN_ALLOW &&
             rq_sat_cache_claim_refresh(f->ctx->cache, key, now, now + f->ctx->sa_cache_s))
        revalidate(f->m, f->ctx, key, f->ns, f->name); /* stale: used now, read again */
    token_with_sa(f, &sa);
    rq_authn_outcome_free(&sa);
}

/* TokenReview could not be reached and the method has localVerification: Fallback: the
 * issuer's keys decide (never cached); attributes from the ServiceAccount's cached annotations
 * when there are some. */
static void local_fallback(struct sat_flight *f, struct rq_authn_outcome *o)
{
    if (!rq_sat_jwks_verify(f, o))
        return; /* no keys: Server unavailable stays */
    f->no_cache = true;
    uint8_t key[RQ_SAT_KEY];
    struct rq_authn_outcome sa;
    rq_authn_outcome_init(&sa);
    if (o->verdict == RQ_AUTHN_ALLOW && sa_key(f, key) == 0 &&
        rq_sat_cache_get(f->ctx->cache, key, (int64_t)time(NULL), &sa) == 1 &&
        sa.verdict == RQ_AUTHN_ALLOW)
        for (size_t i = 0; i < sa.principal.n_attrs; i++)
            if (rq_principal_add_attr(&o->principal, sa.principal.keys[i],
                                      sa.principal.values[i]) != 0)
                break;
    rq_authn_outcome_free(&sa);
    if (o->verdict == RQ_AUTHN_ALLOW) {
        describe_allow(o, false);
        size_t n = strnlen(o->why, sizeof o->why);
        snprintf(o->why + n, sizeof o->why - n, " (verified locally: TokenReview unreachable)");
    }
}

int rq_sat_pool_done(void *ctx, uint64_t tag, struct rq_authn_outcome *o, bool last)
{
    (void)ctx;
    (void)last;
    struct sat_flight *f = (struct sat_flight *)(uintptr_t)tag;
    if (o->verdict == RQ_AUTHN_NOT_RELEVANT) { /* the pool's own failures: timeout, shutdown */
        f->unreachable = true;
        rq_sat_unavailable(o, "%s", o->why[0] ? o->why : "request failed");
    }
    if (f->kind == FLIGHT_DISCOVERY || f->kind == FLIGHT_JWKS) {
        rq_sat_jwks_landed(f, o);
    } else if (f->kind == FLIGHT_SA) {
        sa_landed(f, o);
    } else if (o->verdict == RQ_AUTHN_ALLOW) {
        need_sa(f, o);
    } else {
        if (f->unreachable && f->m->jw)
            local_fallback(f, o);
        token_landed(f, o);
    }
    rq_auth_outcome_release(o); /* emptied above */
    return 0;
}

/* ---- attributes of a cached token ----------------------------------------------------------- */

/* Starts a read of ns/name's annotations that nobody waits for (the next CONNECT gets them). */
static void refresh_sa(struct rq_sat_method *m, struct rq_sat_ctx *ctx, const uint8_t *key,
                       const char *ns, const char *name, int64_t now)
{
    struct rq_sat_waiter none = {0, 0};
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    int rc = rq_sat_cache_begin(ctx->cache, key, now, &none, &o);
    rq_authn_outcome_free(&o);
    if (rc != RQ_SAT_LEAD)
        return;
    struct sat_flight *s = flight_new(FLIGHT_SA, ctx, m, key);
    if (s) {
        snprintf(s->ns, sizeof s->ns, "%s", ns);
        snprintf(s->name, sizeof s->name, "%s", name);
        return rq_sat_launch(s);
    }
    rq_sat_unavailable(&o, "out of memory");
    size_t n = 0;
    struct rq_sat_waiter *w = rq_sat_cache_land(ctx->cache, key, &o, 0, 0, &n);
    for (size_t i = 0; i < n; i++)
        if (w[i].a)
            token_with_sa((struct sat_flight *)(uintptr_t)w[i].a, &o);
    free(w);
    rq_authn_outcome_free(&o);
}

/* A cached ALLOW keeps its token's verdict until exp, but its attributes follow the service
 * account's annotations as cached now: an entry replaces them (a stale one, older than
 * sa_cache_s, is also read again in the background: stale-while-revalidate), a cached 404 (the
 * account is gone) denies, none starts a read and keeps the token's attributes this time. */
static int64_t fresh_attributes(struct rq_sat_method *m, struct rq_sat_ctx *ctx,
                                struct rq_authn_outcome *o, int64_t now)
{
    int64_t synced = 0; /* the annotation entry's refresh time when it was fresh, else 0 */
    static const char pre[] = "system:serviceaccount:";
    const char *u = o->principal.username, *colon;
    char ns[64], name[254];
    uint8_t key[RQ_SAT_KEY];
    if (!u || strncmp(u, pre, sizeof pre - 1) != 0 || !(colon = strchr(u + sizeof pre - 1, ':')) ||
        (size_t)(colon - u) - (sizeof pre - 1) >= sizeof ns || strlen(colon + 1) >= sizeof name)
        return 0;
    snprintf(ns, sizeof ns, "%.*s", (int)(colon - u - (sizeof pre - 1)), u + sizeof pre - 1);
    snprintf(name, sizeof name, "%s", colon + 1);
    if (sa_key_of(ns, name, key) != 0)
        return 0;
    struct rq_authn_outcome sa;
    rq_authn_outcome_init(&sa);
    int rc = rq_sat_cache_get(ctx->cache, key, now, &sa);
    if (rc == 0) {
        refresh_sa(m, ctx, key, ns, name, now);
    } else if (rc == 1 && sa.verdict == RQ_AUTHN_ALLOW) {
        if (rq_sat_cache_claim_refresh(ctx->cache, key, now, now + ctx->sa_cache_s))
            revalidate(m, ctx, key, ns, name);
        else if (sa.principal.expiry > now)
            synced = sa.principal.expiry; /* fresh: no need to look again before then */
        struct rq_principal *p = &o->principal;
        for (size_t i = 0; i < p->n_attrs; i++) {
            free(p->keys[i]);
            free(p->values[i]);
        }
        p->n_attrs = 0;
        for (size_t i = 0; i < sa.principal.n_attrs; i++)
            if (rq_principal_add_attr(p, sa.principal.keys[i], sa.principal.values[i]) != 0) {
                rq_sat_unavailable(o, "out of memory");
                synced = 0;
                break;
            }
    } else if (rc == 1) {
        rq_authn_outcome_free(o);
        rq_authn_outcome_init(o);
        o->verdict = RQ_AUTHN_DENY;
        o->reason = sa.reason >= 0x80 ? sa.reason : 0x87;
        memcpy(o->why, sa.why, sizeof o->why);
    }
    rq_authn_outcome_free(&sa);
    return synced;
}

/* ---- the check ------------------------------------------------------------------------------ */

/* Opens the token flight we lead: PENDING, or (submit failed) our own answer in o. */
static void lead(struct rq_sat_method *m, struct rq_sat_ctx *ctx, const uint8_t key[RQ_SAT_KEY],
                 const uint8_t *tok, size_t len, const struct rq_sat_waiter *self,
                 struct rq_authn_outcome *o)
{
    struct sat_flight *f = flight_new(FLIGHT_TOKEN, ctx, m, key);
    if (f && (f->token = malloc(len + 1))) {
        memcpy(f->token, tok, len);
        f->token[len] = '\0';
        f->token_len = len;
        /* launch lands the flight itself when it cannot submit: then our own answer comes
         * through deliver like everybody's; the chain sees PENDING either way. */
        o->verdict = RQ_AUTHN_PENDING;
        return rq_sat_launch(f);
    }
    if (f)
        rq_sat_flight_free(f);
    struct rq_authn_outcome err;
    rq_authn_outcome_init(&err);
    rq_sat_unavailable(&err, "out of memory");
    size_t n = 0;
    struct rq_sat_waiter *w = rq_sat_cache_land(ctx->cache, key, &err, 0, 0, &n);
    /* others that joined meanwhile get the answer; we answer directly */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (w[i].a != self->a || w[i].b != self->b)
            w[k++] = w[i];
    deliver_all(ctx, w, k, &err);
    rq_sat_unavailable(o, "out of memory");
}

static void check(struct rq_sat_method *m, struct rq_sat_ctx *ctx, const struct rq_authn_creds *c,
                  size_t at, bool reauth, struct rq_authn_outcome *o)
{
    const uint8_t *tok = NULL;
    size_t len = 0;
    if (!rq_sat_relevant(c, &tok, &len))
        return; /* NOT_RELEVANT */
    const char *problem = rq_sat_token_problem(tok, len);
    if (problem) {
        o->verdict = RQ_AUTHN_DENY;
        o->reason = 0x87;
        snprintf(o->why, sizeof o->why, "%s", problem);
        return;
    }
    if (!ctx || !ctx->pool)
        return rq_sat_unavailable(o, "the authentication service pool is not running");
    if (m->jw)
        rq_sat_jwks_maybe_refresh(m, ctx, c->now);
    uint8_t key[RQ_SAT_KEY];
    if (make_key(key, "token", m->auds, m->n_auds, tok, len) != 0)
        return rq_sat_unavailable(o, "hash failed");
    struct rq_sat_waiter self = {c->conn_id, at | (reauth ? REAUTH_BIT : 0)};
    int64_t attrs_until = 0;
    int rc = rq_sat_cache_begin_ex(ctx->cache, key, c->now, &self, o, &attrs_until);
    rq_stat_inc(rc == RQ_SAT_HIT ? RQ_ST_AUTH_CACHE_HIT : RQ_ST_AUTH_CACHE_MISS);
    /* a cached token's attributes follow its account's annotations; once synced with a fresh
     * annotation entry they stay valid until that entry's refresh time, and a warm CONNECT
     * before then takes the cache lock once (a second lookup per CONNECT cost ~25 % of a warm
     * storm's rate) */
    if (rc == RQ_SAT_HIT && o->verdict == RQ_AUTHN_ALLOW && c->now >= attrs_until) {
        int64_t synced = fresh_attributes(m, ctx, o, c->now);
        if (synced > c->now && o->verdict == RQ_AUTHN_ALLOW)
            rq_sat_cache_set_attrs(ctx->cache, key, c->now, &o->principal, synced);
    }
    if (rc == RQ_SAT_HIT) {
        if (o->verdict == RQ_AUTHN_ALLOW)
            describe_allow(o, true);
        else
            snprintf(o->why + strnlen(o->why, sizeof o->why - 12), 12, " (cached)");
    } else if (rc == RQ_SAT_JOINED) {
        o->verdict = RQ_AUTHN_PENDING;
    } else if (rc == RQ_SAT_LEAD) {
        lead(m, ctx, key, tok, len, &self, o);
    } else {
        rq_sat_unavailable(o, "out of memory");
    }
}

void rq_sat_check(struct rq_sat_method *m, struct rq_sat_ctx *ctx, const struct rq_authn_creds *c,
                  size_t at, bool reauth, struct rq_authn_outcome *o)
{
    check(m, ctx, c, at, reauth, o);
    if (reauth)
        rq_sat_reauth_outcome(o);
}
