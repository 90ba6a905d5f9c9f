/* libFuzzer harness for auth/sat_msg (ServiceAccountToken messages).
 *
 * Input layout: byte 0 = mode (low 2 bits); the rest is the data.
 *  mode 0: a TokenReview answer. Checked: parsing never crashes; on success the texts are
 *          NUL-terminated within their arrays, error holds no control character (escaped), and a
 *          service account name came with a namespace and a name.
 *  mode 1: a ServiceAccount answer. Every attribute it gives is a non-empty name with a value,
 *          and parsing never crashes or leaks.
 *  mode 2: a token: rq_sat_jwt_exp never crashes and gives 0 < exp < 1e12; rq_sat_token_problem
 *          accepts only printable tokens; the review body of an accepted token parses back
 *          (cJSON) to the same token. */
#include "auth/sat_msg.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

/* NUL-terminated within max, no C0 control or DEL (escaped text may keep valid UTF-8). */
static bool printable(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    if (n == max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static void review(const char *d, size_t n)
{
    char *auds[] = {"aio-internal", "b"};
    struct rq_sat_review r;
    const char *why = NULL;
    if (rq_sat_parse_review(d, n, auds, 2, &r, &why) != 0) {
        ENSURE(why && printable(why, 200));
        return;
    }
    ENSURE(printable(r.error, sizeof r.error));
    ENSURE(strnlen(r.username, sizeof r.username) < sizeof r.username);
    if (r.service_account)
        ENSURE(r.ns[0] && r.name[0] && !strchr(r.ns, ':') && !strchr(r.name, ':'));
}

static void service_account(const char *d, size_t n)
{
    struct rq_principal p = {0};
    const char *why = NULL;
    int rc = rq_sat_parse_sa(d, n, &p, &why);
    (void)rc;
    for (size_t i = 0; i < p.n_attrs; i++) {
        ENSURE(p.keys[i][0] && p.values[i]);
    }
    rq_principal_clear(&p);
}

static void token(const uint8_t *d, size_t n)
{
    int64_t exp = 0;
    if (rq_sat_jwt_exp(d, n, &exp) == 0)
        ENSURE(exp > 0 && exp < 1000000000000LL);
    if (rq_sat_token_problem(d, n))
        return;
    for (size_t i = 0; i < n; i++)
        ENSURE(d[i] > 0x20 && d[i] < 0x7f);
    char *auds[] = {"a"};
    size_t blen = 0;
    char *body = rq_sat_review_body(d, n, auds, 1, &blen);
    if (!body)
        return;
    cJSON *root = cJSON_ParseWithLength(body, blen);
    const cJSON *t =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "spec"), "token");
    ENSURE(cJSON_IsString(t) && strlen(t->valuestring) == n && memcmp(t->valuestring, d, n) == 0);
    cJSON_Delete(root);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] & 3) {
    case 0: review((const char *)d, n); break;
    case 1: service_account((const char *)d, n); break;
    default: token(d, n); break;
    }
    return 0;
}
