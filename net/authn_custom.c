/* The Custom method in a port's chain and the auth service pool it uses (authn_custom.h). */
#include "net/authn_custom.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/authn.h"
#include "auth/custom.h"
#include "auth/pool.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "net/authn_glue.h"
#include "net/post.h"

/* Verdicts cached per Custom method (each port's chain has its own). */
enum { CACHE_ENTRIES = 10000 };

/* Set by the control thread, read by the shards' check(): started before it is published,
 * stopped (submit then fails with -ESHUTDOWN) before it is freed, which happens only once the
 * shards are joined. */
static _Atomic(struct rq_auth_pool *) g_pool;
static _Atomic uint64_t g_dropped;

/* What done() needs to find the connection and its place in the chain. */
struct pend {
    uint64_t conn;
    size_t at;
    bool reauth; /* a re-authentication (creds->reauth): the reply says so */
};

struct custom_state {
    struct rq_custom_method *m;
    size_t index; /* this method's position in its chain */
};

uint64_t rq_authn_custom_dropped(void)
{
    return atomic_load(&g_dropped);
}

/* An allowing answer's why, for the "authenticated by Custom" log line: the attributes and the
 * expiry the server gave (peer text: core escapes the line), then what the why held (e.g.
 * "(cached)"). */
static void describe_allow(struct rq_authn_outcome *o)
{
    if (o->verdict != RQ_AUTHN_ALLOW)
        return;
    const struct rq_principal *p = &o->principal;
    char buf[sizeof o->why];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s", p->n_attrs ? "attributes" : "no attributes");
    for (size_t i = 0; i < p->n_attrs && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s=%s", i ? ", " : " ", p->keys[i],
                              p->values[i]);
    char when[32];
    if (p->expiry && n < sizeof buf && rq_rfc3339_format(p->expiry, when, sizeof when) > 0)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "; expires %s", when);
    size_t wl = strnlen(o->why, sizeof o->why - 1);
    if (wl && n + 1 + wl < sizeof buf) {
        buf[n] = ' ';
        memcpy(buf + n + 1, o->why, wl);
        buf[n + 1 + wl] = '\0';
    }
    memcpy(o->why, buf, sizeof o->why);
}

/* Pool thread (or the stopping thread): posts the answer to the connection's shard. */
static void on_done(void *ctx, uint64_t tag, struct rq_authn_outcome *o)
{
    (void)ctx;
    struct pend *p = (struct pend *)(uintptr_t)tag;
    struct rq_authn_reply *r = malloc(sizeof *r);
    if (!r) {
        rq_auth_outcome_release(o);
        free(p);
        atomic_fetch_add(&g_dropped, 1);
        return;
    }
    r->conn = p->conn;
    r->pending_at = p->at;
    r->reauth = p->reauth;
    describe_allow(o);
    r->o = *o; /* moves the outcome's strings */
    free(o);
    free(p);
    /* A full inbox drains quickly: retry briefly, never forever (a stuck shard must not stall
     * the pool thread and every other answer it carries). */
    for (int tries = 0;; tries++) {
        int rc = rq_shard_post_authn_reply(r);
        if (rc == 0)
            return;
        if (rc != -EAGAIN || tries >= 2000) {
            rq_log(RQ_LOG_WARN, NULL, "Custom authentication answer dropped: %s",
                   rc == -EAGAIN ? "the shard's inbox stayed full" : "the shard is gone");
            rq_authn_reply_free(r);
            atomic_fetch_add(&g_dropped, 1);
            return;
        }
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
}

int rq_authn_custom_pool_start(const struct rq_config *cfg, unsigned threads_override, char *err,
                               size_t errlen)
{
    if (atomic_load(&g_pool))
        return 0;
    struct rq_auth_pool_cfg pc;
    rq_auth_pool_cfg_default(&pc);
    pc.threads = threads_override ? threads_override : cfg->auth_threads;
    pc.max_pending = cfg->auth_max_pending;
    pc.request_timeout_ms = cfg->auth_request_timeout_ms;
    /* Up to 32 requests in flight per thread (the pool's default is 8): with a slow server a
     * burst of CONNECTs otherwise queues behind 8 and times out in the FIFO. */
    pc.max_connections = 32;
    struct rq_auth_pool *p = rq_auth_pool_new(&pc, on_done, NULL, err, errlen);
    if (!p)
        return -1;
    atomic_store(&g_pool, p);
    rq_log(RQ_LOG_INFO, NULL, "authentication service pool: %u thread%s (%u requests in flight "
           "each), maxPending %u, request timeout %u ms", pc.threads, pc.threads == 1 ? "" : "s",
           pc.max_connections, pc.max_pending, pc.request_timeout_ms);
    return 0;
}

void rq_authn_custom_pool_stop(void)
{
    struct rq_auth_pool *p = atomic_load(&g_pool);
    if (p) {
        rq_auth_pool_stop(p);
        rq_shard_post_thread_exit(); /* the stop posted from this thread */
    }
}

void rq_authn_custom_pool_free(void)
{
    rq_auth_pool_free(atomic_exchange(&g_pool, NULL));
}

int rq_authn_custom_needed(const struct rq_config *cfg)
{
    for (size_t i = 0; i < cfg->n_ports; i++)
        for (size_t j = 0; cfg->ports[i].authn && j < cfg->ports[i].authn->n_methods; j++)
            if (cfg->ports[i].authn->methods[j].kind == RQ_AUTHN_CUSTOM)
                return 1;
    return 0;
}

static void not_relevant(struct rq_authn_outcome *o, const char *why)
{
    o->verdict = RQ_AUTHN_NOT_RELEVANT;
    snprintf(o->why, sizeof o->why, "Custom: %s", why);
}

/* The pool job for these credentials: {"type":"connect"} for a CONNECT, {"type":"auth"} for a
 * re-authentication (the AUTH packet's method and data; the connection's user name for the
 * principal of the answer). */
static struct rq_auth_job *make_job(const struct custom_state *s, const struct rq_authn_creds *a,
                                    const struct rq_custom_creds *c, const char **why)
{
    if (!a->reauth)
        return rq_custom_job_connect(s->m, c, why);
    if (!c->auth_method) {
        *why = "a re-authentication without an Authentication Method";
        return NULL;
    }
    char *user = a->has_username ? strndup((const char *)a->username, a->username_len) : NULL;
    if (a->has_username && !user) {
        *why = "out of memory";
        return NULL;
    }
    struct rq_auth_job *job = rq_custom_job_auth(s->m, user, c->auth_method, c->auth_method_len,
                                                 c->auth_data, c->auth_data_len, why);
    free(user);
    return job;
}

/* Hands the request to the pool: PENDING, or an answer now when it cannot be sent. */
static void submit(const struct custom_state *s, const struct rq_authn_creds *a,
                   const struct rq_custom_creds *c, struct rq_authn_outcome *o)
{
    struct rq_auth_pool *pool = atomic_load(&g_pool);
    if (!pool)
        return not_relevant(o, "the authentication service pool is not running");
    struct pend *p = malloc(sizeof *p);
    const char *why = "out of memory";
    struct rq_auth_job *job = p ? make_job(s, a, c, &why) : NULL;
    if (!job) {
        free(p);
        return not_relevant(o, why);
    }
    *p = (struct pend){.conn = a->conn_id, .at = s->index, .reauth = a->reauth};
    int rc = rq_auth_pool_submit(pool, job, (uint64_t)(uintptr_t)p);
    if (rc == 0) {
        o->verdict = RQ_AUTHN_PENDING;
        return;
    }
    job->ops->free(job);
    free(p);
    /* A connected client re-authenticating is not refused for a full pool: it may try again
     * (AUTH 0x18), as when the server is unreachable. */
    if (rc == -EBUSY && !a->reauth) {
        o->verdict = RQ_AUTHN_DENY;
        o->reason = 0x89; /* Server busy; 3.1.1: return code 3 */
        snprintf(o->why, sizeof o->why, "Custom: too many authentication requests pending");
        return;
    }
    not_relevant(o, rc == -EBUSY       ? "too many authentication requests pending"
                    : rc == -ESHUTDOWN ? "the authentication service pool is stopping"
                                       : "out of memory");
}

static void custom_check(const void *state, const struct rq_authn_creds *a,
                         struct rq_authn_outcome *o)
{
    const struct custom_state *s = state;
    size_t pem_len = 0;
    /* an AUTH request carries no certs: no PEM for a re-authentication */
    bool certs = a->n_certs && !a->reauth;
    char *pem = certs ? rq_custom_pem_chain(a->certs, a->cert_lens, a->n_certs, &pem_len) : NULL;
    struct rq_custom_creds c;
    rq_custom_creds_from(a, pem, pem_len, &c);
    /* a re-authentication is never answered from (nor stored in) the verdict cache */
    int hit = a->reauth ? 0 : rq_custom_cache_lookup(s->m, &c, a->now, o);
    if (hit == 1) {
        describe_allow(o);
    } else {
        rq_authn_outcome_free(o);
        rq_authn_outcome_init(o);
        submit(s, a, &c, o);
    }
    free(pem);
}

static void custom_free(void *state)
{
    struct custom_state *s = state;
    if (s)
        rq_custom_method_release(s->m);
    free(s);
}

static const struct rq_authn_method_ops custom_ops = {
    .name = "Custom",
    .check = custom_check,
    .free = custom_free,
};

/* The method's settings from the snapshot: CA PEM (ConfigMap), client certificate (Secret
 * tls.crt / tls.key), headers. Pointers borrowed from the snapshot and ca. */
static void fill_cfg(const struct rq_authn_custom *s, struct rq_buf *ca, const char **names,
                     const char **values, struct rq_custom_cfg *out)
{
    *out = (struct rq_custom_cfg){.endpoint = s->endpoint, .cache_entries = CACHE_ENTRIES};
    if (ca->len) {
        out->ca_pem = (const char *)ca->data;
        out->ca_len = ca->len;
    }
    const struct rq_config_entry *crt = rq_config_object_get(s->client_cert, "tls.crt");
    const struct rq_config_entry *key = rq_config_object_get(s->client_cert, "tls.key");
    if (crt && key) {
        out->cert_pem = crt->value;
        out->cert_len = crt->len;
        out->key_pem = key->value;
        out->key_len = key->len;
    }
    for (size_t i = 0; i < s->n_headers; i++) {
        names[i] = s->headers[i].key;
        values[i] = s->headers[i].value;
    }
    out->header_names = names;
    out->header_values = values;
    out->n_headers = s->n_headers;
}

int rq_authn_custom_add(struct rq_authn_chain *ch, const struct rq_authn_custom *s, char *err,
                        size_t errlen)
{
    struct rq_buf ca = {0};
    const char **names = calloc(s->n_headers + 1, sizeof *names);
    const char **values = calloc(s->n_headers + 1, sizeof *values);
    struct custom_state *st = calloc(1, sizeof *st);
    int rc = -1;
    if (!names || !values || !st || rq_authn_glue_collect_pem(s->ca, &ca) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (s->ca_configmap[0] && ca.len == 0) {
        snprintf(err, errlen, "Custom: ConfigMap %s holds no PEM certificate", s->ca_configmap);
        goto out;
    }
    if (s->client_secret[0] && (!rq_config_object_get(s->client_cert, "tls.crt") ||
                                !rq_config_object_get(s->client_cert, "tls.key"))) {
        snprintf(err, errlen, "Custom: Secret %s needs tls.crt and tls.key", s->client_secret);
        goto out;
    }
    struct rq_custom_cfg cfg;
    fill_cfg(s, &ca, names, values, &cfg);
    char why[200] = "";
    st->m = rq_custom_method_new(&cfg, why, sizeof why);
    if (!st->m) {
        snprintf(err, errlen, "Custom (%s): %s", s->endpoint, why);
        goto out;
    }
    st->index = rq_authn_chain_len(ch);
    /* Custom re-authenticates: check() sends {"type":"auth"} when creds->reauth is set */
    rc = rq_authn_chain_add_reauth(ch, &custom_ops, st); /* frees st on failure */
    st = NULL;
    if (rc != 0)
        snprintf(err, errlen, "out of memory");
out:
    custom_free(st);
    rq_buf_free(&ca);
    free(names);
    free(values);
    return rc;
}
