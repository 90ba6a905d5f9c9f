/* The Custom authentication method on the auth service pool. See custom.h for the contract.
 *
 * What it does: validates the method's configuration, builds pool jobs (URL, headers, JSON
 * body, TLS material from memory), reads the response (status, Content-Type, Cache-Control,
 * body bounded at RQ_CUSTOM_MAX_BODY) into an rq_authn_outcome, and decides what goes into the
 * verdict cache (custom_cache.c holds it). What it does not do: JSON (custom_msg.c), threads and
 * timeouts (pool.c), logging of allow / deny (the caller logs o->why; every "not relevant"
 * answer of a transfer is logged here, rate-limited: rq_custom_log_not_relevant).
 *
 * A job's TLS blobs point into the method state (CURL_BLOB_NOCOPY): the job holds a reference,
 * and the pool resets the easy handle before it frees the job, so the memory outlives every use.
 */
#include "auth/custom.h"

#include "auth/curl_tls.h"
#include "auth/custom_cache.h"
#include "core/log.h"
#include "core/ratelimit.h"
#include "core/stats.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define KEY_LEN RQ_CUSTOM_CACHE_KEY

/* snprintf for log texts that may be cut short on purpose (no truncation warning). */
__attribute__((format(printf, 3, 4))) static void textf(char *out, size_t size, const char *fmt,
                                                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, size, fmt, ap);
    va_end(ap);
}

struct rq_custom_method {
    _Atomic int refs;
    char *endpoint;
    char *url;
    char *ca;
    size_t ca_len;
    char *cert, *key;
    size_t cert_len, key_len;
    struct curl_slist *headers;    /* read-only once built: shared by every transfer */
    struct rq_custom_cache *cache; /* NULL = no cache */
    /* "not relevant" answers (transport failure, timeout, bad status, unreadable body, 422):
     * each is logged with its cause, at most RQ_RATELIMIT_BURST lines a second per method, the
     * rest counted and reported on the next line (a dead auth server under a connect storm must
     * not flood the log). Shared by the pool threads (rq_custom_log_not_relevant). Jobs that
     * end without a transfer (the pool's own FIFO timeout, shutdown) are not logged here. */
    struct rq_ratelimit nr_log;
};

struct custom_job {
    struct rq_auth_job base;
    struct rq_custom_method *m; /* a reference */
    char *body;                 /* holds the secrets */
    size_t body_len;
    char *username; /* for the principal; NULL = none */
    bool cacheable;
    bool reauth; /* {"type":"auth"}: a re-authentication (for the log line) */
    uint8_t key[KEY_LEN];
    /* the response */
    uint8_t *resp;
    size_t resp_len, resp_cap;
    bool too_big;
    char ctype[128];
    bool has_ctype;
    char cc[256];
    bool has_cc, cc_bad;
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- configuration ---------------------------------------------------------------------- */

static bool endpoint_ok(const char *e, const char **why)
{
    if (strncasecmp(e, "https://", 8) != 0) {
        *why = "endpoint must be an https:// URL";
        return false;
    }
    if (!e[8] || e[8] == '/') {
        *why = "endpoint has no host";
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)e; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '?' || *p == '#') {
            *why = "endpoint holds a blank, control, non-ASCII, '?' or '#' character";
            return false;
        }
    }
    return true;
}

static bool token_char(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool header_ok(const char *name, const char *value, const char **why)
{
    static const char *const own[] = {"content-type", "content-length", "host", "expect",
                                      "transfer-encoding"};
    if (!name || !*name || !value) {
        *why = "header without a name or value";
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (!token_char((unsigned char)*p)) {
            *why = "header name is not an HTTP token";
            return false;
        }
    }
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        if (strcasecmp(name, own[i]) == 0) {
            *why = "header is one the method sets itself";
            return false;
        }
    }
    if (strpbrk(value, "\r\n")) {
        *why = "header value holds CR or LF";
        return false;
    }
    return true;
}

static char *dup_mem(const char *p, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, p, len);
        d[len] = '\0';
    }
    return d;
}

static struct curl_slist *build_headers(const struct rq_custom_cfg *cfg)
{
    /* Exactly this Content-Type: the sample server refuses any parameter. "Expect:" stops
     * libcurl's 100-continue round trip for bodies over 1 KiB (client certificate chains). */
    struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *t = l ? curl_slist_append(l, "Expect:") : NULL;
    if (!t) {
        curl_slist_free_all(l);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_headers; i++) {
        size_t n = strlen(cfg->header_names[i]) + strlen(cfg->header_values[i]) + 3;
        char *line = malloc(n);
        if (!line)
            goto fail;
        snprintf(line, n, "%s: %s", cfg->header_names[i], cfg->header_values[i]);
        t = curl_slist_append(l, line);
        free(line);
        if (!t)
            goto fail;
    }
    return l;
fail:
    curl_slist_free_all(l);
    return NULL;
}

static void method_free(struct rq_custom_method *m)
{
    if (m->key)
        explicit_bzero(m->key, m->key_len);
    free(m->key);
    free(m->cert);
    free(m->ca);
    free(m->url);
    free(m->endpoint);
    curl_slist_free_all(m->headers);
    rq_custom_cache_free(m->cache);
    rq_ratelimit_destroy(&m->nr_log);
    free(m);
}

static const char *method_fill(struct rq_custom_method *m, const struct rq_custom_cfg *cfg)
{
    size_t elen = strlen(cfg->endpoint);
    bool slash = elen && cfg->endpoint[elen - 1] == '/';
    size_t ulen = elen + 32;
    m->endpoint = strdup(cfg->endpoint);
    m->url = malloc(ulen);
    if (!m->endpoint || !m->url)
        return "out of memory";
    snprintf(m->url, ulen, "%s%s?api-version=%s", cfg->endpoint, slash ? "" : "/",
             RQ_CUSTOM_API_VERSION);
    if (cfg->ca_pem && !(m->ca = dup_mem(cfg->ca_pem, cfg->ca_len)))
        return "out of memory";
    m->ca_len = cfg->ca_len;
    if (cfg->cert_pem) {
        m->cert = dup_mem(cfg->cert_pem, cfg->cert_len);
        m->key = dup_mem(cfg->key_pem, cfg->key_len);
        if (!m->cert || !m->key)
            return "out of memory";
        m->cert_len = cfg->cert_len;
        m->key_len = cfg->key_len;
    }
    if (!(m->headers = build_headers(cfg)))
        return "out of memory";
    if (cfg->cache_entries && !(m->cache = rq_custom_cache_new(cfg->cache_entries)))
        return "out of memory";
    return NULL;
}

struct rq_custom_method *rq_custom_method_new(const struct rq_custom_cfg *cfg, char *err,
                                              size_t errlen)
{
    const char *why = NULL;
    if (!cfg->endpoint || !endpoint_ok(cfg->endpoint, &why))
        goto bad;
    for (size_t i = 0; i < cfg->n_headers; i++)
        if (!header_ok(cfg->header_names[i], cfg->header_values[i], &why))
            goto bad;
    if (!cfg->cert_pem != !cfg->key_pem) {
        why = "a client certificate needs its key and a key its certificate";
        goto bad;
    }
    struct rq_custom_method *m = calloc(1, sizeof *m);
    if (!m) {
        why = "out of memory";
        goto bad;
    }
    atomic_init(&m->refs, 1);
    rq_ratelimit_init(&m->nr_log, RQ_RATELIMIT_BURST, RQ_RATELIMIT_INTERVAL_MS);
    if ((why = method_fill(m, cfg))) {
        method_free(m);
        goto bad;
    }
    return m;
bad:
    snprintf(err, errlen, "Custom: %s", why ? why : "no endpoint");
    return NULL;
}

void rq_custom_method_release(struct rq_custom_method *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        method_free(m);
}

const char *rq_custom_method_url(const struct rq_custom_method *m)
{
    return m->url;
}

/* ---- the cache key ------------------------------------------------------------------------ */

static void key_field(wc_Sha256 *h, const void *p, size_t len)
{
    /* presence and length first, so that no two credential sets hash the same bytes */
    uint8_t hdr[9] = {p != NULL};
    uint64_t l = p ? len : 0;
    for (int i = 0; i < 8; i++)
        hdr[1 + i] = (uint8_t)(l >> (8 * i));
    wc_Sha256Update(h, hdr, sizeof hdr);
    if (p && len)
        wc_Sha256Update(h, p, (word32)len);
}

static int cache_key(const struct rq_custom_method *m, const struct rq_custom_creds *c,
                     uint8_t out[KEY_LEN])
{
    if (c->username_len > UINT32_MAX || c->password_len > UINT32_MAX || c->certs_len > UINT32_MAX ||
        c->auth_method_len > UINT32_MAX || c->auth_data_len > UINT32_MAX)
        return -EINVAL;
    wc_Sha256 h;
    if (wc_InitSha256(&h) != 0)
        return -ENOMEM;
    key_field(&h, m->endpoint, strlen(m->endpoint));
    key_field(&h, c->username, c->username_len);
    key_field(&h, c->password, c->password_len);
    key_field(&h, c->certs, c->certs_len);
    key_field(&h, c->auth_method, c->auth_method_len);
    key_field(&h, c->auth_data, c->auth_data_len);
    int rc = wc_Sha256Final(&h, out);
    wc_Sha256Free(&h);
    return rc == 0 ? 0 : -ENOMEM;
}

/* ---- the cache --------------------------------------------------------------------------------
 */

int rq_custom_cache_lookup(struct rq_custom_method *m, const struct rq_custom_creds *cr,
                           int64_t now, struct rq_authn_outcome *o)
{
    uint8_t key[KEY_LEN];
    if (!m->cache || cache_key(m, cr, key) != 0)
        return 0;
    return rq_custom_cache_get(m->cache, key, cr->username, cr->username_len, now, o);
}

size_t rq_custom_cache_size(struct rq_custom_method *m)
{
    return m->cache ? rq_custom_cache_count(m->cache) : 0;
}

/* ---- the transfer ----------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct custom_job *j = arg;
    size_t n = size * nmemb;
    if (n > RQ_CUSTOM_MAX_BODY - j->resp_len) {
        j->too_big = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (j->resp_len + n > j->resp_cap) {
        size_t cap = j->resp_cap ? j->resp_cap : 1024;
        while (cap < j->resp_len + n)
            cap *= 2;
        uint8_t *r = realloc(j->resp, cap);
        if (!r)
            return 0;
        j->resp = r;
        j->resp_cap = cap;
    }
    memcpy(j->resp + j->resp_len, p, n);
    j->resp_len += n;
    return n;
}

static void keep_header(char *dst, size_t cap, bool *has, bool *bad, const char *v, size_t vlen)
{
    if (*has || vlen >= cap) {
        *bad = true; /* repeated or too long: not trusted (for Cache-Control: not cached) */
        return;
    }
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
    *has = true;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    struct custom_job *j = arg;
    size_t n = size * nmemb;
    const char *v;
    size_t vlen;
    bool ignored = false;
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        /* a new response (after a 1xx or a redirect): forget the previous headers */
        j->has_ctype = j->has_cc = j->cc_bad = false;
    } else if (rq_custom_header_match(line, n, "Content-Type", &v, &vlen)) {
        keep_header(j->ctype, sizeof j->ctype, &j->has_ctype, &ignored, v, vlen);
        if (ignored) /* a second or over-long Content-Type never equals application/json */
            snprintf(j->ctype, sizeof j->ctype, "invalid");
    } else if (rq_custom_header_match(line, n, "Cache-Control", &v, &vlen)) {
        keep_header(j->cc, sizeof j->cc, &j->has_cc, &j->cc_bad, v, vlen);
    }
    return n;
}

static int set_tls(struct custom_job *j, CURL *e)
{
    const struct rq_custom_method *m = j->m;
    struct rq_curl_tls t = {.ca = m->ca, .ca_len = m->ca_len, .cert = m->cert,
                            .cert_len = m->cert_len, .key = m->key, .key_len = m->key_len};
    return rq_curl_tls_apply(e, &t) == CURLE_OK ? 0 : -1;
}

static int job_start(struct rq_auth_job *base, CURL *e, char *why, size_t whylen)
{
    struct custom_job *j = (struct custom_job *)base;
    CURLcode rc = curl_easy_setopt(e, CURLOPT_URL, j->m->url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->m->headers);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
    if (rc != CURLE_OK || set_tls(j, e) != 0) {
        snprintf(why, whylen, "Custom: libcurl refused an option (%s)",
                 rc != CURLE_OK ? curl_easy_strerror(rc) : "TLS material from memory");
        return -1;
    }
    return 0;
}

static void wipe_body(struct custom_job *j)
{
    if (j->body) {
        explicit_bzero(j->body, j->body_len);
        free(j->body);
        j->body = NULL;
    }
}

static void transport_failed(struct custom_job *j, CURLcode rc, struct rq_authn_outcome *o)
{
    char detail[160];
    o->verdict = RQ_AUTHN_NOT_RELEVANT;
    if (j->too_big) {
        snprintf(o->why, sizeof o->why, "auth server response body over %d bytes",
                 RQ_CUSTOM_MAX_BODY);
        return;
    }
    /* libcurl's detail may quote the peer (certificate names, TLS alerts): escaped */
    rq_log_escape(detail, sizeof detail, j->errbuf, strnlen(j->errbuf, sizeof j->errbuf));
    textf(o->why, sizeof o->why, "auth server request failed: %s%s%s%s", curl_easy_strerror(rc),
          detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
}

static int fill_principal(struct custom_job *j, const struct rq_custom_verdict *v,
                          struct rq_authn_outcome *o)
{
    struct rq_principal *p = &o->principal;
    if (j->username && !(p->username = strdup(j->username)))
        return -ENOMEM;
    p->expiry = v->has_expiry ? v->expiry : 0;
    for (size_t i = 0; i < v->n_attrs; i++)
        if (rq_principal_add_attr(p, v->attrs[i].key, v->attrs[i].value) != 0)
            return -ENOMEM;
    return 0;
}

static void map_verdict(struct custom_job *j, const struct rq_custom_verdict *v,
                        struct rq_authn_outcome *o)
{
    char peer[120];
    if (v->outcome == RQ_CUSTOM_PASS) {
        o->verdict = RQ_AUTHN_ALLOW;
        if (fill_principal(j, v, o) != 0) {
            rq_authn_outcome_free(o);
            rq_authn_outcome_init(o);
            o->verdict = RQ_AUTHN_NOT_RELEVANT;
            snprintf(o->why, sizeof o->why, "out of memory reading the auth server's answer");
        }
    } else if (v->outcome == RQ_CUSTOM_FAIL) {
        o->verdict = RQ_AUTHN_DENY;
        o->reason = v->reason;
        rq_log_escape_str(peer, sizeof peer, v->message);
        textf(o->why, sizeof o->why, "auth server: %s%s%s%s", v->why[0] ? v->why : "denied",
              v->message ? " (message \"" : "", peer, v->message ? "\")" : "");
    } else {
        o->verdict = RQ_AUTHN_NOT_RELEVANT;
        rq_log_escape_str(peer, sizeof peer, v->supported_versions);
        textf(o->why, sizeof o->why, "auth server: %s%s%s%s", v->why,
              v->supported_versions ? " (supported versions: " : "", peer,
              v->supported_versions ? ")" : "");
    }
}

static void maybe_cache(struct custom_job *j, long status, const struct rq_authn_outcome *o)
{
    uint32_t max_age;
    if (!j->cacheable || !j->m->cache || (status != 200 && status != 403) ||
        (o->verdict != RQ_AUTHN_ALLOW && o->verdict != RQ_AUTHN_DENY) || !j->has_cc || j->cc_bad ||
        !rq_custom_max_age(j->cc, strlen(j->cc), &max_age))
        return;
    int64_t now = time(NULL);
    int64_t until = now + max_age;
    if (o->verdict == RQ_AUTHN_ALLOW && o->principal.expiry && o->principal.expiry < until)
        until = o->principal.expiry;
    if (until > now)
        rq_custom_cache_put(j->m->cache, j->key, o, now, until);
}

/* The endpoint as log lines show it: without any user:password@ part. */
static const char *endpoint_for_log(const struct rq_custom_method *m, char *buf, size_t size)
{
    const char *host = m->endpoint + 8; /* after "https://" (checked at configuration) */
    size_t hl = strcspn(host, "/");
    const char *at = memchr(host, '@', hl);
    if (at)
        host = at + 1;
    textf(buf, size, "https://%s", host);
    return buf;
}

void rq_custom_log_not_relevant(struct rq_custom_method *m, const struct rq_authn_outcome *o,
                                bool reauth)
{
    uint64_t skipped = 0;
    if (RQ_LOG_WARN > rq_log_level_now() ||
        !rq_ratelimit_allow(&m->nr_log, rq_ratelimit_now_ms(), &skipped))
        return;
    char ep[160], more[64] = "";
    if (skipped)
        snprintf(more, sizeof more, " (%llu similar suppressed)", (unsigned long long)skipped);
    rq_log(RQ_LOG_WARN, NULL, "Custom %s: %s: not relevant to the %s%s",
           endpoint_for_log(m, ep, sizeof ep), o->why,
           reauth ? "re-authentication (AUTH 0x18, the client keeps its credentials)"
                  : "CONNECT (the chain goes on with the next method)",
           more);
}

static void job_finish(struct rq_auth_job *base, CURL *e, CURLcode rc, struct rq_authn_outcome *o)
{
    struct custom_job *j = (struct custom_job *)base;
    wipe_body(j); /* sent (or never will be) */
    o->method = "Custom";
    if (rc != CURLE_OK) {
        rq_stats_auth_http(RQ_AUTH_SRV_CUSTOM, 0);
        transport_failed(j, rc, o);
        rq_custom_log_not_relevant(j->m, o, j->reauth);
        return;
    }
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    rq_stats_auth_http(RQ_AUTH_SRV_CUSTOM, status);
    struct rq_custom_verdict v;
    rq_custom_parse_response((int)status, j->has_ctype ? j->ctype : NULL, j->resp, j->resp_len,
                             time(NULL), &v);
    map_verdict(j, &v, o);
    rq_custom_verdict_free(&v);
    maybe_cache(j, status, o);
    if (o->verdict == RQ_AUTHN_NOT_RELEVANT) /* status, body, 422 */
        rq_custom_log_not_relevant(j->m, o, j->reauth);
}

static void job_free(struct rq_auth_job *base)
{
    struct custom_job *j = (struct custom_job *)base;
    wipe_body(j);
    free(j->resp);
    free(j->username);
    rq_custom_method_release(j->m);
    free(j);
}

static const struct rq_auth_job_ops custom_job_ops = {
    .start = job_start,
    .finish = job_finish,
    .free = job_free,
};

/* ---- building jobs ------------------------------------------------------------------------ */

static struct custom_job *job_new(struct rq_custom_method *m, const char *username,
                                  size_t username_len, const char **why)
{
    struct custom_job *j = calloc(1, sizeof *j);
    if (!j || (username && !(j->username = dup_mem(username, username_len)))) {
        free(j);
        *why = "out of memory";
        return NULL;
    }
    j->base.ops = &custom_job_ops;
    atomic_fetch_add(&m->refs, 1);
    j->m = m;
    return j;
}

struct rq_auth_job *rq_custom_job_connect(struct rq_custom_method *m,
                                          const struct rq_custom_creds *c, const char **why)
{
    struct custom_job *j = job_new(m, c->username, c->username_len, why);
    if (!j)
        return NULL;
    if (!(j->body = rq_custom_build_connect(c, &j->body_len, why))) {
        job_free(&j->base);
        return NULL;
    }
    j->cacheable = m->cache && cache_key(m, c, j->key) == 0;
    return &j->base;
}

struct rq_auth_job *rq_custom_job_auth(struct rq_custom_method *m, const char *username,
                                       const char *method, size_t method_len, const uint8_t *data,
                                       size_t data_len, const char **why)
{
    struct custom_job *j = job_new(m, username, username ? strlen(username) : 0, why);
    if (!j)
        return NULL;
    j->reauth = true;
    j->body = rq_custom_build_auth(method, method_len, data, data_len, &j->body_len, why);
    if (!j->body) {
        job_free(&j->base);
        return NULL;
    }
    return &j->base;
}

/* ---- credentials from the chain ------------------------------------------------------------ */

#define PEM_BEGIN "-----BEGIN CERTIFICATE-----\n"
#define PEM_END "-----END CERTIFICATE-----\n"

/* Appends one certificate's PEM block at out; returns the bytes written or 0 on failure. cap is
 * what pem_size counted for it. */
static size_t pem_block(const uint8_t *der, size_t len, char *out)
{
    size_t b64_len = (len + 2) / 3 * 4;
    char *b64 = malloc(b64_len + 1);
    word32 olen = (word32)(b64_len + 1);
    if (!b64 || Base64_Encode_NoNl(der, (word32)len, (byte *)b64, &olen) != 0) {
        free(b64);
        return 0;
    }
    char *p = out;
    memcpy(p, PEM_BEGIN, sizeof PEM_BEGIN - 1);
    p += sizeof PEM_BEGIN - 1;
    for (word32 i = 0; i < olen; i += 64) {
        word32 n = olen - i < 64 ? olen - i : 64;
        memcpy(p, b64 + i, n);
        p += n;
        *p++ = '\n';
    }
    memcpy(p, PEM_END, sizeof PEM_END - 1);
    p += sizeof PEM_END - 1;
    free(b64);
    return (size_t)(p - out);
}

char *rq_custom_pem_chain(const uint8_t *const *der, const size_t *lens, size_t n, size_t *len)
{
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0 || lens[i] > (1u << 24))
            return NULL;
        size_t b64 = (lens[i] + 2) / 3 * 4;
        cap += sizeof PEM_BEGIN + sizeof PEM_END + b64 + b64 / 64 + 1;
    }
    char *out = n ? malloc(cap) : NULL;
    size_t at = 0;
    for (size_t i = 0; out && i < n; i++) {
        size_t w = pem_block(der[i], lens[i], out + at);
        if (w == 0) {
            free(out);
            return NULL;
        }
        at += w;
    }
    if (out) {
        out[at] = '\0';
        *len = at;
    }
    return out;
}

void rq_custom_creds_from(const struct rq_authn_creds *a, const char *pem, size_t pem_len,
                          struct rq_custom_creds *out)
{
    memset(out, 0, sizeof *out);
    if (a->has_username) {
        out->username = (const char *)a->username;
        out->username_len = a->username_len;
    }
    if (a->has_password) {
        out->password = a->password;
        out->password_len = a->password_len;
    }
    out->certs = pem;
    out->certs_len = pem ? pem_len : 0;
    if (a->has_auth_method) {
        out->auth_method = (const char *)a->auth_method;
        out->auth_method_len = a->auth_method_len;
        out->auth_data = a->auth_data; /* NULL = no Authentication Data */
        out->auth_data_len = a->auth_data ? a->auth_data_len : 0;
    }
}
