/* Unit tests for auth/x509_der.c.
 *
 * Part 1 makes real certificates with the openssl CLI in a temporary directory (EC P-256 chain,
 * RSA 2048, Ed25519, Ed448, P-384, P-521, multi-valued RDNs, UTF-8, T61 and BMP strings, 2030
 * UTCTime and 2051 GeneralizedTime) and checks every field against what `openssl x509` prints,
 * then truncates and corrupts each one at every byte. Part 2 builds certificates by hand for
 * what openssl will not produce (UniversalString, odd times, broken DER). Part 3 reads PEM.
 * Exits 77 when openssl is missing. */
#include "auth/pem.h"
#include "auth/x509_der.h"
#include "tests/unit/check.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];

/* ---- helpers ----------------------------------------------------------------------------------
 */

/* Runs a shell command inside dir; returns its exit status. */
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    int n = snprintf(cmd, sizeof cmd, "cd '%s' && ", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* stdout of a shell command run inside dir, NUL-terminated; the caller frees it. */
static char *capture(const char *fmt, ...)
{
    char cmd[2048];
    int n = snprintf(cmd, sizeof cmd, "cd '%s' && ", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    if (!f || !s)
        abort();
    for (size_t r; (r = fread(s + len, 1, cap - len - 1, f)) > 0;) {
        len += r;
        if (cap - len < 2 && !(s = realloc(s, cap *= 2)))
            abort();
    }
    s[len] = '\0';
    pclose(f);
    return s;
}

static uint8_t *slurp(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n)
        abort();
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

/* The text after `key` on its line in s ("" when absent), in a static buffer. */
static const char *field(const char *s, const char *key)
{
    static char v[1024];
    const char *p = strstr(s, key);
    v[0] = '\0';
    if (p) {
        p += strlen(key);
        size_t n = strcspn(p, "\n");
        snprintf(v, sizeof v, "%.*s", (int)(n < sizeof v ? n : sizeof v - 1), p);
    }
    return v;
}

/* openssl's short names where they differ from ours. */
static const char *openssl_sname(const struct rq_x509_atv *a)
{
    static const char *map[][2] = {
        {"E", "emailAddress"}, {"SERIALNUMBER", "serialNumber"}, {"STREET", "street"}};
    if (!a->short_name)
        return a->oid;
    for (size_t i = 0; i < 3; i++)
        if (!strcmp(a->short_name, map[i][0]))
            return map[i][1];
    return a->short_name;
}

/* A name the way `openssl x509 -nameopt utf8,sep_comma_plus_space,space_eq,{sname|oid}`
 * prints it. */
static void format_name(const struct rq_x509_name *n, bool oid, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n->count; i++)
        for (size_t j = 0; j < n->rdn[i].count; j++) {
            const struct rq_x509_atv *a = &n->rdn[i].atv[j];
            o += (size_t)snprintf(out + o, cap - o, "%s%s = %s",
                                  i + j == 0 ? ""
                                  : j        ? " + "
                                             : ", ",
                                  oid ? a->oid : openssl_sname(a), a->value);
            if (o >= cap)
                return;
        }
}

static int64_t iso_time(const char *s)
{
    struct tm tm = {0};
    if (sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return INT64_MIN;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* Days from now until y-06-01. */
static int days_until(int y)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = 5, .tm_mday = 1};
    return (int)((timegm(&tm) - time(NULL)) / 86400);
}

/* ---- part 1: certificates made by openssl ------------------------------------------------------
 */

static const char CNF[] = "[req]\n"
                          "distinguished_name = dn\n"
                          "string_mask = %s\n"
                          "utf8 = yes\n"
                          "x509_extensions = ca_ext\n"
                          "[dn]\n"
                          "[ca_ext]\n"
                          "basicConstraints = critical,CA:TRUE\n"
                          "subjectKeyIdentifier = hash\n"
                          "[inter_ext]\n"
                          "basicConstraints = critical,CA:TRUE,pathlen:0\n"
                          "[leaf_ext]\n"
                          "basicConstraints = CA:FALSE\n"
                          "keyUsage = digitalSignature\n"
                          "[none_ext]\n"
                          "subjectKeyIdentifier = hash\n";

#define EC256 "ec -pkeyopt ec_paramgen_curve:P-256"

/* Self-signed: name.pem/.der/.key. */
static void make_self(const char *name, const char *key, const char *subj, int days,
                      const char *opts)
{
    CHECK_EQ(sh("openssl req -x509 -config utf8.cnf -newkey %s -nodes -keyout %s.key -out %s.pem "
                "-subj '%s' -days %d %s >/dev/null 2>&1 && "
                "openssl x509 -in %s.pem -outform DER -out %s.der",
                key, name, name, subj, days, opts, name, name),
             0);
}

/* Signed by ca (ca.pem / ca.key) with extension section ext ("" for a v1 certificate). */
static void make_signed(const char *name, const char *key, const char *subj, const char *ca,
                        const char *ext, int days)
{
    char extopt[128] = "";
    if (*ext)
        snprintf(extopt, sizeof extopt, "-extfile utf8.cnf -extensions %s", ext);
    CHECK_EQ(sh("openssl req -new -config utf8.cnf -newkey %s -nodes -keyout %s.key -out %s.csr "
                "-subj '%s' >/dev/null 2>&1 && "
                "openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -set_serial 7 -days %d %s "
                "-out %s.pem >/dev/null 2>&1 && "
                "openssl x509 -in %s.pem -outform DER -out %s.der",
                key, name, name, subj, name, ca, ca, days, extopt, name, name, name),
             0);
}

/* Parses name.der and checks every field against openssl's view of it. */
static void check_against_openssl(const char *name, struct rq_x509_info *info)
{
    size_t len;
    const char *why = NULL;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s.der", name);
    uint8_t *der = slurp(buf, &len);
    CHECK(der != NULL);
    int rc = der ? rq_x509_der_parse(der, len, info, &why) : -1;
    CHECK_EQ(rc, 0);
    free(der);
    if (rc) { /* the checks after this one index into *info */
        fprintf(stderr, "test_x509_der: %s: %s; giving up\n", name, der ? why : "no file");
        exit(check_exit("test_x509_der"));
    }
    static const char *nameopt[] = {"utf8,sep_comma_plus_space,space_eq,sname",
                                    "utf8,sep_comma_plus_space,space_eq,oid"};
    for (int oid = 0; oid < 2; oid++) {
        char *s = capture("openssl x509 -in %s.pem -noout -subject -issuer -nameopt %s", name,
                          nameopt[oid]);
        bool known = true; /* every attribute has one of our short names */
        for (size_t i = 0; i < info->subject.count; i++)
            for (size_t j = 0; j < info->subject.rdn[i].count; j++)
                known &= info->subject.rdn[i].atv[j].short_name != NULL;
        if (oid || known) {
            format_name(&info->subject, oid, buf, sizeof buf);
            CHECK_STR(buf, field(s, "subject="));
            format_name(&info->issuer, oid, buf, sizeof buf);
            CHECK_STR(buf, field(s, "issuer="));
        }
        free(s);
    }

    char *s = capture("openssl x509 -in %s.pem -noout -dates -dateopt iso_8601", name);
    CHECK_EQ(info->not_before, iso_time(field(s, "notBefore=")));
    CHECK_EQ(info->not_after, iso_time(field(s, "notAfter=")));
    free(s);

    s = capture("openssl x509 -in %s.pem -noout -text", name);
    snprintf(buf, sizeof buf, "%d (0x%d)", info->version, info->version - 1);
    CHECK_STR(field(s, "Version: "), buf);
    const char *alg = field(s, "Public Key Algorithm: ");
    switch (info->key_alg) {
    case RQ_X509_KEY_RSA:
        CHECK_STR(alg, "rsaEncryption");
        snprintf(buf, sizeof buf, "(%u bit)", info->rsa_bits);
        CHECK_STR(field(s, "Public-Key: "), buf);
        break;
    case RQ_X509_KEY_EC:
        CHECK_STR(alg, "id-ecPublicKey");
        CHECK_STR(field(s, "NIST CURVE: "), rq_x509_key_alg_name(info) + 3);
        break;
    case RQ_X509_KEY_ED25519: CHECK_STR(alg, "ED25519"); break;
    case RQ_X509_KEY_ED448: CHECK_STR(alg, "ED448"); break;
    case RQ_X509_KEY_OTHER: CHECK(0); break;
    }
    CHECK_EQ(info->has_basic_constraints, strstr(s, "X509v3 Basic Constraints") != NULL);
    if (info->has_basic_constraints) {
        const char *bc = strstr(s, "X509v3 Basic Constraints");
        bc = strchr(bc, '\n') + 1;
        snprintf(buf, sizeof buf, "CA:%s", info->ca ? "TRUE" : "FALSE");
        CHECK(strncmp(bc + strspn(bc, " "), buf, strlen(buf)) == 0);
        char *pl = strstr(bc, "pathlen:");
        CHECK_EQ(info->path_len, pl && pl < strchr(bc, '\n') ? atoi(pl + 8) : -1);
    } else {
        CHECK_EQ(info->path_len, -1);
    }
    free(s);
}

/* Every truncation fails; every one-byte corruption either fails or yields a sane result. */
static void check_damage(const char *name)
{
    size_t len, accepted = 0, trunc_ok = 0, insane = 0;
    uint8_t *der = slurp(name, &len);
    struct rq_x509_info info;
    const char *why;
    if (!der)
        return;
    for (size_t l = 0; l < len; l++) {
        uint8_t *b = malloc(l ? l : 1); /* exact size: ASan sees any over-read */
        memcpy(b, der, l);
        trunc_ok += rq_x509_der_parse(b, l, &info, &why) == 0;
        rq_x509_info_free(&info);
        free(b);
    }
    CHECK_EQ(trunc_ok, 0);
    uint8_t *b = malloc(len + 1);
    memcpy(b, der, len);
    b[len] = 0;
    CHECK_EQ(rq_x509_der_parse(b, len + 1, &info, &why), -1); /* trailing byte */
    for (size_t i = 0; i < len; i++) {
        static const uint8_t flips[] = {0x01, 0x20, 0x80, 0xff};
        for (size_t f = 0; f < sizeof flips; f++) {
            b[i] ^= flips[f];
            if (rq_x509_der_parse(b, len, &info, &why) == 0) {
                accepted++;
                for (size_t r = 0; r < info.subject.count; r++)
                    for (size_t a = 0; a < info.subject.rdn[r].count; a++)
                        if (info.subject.rdn[r].atv[a].text &&
                            strlen(info.subject.rdn[r].atv[a].value) !=
                                info.subject.rdn[r].atv[a].value_len)
                            insane++;
                rq_x509_info_free(&info);
            } else if (!why || !strchr(why, ':')) {
                insane++;
            }
            b[i] ^= flips[f];
        }
    }
    CHECK_EQ(insane, 0);
    CHECK(accepted < len * 4);
    free(b);
    free(der);
}

static void test_openssl(void)
{
    struct rq_x509_info root, inter, leaf, rsa, ed, ed448, p384, p521, multi, utf8, t61, v1, y2030,
        y2051, attrs;

    /* EC P-256 chain root -> intermediate -> leaf */
    make_self("root", EC256, "/CN=Contoso Root CA/O=Contoso", 3650, "");
    make_signed("inter", EC256, "/O=Contoso/CN=Contoso Intermediate", "root", "inter_ext", 1000);
    make_signed("leaf", EC256, "/C=US/O=Contoso/OU=Engineering/CN=smart-fan", "inter", "leaf_ext",
                365);
    check_against_openssl("root", &root);
    check_against_openssl("inter", &inter);
    check_against_openssl("leaf", &leaf);
    CHECK(root.ca && inter.ca && !leaf.ca);
    CHECK(leaf.has_basic_constraints);
    CHECK_EQ(inter.path_len, 0);
    CHECK_EQ(root.path_len, -1);
    CHECK_EQ(leaf.version, 3);
    CHECK_EQ(leaf.subject.count, 4);
    CHECK_STR(leaf.subject.rdn[0].atv[0].short_name, "C");
    CHECK_STR(leaf.subject.rdn[0].atv[0].oid, "2.5.4.6");
    CHECK_STR(leaf.subject.rdn[0].atv[0].value, "US");
    CHECK_EQ(leaf.subject.rdn[0].atv[0].tag, 0x13); /* countryName stays PrintableString */
    CHECK_STR(leaf.subject.rdn[3].atv[0].short_name, "CN");
    CHECK_STR(leaf.subject.rdn[3].atv[0].value, "smart-fan");
    CHECK_EQ(leaf.subject.rdn[3].atv[0].value_len, 9);
    CHECK_EQ(leaf.subject.rdn[3].atv[0].tag, 0x0c);
    CHECK(leaf.subject.rdn[3].atv[0].text);
    CHECK_STR(rq_x509_name_find(&leaf.subject, "cn")->value, "smart-fan");
    CHECK_STR(rq_x509_name_find(&leaf.subject, "2.5.4.11")->value, "Engineering");
    CHECK(rq_x509_name_find(&leaf.subject, "L") == NULL);
    CHECK_STR(rq_x509_name_find(&leaf.issuer, "CN")->value, "Contoso Intermediate");
    CHECK_STR(rq_x509_name_find(&inter.issuer, "CN")->value, "Contoso Root CA");
    CHECK_EQ(leaf.key_alg, RQ_X509_KEY_EC);
    CHECK_EQ(leaf.curve, RQ_X509_CURVE_P256);
    CHECK_STR(leaf.key_oid, "1.2.840.10045.2.1");
    CHECK_STR(leaf.curve_oid, "1.2.840.10045.3.1.7");
    CHECK_STR(rq_x509_key_alg_name(&leaf), "EC P-256");
    CHECK(rq_x509_same_key_alg(&root, &inter) && rq_x509_same_key_alg(&inter, &leaf));

    make_signed("rsa", "rsa:2048", "/CN=rsa-device", "root", "leaf_ext", 30);
    check_against_openssl("rsa", &rsa);
    CHECK_EQ(rsa.key_alg, RQ_X509_KEY_RSA);
    CHECK_EQ(rsa.rsa_bits, 2048);
    CHECK_EQ(rsa.curve, RQ_X509_CURVE_NONE);
    CHECK(rsa.curve_oid == NULL);
    CHECK_STR(rq_x509_key_alg_name(&rsa), "RSA 2048");
    CHECK(!rq_x509_same_key_alg(&rsa, &root));

    make_self("ed", "ed25519", "/CN=ed-device", 30, "");
    make_self("ed448", "ed448", "/CN=ed448-device", 30, "");
    make_self("p384", "ec -pkeyopt ec_paramgen_curve:P-384", "/CN=p384", 30, "");
    make_self("p521", "ec -pkeyopt ec_paramgen_curve:P-521", "/CN=p521", 30, "");
    check_against_openssl("ed", &ed);
    check_against_openssl("ed448", &ed448);
    check_against_openssl("p384", &p384);
    check_against_openssl("p521", &p521);
    CHECK_STR(rq_x509_key_alg_name(&ed), "Ed25519");
    CHECK_STR(rq_x509_key_alg_name(&ed448), "Ed448");
    CHECK_STR(rq_x509_key_alg_name(&p384), "EC P-384");
    CHECK_STR(rq_x509_key_alg_name(&p521), "EC P-521");
    CHECK_EQ(p521.curve, RQ_X509_CURVE_P521);
    CHECK(rq_x509_same_key_alg(&ed, &ed448));
    CHECK(!rq_x509_same_key_alg(&ed, &leaf));
    CHECK(!rq_x509_same_key_alg(&ed, &rsa));
    CHECK(rq_x509_same_key_alg(&p384, &leaf) && rq_x509_same_key_alg(&p521, &p384));

    make_self("multi", EC256, "/CN=a+OU=b/O=c", 30, "-multivalue-rdn");
    check_against_openssl("multi", &multi);
    CHECK_EQ(multi.subject.count, 2);
    CHECK_EQ(multi.subject.rdn[0].count, 2);
    CHECK_EQ(multi.subject.rdn[1].count, 1);

    make_self("utf8", "ed25519", "/CN=Grüße 温度计 😀/O=Zoë", 30, "");
    check_against_openssl("utf8", &utf8);
    CHECK_STR(rq_x509_name_find(&utf8.subject, "CN")->value, "Grüße 温度计 😀");

    /* string_mask = default: "café" becomes a T61String, "温度" a BMPString */
    CHECK_EQ(sh("openssl req -x509 -config default.cnf -utf8 -newkey ed25519 -nodes "
                "-keyout t61.key -out t61.pem -subj '/CN=café/O=温度/L=x😀é' -days 30 "
                ">/dev/null 2>&1 && openssl x509 -in t61.pem -outform DER -out t61.der"),
             0);
    check_against_openssl("t61", &t61);
    CHECK_EQ(t61.subject.rdn[0].atv[0].tag, 0x14);
    CHECK_STR(t61.subject.rdn[0].atv[0].value, "café");
    CHECK_EQ(t61.subject.rdn[1].atv[0].tag, 0x1e);
    CHECK_STR(t61.subject.rdn[1].atv[0].value, "温度");

    /* every attribute we have a short name for, and one we do not (title) */
    make_self("attrs", EC256,
              "/DC=com/DC=contoso/C=US/ST=WA/L=Redmond/street=1 Main St/O=Contoso/OU=IoT"
              "/serialNumber=42/UID=u1/emailAddress=fan@contoso.com/title=Fan/CN=fan",
              30, "");
    check_against_openssl("attrs", &attrs);
    CHECK_EQ(attrs.subject.count, 13);
    static const char *shorts[] = {"DC", "DC",           "C",   "ST", "L",  "STREET", "O",
                                   "OU", "SERIALNUMBER", "UID", "E",  NULL, "CN"};
    for (size_t i = 0; i < 13 && i < attrs.subject.count; i++) {
        const char *sn = attrs.subject.rdn[i].atv[0].short_name;
        CHECK(shorts[i] ? sn && !strcmp(sn, shorts[i]) : sn == NULL);
    }
    CHECK_STR(attrs.subject.rdn[11].atv[0].oid, "2.5.4.12");

    make_signed("v1", EC256, "/CN=old", "root", "", 30); /* no extensions: version 1 */
    check_against_openssl("v1", &v1);
    CHECK_EQ(v1.version, 1);
    CHECK(!v1.has_basic_constraints && !v1.ca);

    int d2030 = days_until(2030), d2051 = days_until(2051);
    if (d2030 > 0) {
        make_self("y2030", EC256, "/CN=y2030", d2030, "");
        check_against_openssl("y2030", &y2030);
        char *s = capture("openssl asn1parse -in y2030.pem | grep -c UTCTIME");
        CHECK_EQ(atoi(s), 2);
        free(s);
        rq_x509_info_free(&y2030);
    } else {
        fprintf(stderr, "test_x509_der: skipping the 2030 UTCTime case: 2030 is past\n");
    }
    make_self("y2051", EC256, "/CN=y2051", d2051, "");
    check_against_openssl("y2051", &y2051);
    char *s = capture("openssl asn1parse -in y2051.pem | grep -c GENERALIZEDTIME");
    CHECK_EQ(atoi(s), 1);
    free(s);
    CHECK(y2051.not_after > 2556144000); /* after 2051-01-01 */

    static const char *all[] = {"root", "inter", "leaf", "rsa", "ed",    "ed448", "p384",
                                "p521", "multi", "utf8", "t61", "attrs", "v1",    "y2051"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        char n[64];
        snprintf(n, sizeof n, "%s.der", all[i]);
        check_damage(n);
    }

    struct rq_x509_info *infos[] = {&root, &inter, &leaf, &rsa, &ed,    &ed448, &p384,
                                    &p521, &multi, &utf8, &t61, &attrs, &v1,    &y2051};
    for (size_t i = 0; i < sizeof infos / sizeof infos[0]; i++)
        rq_x509_info_free(infos[i]);
    rq_x509_info_free(infos[0]); /* twice is harmless, and so is NULL */
    rq_x509_info_free(NULL);
}

/* ---- part 2: certificates built by hand --------------------------------------------------------
 */

struct blob {
    size_t n;
    uint8_t d[1536];
};

static struct blob B(const void *p, size_t n) {
    struct blob b = {n, {0}};
    memcpy(b.d, p, n);
    return b;
}
#define RAW(s) B(s, sizeof(s) - 1)

static struct blob
cat(int k, ...)
{
    struct blob r = {0, {0}};
    va_list ap;
    va_start(ap, k);
    for (int i = 0; i < k; i++) {
        struct blob x = va_arg(ap, struct blob);
        memcpy(r.d + r.n, x.d, x.n);
        r.n += x.n;
    }
    va_end(ap);
    return r;
}

/* tag + DER length + content */
static struct blob T(uint8_t tag, struct blob c) {
    struct blob r = {0, {0}};
    r.d[r.n++] = tag;
    if (c.n < 0x80) {
        r.d[r.n++] = (uint8_t)c.n;
    } else if (c.n < 0x100) {
        r.d[r.n++] = 0x81;
        r.d[r.n++] = (uint8_t)c.n;
    } else {
        r.d[r.n++] = 0x82;
        r.d[r.n++] = (uint8_t)(c.n >> 8);
        r.d[r.n++] = (uint8_t)c.n;
    }
    memcpy(r.d + r.n, c.d, c.n);
    r.n += c.n;
    return r;
}

#define OID_CN RAW("\x55\x04\x03")
#define OID_ECDSA_SHA256 RAW("\x2a\x86\x48\xce\x3d\x04\x03\x02")
#define OID_EC RAW("\x2a\x86\x48\xce\x3d\x02\x01")
#define OID_P256 RAW("\x2a\x86\x48\xce\x3d\x03\x01\x07")

/* Name with one RDN holding one attribute. */
static struct blob
name1(struct blob oid, uint8_t tag, struct blob value)
{
    return T(0x30, T(0x31, T(0x30, cat(2, T(0x06, oid), T(tag, value)))));
}

static struct blob ec_point(uint8_t first, size_t n)
{
    struct blob b = {n + 2, {0}}; /* no unused bits, then the point: first || n bytes */
    b.d[1] = first;
    memset(b.d + 2, 0x42, n);
    return b;
}

static struct blob ext(struct blob oid, struct blob value)
{
    return T(0x30, cat(2, T(0x06, oid), T(0x04, value)));
}

struct parts {
    struct blob version, serial, sigalg, issuer, validity, subject, spki, tail, outer_sigalg;
};

static struct parts defaults(void)
{
    struct parts p;
    p.version = T(0xa0, T(0x02, RAW("\x02")));
    p.serial = T(0x02, RAW("\x01"));
    p.sigalg = T(0x30, T(0x06, OID_ECDSA_SHA256));
    p.outer_sigalg = p.sigalg;
    p.issuer = name1(OID_CN, 0x0c, RAW("ca"));
    p.validity = T(0x30, cat(2, T(0x17, RAW("240101000000Z")), T(0x18, RAW("20510101000000Z"))));
    p.subject = name1(OID_CN, 0x0c, RAW("dev"));
    p.spki = T(0x30, cat(2, T(0x30, cat(2, T(0x06, OID_EC), T(0x06, OID_P256))),
                         T(0x03, ec_point(4, 64))));
    p.tail = T(0xa3, T(0x30, ext(RAW("\x55\x1d\x13"), T(0x30, T(0x01, RAW("\xff"))))));
    return p;
}

static struct blob build(const struct parts *p)
{
    struct blob tbs = T(0x30, cat(8, p->version, p->serial, p->sigalg, p->issuer, p->validity,
                                  p->subject, p->spki, p->tail));
    return T(0x30, cat(3, tbs, p->outer_sigalg, T(0x03, RAW("\x00\x30\x00"))));
}

/* Parses a blob from an exact-size heap copy. */
static int parse_blob(struct blob b, struct rq_x509_info *info, const char **why)
{
    uint8_t *c = malloc(b.n ? b.n : 1);
    memcpy(c, b.d, b.n);
    int rc = rq_x509_der_parse(c, b.n, info, why);
    free(c);
    return rc;
}

static int parse_parts(const struct parts *p, struct rq_x509_info *info, const char **why)
{
    return parse_blob(build(p), info, why);
}

/* Expects p to fail with a why containing want. */
static void expect_fail(const struct parts *p, const char *want, int line)
{
    struct rq_x509_info info;
    const char *why = NULL;
    int rc = parse_parts(p, &info, &why);
    CHECK_EQ(rc, -1);
    CHECK(why && strstr(why, want));
    if (rc == 0 || !why || !strstr(why, want))
        fprintf(stderr, "  line %d: rc %d why \"%s\", wanted \"%s\"\n", line, rc,
                why ? why : "(null)", want);
    CHECK(info.mem_ == NULL && info.subject.rdn == NULL);
    rq_x509_info_free(&info);
}
#define EXPECT_FAIL(p, want) expect_fail(&(p), want, __LINE__)

static void test_defaults(void)
{
    struct parts p = defaults();
    struct rq_x509_info info;
    const char *why = NULL;
    int rc = parse_parts(&p, &info, &why);
    CHECK_EQ(rc, 0);
    if (rc) { /* everything below builds on this certificate */
        fprintf(stderr, "test_x509_der: hand-built certificate: %s; giving up\n", why);
        exit(check_exit("test_x509_der"));
    }
    CHECK_EQ(info.not_before, 1704067200);
    CHECK_EQ(info.not_after, 2556144000);
    CHECK_STR(info.subject.rdn[0].atv[0].value, "dev");
    CHECK_STR(info.issuer.rdn[0].atv[0].value, "ca");
    CHECK(info.has_basic_constraints && info.ca);
    CHECK_EQ(info.path_len, -1);
    CHECK_STR(rq_x509_key_alg_name(&info), "EC P-256");
    rq_x509_info_free(&info);
    CHECK(info.mem_ == NULL);
}

static int month_days(int y, int mon)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    return days[mon] + (mon == 1 && leap);
}

struct time_case {
    uint8_t tag;
    const char *s;
    int64_t want; /* INT64_MIN: must fail */
};

static void test_times(void)
{
    static const struct time_case cases[] = {
        {0x17, "491231235959Z", 2524607999},
        {0x17, "500101000000Z", -631152000},
        {0x17, "700101000000Z", 0},
        {0x17, "380119031408Z", 2147483648},
        {0x18, "20000229120000Z", 951825600},
        {0x18, "20510101000000.123Z", 2556144000},
        {0x18, "20510101000000.0Z", 2556144000},
        {0x18, "99991231235959Z", 253402300799},
        {0x18, "00000101000000Z", -62167219200},
        {0x18, "19000229000000Z", INT64_MIN}, /* 1900 is no leap year */
        {0x18, "20230229000000Z", INT64_MIN},
        {0x17, "2401010000Z", INT64_MIN}, /* seconds are mandatory */
        {0x17, "240101000000+0100", INT64_MIN},
        {0x17, "240101000000.5Z", INT64_MIN},
        {0x17, "240101000000z", INT64_MIN},
        {0x18, "20240101000000", INT64_MIN},
        {0x18, "20240101000000+0000", INT64_MIN},
        {0x18, "20240101000000.Z", INT64_MIN},
        {0x18, "20240101000000.5.Z", INT64_MIN},
        {0x18, "20240101000000,5Z", INT64_MIN},
        {0x18, "202401010000Z", INT64_MIN},
        {0x18, "20241301000000Z", INT64_MIN},
        {0x18, "20240001000000Z", INT64_MIN},
        {0x18, "20240100000000Z", INT64_MIN},
        {0x18, "20240431000000Z", INT64_MIN},
        {0x18, "20240101240000Z", INT64_MIN},
        {0x18, "20240101006000Z", INT64_MIN},
        {0x18, "20240101000060Z", INT64_MIN},
        {0x18, "2024-1-1000000Z", INT64_MIN},
        {0x18, " 2024101000000Z", INT64_MIN},
        {0x04, "20240101000000Z", INT64_MIN}, /* not a time type */
        {0x17, "", INT64_MIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct time_case *c = &cases[i];
        struct parts p = defaults();
        struct rq_x509_info info;
        const char *why = NULL;
        p.validity =
            T(0x30, cat(2, T(c->tag, B(c->s, strlen(c->s))), T(0x17, RAW("240101000000Z"))));
        int rc = parse_parts(&p, &info, &why);
        CHECK_EQ(rc, c->want == INT64_MIN ? -1 : 0);
        if (rc == 0)
            CHECK_EQ(info.not_before, c->want);
        if (rc == 0 && c->want == INT64_MIN)
            fprintf(stderr, "  time \"%s\" accepted\n", c->s);
        rq_x509_info_free(&info);
    }

    /* a sweep against timegm, in the 1950-2049 UTCTime range and the whole GeneralizedTime one */
    unsigned seed = 12345, bad = 0;
    for (int i = 0; i < 3000; i++) {
        seed = seed * 1103515245 + 12345;
        int gen = i % 2;
        struct tm tm = {.tm_year =
                            gen ? (int)(seed >> 8) % 10000 - 1900 : 50 + (int)(seed >> 8) % 100,
                        .tm_mon = (int)(seed >> 3) % 12,
                        .tm_mday = 1 + (int)(seed >> 12) % 28,
                        .tm_hour = (int)(seed >> 5) % 24,
                        .tm_min = (int)(seed >> 7) % 60,
                        .tm_sec = (int)(seed >> 11) % 60};
        int y = tm.tm_year + 1900;
        if (i % 7 == 0) /* month ends, leap days */
            tm.tm_mday = month_days(y, tm.tm_mon);
        char s[32];
        snprintf(s, sizeof s, "%0*d%02d%02d%02d%02d%02dZ", gen ? 4 : 2, gen ? y : y % 100,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        int64_t want = (int64_t)timegm(&tm);
        struct parts p = defaults();
        struct rq_x509_info info;
        const char *why;
        p.validity =
            T(0x30, cat(2, T(0x17, RAW("240101000000Z")), T(gen ? 0x18 : 0x17, B(s, strlen(s)))));
        if (parse_parts(&p, &info, &why) != 0 || info.not_after != want) {
            if (bad++ < 5)
                fprintf(stderr, "  time %s: got %lld want %lld\n", s, (long long)info.not_after,
                        (long long)want);
        }
        rq_x509_info_free(&info);
    }
    CHECK_EQ(bad, 0);
}

struct string_case {
    uint8_t tag;
    const char *in;
    size_t in_len;
    const char *want; /* NULL: must fail */
    bool text;
};
#define SC(tag, in, want, text)                                                                    \
    {                                                                                              \
        tag, in, sizeof(in) - 1, want, text                                                        \
    }

static void test_strings(void)
{
    static const struct string_case cases[] = {
        SC(0x0c, "smart-fan", "smart-fan", true),
        SC(0x0c, "", "", true),
        SC(0x0c,
           "Gr\xc3\xbc\xc3\x9f"
           "e \xf0\x9f\x98\x80",
           "Grüße 😀", true),
        SC(0x0c, "\xc0\x80", NULL, false),         /* overlong NUL */
        SC(0x0c, "\xe0\x80\xaf", NULL, false),     /* overlong '/' */
        SC(0x0c, "\xed\xa0\x80", NULL, false),     /* surrogate */
        SC(0x0c, "\xf4\x90\x80\x80", NULL, false), /* above U+10FFFF */
        SC(0x0c, "\xc3", NULL, false),             /* truncated */
        SC(0x0c, "\x80", NULL, false),
        SC(0x0c, "\xff", NULL, false),
        SC(0x0c, "good.com\0.evil.com", NULL, false),
        SC(0x13, "US", "US", true),
        SC(0x13, "a@b*c", "a@b*c", true),
        SC(0x13, "caf\xe9", NULL, false),
        SC(0x16, "x@y.z", "x@y.z", true),
        SC(0x16, "a\0", NULL, false),
        SC(0x12, "0123", "0123", true),
        SC(0x1a, "vis", "vis", true),
        SC(0x14, "caf\xe9", "café", true),
        SC(0x14, "\xff\x80", "ÿ\xc2\x80", true),
        SC(0x14, "\0", NULL, false),
        SC(0x1e, "\x6e\x29\x5e\xa6", "温度", true),
        SC(0x1e, "\x00\x41\xd8\x3d\xde\x00", "A😀", true), /* surrogate pair */
        SC(0x1e, "\xd8\x3d", NULL, false),                /* lone high surrogate */
        SC(0x1e, "\xde\x00\xd8\x3d", NULL, false),        /* reversed pair */
        SC(0x1e, "\x00\x41\x00", NULL, false),            /* odd length */
        SC(0x1e, "\x00\x00", NULL, false),
        SC(0x1c, "\x00\x01\xf6\x00\x00\x00\x00\x78", "😀x", true),
        SC(0x1c, "\x00\x11\x00\x00", NULL, false),
        SC(0x1c, "\x00\x00\xd8\x00", NULL, false),
        SC(0x1c, "\x00\x00\x00", NULL, false),
        SC(0x02, "\x01\x00", "\x01", false), /* INTEGER: raw bytes, value_len 2 */
        SC(0x30, "\x05\x00", "\x05", false), /* a SEQUENCE holding NULL */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct string_case *c = &cases[i];
        struct parts p = defaults();
        struct rq_x509_info info;
        const char *why = NULL;
        p.subject = name1(OID_CN, c->tag, B(c->in, c->in_len));
        int rc = parse_parts(&p, &info, &why);
        CHECK_EQ(rc, c->want ? 0 : -1);
        if (rc == 0 && c->want) {
            const struct rq_x509_atv *a = &info.subject.rdn[0].atv[0];
            CHECK_EQ(a->tag, c->tag);
            CHECK_EQ(a->text, c->text);
            CHECK_STR(a->value, c->want);
            CHECK_EQ(a->value_len, c->text ? strlen(c->want) : c->in_len);
            CHECK_EQ(a->value[a->value_len], 0);
        } else if (rc != (c->want ? 0 : -1)) {
            fprintf(stderr, "  string case %zu: rc %d (%s)\n", i, rc, why ? why : "");
        }
        rq_x509_info_free(&info);
    }
}

static void test_oids(void)
{
    static const struct {
        const char *der;
        size_t len;
        const char *want;
    } cases[] = {
        {"\x55\x04\x03", 3, "2.5.4.3"},
        {"\x2a\x03", 2, "1.2.3"},
        {"\x00", 1, "0.0"},
        {"\x27", 1, "0.39"},
        {"\x28", 1, "1.0"},
        {"\x4f", 1, "1.39"},
        {"\x50", 1, "2.0"},
        {"\x7f\x7f", 2, "2.47.127"},
        {"\x88\x37\x03", 3, "2.999.3"},
        {"\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x19", 10, "0.9.2342.19200300.100.1.25"},
        {"\x2b\x06\x01\x04\x01\x82\x37\x3c\x02\x01\x03", 11, "1.3.6.1.4.1.311.60.2.1.3"},
        {"\x2a\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10, "1.2.9223372036854775807"},
        {"\x2a\x82\x80\x80\x80\x80\x80\x80\x80\x80\x00", 11, "1.2.18446744073709551616"},
        {"\x69\x83\xf0\x9d\xa7\xeb\xcf\xde\xe0\xc7\xa1\xa7\xb2\xc0\x94\x8c\xc8\xf9\xd7\x76", 20,
         "2.25.329800735698586629295641978511506172918"},
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11, "2.151115727451828646838191"},
        {"", 0, NULL},
        {"\x2a\x86", 2, NULL},     /* last arc unterminated */
        {"\x2a\x80\x01", 3, NULL}, /* non-minimal arc */
        {"\x80\x01", 2, NULL},     /* non-minimal first arc */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct parts p = defaults();
        struct rq_x509_info info;
        const char *why = NULL;
        p.subject = name1(B(cases[i].der, cases[i].len), 0x0c, RAW("v"));
        int rc = parse_parts(&p, &info, &why);
        CHECK_EQ(rc, cases[i].want ? 0 : -1);
        if (rc == 0) {
            CHECK_STR(info.subject.rdn[0].atv[0].oid, cases[i].want);
        }
        rq_x509_info_free(&info);
    }
    /* 64 bytes is the longest OID accepted */
    uint8_t big[65];
    memset(big, 0x81, sizeof big);
    big[0] = 0x2a;
    big[63] = big[64] = 0x01;
    struct parts p = defaults();
    struct rq_x509_info info;
    const char *why;
    p.subject = name1(B(big, 64), 0x0c, RAW("v"));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    rq_x509_info_free(&info);
    p.subject = name1(B(big, 65), 0x0c, RAW("v"));
    EXPECT_FAIL(p, "OID too long");
}

static void test_names(void)
{
    struct parts p = defaults();
    struct rq_x509_info info;
    const char *why = NULL;
    struct blob cn = T(0x30, cat(2, T(0x06, OID_CN), T(0x0c, RAW("a"))));
    struct blob ou = T(0x30, cat(2, T(0x06, RAW("\x55\x04\x0b")), T(0x13, RAW("b"))));
    p.subject = T(0x30, cat(2, T(0x31, cat(2, cn, ou)), T(0x31, ou)));
    p.issuer = T(0x30, RAW(""));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK_EQ(info.issuer.count, 0);
    CHECK(rq_x509_name_find(&info.issuer, "CN") == NULL);
    CHECK_EQ(info.subject.count, 2);
    CHECK_EQ(info.subject.rdn[0].count, 2);
    CHECK_STR(info.subject.rdn[0].atv[1].short_name, "OU");
    CHECK_STR(rq_x509_name_find(&info.subject, "OU")->value, "b");
    CHECK(rq_x509_name_find(&info.subject, "OU") == &info.subject.rdn[0].atv[1]);
    rq_x509_info_free(&info);

    p = defaults();
    p.subject = T(0x30, T(0x31, RAW("")));
    EXPECT_FAIL(p, "empty RDN");
    p.subject = T(0x30, T(0x30, cn));
    EXPECT_FAIL(p, "RDN not a SET");
    p.subject = T(0x30, T(0x31, T(0x31, cat(2, T(0x06, OID_CN), T(0x0c, RAW("a"))))));
    EXPECT_FAIL(p, "attribute not a SEQUENCE");
    p.subject = T(0x30, T(0x31, T(0x30, cat(2, T(0x02, OID_CN), T(0x0c, RAW("a"))))));
    EXPECT_FAIL(p, "type not an OID");
    p.subject =
        T(0x30, T(0x31, T(0x30, cat(3, T(0x06, OID_CN), T(0x0c, RAW("a")), T(0x05, RAW(""))))));
    EXPECT_FAIL(p, "trailing bytes in name attribute");
    p.subject = T(0x30, T(0x31, T(0x30, T(0x06, OID_CN))));
    EXPECT_FAIL(p, "truncated");
    p.subject = T(0x31, T(0x31, cn));
    EXPECT_FAIL(p, "subject not a SEQUENCE");
}

static void test_structure(void)
{
    struct parts p = defaults();
    struct blob good, b, x = {200, {0}};
    memset(x.d, 'x', x.n);
    p.subject = name1(OID_CN, 0x0c, x); /* over 255 bytes in all */
    good = build(&p);
    struct rq_x509_info info;
    const char *why = NULL;

    /* length forms of the outer SEQUENCE: good is 0x30 0x82 hi lo */
    CHECK_EQ(good.d[1], 0x82);
    b = good;
    b.d[1] = 0x80;
    CHECK_EQ(parse_blob(b, &info, &why), -1);
    CHECK_STR(why, "x509: indefinite length");
    b = cat(2, RAW("\x30\x83\x00"), B(good.d + 2, good.n - 2)); /* 3-byte length, leading 0 */
    CHECK_EQ(parse_blob(b, &info, &why), -1);
    CHECK_STR(why, "x509: non-minimal length");
    b = cat(2, RAW("\x30\x85\x00\x00\x00"), B(good.d + 2, good.n - 2));
    CHECK_EQ(parse_blob(b, &info, &why), -1);
    CHECK_STR(why, "x509: length of more than 4 bytes");
    b = cat(2, good, RAW("\x00"));
    CHECK_EQ(parse_blob(b, &info, &why), -1);
    CHECK_STR(why, "x509: trailing bytes after the certificate");
    b = RAW("\x30\x81\x05\x00\x00\x00\x00\x00"); /* 0x81 with a length < 128 */
    CHECK_EQ(parse_blob(b, &info, &why), -1);
    CHECK_STR(why, "x509: non-minimal length");
    CHECK_EQ(parse_blob(RAW(""), &info, &why), -1);
    CHECK_EQ(parse_blob(RAW("\x30"), &info, &why), -1);
    CHECK_EQ(parse_blob(RAW("\x30\x00"), &info, &why), -1);
    CHECK_EQ(parse_blob(RAW("\x31\x00"), &info, &why), -1);
    CHECK_EQ(parse_blob(RAW("\x30\x84\xff\xff\xff\xff"), &info, &why), -1);
    CHECK_STR(why, "x509: TLV longer than its container");

    /* a multi-byte tag anywhere */
    p.subject = name1(OID_CN, 0x1f, RAW("\x20\x01x"));
    EXPECT_FAIL(p, "multi-byte tag");
    /* nesting: an attribute value of nested SEQUENCEs, first fine, then too deep */
    struct blob nest = RAW("");
    for (int i = 0; i < 20; i++)
        nest = T(0x30, nest);
    p.subject = T(0x30, T(0x31, T(0x30, cat(2, T(0x06, OID_CN), nest))));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK(!info.subject.rdn[0].atv[0].text);
    rq_x509_info_free(&info);
    for (int i = 0; i < 20; i++)
        nest = T(0x30, nest);
    p.subject = T(0x30, T(0x31, T(0x30, cat(2, T(0x06, OID_CN), nest))));
    EXPECT_FAIL(p, "nested too deep");
    /* a bad TLV hidden inside a skipped field */
    p = defaults();
    p.sigalg = T(0x30, cat(2, T(0x06, OID_ECDSA_SHA256), T(0x30, RAW("\x05\x81\x00"))));
    p.outer_sigalg = p.sigalg;
    EXPECT_FAIL(p, "non-minimal length");

    /* version and optional fields */
    p = defaults();
    p.version = T(0xa0, T(0x02, RAW("\x03")));
    EXPECT_FAIL(p, "unknown version");
    p.version = T(0xa0, T(0x02, RAW("\x00\x02")));
    EXPECT_FAIL(p, "unknown version");
    p.version = T(0xa0, cat(2, T(0x02, RAW("\x02")), T(0x05, RAW(""))));
    EXPECT_FAIL(p, "trailing bytes after version");
    p.version = RAW("");
    EXPECT_FAIL(p, "field not allowed in this version"); /* v1 with extensions */
    p.tail = RAW("");
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK_EQ(info.version, 1);
    rq_x509_info_free(&info);
    p.version = T(0xa0, T(0x02, RAW("\x01")));
    p.tail = cat(2, T(0x81, RAW("\x00\x01")), T(0x82, RAW("\x00\x02")));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK_EQ(info.version, 2);
    rq_x509_info_free(&info);
    p.tail = cat(2, T(0x82, RAW("\x00\x02")), T(0x81, RAW("\x00\x01")));
    EXPECT_FAIL(p, "trailing bytes in tbsCertificate");
    p.tail = T(0xa3, T(0x30, ext(RAW("\x55\x1d\x13"), T(0x30, RAW("")))));
    EXPECT_FAIL(p, "field not allowed in this version");
    p = defaults();
    p.tail = cat(2, p.tail, T(0x05, RAW("")));
    EXPECT_FAIL(p, "trailing bytes in tbsCertificate");
    p = defaults();
    p.serial = T(0x02, RAW(""));
    EXPECT_FAIL(p, "empty serial");
    p = defaults();
    p.serial = T(0x04, RAW("\x01"));
    EXPECT_FAIL(p, "serial not an INTEGER");
    p = defaults();
    p.outer_sigalg = T(0x30, cat(2, T(0x06, OID_ECDSA_SHA256), T(0x05, RAW(""))));
    EXPECT_FAIL(p, "signature algorithms differ");
    p = defaults();
    p.validity = T(0x30, T(0x17, RAW("240101000000Z")));
    EXPECT_FAIL(p, "truncated TLV");
    p.validity = T(0x30, cat(3, T(0x17, RAW("240101000000Z")), T(0x17, RAW("240101000000Z")),
                             T(0x17, RAW("240101000000Z"))));
    EXPECT_FAIL(p, "trailing bytes in validity");
}

static struct blob spki(struct blob alg_oid, struct blob params, struct blob key)
{
    return T(0x30, cat(2, T(0x30, cat(2, T(0x06, alg_oid), params)), T(0x03, key)));
}

static void test_keys(void)
{
    struct parts p = defaults();
    struct rq_x509_info info, other;
    const char *why = NULL;
    const struct blob rsa_oid = RAW("\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"), null = RAW("\x05\x00");

    /* RSA: 2048-bit modulus with its sign byte, exponent 65537 */
    uint8_t mod[257] = {0x00, 0xc1};
    memset(mod + 2, 0x5a, 255);
    struct blob e65537 = T(0x02, RAW("\x01\x00\x01"));
    p.spki =
        spki(rsa_oid, null, cat(2, RAW("\x00"), T(0x30, cat(2, T(0x02, B(mod, 257)), e65537))));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK_EQ(info.rsa_bits, 2048);
    CHECK_STR(rq_x509_key_alg_name(&info), "RSA 2048");
    p.spki =
        spki(rsa_oid, RAW(""), cat(2, RAW("\x00"), T(0x30, cat(2, T(0x02, RAW("\x05")), e65537))));
    CHECK_EQ(parse_parts(&p, &other, &why), 0); /* absent parameters are tolerated */
    CHECK_EQ(other.rsa_bits, 3);
    CHECK(rq_x509_same_key_alg(&info, &other));
    rq_x509_info_free(&other);
    p.spki =
        spki(rsa_oid, null, cat(2, RAW("\x00"), T(0x30, cat(2, T(0x02, RAW("\x00\x7f")), e65537))));
    EXPECT_FAIL(p, "not minimal");
    p.spki =
        spki(rsa_oid, null, cat(2, RAW("\x00"), T(0x30, cat(2, T(0x02, RAW("\x80")), e65537))));
    EXPECT_FAIL(p, "negative");
    p.spki =
        spki(rsa_oid, null, cat(2, RAW("\x00"), T(0x30, cat(2, T(0x02, RAW("\x00")), e65537))));
    EXPECT_FAIL(p, "zero");
    p.spki = spki(rsa_oid, null,
                  cat(2, RAW("\x00"), T(0x30, cat(2, T(0x02, RAW("\x05")), T(0x02, RAW(""))))));
    EXPECT_FAIL(p, "not minimal");
    p.spki = spki(rsa_oid, null, cat(2, RAW("\x00"), T(0x30, T(0x02, RAW("\x05")))));
    EXPECT_FAIL(p, "truncated TLV");
    p.spki = spki(rsa_oid, null,
                  cat(2, RAW("\x00"), T(0x30, cat(3, T(0x02, RAW("\x05")), e65537, e65537))));
    EXPECT_FAIL(p, "trailing bytes in RSA key");
    p.spki = spki(rsa_oid, null,
                  cat(3, RAW("\x00"), T(0x30, cat(2, T(0x02, RAW("\x05")), e65537)), RAW("\x00")));
    EXPECT_FAIL(p, "trailing bytes after RSA key");
    p.spki =
        spki(rsa_oid, null, cat(2, RAW("\x01"), T(0x30, cat(2, T(0x02, RAW("\x05")), e65537))));
    EXPECT_FAIL(p, "unused bits");
    p.spki = spki(rsa_oid, T(0x02, RAW("\x00")),
                  cat(2, RAW("\x00"), T(0x30, cat(2, T(0x02, RAW("\x05")), e65537))));
    EXPECT_FAIL(p, "RSA parameters not NULL");

    /* EC */
    p.spki = spki(OID_EC, T(0x06, OID_P256), ec_point(2, 32)); /* compressed */
    CHECK_EQ(parse_parts(&p, &other, &why), 0);
    CHECK_EQ(other.curve, RQ_X509_CURVE_P256);
    CHECK(!rq_x509_same_key_alg(&info, &other));
    rq_x509_info_free(&info);
    p.spki = spki(OID_EC, T(0x06, RAW("\x2b\x24\x03\x03\x02\x08\x01\x01\x07")), ec_point(4, 64));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK_EQ(info.curve, RQ_X509_CURVE_OTHER);
    CHECK_STR(info.curve_oid, "1.3.36.3.3.2.8.1.1.7");
    CHECK_STR(rq_x509_key_alg_name(&info), "EC 1.3.36.3.3.2.8.1.1.7");
    CHECK(rq_x509_same_key_alg(&info, &other));
    rq_x509_info_free(&info);
    p.spki = spki(OID_EC, T(0x30, T(0x02, RAW("\x01"))), ec_point(4, 64));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK_EQ(info.curve, RQ_X509_CURVE_OTHER);
    CHECK(info.curve_oid == NULL);
    CHECK_STR(rq_x509_key_alg_name(&info), "EC explicit");
    rq_x509_info_free(&info);
    p.spki = spki(OID_EC, T(0x06, OID_P256), ec_point(4, 63));
    EXPECT_FAIL(p, "EC point does not fit its curve");
    p.spki = spki(OID_EC, T(0x06, OID_P256), ec_point(4, 32));
    EXPECT_FAIL(p, "EC point does not fit its curve");
    p.spki = spki(OID_EC, T(0x06, RAW("\x2b\x81\x04\x00\x22")), ec_point(4, 64));
    EXPECT_FAIL(p, "EC point does not fit its curve");
    p.spki = spki(OID_EC, T(0x06, RAW("\x2b\x81\x04\x00\x22")), ec_point(3, 48));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK_STR(rq_x509_key_alg_name(&info), "EC P-384");
    rq_x509_info_free(&info);
    p.spki = spki(OID_EC, RAW(""), ec_point(4, 64));
    EXPECT_FAIL(p, "EC key without a curve");
    p.spki = spki(OID_EC, null, ec_point(4, 64));
    EXPECT_FAIL(p, "EC key without a curve");
    p.spki = spki(OID_EC, cat(2, T(0x06, OID_P256), null), ec_point(4, 64));
    EXPECT_FAIL(p, "trailing bytes in EC parameters");

    /* EdDSA */
    uint8_t k[58] = {0};
    p.spki = spki(RAW("\x2b\x65\x70"), RAW(""), B(k, 33));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK_EQ(info.key_alg, RQ_X509_KEY_ED25519);
    CHECK(!rq_x509_same_key_alg(&info, &other));
    rq_x509_info_free(&info);
    p.spki = spki(RAW("\x2b\x65\x70"), RAW(""), B(k, 32));
    EXPECT_FAIL(p, "EdDSA key of the wrong size");
    p.spki = spki(RAW("\x2b\x65\x70"), null, B(k, 33));
    EXPECT_FAIL(p, "EdDSA key with parameters");
    p.spki = spki(RAW("\x2b\x65\x71"), RAW(""), B(k, 58));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK_EQ(info.key_alg, RQ_X509_KEY_ED448);
    rq_x509_info_free(&info);

    /* anything else: DSA */
    p.spki = spki(RAW("\x2a\x86\x48\xce\x38\x04\x01"), T(0x30, RAW("")), RAW("\x00\x01"));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK_EQ(info.key_alg, RQ_X509_KEY_OTHER);
    CHECK_STR(rq_x509_key_alg_name(&info), "other 1.2.840.10040.4.1");
    CHECK(rq_x509_same_key_alg(&info, &info));
    CHECK(!rq_x509_same_key_alg(&info, &other));
    p.spki = spki(RAW("\x2a\x86\x48\xce\x38\x04\x02"), RAW(""), RAW("\x07\x80"));
    struct rq_x509_info dsa2;
    CHECK_EQ(parse_parts(&p, &dsa2, &why), 0);
    CHECK(!rq_x509_same_key_alg(&info, &dsa2));
    rq_x509_info_free(&dsa2);
    rq_x509_info_free(&info);
    rq_x509_info_free(&other);

    p.spki = spki(OID_EC, T(0x06, OID_P256), RAW("\x08\x00"));
    EXPECT_FAIL(p, "malformed BIT STRING");
    p.spki = spki(OID_EC, T(0x06, OID_P256), RAW("\x01"));
    EXPECT_FAIL(p, "malformed BIT STRING");
    p.spki = spki(OID_EC, T(0x06, OID_P256), RAW(""));
    EXPECT_FAIL(p, "malformed BIT STRING");
    p.spki = T(0x30, cat(2, T(0x30, T(0x06, OID_EC)), T(0x04, ec_point(4, 64))));
    EXPECT_FAIL(p, "public key not a BIT STRING");
    p.spki = T(0x30, cat(3, T(0x30, cat(2, T(0x06, OID_EC), T(0x06, OID_P256))),
                         T(0x03, ec_point(4, 64)), T(0x05, RAW(""))));
    EXPECT_FAIL(p, "trailing bytes in subjectPublicKeyInfo");
}

static void test_extensions(void)
{
    struct parts p = defaults();
    struct rq_x509_info info;
    const char *why = NULL;
    const struct blob bc = RAW("\x55\x1d\x13"), ku = RAW("\x55\x1d\x0f");
    struct blob crit = T(0x01, RAW("\xff"));

#define EXTS(...) T(0xa3, T(0x30, cat(__VA_ARGS__)))
    /* critical flag, pathLen, an unknown extension before it */
    p.tail =
        EXTS(2, ext(ku, T(0x03, RAW("\x07\x80"))),
             T(0x30, cat(3, T(0x06, bc), crit,
                         T(0x04, T(0x30, cat(2, T(0x01, RAW("\xff")), T(0x02, RAW("\x03"))))))));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK(info.has_basic_constraints && info.ca);
    CHECK_EQ(info.path_len, 3);
    rq_x509_info_free(&info);
    /* cA absent (DEFAULT FALSE), pathLen huge */
    p.tail = EXTS(1, ext(bc, T(0x30, T(0x02, RAW("\x01\x00\x00\x00\x00\x00\x00\x00\x00")))));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK(info.has_basic_constraints && !info.ca);
    CHECK_EQ(info.path_len, INT_MAX);
    rq_x509_info_free(&info);
    /* explicit FALSE is tolerated */
    p.tail = EXTS(1, ext(bc, T(0x30, T(0x01, RAW("\x00")))));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK(info.has_basic_constraints && !info.ca);
    rq_x509_info_free(&info);
    /* empty basicConstraints SEQUENCE */
    p.tail = EXTS(1, ext(bc, T(0x30, RAW(""))));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK(info.has_basic_constraints && !info.ca);
    CHECK_EQ(info.path_len, -1);
    rq_x509_info_free(&info);
    /* no basicConstraints */
    p.tail = EXTS(1, ext(ku, T(0x03, RAW("\x07\x80"))));
    CHECK_EQ(parse_parts(&p, &info, &why), 0);
    CHECK(!info.has_basic_constraints && !info.ca);
    rq_x509_info_free(&info);

    p.tail = EXTS(1, ext(bc, T(0x30, T(0x01, RAW("\x01")))));
    EXPECT_FAIL(p, "malformed BOOLEAN");
    p.tail = EXTS(1, ext(bc, T(0x30, T(0x01, RAW("\xff\xff")))));
    EXPECT_FAIL(p, "malformed BOOLEAN");
    p.tail = EXTS(1, ext(bc, T(0x30, T(0x02, RAW("\xff")))));
    EXPECT_FAIL(p, "negative");
    p.tail = EXTS(1, ext(bc, T(0x30, cat(2, T(0x02, RAW("\x01")), T(0x01, RAW("\xff"))))));
    EXPECT_FAIL(p, "trailing bytes in basicConstraints");
    p.tail = EXTS(1, ext(bc, cat(2, T(0x30, RAW("")), RAW("\x00"))));
    EXPECT_FAIL(p, "trailing bytes after basicConstraints");
    p.tail = EXTS(1, ext(bc, T(0x31, RAW(""))));
    EXPECT_FAIL(p, "basicConstraints not a SEQUENCE");
    p.tail = EXTS(2, ext(bc, T(0x30, RAW(""))), ext(bc, T(0x30, RAW(""))));
    EXPECT_FAIL(p, "basicConstraints twice");
    p.tail = T(0xa3, T(0x30, RAW("")));
    EXPECT_FAIL(p, "empty extensions");
    p.tail = T(0xa3, cat(2, T(0x30, ext(ku, RAW(""))), T(0x05, RAW(""))));
    EXPECT_FAIL(p, "trailing bytes after extensions");
    p.tail = T(0xa3, T(0x31, ext(ku, RAW(""))));
    EXPECT_FAIL(p, "extensions not a SEQUENCE");
    p.tail = EXTS(1, T(0x30, cat(2, T(0x06, bc), T(0x03, RAW("\x00")))));
    EXPECT_FAIL(p, "extension value not an OCTET STRING");
    p.tail = EXTS(1, T(0x30, cat(3, T(0x06, ku), T(0x01, RAW("\x02")), T(0x04, RAW("")))));
    EXPECT_FAIL(p, "malformed BOOLEAN");
    p.tail = EXTS(1, T(0x30, cat(3, T(0x06, ku), T(0x04, RAW("")), T(0x05, RAW("")))));
    EXPECT_FAIL(p, "trailing bytes in extension");
    p.tail = EXTS(1, T(0x30, cat(2, T(0x06, RAW("\x55\x1d\x93")), T(0x04, RAW("")))));
    EXPECT_FAIL(p, "malformed OID");
    p.tail = EXTS(1, T(0x31, RAW("")));
    EXPECT_FAIL(p, "extension not a SEQUENCE");
#undef EXTS
}

/* ---- part 3: PEM -------------------------------------------------------------------------------
 */

static void test_pem_errors(void)
{
    static const struct {
        const char *pem;
        int want; /* 1, 0 or -1 */
        const char *der_or_why;
    } cases[] = {
        {"", 0, NULL},
        {"no certificates here\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 0,
         NULL},
        {"-----BEGIN CERTIFICATE-----\nTWFu\n-----END CERTIFICATE-----\n", 1, "Man"},
        {"-----BEGIN CERTIFICATE-----TWE=-----END CERTIFICATE-----", 1, "Ma"},
        {"-----BEGIN CERTIFICATE-----\r\n T Q = = \r\n-----END CERTIFICATE-----", 1, "M"},
        {"-----BEGIN TRUSTED CERTIFICATE-----\nTWFu\n-----END TRUSTED CERTIFICATE-----\n", 0, NULL},
        {"-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n", -1, "empty"},
        {"-----BEGIN CERTIFICATE-----\nTWFu\n", -1, "without END"},
        {"-----BEGIN CERTIFICATE-----\nTWF\n-----END CERTIFICATE-----\n", -1, "truncated"},
        {"-----BEGIN CERTIFICATE-----\nTWFuT\n-----END CERTIFICATE-----\n", -1, "truncated"},
        {"-----BEGIN CERTIFICATE-----\nTW-u\n-----END CERTIFICATE-----\n", -1, "invalid base64"},
        {"-----BEGIN CERTIFICATE-----\nTWF*\n-----END CERTIFICATE-----\n", -1, "invalid base64"},
        {"-----BEGIN CERTIFICATE-----\nTWE=TWFu\n-----END CERTIFICATE-----\n", -1, "after"},
        {"-----BEGIN CERTIFICATE-----\nTQ=u\n-----END CERTIFICATE-----\n", -1, "after"},
        {"-----BEGIN CERTIFICATE-----\nT===\n-----END CERTIFICATE-----\n", -1, "misplaced"},
        {"-----BEGIN CERTIFICATE-----\n====\n-----END CERTIFICATE-----\n", -1, "misplaced"},
        {"-----BEGIN CERTIFICATE-----\nTWF=\n-----END CERTIFICATE-----\n", -1, "pad bits"},
        {"-----BEGIN CERTIFICATE-----\nTR==\n-----END CERTIFICATE-----\n", -1, "pad bits"},
        {"-----BEGIN CERTIFICATE-----\nTQ==\n=\n-----END CERTIFICATE-----\n", -1, "after"},
        {"-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nTWFu\n-----END CERTIFICATE-----\n",
         -1, "invalid base64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *pem = cases[i].pem, *why = NULL;
        size_t off = 0, len = strlen(pem), der_len = 99;
        uint8_t *der = (uint8_t *)"x";
        int rc = rq_pem_next_cert(pem, len, &off, &der, &der_len, &why);
        CHECK_EQ(rc, cases[i].want);
        if (rc != cases[i].want)
            fprintf(stderr, "  pem case %zu: rc %d (%s)\n", i, rc, why ? why : "");
        if (rc == 1) {
            CHECK_EQ(der_len, strlen(cases[i].der_or_why));
            CHECK(memcmp(der, cases[i].der_or_why, der_len) == 0);
            free(der);
            CHECK_EQ(rq_pem_next_cert(pem, len, &off, &der, &der_len, &why), 0);
        } else {
            CHECK(der == NULL && der_len == 0);
            if (rc < 0)
                CHECK(why && strstr(why, cases[i].der_or_why));
        }
        CHECK(off == len || (rc == -1 && off < len && off > 0));
        free(der);
    }
}

static void test_pem_bundle(void)
{
    /* a bundle with junk, a key, a broken block, CRLF line ends and no final newline */
    CHECK_EQ(sh("{ echo 'Subject: root'; cat root.pem; echo junk text; cat ed.key; "
                "printf -- '-----BEGIN CERTIFICATE-----\\nTWF*\\n-----END CERTIFICATE-----\\n'; "
                "sed 's/$/\\r/' inter.pem; printf '\\n\\n  '; head -c -1 leaf.pem; } > bundle.pem"),
             0);
    size_t len, off = 0, der_len, want_len;
    char *pem = (char *)slurp("bundle.pem", &len);
    const char *names[] = {"root.der", NULL, "inter.der", "leaf.der"}, *why;
    uint8_t *der;
    CHECK(pem != NULL);
    if (!pem)
        return;
    for (size_t i = 0; i < 4; i++) {
        int rc = rq_pem_next_cert(pem, len, &off, &der, &der_len, &why);
        CHECK_EQ(rc, names[i] ? 1 : -1);
        if (rc == 1 && names[i]) {
            uint8_t *want = slurp(names[i], &want_len);
            CHECK(der_len == want_len && memcmp(der, want, der_len) == 0);
            struct rq_x509_info info;
            CHECK_EQ(rq_x509_der_parse(der, der_len, &info, &why), 0);
            rq_x509_info_free(&info);
            free(want);
        }
        free(der);
    }
    CHECK_EQ(rq_pem_next_cert(pem, len, &off, &der, &der_len, &why), 0);
    CHECK_EQ(off, len);
    CHECK_EQ(rq_pem_next_cert(pem, len, &off, &der, &der_len, &why), 0);
    /* every prefix of the bundle: no crash, no over-read, progress on every call */
    size_t bad = 0;
    for (size_t l = 0; l <= len; l++) {
        char *c = malloc(l ? l : 1);
        memcpy(c, pem, l);
        size_t o = 0, last = 0, n = 0;
        while (rq_pem_next_cert(c, l, &o, &der, &der_len, &why) != 0) {
            free(der);
            if (o <= last || ++n > 4) {
                bad++;
                break;
            }
            last = o;
        }
        free(c);
    }
    CHECK_EQ(bad, 0);
    free(pem);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/rq_x509_XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (system("openssl version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_x509_der: SKIP: the openssl command is missing\n");
        return 77;
    }
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    static const char *masks[][2] = {{"utf8.cnf", "utf8only"}, {"default.cnf", "default"}};
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, masks[i][0]);
        FILE *f = fopen(path, "w");
        if (!f || fprintf(f, CNF, masks[i][1]) < 0 || fclose(f) != 0) {
            perror(path);
            return 1;
        }
    }

    test_openssl();
    test_defaults();
    test_times();
    test_strings();
    test_oids();
    test_names();
    test_structure();
    test_keys();
    test_extensions();
    test_pem_errors();
    test_pem_bundle();

    if (check_failures == 0)
        sh("cd / && rm -rf '%s'", dir);
    else
        fprintf(stderr, "test_x509_der: files kept in %s\n", dir);
    return check_exit("test_x509_der");
}
