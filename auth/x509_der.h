/* X.509 certificates from DER: the few fields the broker needs from each certificate of a chain
 * that the TLS layer has already verified (subject and issuer names, validity, public key
 * algorithm, basicConstraints cA). PEM bundles and chain files: auth/pem.h.
 *
 * Pure: bytes in, struct out. No I/O, no globals, no signature checks (wolfSSL did those), no
 * policy (which names map to which client, whether a time is in range: the callers decide).
 * Any thread may call any function; a struct rq_x509_info is used by one thread at a time. */
#ifndef RQ_X509_DER_H
#define RQ_X509_DER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rq_x509_key_alg {
    RQ_X509_KEY_OTHER = 0, /* any other algorithm OID: see key_oid */
    RQ_X509_KEY_RSA,       /* rsaEncryption 1.2.840.113549.1.1.1 */
    RQ_X509_KEY_EC,        /* id-ecPublicKey 1.2.840.10045.2.1, curve in rq_x509_info.curve */
    RQ_X509_KEY_ED25519,   /* 1.3.101.112 */
    RQ_X509_KEY_ED448,     /* 1.3.101.113 */
};

enum rq_x509_curve {
    RQ_X509_CURVE_NONE = 0, /* the key is not EC */
    RQ_X509_CURVE_P256,     /* 1.2.840.10045.3.1.7 */
    RQ_X509_CURVE_P384,     /* 1.3.132.0.34 */
    RQ_X509_CURVE_P521,     /* 1.3.132.0.35 */
    RQ_X509_CURVE_OTHER,    /* another named curve (curve_oid) or explicit parameters */
};

/* One AttributeTypeAndValue of a name. */
struct rq_x509_atv {
    const char *oid;        /* attribute type, dotted ("2.5.4.3") */
    const char *short_name; /* "CN", "C", "L", "ST", "STREET", "O", "OU", "SERIALNUMBER", "DC",
                             * "UID", "E"; NULL for any other type (use oid) */
    const char *value;      /* NUL-terminated; see text */
    size_t value_len;       /* bytes, without the terminating NUL */
    uint8_t tag;            /* ASN.1 tag the value was encoded with (0x0c UTF8String, ...) */
    bool text;              /* true: the value was one of the string types below and is now valid
                             * UTF-8 without any NUL byte (UTF8String, PrintableString, IA5String,
                             * VisibleString, NumericString as they were; TeletexString read as
                             * Latin-1, BMPString, UniversalString converted).
                             * false: any other type; value holds its raw content bytes. */
};

/* A RelativeDistinguishedName: a set of one or more attributes, in encoded order. */
struct rq_x509_rdn {
    struct rq_x509_atv *atv;
    size_t count;
};

/* A Name: its RDNs in encoded order (the most significant one, usually C or DC, first). */
struct rq_x509_name {
    struct rq_x509_rdn *rdn;
    size_t count; /* 0 for an empty name */
};

struct rq_x509_chunk; /* private */

struct rq_x509_info {
    int version; /* 1, 2 or 3 */
    struct rq_x509_name issuer;
    struct rq_x509_name subject;
    int64_t not_before; /* Unix time, seconds */
    int64_t not_after;

    enum rq_x509_key_alg key_alg;
    const char *key_oid;      /* dotted algorithm OID of subjectPublicKeyInfo */
    enum rq_x509_curve curve; /* EC only */
    const char *curve_oid;    /* EC with a named curve: its dotted OID; else NULL */
    unsigned rsa_bits;        /* RSA only: bit length of the modulus */

    bool has_basic_constraints; /* extension 2.5.29.19 present */
    bool ca;                    /* its cA flag (false when absent) */
    int path_len;               /* its pathLenConstraint, -1 when absent (or > INT_MAX) */

    char key_alg_text[48];      /* what rq_x509_key_alg_name returns */
    struct rq_x509_chunk *mem_; /* owns every pointer above */
};

/* Parses one DER-encoded Certificate of exactly len bytes (RFC 5280 section 4.1).
 * Ownership: every pointer in *out points into heap memory owned by *out, never into der, so
 * der may be freed right after the call; release with rq_x509_info_free.
 * Strict DER structure: definite lengths only, long-form lengths minimal and at most 4 bytes,
 * single-byte tags, every TLV inside its parent, no trailing bytes in any SEQUENCE or after
 * the certificate, constructed values nested at most 32 deep. Times must end in 'Z'. Strings in
 * names must be valid in their encoding and must not contain NUL (a NUL inside a CN is a
 * classic way to fool C-string comparisons).
 * Returns 0, or -1 with *why set to a static string and *out zeroed (nothing to free). */
int rq_x509_der_parse(const uint8_t *der, size_t len, struct rq_x509_info *out, const char **why);

/* Frees what rq_x509_der_parse allocated and zeroes *info. NULL and zeroed structs are fine. */
void rq_x509_info_free(struct rq_x509_info *info);

/* The key algorithm for log lines: "EC P-256", "EC P-384", "EC P-521", "EC <curve oid>",
 * "EC explicit", "RSA 2048", "Ed25519", "Ed448", "other <oid>" (truncated at 47 bytes).
 * Points into *info. */
const char *rq_x509_key_alg_name(const struct rq_x509_info *info);

/* "All certificates in a chain must use the same key algorithm": true when a and b use the
 * same family: RSA with RSA (any modulus size), EC with EC (any curve), EdDSA with EdDSA
 * (Ed25519 or Ed448), and otherwise the same algorithm OID.
 * Why the family and not the curve or size: the rule is there so that one signature family
 * verifies the whole chain; real PKIs routinely put a P-384 root above P-256 leaves and an
 * RSA-4096 root above RSA-2048 leaves, and rejecting those would buy no security. */
bool rq_x509_same_key_alg(const struct rq_x509_info *a, const struct rq_x509_info *b);

/* First attribute of name with this type, given as dotted OID or short name ("CN", any case),
 * searching RDNs in order; NULL when there is none. */
const struct rq_x509_atv *rq_x509_name_find(const struct rq_x509_name *name, const char *type);

#endif
