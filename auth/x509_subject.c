/* X.509 distinguished names: the subject strings of x509Settings.authorizationAttributes
 * (RFC 4514 and the looser AIO style), comparison with certificate subjects, the attribute
 * mapping of a chain, the username (CN) and a formatter for log lines.
 *
 * Names are compared as data, never as formatted strings: two names are equal when they have the
 * same RDNs holding the same (canonical type, value) pairs. Types are canonicalised through one
 * table (short name, long names, OID); values are bytes and are only trimmed of edge spaces.
 *
 * Not done here: DER/ASN.1 decoding of certificates and chain verification (the TLS layer fills
 * struct rq_dn with rq_dn_add from the verified chain), reading the configuration, logging,
 * Unicode normalisation or case folding of values (AIO compares values case-sensitively). */
#include "auth/x509_subject.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------------------------------------
 * Attribute types
 * ------------------------------------------------------------------------------------------- */

/* Canonical short name, OID, and the other names accepted for it (case-insensitive). The short
 * names are those of OpenSSL and Windows (CertNameToStr) where both agree; where they differ
 * both are accepted (ST/S, GN/G). */
static const struct type_def {
    const char *canon;
    const char *oid;
    const char *alias[3];
} TYPES[] = {
    {"CN", "2.5.4.3", {"commonName"}},
    {"SN", "2.5.4.4", {"surname"}},
    {"SERIALNUMBER", "2.5.4.5", {0}},
    {"C", "2.5.4.6", {"countryName"}},
    {"L", "2.5.4.7", {"localityName"}},
    {"ST", "2.5.4.8", {"S", "stateOrProvinceName"}},
    {"STREET", "2.5.4.9", {"streetAddress"}},
    {"O", "2.5.4.10", {"organizationName"}},
    {"OU", "2.5.4.11", {"organizationalUnitName"}},
    {"T", "2.5.4.12", {"title"}},
    {"BUSINESSCATEGORY", "2.5.4.15", {0}},
    {"POSTALCODE", "2.5.4.17", {0}},
    {"GN", "2.5.4.42", {"G", "givenName"}},
    {"I", "2.5.4.43", {"initials"}},
    {"GENERATIONQUALIFIER", "2.5.4.44", {0}},
    {"DNQUALIFIER", "2.5.4.46", {0}},
    {"PSEUDONYM", "2.5.4.65", {0}},
    {"ORGANIZATIONIDENTIFIER", "2.5.4.97", {0}},
    {"DC", "0.9.2342.19200300.100.1.25", {"domainComponent"}},
    {"UID", "0.9.2342.19200300.100.1.1", {"userId"}},
    {"E", "1.2.840.113549.1.9.1", {"EMAIL", "emailAddress"}},
};
#define N_TYPES (sizeof TYPES / sizeof *TYPES)

enum type_err { TYPE_OK = 0, TYPE_UNKNOWN = -1, TYPE_BAD_OID = -2, TYPE_NOMEM = -3 };

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool name_is(const char *name, const char *t, size_t len)
{
    return name && strlen(name) == len && strncasecmp(name, t, len) == 0;
}

static char *dup_str(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* Normalises a dotted OID (optional "OID." prefix, leading zeros of arcs dropped) into out, which
 * has room for len + 1 bytes. At least two arcs, no empty arc. Arcs stay strings: no overflow. */
static bool oid_normalise(const char *t, size_t len, char *out)
{
    if (len >= 4 && strncasecmp(t, "OID.", 4) == 0) {
        t += 4;
        len -= 4;
    }
    size_t n = 0, arcs = 0, i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && is_digit(t[i]))
            i++;
        if (i == start || (i < len && t[i] != '.') || (i + 1 == len))
            return false; /* empty arc, stray character or trailing dot */
        while (start + 1 < i && t[start] == '0')
            start++;
        if (arcs++)
            out[n++] = '.';
        memcpy(out + n, t + start, i - start);
        n += i - start;
        i += i < len; /* the dot */
    }
    out[n] = '\0';
    return arcs >= 2;
}

/* Canonical type for a name or OID: *out is a new string (the short name when known). */
static enum type_err canon_type(const char *t, size_t len, char **out)
{
    const char *canon = NULL;
    char *oid = NULL;
    if (len && is_alpha(t[0]) && !(len >= 4 && strncasecmp(t, "OID.", 4) == 0)) {
        for (size_t i = 0; i < N_TYPES && !canon; i++) {
            const struct type_def *d = &TYPES[i];
            if (name_is(d->canon, t, len) || name_is(d->alias[0], t, len) ||
                name_is(d->alias[1], t, len) || name_is(d->alias[2], t, len))
                canon = d->canon;
        }
        if (!canon)
            return TYPE_UNKNOWN;
    } else {
        oid = malloc(len + 1);
        if (!oid)
            return TYPE_NOMEM;
        if (!oid_normalise(t, len, oid)) {
            free(oid);
            return TYPE_BAD_OID;
        }
        for (size_t i = 0; i < N_TYPES && !canon; i++)
            if (strcmp(TYPES[i].oid, oid) == 0)
                canon = TYPES[i].canon;
        if (!canon) {
            *out = oid;
            return TYPE_OK;
        }
        free(oid);
    }
    *out = dup_str(canon, strlen(canon));
    return *out ? TYPE_OK : TYPE_NOMEM;
}

/* ---------------------------------------------------------------------------------------------
 * Building and freeing names
 * ------------------------------------------------------------------------------------------- */

/* Appends (type, value) to dn, taking ownership of type in every case. Names are small
 * (RQ_DN_MAX_ATTRS), so the array simply grows by one. */
static int push_attr(struct rq_dn *dn, char *type, const uint8_t *value, size_t len, size_t rdn)
{
    if (dn->n >= RQ_DN_MAX_ATTRS) {
        free(type);
        return -E2BIG;
    }
    uint8_t *v = malloc(len + 1);
    struct rq_rdn_attr *a = v ? realloc(dn->attrs, (dn->n + 1) * sizeof *a) : NULL;
    if (!a) {
        free(v);
        free(type);
        return -ENOMEM;
    }
    if (len)
        memcpy(v, value, len);
    v[len] = '\0';
    dn->attrs = a;
    dn->attrs[dn->n++] = (struct rq_rdn_attr){.type = type, .value = v, .len = len, .rdn = rdn};
    return 0;
}

void rq_dn_free(struct rq_dn *dn)
{
    if (!dn)
        return;
    for (size_t i = 0; i < dn->n; i++) {
        free(dn->attrs[i].type);
        free(dn->attrs[i].value);
    }
    free(dn->attrs);
    dn->attrs = NULL;
    dn->n = 0;
}

int rq_dn_add(struct rq_dn *dn, const char *type, const uint8_t *value, size_t len, bool same_rdn)
{
    char *canon = NULL;
    switch (canon_type(type, strlen(type), &canon)) {
    case TYPE_OK: break;
    case TYPE_NOMEM: return -ENOMEM;
    default: return -EINVAL;
    }
    size_t rdn = 0;
    if (dn->n)
        rdn = dn->attrs[dn->n - 1].rdn + !same_rdn;
    return push_attr(dn, canon, value, len, rdn);
}

void rq_x509_rule_free(struct rq_x509_rule *r)
{
    if (!r)
        return;
    free(r->name);
    rq_dn_free(&r->subject);
    for (size_t i = 0; i < r->n; i++) {
        free(r->keys ? r->keys[i] : NULL);
        free(r->values ? r->values[i] : NULL);
    }
    free(r->keys);
    free(r->values);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------------------------- */

/* why cannot be a static string when it names a column; one buffer per thread keeps the
 * function reentrant across threads. */
static _Thread_local char why_buf[160];

struct parser {
    const char *s;
    size_t len, pos;
    struct rq_dn dn; /* in string order until the end */
    uint8_t *buf;    /* scratch for one value; len + 1 bytes is always enough */
    size_t blen;
    bool failed;
};

static int fail(struct parser *p, size_t pos, const char *fmt, ...)
{
    int n = snprintf(why_buf, sizeof why_buf, "column %zu: ", pos + 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why_buf + n, sizeof why_buf - (size_t)n, fmt, ap);
    va_end(ap);
    p->failed = true;
    return -1;
}

static bool is_space(int c)
{
    return c == ' ' || c == '\t';
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len && is_space(p->s[p->pos]))
        p->pos++;
}

static int hex_val(int c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* p->pos is at a '\\'. Appends the byte it stands for. */
static int parse_escape(struct parser *p)
{
    size_t at = p->pos;
    if (at + 1 >= p->len)
        return fail(p, at, "'\\' at the end of the subject");
    unsigned char c = (unsigned char)p->s[at + 1];
    int hi = hex_val(c), lo = at + 2 < p->len ? hex_val((unsigned char)p->s[at + 2]) : -1;
    if (hi >= 0 && lo >= 0) {
        p->buf[p->blen++] = (uint8_t)(hi << 4 | lo);
        p->pos += 3;
        return 0;
    }
    if (hi >= 0)
        return fail(p, at, "expected two hex digits after '\\'");
    /* RFC 4514 escapes ' ', '"', '#', '+', ',', ';', '<', '=', '>', '\\'; any other ASCII
     * punctuation is accepted as itself, because other tools escape more than the RFC does. */
    if (c == ' ' || (c > ' ' && c < 0x7f && !is_alpha(c) && !is_digit(c))) {
        p->buf[p->blen++] = c;
        p->pos += 2;
        return 0;
    }
    return fail(p, at, "unknown escape '\\%c' (use \\XX hex pairs for other bytes)",
                c >= ' ' && c < 0x7f ? c : '?');
}

/* "..." : everything up to the closing quote is the value, spaces included. */
static int parse_quoted(struct parser *p)
{
    size_t open = p->pos++;
    for (;;) {
        if (p->pos >= p->len)
            return fail(p, open, "quoted value is not closed");
        char c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            return 0;
        }
        if (c == '\\') {
            if (parse_escape(p))
                return -1;
        } else {
            p->buf[p->blen++] = (uint8_t)c;
            p->pos++;
        }
    }
}

/* Universal string types a "#hex" value may carry; anything else (BMPString, a SEQUENCE...) is
 * refused rather than guessed. */
static bool ber_string_tag(uint8_t tag)
{
    return tag == 0x0c || tag == 0x12 || tag == 0x13 || tag == 0x14 || tag == 0x16 || tag == 0x1a;
}

/* "#hex" (RFC 4514 2.4): the hex digits are the BER encoding of the value. */
static int parse_hexber(struct parser *p)
{
    size_t at = p->pos++, m = 0;
    while (p->pos < p->len && hex_val((unsigned char)p->s[p->pos]) >= 0)
        p->pos++;
    size_t digits = p->pos - at - 1;
    if (digits < 4 || digits % 2)
        return fail(p, at, "'#' starts a hex-encoded BER value (escape a leading '#' as \\#)");
    for (size_t i = at + 1; i < p->pos; i += 2)
        p->buf[m++] =
            (uint8_t)(hex_val((unsigned char)p->s[i]) << 4 | hex_val((unsigned char)p->s[i + 1]));
    size_t hdr, vlen;
    if (p->buf[1] < 0x80) {
        hdr = 2;
        vlen = p->buf[1];
    } else if (p->buf[1] == 0x81 && m >= 3) {
        hdr = 3;
        vlen = p->buf[2];
    } else if (p->buf[1] == 0x82 && m >= 4) {
        hdr = 4;
        vlen = (size_t)p->buf[2] << 8 | p->buf[3];
    } else {
        return fail(p, at, "unsupported or truncated BER length in '#' value");
    }
    if (!ber_string_tag(p->buf[0]))
        return fail(p, at, "'#' value is not a BER string (escape a leading '#' as \\#)");
    if (hdr + vlen != m)
        return fail(p, at, "BER length does not match the '#' value");
    memmove(p->buf, p->buf + hdr, vlen);
    p->blen = vlen;
    return 0;
}

/* Value after '=' (leading blanks skipped). Unquoted values end at an unescaped ',' or '+';
 * their unescaped trailing blanks are dropped, escaped ones kept. */
static int parse_value(struct parser *p)
{
    p->blen = 0;
    if (p->pos < p->len && p->s[p->pos] == '"')
        return parse_quoted(p);
    if (p->pos < p->len && p->s[p->pos] == '#')
        return parse_hexber(p);
    size_t keep = 0;
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c == ',' || c == '+')
            break;
        if (c == '\\') {
            if (parse_escape(p))
                return -1;
            keep = p->blen;
            continue;
        }
        p->buf[p->blen++] = (uint8_t)c;
        p->pos++;
        if (!is_space(c))
            keep = p->blen;
    }
    p->blen = keep;
    return 0;
}

static int parse_type(struct parser *p, char **type)
{
    size_t start = p->pos;
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.')
            break;
        p->pos++;
    }
    size_t tlen = p->pos - start;
    if (tlen == 0) {
        if (p->pos < p->len && p->s[p->pos] == '=')
            return fail(p, start, "attribute type missing before '='");
        return fail(p, start, "expected an attribute type such as CN");
    }
    switch (canon_type(p->s + start, tlen, type)) {
    case TYPE_OK: return 0;
    case TYPE_NOMEM: return fail(p, start, "out of memory");
    case TYPE_BAD_OID:
        return fail(p, start, "malformed OID '%.*s'", (int)(tlen > 40 ? 40 : tlen), p->s + start);
    default:
        return fail(p, start, "unknown attribute type '%.*s' (write its dotted OID)",
                    (int)(tlen > 40 ? 40 : tlen), p->s + start);
    }
}

/* type '=' value */
static int parse_attr(struct parser *p, size_t rdn)
{
    char *type = NULL;
    skip_ws(p);
    size_t at = p->pos;
    if (parse_type(p, &type))
        return -1;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != '=') {
        free(type);
        return fail(p, p->pos, "expected '=' after the attribute type");
    }
    p->pos++;
    skip_ws(p);
    if (parse_value(p)) {
        free(type);
        return -1;
    }
    skip_ws(p);
    switch (push_attr(&p->dn, type, p->buf, p->blen, rdn)) {
    case 0: return 0;
    case -E2BIG: return fail(p, at, "more than %d attributes", RQ_DN_MAX_ATTRS);
    default: return fail(p, at, "out of memory");
    }
}

static void reverse_attrs(struct rq_rdn_attr *a, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        struct rq_rdn_attr t = a[i];
        a[i] = a[n - 1 - i];
        a[n - 1 - i] = t;
    }
}

/* String order (most specific first) -> DER order, keeping the order inside each RDN. */
static void reverse_rdns(struct rq_dn *dn)
{
    if (!dn->n)
        return;
    size_t last = dn->attrs[dn->n - 1].rdn;
    reverse_attrs(dn->attrs, dn->n);
    for (size_t i = 0; i < dn->n;) {
        size_t j = i;
        while (j < dn->n && dn->attrs[j].rdn == dn->attrs[i].rdn)
            j++;
        reverse_attrs(dn->attrs + i, j - i);
        for (size_t k = i; k < j; k++)
            dn->attrs[k].rdn = last - dn->attrs[k].rdn;
        i = j;
    }
}

int rq_dn_parse(const char *s, size_t len, struct rq_dn *out, const char **why)
{
    struct parser p = {.s = s, .len = len};
    *out = (struct rq_dn){0};
    skip_ws(&p);
    if (p.pos == len) {
        fail(&p, p.pos, "empty subject");
    } else if (!(p.buf = malloc(len + 1))) {
        fail(&p, 0, "out of memory");
    }
    for (size_t rdn = 0; !p.failed;) {
        if (parse_attr(&p, rdn))
            break;
        if (p.pos == len)
            break;
        if (p.s[p.pos] == ',')
            rdn++;
        else if (p.s[p.pos] != '+')
            fail(&p, p.pos, "expected ',' or '+' after the value of %s",
                 p.dn.attrs[p.dn.n - 1].type);
        p.pos++;
    }
    free(p.buf);
    if (p.failed) {
        rq_dn_free(&p.dn);
        *why = why_buf;
        return -1;
    }
    reverse_rdns(&p.dn);
    *out = p.dn;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Comparison, mapping, username
 * ------------------------------------------------------------------------------------------- */

static void trimmed(const struct rq_rdn_attr *a, const uint8_t **v, size_t *len)
{
    const uint8_t *p = a->value;
    size_t n = a->len;
    while (n && p[0] == ' ') {
        p++;
        n--;
    }
    while (n && p[n - 1] == ' ')
        n--;
    *v = p;
    *len = n;
}

static bool attr_equal(const struct rq_rdn_attr *x, const struct rq_rdn_attr *y)
{
    const uint8_t *xv, *yv;
    size_t xl, yl;
    trimmed(x, &xv, &xl);
    trimmed(y, &yv, &yl);
    return xl == yl && strcmp(x->type, y->type) == 0 && (xl == 0 || memcmp(xv, yv, xl) == 0);
}

static size_t count_in(const struct rq_rdn_attr *x, const struct rq_rdn_attr *set, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += attr_equal(x, &set[i]);
    return c;
}

/* Same multiset of attributes? Quadratic, but an RDN rarely has more than two attributes and a
 * name at most RQ_DN_MAX_ATTRS. */
static bool rdn_equal(const struct rq_rdn_attr *a, size_t na, const struct rq_rdn_attr *b,
                      size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (count_in(&a[i], a, na) != count_in(&a[i], b, nb))
            return false;
    return true;
}

/* End (exclusive) of the RDN starting at i. */
static size_t rdn_end(const struct rq_dn *d, size_t i)
{
    size_t j = i + 1;
    while (j < d->n && d->attrs[j].rdn == d->attrs[i].rdn)
        j++;
    return j;
}

/* Start of the RDN ending (exclusive) at e > 0. */
static size_t rdn_start(const struct rq_dn *d, size_t e)
{
    size_t i = e - 1;
    while (i > 0 && d->attrs[i - 1].rdn == d->attrs[e - 1].rdn)
        i--;
    return i;
}

/* Compares the RDNs of a, first to last, with those of b first to last or (reverse) last to
 * first. The caller checked that a and b have equally many attributes. */
static bool equal_in_order(const struct rq_dn *a, const struct rq_dn *b, bool reverse)
{
    size_t ia = 0, ib = 0, eb = b->n;
    while (ia < a->n) {
        size_t ea = rdn_end(a, ia), sb;
        if (reverse) {
            if (eb == 0)
                return false;
            sb = rdn_start(b, eb);
        } else {
            if (ib >= b->n)
                return false;
            sb = ib;
            eb = rdn_end(b, ib);
        }
        if (!rdn_equal(a->attrs + ia, ea - ia, b->attrs + sb, eb - sb))
            return false;
        ia = ea;
        ib = eb;
        eb = sb;
    }
    return true; /* every RDN of a matched one of the same size: b is used up too */
}

bool rq_dn_equal(const struct rq_dn *a, const struct rq_dn *b)
{
    if (a->n != b->n)
        return false;
    return equal_in_order(a, b, false) || equal_in_order(a, b, true);
}

int rq_dn_common_name(const struct rq_dn *dn, const uint8_t **cn, size_t *len)
{
    for (size_t i = dn->n; i-- > 0;) {
        if (strcmp(dn->attrs[i].type, "CN") == 0) {
            trimmed(&dn->attrs[i], cn, len);
            return 0;
        }
    }
    return -ENOENT;
}

int rq_x509_map_attributes(const struct rq_x509_rule *rules, size_t n_rules,
                           const struct rq_dn *chain, size_t chain_len, size_t *matched_rule)
{
    for (size_t c = 0; c < chain_len; c++) {
        if (chain[c].n == 0)
            continue; /* an empty subject (SAN-only certificate) names nobody */
        for (size_t r = 0; r < n_rules; r++) {
            if (rules[r].subject.n && rq_dn_equal(&rules[r].subject, &chain[c])) {
                *matched_rule = r;
                return 1;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Formatting
 * ------------------------------------------------------------------------------------------- */

struct out {
    char *buf;
    size_t size, n;
};

static void put(struct out *o, char c)
{
    if (o->n + 1 < o->size)
        o->buf[o->n] = c;
    o->n++;
}

static void put_str(struct out *o, const char *s)
{
    while (*s)
        put(o, *s++);
}

static void put_hex(struct out *o, uint8_t b)
{
    static const char HEX[] = "0123456789ABCDEF";
    put(o, '\\');
    put(o, HEX[b >> 4]);
    put(o, HEX[b & 15]);
}

/* Length of the valid UTF-8 sequence at v[0] (a byte >= 0x80), or 0. No overlongs, surrogates
 * or code points above U+10FFFF. */
static size_t utf8_len(const uint8_t *v, size_t n)
{
    uint8_t c = v[0];
    size_t want;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        want = 2;
    else if (c >= 0xe0 && c <= 0xef)
        want = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        want = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (n < want || v[1] < lo || v[1] > hi)
        return 0;
    for (size_t i = 2; i < want; i++)
        if (v[i] < 0x80 || v[i] > 0xbf)
            return 0;
    return want;
}

static void put_value(struct out *o, const uint8_t *v, size_t n)
{
    size_t lead = 0, trail = n;
    while (lead < n && v[lead] == ' ')
        lead++;
    while (trail > lead && v[trail - 1] == ' ')
        trail--;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = v[i];
        size_t u;
        if (c == ' ' && (i < lead || i >= trail)) {
            put_str(o, "\\ ");
        } else if (c == '#' && i == 0) {
            put_str(o, "\\#");
        } else if (c && strchr("\"+,;<=>\\", c)) {
            put(o, '\\');
            put(o, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            put_hex(o, c);
        } else if (c < 0x80) {
            put(o, (char)c);
        } else if ((u = utf8_len(v + i, n - i)) > 0) {
            for (size_t k = 0; k < u; k++)
                put(o, (char)v[i + k]);
            i += u - 1;
        } else {
            put_hex(o, c);
        }
    }
}

size_t rq_dn_format(const struct rq_dn *dn, char *buf, size_t size)
{
    struct out o = {.buf = buf, .size = size};
    for (size_t e = dn->n; e > 0;) {
        size_t s = rdn_start(dn, e);
        if (e != dn->n)
            put_str(&o, ", ");
        for (size_t i = s; i < e; i++) {
            if (i != s)
                put(&o, '+');
            put_str(&o, dn->attrs[i].type);
            put(&o, '=');
            put_value(&o, dn->attrs[i].value, dn->attrs[i].len);
        }
        e = s;
    }
    if (size)
        buf[o.n < size ? o.n : size - 1] = '\0';
    return o.n;
}
