/* ServiceAccountToken messages (AIO-INTERFACES.md 4.2-4.4, 5.1), pure functions: which token a
 * CONNECT carries, the TokenReview request body, the TokenReview and ServiceAccount answers, and
 * the `exp` claim of a JWT. No I/O, no threads; every input may be hostile (fuzzed:
 * tests/fuzz/fuzz_sat_msg.c). */
#ifndef RQ_SAT_MSG_H
#define RQ_SAT_MSG_H

#include "auth/authn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RQ_SAT_METHOD "K8S-SAT"
#define RQ_SAT_MAX_TOKEN 16384  /* a bound SAT is ~1 KiB; more is refused unread */
#define RQ_SAT_MAX_BODY 1048576 /* API answers read at most this much */

/* Is this CONNECT for ServiceAccountToken? v5 Authentication Method exactly "K8S-SAT": the token
 * is the Authentication Data; otherwise a user name starting with "K8S-SAT" (any version): the
 * token is the password. *tok is borrowed from c (NULL/0 when the field is absent). */
bool rq_sat_relevant(const struct rq_authn_creds *c, const uint8_t **tok, size_t *len);

/* NULL when the token cannot be one (empty, over RQ_SAT_MAX_TOKEN, or bytes outside printable
 * ASCII: JWTs are base64url and dots); otherwise why is NULL. */
const char *rq_sat_token_problem(const uint8_t *tok, size_t len);

/* {"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":..,
 * "audiences":[..]}}: malloc'd, NUL-terminated; NULL when out of memory. Holds the token. */
char *rq_sat_review_body(const uint8_t *tok, size_t len, char *const *auds, size_t n_auds,
                         size_t *out_len);

/* What a TokenReview answer says. */
struct rq_sat_review {
    bool authenticated;   /* status.authenticated (missing = false) */
    bool audience_ok;     /* status.audiences intersects the configured audiences */
    bool service_account; /* username is system:serviceaccount:NS:NAME */
    char username[320];
    char ns[64];
    char name[254];
    char error[200]; /* status.error, escaped for the log; "" when none */
};

/* Parses a 2xx TokenReview answer. 0, or -1 with *why (not JSON, no status, wrong kind). */
int rq_sat_parse_review(const char *body, size_t len, char *const *auds, size_t n_auds,
                        struct rq_sat_review *r, const char **why);

/* Parses a ServiceAccount: its annotations with prefix aio-broker-auth/ become attributes of p
 * (name = the rest of the key), and those with the legacy prefix aio-mq-broker-auth/ too unless
 * the current prefix has the same name. 0, -1 with *why, or -ENOMEM. */
int rq_sat_parse_sa(const char *body, size_t len, struct rq_principal *p, const char **why);

/* The `exp` claim of a JWT's payload (second segment, base64url JSON), without checking the
 * signature (only after a successful TokenReview). 0 and *exp, or -1. */
int rq_sat_jwt_exp(const uint8_t *tok, size_t len, int64_t *exp);

#endif
