/* The Custom authentication method (AIO-INTERFACES.md section 1): the broker POSTs a client's
 * credentials to an HTTPS auth server (API 0.5.0) and the response decides. The HTTP exchange
 * runs on the auth service pool (auth/pool.h); this module builds the pool jobs and reads their
 * responses into an rq_authn_outcome. Message formats are in auth/custom_msg.h.
 *
 * How to use it (the wiring):
 *  1. Control thread: m = rq_custom_method_new(&cfg, err, len) from the configuration (endpoint,
 *     CA bundle, client certificate and key, headers, cache size). m is immutable afterwards
 *     except for its verdict cache (internally locked) and its reference count.
 *  2. Shard, per CONNECT: creds = rq_custom_creds_from(the chain's creds, PEM of the client's
 *     DER certificates from rq_custom_pem_chain). rq_custom_cache_lookup(m, creds, now, &o) == 1
 *     -> o holds the verdict, no request. Otherwise job = rq_custom_job_connect(m, creds, &why)
 *     (copies what it needs, including the secrets, into the JSON body; the creds may be freed
 *     right after), then rq_auth_pool_submit(pool, job, tag); if submit fails the job is still
 *     the caller's: free it with job->ops->free(job) (-EBUSY -> CONNACK 0x89 / 3.1.1 return
 *     code 3). MQTT v5 re-authentication: rq_custom_job_auth, same flow, never cached.
 *  3. The pool's done(ctx, tag, o) gets the outcome (o->method = "Custom"):
 *      - ALLOW: principal.username = the CONNECT user name (NULL without one), attributes and
 *        expiry (0 = none) from the response.
 *      - DENY: o->reason = the v5 CONNACK reason (>= 0x80; 0x87 when the server's was below);
 *        the 3.1.1 return code is rq_custom_rc311(o->reason) (0x86 -> 4, others -> 5).
 *      - NOT_RELEVANT: connection, TLS or timeout failure, a status other than 200/403, 422, an
 *        unreadable or oversized body; the chain goes on (rq_authn_chain_resume).
 *     o->why never holds a secret; server text in it is escaped with rq_log_escape.
 *     Every NOT_RELEVANT answer of a transfer (connection, TLS, timeout, status, body, 422) is
 *     logged by finish with rq_custom_log_not_relevant (rate-limited per method state), so a
 *     failing auth server is visible without flooding the log.
 *  4. Each job holds a reference on m, so a configuration reload may release m
 *     (rq_custom_method_release) while requests are in flight: the last job frees it.
 *
 * Secrets: the request body (password, authentication data) lives in the job only, is handed to
 * libcurl by pointer and is wiped (explicit_bzero) when the transfer ends and again when the job
 * is freed. Certificates and keys go to libcurl from memory (CURLOPT_*_BLOB), never files.
 *
 * Verdict cache (optional, cfg.cache_entries > 0): a 200 or 403 carrying Cache-Control max-age=N
 * (see rq_custom_max_age) is cached under SHA-256(endpoint, every credential of the CONNECT) for
 * min(N, expiry) seconds. One cache per method state, shared by the pool threads (which store)
 * and the shards (which look up) under a mutex. Bounded: when cache_entries are held, expired
 * entries are swept (at most once a second) and if it is still full the new verdict is not
 * cached (refuse when full: no eviction of live verdicts, no LRU bookkeeping on the hot path).
 * Transport errors, other statuses and re-authentication answers are never cached. */
#ifndef RQ_CUSTOM_H
#define RQ_CUSTOM_H

#include "auth/authn.h"
#include "auth/custom_msg.h"
#include "auth/pool.h"

#include <stddef.h>
#include <stdint.h>

struct rq_custom_cfg {
    const char *endpoint; /* "https://host[:port][/path]"; no query, no fragment */
    const char *ca_pem;   /* PEM bundle that verifies the server; NULL = the system's roots */
    size_t ca_len;
    const char *cert_pem; /* client certificate chain (mTLS), PEM; NULL = none */
    size_t cert_len;
    const char *key_pem; /* its private key, PEM (required with cert_pem) */
    size_t key_len;
    const char *const *header_names; /* added to every request */
    const char *const *header_values;
    size_t n_headers;
    uint32_t cache_entries; /* verdict cache size; 0 = no cache */
};

struct rq_custom_method;

/* Validates and copies cfg (the PEM texts and headers are copied). NULL with err set when the
 * endpoint is not https or malformed, a header name is not an HTTP token or is one the method
 * sets itself (Content-Type, Content-Length, Host, Expect, Transfer-Encoding), a value holds CR,
 * LF or NUL, or cert and key are not given together. Certificates are checked by libcurl on
 * first use (a bad one makes every request NOT_RELEVANT with the TLS error as why). */
struct rq_custom_method *rq_custom_method_new(const struct rq_custom_cfg *cfg, char *err,
                                              size_t errlen);
/* Logs a NOT_RELEVANT answer of method m (a warning with o->why, the endpoint without any user
 * info, and what follows: the chain goes on for a CONNECT, AUTH 0x18 for a re-authentication),
 * at most RQ_RATELIMIT_BURST lines a second per method state; the next line written says how
 * many similar ones were suppressed (core/ratelimit.h). Any thread. */
void rq_custom_log_not_relevant(struct rq_custom_method *m, const struct rq_authn_outcome *o,
                                bool reauth);
/* Drops the caller's reference; jobs in flight keep theirs. NULL is fine. Any thread. */
void rq_custom_method_release(struct rq_custom_method *m);
/* The request URL: "<endpoint>/?api-version=0.5.0" (one '/' whatever the endpoint ends with). */
const char *rq_custom_method_url(const struct rq_custom_method *m);

/* A CONNECT request job. NULL with *why set (bad text field, out of memory). Any thread. */
struct rq_auth_job *rq_custom_job_connect(struct rq_custom_method *m,
                                          const struct rq_custom_creds *c, const char **why);
/* A re-authentication job (v5 AUTH 0x19); username (may be NULL) is the connection's, for the
 * principal of the answer. */
struct rq_auth_job *rq_custom_job_auth(struct rq_custom_method *m, const char *username,
                                       const char *method, size_t method_len, const uint8_t *data,
                                       size_t data_len, const char **why);

/* The "certs" text for a client's certificates: each DER certificate as a PEM block (64-column
 * base64), in the order given (leaf first). malloc'd and NUL-terminated, *len without the NUL;
 * NULL when n is 0 or out of memory. Any thread. */
char *rq_custom_pem_chain(const uint8_t *const *der, const size_t *lens, size_t n, size_t *len);

/* The Custom credentials of what the chain hands a method: username and password when present,
 * the v5 Authentication Method and Data when a method is present, certs = pem/pem_len (from
 * rq_custom_pem_chain over a->certs, or NULL). Pointers are borrowed from a and pem. */
void rq_custom_creds_from(const struct rq_authn_creds *a, const char *pem, size_t pem_len,
                          struct rq_custom_creds *out);

/* Cache lookup for a CONNECT: 1 and *o filled (ALLOW / DENY as from a response; o must be
 * initialised and empty) on a live hit, 0 on a miss or without a cache, -ENOMEM. Any thread. */
int rq_custom_cache_lookup(struct rq_custom_method *m, const struct rq_custom_creds *c, int64_t now,
                           struct rq_authn_outcome *o);
/* Entries held (tests, stats). */
size_t rq_custom_cache_size(struct rq_custom_method *m);

#endif
