/* ServiceAccountToken messages: see sat_msg.h. JSON through cJSON, base64 through wolfCrypt. */
#include "auth/sat_msg.h"

#include "core/log.h"

#include <cjson/cJSON.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SA_PREFIX "system:serviceaccount:"
#define ANN_PREFIX "aio-broker-auth/"
#define ANN_LEGACY "aio-mq-broker-auth/"

bool rq_sat_relevant(const struct rq_authn_creds *c, const uint8_t **tok, size_t *len)
{
    const size_t ml = sizeof RQ_SAT_METHOD - 1;
    if (c->version == 5 && c->has_auth_method && c->auth_method_len == ml &&
        memcmp(c->auth_method, RQ_SAT_METHOD, ml) == 0) {
        *tok = c->auth_data;
        *len = c->auth_data ? c->auth_data_len : 0;
        return true;
    }
    if (c->has_username && c->username_len >= ml && memcmp(c->username, RQ_SAT_METHOD, ml) == 0) {
        *tok = c->has_password ? c->password : NULL;
        *len = c->has_password ? c->password_len : 0;
        return true;
    }
    return false;
}

const char *rq_sat_token_problem(const uint8_t *tok, size_t len)
{
    if (!tok || len == 0)
        return "no token (v5: Authentication Data; v3.1.1: the password)";
    if (len > RQ_SAT_MAX_TOKEN)
        return "token longer than 16384 bytes";
    for (size_t i = 0; i < len; i++)
        if (tok[i] <= 0x20 || tok[i] >= 0x7f)
            return "token holds bytes that no service account token has";
    return NULL;
}

char *rq_sat_review_body(const uint8_t *tok, size_t len, char *const *auds, size_t n_auds,
                         size_t *out_len)
{
    char *t = malloc(len + 1);
    cJSON *root = cJSON_CreateObject(), *spec = cJSON_CreateObject();
    cJSON *aud = cJSON_CreateArray();
    char *out = NULL;
    if (!t || !root || !spec || !aud)
        goto done;
    memcpy(t, tok, len);
    t[len] = '\0';
    cJSON_AddItemToObject(root, "apiVersion", cJSON_CreateString("authentication.k8s.io/v1"));
    cJSON_AddItemToObject(root, "kind", cJSON_CreateString("TokenReview"));
    cJSON_AddItemToObject(spec, "token", cJSON_CreateString(t));
    for (size_t i = 0; i < n_auds; i++)
        cJSON_AddItemToArray(aud, cJSON_CreateString(auds[i]));
    cJSON_AddItemToObject(spec, "audiences", aud);
    aud = NULL;
    cJSON_AddItemToObject(root, "spec", spec);
    spec = NULL;
    out = cJSON_PrintUnformatted(root);
    if (out)
        *out_len = strlen(out);
done:
    if (t) {
        explicit_bzero(t, len);
        free(t);
    }
    if (root) { /* the printed token inside cJSON's copy: wipe it before freeing */
        cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "spec"),
                                                    "token");
        if (cJSON_IsString(s) && s->valuestring)
            explicit_bzero(s->valuestring, strlen(s->valuestring));
    }
    cJSON_Delete(root);
    cJSON_Delete(spec);
    cJSON_Delete(aud);
    return out;
}

static cJSON *field(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static bool audience_ok(const cJSON *list, char *const *auds, size_t n)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, list)
    {
        if (!cJSON_IsString(a))
            continue;
        for (size_t i = 0; i < n; i++)
            if (strcmp(a->valuestring, auds[i]) == 0)
                return true;
    }
    return false;
}

/* system:serviceaccount:NS:NAME -> ns, name (DNS labels / subdomains: no ':'). */
static bool split_sa(const char *u, struct rq_sat_review *r)
{
    if (strncmp(u, SA_PREFIX, sizeof SA_PREFIX - 1) != 0)
        return false;
    const char *ns = u + sizeof SA_PREFIX - 1;
    const char *colon = strchr(ns, ':');
    if (!colon || colon == ns || (size_t)(colon - ns) >= sizeof r->ns || !colon[1] ||
        strchr(colon + 1, ':') || strlen(colon + 1) >= sizeof r->name)
        return false;
    for (const char *p = ns; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
              *p == ':'))
            return false;
    memcpy(r->ns, ns, (size_t)(colon - ns));
    r->ns[colon - ns] = '\0';
    snprintf(r->name, sizeof r->name, "%s", colon + 1);
    return true;
}

int rq_sat_parse_review(const char *body, size_t len, char *const *auds, size_t n_auds,
                        struct rq_sat_review *r, const char **why)
{
    memset(r, 0, sizeof *r);
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *status = field(root, "status");
    const cJSON *kind = field(root, "kind");
    int rc = -1;
    if (!cJSON_IsObject(root))
        *why = "the TokenReview answer is not a JSON object";
    else if (cJSON_IsString(kind) && strcmp(kind->valuestring, "TokenReview") != 0)
        *why = "the TokenReview answer has another kind";
    else if (!cJSON_IsObject(status))
        *why = "the TokenReview answer has no status";
    else
        rc = 0;
    if (rc == 0) {
        const cJSON *e = field(status, "error");
        if (cJSON_IsString(e) && e->valuestring[0])
            rq_log_escape_str(r->error, sizeof r->error, e->valuestring);
        r->authenticated = cJSON_IsTrue(field(status, "authenticated"));
        r->audience_ok = audience_ok(field(status, "audiences"), auds, n_auds);
        const cJSON *u = field(field(status, "user"), "username");
        if (cJSON_IsString(u) && strlen(u->valuestring) < sizeof r->username) {
            snprintf(r->username, sizeof r->username, "%s", u->valuestring);
            r->service_account = split_sa(r->username, r);
        }
    }
    cJSON_Delete(root);
    return rc;
}

/* Adds the annotations with prefix pre; skip_dupes: not when p has that name already. */
static int add_annotations(const cJSON *ann, const char *pre, bool skip_dupes,
                           struct rq_principal *p)
{
    size_t pl = strlen(pre);
    const cJSON *a;
    cJSON_ArrayForEach(a, ann)
    {
        if (!cJSON_IsString(a) || !a->string || strncmp(a->string, pre, pl) != 0 || !a->string[pl])
            continue;
        if (skip_dupes && rq_principal_attr(p, a->string + pl))
            continue;
        if (rq_principal_add_attr(p, a->string + pl, a->valuestring) != 0)
            return -ENOMEM;
    }
    return 0;
}

int rq_sat_parse_sa(const char *body, size_t len, struct rq_principal *p, const char **why)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *md = field(root, "metadata");
    const cJSON *kind = field(root, "kind");
    int rc = -1;
    if (!cJSON_IsObject(root) || !cJSON_IsObject(md))
        *why = "the ServiceAccount answer has no metadata";
    else if (cJSON_IsString(kind) && strcmp(kind->valuestring, "ServiceAccount") != 0)
        *why = "the ServiceAccount answer has another kind";
    else
        rc = 0;
    const cJSON *ann = rc == 0 ? field(md, "annotations") : NULL;
    if (cJSON_IsObject(ann)) {
        rc = add_annotations(ann, ANN_PREFIX, false, p);
        if (rc == 0)
            rc = add_annotations(ann, ANN_LEGACY, true, p);
    }
    cJSON_Delete(root);
    return rc;
}

int rq_sat_jwt_exp(const uint8_t *tok, size_t len, int64_t *exp)
{
    const uint8_t *d1 = memchr(tok, '.', len);
    const uint8_t *seg = d1 ? d1 + 1 : NULL;
    const uint8_t *d2 = seg ? memchr(seg, '.', len - (size_t)(seg - tok)) : NULL;
    if (!d2 || d2 == seg || (size_t)(d2 - seg) > RQ_SAT_MAX_TOKEN)
        return -1;
    size_t n = (size_t)(d2 - seg);
    char *b64 = malloc(n + 4);
    word32 olen = (word32)(n / 4 * 3 + 4);
    char *json = malloc(olen + 1);
    int rc = -1;
    if (!b64 || !json)
        goto out;
    for (size_t i = 0; i < n; i++) /* base64url -> base64, padded */
        b64[i] = seg[i] == '-' ? '+' : seg[i] == '_' ? '/' : (char)seg[i];
    size_t bl = n;
    while (bl % 4)
        b64[bl++] = '=';
    if (Base64_Decode((const byte *)b64, (word32)bl, (byte *)json, &olen) != 0)
        goto out;
    cJSON *root = cJSON_ParseWithLength(json, olen);
    const cJSON *e = field(root, "exp");
    if (cJSON_IsNumber(e) && isfinite(e->valuedouble) && e->valuedouble > 0 &&
        e->valuedouble < 1e12) {
        *exp = (int64_t)e->valuedouble;
        rc = 0;
    }
    cJSON_Delete(root);
out:
    free(b64);
    free(json);
    return rc;
}
