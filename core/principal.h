/* Who a connection authenticated as, and the verdict that says so: core's own types, so that
 * core never includes auth/ (net/ translates the chain's outcome into these, net/authn_glue.c).
 *
 * Ownership: a principal is heap-allocated and owned by exactly one holder at a time: the
 * verdict that carries it, then the client (rq_client.principal) once the CONNECT is allowed,
 * then the hand-over record while the connection moves to the shard of its session. Nobody
 * copies it, so the owning shard never authenticates again. Authorization (a later issue) and
 * the credential-expiry timer read it; nothing writes it after the CONNECT (re-authentication
 * replaces it whole).
 *
 * Threads: none of its own. A principal or a verdict is touched by one thread at a time; a
 * verdict built on an auth pool thread moves to a shard through its inbox
 * (RQ_POST_AUTH_VERDICT, see net/post.h). */
#ifndef RQ_PRINCIPAL_H
#define RQ_PRINCIPAL_H

#include <stddef.h>
#include <stdint.h>

/* auth/authn.h uses this same struct for the outcome of its chain. */
struct rq_principal {
    char *username; /* heap, NULL when none */
    size_t n_attrs;
    char **keys;        /* heap array of heap strings */
    char **values;      /* same */
    int64_t expiry;     /* Unix seconds when the credentials expire; 0 = never */
    const char *method; /* the method that authenticated ("X509"): a static string, or NULL */
    /* 1 + the position of that method in the port's chain (auth/authn.h): re-authentication
     * runs that method again, in the chain of the generation the connection pinned. 0: none. */
    uint32_t chain_pos;
};

/* Heap copy of *src, taking its contents (src is left empty). NULL when out of memory (src
 * keeps its contents then). */
struct rq_principal *rq_principal_take(struct rq_principal *src);
/* Frees the contents, leaves *p empty. */
void rq_principal_clear(struct rq_principal *p);
/* Frees a heap principal (NULL is fine). */
void rq_principal_free(struct rq_principal *p);
/* The value of attribute `key`, or NULL. */
const char *rq_principal_attr(const struct rq_principal *p, const char *key);

/* The answer of a port's authentication chain to a CONNECT, in core's terms. */
enum rq_auth_result {
    RQ_AUTH_OFF = 0, /* the port has no authentication chain */
    RQ_AUTH_ALLOW,
    RQ_AUTH_DENY,
    RQ_AUTH_PENDING, /* decided elsewhere: the verdict arrives later (rq_client_auth_resume,
                        or rq_client_reauth_resume for a re-authentication) */
    /* Re-authentication only: the method could not decide now (auth server unreachable,
     * timeout, unusable answer): AUTH 0x18, the connection keeps its old principal. */
    RQ_AUTH_RETRY,
};

struct rq_auth_verdict {
    uint64_t conn;      /* the connection it is for (net/post.h rq_conn_id); posted verdicts only */
    int result;         /* enum rq_auth_result */
    uint8_t reason;     /* DENY: the v5 CONNACK reason code (>= 0x80; 0x87 when unset) */
    const char *method; /* the method that decided (static string), or NULL */
    char why[240];      /* for the log; never secrets */
    struct rq_principal *principal; /* ALLOW: heap, owned by the verdict until core takes it */
};

/* A heap verdict for RQ_POST_AUTH_VERDICT (zeroed). NULL when out of memory. */
struct rq_auth_verdict *rq_auth_verdict_new(uint64_t conn, int result);
/* Frees a heap verdict and the principal it still owns (NULL is fine). */
void rq_auth_verdict_free(struct rq_auth_verdict *v);

#endif
