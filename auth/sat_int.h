/* Inside the ServiceAccountToken method: state shared by sat.c (checks, flights) and
 * sat_job.c (the HTTP requests and what their answers mean). */
#ifndef RQ_SAT_INT_H
#define RQ_SAT_INT_H

#include "auth/jwks.h"
#include "auth/sat.h"
#include "auth/sat_msg.h"

#include <stdatomic.h>
#include <stdbool.h>

struct sat_jwks; /* sat_jwks.c: the issuer's keys for localVerification: Fallback */

struct rq_sat_method {
    _Atomic int refs;
    struct rq_kube *kube;
    char **auds;
    size_t n_auds;
    struct sat_jwks *jw; /* NULL: localVerification Disabled */
};

enum { FLIGHT_TOKEN = 1, FLIGHT_SA = 2, FLIGHT_DISCOVERY = 3, FLIGHT_JWKS = 4 };

/* One request in flight and what its done() needs; the pool job's tag points at it. A token
 * flight is reviewed, then waits on its ServiceAccount's flight (as a waiter of it). */
struct sat_flight {
    int kind;
    struct rq_sat_ctx *ctx;
    struct rq_sat_method *m; /* a reference */
    uint8_t key[RQ_SAT_KEY];
    char *token; /* FLIGHT_TOKEN: the token (for its exp after the review); wiped */
    size_t token_len;
    char ns[64], name[254];    /* the service account (from the review, or asked for) */
    struct rq_authn_outcome o; /* FLIGHT_TOKEN: the review's ALLOW while the SA is read */
    bool unreachable;          /* FLIGHT_TOKEN: the API did not answer (transport, timeout, 5xx) */
    bool no_cache;             /* the answer is not cached (a local verification) */
    bool refresh;              /* FLIGHT_SA: a stale-while-revalidate read nobody waits on */
    char path[300];            /* FLIGHT_JWKS: the JWKS path on the API server */
    char issuer[256];          /* FLIGHT_DISCOVERY / FLIGHT_JWKS: the discovery document's issuer */
    struct rq_jwks *keys;      /* FLIGHT_JWKS: the parsed answer until done() installs it */
};

void rq_sat_method_ref(struct rq_sat_method *m);

/* Jobs (they point at f, do not own it). NULL with *why when out of memory. */
struct rq_auth_job *rq_sat_job_review(struct sat_flight *f, const char **why);
struct rq_auth_job *rq_sat_job_sa(struct sat_flight *f, const char **why);

/* Fills o as a DENY 0x88 Server unavailable (never cached). */
void rq_sat_unavailable(struct rq_authn_outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

extern _Atomic uint64_t rq_sat_n_requests;

/* sat_jwks.c. New holder (no keys yet) / freed with the method. */
struct sat_jwks *rq_sat_jwks_new(void);
void rq_sat_jwks_free(struct sat_jwks *jw);
/* Starts a discovery + JWKS fetch when one is due (at once, then every 10 minutes, 30 s after a
 * failure) and none runs. Any thread. */
void rq_sat_jwks_maybe_refresh(struct rq_sat_method *m, struct rq_sat_ctx *ctx, int64_t now);
/* finish() of FLIGHT_DISCOVERY / FLIGHT_JWKS jobs on a 200: reads the body into f (o: ALLOW
 * when usable, else a DENY with why). */
void rq_sat_jwks_answer(struct sat_flight *f, const char *body, size_t len,
                        struct rq_authn_outcome *o);
/* done() of FLIGHT_DISCOVERY / FLIGHT_JWKS flights (consumes f). */
void rq_sat_jwks_landed(struct sat_flight *f, const struct rq_authn_outcome *o);
/* Verifies f's token locally into o (ALLOW, or DENY 0x87); false when there are no keys (o is
 * then left as it was). */
bool rq_sat_jwks_verify(struct sat_flight *f, struct rq_authn_outcome *o);

/* sat.c, for sat_jwks.c */
struct sat_flight *rq_sat_flight_new(int kind, struct rq_sat_ctx *ctx, struct rq_sat_method *m);
void rq_sat_flight_free(struct sat_flight *f);
void rq_sat_launch(struct sat_flight *f);

#endif
