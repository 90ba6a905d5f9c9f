/* X.509 certificate fields from DER (RFC 5280 section 4.1, X.690 DER). PEM blocks: auth/pem.c.
 *
 * How: one strict TLV reader (auth/der.c) used everywhere; the whole certificate is first
 * walked as a tree (rq_der_check, depth-bounded) so that every constructed value, including those
 * we skip such as algorithm parameters and unknown name values, is well-formed DER structure;
 * then the fixed X.509 layout is read field by field, each level checking that its SEQUENCE holds
 * exactly what it should. Everything handed out is copied into a chunk arena owned by the
 * result.
 *
 * Not done here: signature or key checks (wolfSSL verified the chain), time-of-day checks,
 * any extension besides basicConstraints (others are checked as TLVs and skipped), DER's
 * canonical SET OF ordering in multi-valued RDNs, I/O. */
#include "auth/x509_der.h"

#include <limits.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/der.h"

#define MAX_OID_BYTES 64   /* longer OIDs are refused; real ones are < 30 bytes */
#define MAX_RSA_BITS 65536 /* keeps rsa_bits meaningful; wolfSSL stops far below */
#define CHUNK_BYTES 2048

enum {
    TAG_VERSION = 0xa0,    /* [0] EXPLICIT */
    TAG_ISSUER_UID = 0x81, /* [1] IMPLICIT BIT STRING */
    TAG_SUBJECT_UID = 0x82,
    TAG_EXTENSIONS = 0xa3, /* [3] EXPLICIT */
};

static int fail(const char **why, const char *msg)
{
    *why = msg;
    return -1;
}

/* ---- memory ---------------------------------------------------------------------------------- */

struct rq_x509_chunk {
    struct rq_x509_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct ctx {
    struct rq_x509_chunk *mem;
    const char **why;
};

static void *ctx_alloc(struct ctx *c, size_t n)
{
    const size_t a = alignof(max_align_t);
    struct rq_x509_chunk *k = c->mem;
    n = (n + a - 1) / a * a; /* n is bounded by a few times the input length: no overflow */
    if (!k || k->cap - k->used < n) {
        size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
        k = malloc(sizeof *k + cap);
        if (!k) {
            *c->why = "x509: out of memory";
            return NULL;
        }
        *k = (struct rq_x509_chunk){c->mem, 0, cap};
        c->mem = k;
    }
    void *r = (unsigned char *)k->data + k->used;
    k->used += n;
    return r;
}

static void chunks_free(struct rq_x509_chunk *k)
{
    while (k) {
        struct rq_x509_chunk *next = k->next;
        free(k);
        k = next;
    }
}

/* ---- OIDs ------------------------------------------------------------------------------------ */

#define OID(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

struct oid_name {
    const uint8_t *der;
    size_t len;
    const char *name;
};

static const struct oid_name attr_names[] = {
    {OID(0x55, 0x04, 0x03), "CN"},
    {OID(0x55, 0x04, 0x06), "C"},
    {OID(0x55, 0x04, 0x07), "L"},
    {OID(0x55, 0x04, 0x08), "ST"},
    {OID(0x55, 0x04, 0x09), "STREET"},
    {OID(0x55, 0x04, 0x0a), "O"},
    {OID(0x55, 0x04, 0x0b), "OU"},
    {OID(0x55, 0x04, 0x05), "SERIALNUMBER"},
    {OID(0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19), "DC"},
    {OID(0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01), "UID"},
    {OID(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01), "E"},
};

static const struct {
    const uint8_t *der;
    size_t len;
    enum rq_x509_curve curve;
    const char *name;
    size_t field_bytes;
} curves[] = {
    {OID(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07), RQ_X509_CURVE_P256, "P-256", 32},
    {OID(0x2b, 0x81, 0x04, 0x00, 0x22), RQ_X509_CURVE_P384, "P-384", 48},
    {OID(0x2b, 0x81, 0x04, 0x00, 0x23), RQ_X509_CURVE_P521, "P-521", 66},
};

static const uint8_t OID_RSA[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
static const uint8_t OID_EC[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
static const uint8_t OID_ED25519[] = {0x2b, 0x65, 0x70};
static const uint8_t OID_ED448[] = {0x2b, 0x65, 0x71};
static const uint8_t OID_BASIC_CONSTRAINTS[] = {0x55, 0x1d, 0x13};

/* Writes the decimal value of one base-128 arc minus `minus` (0, 40 or 80, never more than the
 * value) to out; returns the digits written. Arcs longer than 64 bits are common enough (2.25.x
 * UUID OIDs) that they get the schoolbook decimal conversion rather than a refusal. */
static size_t arc_decimal(const uint8_t *b, size_t k, unsigned minus, char *out)
{
    uint8_t d[MAX_OID_BYTES * 7 / 3 + 4]; /* little-endian decimal digits */
    size_t nd = 1;
    d[0] = 0;
    for (size_t i = 0; i < k; i++) {
        unsigned carry = b[i] & 0x7f;
        for (size_t j = 0; j < nd; j++) {
            unsigned x = d[j] * 128u + carry;
            d[j] = (uint8_t)(x % 10);
            carry = x / 10;
        }
        for (; carry; carry /= 10)
            d[nd++] = (uint8_t)(carry % 10);
    }
    for (size_t j = 0; minus; j++) { /* d >= minus */
        unsigned sub = minus % 10;
        minus /= 10;
        if (d[j] < sub) {
            d[j] = (uint8_t)(d[j] + 10 - sub);
            minus++; /* borrow */
        } else {
            d[j] = (uint8_t)(d[j] - sub);
        }
    }
    while (nd > 1 && d[nd - 1] == 0)
        nd--;
    for (size_t j = 0; j < nd; j++)
        out[j] = (char)('0' + d[nd - 1 - j]);
    return nd;
}

/* OBJECT IDENTIFIER content -> "1.2.840..." in the arena. Arcs must be minimal base-128
 * (no leading 0x80 byte) and the last byte must end an arc. */
static const char *oid_dotted(struct ctx *c, const struct rq_tlv *t)
{
    if (t->len == 0 || t->len > MAX_OID_BYTES || (t->p[t->len - 1] & 0x80)) {
        *c->why = t->len > MAX_OID_BYTES ? "x509: OID too long" : "x509: malformed OID";
        return NULL;
    }
    char *s = ctx_alloc(c, t->len * 4 + 4); /* a k-byte arc has at most 3k digits */
    if (!s)
        return NULL;
    size_t o = 0;
    for (size_t i = 0, start = 0; i < t->len; i++) {
        if (i == start && t->p[i] == 0x80) {
            *c->why = "x509: non-minimal OID arc";
            return NULL;
        }
        if (t->p[i] & 0x80)
            continue;
        const uint8_t *b = t->p + start;
        size_t k = i + 1 - start;
        if (start == 0) { /* the first arc holds two: 40 * X + Y with X in 0..2 */
            unsigned x = 2;
            if (k == 1 && b[0] < 80)
                x = b[0] / 40u;
            s[o++] = (char)('0' + x);
            s[o++] = '.';
            o += arc_decimal(b, k, x * 40, s + o);
        } else {
            s[o++] = '.';
            o += arc_decimal(b, k, 0, s + o);
        }
        start = i + 1;
    }
    s[o] = '\0';
    return s;
}

/* ---- strings --------------------------------------------------------------------------------- */

static size_t put_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    size_t n = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--, cp >>= 6)
        o[i] = (uint8_t)(0x80 | (cp & 0x3f));
    o[0] = (uint8_t)((0xff00u >> n) | cp); /* 110xxxxx, 1110xxxx or 11110xxx */
    return n;
}

static bool is_scalar(uint32_t cp)
{
    return cp != 0 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
}

/* Continuation bytes after lead byte b; 9 when b cannot start a sequence. */
static size_t utf8_tail(uint8_t b)
{
    if (b < 0x80)
        return 0;
    if (b < 0xc0)
        return 9;
    return b < 0xe0 ? 1 : b < 0xf0 ? 2 : b < 0xf8 ? 3 : 9;
}

/* Valid UTF-8 (shortest form, no surrogates, at most U+10FFFF) without NUL. */
static bool utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t b = p[i];
        size_t k = utf8_tail(b);
        if (k == 9 || n - i - 1 < k)
            return false;
        uint32_t cp = k == 0 ? b : b & (0x3fu >> k);
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[k] || !is_scalar(cp))
            return false;
        i += k + 1;
    }
    return true;
}

/* 7-bit characters without NUL. Only that, not the exact X.680 alphabets: CAs put '@' or '*'
 * into PrintableString often enough that those would refuse certificates wolfSSL accepted. */
static bool ascii_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == 0 || p[i] >= 0x80)
            return false;
    return true;
}

/* Big-endian code units of w bytes -> UTF-8 appended at s + *o: w = 1 is TeletexString read as
 * Latin-1 (T.61 in theory, Latin-1 in practice), w = 2 BMPString (UCS-2; UTF-16 surrogate
 * pairs are accepted too), w = 4 UniversalString (UCS-4). */
static bool units_to_utf8(const uint8_t *p, size_t n, size_t w, uint8_t *s, size_t *o)
{
    if (n % w)
        return false;
    for (size_t i = 0; i < n; i += w) {
        uint32_t cp = 0, lo;
        for (size_t j = 0; j < w; j++)
            cp = cp << 8 | p[i + j];
        if (w == 2 && cp >= 0xd800 && cp < 0xdc00 && n - i >= 4 &&
            (lo = (uint32_t)p[i + 2] << 8 | p[i + 3]) >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            i += 2;
        }
        if (!is_scalar(cp))
            return false;
        *o += put_utf8(s + *o, cp);
    }
    return true;
}

/* Converts one attribute value to UTF-8 (or copies it raw when it is no string type). */
static int atv_value(struct ctx *c, const struct rq_tlv *v, struct rq_x509_atv *a)
{
    const uint8_t *p = v->p;
    size_t n = v->len, o = 0;
    uint8_t *s = ctx_alloc(c, 2 * n + 1); /* Latin-1 doubles; BMP grows 2 -> 3; others keep */
    bool ok = true, copy = false, text = true;
    if (!s)
        return -1;
    switch (v->tag) {
    case RQ_DER_UTF8: ok = copy = utf8_valid(p, n); break;
    case RQ_DER_NUMERIC:
    case RQ_DER_PRINTABLE:
    case RQ_DER_IA5:
    case RQ_DER_VISIBLE: ok = copy = ascii_valid(p, n); break;
    case RQ_DER_TELETEX: ok = units_to_utf8(p, n, 1, s, &o); break;
    case RQ_DER_BMP: ok = units_to_utf8(p, n, 2, s, &o); break;
    case RQ_DER_UNIVERSAL: ok = units_to_utf8(p, n, 4, s, &o); break;
    default: copy = true, text = false; /* not a string: raw content bytes */
    }
    if (!ok)
        return fail(c->why, "x509: invalid string in name");
    if (copy && n) {
        memcpy(s, p, n);
        o = n;
    }
    s[o] = '\0';
    a->value = (const char *)s;
    a->value_len = o;
    a->tag = v->tag;
    a->text = text;
    return 0;
}

/* ---- names ----------------------------------------------------------------------------------- */

/* AttributeTypeAndValue ::= SEQUENCE { type OBJECT IDENTIFIER, value ANY } */
static int parse_atv(struct ctx *c, struct rq_der *set, struct rq_x509_atv *a)
{
    struct rq_tlv seq, type, value;
    if (rq_der_expect(set, RQ_DER_SEQUENCE, &seq, "x509: name attribute not a SEQUENCE", c->why))
        return -1;
    struct rq_der d = rq_der_of(&seq);
    if (rq_der_expect(&d, RQ_DER_OID, &type, "x509: name attribute type not an OID", c->why) ||
        rq_der_read(&d, &value, c->why) ||
        rq_der_end(&d, "x509: trailing bytes in name attribute", c->why))
        return -1;
    if (!(a->oid = oid_dotted(c, &type)))
        return -1;
    a->short_name = NULL;
    for (size_t i = 0; i < sizeof attr_names / sizeof attr_names[0]; i++)
        if (rq_tlv_is(&type, attr_names[i].der, attr_names[i].len))
            a->short_name = attr_names[i].name;
    return atv_value(c, &value, a);
}

/* Name ::= SEQUENCE OF RelativeDistinguishedName; RDN ::= SET SIZE (1..MAX) OF ATV */
static int parse_name(struct ctx *c, const struct rq_tlv *name, struct rq_x509_name *out)
{
    struct rq_der d = rq_der_of(name);
    out->count = rq_der_count(name);
    out->rdn = NULL;
    if (out->count && !(out->rdn = ctx_alloc(c, out->count * sizeof *out->rdn)))
        return -1;
    for (size_t i = 0; i < out->count; i++) {
        struct rq_tlv set;
        if (rq_der_expect(&d, RQ_DER_SET, &set, "x509: RDN not a SET", c->why))
            return -1;
        struct rq_x509_rdn *r = &out->rdn[i];
        r->count = rq_der_count(&set);
        if (r->count == 0)
            return fail(c->why, "x509: empty RDN");
        if (!(r->atv = ctx_alloc(c, r->count * sizeof *r->atv)))
            return -1;
        struct rq_der s = rq_der_of(&set);
        for (size_t j = 0; j < r->count; j++)
            if (parse_atv(c, &s, &r->atv[j]))
                return -1;
    }
    return 0;
}

/* ---- validity -------------------------------------------------------------------------------- */

static bool digits(const uint8_t *p, size_t n, unsigned *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        *v = *v * 10 + (unsigned)(p[i] - '0');
    }
    return true;
}

static bool leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 0000-01-01 to y-01-01 in the proleptic Gregorian calendar (year 0 is leap). */
static int64_t days_before_year(unsigned y)
{
    if (y == 0)
        return 0;
    unsigned p = y - 1;
    return 365 * (int64_t)y + p / 4 - p / 100 + p / 400 + 1;
}

/* UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSS[.f+]Z -> Unix time (RFC 5280
 * 4.1.2.5: UTC, seconds present; YY >= 50 is 19YY). Fractions are accepted and dropped. */
static int parse_time(const struct rq_tlv *t, int64_t *out, const char **why)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const uint8_t *p = t->p;
    size_t n = t->len, yl = t->tag == RQ_DER_UTC_TIME ? 2 : 4;
    unsigned y, mo, d, h, mi, s;
    if (t->tag != RQ_DER_UTC_TIME && t->tag != RQ_DER_GEN_TIME)
        return fail(why, "x509: validity time of unknown type");
    if (n < yl + 11 || p[n - 1] != 'Z' || !digits(p, yl, &y) || !digits(p + yl, 2, &mo) ||
        !digits(p + yl + 2, 2, &d) || !digits(p + yl + 4, 2, &h) || !digits(p + yl + 6, 2, &mi) ||
        !digits(p + yl + 8, 2, &s))
        goto bad;
    size_t rest = n - (yl + 10) - 1; /* between the seconds and the 'Z' */
    if (rest && (t->tag == RQ_DER_UTC_TIME || rest < 2 || p[yl + 10] != '.'))
        goto bad;
    for (size_t i = 1; i < rest; i++)
        if (p[yl + 10 + i] < '0' || p[yl + 10 + i] > '9')
            goto bad;
    if (yl == 2)
        y += y >= 50 ? 1900 : 2000;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap(y)) || h > 23 ||
        mi > 59 || s > 59)
        goto bad;
    int64_t days = days_before_year(y) - days_before_year(1970) + d - 1;
    for (unsigned m = 1; m < mo; m++)
        days += mdays[m - 1] + (m == 2 && leap(y));
    *out = days * 86400 + h * 3600 + mi * 60 + s;
    return 0;
bad:
    *why = "x509: malformed validity time";
    return -1;
}

/* ---- subjectPublicKeyInfo -------------------------------------------------------------------- */

/* BIT STRING content -> its bytes, which must be whole (0 unused bits). */
static int bit_string_bytes(const struct rq_tlv *bits, struct rq_der *out, const char **why)
{
    if (bits->len == 0 || bits->p[0] != 0)
        return fail(why, "x509: public key BIT STRING with unused bits");
    *out = (struct rq_der){bits->p + 1, bits->len - 1};
    return 0;
}

/* A positive, minimally encoded INTEGER; returns its magnitude without the sign byte. */
static int positive_integer(const struct rq_tlv *t, struct rq_der *mag, const char **why)
{
    const uint8_t *p = t->p;
    size_t n = t->len;
    if (n == 0 || (p[0] & 0x80) || (n > 1 && p[0] == 0 && !(p[1] & 0x80)))
        return fail(why, "x509: INTEGER negative or not minimal");
    if (p[0] == 0 && n > 1) {
        p++;
        n--;
    }
    *mag = (struct rq_der){p, n};
    return 0;
}

/* RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 A.1.1) */
static int parse_rsa(const struct rq_der *params, const struct rq_tlv *bits,
                     struct rq_x509_info *out, const char **why)
{
    struct rq_der key, seq, mod, exp;
    struct rq_tlv t, n, e;
    if (params->len && (rq_der_read(&(struct rq_der){params->p, params->len}, &t, why) ||
                        t.tag != RQ_DER_NULL || t.len != 0 || params->len != 2))
        return fail(why, "x509: RSA parameters not NULL");
    if (bit_string_bytes(bits, &key, why) ||
        rq_der_expect(&key, RQ_DER_SEQUENCE, &t, "x509: RSA key not a SEQUENCE", why) ||
        rq_der_end(&key, "x509: trailing bytes after RSA key", why))
        return -1;
    seq = rq_der_of(&t);
    if (rq_der_expect(&seq, RQ_DER_INTEGER, &n, "x509: RSA modulus not an INTEGER", why) ||
        rq_der_expect(&seq, RQ_DER_INTEGER, &e, "x509: RSA exponent not an INTEGER", why) ||
        rq_der_end(&seq, "x509: trailing bytes in RSA key", why) ||
        positive_integer(&n, &mod, why) || positive_integer(&e, &exp, why))
        return -1;
    if (mod.p[0] == 0 || exp.p[0] == 0)
        return fail(why, "x509: RSA modulus or exponent is zero");
    if (mod.len > MAX_RSA_BITS / 8)
        return fail(why, "x509: RSA modulus too large");
    unsigned top = 0;
    for (uint8_t b = mod.p[0]; b; b >>= 1)
        top++;
    out->rsa_bits = (unsigned)(mod.len - 1) * 8 + top;
    return 0;
}

/* ECParameters ::= CHOICE { namedCurve OID, ... } (RFC 5480 2.1.1); the point is checked
 * against the curve's size when the curve is known (SEC 1 2.3.3: 04||X||Y or 02/03||X). */
static int parse_ec(struct ctx *c, const struct rq_der *params, const struct rq_tlv *bits,
                    struct rq_x509_info *out)
{
    struct rq_der pd = *params, key;
    struct rq_tlv t;
    if (pd.len == 0)
        return fail(c->why, "x509: EC key without a curve");
    if (rq_der_read(&pd, &t, c->why) ||
        rq_der_end(&pd, "x509: trailing bytes in EC parameters", c->why))
        return -1;
    if (bit_string_bytes(bits, &key, c->why))
        return -1;
    out->curve = RQ_X509_CURVE_OTHER;
    if (t.tag == RQ_DER_SEQUENCE) /* explicit curve parameters */
        return 0;
    if (t.tag != RQ_DER_OID)
        return fail(c->why, "x509: EC key without a curve");
    if (!(out->curve_oid = oid_dotted(c, &t)))
        return -1;
    for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++) {
        if (!rq_tlv_is(&t, curves[i].der, curves[i].len))
            continue;
        size_t f = curves[i].field_bytes;
        out->curve = curves[i].curve;
        if (!((key.len == 1 + 2 * f && key.p[0] == 4) ||
              (key.len == 1 + f && (key.p[0] == 2 || key.p[0] == 3))))
            return fail(c->why, "x509: EC point does not fit its curve");
    }
    return 0;
}

/* RFC 8410 section 3: parameters absent; the key is the raw 32 / 57-byte public key. */
static int parse_eddsa(const struct rq_der *params, const struct rq_tlv *bits, size_t key_len,
                       const char **why)
{
    struct rq_der key;
    if (params->len)
        return fail(why, "x509: EdDSA key with parameters");
    if (bit_string_bytes(bits, &key, why))
        return -1;
    if (key.len != key_len)
        return fail(why, "x509: EdDSA key of the wrong size");
    return 0;
}

static void key_text(struct rq_x509_info *out)
{
    char *s = out->key_alg_text;
    size_t n = sizeof out->key_alg_text;
    const char *curve = out->curve_oid ? out->curve_oid : "explicit";
    for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++)
        if (curves[i].curve == out->curve)
            curve = curves[i].name;
    switch (out->key_alg) {
    case RQ_X509_KEY_RSA: snprintf(s, n, "RSA %u", out->rsa_bits); break;
    case RQ_X509_KEY_EC: snprintf(s, n, "EC %s", curve); break;
    case RQ_X509_KEY_ED25519: snprintf(s, n, "Ed25519"); break;
    case RQ_X509_KEY_ED448: snprintf(s, n, "Ed448"); break;
    case RQ_X509_KEY_OTHER: snprintf(s, n, "other %s", out->key_oid); break;
    }
}

/* SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
 * AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL } */
static int parse_spki(struct ctx *c, const struct rq_tlv *spki, struct rq_x509_info *out)
{
    struct rq_der d = rq_der_of(spki), ai;
    struct rq_tlv alg, oid, bits;
    int rc = 0;
    if (rq_der_expect(&d, RQ_DER_SEQUENCE, &alg, "x509: key algorithm not a SEQUENCE", c->why) ||
        rq_der_expect(&d, RQ_DER_BIT_STRING, &bits, "x509: public key not a BIT STRING", c->why) ||
        rq_der_end(&d, "x509: trailing bytes in subjectPublicKeyInfo", c->why))
        return -1;
    if (bits.len == 0 || bits.p[0] > 7 || (bits.len == 1 && bits.p[0] != 0))
        return fail(c->why, "x509: malformed BIT STRING");
    ai = rq_der_of(&alg);
    if (rq_der_expect(&ai, RQ_DER_OID, &oid, "x509: key algorithm not an OID", c->why) ||
        !(out->key_oid = oid_dotted(c, &oid)))
        return -1;
    /* ai now holds the parameters, if any; der_check vouched for their structure */
    if (rq_tlv_is(&oid, OID_RSA, sizeof OID_RSA)) {
        out->key_alg = RQ_X509_KEY_RSA;
        rc = parse_rsa(&ai, &bits, out, c->why);
    } else if (rq_tlv_is(&oid, OID_EC, sizeof OID_EC)) {
        out->key_alg = RQ_X509_KEY_EC;
        rc = parse_ec(c, &ai, &bits, out);
    } else if (rq_tlv_is(&oid, OID_ED25519, sizeof OID_ED25519)) {
        out->key_alg = RQ_X509_KEY_ED25519;
        rc = parse_eddsa(&ai, &bits, 32, c->why);
    } else if (rq_tlv_is(&oid, OID_ED448, sizeof OID_ED448)) {
        out->key_alg = RQ_X509_KEY_ED448;
        rc = parse_eddsa(&ai, &bits, 57, c->why);
    }
    if (rc == 0)
        key_text(out);
    return rc;
}

/* ---- extensions ------------------------------------------------------------------------------ */

/* BOOLEAN in DER: one byte, 0x00 or 0xFF. */
static int parse_bool(const struct rq_tlv *t, bool *v, const char **why)
{
    if (t->len != 1 || (t->p[0] != 0 && t->p[0] != 0xff))
        return fail(why, "x509: malformed BOOLEAN");
    *v = t->p[0] != 0;
    return 0;
}

/* BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE,
 *                                 pathLenConstraint INTEGER (0..MAX) OPTIONAL } (4.2.1.9) */
static int parse_basic_constraints(const struct rq_tlv *value, struct rq_x509_info *out,
                                   const char **why)
{
    struct rq_der v = rq_der_of(value), d, mag;
    struct rq_tlv seq, t;
    if (out->has_basic_constraints) /* 4.2: at most one instance of an extension */
        return fail(why, "x509: basicConstraints twice");
    out->has_basic_constraints = true;
    if (rq_der_expect(&v, RQ_DER_SEQUENCE, &seq, "x509: basicConstraints not a SEQUENCE", why) ||
        rq_der_end(&v, "x509: trailing bytes after basicConstraints", why))
        return -1;
    d = rq_der_of(&seq);
    if (rq_der_peek(&d, RQ_DER_BOOLEAN) &&
        (rq_der_read(&d, &t, why) || parse_bool(&t, &out->ca, why)))
        return -1;
    if (rq_der_peek(&d, RQ_DER_INTEGER)) {
        if (rq_der_read(&d, &t, why) || positive_integer(&t, &mag, why))
            return -1;
        uint64_t n = 0;
        for (size_t i = 0; i < mag.len && n <= INT_MAX; i++)
            n = n << 8 | mag.p[i];
        out->path_len = n > INT_MAX ? INT_MAX : (int)n;
    }
    return rq_der_end(&d, "x509: trailing bytes in basicConstraints", why);
}

/* Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension
 * Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
static int parse_extensions(struct ctx *c, const struct rq_tlv *explicit3, struct rq_x509_info *out)
{
    struct rq_der outer = rq_der_of(explicit3), list;
    struct rq_tlv seq, ext, oid, crit, value;
    bool critical = false;
    if (rq_der_expect(&outer, RQ_DER_SEQUENCE, &seq, "x509: extensions not a SEQUENCE", c->why) ||
        rq_der_end(&outer, "x509: trailing bytes after extensions", c->why))
        return -1;
    if (seq.len == 0)
        return fail(c->why, "x509: empty extensions");
    list = rq_der_of(&seq);
    while (list.len) {
        if (rq_der_expect(&list, RQ_DER_SEQUENCE, &ext, "x509: extension not a SEQUENCE", c->why))
            return -1;
        struct rq_der e = rq_der_of(&ext);
        if (rq_der_expect(&e, RQ_DER_OID, &oid, "x509: extension id not an OID", c->why) ||
            (rq_der_peek(&e, RQ_DER_BOOLEAN) &&
             (rq_der_read(&e, &crit, c->why) || parse_bool(&crit, &critical, c->why))) ||
            rq_der_expect(&e, RQ_DER_OCTET_STRING, &value,
                          "x509: extension value not an OCTET STRING", c->why) ||
            rq_der_end(&e, "x509: trailing bytes in extension", c->why))
            return -1;
        if (oid.len == 0 || (oid.p[oid.len - 1] & 0x80))
            return fail(c->why, "x509: malformed OID");
        if (rq_tlv_is(&oid, OID_BASIC_CONSTRAINTS, sizeof OID_BASIC_CONSTRAINTS) &&
            parse_basic_constraints(&value, out, c->why))
            return -1;
    }
    return 0;
}

/* ---- the certificate ------------------------------------------------------------------------- */

/* version [0] EXPLICIT INTEGER { v1(0), v2(1), v3(2) } DEFAULT v1 */
static int parse_version(struct rq_der *tbs, int *version, const char **why)
{
    struct rq_tlv v, n;
    *version = 1;
    if (!rq_der_peek(tbs, TAG_VERSION))
        return 0;
    struct rq_der d;
    if (rq_der_read(tbs, &v, why))
        return -1;
    d = rq_der_of(&v);
    if (rq_der_expect(&d, RQ_DER_INTEGER, &n, "x509: version not an INTEGER", why) ||
        rq_der_end(&d, "x509: trailing bytes after version", why))
        return -1;
    if (n.len != 1 || n.p[0] > 2)
        return fail(why, "x509: unknown version");
    *version = n.p[0] + 1;
    return 0;
}

/* TBSCertificate ::= SEQUENCE { version, serialNumber, signature, issuer, validity, subject,
 *   subjectPublicKeyInfo, issuerUniqueID [1] (v2+), subjectUniqueID [2] (v2+),
 *   extensions [3] (v3) } */
static int parse_tbs(struct ctx *c, const struct rq_tlv *tbs_seq, const struct rq_tlv *outer_alg,
                     struct rq_x509_info *out)
{
    struct rq_der tbs = rq_der_of(tbs_seq), val;
    struct rq_tlv serial, sig, issuer, validity, nb, na, subject, spki, t;
    const char **why = c->why;
    if (parse_version(&tbs, &out->version, why) ||
        rq_der_expect(&tbs, RQ_DER_INTEGER, &serial, "x509: serial not an INTEGER", why) ||
        rq_der_expect(&tbs, RQ_DER_SEQUENCE, &sig, "x509: signature algorithm not a SEQUENCE",
                      why) ||
        rq_der_expect(&tbs, RQ_DER_SEQUENCE, &issuer, "x509: issuer not a SEQUENCE", why) ||
        rq_der_expect(&tbs, RQ_DER_SEQUENCE, &validity, "x509: validity not a SEQUENCE", why) ||
        rq_der_expect(&tbs, RQ_DER_SEQUENCE, &subject, "x509: subject not a SEQUENCE", why) ||
        rq_der_expect(&tbs, RQ_DER_SEQUENCE, &spki, "x509: subjectPublicKeyInfo not a SEQUENCE",
                      why))
        return -1;
    if (serial.len == 0)
        return fail(why, "x509: empty serial number");
    /* 4.1.1.2: signatureAlgorithm MUST be the same algorithm identifier as signature */
    if (!rq_tlv_is(&sig, outer_alg->p, outer_alg->len))
        return fail(why, "x509: signature algorithms differ");
    val = rq_der_of(&validity);
    if (rq_der_read(&val, &nb, why) || rq_der_read(&val, &na, why) ||
        rq_der_end(&val, "x509: trailing bytes in validity", why) ||
        parse_time(&nb, &out->not_before, why) || parse_time(&na, &out->not_after, why))
        return -1;
    if (parse_name(c, &issuer, &out->issuer) || parse_name(c, &subject, &out->subject) ||
        parse_spki(c, &spki, out))
        return -1;
    static const struct {
        uint8_t tag;
        int min_version;
    } optional[] = {{TAG_ISSUER_UID, 2}, {TAG_SUBJECT_UID, 2}, {TAG_EXTENSIONS, 3}};
    for (size_t i = 0; i < 3; i++) {
        if (!rq_der_peek(&tbs, optional[i].tag))
            continue;
        if (out->version < optional[i].min_version)
            return fail(why, "x509: field not allowed in this version");
        if (rq_der_read(&tbs, &t, why) || (t.tag == TAG_EXTENSIONS && parse_extensions(c, &t, out)))
            return -1;
    }
    return rq_der_end(&tbs, "x509: trailing bytes in tbsCertificate", why);
}

int rq_x509_der_parse(const uint8_t *der, size_t len, struct rq_x509_info *out, const char **why)
{
    struct ctx c = {NULL, why};
    struct rq_der in = {der, len}, cert;
    struct rq_tlv outer, tbs, alg, sig;
    memset(out, 0, sizeof *out);
    out->path_len = -1;
    if (rq_der_expect(&in, RQ_DER_SEQUENCE, &outer, "x509: not a SEQUENCE", why) ||
        rq_der_end(&in, "x509: trailing bytes after the certificate", why) ||
        rq_der_check(outer.p, outer.len, 1, why))
        goto fail;
    cert = rq_der_of(&outer);
    if (rq_der_expect(&cert, RQ_DER_SEQUENCE, &tbs, "x509: tbsCertificate not a SEQUENCE", why) ||
        rq_der_expect(&cert, RQ_DER_SEQUENCE, &alg, "x509: signatureAlgorithm not a SEQUENCE",
                      why) ||
        rq_der_expect(&cert, RQ_DER_BIT_STRING, &sig, "x509: signature not a BIT STRING", why) ||
        rq_der_end(&cert, "x509: trailing bytes in the certificate", why) ||
        parse_tbs(&c, &tbs, &alg, out))
        goto fail;
    out->mem_ = c.mem;
    return 0;
fail:
    chunks_free(c.mem);
    memset(out, 0, sizeof *out);
    return -1;
}

void rq_x509_info_free(struct rq_x509_info *info)
{
    if (!info)
        return;
    chunks_free(info->mem_);
    memset(info, 0, sizeof *info);
}

const char *rq_x509_key_alg_name(const struct rq_x509_info *info)
{
    return info->key_alg_text;
}

static int key_family(enum rq_x509_key_alg a)
{
    switch (a) {
    case RQ_X509_KEY_RSA: return 1;
    case RQ_X509_KEY_EC: return 2;
    case RQ_X509_KEY_ED25519:
    case RQ_X509_KEY_ED448: return 3;
    case RQ_X509_KEY_OTHER: break;
    }
    return 0;
}

bool rq_x509_same_key_alg(const struct rq_x509_info *a, const struct rq_x509_info *b)
{
    int fa = key_family(a->key_alg), fb = key_family(b->key_alg);
    if (fa || fb)
        return fa == fb;
    return a->key_oid && b->key_oid && strcmp(a->key_oid, b->key_oid) == 0;
}

const struct rq_x509_atv *rq_x509_name_find(const struct rq_x509_name *name, const char *type)
{
    for (size_t i = 0; i < name->count; i++)
        for (size_t j = 0; j < name->rdn[i].count; j++) {
            const struct rq_x509_atv *a = &name->rdn[i].atv[j];
            if (strcmp(a->oid, type) == 0 || (a->short_name && !strcasecmp(a->short_name, type)))
                return a;
        }
    return NULL;
}
