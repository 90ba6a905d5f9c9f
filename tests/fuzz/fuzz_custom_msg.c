/* libFuzzer harness for auth/custom_msg (Custom authentication API 0.5.0 messages).
 *
 * Input layout: byte 0 = mode (low 2 bits) and, for responses, the status and Content-Type
 * (bits 2..4: status from a table, bits 5..6: Content-Type from a table); the rest is the data.
 *  mode 0: the data is a response body. Checked: the verdict is well formed for its outcome
 *          (PASS: bounded, distinct, valid UTF-8 attributes, expiry after now; FAIL: a reason
 *          >= 0x80 and its 3.1.1 code; NOT_RELEVANT: nothing kept), `why` is printable ASCII,
 *          the 403 message and 422 list are bounded, the same input gives the same verdict.
 *  mode 1: the data is an RFC 3339 timestamp. A parsed one formats (years 0..9999) to a string
 *          that parses back to the same time, and equals the input when that was already in
 *          the canonical "YYYY-MM-DDTHH:MM:SSZ" shape.
 *  mode 2: the data is a header line / Cache-Control value. max-age is within 1..2^31, and a
 *          matched header value lies inside the line without surrounding blanks.
 *  mode 3: the data, split at 0x00 bytes, gives username, password, certs, method, auth data.
 *          The CONNECT and AUTH bodies parse back (cJSON) to exactly those fields, password and
 *          data base64-decoded with wolfCrypt; a refusal only happens for text that is not
 *          UTF-8 (the split leaves no NUL in the fields). */
#include "auth/custom_msg.h"

#include "core/codec.h"

#include <cjson/cJSON.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

#include <stdlib.h>
#include <string.h>

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static const int64_t NOW = 1800000000;

static bool printable(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    if (n == max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    return true;
}

static void check_verdict(int status, const struct rq_custom_verdict *v)
{
    ENSURE(printable(v->why, sizeof v->why));
    ENSURE(!v->message || strlen(v->message) <= RQ_CUSTOM_MAX_LOG_TEXT);
    ENSURE(!v->supported_versions || strlen(v->supported_versions) <= RQ_CUSTOM_MAX_LOG_TEXT);
    ENSURE(!v->message || status == 403);
    ENSURE(!v->supported_versions || status == 422);
    switch (v->outcome) {
    case RQ_CUSTOM_PASS:
        ENSURE(status == 200 && v->why[0] == '\0');
        ENSURE(!v->has_expiry || v->expiry > NOW);
        ENSURE(v->n_attrs <= RQ_CUSTOM_MAX_ATTRS && (v->attrs || !v->n_attrs));
        for (size_t i = 0; i < v->n_attrs; i++) {
            const char *k = v->attrs[i].key, *x = v->attrs[i].value;
            ENSURE(k && x && k[0]);
            ENSURE(strlen(k) <= RQ_CUSTOM_MAX_ATTR_KEY && strlen(x) <= RQ_CUSTOM_MAX_ATTR_VALUE);
            ENSURE(rq_utf8_valid((const uint8_t *)k, strlen(k)));
            ENSURE(rq_utf8_valid((const uint8_t *)x, strlen(x)));
            for (size_t j = 0; j < i; j++)
                ENSURE(strcmp(k, v->attrs[j].key) != 0);
        }
        break;
    case RQ_CUSTOM_FAIL:
        ENSURE(status == 403 || (status == 200 && v->has_expiry && v->expiry <= NOW));
        ENSURE(v->reason >= 0x80 && v->rc311 == (v->reason == 0x86 ? 4 : 5));
        ENSURE(v->n_attrs == 0 && !v->attrs && v->why[0]);
        break;
    case RQ_CUSTOM_NOT_RELEVANT:
        ENSURE(v->n_attrs == 0 && !v->attrs && !v->has_expiry && v->why[0]);
        break;
    default: abort();
    }
}

static void fuzz_response(uint8_t sel, const uint8_t *p, size_t n)
{
    static const int status[8] = {200, 200, 200, 403, 403, 422, 500, 400};
    static const char *ctype[4] = {NULL, "application/json", "text/plain",
                                   "application/json; charset=utf-8"};
    int st = status[(sel >> 2) & 7];
    const char *ct = ctype[(sel >> 5) & 3];
    struct rq_custom_verdict a, b;
    rq_custom_parse_response(st, ct, p, n, NOW, &a);
    check_verdict(st, &a);
    rq_custom_parse_response(st, ct, p, n, NOW, &b);
    ENSURE(a.outcome == b.outcome && a.reason == b.reason && a.n_attrs == b.n_attrs &&
           a.has_expiry == b.has_expiry && (!a.has_expiry || a.expiry == b.expiry) &&
           !strcmp(a.why, b.why));
    rq_custom_verdict_free(&a);
    rq_custom_verdict_free(&b);
}

static void fuzz_time(const uint8_t *p, size_t n)
{
    const char *s = (const char *)p;
    int64_t t;
    if (rq_rfc3339_parse(s, n, &t) != 0)
        return;
    ENSURE(n >= 20 && n <= RQ_RFC3339_MAX_LEN);
    char buf[32];
    int w = rq_rfc3339_format(t, buf, sizeof buf);
    if (w < 0) /* an offset moved it outside years 0..9999 */
        return;
    ENSURE(w == 20);
    int64_t back;
    ENSURE(rq_rfc3339_parse(buf, (size_t)w, &back) == 0 && back == t);
    if (n == 20 && s[10] == 'T' && s[19] == 'Z' && s[17] != '6')
        ENSURE(!memcmp(buf, s, 20));
}

static void fuzz_headers(const uint8_t *p, size_t n)
{
    const char *s = (const char *)p;
    uint32_t age = 0;
    if (rq_custom_max_age(s, n, &age))
        ENSURE(age >= 1 && age <= 2147483648u);
    const char *v;
    size_t vl;
    if (rq_custom_header_match(s, n, "cache-control", &v, &vl)) {
        ENSURE(v >= s + 14 && v + vl <= s + n);
        ENSURE(!vl || (v[0] != ' ' && v[vl - 1] != '\n' && v[vl - 1] != '\r'));
        rq_custom_max_age(v, vl, &age);
    }
}

/* cJSON string item `key` of obj equals the n bytes of want. */
static bool same_text(const cJSON *obj, const char *key, const char *want, size_t n)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) && strlen(it->valuestring) == n && !memcmp(it->valuestring, want, n);
}

/* base64 item `key` of obj decodes to the n bytes of want. */
static bool same_b64(const cJSON *obj, const char *key, const uint8_t *want, size_t n)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(it))
        return false;
    size_t el = strlen(it->valuestring);
    if (el != (n + 2) / 3 * 4 || strchr(it->valuestring, '\n'))
        return false;
    if (!n)
        return true;
    uint8_t *out = malloc(n + 3);
    word32 ol = (word32)(n + 3);
    bool ok = out && Base64_Decode((const byte *)it->valuestring, (word32)el, out, &ol) == 0 &&
              ol == n && !memcmp(out, want, n);
    free(out);
    return ok;
}

static void fuzz_build(const uint8_t *p, size_t n)
{
    const uint8_t *f[5] = {0};
    size_t fl[5] = {0};
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= n && k < 5; i++)
        if (i == n || p[i] == 0) {
            f[k] = p + start; /* a missing field stays NULL (absent) */
            fl[k++] = i - start;
            start = i + 1;
        }
    struct rq_custom_creds c = {(const char *)f[0], fl[0], f[1], fl[1], (const char *)f[2], fl[2],
                                (const char *)f[3], fl[3], f[4], fl[4]};
    bool text_ok = (!f[0] || rq_utf8_valid(f[0], fl[0])) && (!f[2] || rq_utf8_valid(f[2], fl[2])) &&
                   (!f[3] || rq_utf8_valid(f[3], fl[3]));
    size_t len;
    const char *why = NULL;
    char *body = rq_custom_build_connect(&c, &len, &why);
    ENSURE(!body == !text_ok && (body || why));
    if (body) {
        cJSON *j = cJSON_Parse(body);
        ENSURE(j && strlen(body) == len);
        ENSURE(same_text(j, "type", "connect", 7));
        ENSURE(!f[0] || same_text(j, "username", c.username, fl[0]));
        ENSURE(!f[1] || same_b64(j, "password", f[1], fl[1]));
        ENSURE(!f[2] || same_text(j, "certs", c.certs, fl[2]));
        const cJSON *ea = cJSON_GetObjectItemCaseSensitive(j, "enhancedAuthentication");
        ENSURE(!f[3] == !ea);
        ENSURE(!f[3] || same_text(ea, "method", c.auth_method, fl[3]));
        ENSURE(!f[4] || same_b64(ea, "data", f[4], fl[4]));
        ENSURE(cJSON_GetArraySize(j) == 1 + !!f[0] + !!f[1] + !!f[2] + !!f[3]);
        cJSON_Delete(j);
        free(body);
    }
    body = rq_custom_build_auth(c.auth_method, fl[3], f[4], fl[4], &len, &why);
    ENSURE(!body == (!f[3] || !rq_utf8_valid(f[3], fl[3])));
    if (body) {
        cJSON *j = cJSON_Parse(body);
        ENSURE(j && same_text(j, "type", "auth", 4) && cJSON_GetArraySize(j) == 2);
        const cJSON *ea = cJSON_GetObjectItemCaseSensitive(j, "enhancedAuthentication");
        ENSURE(same_text(ea, "method", c.auth_method, fl[3]));
        ENSURE(!f[4] || same_b64(ea, "data", f[4], fl[4]));
        cJSON_Delete(j);
        free(body);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > RQ_CUSTOM_MAX_BODY + 2)
        return 0;
    uint8_t sel = data[0];
    switch (sel & 3) {
    case 0: fuzz_response(sel, data + 1, size - 1); break;
    case 1: fuzz_time(data + 1, size - 1); break;
    case 2: fuzz_headers(data + 1, size - 1); break;
    default: fuzz_build(data + 1, size - 1);
    }
    return 0;
}
