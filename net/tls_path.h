/* The verified certificate path of a TLS client: from the leaf the client presented up to a
 * trusted client CA, every link's signature checked by wolfSSL. X.509 authentication takes the
 * username, the attributes, the key algorithm rule and the credential expiry from this path
 * only (docs/x509-attributes.md); presented certificates that are not on it are ignored.
 *
 * Why ringmq builds the path itself: wolfSSL 5.5.4 verifies each presented certificate against
 * its certificate manager, which also holds the CA certificates earlier clients presented, and it
 * does not say which signer verified which certificate (its "alternate chain" lists only
 * certificates, in processing order, at 37 KB per connection). The path here is the one a
 * verifier walks: leaf, issuer, issuer's issuer, each candidate tried with wolfSSL's own
 * certificate verification against that one candidate (name, key identifier, signature,
 * validity, path length), up to a trust anchor, then on through trusted CAs that verify it.
 *
 * Threads: anchors are built by the control thread and then only read (wolfSSL's certificate
 * managers lock internally); rq_tls_path_build runs on any thread. */
#ifndef RQ_TLS_PATH_H
#define RQ_TLS_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RQ_TLS_PATH_MAX 10 /* certificates on a path, leaf and anchors included */

struct rq_tls_anchors;

struct rq_tls_der {
    const uint8_t *der;
    size_t len;
};

/* The trusted client CAs of a port from their PEM bundle. NULL with err set on error. */
struct rq_tls_anchors *rq_tls_anchors_new(const uint8_t *pem, size_t len, char *err, size_t errlen);
void rq_tls_anchors_free(struct rq_tls_anchors *a);

/* True when der is, byte for byte, one of the trusted client CAs. */
bool rq_tls_anchors_has(const struct rq_tls_anchors *a, const uint8_t *der, size_t len);

/* The path from presented[0] (the leaf) to a trust anchor, candidates being the other presented
 * certificates that are CAs and the anchors. Writes up to RQ_TLS_PATH_MAX entries to out (they
 * point into presented or into a) and returns their number, or 0 with *why (static) when no
 * path reaches an anchor. */
size_t rq_tls_path_build(const struct rq_tls_anchors *a, const struct rq_tls_der *presented,
                         size_t n_presented, struct rq_tls_der *out, const char **why);

#endif
