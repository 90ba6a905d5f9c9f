/* Custom authentication API 0.5.0 messages: request bodies, response verdicts, RFC 3339 and
 * Cache-Control. See custom_msg.h for the contract.
 *
 * What it does not do: HTTP, TLS, caching, logging, choosing what the chain does with a verdict.
 *
 * Response handling is strict on shape and lenient on nothing that could widen access: a body
 * cJSON cannot read completely, a field of the wrong type, or a response over the bounds is a
 * failed response (not relevant), never a pass. */
#include "auth/custom_msg.h"

#include "core/codec.h"

#include <cjson/cJSON.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- request bodies --------------------------------------------------------------------- */

/* Standard base64 (RFC 4648 section 4, padded, no line breaks) as a malloc'd string. */
static char *b64(const uint8_t *p, size_t len)
{
    if (len > UINT32_MAX / 2)
        return NULL;
    size_t cap = (len + 2) / 3 * 4 + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    word32 olen = (word32)cap;
    if (len && Base64_Encode_NoNl(p, (word32)len, (byte *)out, &olen) != 0) {
        free(out);
        return NULL;
    }
    out[len ? olen : 0] = '\0';
    return out;
}

/* A JSON string must be valid UTF-8 and cJSON strings end at the first NUL. */
static bool text_ok(const char *s, size_t len)
{
    return !memchr(s, '\0', len) && rq_utf8_valid((const uint8_t *)s, len);
}

/* Adds key: string made from len bytes of s. Returns false on ENOMEM. */
static bool add_text(cJSON *obj, const char *key, const char *s, size_t len)
{
    char *z = malloc(len + 1);
    if (!z)
        return false;
    memcpy(z, s, len);
    z[len] = '\0';
    cJSON *item = cJSON_AddStringToObject(obj, key, z);
    free(z);
    return item != NULL;
}

/* The base64 copies of secrets: cJSON only references them, so they are wiped and freed here
 * after printing instead of going back to the allocator intact inside cJSON. */
struct secrets {
    char *s[2];
    int n;
};

static void secrets_free(struct secrets *sec)
{
    for (int i = 0; i < sec->n; i++) {
        explicit_bzero(sec->s[i], strlen(sec->s[i]));
        free(sec->s[i]);
    }
    sec->n = 0;
}

static bool add_b64(cJSON *obj, const char *key, const uint8_t *p, size_t len, struct secrets *sec)
{
    char *z = sec->n < 2 ? b64(p, len) : NULL;
    if (!z)
        return false;
    sec->s[sec->n++] = z;
    cJSON *item = cJSON_CreateStringReference(z);
    if (item && cJSON_AddItemToObject(obj, key, item))
        return true;
    cJSON_Delete(item);
    return false;
}

static bool add_enhanced(cJSON *root, const char *method, size_t method_len, const uint8_t *data,
                         size_t data_len, struct secrets *sec)
{
    cJSON *ea = cJSON_AddObjectToObject(root, "enhancedAuthentication");
    return ea && add_text(ea, "method", method, method_len) &&
           (!data || add_b64(ea, "data", data, data_len, sec));
}

/* Prints root unformatted; frees root and wipes the secrets' encodings. */
static char *finish(cJSON *root, bool ok, struct secrets *sec, size_t *len, const char **why)
{
    char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    secrets_free(sec);
    if (!out) {
        *why = "out of memory building the request";
        return NULL;
    }
    *len = strlen(out);
    return out;
}

char *rq_custom_build_connect(const struct rq_custom_creds *c, size_t *len, const char **why)
{
    if (c->username && !text_ok(c->username, c->username_len)) {
        *why = "username is not valid UTF-8";
        return NULL;
    }
    if (c->certs && !text_ok(c->certs, c->certs_len)) {
        *why = "certificate chain is not text";
        return NULL;
    }
    if (c->auth_method && !text_ok(c->auth_method, c->auth_method_len)) {
        *why = "authentication method is not valid UTF-8";
        return NULL;
    }
    if (c->auth_data && !c->auth_method) {
        *why = "authentication data without authentication method";
        return NULL;
    }
    struct secrets sec = {{NULL}, 0};
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddStringToObject(root, "type", "connect");
    if (ok && c->username)
        ok = add_text(root, "username", c->username, c->username_len);
    if (ok && c->password)
        ok = add_b64(root, "password", c->password, c->password_len, &sec);
    if (ok && c->certs)
        ok = add_text(root, "certs", c->certs, c->certs_len);
    if (ok && c->auth_method)
        ok = add_enhanced(root, c->auth_method, c->auth_method_len, c->auth_data, c->auth_data_len,
                          &sec);
    return finish(root, ok, &sec, len, why);
}

char *rq_custom_build_auth(const char *method, size_t method_len, const uint8_t *data,
                           size_t data_len, size_t *len, const char **why)
{
    if (!method || !text_ok(method, method_len)) {
        *why = method ? "authentication method is not valid UTF-8"
                      : "re-authentication without authentication method";
        return NULL;
    }
    struct secrets sec = {{NULL}, 0};
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddStringToObject(root, "type", "auth") &&
              add_enhanced(root, method, method_len, data, data_len, &sec);
    return finish(root, ok, &sec, len, why);
}

/* ---- RFC 3339 ----------------------------------------------------------------------------- */

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Reads exactly n digits at s[*i]; -1 if any is not a digit. */
static int digits(const char *s, size_t len, size_t *i, int n)
{
    int v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[*i] - '0');
    }
    return v;
}

static bool expect(const char *s, size_t len, size_t *i, const char *any)
{
    if (*i >= len || !s[*i] || !strchr(any, s[*i]))
        return false;
    (*i)++;
    return true;
}

/* time-offset: "Z" / ("+" / "-") hh ":" mm; *secs is the offset east of UTC. */
static int parse_offset(const char *s, size_t len, size_t *i, int64_t *secs)
{
    if (expect(s, len, i, "Zz")) {
        *secs = 0;
        return 0;
    }
    if (*i >= len || (s[*i] != '+' && s[*i] != '-'))
        return -1;
    int sign = s[(*i)++] == '-' ? -1 : 1;
    int hh = digits(s, len, i, 2);
    if (hh < 0 || hh > 23 || !expect(s, len, i, ":"))
        return -1;
    int mm = digits(s, len, i, 2);
    if (mm < 0 || mm > 59)
        return -1;
    /* "-00:00" (offset unknown) names a UTC time too (RFC 3339 4.3) */
    *secs = sign * (hh * 3600 + mm * 60);
    return 0;
}

int rq_rfc3339_parse(const char *s, size_t len, int64_t *out)
{
    if (!s || len > RQ_RFC3339_MAX_LEN)
        return -1;
    size_t i = 0;
    int y = digits(s, len, &i, 4);
    if (y < 0 || !expect(s, len, &i, "-"))
        return -1;
    int mo = digits(s, len, &i, 2);
    if (mo < 1 || mo > 12 || !expect(s, len, &i, "-"))
        return -1;
    int d = digits(s, len, &i, 2);
    if (d < 1 || d > days_in_month(y, mo) || !expect(s, len, &i, "Tt "))
        return -1;
    int h = digits(s, len, &i, 2);
    if (h < 0 || h > 23 || !expect(s, len, &i, ":"))
        return -1;
    int mi = digits(s, len, &i, 2);
    if (mi < 0 || mi > 59 || !expect(s, len, &i, ":"))
        return -1;
    int sec = digits(s, len, &i, 2);
    if (sec < 0 || sec > 60) /* 60: a leap second */
        return -1;
    if (expect(s, len, &i, ".")) { /* time-secfrac = "." 1*DIGIT, dropped */
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return -1;
    }
    int64_t off;
    if (parse_offset(s, len, &i, &off) < 0 || i != len)
        return -1;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    return 0;
}

int rq_rfc3339_format(int64_t t, char *buf, size_t size)
{
    if (size)
        buf[0] = '\0';
    /* 0000-01-01 .. 9999-12-31T23:59:59 */
    if (size < 21 || t < -62167219200LL || t > 253402300799LL)
        return -1;
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t secs = t - days * 86400;
    /* civil_from_days (H. Hinnant) */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int64_t y = yoe + era * 400 + (m <= 2);
    return snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", (int)y, m, d, (int)(secs / 3600),
                    (int)(secs / 60 % 60), (int)(secs % 60));
}

/* ---- responses ---------------------------------------------------------------------------- */

static void set_why(struct rq_custom_verdict *v, const char *fmt, int n)
{
    snprintf(v->why, sizeof v->why, fmt, n);
}

static void not_relevant(struct rq_custom_verdict *v, const char *why)
{
    v->outcome = RQ_CUSTOM_NOT_RELEVANT;
    snprintf(v->why, sizeof v->why, "%s", why);
}

/* cJSON turns the escape \u0000 into a NUL that silently ends the string ("admin\u0000x" would
 * read as "admin"): such bodies are refused whole. Walks escapes so "\\u0000" (an escaped
 * backslash, then text) is not mistaken for one. */
static bool has_nul_escape(const char *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] != '\\')
            continue;
        if (p[i + 1] == 'u' && i + 5 < len && !memcmp(p + i + 2, "0000", 4))
            return true;
        i++; /* skip the escaped character */
    }
    return false;
}

/* The body as one JSON object, or NULL with v->why set. Trailing bytes other than JSON
 * whitespace are refused (cJSON alone would ignore them). */
static cJSON *parse_object(const uint8_t *body, size_t len, struct rq_custom_verdict *v)
{
    if (len > RQ_CUSTOM_MAX_BODY) {
        set_why(v, "response body over %d bytes", RQ_CUSTOM_MAX_BODY);
        return NULL;
    }
    const char *p = (const char *)body;
    if (!len || memchr(p, '\0', len) || has_nul_escape(p, len)) {
        not_relevant(v, len ? "response body holds NUL" : "response body is empty");
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(p, len, &end, false);
    if (root && end)
        while (end < p + len && strchr(" \t\r\n", *end))
            end++;
    if (!root || !end || end != p + len || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        not_relevant(v, "response body is not one JSON object");
        return NULL;
    }
    return root;
}

/* "application/json", any letter case, optional parameters ("; charset=utf-8"). */
static bool is_json_type(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof want - 1;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* A string that can be stored: no NUL (checked on the body), valid UTF-8, at most max bytes. */
static bool str_ok(const cJSON *item, size_t max)
{
    if (!cJSON_IsString(item) || !item->valuestring)
        return false;
    size_t n = strlen(item->valuestring);
    return n <= max && rq_utf8_valid((const uint8_t *)item->valuestring, n);
}

static int read_attributes(const cJSON *obj, struct rq_custom_verdict *v)
{
    if (!obj || cJSON_IsNull(obj))
        return 0;
    if (!cJSON_IsObject(obj)) {
        not_relevant(v, "200 response: attributes is not an object");
        return -1;
    }
    int n = cJSON_GetArraySize(obj);
    if (n > RQ_CUSTOM_MAX_ATTRS) {
        set_why(v, "200 response: more than %d attributes", RQ_CUSTOM_MAX_ATTRS);
        return -1;
    }
    v->attrs = n ? calloc((size_t)n, sizeof *v->attrs) : NULL;
    if (n && !v->attrs) {
        not_relevant(v, "out of memory reading attributes");
        return -1;
    }
    int k = 0;
    for (const cJSON *it = obj->child; it; it = it->next, k++) {
        if (!str_ok(it, RQ_CUSTOM_MAX_ATTR_VALUE)) {
            set_why(v,
                    "200 response: attribute %d is not a string of valid UTF-8 within the "
                    "size limit",
                    k + 1);
            return -1;
        }
        size_t kl = it->string ? strlen(it->string) : 0;
        if (!kl || kl > RQ_CUSTOM_MAX_ATTR_KEY || !rq_utf8_valid((uint8_t *)it->string, kl)) {
            set_why(v, "200 response: attribute %d has an empty, overlong or invalid name", k + 1);
            return -1;
        }
        for (size_t j = 0; j < v->n_attrs; j++)
            if (!strcmp(v->attrs[j].key, it->string)) {
                set_why(v, "200 response: attribute %d repeats a name", k + 1);
                return -1;
            }
        v->attrs[k].key = strdup(it->string);
        v->attrs[k].value = strdup(it->valuestring);
        v->n_attrs++;
        if (!v->attrs[k].key || !v->attrs[k].value) {
            not_relevant(v, "out of memory reading attributes");
            return -1;
        }
    }
    return 0;
}

static void on_200(const cJSON *root, int64_t now, struct rq_custom_verdict *v)
{
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(root, "expiry");
    if (exp && !cJSON_IsNull(exp)) {
        if (!cJSON_IsString(exp) || !exp->valuestring ||
            rq_rfc3339_parse(exp->valuestring, strlen(exp->valuestring), &v->expiry) < 0) {
            not_relevant(v, "200 response: expiry is not an RFC 3339 date-time");
            return;
        }
        v->has_expiry = true;
    }
    if (read_attributes(cJSON_GetObjectItemCaseSensitive(root, "attributes"), v) < 0)
        return;
    if (v->has_expiry && v->expiry <= now) {
        /* credentials that have expired are denied, not passed on to the next method */
        v->outcome = RQ_CUSTOM_FAIL;
        v->reason = 0x87;
        v->rc311 = rq_custom_rc311(v->reason);
        snprintf(v->why, sizeof v->why, "200 response: expiry has already passed");
        return;
    }
    v->outcome = RQ_CUSTOM_PASS;
}

/* Reason codes a v5 CONNACK may carry (MQTT 5.0 section 3.2.2.2) at 0x80 and above. */
static bool connack_reason(int r)
{
    static const uint8_t ok[] = {0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
                                 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
    for (size_t i = 0; i < sizeof ok; i++)
        if (ok[i] == r)
            return true;
    return false;
}

uint8_t rq_custom_rc311(uint8_t reason)
{
    return reason == 0x86 ? 4 : 5;
}

/* Copy of at most RQ_CUSTOM_MAX_LOG_TEXT bytes of s, cut before a UTF-8 continuation byte. */
static char *log_text(const char *s)
{
    size_t n = strlen(s);
    if (n > RQ_CUSTOM_MAX_LOG_TEXT) {
        n = RQ_CUSTOM_MAX_LOG_TEXT;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return strndup(s, n);
}

static void on_403(const cJSON *root, struct rq_custom_verdict *v)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "reason");
    if (!cJSON_IsNumber(r) || r->valuedouble < 0 || r->valuedouble > 255 ||
        r->valuedouble != (double)(int)r->valuedouble) {
        not_relevant(v, "403 response: reason is not an integer 0..255");
        return;
    }
    int reason = (int)r->valuedouble;
    v->outcome = RQ_CUSTOM_FAIL;
    /* a 403 is always a deny: a success or non-CONNACK code would make the broker send a
     * CONNACK that accepts, or one a client cannot read */
    v->reason = connack_reason(reason) ? (uint8_t)reason : 0x87;
    v->rc311 = rq_custom_rc311(v->reason);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
    if (cJSON_IsString(m) && m->valuestring)
        v->message = log_text(m->valuestring);
    if (v->reason != reason)
        snprintf(v->why, sizeof v->why, "403 response: reason %d replaced by 0x87", reason);
    else
        snprintf(v->why, sizeof v->why, "403 response: reason 0x%02x", reason);
}

/* supportedVersions joined with ", " for the log (bounded); NULL if there are none. */
static void on_422(const cJSON *root, struct rq_custom_verdict *v)
{
    not_relevant(v, "422 response: api-version " RQ_CUSTOM_API_VERSION " not supported");
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(root, "supportedVersions");
    if (!cJSON_IsArray(sv))
        return;
    char buf[RQ_CUSTOM_MAX_LOG_TEXT + 1] = "";
    size_t used = 0;
    for (const cJSON *it = sv->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !it->valuestring)
            continue;
        int w = snprintf(buf + used, sizeof buf - used, "%s%s", used ? ", " : "", it->valuestring);
        if (w < 0 || (size_t)w >= sizeof buf - used)
            break;
        used += (size_t)w;
    }
    buf[used] = '\0';
    if (used)
        v->supported_versions = log_text(buf);
}

void rq_custom_parse_response(int status, const char *content_type, const uint8_t *body, size_t len,
                              int64_t now, struct rq_custom_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->outcome = RQ_CUSTOM_NOT_RELEVANT;
    if (status != 200 && status != 403 && status != 422) {
        set_why(v, "HTTP status %d", status);
        return;
    }
    /* 422 bodies are only read for the log, whatever their type */
    if (status != 422 && content_type && !is_json_type(content_type)) {
        set_why(v, "%d response with a Content-Type other than application/json", status);
        return;
    }
    cJSON *root = parse_object(body, len, v);
    if (!root) {
        if (status == 422)
            on_422(NULL, v);
        return;
    }
    if (status == 200)
        on_200(root, now, v);
    else if (status == 403)
        on_403(root, v);
    else
        on_422(root, v);
    cJSON_Delete(root);
    if (v->outcome != RQ_CUSTOM_PASS) { /* attributes only travel with a pass */
        for (size_t i = 0; i < v->n_attrs; i++) {
            free(v->attrs[i].key);
            free(v->attrs[i].value);
        }
        free(v->attrs);
        v->attrs = NULL;
        v->n_attrs = 0;
        if (v->outcome == RQ_CUSTOM_NOT_RELEVANT)
            v->has_expiry = false;
    }
}

void rq_custom_verdict_free(struct rq_custom_verdict *v)
{
    for (size_t i = 0; i < v->n_attrs; i++) {
        free(v->attrs[i].key);
        free(v->attrs[i].value);
    }
    free(v->attrs);
    free(v->message);
    free(v->supported_versions);
    memset(v, 0, sizeof *v);
}

/* ---- headers ------------------------------------------------------------------------------ */

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int rq_custom_header_match(const char *line, size_t len, const char *name, const char **value,
                           size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return 0;
    size_t a = n + 1, b = len;
    while (a < b && blank(line[a]))
        a++;
    while (b > a && blank(line[b - 1]))
        b--;
    *value = line + a;
    *vlen = b - a;
    return 1;
}

/* Reads delta-seconds (1*DIGIT, optionally quoted) at v[*i], capped at 2^31 (RFC 9111 1.2.2). */
static int delta_seconds(const char *v, size_t len, size_t *i, uint32_t *out)
{
    bool q = *i < len && v[*i] == '"';
    *i += q;
    size_t start = *i;
    uint64_t n = 0;
    for (; *i < len && v[*i] >= '0' && v[*i] <= '9'; (*i)++)
        if ((n = n * 10 + (uint64_t)(v[*i] - '0')) > 2147483648u)
            n = 2147483648u;
    if (*i == start || (q && (*i >= len || v[(*i)++] != '"')))
        return -1;
    *out = (uint32_t)n;
    return 0;
}

int rq_custom_max_age(const char *v, size_t len, uint32_t *max_age)
{
    bool have = false, bad = false;
    uint32_t age = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (blank(v[i]) || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != '=' && v[i] != ',' && !blank(v[i]))
            i++;
        size_t n = i - s;
        if ((n == 8 && !strncasecmp(v + s, "no-store", 8)) ||
            (n == 8 && !strncasecmp(v + s, "no-cache", 8)))
            bad = true;
        if (i < len && v[i] == '=') {
            i++;
            uint32_t a;
            if (n == 7 && !strncasecmp(v + s, "max-age", 7)) {
                if (delta_seconds(v, len, &i, &a) < 0 || (i < len && v[i] != ',' && !blank(v[i])) ||
                    (have && a != age))
                    bad = true;
                else
                    have = true, age = a;
            }
            /* skip the rest of this directive's value (token or quoted string) */
            bool q = false;
            for (; i < len && (q || v[i] != ','); i++)
                if (v[i] == '"')
                    q = !q;
        }
    }
    if (!have || bad || age == 0)
        return 0;
    *max_age = age;
    return 1;
}
