/* ServiceAccountToken pool jobs: the TokenReview POST and the ServiceAccount GET, and what each
 * answer means as an outcome (sat.h lists the rules). Runs on pool threads. */
#include "auth/sat_int.h"

#include "core/log.h"
#include "core/stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REVIEW_PATH "/apis/authentication.k8s.io/v1/tokenreviews"

_Atomic uint64_t rq_sat_n_requests;

struct sat_job {
    struct rq_auth_job base;
    struct sat_flight *f;    /* not owned: done() gets it through the tag */
    struct rq_sat_method *m; /* a reference (the TLS blobs live in m->kube) */
    char *body;              /* TokenReview: holds the token; wiped */
    size_t body_len;
    struct curl_slist *headers; /* holds the broker's bearer token; wiped */
    char *resp;
    size_t resp_len, resp_cap;
    bool too_big;
    char errbuf[CURL_ERROR_SIZE];
};

void rq_sat_unavailable(struct rq_authn_outcome *o, const char *fmt, ...)
{
    rq_authn_outcome_free(o);
    rq_authn_outcome_init(o);
    o->verdict = RQ_AUTHN_DENY;
    o->reason = 0x88; /* Server unavailable; 3.1.1: return code 3 */
    o->method = "ServiceAccountToken";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->why, sizeof o->why, fmt, ap);
    va_end(ap);
}

static void denied(struct rq_authn_outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void denied(struct rq_authn_outcome *o, const char *fmt, ...)
{
    o->verdict = RQ_AUTHN_DENY;
    o->reason = 0x87; /* Not authorized; 3.1.1: return code 5 */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->why, sizeof o->why, fmt, ap);
    va_end(ap);
}

/* The broker's own permission is missing: an error log naming what grants it, at most once a
 * minute (every CONNECT would otherwise log it). */
static void log_rbac(long status, const char *what)
{
    static _Atomic int64_t last;
    int64_t now = (int64_t)time(NULL), prev = atomic_load(&last);
    if (now - prev < 60 || !atomic_compare_exchange_strong(&last, &prev, now))
        return;
    rq_log(RQ_LOG_ERROR, NULL,
           "ServiceAccountToken: the Kubernetes API refused the broker's own request (HTTP %ld): "
           "%s; bind the broker's service account to ClusterRole system:auth-delegator (create "
           "tokenreviews.authentication.k8s.io) and allow get on serviceaccounts; new "
           "ServiceAccountToken clients are refused with Server unavailable meanwhile",
           status,
           status == 401 ? "its credentials (token or client certificate) are not accepted" : what);
}

/* ---- the transfer ---------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct sat_job *j = arg;
    size_t n = size * nmemb;
    if (n > RQ_SAT_MAX_BODY - j->resp_len) {
        j->too_big = true;
        return 0;
    }
    if (j->resp_len + n + 1 > j->resp_cap) {
        size_t cap = j->resp_cap ? j->resp_cap : 2048;
        while (cap < j->resp_len + n + 1)
            cap *= 2;
        char *r = realloc(j->resp, cap);
        if (!r)
            return 0;
        j->resp = r;
        j->resp_cap = cap;
    }
    memcpy(j->resp + j->resp_len, p, n);
    j->resp_len += n;
    j->resp[j->resp_len] = '\0';
    return n;
}

static int job_start(struct rq_auth_job *base, CURL *e, char *why, size_t whylen)
{
    struct sat_job *j = (struct sat_job *)base;
    char path[400];
    if (j->f->kind == FLIGHT_TOKEN)
        snprintf(path, sizeof path, "%s", REVIEW_PATH);
    else if (j->f->kind == FLIGHT_SA)
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/serviceaccounts/%s", j->f->ns,
                 j->f->name);
    else if (j->f->kind == FLIGHT_DISCOVERY)
        snprintf(path, sizeof path, "/.well-known/openid-configuration");
    else
        snprintf(path, sizeof path, "%s", j->f->path);
    if (rq_kube_request(j->m->kube, e, path, &j->headers, why, whylen) != 0)
        return -1;
    CURLcode rc = CURLE_OK;
    if (j->body) {
        rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    }
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "libcurl refused an option (%s)", curl_easy_strerror(rc));
        return -1;
    }
    atomic_fetch_add(&rq_sat_n_requests, 1);
    return 0;
}

static void wipe(struct sat_job *j)
{
    if (j->body) {
        explicit_bzero(j->body, j->body_len);
        free(j->body);
        j->body = NULL;
    }
    rq_kube_headers_free(j->headers);
    j->headers = NULL;
}

static void transport_failed(struct sat_job *j, CURLcode rc, const char *what,
                             struct rq_authn_outcome *o)
{
    char detail[120];
    rq_log_escape(detail, sizeof detail, j->errbuf, strnlen(j->errbuf, sizeof j->errbuf));
    if (j->too_big)
        rq_sat_unavailable(o, "%s: answer over %d bytes", what, RQ_SAT_MAX_BODY);
    else
        rq_sat_unavailable(o, "%s: Kubernetes API unreachable: %s%s%s%s", what,
                           curl_easy_strerror(rc), detail[0] ? " (" : "", detail,
                           detail[0] ? ")" : "");
}

/* A 2xx TokenReview answer. */
static void review_answer(struct sat_job *j, struct rq_authn_outcome *o)
{
    struct rq_sat_review r;
    const char *why = NULL;
    struct sat_flight *f = j->f;
    if (rq_sat_parse_review(j->resp ? j->resp : "", j->resp_len, f->m->auds, f->m->n_auds, &r,
                            &why) != 0)
        return rq_sat_unavailable(o, "TokenReview: %s", why);
    if (r.error[0] || !r.authenticated)
        return denied(o, "TokenReview: not authenticated%s%s", r.error[0] ? ": " : "", r.error);
    if (!r.audience_ok)
        return denied(o, "TokenReview: the token is not for any of the audiences %s%s",
                      f->m->auds[0], f->m->n_auds > 1 ? ", ..." : "");
    if (!r.service_account) {
        char u[120];
        rq_log_escape_str(u, sizeof u, r.username);
        return denied(o, "TokenReview: '%s' is not a service account", u);
    }
    o->verdict = RQ_AUTHN_ALLOW;
    snprintf(f->ns, sizeof f->ns, "%s", r.ns);
    snprintf(f->name, sizeof f->name, "%s", r.name);
    if (!(o->principal.username = strdup(r.username)))
        return rq_sat_unavailable(o, "out of memory");
    int64_t exp = 0;
    if (rq_sat_jwt_exp((const uint8_t *)f->token, f->token_len, &exp) == 0)
        o->principal.expiry = exp;
}

/* A 200 ServiceAccount answer: its annotations become the attributes. */
static void sa_answer(struct sat_job *j, struct rq_authn_outcome *o)
{
    const char *why = NULL;
    o->verdict = RQ_AUTHN_ALLOW;
    int rc = rq_sat_parse_sa(j->resp ? j->resp : "", j->resp_len, &o->principal, &why);
    if (rc != 0)
        rq_sat_unavailable(o, "ServiceAccount %s/%s: %s", j->f->ns, j->f->name,
                           rc == -1 ? why : "out of memory");
}

static void job_finish(struct rq_auth_job *base, CURL *e, CURLcode rc, struct rq_authn_outcome *o)
{
    struct sat_job *j = (struct sat_job *)base;
    int kind = j->f->kind;
    bool review = kind == FLIGHT_TOKEN;
    const char *what = review                ? "TokenReview"
                       : kind == FLIGHT_SA   ? "ServiceAccount read"
                       : kind == FLIGHT_JWKS ? "JWKS read"
                                             : "OIDC discovery read";
    wipe(j);
    o->method = "ServiceAccountToken";
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (review && (rc != CURLE_OK || status >= 500))
        j->f->unreachable = true; /* localVerification: Fallback may decide */
    rq_stats_auth_http(RQ_AUTH_SRV_KUBERNETES, rc == CURLE_OK ? status : 0);
    if (rc != CURLE_OK)
        return transport_failed(j, rc, what, o);
    if (kind == FLIGHT_DISCOVERY || kind == FLIGHT_JWKS) {
        if (status == 200)
            return rq_sat_jwks_answer(j->f, j->resp ? j->resp : "", j->resp_len, o);
        return rq_sat_unavailable(o, "%s: HTTP %ld", what, status);
    }
    if (status == 401 || status == 403) {
        log_rbac(status, review ? "it may not create tokenreviews.authentication.k8s.io"
                                : "it may not get serviceaccounts");
        return rq_sat_unavailable(o,
                                  "%s: the Kubernetes API refused the broker (HTTP %ld; "
                                  "missing RBAC, see the error log)",
                                  what, status);
    }
    if (!review && status == 404)
        return denied(o, "the service account %s/%s does not exist", j->f->ns, j->f->name);
    if (status < 200 || status > 299)
        return rq_sat_unavailable(o, "%s: the Kubernetes API answered HTTP %ld", what, status);
    if (review)
        review_answer(j, o);
    else
        sa_answer(j, o);
}

static void job_free(struct rq_auth_job *base)
{
    struct sat_job *j = (struct sat_job *)base;
    wipe(j);
    free(j->resp);
    rq_sat_method_release(j->m);
    free(j);
}

static const struct rq_auth_job_ops sat_job_ops = {
    .start = job_start,
    .finish = job_finish,
    .free = job_free,
};

static struct sat_job *job_new(struct sat_flight *f, const char **why)
{
    struct sat_job *j = calloc(1, sizeof *j);
    if (!j) {
        *why = "out of memory";
        return NULL;
    }
    j->base.ops = &sat_job_ops;
    j->f = f;
    rq_sat_method_ref(f->m);
    j->m = f->m;
    return j;
}

struct rq_auth_job *rq_sat_job_review(struct sat_flight *f, const char **why)
{
    struct sat_job *j = job_new(f, why);
    if (!j)
        return NULL;
    j->body = rq_sat_review_body((const uint8_t *)f->token, f->token_len, f->m->auds, f->m->n_auds,
                                 &j->body_len);
    if (!j->body) {
        job_free(&j->base);
        *why = "out of memory";
        return NULL;
    }
    return &j->base;
}

struct rq_auth_job *rq_sat_job_sa(struct sat_flight *f, const char **why)
{
    struct sat_job *j = job_new(f, why);
    return j ? &j->base : NULL;
}
