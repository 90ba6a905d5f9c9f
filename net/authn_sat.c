/* The ServiceAccountToken method in a port's chain, its pool, cache and Kubernetes API source
 * (authn_sat.h). */
#include "net/authn_sat.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/authn.h"
#include "auth/kube.h"
#include "auth/pool.h"
#include "auth/sat.h"
#include "auth/sat_cache.h"
#include "config/config.h"
#include "core/log.h"
#include "net/post.h"


/* Published (atomic) once the pool runs; read by the shards' check(). */
static struct rq_sat_ctx g_ctx;
static _Atomic(struct rq_sat_ctx *) g_live;
static _Atomic uint64_t g_dropped;
/* The Kubernetes API source of the configuration being built (control thread only). */
static struct rq_kube *g_kube;

struct sat_state {
    struct rq_sat_method *m;
    size_t index; /* this method's position in its chain */
};

uint64_t rq_authn_sat_dropped(void)
{
    return atomic_load(&g_dropped);
}

/* Pool thread: the answer for one waiting connection (o's contents move into the reply).
 * reauth: the answer is for the connection's re-authentication (auth/authn.h). */
static void deliver(uint64_t conn, size_t at, bool reauth, struct rq_authn_outcome *o)
{
    struct rq_authn_reply *r = malloc(sizeof *r);
    if (!r) {
        atomic_fetch_add(&g_dropped, 1);
        return;
    }
    r->conn = conn;
    r->reauth = reauth;
    r->pending_at = at;
    r->o = *o;
    rq_authn_outcome_init(o);
    /* One answer fans out to every connection waiting on the token: the pool thread neither
     * waits for a full inbox nor keeps the answer for later (the shard's overflow stack). */
    if (rq_shard_post_authn_reply_always(r) != 0) {
        rq_log(RQ_LOG_WARN, NULL, "ServiceAccountToken answer dropped: the shard is gone");
        rq_authn_reply_free(r);
        atomic_fetch_add(&g_dropped, 1);
    }
}

int rq_authn_sat_needed(const struct rq_config *cfg)
{
    for (size_t i = 0; i < cfg->n_ports; i++)
        for (size_t j = 0; cfg->ports[i].authn && j < cfg->ports[i].authn->n_methods; j++)
            if (cfg->ports[i].authn->methods[j].kind == RQ_AUTHN_SAT)
                return 1;
    return 0;
}

static int pool_start(const struct rq_config *cfg, unsigned threads_override, char *err,
                      size_t errlen)
{
    if (atomic_load(&g_live))
        return 0;
    g_ctx = (struct rq_sat_ctx){
        .negative_s = cfg->auth_negative_cache_s, .sa_cache_s = cfg->auth_sa_cache_s, .deliver = deliver};
    if (!(g_ctx.cache = rq_sat_cache_new(cfg->auth_cache_entries))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct rq_auth_pool_cfg pc;
    rq_auth_pool_cfg_default(&pc);
    pc.threads = threads_override ? threads_override : cfg->auth_threads;
    pc.max_pending = cfg->auth_max_pending;
    pc.request_timeout_ms = cfg->auth_request_timeout_ms;
    pc.max_connections = 32; /* as Custom's: a burst must not queue behind 8 */
    g_ctx.pool = rq_auth_pool_new(&pc, rq_sat_pool_done, &g_ctx, err, errlen);
    if (!g_ctx.pool) {
        rq_sat_cache_free(g_ctx.cache);
        g_ctx.cache = NULL;
        return -1;
    }
    atomic_store(&g_live, &g_ctx);
    rq_log(RQ_LOG_INFO, NULL,
           "ServiceAccountToken: authentication service pool %u thread%s, "
           "maxPending %u, request timeout %u ms; cache %u entries, refusals kept %u s, "
           "annotations %u s",
           pc.threads, pc.threads == 1 ? "" : "s", pc.max_pending, pc.request_timeout_ms,
           cfg->auth_cache_entries, cfg->auth_negative_cache_s, cfg->auth_sa_cache_s);
    return 0;
}

int rq_authn_sat_start(const struct rq_config *cfg, unsigned threads_override, char *err,
                       size_t errlen)
{
    if (!rq_authn_sat_needed(cfg))
        return 0;
    struct rq_kube *k = rq_kube_resolve(&cfg->kube, err, errlen);
    if (!k)
        return -1;
    if (pool_start(cfg, threads_override, err, errlen) != 0) {
        rq_kube_release(k);
        return -1;
    }
    rq_log(RQ_LOG_INFO, NULL, "ServiceAccountToken: Kubernetes API from %s", rq_kube_describe(k));
    rq_kube_release(g_kube);
    g_kube = k;
    return 0;
}

void rq_authn_sat_pool_stop(void)
{
    struct rq_sat_ctx *c = atomic_load(&g_live);
    if (c) {
        rq_auth_pool_stop(c->pool);
        rq_shard_post_thread_exit(); /* the stop posted from this thread */
    }
}

void rq_authn_sat_pool_free(void)
{
    struct rq_sat_ctx *c = atomic_exchange(&g_live, NULL);
    if (c) {
        rq_auth_pool_free(c->pool);
        rq_sat_cache_free(c->cache);
        memset(c, 0, sizeof *c);
    }
    rq_kube_release(g_kube);
    g_kube = NULL;
}

static void sat_check(const void *state, const struct rq_authn_creds *c, struct rq_authn_outcome *o)
{
    const struct sat_state *s = state;
    rq_sat_check(s->m, atomic_load(&g_live), c, s->index, c->reauth, o);
}

static void sat_free(void *state)
{
    struct sat_state *s = state;
    if (s)
        rq_sat_method_release(s->m);
    free(s);
}

static const struct rq_authn_method_ops sat_ops = {
    .name = "ServiceAccountToken",
    .check = sat_check,
    .free = sat_free,
};

int rq_authn_sat_add(struct rq_authn_chain *ch, const struct rq_authn_sat *s, char *err,
                     size_t errlen)
{
    if (!g_kube) {
        snprintf(err, errlen, "ServiceAccountToken: no Kubernetes API source was resolved");
        return -1;
    }
    struct sat_state *st = calloc(1, sizeof *st);
    bool fallback = s->local_verification == RQ_SAT_LOCAL_FALLBACK;
    if (!st || !(st->m = rq_sat_method_new(g_kube, s->audiences, s->n_audiences, fallback))) {
        free(st);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    st->index = rq_authn_chain_len(ch);
    struct rq_sat_method *m = st->m;
    if (rq_authn_chain_add_reauth(ch, &sat_ops, st) != 0) { /* frees st */
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (fallback) {
        static _Atomic int warned;
        if (!atomic_exchange(&warned, 1))
            rq_log(RQ_LOG_WARN, NULL,
                   "ServiceAccountToken localVerification: Fallback: while "
                   "TokenReview cannot be reached, tokens are verified with the issuer's keys "
                   "(JWKS); a token verified so may belong to a deleted Pod or ServiceAccount "
                   "until its exp");
        rq_sat_method_start(m, atomic_load(&g_live));
    }
    return 0;
}
