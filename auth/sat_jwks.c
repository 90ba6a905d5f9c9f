/* ServiceAccountToken localVerification: Fallback (sat.h, jwks.h): the issuer's keys, fetched
 * through the Kubernetes API at start and every 10 minutes (GET
 * /.well-known/openid-configuration, then the path of its jwks_uri on the same API server: the
 * URI's host is often an address only the cluster reaches), the last good set kept; and the
 * local check of a token while TokenReview cannot be reached.
 *
 * Trade-off (logged at start, in the README): a token verified locally may belong to a Pod or
 * ServiceAccount deleted meanwhile, until its exp; TokenReview would refuse it. Local answers
 * are never cached, so TokenReview decides again as soon as it answers. */
#include "auth/sat_int.h"

#include "core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REFRESH_S 600
#define RETRY_S 30

struct sat_jwks {
    pthread_mutex_t mu;
    struct rq_jwks *keys; /* last good set, or NULL */
    char issuer[256];
    int64_t next; /* unix time the next fetch is due */
    bool running; /* a fetch is in flight */
};

struct sat_jwks *rq_sat_jwks_new(void)
{
    struct sat_jwks *jw = calloc(1, sizeof *jw);
    if (jw)
        pthread_mutex_init(&jw->mu, NULL);
    return jw;
}

void rq_sat_jwks_free(struct sat_jwks *jw)
{
    if (!jw)
        return;
    rq_jwks_free(jw->keys);
    pthread_mutex_destroy(&jw->mu);
    free(jw);
}

void rq_sat_jwks_maybe_refresh(struct rq_sat_method *m, struct rq_sat_ctx *ctx, int64_t now)
{
    struct sat_jwks *jw = m->jw;
    if (!jw || !ctx || !ctx->pool)
        return;
    pthread_mutex_lock(&jw->mu);
    bool due = !jw->running && now >= jw->next;
    if (due)
        jw->running = true;
    pthread_mutex_unlock(&jw->mu);
    if (!due)
        return;
    struct sat_flight *f = rq_sat_flight_new(FLIGHT_DISCOVERY, ctx, m);
    if (!f) {
        pthread_mutex_lock(&jw->mu);
        jw->running = false;
        jw->next = now + RETRY_S;
        pthread_mutex_unlock(&jw->mu);
        return;
    }
    rq_sat_launch(f);
}

/* The path of an https URI ("/openid/v1/jwks"), or NULL. */
static const char *uri_path(const char *uri)
{
    const char *p = strchr(uri + 8, '/');
    return p && strlen(p) < 300 ? p : NULL;
}

void rq_sat_jwks_answer(struct sat_flight *f, const char *body, size_t len,
                        struct rq_authn_outcome *o)
{
    const char *why = NULL;
    char uri[512];
    o->verdict = RQ_AUTHN_DENY;
    if (f->kind == FLIGHT_DISCOVERY) {
        const char *path = NULL;
        if (rq_jwks_parse_discovery(body, len, f->issuer, sizeof f->issuer, uri, sizeof uri,
                                    &why) == 0 &&
            !(path = uri_path(uri)))
            why = "the discovery document's jwks_uri has no path";
        if (path) {
            snprintf(f->path, sizeof f->path, "%s", path);
            o->verdict = RQ_AUTHN_ALLOW;
        }
    } else if ((f->keys = rq_jwks_parse(body, len, &why))) {
        o->verdict = RQ_AUTHN_ALLOW;
    }
    if (why)
        snprintf(o->why, sizeof o->why, "%s", why);
}

/* The fetch ended (ok: a new set is installed). */
static void fetch_over(struct sat_jwks *jw, bool ok, const char *why)
{
    int64_t now = (int64_t)time(NULL);
    pthread_mutex_lock(&jw->mu);
    jw->running = false;
    jw->next = now + (ok ? REFRESH_S : RETRY_S);
    bool had = jw->keys != NULL;
    pthread_mutex_unlock(&jw->mu);
    if (!ok)
        rq_log(RQ_LOG_WARN, NULL,
               "ServiceAccountToken: issuer keys for local verification not "
               "fetched (%s)%s; next try in %d s",
               why, had ? ", the last good set stays" : "", RETRY_S);
}

void rq_sat_jwks_landed(struct sat_flight *f, const struct rq_authn_outcome *o)
{
    struct sat_jwks *jw = f->m->jw;
    if (o->verdict != RQ_AUTHN_ALLOW) {
        fetch_over(jw, false, o->why);
    } else if (f->kind == FLIGHT_DISCOVERY) {
        struct sat_flight *j = rq_sat_flight_new(FLIGHT_JWKS, f->ctx, f->m);
        if (!j) {
            fetch_over(jw, false, "out of memory");
        } else {
            memcpy(j->path, f->path, sizeof j->path);
            memcpy(j->issuer, f->issuer, sizeof j->issuer);
            rq_sat_launch(j); /* its own landing ends the fetch */
        }
    } else {
        size_t n = rq_jwks_count(f->keys);
        pthread_mutex_lock(&jw->mu);
        rq_jwks_free(jw->keys);
        jw->keys = f->keys;
        f->keys = NULL;
        memcpy(jw->issuer, f->issuer, sizeof jw->issuer);
        pthread_mutex_unlock(&jw->mu);
        fetch_over(jw, true, NULL);
        rq_log(RQ_LOG_INFO, NULL,
               "ServiceAccountToken: %zu issuer key%s of %s for local "
               "verification",
               n, n == 1 ? "" : "s", f->issuer);
    }
    rq_sat_flight_free(f);
}

bool rq_sat_jwks_verify(struct sat_flight *f, struct rq_authn_outcome *o)
{
    struct sat_jwks *jw = f->m->jw;
    struct rq_jwt_claims c;
    const char *why = NULL;
    pthread_mutex_lock(&jw->mu);
    if (!jw->keys) {
        pthread_mutex_unlock(&jw->mu);
        return false;
    }
    int rc = rq_jwks_verify(jw->keys, (const uint8_t *)f->token, f->token_len, jw->issuer,
                            f->m->auds, f->m->n_auds, (int64_t)time(NULL), &c, &why);
    pthread_mutex_unlock(&jw->mu);
    rq_authn_outcome_free(o);
    rq_authn_outcome_init(o);
    o->method = "ServiceAccountToken";
    if (rc != 0) {
        o->verdict = RQ_AUTHN_DENY;
        o->reason = 0x87;
        snprintf(o->why, sizeof o->why, "TokenReview unreachable; verified locally: %s", why);
        return true;
    }
    o->verdict = RQ_AUTHN_ALLOW;
    o->principal.expiry = c.exp;
    if (!(o->principal.username = strdup(c.username)))
        rq_sat_unavailable(o, "out of memory");
    snprintf(f->ns, sizeof f->ns, "%s", c.ns);
    snprintf(f->name, sizeof f->name, "%s", c.name);
    return true;
}
