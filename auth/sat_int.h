/* Inside the ServiceAccountToken method: state shared by sat.c (checks, flights) and
 * sat_job.c (the HTTP requests and what their answers mean). */
#ifndef RQ_SAT_INT_H
#define RQ_SAT_INT_H

#include "auth/sat.h"
#include "auth/sat_msg.h"

#include <stdatomic.h>

struct rq_sat_method {
    _Atomic int refs;
    struct rq_kube *kube;
    char **auds;
    size_t n_auds;
};

enum { FLIGHT_TOKEN = 1, FLIGHT_SA = 2 };

/* One request in flight and what its done() needs; the pool job's tag points at it. A token
 * flight is reviewed, then waits on its ServiceAccount's flight (as a waiter of it). */
struct sat_flight {
    int kind;
    struct rq_sat_ctx *ctx;
    struct rq_sat_method *m; /* a reference */
    uint8_t key[RQ_SAT_KEY];
    char *token; /* FLIGHT_TOKEN: the token (for its exp after the review); wiped */
    size_t token_len;
    char ns[64], name[254];     /* the service account (from the review, or asked for) */
    struct rq_authn_outcome o;  /* FLIGHT_TOKEN: the review's ALLOW while the SA is read */
};

void rq_sat_method_ref(struct rq_sat_method *m);

/* Jobs (they point at f, do not own it). NULL with *why when out of memory. */
struct rq_auth_job *rq_sat_job_review(struct sat_flight *f, const char **why);
struct rq_auth_job *rq_sat_job_sa(struct sat_flight *f, const char **why);

/* Fills o as a DENY 0x88 Server unavailable (never cached). */
void rq_sat_unavailable(struct rq_authn_outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

extern _Atomic uint64_t rq_sat_n_requests;

#endif
