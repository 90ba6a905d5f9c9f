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
    /* MQTT v5 re-authentication (AUTH 0x19 on a connected client; see "Re-authentication"
     * below): auth_method / auth_data are the AUTH packet's, username is the one the connection
     * authenticated as (its principal's, absent when it has none), no password, certs as at
     * CONNECT. A pending method copies this flag into its reply (net/post.h rq_authn_reply). */
    bool reauth;
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
/* The same for a method whose check() also handles re-authentication (creds->reauth, see
 * "Re-authentication" below). A method added with rq_authn_chain_add cannot re-authenticate the
 * clients it authenticated (X509: the credential is the TLS session's). */
int rq_authn_chain_add_reauth(struct rq_authn_chain *ch, const struct rq_authn_method_ops *ops,
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

/* ---- Re-authentication (MQTT v5 AUTH 0x19, AIO-INTERFACES.md 5.2) ----
 *
 * A connected v5 client that gave an Authentication Method at CONNECT may re-authenticate with
 * an AUTH packet (reason 0x19, the same method, new Authentication Data). Only the method that
 * authenticated it runs again: its position in the chain is kept in the client's principal
 * (rq_principal.chain_pos = 1 + index, set here whenever a method allows), and the chain is the
 * one of the configuration generation the connection pinned when it was accepted (the same chain
 * object, so the index still names the same method after any number of reloads; a reload
 * affects new connections only).
 *
 * How a method supports it (e.g. Custom, net/authn_custom.c; ServiceAccountToken the same way):
 *  1. it is added with rq_authn_chain_add_reauth (not rq_authn_chain_add);
 *  2. its check() looks at creds->reauth: when set, it checks creds->auth_method/auth_data (the
 *     AUTH packet's) for the connection that authenticated as creds->username, never consults
 *     or fills a verdict cache for it, and answers ALLOW (a whole new principal: username,
 *     attributes and expiry replace the old ones; expiry 0 = none), DENY (reason >= 0x80 is the
 *     DISCONNECT reason, 0x87 otherwise; core turns codes a DISCONNECT cannot carry, such as
 *     0x86, into 0x87), NOT_RELEVANT (could not decide now: server
 *     unreachable, timeout, bad answer, too busy: the client gets AUTH 0x18 and keeps its
 *     connection and old credentials) or PENDING;
 *  3. when PENDING, its worker posts the answer exactly as for a CONNECT
 *     (rq_shard_post_authn_reply, net/post.h) with reply->reauth = creds->reauth; the shard
 *     routes it to the re-authentication of that connection (dropped and counted when the
 *     connection left or no re-authentication waits).
 * The chain never falls through to another method on re-authentication: a NOT_RELEVANT of the
 * method stays NOT_RELEVANT. */

/* Runs method `at` (chain_pos - 1 of the client's principal) alone for a re-authentication (c
 * with reauth set). Returns the verdict, also in o (o->method set; an ALLOW's principal gets
 * chain_pos = at + 1; a DENY's reason is >= 0x80). A method not added with
 * rq_authn_chain_add_reauth, or `at` outside the chain: DENY 0x8C (Bad authentication method)
 * without calling anything. */
int rq_authn_chain_reauth(const struct rq_authn_chain *ch, size_t at,
                          const struct rq_authn_creds *c, struct rq_authn_outcome *o);
/* The pending method `at` of a re-authentication answered o: settles it as
 * rq_authn_chain_reauth does (PENDING again counts as NOT_RELEVANT). Returns the verdict. */
int rq_authn_chain_reauth_resume(const struct rq_authn_chain *ch, size_t at,
                                 struct rq_authn_outcome *o);

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
