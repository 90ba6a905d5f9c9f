/* libFuzzer harness for auth/x509_subject.
 *
 * Input: split at '\n' into at most MAX_LINES subject strings. Each is parsed; a failure must
 * come with a "column N: ..." reason and leave the output empty. A parsed name must be well
 * formed (RDN numbering, NUL-terminated values), format to a string without raw control bytes
 * that parses back to exactly the same attributes, survive truncated formatting as a prefix,
 * be rebuilt identically with rq_dn_add, equal its own RDN-reversed copy, and give the CN a
 * reference picks. Every pair of parsed names must compare the same way both ways and as a
 * reference comparison written differently here (sorted RDN keys instead of multiset counts),
 * and rq_x509_map_attributes over the names (as rules and as a chain) must agree with a
 * brute-force walk using that reference. */
#include "auth/x509_subject.h"

#include <stdlib.h>
#include <string.h>

#define FZ_ASSERT(c)                                                                               \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

enum { MAX_LINES = 8, MAX_INPUT = 8192 };

/* ---- reference comparison --------------------------------------------------------------- */

struct key {
    const char *type;
    const uint8_t *v;
    size_t len;
};

static int key_cmp(const void *x, const void *y)
{
    const struct key *a = x, *b = y;
    int c = strcmp(a->type, b->type);
    if (c)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->len ? memcmp(a->v, b->v, a->len) : 0;
}

/* One name as RDNs of sorted keys with trimmed values. */
struct ref {
    struct key *keys; /* n keys, grouped by RDN, sorted inside each */
    size_t *start;    /* start[r] .. start[r + 1]: RDN r; n_rdn + 1 entries */
    size_t n, n_rdn;
};

static void ref_build(const struct rq_dn *dn, struct ref *r)
{
    r->n = dn->n;
    r->keys = malloc((dn->n + 1) * sizeof *r->keys);
    r->start = malloc((dn->n + 1) * sizeof *r->start);
    FZ_ASSERT(r->keys && r->start);
    r->n_rdn = 0;
    for (size_t i = 0; i < dn->n; i++) {
        const struct rq_rdn_attr *a = &dn->attrs[i];
        const uint8_t *v = a->value;
        size_t len = a->len;
        while (len && *v == ' ')
            v++, len--;
        while (len && v[len - 1] == ' ')
            len--;
        r->keys[i] = (struct key){a->type, v, len};
        if (i == 0 || a->rdn != dn->attrs[i - 1].rdn)
            r->start[r->n_rdn++] = i;
    }
    r->start[r->n_rdn] = dn->n;
    for (size_t k = 0; k < r->n_rdn; k++)
        qsort(r->keys + r->start[k], r->start[k + 1] - r->start[k], sizeof *r->keys, key_cmp);
}

static void ref_free(struct ref *r)
{
    free(r->keys);
    free(r->start);
}

static bool ref_rdn_equal(const struct ref *a, size_t ra, const struct ref *b, size_t rb)
{
    size_t na = a->start[ra + 1] - a->start[ra], nb = b->start[rb + 1] - b->start[rb];
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (key_cmp(&a->keys[a->start[ra] + i], &b->keys[b->start[rb] + i]))
            return false;
    return true;
}

static bool ref_equal(const struct ref *a, const struct ref *b)
{
    if (a->n_rdn != b->n_rdn)
        return false;
    bool fwd = true, rev = true;
    for (size_t k = 0; k < a->n_rdn; k++) {
        fwd = fwd && ref_rdn_equal(a, k, b, k);
        rev = rev && ref_rdn_equal(a, k, b, a->n_rdn - 1 - k);
    }
    return fwd || rev;
}

/* ---- checks on one parsed name ---------------------------------------------------------- */

static bool same_attrs(const struct rq_dn *a, const struct rq_dn *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const struct rq_rdn_attr *x = &a->attrs[i], *y = &b->attrs[i];
        if (strcmp(x->type, y->type) || x->len != y->len || x->rdn != y->rdn ||
            (x->len && memcmp(x->value, y->value, x->len)))
            return false;
    }
    return true;
}

static void check_well_formed(const struct rq_dn *dn)
{
    FZ_ASSERT(dn->n >= 1 && dn->n <= RQ_DN_MAX_ATTRS);
    FZ_ASSERT(dn->attrs[0].rdn == 0);
    for (size_t i = 0; i < dn->n; i++) {
        const struct rq_rdn_attr *a = &dn->attrs[i];
        FZ_ASSERT(a->type && a->type[0] && a->value && a->value[a->len] == '\0');
        if (i)
            FZ_ASSERT(a->rdn == dn->attrs[i - 1].rdn || a->rdn == dn->attrs[i - 1].rdn + 1);
    }
}

static void check_format(const struct rq_dn *dn)
{
    size_t need = rq_dn_format(dn, NULL, 0);
    char *s = malloc(need + 1);
    FZ_ASSERT(s);
    FZ_ASSERT(rq_dn_format(dn, s, need + 1) == need);
    FZ_ASSERT(strlen(s) == need); /* NUL bytes are escaped */
    for (size_t i = 0; i < need; i++)
        FZ_ASSERT((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
    /* truncated output is a NUL-terminated prefix */
    char small[17];
    size_t cut = need % sizeof small + 1;
    FZ_ASSERT(rq_dn_format(dn, small, cut) == need);
    FZ_ASSERT(strlen(small) == cut - 1 && memcmp(small, s, cut - 1) == 0);

    struct rq_dn back;
    const char *why = NULL;
    FZ_ASSERT(rq_dn_parse(s, need, &back, &why) == 0);
    FZ_ASSERT(same_attrs(dn, &back));
    rq_dn_free(&back);
    free(s);
}

/* Rebuilds dn with rq_dn_add, in the same RDN order and reversed. */
static void check_add(const struct rq_dn *dn)
{
    struct rq_dn same = {0}, rev = {0};
    for (size_t i = 0; i < dn->n; i++) {
        const struct rq_rdn_attr *a = &dn->attrs[i];
        FZ_ASSERT(
            rq_dn_add(&same, a->type, a->value, a->len, i && a->rdn == dn->attrs[i - 1].rdn) == 0);
    }
    FZ_ASSERT(same_attrs(dn, &same));
    for (size_t e = dn->n; e > 0;) {
        size_t s = e - 1;
        while (s > 0 && dn->attrs[s - 1].rdn == dn->attrs[e - 1].rdn)
            s--;
        for (size_t i = s; i < e; i++) {
            const struct rq_rdn_attr *a = &dn->attrs[i];
            FZ_ASSERT(rq_dn_add(&rev, a->type, a->value, a->len, i != s) == 0);
        }
        e = s;
    }
    FZ_ASSERT(rq_dn_equal(dn, &same) && rq_dn_equal(dn, &rev) && rq_dn_equal(&rev, dn));
    rq_dn_free(&same);
    rq_dn_free(&rev);
}

/* The CN is the trimmed value of the last CN attribute. */
static void check_common_name(const struct rq_dn *dn)
{
    const uint8_t *cn = NULL;
    size_t len = 0;
    int rc = rq_dn_common_name(dn, &cn, &len);
    size_t i = dn->n;
    while (i > 0 && strcmp(dn->attrs[i - 1].type, "CN") != 0)
        i--;
    if (i == 0) {
        FZ_ASSERT(rc < 0);
        return;
    }
    const struct rq_rdn_attr *a = &dn->attrs[i - 1];
    size_t lo = 0, hi = a->len;
    while (lo < hi && a->value[lo] == ' ')
        lo++;
    while (hi > lo && a->value[hi - 1] == ' ')
        hi--;
    FZ_ASSERT(rc == 0 && cn == a->value + lo && len == hi - lo);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    struct rq_dn dn[MAX_LINES];
    struct ref ref[MAX_LINES];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < MAX_LINES; i++) {
        if (i < size && data[i] != '\n')
            continue;
        const char *why = NULL;
        struct rq_dn d;
        if (rq_dn_parse((const char *)data + start, i - start, &d, &why) == 0) {
            check_well_formed(&d);
            check_format(&d);
            check_add(&d);
            ref_build(&d, &ref[n]);
            check_common_name(&d);
            dn[n++] = d;
        } else {
            FZ_ASSERT(why && strncmp(why, "column ", 7) == 0);
            FZ_ASSERT(d.attrs == NULL && d.n == 0);
        }
        start = i + 1;
    }

    for (size_t i = 0; i < n; i++) {
        FZ_ASSERT(rq_dn_equal(&dn[i], &dn[i]));
        for (size_t j = 0; j < n; j++) {
            bool e = rq_dn_equal(&dn[i], &dn[j]);
            FZ_ASSERT(e == rq_dn_equal(&dn[j], &dn[i]));
            FZ_ASSERT(e == ref_equal(&ref[i], &ref[j]));
        }
    }

    /* the first half are rules, the second half (leaf first) the chain */
    size_t nr = (n + 1) / 2;
    struct rq_x509_rule rules[MAX_LINES];
    memset(rules, 0, sizeof rules);
    for (size_t r = 0; r < nr; r++)
        rules[r].subject = dn[r];
    size_t got = 99, want = 99;
    int found = rq_x509_map_attributes(rules, nr, dn + nr, n - nr, &got);
    bool ref_found = false;
    for (size_t c = nr; c < n && !ref_found; c++)
        for (size_t r = 0; r < nr && !ref_found; r++)
            if (ref_equal(&ref[r], &ref[c])) {
                ref_found = true;
                want = r;
            }
    FZ_ASSERT(found == ref_found && got == want);

    for (size_t i = 0; i < n; i++) {
        rq_dn_free(&dn[i]);
        ref_free(&ref[i]);
    }
    return 0;
}
