/* Unit tests for auth/custom_msg: CONNECT and AUTH request bodies (fields omitted when absent,
 * standard base64 with padding, escaping, refusals), response verdicts for 200 / 403 / 422 /
 * other statuses (expiry, attributes and their bounds, reason mapping for v5 and v3.1.1, the
 * 403 message and 422 version list, Content-Type, malformed and oversized bodies, secrets and
 * response text never in `why`), RFC 3339 parsing and formatting, Cache-Control max-age and
 * header line matching. */
#include "auth/custom_msg.h"

#include "tests/unit/check.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <time.h>

#define U8(s) (const uint8_t *)(s)

/* ---- helpers ------------------------------------------------------------------------------ */

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm);
}

static int64_t ts(const char *s)
{
    int64_t t = -1;
    if (rq_rfc3339_parse(s, strlen(s), &t) != 0) {
        fprintf(stderr, "rfc3339 refused \"%s\"\n", s);
        CHECK(0);
    }
    return t;
}

static void ts_bad(const char *s)
{
    int64_t t = 12345;
    int rc = rq_rfc3339_parse(s, strlen(s), &t);
    if (rc == 0)
        fprintf(stderr, "rfc3339 accepted \"%s\"\n", s);
    CHECK_EQ(rc, -1);
    CHECK_EQ(t, 12345);
}

static const int64_t NOW = 1800000000; /* 2027-01-15T08:00:00Z */

static void parse(int status, const char *ct, const char *body, struct rq_custom_verdict *v)
{
    rq_custom_parse_response(status, ct, U8(body), strlen(body), NOW, v);
}

/* status/ct/body is not relevant; why starts with want_why (if given) */
static void nr(int status, const char *ct, const char *body, const char *want_why)
{
    struct rq_custom_verdict v;
    parse(status, ct, body, &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_NOT_RELEVANT);
    CHECK(v.why[0] != '\0');
    CHECK(v.attrs == NULL && v.n_attrs == 0 && !v.has_expiry);
    if (want_why && strncmp(v.why, want_why, strlen(want_why)) != 0) {
        fprintf(stderr, "why \"%s\", want \"%s...\" for %d %s\n", v.why, want_why, status, body);
        CHECK(0);
    }
    rq_custom_verdict_free(&v);
}

static const char *attr(const struct rq_custom_verdict *v, const char *key)
{
    for (size_t i = 0; i < v->n_attrs; i++)
        if (!strcmp(v->attrs[i].key, key))
            return v->attrs[i].value;
    return NULL;
}

static cJSON *json(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    CHECK(j != NULL);
    return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* ---- requests ----------------------------------------------------------------------------- */

static void test_connect_full(void)
{
    static const uint8_t data[] = {0, 1, 2, 3};
    const char *chain = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    struct rq_custom_creds c = {.username = "device-17",
                                .username_len = 9,
                                .password = U8("password"),
                                .password_len = 8,
                                .certs = chain,
                                .certs_len = strlen(chain),
                                .auth_method = "MY-METHOD",
                                .auth_method_len = 9,
                                .auth_data = data,
                                .auth_data_len = sizeof data};
    size_t len = 0;
    const char *why = NULL;
    char *body = rq_custom_build_connect(&c, &len, &why);
    CHECK(body != NULL);
    CHECK_EQ(len, strlen(body));
    cJSON *j = json(body);
    CHECK_STR(jstr(j, "type"), "connect");
    CHECK_STR(jstr(j, "username"), "device-17");
    CHECK_STR(jstr(j, "password"), "cGFzc3dvcmQ=");
    CHECK_STR(jstr(j, "certs"), chain);
    cJSON *ea = cJSON_GetObjectItemCaseSensitive(j, "enhancedAuthentication");
    CHECK_STR(jstr(ea, "method"), "MY-METHOD");
    CHECK_STR(jstr(ea, "data"), "AAECAw==");
    CHECK_EQ(cJSON_GetArraySize(j), 5);
    CHECK_EQ(cJSON_GetArraySize(ea), 2);
    cJSON_Delete(j);
    free(body);
}

static void test_connect_absent(void)
{
    struct rq_custom_creds c = {0};
    size_t len;
    const char *why = NULL;
    char *body = rq_custom_build_connect(&c, &len, &why);
    CHECK_STR(body, "{\"type\":\"connect\"}");
    free(body);

    /* present but empty: sent as empty strings; method without data: no "data" */
    c = (struct rq_custom_creds){
        .username = "", .password = U8(""), .auth_method = "M", .auth_method_len = 1};
    body = rq_custom_build_connect(&c, &len, &why);
    CHECK_STR(body, "{\"type\":\"connect\",\"username\":\"\",\"password\":\"\","
                    "\"enhancedAuthentication\":{\"method\":\"M\"}}");
    free(body);
}

static void test_connect_base64(void)
{
    static const struct {
        const char *in;
        size_t len;
        const char *b64;
    } cases[] = {{"a", 1, "YQ=="},
                 {"ab", 2, "YWI="},
                 {"abc", 3, "YWJj"},
                 {"\x00\xff\xfe", 3, "AP/+"},
                 {"\xfb\xff", 2, "+/8="}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rq_custom_creds c = {.password = U8(cases[i].in), .password_len = cases[i].len};
        size_t len;
        const char *why;
        char *body = rq_custom_build_connect(&c, &len, &why);
        cJSON *j = json(body);
        CHECK_STR(jstr(j, "password"), cases[i].b64);
        cJSON_Delete(j);
        free(body);
    }
    /* a long value has no line breaks (wolfCrypt's plain Base64_Encode adds one every 64) */
    uint8_t big[300];
    memset(big, 0xAB, sizeof big);
    struct rq_custom_creds c = {
        .auth_method = "X", .auth_method_len = 1, .auth_data = big, .auth_data_len = sizeof big};
    size_t len;
    const char *why;
    char *body = rq_custom_build_connect(&c, &len, &why);
    CHECK(body && !strchr(body, '\n') && !strstr(body, "\\n"));
    cJSON *j = json(body);
    const char *d = jstr(cJSON_GetObjectItemCaseSensitive(j, "enhancedAuthentication"), "data");
    CHECK(d && strlen(d) == 400);
    cJSON_Delete(j);
    free(body);
}

static void test_connect_escaping(void)
{
    const char *name = "a\"b\\c\n\x01\xc3\xa9";
    struct rq_custom_creds c = {.username = name, .username_len = strlen(name)};
    size_t len;
    const char *why;
    char *body = rq_custom_build_connect(&c, &len, &why);
    CHECK(body && !strchr(body, '\n') && !strchr(body, '\x01'));
    cJSON *j = json(body);
    CHECK_STR(jstr(j, "username"), name);
    cJSON_Delete(j);
    free(body);
}

static void test_connect_refused(void)
{
    const char *secret = "hunter2";
    struct rq_custom_creds c = {
        .username = "a\0b", .username_len = 3, .password = U8(secret), .password_len = 7};
    size_t len = 99;
    const char *why = NULL;
    CHECK(rq_custom_build_connect(&c, &len, &why) == NULL);
    CHECK_STR(why, "username is not valid UTF-8");
    c.username = "\xff";
    c.username_len = 1;
    why = NULL;
    CHECK(rq_custom_build_connect(&c, &len, &why) == NULL);
    CHECK(why && !strstr(why, secret));
    c = (struct rq_custom_creds){.auth_data = U8(secret), .auth_data_len = 7};
    CHECK(rq_custom_build_connect(&c, &len, &why) == NULL);
    CHECK_STR(why, "authentication data without authentication method");
    c = (struct rq_custom_creds){.auth_method = "\xc3", .auth_method_len = 1};
    CHECK(rq_custom_build_connect(&c, &len, &why) == NULL);
    c = (struct rq_custom_creds){.certs = "x\0", .certs_len = 2};
    CHECK(rq_custom_build_connect(&c, &len, &why) == NULL);
}

static void test_auth_body(void)
{
    size_t len;
    const char *why = NULL;
    char *body = rq_custom_build_auth("MY-METHOD", 9, U8("\x00\x01\x02\x03"), 4, &len, &why);
    CHECK_STR(body, "{\"type\":\"auth\",\"enhancedAuthentication\":"
                    "{\"method\":\"MY-METHOD\",\"data\":\"AAECAw==\"}}");
    free(body);
    body = rq_custom_build_auth("K", 1, NULL, 0, &len, &why);
    CHECK_STR(body, "{\"type\":\"auth\",\"enhancedAuthentication\":{\"method\":\"K\"}}");
    free(body);
    body = rq_custom_build_auth("K", 1, U8(""), 0, &len, &why);
    CHECK_STR(body,
              "{\"type\":\"auth\",\"enhancedAuthentication\":{\"method\":\"K\",\"data\":\"\"}}");
    free(body);
    CHECK(rq_custom_build_auth(NULL, 0, U8("x"), 1, &len, &why) == NULL);
    CHECK_STR(why, "re-authentication without authentication method");
    CHECK(rq_custom_build_auth("a\0", 2, NULL, 0, &len, &why) == NULL);
}

/* ---- 200 ---------------------------------------------------------------------------------- */

static void test_pass(void)
{
    struct rq_custom_verdict v;
    parse(200, "application/json", "{}", &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_PASS);
    CHECK(!v.has_expiry && v.n_attrs == 0 && v.attrs == NULL);
    CHECK_STR(v.why, "");
    rq_custom_verdict_free(&v);

    parse(200, "application/json",
          "{\"expiry\":\"2030-05-08T20:04:16+00:00\",\"attributes\":{\"group\":\"group1\","
          "\"city\":\"\\u00e9t\\u00e9\",\"empty\":\"\"},\"other\":[1,2]}",
          &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_PASS);
    CHECK(v.has_expiry);
    CHECK_EQ(v.expiry, utc(2030, 5, 8, 20, 4, 16));
    CHECK_EQ(v.n_attrs, 3);
    CHECK_STR(attr(&v, "group"), "group1");
    CHECK_STR(attr(&v, "city"), "\xc3\xa9t\xc3\xa9");
    CHECK_STR(attr(&v, "empty"), "");
    rq_custom_verdict_free(&v);
    CHECK(v.attrs == NULL && v.n_attrs == 0);

    /* null = absent (serde's Option without skip_serializing_if) */
    parse(200, NULL, "{\"expiry\":null,\"attributes\":null}", &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_PASS);
    CHECK(!v.has_expiry && v.n_attrs == 0);
    rq_custom_verdict_free(&v);

    /* trailing whitespace is fine */
    parse(200, NULL, " {\"attributes\":{}} \r\n\t", &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_PASS);
    rq_custom_verdict_free(&v);

    /* "\\u0000" is a backslash and text, not a NUL escape */
    parse(200, NULL, "{\"attributes\":{\"k\":\"a\\\\u0000\"}}", &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_PASS);
    CHECK_STR(attr(&v, "k"), "a\\u0000");
    rq_custom_verdict_free(&v);
}

static void test_pass_content_type(void)
{
    static const char *ok[] = {NULL, "application/json", "Application/JSON",
                               "application/json; charset=utf-8", " application/json "};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct rq_custom_verdict v;
        parse(200, ok[i], "{}", &v);
        CHECK_EQ(v.outcome, RQ_CUSTOM_PASS);
        rq_custom_verdict_free(&v);
    }
    nr(200, "text/plain", "{}", "200 response with a Content-Type");
    nr(200, "application/jsonx", "{}", "200 response with a Content-Type");
    nr(200, "", "{}", "200 response with a Content-Type");
    nr(403, "text/html", "{\"reason\":135}", "403 response with a Content-Type");
}

static void test_pass_expiry(void)
{
    struct rq_custom_verdict v;
    /* expiry already passed, or exactly now: deny, never fall through */
    parse(200, NULL, "{\"expiry\":\"2020-01-01T00:00:00Z\",\"attributes\":{\"a\":\"b\"}}", &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_FAIL);
    CHECK_EQ(v.reason, 0x87);
    CHECK_EQ(v.rc311, 5);
    CHECK_STR(v.why, "200 response: expiry has already passed");
    CHECK(v.n_attrs == 0 && v.attrs == NULL);
    rq_custom_verdict_free(&v);
    char body[96];
    char now[32];
    CHECK_EQ(rq_rfc3339_format(NOW, now, sizeof now), 20);
    snprintf(body, sizeof body, "{\"expiry\":\"%s\"}", now);
    parse(200, NULL, body, &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_FAIL);
    rq_custom_verdict_free(&v);
    CHECK_EQ(rq_rfc3339_format(NOW + 1, now, sizeof now), 20);
    snprintf(body, sizeof body, "{\"expiry\":\"%s\"}", now);
    parse(200, NULL, body, &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_PASS);
    CHECK_EQ(v.expiry, NOW + 1);
    rq_custom_verdict_free(&v);

    nr(200, NULL, "{\"expiry\":1900000000}", "200 response: expiry is not");
    nr(200, NULL, "{\"expiry\":\"tomorrow\"}", "200 response: expiry is not");
    nr(200, NULL, "{\"expiry\":\"2030-02-30T00:00:00Z\"}", "200 response: expiry is not");
    nr(200, NULL, "{\"expiry\":\"2030-02-01T00:00:00\"}", "200 response: expiry is not");
}

static void test_pass_attributes_bad(void)
{
    nr(200, NULL, "{\"attributes\":{\"a\":\"s3cret\",\"b\":1}}", "200 response: attribute 2");
    nr(200, NULL, "{\"attributes\":{\"a\":true}}", "200 response: attribute 1 is not");
    nr(200, NULL, "{\"attributes\":{\"a\":null}}", "200 response: attribute 1 is not");
    nr(200, NULL, "{\"attributes\":{\"a\":{\"b\":\"c\"}}}", "200 response: attribute 1 is not");
    nr(200, NULL, "{\"attributes\":{\"a\":[\"b\"]}}", "200 response: attribute 1 is not");
    nr(200, NULL, "{\"attributes\":[\"a\"]}", "200 response: attributes is not an object");
    nr(200, NULL, "{\"attributes\":\"a=b\"}", "200 response: attributes is not an object");
    nr(200, NULL, "{\"attributes\":{\"\":\"b\"}}", "200 response: attribute 1 has an empty");
    nr(200, NULL, "{\"attributes\":{\"a\":\"b\",\"a\":\"c\"}}",
       "200 response: attribute 2 repeats");
    /* a NUL escape would cut the value short in cJSON: refused whole */
    nr(200, NULL, "{\"attributes\":{\"g\":\"admin\\u0000x\"}}", "response body holds NUL");
    nr(200, NULL, "{\"attributes\":{\"g\\u0000\":\"admin\"}}", "response body holds NUL");
    nr(200, NULL, "{\"attributes\":{\"g\":\"\xff\"}}", "200 response: attribute 1 is not");
    nr(200, NULL, "{\"attributes\":{\"\xc3\":\"x\"}}", "200 response: attribute 1 has");

    /* the why of a failed response never holds response text */
    struct rq_custom_verdict v;
    parse(200, NULL, "{\"attributes\":{\"s3cret\":\"t0ken\",\"b\":1}}", &v);
    CHECK(!strstr(v.why, "s3cret") && !strstr(v.why, "t0ken"));
    rq_custom_verdict_free(&v);
}

/* Body with n attributes "kI":"v" where the key and value sizes are given. */
static char *attrs_body(int n, size_t key_len, size_t value_len)
{
    size_t cap = 64 + (size_t)n * (key_len + value_len + 16);
    char *b = malloc(cap), *p = b;
    p += sprintf(p, "{\"attributes\":{");
    for (int i = 0; i < n; i++) {
        p += sprintf(p, "%s\"%04d", i ? "," : "", i);
        for (size_t k = 4; k < key_len; k++)
            *p++ = 'k';
        p += sprintf(p, "\":\"");
        for (size_t k = 0; k < value_len; k++)
            *p++ = 'v';
        *p++ = '"';
    }
    strcpy(p, "}}");
    return b;
}

static void test_pass_attributes_bounds(void)
{
    struct rq_custom_verdict v;
    char *b = attrs_body(RQ_CUSTOM_MAX_ATTRS, RQ_CUSTOM_MAX_ATTR_KEY, RQ_CUSTOM_MAX_ATTR_VALUE / 2);
    parse(200, NULL, b, &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_PASS);
    CHECK_EQ(v.n_attrs, RQ_CUSTOM_MAX_ATTRS);
    rq_custom_verdict_free(&v);
    free(b);
    b = attrs_body(RQ_CUSTOM_MAX_ATTRS + 1, 8, 8);
    nr(200, NULL, b, "200 response: more than 64 attributes");
    free(b);
    b = attrs_body(1, RQ_CUSTOM_MAX_ATTR_KEY + 1, 1);
    nr(200, NULL, b, "200 response: attribute 1 has an empty, overlong");
    free(b);
    b = attrs_body(1, 8, RQ_CUSTOM_MAX_ATTR_VALUE);
    parse(200, NULL, b, &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_PASS);
    rq_custom_verdict_free(&v);
    free(b);
    b = attrs_body(1, 8, RQ_CUSTOM_MAX_ATTR_VALUE + 1);
    nr(200, NULL, b, "200 response: attribute 1 is not");
    free(b);
}

static void test_bad_bodies(void)
{
    nr(200, NULL, "", "response body is empty");
    nr(200, NULL, "[]", "response body is not one JSON object");
    nr(200, NULL, "\"ok\"", "response body is not one JSON object");
    nr(200, NULL, "{} x", "response body is not one JSON object");
    nr(200, NULL, "{}{}", "response body is not one JSON object");
    nr(200, NULL, "{\"a\":", "response body is not one JSON object");
    nr(200, NULL, "<html>ok</html>", "response body is not one JSON object");
    struct rq_custom_verdict v;
    rq_custom_parse_response(200, NULL, U8("{}\0"), 3, NOW, &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_NOT_RELEVANT);
    CHECK_STR(v.why, "response body holds NUL");
    rq_custom_verdict_free(&v);
    /* only the first len bytes are read */
    rq_custom_parse_response(200, NULL, U8("{}garbage"), 2, NOW, &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_PASS);
    rq_custom_verdict_free(&v);

    size_t big = RQ_CUSTOM_MAX_BODY + 1;
    char *b = malloc(big + 1);
    memset(b, ' ', big);
    b[0] = '{';
    b[big - 1] = '}';
    b[big] = '\0';
    nr(200, NULL, b, "response body over 65536 bytes");
    b[big - 2] = '}';
    rq_custom_parse_response(200, NULL, U8(b), big - 1, NOW, &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_PASS);
    rq_custom_verdict_free(&v);
    free(b);

    /* deep nesting: refused by cJSON's nesting limit, no stack overflow */
    size_t depth = 5000;
    b = malloc(2 * depth + 16);
    strcpy(b, "{\"x\":");
    size_t n = strlen(b);
    memset(b + n, '[', depth);
    memset(b + n + depth, ']', depth);
    strcpy(b + n + 2 * depth, "}");
    nr(200, NULL, b, "response body is not one JSON object");
    free(b);
}

/* ---- 403, 422, others --------------------------------------------------------------------- */

static void fail_case(const char *body, int reason, int rc311)
{
    struct rq_custom_verdict v;
    parse(403, "application/json", body, &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_FAIL);
    CHECK_EQ(v.reason, reason);
    CHECK_EQ(v.rc311, rc311);
    CHECK(v.n_attrs == 0 && !v.has_expiry);
    rq_custom_verdict_free(&v);
}

static void test_fail(void)
{
    struct rq_custom_verdict v;
    parse(403, "application/json", "{\"reason\":135,\"message\":\"no such user s3cret\"}", &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_FAIL);
    CHECK_EQ(v.reason, 0x87);
    CHECK_EQ(v.rc311, 5);
    CHECK_STR(v.message, "no such user s3cret");
    CHECK_STR(v.why, "403 response: reason 0x87");
    CHECK(!strstr(v.why, "s3cret"));
    rq_custom_verdict_free(&v);

    fail_case("{\"reason\":134}", 0x86, 4);
    fail_case("{\"reason\":128}", 0x80, 5);
    fail_case("{\"reason\":140}", 0x8C, 5);
    fail_case("{\"reason\":159}", 0x9F, 5);
    /* below 0x80 (the user-pass sample sends 0 and 5) or not a CONNACK code: 0x87 */
    fail_case("{\"reason\":0}", 0x87, 5);
    fail_case("{\"reason\":5}", 0x87, 5);
    fail_case("{\"reason\":127}", 0x87, 5);
    fail_case("{\"reason\":139}", 0x87, 5);
    fail_case("{\"reason\":255}", 0x87, 5);
    fail_case("{\"reason\":135.0}", 0x87, 5);
    fail_case("{\"reason\":1.34e2}", 0x86, 4);
    parse(403, NULL, "{\"reason\":5,\"message\":\"bad password\"}", &v);
    CHECK_STR(v.why, "403 response: reason 5 replaced by 0x87");
    CHECK_STR(v.message, "bad password");
    rq_custom_verdict_free(&v);

    /* message: optional, non-strings ignored, long ones cut at a character boundary */
    parse(403, NULL, "{\"reason\":135,\"message\":7}", &v);
    CHECK(v.outcome == RQ_CUSTOM_FAIL && v.message == NULL);
    rq_custom_verdict_free(&v);
    char body[1200];
    char *p = body + sprintf(body, "{\"reason\":135,\"message\":\"");
    for (int i = 0; i < 300; i++)
        p += sprintf(p, "\xc3\xa9"); /* 2-byte characters: 256 falls inside the 128th */
    strcpy(p, "\"}");
    parse(403, NULL, body, &v);
    CHECK(v.message && strlen(v.message) == RQ_CUSTOM_MAX_LOG_TEXT);
    rq_custom_verdict_free(&v);
    body[strlen(body) - 3] = 'x'; /* odd length: the cut backs up over a continuation byte */
    memmove(body + 25, body + 26, strlen(body + 26) + 1);
    parse(403, NULL, body, &v);
    CHECK(v.message && strlen(v.message) == RQ_CUSTOM_MAX_LOG_TEXT - 1);
    rq_custom_verdict_free(&v);

    nr(403, NULL, "{}", "403 response: reason is not");
    nr(403, NULL, "{\"reason\":\"135\"}", "403 response: reason is not");
    nr(403, NULL, "{\"reason\":256}", "403 response: reason is not");
    nr(403, NULL, "{\"reason\":-1}", "403 response: reason is not");
    nr(403, NULL, "{\"reason\":135.5}", "403 response: reason is not");
    nr(403, NULL, "{\"reason\":1e999}", "403 response: reason is not");
    nr(403, NULL, "{\"reason\":null}", "403 response: reason is not");
    nr(403, NULL, "forbidden", "response body is not one JSON object");
    nr(403, NULL, "", "response body is empty");
}

static void test_422(void)
{
    struct rq_custom_verdict v;
    parse(422, "application/json", "{\"supportedVersions\":[\"0.5.0\",\"1.0.0\"]}", &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_NOT_RELEVANT);
    CHECK_STR(v.why, "422 response: api-version 0.5.0 not supported");
    CHECK_STR(v.supported_versions, "0.5.0, 1.0.0");
    rq_custom_verdict_free(&v);
    parse(422, NULL, "{\"supportedVersions\":[7,\"2.0\"]}", &v);
    CHECK_STR(v.supported_versions, "2.0");
    rq_custom_verdict_free(&v);
    parse(422, "text/plain", "unsupported", &v);
    CHECK_EQ(v.outcome, RQ_CUSTOM_NOT_RELEVANT);
    CHECK_STR(v.why, "422 response: api-version 0.5.0 not supported");
    CHECK(v.supported_versions == NULL);
    rq_custom_verdict_free(&v);
    parse(422, NULL, "{\"supportedVersions\":\"0.5.0\"}", &v);
    CHECK(v.supported_versions == NULL);
    rq_custom_verdict_free(&v);
    /* a huge list is cut */
    char body[4096];
    char *p = body + sprintf(body, "{\"supportedVersions\":[");
    for (int i = 0; i < 100; i++)
        p += sprintf(p, "%s\"%d.0.0\"", i ? "," : "", i);
    strcpy(p, "]}");
    parse(422, NULL, body, &v);
    CHECK(v.supported_versions && strlen(v.supported_versions) <= RQ_CUSTOM_MAX_LOG_TEXT);
    CHECK(v.supported_versions && !strncmp(v.supported_versions, "0.0.0, 1.0.0", 12));
    rq_custom_verdict_free(&v);
}

static void test_other_status(void)
{
    static const int st[] = {0, -1, 100, 201, 204, 301, 400, 401, 404, 405, 429, 500, 502, 503};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        struct rq_custom_verdict v;
        parse(st[i], NULL, "{\"reason\":135}", &v);
        CHECK_EQ(v.outcome, RQ_CUSTOM_NOT_RELEVANT);
        char want[32];
        snprintf(want, sizeof want, "HTTP status %d", st[i]);
        CHECK_STR(v.why, want);
        rq_custom_verdict_free(&v);
    }
    CHECK_EQ(rq_custom_rc311(0x86), 4);
    CHECK_EQ(rq_custom_rc311(0x87), 5);
    CHECK_EQ(rq_custom_rc311(0x8C), 5);
}

/* ---- RFC 3339 ----------------------------------------------------------------------------- */

static void test_rfc3339(void)
{
    CHECK_EQ(ts("1970-01-01T00:00:00Z"), 0);
    CHECK_EQ(ts("2024-04-16T12:00:10Z"), utc(2024, 4, 16, 12, 0, 10));
    CHECK_EQ(ts("2024-04-16t12:00:10z"), utc(2024, 4, 16, 12, 0, 10));
    CHECK_EQ(ts("2024-04-16 12:00:10Z"), utc(2024, 4, 16, 12, 0, 10));
    CHECK_EQ(ts("2024-04-16T17:30:10+05:30"), utc(2024, 4, 16, 12, 0, 10));
    CHECK_EQ(ts("2024-04-16T04:00:10-08:00"), utc(2024, 4, 16, 12, 0, 10));
    CHECK_EQ(ts("2024-04-16T12:00:10-00:00"), utc(2024, 4, 16, 12, 0, 10));
    CHECK_EQ(ts("2024-04-16T12:00:10+00:00"), utc(2024, 4, 16, 12, 0, 10));
    /* offsets that cross a day, a month and a year */
    CHECK_EQ(ts("2024-01-01T01:00:00+23:59"), utc(2023, 12, 31, 1, 1, 0));
    CHECK_EQ(ts("2023-12-31T23:30:00-00:45"), utc(2024, 1, 1, 0, 15, 0));
    /* fractional seconds are dropped (floor), however many digits */
    CHECK_EQ(ts("2024-04-16T12:00:10.5Z"), utc(2024, 4, 16, 12, 0, 10));
    CHECK_EQ(ts("2024-04-16T12:00:10.999999999999Z"), utc(2024, 4, 16, 12, 0, 10));
    CHECK_EQ(ts("2030-05-08T20:04:16.123+00:00"), utc(2030, 5, 8, 20, 4, 16));
    CHECK_EQ(ts("1969-12-31T23:59:59.9Z"), -1);
    /* leap years */
    CHECK_EQ(ts("2024-02-29T00:00:00Z"), utc(2024, 2, 29, 0, 0, 0));
    CHECK_EQ(ts("2000-02-29T00:00:00Z"), utc(2000, 2, 29, 0, 0, 0));
    ts_bad("2023-02-29T00:00:00Z");
    ts_bad("1900-02-29T00:00:00Z");
    ts_bad("2100-02-29T00:00:00Z");
    ts_bad("2024-02-30T00:00:00Z");
    ts_bad("2024-04-31T00:00:00Z");
    ts_bad("2024-06-31T00:00:00Z");
    ts_bad("2024-13-01T00:00:00Z");
    ts_bad("2024-00-10T00:00:00Z");
    ts_bad("2024-01-00T00:00:00Z");
    ts_bad("2024-01-32T00:00:00Z");
    CHECK_EQ(ts("2024-12-31T23:59:59Z"), utc(2024, 12, 31, 23, 59, 59));
    /* a leap second counts as the next minute's 0 */
    CHECK_EQ(ts("2016-12-31T23:59:60Z"), utc(2017, 1, 1, 0, 0, 0));
    ts_bad("2024-01-01T24:00:00Z");
    ts_bad("2024-01-01T23:60:00Z");
    ts_bad("2024-01-01T23:59:61Z");
    /* offsets */
    ts_bad("2024-01-01T00:00:00");
    ts_bad("2024-01-01T00:00:00+24:00");
    ts_bad("2024-01-01T00:00:00+05:60");
    ts_bad("2024-01-01T00:00:00+0530");
    ts_bad("2024-01-01T00:00:00+05");
    ts_bad("2024-01-01T00:00:00 Z");
    ts_bad("2024-01-01T00:00:00UTC");
    /* shapes */
    ts_bad("");
    ts_bad("2024-01-01");
    ts_bad("24-01-01T00:00:00Z");
    ts_bad("2024-1-01T00:00:00Z");
    ts_bad("2024/01/01T00:00:00Z");
    ts_bad("2024-01-01X00:00:00Z");
    ts_bad("2024-01-01T00:00Z");
    ts_bad("2024-01-01T00:00:00.Z");
    ts_bad("2024-01-01T00:00:00,5Z");
    ts_bad("2024-01-01T00:00:00Zjunk");
    ts_bad("+2024-01-01T00:00:00Z");
    ts_bad(" 2024-01-01T00:00:00Z");
    ts_bad("2024-01-01T00:00:00.000000000000000000000000000000000000000000000000000000Z");
    /* a NUL inside the given length is refused */
    int64_t t;
    CHECK_EQ(rq_rfc3339_parse("2024-01-01T00:00:00Z\0", 21, &t), -1);
    CHECK_EQ(rq_rfc3339_parse("2024-01-01T00:00:00Zjunk", 20, &t), 0);
    CHECK_EQ(ts("0000-01-01T00:00:00Z"), -62167219200LL);
    CHECK_EQ(ts("9999-12-31T23:59:59Z"), 253402300799LL);
}

static void test_rfc3339_format(void)
{
    static const int64_t t[] = {0,
                                1,
                                -1,
                                951782400 /* 2000-02-29 */,
                                1713268810,
                                4102444799,
                                -62167219200LL,
                                253402300799LL,
                                -2208988800LL};
    char buf[32];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        CHECK_EQ(rq_rfc3339_format(t[i], buf, sizeof buf), 20);
        CHECK_EQ(ts(buf), t[i]);
    }
    CHECK_EQ(rq_rfc3339_format(1713268810, buf, sizeof buf), 20);
    CHECK_STR(buf, "2024-04-16T12:00:10Z");
    CHECK_EQ(rq_rfc3339_format(-1, buf, sizeof buf), 20);
    CHECK_STR(buf, "1969-12-31T23:59:59Z");
    CHECK_EQ(rq_rfc3339_format(253402300800LL, buf, sizeof buf), -1);
    CHECK_STR(buf, "");
    CHECK_EQ(rq_rfc3339_format(-62167219201LL, buf, sizeof buf), -1);
    CHECK_EQ(rq_rfc3339_format(0, buf, 20), -1);
    /* every day of a leap and a normal year round-trips */
    for (int64_t d = 0; d < 2 * 366; d++) {
        int64_t x = utc(2023, 1, 1, 0, 0, 0) + d * 86400 + 3661;
        rq_rfc3339_format(x, buf, sizeof buf);
        CHECK_EQ(ts(buf), x);
    }
}

/* ---- Cache-Control and headers ------------------------------------------------------------ */

static long long max_age(const char *v)
{
    uint32_t a = 4242;
    int rc = rq_custom_max_age(v, strlen(v), &a);
    if (!rc)
        CHECK_EQ(a, 4242);
    return rc ? (long long)a : -1;
}

static void test_max_age(void)
{
    CHECK_EQ(max_age("max-age=60"), 60);
    CHECK_EQ(max_age("MAX-AGE=10"), 10);
    CHECK_EQ(max_age("public, max-age=300"), 300);
    CHECK_EQ(max_age("private,max-age=7"), 7);
    CHECK_EQ(max_age("max-age=\"30\""), 30);
    CHECK_EQ(max_age(" max-age=5 , must-revalidate"), 5);
    CHECK_EQ(max_age("max-age=5, max-age=5"), 5);
    CHECK_EQ(max_age("foo=\"a,max-age=3\", max-age=7"), 7);
    CHECK_EQ(max_age("max-age=99999999999999999999"), 2147483648LL);
    CHECK_EQ(max_age("max-age=0"), -1);
    CHECK_EQ(max_age(""), -1);
    CHECK_EQ(max_age("public"), -1);
    CHECK_EQ(max_age("no-store, max-age=60"), -1);
    CHECK_EQ(max_age("max-age=60, No-Cache"), -1);
    CHECK_EQ(max_age("max-age=5, max-age=6"), -1);
    CHECK_EQ(max_age("s-maxage=10"), -1);
    CHECK_EQ(max_age("max-age=abc"), -1);
    CHECK_EQ(max_age("max-age="), -1);
    CHECK_EQ(max_age("max-age=10x"), -1);
    CHECK_EQ(max_age("max-age=-1"), -1);
    CHECK_EQ(max_age("max-age=\"10"), -1);
    CHECK_EQ(max_age("max-age"), -1);
}

static void test_header_match(void)
{
    const char *v = NULL;
    size_t n = 0;
    const char *l = "Cache-Control: max-age=5\r\n";
    CHECK_EQ(rq_custom_header_match(l, strlen(l), "cache-control", &v, &n), 1);
    CHECK(n == 9 && !memcmp(v, "max-age=5", 9));
    l = "content-type:application/json";
    CHECK_EQ(rq_custom_header_match(l, strlen(l), "Content-Type", &v, &n), 1);
    CHECK(n == 16 && !memcmp(v, "application/json", 16));
    l = "Content-Type:   \r\n";
    CHECK_EQ(rq_custom_header_match(l, strlen(l), "content-type", &v, &n), 1);
    CHECK_EQ(n, 0);
    l = "Cache-Controls: max-age=5\r\n";
    CHECK_EQ(rq_custom_header_match(l, strlen(l), "cache-control", &v, &n), 0);
    l = "Cache-Control";
    CHECK_EQ(rq_custom_header_match(l, strlen(l), "cache-control", &v, &n), 0);
    l = "HTTP/1.1 200 OK\r\n";
    CHECK_EQ(rq_custom_header_match(l, strlen(l), "cache-control", &v, &n), 0);
}

int main(void)
{
    test_connect_full();
    test_connect_absent();
    test_connect_base64();
    test_connect_escaping();
    test_connect_refused();
    test_auth_body();
    test_pass();
    test_pass_content_type();
    test_pass_expiry();
    test_pass_attributes_bad();
    test_pass_attributes_bounds();
    test_bad_bodies();
    test_fail();
    test_422();
    test_other_status();
    test_rfc3339();
    test_rfc3339_format();
    test_max_age();
    test_header_match();
    return check_exit("test_custom_msg");
}
