/* X.509 distinguished names for the X509 authentication method: parsing the subjects written in
 * BrokerAuthentication `x509Settings.authorizationAttributes`, comparing them attribute by
 * attribute with the subjects of a client's certificate chain, picking the attribute set of the
 * chain (leaf first, first match wins), and the leaf's CN as the MQTT username.
 *
 * Pure module: no I/O, no globals (except the thread-local buffer behind rq_dn_parse's `why`),
 * no TLS library. The TLS layer builds a struct rq_dn per certificate with rq_dn_add.
 * See docs/x509-attributes.md for the matching rules in prose. */
#ifndef RQ_X509_SUBJECT_H
#define RQ_X509_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many attributes per name; more is refused by rq_dn_parse and rq_dn_add. */
#define RQ_DN_MAX_ATTRS 128

/* One AttributeTypeAndValue. */
struct rq_rdn_attr {
    char *type;     /* canonical type: "CN", "OU", "O", "C", "L", "ST", "STREET", "DC", "UID",
                       "SERIALNUMBER", "E", ... or a dotted OID ("1.3.6.1.4.1.311.60.2.1.3")
                       when the type has no short name here. Owned, NUL-terminated. */
    uint8_t *value; /* value bytes, owned, NUL-terminated for convenience (len excludes it; the
                       value itself may contain NUL bytes) */
    size_t len;
    size_t rdn; /* RDN group: consecutive attributes with the same rdn form one (multi-valued)
                   RDN. rq_dn_parse and rq_dn_add number the RDNs 0, 1, 2, ... */
};

/* A distinguished name in certificate (DER, RDNSequence) order: attrs[0] is in the least specific
 * RDN (usually C), the last RDN is the most specific (usually CN). This is the reverse of the
 * string order of RFC 4514 and of the AIO docs ("CN = x, OU = y, C = US"); rq_dn_parse and
 * rq_dn_format convert. Within a multi-valued RDN the attributes keep the order they were given. */
struct rq_dn {
    struct rq_rdn_attr *attrs;
    size_t n;
};

/* Parses a subject string. Accepted: the AIO style "CN = Contoso Root CA Cert, OU = Engineering,
 * C = US" and RFC 4514 "CN=x,OU=y": spaces and tabs around '=', ',' and '+' are optional;
 * multi-valued RDNs joined with '+'; values may be "double-quoted"; escapes \, \+ \" \\ \# \; \<
 * \> \= \<space> (any ASCII punctuation after '\' stands for itself) and \XX hex pairs; a value
 * "#hex" is a BER-encoded string (RFC 4514 2.4) and is decoded. Types are case-insensitive short
 * or long names (CN, commonName, E, EMAIL, emailAddress, ST, S, ...) or dotted OIDs (2.5.4.3,
 * OID.2.5.4.3), normalised to canonical names, so "emailAddress" == "E" == 1.2.840.113549.1.9.1.
 * Unescaped spaces at the start and end of a value are not part of it; escaped ones are kept.
 * The string is read most-specific RDN first (as written in the AIO docs and RFC 4514), so *out
 * holds the RDNs in reverse string order (see struct rq_dn).
 *
 * Returns 0 with *out filled (free with rq_dn_free), or -1 with *out empty and *why set to
 * "column N: problem" (1-based byte column); *why points to a thread-local buffer that stays
 * valid until the next rq_dn_parse on the same thread. An empty subject is an error.
 * Any thread. */
int rq_dn_parse(const char *s, size_t len, struct rq_dn *out, const char **why);

/* Frees what *dn owns and leaves it empty; dn may be NULL or empty. */
void rq_dn_free(struct rq_dn *dn);

/* Appends one attribute, for the TLS layer building a certificate's subject in DER order.
 * type: a short or long name or a dotted OID, as rq_dn_parse accepts them (prefer the OID: an
 * unknown name is refused, an unknown OID is kept as is). value/len: the decoded string (UTF-8),
 * copied. same_rdn: join the previous attribute's RDN (a multi-valued RDN); ignored for the first.
 * Returns 0, -EINVAL (type neither a known name nor a dotted OID), -E2BIG (RQ_DN_MAX_ATTRS
 * reached) or -ENOMEM; on error *dn is unchanged. */
int rq_dn_add(struct rq_dn *dn, const char *type, const uint8_t *value, size_t len, bool same_rdn);

/* Do a and b name the same entity? Compared attribute by attribute, not as strings: the same
 * number of RDNs and, RDN by RDN, the same multiset of (canonical type, value), where values are
 * compared byte for byte, case-sensitively, after trimming leading and trailing spaces. The RDN
 * order of b may be the same as a's or exactly reversed; inside a multi-valued RDN order does not
 * matter. Two empty names are equal. Symmetric. Any thread; no allocation. */
bool rq_dn_equal(const struct rq_dn *a, const struct rq_dn *b);

/* The MQTT username of an X509 client: the CN of the most specific RDN that has one, i.e. the
 * last CN in DER order (AIO: "CN = smart-lock" -> "smart-lock"), trimmed of leading and trailing
 * spaces like rq_dn_equal does. *cn points into dn. Returns 0 or -ENOENT (no CN). */
int rq_dn_common_name(const struct rq_dn *dn, const uint8_t **cn, size_t *len);

/* Formats dn for log lines as RFC 4514 with the AIO spacing: "CN=smart-fan, OU=Eng, C=US",
 * most specific RDN first, "+" inside multi-valued RDNs. Values are escaped so that rq_dn_parse
 * gives back exactly dn: the RFC 4514 specials, a leading '#', leading and trailing spaces,
 * control bytes and bytes that are not valid UTF-8 (as \XX); valid UTF-8 is kept. snprintf-like:
 * writes at most size bytes including a NUL (when size > 0) and returns the length the whole
 * string needs (without the NUL). An empty name formats as "". */
size_t rq_dn_format(const struct rq_dn *dn, char *buf, size_t size);

/* One entry of x509Settings.authorizationAttributes. Built by the configuration; all owned. */
struct rq_x509_rule {
    char *name;           /* the entry's key, for log lines */
    struct rq_dn subject; /* parsed `subject` */
    char **keys;          /* `attributes`: keys[i] = values[i], n pairs */
    char **values;
    size_t n;
};

/* Frees what r owns (not r itself) and leaves it zeroed. */
void rq_x509_rule_free(struct rq_x509_rule *r);

/* Picks the attribute set of a client (AIO authorizationAttributes): walks the chain from the
 * leaf (chain[0]) towards the root; for each certificate, the first rule in configuration order
 * whose subject is rq_dn_equal to the certificate's subject wins, and the walk stops at the first
 * certificate that has a match. So a leaf with its own entry gets only its own attributes, a leaf
 * without one gets its issuer's. An empty subject (on either side) never matches.
 * Returns 1 with *matched_rule set (index into rules), or 0 when nothing matches. Any thread. */
int rq_x509_map_attributes(const struct rq_x509_rule *rules, size_t n_rules,
                           const struct rq_dn *chain, size_t chain_len, size_t *matched_rule);

#endif
