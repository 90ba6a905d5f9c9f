/* Unit tests for auth/x509_subject: parsing subject strings (AIO examples, spacing, escapes,
 * quoted and "#hex" values, multi-valued RDNs, OIDs and type aliases, errors with their column),
 * equality (order, case, trimming, attribute sets), building certificate names with rq_dn_add,
 * the CN username, formatting and its round trip, and the authorizationAttributes mapping of the
 * AIO tutorial (leaf entry vs inherited intermediate entry, no match, first rule wins).
 * Links auth/x509_subject.c only. */
#include "auth/x509_subject.h"

#include "tests/unit/check.h"

#include <errno.h>
#include <stdlib.h>

#define U(x) (const uint8_t *)(x), strlen(x)

static struct rq_dn parse(const char *s)
{
    struct rq_dn dn;
    const char *why = NULL;
    int rc = rq_dn_parse(s, strlen(s), &dn, &why);
    if (rc)
        fprintf(stderr, "parse \"%s\" failed: %s\n", s, why ? why : "(no why)");
    CHECK_EQ(rc, 0);
    return dn;
}

/* Formats into a rotating set of buffers so two results can be compared in one CHECK. */
static const char *fmt(const struct rq_dn *dn)
{
    static char bufs[4][512];
    static unsigned next;
    char *b = bufs[next++ % 4];
    rq_dn_format(dn, b, sizeof bufs[0]);
    return b;
}

/* parse(s) formats as want. */
static void parses_as(const char *s, const char *want)
{
    struct rq_dn dn = parse(s);
    CHECK_STR(fmt(&dn), want);
    rq_dn_free(&dn);
}

/* rq_dn_parse(s) fails and why is exactly want. */
static void fails_with(const char *s, size_t len, const char *want)
{
    struct rq_dn dn = {(void *)1, 99};
    const char *why = NULL;
    CHECK_EQ(rq_dn_parse(s, len, &dn, &why), -1);
    CHECK(dn.attrs == NULL && dn.n == 0);
    CHECK_STR(why, want);
}

static bool equal_str(const char *a, const char *b)
{
    struct rq_dn x = parse(a), y = parse(b);
    bool e = rq_dn_equal(&x, &y);
    CHECK_EQ(e, rq_dn_equal(&y, &x));
    rq_dn_free(&x);
    rq_dn_free(&y);
    return e;
}

static bool value_is(const struct rq_rdn_attr *a, const char *type, const char *v, size_t len)
{
    return strcmp(a->type, type) == 0 && a->len == len && memcmp(a->value, v, len) == 0 &&
           a->value[len] == '\0';
}

static void test_aio_examples(void)
{
    struct rq_dn dn = parse("CN = Contoso Root CA Cert, OU = Engineering, C = US");
    CHECK_EQ(dn.n, 3);
    /* stored in certificate order: C first */
    CHECK(value_is(&dn.attrs[0], "C", "US", 2));
    CHECK(value_is(&dn.attrs[1], "OU", "Engineering", 11));
    CHECK(value_is(&dn.attrs[2], "CN", "Contoso Root CA Cert", 20));
    CHECK_EQ(dn.attrs[0].rdn, 0);
    CHECK_EQ(dn.attrs[1].rdn, 1);
    CHECK_EQ(dn.attrs[2].rdn, 2);
    CHECK_STR(fmt(&dn), "CN=Contoso Root CA Cert, OU=Engineering, C=US");
    rq_dn_free(&dn);
    CHECK(dn.attrs == NULL && dn.n == 0);
    rq_dn_free(&dn); /* twice is harmless */
    rq_dn_free(NULL);

    parses_as("CN = Contoso Intermediate CA", "CN=Contoso Intermediate CA");
    parses_as("CN = smart-fan", "CN=smart-fan");
    parses_as("CN = Fabrikam Intermediate CA 1", "CN=Fabrikam Intermediate CA 1");
    parses_as("CN = thermostat", "CN=thermostat");
    /* openssl x509 -subject prints this style, least specific first */
    parses_as("C = US, ST = WA, L = Redmond, O = Contoso, CN = smart-lock",
              "C=US, ST=WA, L=Redmond, O=Contoso, CN=smart-lock");
}

static void test_spacing(void)
{
    static const char *same[] = {
        "CN=x,OU=y,C=US",     "CN = x, OU = y, C = US",   "CN=x, OU=y, C=US",
        "  CN=x,OU=y,C=US  ", "CN =x ,OU= y,  C  =  US",  "CN\t=\tx,\tOU=y,C=US\t",
        "cn=x,ou=y,c=US",     "CN = x , OU = y , C = US",
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++)
        parses_as(same[i], "CN=x, OU=y, C=US");
    /* inner spaces are part of the value, edge spaces are not */
    parses_as("CN =   a  b   ", "CN=a  b");
    parses_as("CN=a\tb", "CN=a\\09b");
    parses_as("CN=", "CN=");
    parses_as("CN = , O = x", "CN=, O=x");
    parses_as("CN=a=b", "CN=a\\=b"); /* '=' need not be escaped inside a value */
    parses_as("CN=a;b", "CN=a\\;b"); /* ';' is not a separator here */
    parses_as("CN=12\" display", "CN=12\\\" display");
}

static void test_escapes(void)
{
    struct rq_dn dn = parse("CN=a\\,b\\+c\\\"d\\\\e\\;f\\<g\\>h\\=i");
    CHECK_EQ(dn.n, 1);
    CHECK(value_is(&dn.attrs[0], "CN", "a,b+c\"d\\e;f<g>h=i", 17));
    rq_dn_free(&dn);

    dn = parse("CN=\\#1 device");
    CHECK(value_is(&dn.attrs[0], "CN", "#1 device", 9));
    rq_dn_free(&dn);

    dn = parse("CN=\\41\\62c, O=Z\\C3\\BCrich, OU=\\00x");
    CHECK(value_is(&dn.attrs[2], "CN", "Abc", 3));
    CHECK(value_is(&dn.attrs[1], "O", "Z\xc3\xbcrich", 7));
    CHECK(value_is(&dn.attrs[0], "OU", "\0x", 2));
    rq_dn_free(&dn);

    /* escaped edge spaces are kept in the value (matching trims them anyway) */
    dn = parse("CN = \\ a\\  , O=\\ ");
    CHECK(value_is(&dn.attrs[1], "CN", " a ", 3));
    CHECK(value_is(&dn.attrs[0], "O", " ", 1));
    rq_dn_free(&dn);
    dn = parse("CN=a \\ ");
    CHECK(value_is(&dn.attrs[0], "CN", "a  ", 3));
    rq_dn_free(&dn);

    /* other punctuation after '\' stands for itself */
    dn = parse("CN=a\\*b\\/c\\_");
    CHECK(value_is(&dn.attrs[0], "CN", "a*b/c_", 6));
    rq_dn_free(&dn);
}

static void test_quoted(void)
{
    struct rq_dn dn = parse("CN=\"Contoso, Inc.\", O = \" spaced \" , OU=\"a\\\"b+c\\\\\"");
    CHECK_EQ(dn.n, 3);
    CHECK(value_is(&dn.attrs[2], "CN", "Contoso, Inc.", 13));
    CHECK(value_is(&dn.attrs[1], "O", " spaced ", 8));
    CHECK(value_is(&dn.attrs[0], "OU", "a\"b+c\\", 6));
    rq_dn_free(&dn);
    dn = parse("CN=\"\"");
    CHECK(value_is(&dn.attrs[0], "CN", "", 0));
    rq_dn_free(&dn);
    CHECK(equal_str("CN=\"x\"+UID=\"7\"", "CN=x+UID=7"));
    CHECK(equal_str("O=\"Contoso, Inc.\"", "O=Contoso\\, Inc."));
}

static void test_hex_values(void)
{
    CHECK(equal_str("CN=#0C0568656C6C6F", "CN=hello"));
    CHECK(equal_str("CN=#130568656c6c6f , O=x", "CN=hello,O=x"));
    CHECK(equal_str("1.3.6.1.4.1.311.60.2.1.3=#13025553", "1.3.6.1.4.1.311.60.2.1.3=US"));
    CHECK(equal_str("CN=#0C00", "CN="));
    CHECK(equal_str("CN=#0C8103616263", "CN=abc"));
    CHECK(equal_str("CN=#0C820003616263", "CN=abc"));
}

static void test_multi_valued(void)
{
    struct rq_dn dn = parse("CN=x + UID=42, O=y");
    CHECK_EQ(dn.n, 3);
    CHECK(value_is(&dn.attrs[0], "O", "y", 1));
    CHECK(value_is(&dn.attrs[1], "CN", "x", 1));
    CHECK(value_is(&dn.attrs[2], "UID", "42", 2));
    CHECK_EQ(dn.attrs[0].rdn, 0);
    CHECK_EQ(dn.attrs[1].rdn, 1);
    CHECK_EQ(dn.attrs[2].rdn, 1);
    CHECK_STR(fmt(&dn), "CN=x+UID=42, O=y");
    rq_dn_free(&dn);

    CHECK(equal_str("CN=x+UID=42, O=y", "UID=42+CN=x, O=y"));
    CHECK(equal_str("CN=x+UID=42, O=y", "O=y, UID=42+CN=x"));
    CHECK(!equal_str("CN=x+UID=42, O=y", "CN=x, UID=42, O=y"));
    CHECK(!equal_str("CN=x+UID=42, O=y", "CN=x+UID=42+O=y"));
    CHECK(!equal_str("CN=x+UID=42", "CN=x+UID=43"));
    /* multisets: duplicates count */
    CHECK(!equal_str("CN=a+CN=a+CN=b", "CN=a+CN=b+CN=b"));
    CHECK(equal_str("CN=a+CN=b+CN=a", "CN=b+CN=a+CN=a"));
}

static void test_types(void)
{
    static const char *cn[] = {"CN=x",      "cn=x",          "commonName=x",  "COMMONNAME=x",
                               "2.5.4.3=x", "OID.2.5.4.3=x", "oid.2.5.4.3=x", "2.5.04.003=x"};
    for (size_t i = 0; i < sizeof cn / sizeof *cn; i++)
        parses_as(cn[i], "CN=x");
    static const char *email[] = {"E=a@b", "e=a@b", "EMAIL=a@b", "emailAddress=a@b",
                                  "1.2.840.113549.1.9.1=a@b"};
    for (size_t i = 0; i < sizeof email / sizeof *email; i++)
        parses_as(email[i], "E=a@b");
    parses_as("S=WA, stateOrProvinceName=WA, st=WA", "ST=WA, ST=WA, ST=WA");
    parses_as("street=1 Main St", "STREET=1 Main St");
    parses_as("streetAddress=1 Main St", "STREET=1 Main St");
    parses_as("serialNumber=42, SERIALNUMBER=43, 2.5.4.5=44",
              "SERIALNUMBER=42, SERIALNUMBER=43, SERIALNUMBER=44");
    parses_as("dc=contoso, DC=com, domainComponent=x, 0.9.2342.19200300.100.1.25=y",
              "DC=contoso, DC=com, DC=x, DC=y");
    parses_as("uid=u1, userId=u2, 0.9.2342.19200300.100.1.1=u3", "UID=u1, UID=u2, UID=u3");
    parses_as("O=a, organizationName=b, OU=c, organizationalUnitName=d, L=e, localityName=f",
              "O=a, O=b, OU=c, OU=d, L=e, L=f");
    parses_as("C=US, countryName=DE", "C=US, C=DE");
    parses_as("SN=Doe, GN=Jane, G=J, givenName=J, surname=D, title=Dr, T=Dr, I=JD, initials=X",
              "SN=Doe, GN=Jane, GN=J, GN=J, SN=D, T=Dr, T=Dr, I=JD, I=X");
    parses_as("postalCode=98052, businessCategory=x, dnQualifier=q, pseudonym=p, "
              "generationQualifier=III, organizationIdentifier=VATDE-1",
              "POSTALCODE=98052, BUSINESSCATEGORY=x, DNQUALIFIER=q, PSEUDONYM=p, "
              "GENERATIONQUALIFIER=III, ORGANIZATIONIDENTIFIER=VATDE-1");
    /* unknown OIDs are kept, normalised */
    parses_as("1.3.6.1.4.1.311.60.2.1.3=US, OID.1.3.06.1=x",
              "1.3.6.1.4.1.311.60.2.1.3=US, 1.3.6.1=x");
    parses_as("2.0.0=a", "2.0.0=a");
    CHECK(equal_str("E=a@b", "emailAddress=a@b"));
    CHECK(equal_str("1.2.840.113549.1.9.1=a@b", "EMAIL=a@b"));
    CHECK(!equal_str("E=a@b", "UID=a@b"));
}

static void test_errors(void)
{
#define FAILS(s, want) fails_with(s, strlen(s), want)
    FAILS("", "column 1: empty subject");
    FAILS("   ", "column 4: empty subject");
    FAILS("CN", "column 3: expected '=' after the attribute type");
    FAILS("CN x", "column 4: expected '=' after the attribute type");
    FAILS("=x", "column 1: attribute type missing before '='");
    FAILS("CN=x,", "column 6: expected an attribute type such as CN");
    FAILS("CN=x, ", "column 7: expected an attribute type such as CN");
    FAILS("CN=x,,O=y", "column 6: expected an attribute type such as CN");
    FAILS("CN=x+", "column 6: expected an attribute type such as CN");
    FAILS("CN=x, /=y", "column 7: expected an attribute type such as CN");
    FAILS("CN=x, FOO=bar", "column 7: unknown attribute type 'FOO' (write its dotted OID)");
    FAILS("OID=x", "column 1: unknown attribute type 'OID' (write its dotted OID)");
    FAILS("1=x", "column 1: malformed OID '1'");
    FAILS("2..5=x", "column 1: malformed OID '2..5'");
    FAILS("2.5.=x", "column 1: malformed OID '2.5.'");
    FAILS(".2.5=x", "column 1: malformed OID '.2.5'");
    FAILS("OID.=x", "column 1: malformed OID 'OID.'");
    FAILS("2.5-4=x", "column 1: malformed OID '2.5-4'");
    FAILS("CN=\"abc", "column 4: quoted value is not closed");
    FAILS("CN=\"a\"b", "column 7: expected ',' or '+' after the value of CN");
    FAILS("CN=\"a\" x, O=y", "column 8: expected ',' or '+' after the value of CN");
    FAILS("CN=a\\", "column 5: '\\' at the end of the subject");
    FAILS("CN=a\\4", "column 5: expected two hex digits after '\\'");
    FAILS("CN=a\\4g", "column 5: expected two hex digits after '\\'");
    FAILS("CN=a\\q", "column 5: unknown escape '\\q' (use \\XX hex pairs for other bytes)");
    FAILS("CN=#1 device",
          "column 4: '#' starts a hex-encoded BER value (escape a leading '#' as \\#)");
    FAILS("CN=#0C056865", "column 4: BER length does not match the '#' value");
    FAILS("CN=#0C0161zz", "column 11: expected ',' or '+' after the value of CN");
    FAILS("CN=#300161", "column 4: '#' value is not a BER string (escape a leading '#' as \\#)");
    FAILS("CN=#0C83000001", "column 4: unsupported or truncated BER length in '#' value");
    FAILS("CN=#0C81", "column 4: unsupported or truncated BER length in '#' value");
    FAILS("CN=#0C", "column 4: '#' starts a hex-encoded BER value (escape a leading '#' as \\#)");
    FAILS("CN=x\\", "column 5: '\\' at the end of the subject");
    fails_with("C\0N=x", 6, "column 2: expected '=' after the attribute type");
#undef FAILS
    /* a NUL byte inside a value is data; after it everything is parsed as usual */
    struct rq_dn dn;
    const char *why = NULL;
    CHECK_EQ(rq_dn_parse("CN=a\0b", 6, &dn, &why), 0);
    CHECK(dn.n == 1 && value_is(&dn.attrs[0], "CN", "a\0b", 3));
    rq_dn_free(&dn);

    /* the limit on attributes */
    char big[RQ_DN_MAX_ATTRS * 6 + 16];
    size_t n = 0;
    for (int i = 0; i < RQ_DN_MAX_ATTRS; i++)
        n += (size_t)sprintf(big + n, "%sCN=x", i ? "," : "");
    CHECK_EQ(rq_dn_parse(big, n, &dn, &why), 0);
    CHECK_EQ(dn.n, RQ_DN_MAX_ATTRS);
    rq_dn_free(&dn);
    n += (size_t)sprintf(big + n, "+O=y");
    CHECK_EQ(rq_dn_parse(big, n, &dn, &why), -1);
    CHECK(why && strstr(why, "more than 128 attributes"));
}

static void test_equality(void)
{
    /* config strings are most specific first; either order matches */
    CHECK(equal_str("CN=a, O=b, C=US", "C=US, O=b, CN=a"));
    CHECK(equal_str("CN=a, O=b, C=US", "CN=a, O=b, C=US"));
    CHECK(equal_str("CN = a,O=b", "O = b , CN=a"));
    /* but not any other permutation */
    CHECK(!equal_str("CN=a, O=b, C=US", "O=b, CN=a, C=US"));
    CHECK(!equal_str("CN=a, O=b, C=US", "CN=a, C=US, O=b"));
    /* values are case-sensitive, types are not */
    CHECK(!equal_str("CN=Thermostat", "CN=thermostat"));
    CHECK(equal_str("cn=thermostat", "CN=thermostat"));
    CHECK(!equal_str("C=us", "C=US"));
    /* different attribute sets */
    CHECK(!equal_str("CN=a, O=b", "CN=a"));
    CHECK(!equal_str("CN=a", "CN=a, O=b"));
    CHECK(!equal_str("CN=a", "OU=a"));
    CHECK(!equal_str("CN=a, O=b", "CN=a, O=c"));
    CHECK(!equal_str("CN=a, O=b", "CN=a, OU=b"));
    /* inner spaces count, edge spaces (escaped or not) do not */
    CHECK(!equal_str("CN=a b", "CN=ab"));
    CHECK(!equal_str("CN=a b", "CN=a  b"));
    CHECK(equal_str("CN=\\ a\\ ", "CN=a"));
    CHECK(equal_str("CN=\" a \"", "CN=a"));
    CHECK(!equal_str("CN=\\00a", "CN=a")); /* only spaces are trimmed */
    CHECK(equal_str("CN=a, CN=a", "CN=a,CN=a"));
    CHECK(!equal_str("CN=a, CN=a", "CN=a"));

    struct rq_dn e1 = {0}, e2 = {0}, x = parse("CN=x");
    CHECK(rq_dn_equal(&e1, &e2));
    CHECK(!rq_dn_equal(&e1, &x));
    CHECK(!rq_dn_equal(&x, &e1));
    CHECK(rq_dn_equal(&x, &x));
    rq_dn_free(&x);
}

/* The TLS layer's view: entries in DER order, by OID. */
static void test_add(void)
{
    struct rq_dn cert = {0};
    CHECK_EQ(rq_dn_add(&cert, "2.5.4.6", U("US"), false), 0);
    CHECK_EQ(rq_dn_add(&cert, "2.5.4.11", U("Engineering"), false), 0);
    CHECK_EQ(rq_dn_add(&cert, "2.5.4.3", U("Contoso Root CA Cert"), false), 0);
    CHECK_EQ(cert.n, 3);
    CHECK(value_is(&cert.attrs[0], "C", "US", 2));
    CHECK_EQ(cert.attrs[2].rdn, 2);
    CHECK_STR(fmt(&cert), "CN=Contoso Root CA Cert, OU=Engineering, C=US");
    struct rq_dn cfg = parse("CN = Contoso Root CA Cert, OU = Engineering, C = US");
    CHECK(rq_dn_equal(&cfg, &cert));
    CHECK(rq_dn_equal(&cert, &cfg));
    rq_dn_free(&cfg);

    /* refused types leave the name alone */
    CHECK_EQ(rq_dn_add(&cert, "bogus", U("x"), false), -EINVAL);
    CHECK_EQ(rq_dn_add(&cert, "", U("x"), false), -EINVAL);
    CHECK_EQ(rq_dn_add(&cert, "1", U("x"), false), -EINVAL);
    CHECK_EQ(rq_dn_add(&cert, "2.5.4.3 ", U("x"), false), -EINVAL);
    CHECK_EQ(cert.n, 3);
    rq_dn_free(&cert);

    /* names, a multi-valued RDN, values with edge spaces and a NUL */
    CHECK_EQ(rq_dn_add(&cert, "DC", U("com"), true), 0); /* same_rdn ignored for the first */
    CHECK_EQ(rq_dn_add(&cert, "domainComponent", U("contoso"), false), 0);
    CHECK_EQ(rq_dn_add(&cert, "CN", U(" dev 1 "), false), 0);
    CHECK_EQ(rq_dn_add(&cert, "0.9.2342.19200300.100.1.1", (const uint8_t *)"u\0", 2, true), 0);
    CHECK_EQ(cert.attrs[0].rdn, 0);
    CHECK_EQ(cert.attrs[1].rdn, 1);
    CHECK_EQ(cert.attrs[2].rdn, 2);
    CHECK_EQ(cert.attrs[3].rdn, 2);
    CHECK_STR(fmt(&cert), "CN=\\ dev 1\\ +UID=u\\00, DC=contoso, DC=com");
    cfg = parse("UID=u\\00+CN=dev 1,DC=contoso,DC=com");
    CHECK(rq_dn_equal(&cert, &cfg));
    rq_dn_free(&cfg);
    rq_dn_free(&cert);

    /* an empty value and the limit */
    CHECK_EQ(rq_dn_add(&cert, "CN", NULL, 0, false), 0);
    CHECK(value_is(&cert.attrs[0], "CN", "", 0));
    for (int i = 1; i < RQ_DN_MAX_ATTRS; i++)
        CHECK_EQ(rq_dn_add(&cert, "O", U("o"), false), 0);
    CHECK_EQ(rq_dn_add(&cert, "O", U("o"), false), -E2BIG);
    CHECK_EQ(cert.n, RQ_DN_MAX_ATTRS);
    rq_dn_free(&cert);
}

static void test_common_name(void)
{
    const uint8_t *cn = NULL;
    size_t len = 0;
    struct rq_dn dn = parse("CN = smart-lock, O = Contoso");
    CHECK_EQ(rq_dn_common_name(&dn, &cn, &len), 0);
    CHECK(len == 10 && memcmp(cn, "smart-lock", 10) == 0);
    rq_dn_free(&dn);

    /* several CNs: the most specific one (first in the string, last in DER order) */
    dn = parse("CN=leaf, OU=x, CN=outer");
    CHECK_EQ(rq_dn_common_name(&dn, &cn, &len), 0);
    CHECK(len == 4 && memcmp(cn, "leaf", 4) == 0);
    rq_dn_free(&dn);
    CHECK_EQ(rq_dn_add(&dn, "CN", U("outer"), false), 0);
    CHECK_EQ(rq_dn_add(&dn, "CN", U(" leaf "), false), 0);
    CHECK_EQ(rq_dn_common_name(&dn, &cn, &len), 0);
    CHECK(len == 4 && memcmp(cn, "leaf", 4) == 0);
    rq_dn_free(&dn);

    dn = parse("O=Contoso, C=US");
    CHECK_EQ(rq_dn_common_name(&dn, &cn, &len), -ENOENT);
    rq_dn_free(&dn);
    CHECK_EQ(rq_dn_common_name(&dn, &cn, &len), -ENOENT);
}

static void test_format(void)
{
    struct rq_dn dn = {0};
    char buf[64];
    CHECK_EQ(rq_dn_format(&dn, buf, sizeof buf), 0);
    CHECK_STR(buf, "");

    CHECK_EQ(rq_dn_add(&dn, "CN", U("#a,b+c\"d\\e;f<g>h=i#"), false), 0);
    CHECK_STR(fmt(&dn), "CN=\\#a\\,b\\+c\\\"d\\\\e\\;f\\<g\\>h\\=i#");
    rq_dn_free(&dn);
    CHECK_EQ(rq_dn_add(&dn, "CN", U("  a b  "), false), 0);
    CHECK_STR(fmt(&dn), "CN=\\ \\ a b\\ \\ ");
    rq_dn_free(&dn);
    CHECK_EQ(rq_dn_add(&dn, "CN", U("   "), false), 0);
    CHECK_STR(fmt(&dn), "CN=\\ \\ \\ ");
    rq_dn_free(&dn);
    /* control bytes and invalid UTF-8 are hex-escaped (no raw newline in a log line) */
    CHECK_EQ(rq_dn_add(&dn, "CN", U("a\nb\x7f\xff\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80"), false), 0);
    CHECK_STR(fmt(&dn), "CN=a\\0Ab\\7F\\FF\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80");
    rq_dn_free(&dn);
    /* overlong, surrogate, truncated, above U+10FFFF */
    CHECK_EQ(rq_dn_add(&dn, "CN", U("\xc0\xaf\xed\xa0\x80\xe2\x82\xf4\x90\x80\x80"), false), 0);
    CHECK_STR(fmt(&dn), "CN=\\C0\\AF\\ED\\A0\\80\\E2\\82\\F4\\90\\80\\80");
    rq_dn_free(&dn);

    /* truncation is snprintf-like */
    dn = parse("CN=smart-fan, OU=Eng, C=US");
    size_t need = rq_dn_format(&dn, NULL, 0);
    CHECK_EQ(need, strlen("CN=smart-fan, OU=Eng, C=US"));
    memset(buf, 'z', sizeof buf);
    CHECK_EQ(rq_dn_format(&dn, buf, 6), need);
    CHECK_STR(buf, "CN=sm");
    CHECK_EQ(buf[6], 'z');
    CHECK_EQ(rq_dn_format(&dn, buf, 1), need);
    CHECK_STR(buf, "");
    CHECK_EQ(rq_dn_format(&dn, buf, need + 1), need);
    CHECK_STR(buf, "CN=smart-fan, OU=Eng, C=US");
    rq_dn_free(&dn);
}

/* parse(format(parse(s))) gives back exactly the same attributes. */
static void test_round_trip(void)
{
    static const char *cases[] = {
        "CN = Contoso Root CA Cert, OU = Engineering, C = US",
        "CN=\\ a\\ , O=\\#x, OU=\"q,\\\"uote\"",
        "CN=x+UID=42+E=a@b, DC=contoso, DC=com",
        "1.3.6.1.4.1.311.60.2.1.3=#13025553, CN=a\\0Ab\\FF",
        "CN=\\00\\01\\1F\\7F\\80\\C3\\BC",
        "CN=, O=\\ , OU=\\ \\ ",
        "CN=a;b<c>d=e+O=\\+",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct rq_dn a = parse(cases[i]);
        char buf[512];
        size_t n = rq_dn_format(&a, buf, sizeof buf);
        CHECK(n < sizeof buf);
        struct rq_dn b = parse(buf);
        bool same = a.n == b.n;
        for (size_t k = 0; same && k < a.n; k++)
            same = strcmp(a.attrs[k].type, b.attrs[k].type) == 0 &&
                   a.attrs[k].len == b.attrs[k].len &&
                   memcmp(a.attrs[k].value, b.attrs[k].value, a.attrs[k].len) == 0 &&
                   a.attrs[k].rdn == b.attrs[k].rdn;
        if (!same)
            fprintf(stderr, "round trip of \"%s\" via \"%s\" differs\n", cases[i], buf);
        CHECK(same);
        rq_dn_free(&a);
        rq_dn_free(&b);
    }
}

/* ---------------------------------------------------------------------------------------------
 * authorizationAttributes
 * ------------------------------------------------------------------------------------------- */

static struct rq_x509_rule rule(const char *name, const char *subject, const char *key,
                                     const char *value)
{
    struct rq_x509_rule r = {0};
    r.name = strdup(name);
    r.subject = parse(subject);
    r.keys = malloc(sizeof *r.keys);
    r.values = malloc(sizeof *r.values);
    r.keys[0] = strdup(key);
    r.values[0] = strdup(value);
    r.n = 1;
    return r;
}

/* A chain as the TLS layer builds it: leaf first, each subject in DER order. */
static void chain_of(struct rq_dn *chain, const char *const *subjects, size_t n)
{
    for (size_t i = 0; i < n; i++)
        chain[i] = parse(subjects[i]);
}

static void free_chain(struct rq_dn *chain, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rq_dn_free(&chain[i]);
}

static void test_mapping(void)
{
    /* the AIO X.509 tutorial */
    struct rq_x509_rule rules[] = {
        rule("root", "CN = Fabrikam Root CA, O = Fabrikam, C = US", "organization", "fabrikam"),
        rule("intermediate", "CN = Fabrikam Intermediate CA 1", "city", "seattle"),
        rule("thermostat", "CN = thermostat", "building", "17"),
    };
    size_t nr = sizeof rules / sizeof *rules, m = 99;
    struct rq_dn chain[3];

    /* the leaf has its own entry: only its own attributes, although its issuer is mapped */
    chain_of(chain,
             (const char *[]){"CN=thermostat", "CN=Fabrikam Intermediate CA 1",
                              "C=US, O=Fabrikam, CN=Fabrikam Root CA"},
             3);
    CHECK_EQ(rq_x509_map_attributes(rules, nr, chain, 3, &m), 1);
    CHECK_EQ(m, 2);
    CHECK_STR(rules[m].values[0], "17");
    free_chain(chain, 3);

    /* a leaf without an entry inherits the intermediate's */
    chain_of(chain,
             (const char *[]){"CN=smart-lock", "CN=Fabrikam Intermediate CA 1",
                              "C=US, O=Fabrikam, CN=Fabrikam Root CA"},
             3);
    m = 99;
    CHECK_EQ(rq_x509_map_attributes(rules, nr, chain, 3, &m), 1);
    CHECK_EQ(m, 1);
    CHECK_STR(rules[m].name, "intermediate");
    /* ... and the root's when the intermediate is not mapped either (chain of 2 + root) */
    rq_dn_free(&chain[1]);
    chain[1] = parse("CN=Other Intermediate");
    CHECK_EQ(rq_x509_map_attributes(rules, nr, chain, 3, &m), 1);
    CHECK_EQ(m, 0);
    /* the chain may stop before the root (trust anchor is an intermediate) */
    CHECK_EQ(rq_x509_map_attributes(rules, nr, chain, 2, &m), 0);
    free_chain(chain, 3);

    /* no match at all */
    chain_of(chain,
             (const char *[]){"CN=thermostat, O=Other", "CN=Fabrikam Intermediate CA 2",
                              "CN=Fabrikam Root CA"},
             3);
    m = 99;
    CHECK_EQ(rq_x509_map_attributes(rules, nr, chain, 3, &m), 0);
    CHECK_EQ(m, 99);
    CHECK_EQ(rq_x509_map_attributes(rules, nr, chain, 0, &m), 0);
    CHECK_EQ(rq_x509_map_attributes(rules, 0, chain, 3, &m), 0);
    free_chain(chain, 3);
    for (size_t i = 0; i < nr; i++)
        rq_x509_rule_free(&rules[i]);

    /* first rule wins among entries naming the same subject (spelled differently), and the
     * chain decides before rule order: a root rule listed first does not beat the leaf's */
    struct rq_x509_rule dup[] = {
        rule("root", "CN = Contoso Root CA Cert, OU = Engineering, C = US", "organization",
             "contoso"),
        rule("fan-1", "CN = smart-fan", "building", "17"),
        rule("fan-2", "cn=smart-fan", "building", "18"),
        rule("fan-3", "2.5.4.3 = smart-fan", "building", "19"),
    };
    size_t nd = sizeof dup / sizeof *dup;
    chain_of(chain,
             (const char *[]){"CN=smart-fan", "C=US, OU=Engineering, CN=Contoso Root CA Cert"}, 2);
    CHECK_EQ(rq_x509_map_attributes(dup, nd, chain, 2, &m), 1);
    CHECK_EQ(m, 1);
    /* subjects are compared whole: a leaf "CN=smart-fan, O=x" is not "CN = smart-fan" */
    rq_dn_free(&chain[0]);
    chain[0] = parse("CN=smart-fan, O=x");
    CHECK_EQ(rq_x509_map_attributes(dup, nd, chain, 2, &m), 1);
    CHECK_EQ(m, 0);
    /* a certificate with an empty subject never matches, not even an empty rule subject */
    rq_dn_free(&chain[0]);
    rq_dn_free(&dup[0].subject);
    CHECK_EQ(rq_x509_map_attributes(dup, nd, chain, 1, &m), 0);
    CHECK_EQ(rq_x509_map_attributes(dup, nd, chain, 2, &m), 0); /* root rule is empty now */
    free_chain(chain, 2);
    for (size_t i = 0; i < nd; i++) {
        rq_x509_rule_free(&dup[i]);
        CHECK(dup[i].name == NULL && dup[i].keys == NULL && dup[i].n == 0);
    }
    rq_x509_rule_free(NULL);
    struct rq_x509_rule zero = {0};
    rq_x509_rule_free(&zero);
}

int main(void)
{
    test_aio_examples();
    test_spacing();
    test_escapes();
    test_quoted();
    test_hex_values();
    test_multi_valued();
    test_types();
    test_errors();
    test_equality();
    test_add();
    test_common_name();
    test_format();
    test_round_trip();
    test_mapping();
    return check_exit("test_x509_subject");
}
