/* BrokerListener `tls.mode: Automatic`: the broker is its own certificate issuer. It keeps a
 * local CA and one server certificate per listener port in a data directory, issues them as
 * certManagerCertificateSpec asks (SANs, key algorithm, duration, renewBefore, rotationPolicy)
 * and reissues before expiry. docs/automatic-tls.md describes the files, what clients must trust,
 * renewal, rotation and how to reset.
 *
 * Files in data_dir (created 0700 when missing):
 *   ca.crt             every local CA certificate, PEM; the file clients trust (0644)
 *   ca-<family>.crt    the CA of one key family: ec (P-256), rsa (RSA 3072), ed25519 (0644)
 *   ca-<family>.key    its private key (0600); never replaced automatically
 *   <id>.crt, <id>.key the server certificate (leaf, then its CA) and key (0600)
 * The server certificate is signed by the CA of its own key family, so a chain never mixes key
 * algorithms. */
#ifndef RQ_AUTOCERT_H
#define RQ_AUTOCERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct rq_autocert {
    char *cert_pem;  /* server certificate, then the CA certificate that signed it (PEM) */
    size_t cert_len; /* bytes, without the terminating NUL */
    char *key_pem;   /* the server's private key (PEM); zeroed by rq_autocert_free */
    size_t key_len;
    int64_t not_after;      /* Unix seconds */
    int64_t renew_at;       /* not_after - renew_before_s: call rq_autocert_ensure again then */
    char ca_path[512];      /* <data_dir>/ca.crt */
    char serial[33];        /* the server certificate's serial number, hex, for log lines */
    bool issued;            /* true when this call wrote a new server certificate */
    const char *why_issued; /* then why, e.g. "renewal is due" (static string); else NULL */
};

/* Makes sure data_dir holds a valid server certificate for `id` as spec asks, and returns it.
 * id names the files (<id>.crt, <id>.key): 1..128 of [A-Za-z0-9._-], not starting with '.',
 * and not "ca" or "ca-<family>"; callers use "<listener>-<port>" or the spec's secretName.
 * now is the current Unix time (a parameter so tests can move it).
 *
 * The existing certificate is kept when it parses, is signed by the current CA of its family,
 * carries exactly the requested SANs and key algorithm, was issued for duration_s, and
 * now < not_after - renew_before_s. Otherwise a new one is issued, valid from now - 5 minutes
 * for duration_s (never past the CA's own notAfter), with a new key when rotation_policy is
 * Always or the existing key is unusable, else with the existing key.
 *
 * The CA of the needed family is created when neither its .crt nor its .key exist. A CA file
 * that is present but unreadable, mismatched or close to expiry is an error: clients may trust
 * that CA, so the operator decides (docs/automatic-tls.md, "Reset").
 *
 * Blocking file I/O and key generation (RSA takes seconds): call it at startup or from a
 * thread that may block, never from a shard's loop. Calls for the same data_dir are serialised
 * by a lock file, across threads and processes. On success fills *out (release with
 * rq_autocert_free) and returns 0. On failure returns -errno (-EINVAL bad arguments or spec,
 * -EIO a file or crypto failure, -ENOMEM), writes a message naming the path and the problem to
 * err, and leaves *out zeroed. Messages never contain key bytes. */
int rq_autocert_ensure(const char *data_dir, const char *id, const struct rq_tls_auto *spec,
                       int64_t now, struct rq_autocert *out, char *err, size_t errlen);

/* Frees and zeroes what rq_autocert_ensure filled in (the key bytes are wiped first). NULL and
 * zeroed structs are fine. */
void rq_autocert_free(struct rq_autocert *ac);

#endif
