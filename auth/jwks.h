/* Local verification of Kubernetes service account tokens (AIO-INTERFACES.md 4.5): the issuer's
 * OIDC discovery document and JWKS, and the checks of a JWT against them with wolfCrypt
 * (RS256, ES256): signature by kid, iss, aud intersecting the audiences, nbf <= now < exp with a
 * skew. Used by ServiceAccountToken's localVerification: Fallback only while TokenReview
 * cannot be reached: a locally verified token may belong to a deleted Pod or ServiceAccount
 * until its exp (no revocation check is possible offline).
 *
 * Pure: no I/O, no threads; a key set is immutable once parsed and may be shared by threads.
 * Every input may be hostile (fuzzed: tests/fuzz/fuzz_jwks.c). */
#ifndef RQ_JWKS_H
#define RQ_JWKS_H

#include <stddef.h>
#include <stdint.h>

#define RQ_JWKS_MAX_KEYS 32
#define RQ_JWKS_SKEW_S 30

struct rq_jwks;

/* Discovery: {"issuer": .., "jwks_uri": ..}. 0 with both copied (NUL-terminated, truncation
 * refused), or -1 with *why. */
int rq_jwks_parse_discovery(const char *body, size_t len, char *issuer, size_t issuer_cap,
                            char *jwks_uri, size_t uri_cap, const char **why);

/* A JWKS document: the RSA (n, e) and EC P-256 (x, y) signing keys with a kid (others are
 * skipped). NULL with *why when none is usable or it is not a JWKS. */
struct rq_jwks *rq_jwks_parse(const char *body, size_t len, const char **why);
void rq_jwks_free(struct rq_jwks *k);
size_t rq_jwks_count(const struct rq_jwks *k);

/* What a verified token says. */
struct rq_jwt_claims {
    int64_t exp;
    char username[320]; /* system:serviceaccount:NS:NAME (from kubernetes.io, else sub) */
    char ns[64], name[254];
};

/* 0 when tok verifies (see the header comment) for issuer and one of auds at now; -1 with a
 * static *why otherwise. */
int rq_jwks_verify(const struct rq_jwks *k, const uint8_t *tok, size_t len, const char *issuer,
                   char *const *auds, size_t n_auds, int64_t now, struct rq_jwt_claims *out,
                   const char **why);

#endif
