/* Authentication: an ordered chain of methods per listener port (BrokerAuthentication).
 * For each method in order: are the credentials relevant to it? If so, are they valid? The first
 * relevant method decides (valid -> allow, invalid -> deny); nothing relevant -> deny. A method
 * may answer "pending" (its check runs elsewhere, e.g. an HTTPS call on the auth service pool);
 * the chain then resumes from that method with its answer (rq_authn_chain_resume).
 *
 * Threads: a chain is built by the control thread from a config snapshot and is read-only
 * afterwards; any shard may run it concurrently. */
#ifndef RQ_AUTHN_H
#define RQ_AUTHN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/principal.h"

enum rq_authn_verdict {
    RQ_AUTHN_NOT_RELEVANT = 0, /* not this method's credentials (or its server unreachable) */
    RQ_AUTHN_ALLOW = 1,
    RQ_AUTHN_DENY = 2,
    RQ_AUTHN_PENDING = 3,
};

/* What a client presented, borrowed for the duration of the call. */
struct rq_authn_creds {
    uint8_t version; /* 4 = 3.1.1, 5 = 5.0 */
    bool has_username, has_password, has_auth_method;
    const uint8_t *username;
    uint32_t username_len;
    const uint8_t *password; /* never logged */
    uint32_t password_len;
    const uint8_t *auth_method;
    uint32_t auth_method_len;
    const uint8_t *auth_data; /* never logged */
    uint32_t auth_data_len;
    const uint8_t *const *certs; /* TLS client's verified path, leaf to trust anchor, DER */
    const size_t *cert_lens;
    size_t n_certs;
    int64_t now; /* Unix seconds */
    uint64_t conn_id; /* the connection (net/post.h rq_conn_id): a pending method tags its
                         request with it, so that its verdict finds the connection again */
};

/* Who the client is once allowed (struct rq_principal, core/principal.h: username, attributes,
 * expiry, method): used by authorization and logs. Owned by the outcome. */

struct rq_authn_outcome {
    int verdict;            /* enum rq_authn_verdict */
    uint8_t reason;         /* DENY: the v5 CONNACK reason code (0x87 by default) */
    const char *method;     /* the method that decided ("X509"), or NULL */
    char why[240];          /* for the log; never secrets */
    struct rq_principal principal; /* ALLOW */
};

struct rq_authn_method_ops {
    const char *name;
    /* Fills o (verdict, and reason/why on deny, principal on allow). Must not block. */
    void (*check)(const void *state, const struct rq_authn_creds *c, struct rq_authn_outcome *o);
    void (*free)(void *state);
};

struct rq_authn_chain;

struct rq_authn_chain *rq_authn_chain_new(const char *name);
/* Appends a method; the chain owns state from now on (freed with ops->free). 0 or -ENOMEM. */
int rq_authn_chain_add(struct rq_authn_chain *ch, const struct rq_authn_method_ops *ops,
                       void *state);
void rq_authn_chain_free(struct rq_authn_chain *ch);
const char *rq_authn_chain_name(const struct rq_authn_chain *ch);
size_t rq_authn_chain_len(const struct rq_authn_chain *ch);
/* True when some method of the chain is X509 (the port then asks for client certificates). */
bool rq_authn_chain_has(const struct rq_authn_chain *ch, const char *method);

/* Runs the chain from method `start` (0 for a new client). Returns the verdict, also in o.
 * PENDING: *pending_at = the method that is pending; call rq_authn_chain_resume later. */
int rq_authn_chain_run(const struct rq_authn_chain *ch, size_t start,
                       const struct rq_authn_creds *c, struct rq_authn_outcome *o,
                       size_t *pending_at);
/* A pending method answered (in o): allow/deny end the chain; not relevant goes on with the
 * next method. Returns the verdict. */
int rq_authn_chain_resume(const struct rq_authn_chain *ch, size_t pending_at,
                          const struct rq_authn_creds *c, struct rq_authn_outcome *o,
                          size_t *next_pending);

void rq_authn_outcome_init(struct rq_authn_outcome *o);
void rq_authn_outcome_free(struct rq_authn_outcome *o);
/* Adds an attribute to a principal (copies). 0 or -ENOMEM. */
int rq_principal_add_attr(struct rq_principal *p, const char *key, const char *value);

/* ---- X509 method (auth/x509.c) ---- */

struct rq_x509_rule;

/* ca_pem: the trusted client CA bundle (roots or intermediates): a client's verified path must
 * end at one of them. rules: authorizationAttributes in configuration order (the method takes
 * ownership of the array and its contents).
 * NULL on error with err set. */
void *rq_x509_method_new(const char *ca_pem, size_t ca_len, struct rq_x509_rule *rules,
                         size_t n_rules, char *err, size_t errlen);
extern const struct rq_authn_method_ops rq_x509_method_ops;

#endif
