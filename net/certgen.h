/* Private to net/: the certificate building behind net/autocert.c, its only user. A DER writer,
 * keys of three families (generate, sign, verify, PEM in and out) and X.509 v3 certificates
 * (encode and sign, parse back with wolfCrypt). No files, no policy and no error messages
 * beyond a static `why`: autocert.c decides what to issue, when, and where it is kept.
 * No globals; an object is used by one thread at a time. */
#ifndef RQ_CERTGEN_H
#define RQ_CERTGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/settings.h>

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#define RQ_KEYID_LEN 20 /* SHA-1, RFC 5280 4.2.1.2 method (1) */

/* Key families: certgen.c signs with one algorithm per family, autocert.c keeps one CA each. */
enum rq_fam { RQ_FAM_EC, RQ_FAM_RSA, RQ_FAM_ED25519, RQ_N_FAM };

struct rq_alg {
    const char *name;
    int fam;
    int param; /* EC: wolfCrypt curve id; RSA: modulus bits; Ed25519: 0 */
};

/* keyUsage bits (RFC 5280 4.2.1.3) for struct rq_tbs.key_usage. */
enum {
    RQ_KU_DIGITAL_SIGNATURE = 0x80, /* bit 0 */
    RQ_KU_KEY_ENCIPHERMENT = 0x20,  /* bit 2 */
    RQ_KU_KEY_CERT_SIGN = 0x04,     /* bit 5 */
    RQ_KU_CRL_SIGN = 0x02,          /* bit 6 */
};

/* A growable byte buffer, zero-initialised by the caller; the owner frees p. An allocation
 * failure sets oom and turns every later append into a no-op. */
struct rq_der {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

/* Appends n bytes of src to d. */
void rq_certgen_der_put(struct rq_der *d, const void *src, size_t n);

struct rq_san_ip {
    uint8_t b[16];
    uint8_t len; /* 4 or 16 */
};

/* A server certificate's SANs, distinct (DNS names compare without case). */
struct rq_sans {
    const char **dns; /* point into the spec */
    size_t n_dns;
    struct rq_san_ip *ip;
    size_t n_ip;
};

/* True when the certificate's SANs (names, from DecodedCert.altNames) are exactly the set s, in
 * any order. IP addresses are compared only when wolfSSL decodes them (see certgen.c). */
bool rq_certgen_sans_match(const struct rq_sans *s, const DNS_entry *names);

/* A private key of one family; heap-allocated, wiped by rq_certgen_key_free. */
struct rq_key {
    int fam;
    int param; /* as struct rq_alg */
    bool live; /* u holds an initialised key */
    union {
        ecc_key ec;
        RsaKey rsa;
        ed25519_key ed;
    } u;
};

/* Frees and wipes k; NULL is fine. */
void rq_certgen_key_free(struct rq_key *k);

/* Generates a key of algorithm a into *out (free with rq_certgen_key_free). Returns 0, or
 * -ENOMEM / -EIO with *why (static) saying what failed. RSA takes seconds. */
int rq_certgen_key_generate(const struct rq_alg *a, WC_RNG *rng, struct rq_key **out,
                            const char **why);

/* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. Returns 0 or a wolfCrypt
 * error. */
int rq_certgen_key_id(struct rq_key *k, uint8_t id[RQ_KEYID_LEN]);

/* Returns 0 with a malloc'd NUL-terminated PEM in *pem (the caller wipes and frees it with
 * rq_certgen_free_secret), or a wolfCrypt error. "EC PRIVATE KEY" (SEC 1), "RSA PRIVATE KEY"
 * (PKCS#1), or "PRIVATE KEY" (Ed25519: PKCS#8 with the public key, RFC 8410). */
int rq_certgen_key_to_pem(struct rq_key *k, char **pem, size_t *pem_len);

/* Reads a private key of family fam, then proves it whole: a signature made with it verifies
 * with its public half (a damaged private part would otherwise only show as failed
 * handshakes, or for a CA as certificates no client accepts). Returns 0 with *out, or -EIO
 * with *why (static) saying what is wrong; never key bytes. */
int rq_certgen_key_from_pem(const char *pem, size_t len, int fam, WC_RNG *rng, struct rq_key **out,
                            const char **why);

/* What goes into a certificate besides the subject's key. */
struct rq_tbs {
    uint8_t serial[16];
    const char *issuer_cn, *subject_cn;
    int64_t not_before, not_after;
    const uint8_t *skid, *akid; /* akid NULL: the self-signed CA */
    const struct rq_sans *sans; /* NULL: the CA */
    int key_usage;              /* RQ_KU_* */
};

/* Encodes and signs a certificate for subject_key with signer (the CA key; itself for the
 * CA), then checks the signature with the signer's public half. Returns 0 with a malloc'd DER,
 * or a negative wolfCrypt error. */
int rq_certgen_cert_make(const struct rq_tbs *t, struct rq_key *subject_key, struct rq_key *signer,
                         WC_RNG *rng, uint8_t **der_out, size_t *der_len);

/* A certificate's DER as a malloc'd NUL-terminated PEM, or NULL on failure. */
char *rq_certgen_der_to_pem(const uint8_t *der, size_t len, size_t *pem_len);

/* A certificate as read back from disk: its DER and wolfSSL's decoding of it. */
struct rq_cert {
    uint8_t *der;
    size_t der_len;
    DecodedCert *dc;
    int64_t not_before, not_after;
};

/* Frees and zeroes c; a zeroed struct is fine. */
void rq_certgen_cert_free(struct rq_cert *c);

/* Decodes the first certificate of a PEM text (no signature or date checks here). Returns 0
 * with c filled in (release with rq_certgen_cert_free), or -ENOMEM / -EIO with *why (static)
 * and c zeroed. */
int rq_certgen_cert_from_pem(const char *pem, size_t len, struct rq_cert *c, const char **why);

/* True when signer's key made c's signature, with the algorithm the CA uses. */
bool rq_certgen_cert_signed_by(const struct rq_cert *c, struct rq_key *signer);

/* Wipes len bytes at p, then frees p; NULL is fine. For keys and buffers that held them. */
void rq_certgen_free_secret(void *p, size_t len);

#endif
