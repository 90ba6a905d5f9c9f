/* libFuzzer harness for the authorization rule compiler and matcher (auth/authz.c,
 * auth/authz_set.c).
 *
 * Input: lines split at '\n' (at most MAX_LINES). Lines up to the first empty one are patterns,
 * their first byte picking the method ('C' Connect client id, 'P' Publish topic, else Subscribe
 * topic), passed to the compiler unchecked (it must refuse what the loader would, and never
 * crash). The next line is the username; the lines up to the next empty one are attributes
 * "name=value"; the rest are topics and filters to ask about, the first of them also the client
 * id. Checks, against a reference written here with core/topic.c's rq_topic_match over the
 * filters substituted by plain string handling:
 *   - PUBLISH: a valid topic name is allowed exactly when some substituted Publish filter
 *     matches it;
 *   - SUBSCRIBE: when a valid filter is reported covered, every asked topic name it matches is
 *     matched by some substituted Subscribe filter (never more than the rules grant). */
#include "auth/authz.h"
#include "config/config.h"
#include "core/topic.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define FZ_ASSERT(c)                                                                               \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

enum { MAX_LINES = 24, MAX_SUBST = 512 };

struct line {
    const char *p;
    size_t len;
};

static char *dup_line(struct line l)
{
    char *s = malloc(l.len + 1);
    memcpy(s, l.p, l.len);
    s[l.len] = '\0';
    return s;
}

/* The value of token tok (whole "{...}") for the client, or NULL. */
static const char *value(const char *tok, size_t len, const struct rq_principal *p, const char *cid)
{
    static const char attr[] = "{principal.attributes.";
    if (len == 20 && memcmp(tok, "{principal.username}", 20) == 0)
        return p->username;
    if (len == 20 && memcmp(tok, "{principal.clientId}", 20) == 0)
        return cid;
    if (len > sizeof attr && memcmp(tok, attr, sizeof attr - 1) == 0 && tok[len - 1] == '}') {
        char name[256];
        size_t n = len - sizeof attr;
        if (n >= sizeof name)
            return NULL;
        memcpy(name, tok + sizeof attr - 1, n);
        name[n] = '\0';
        return rq_principal_attr(p, name);
    }
    return NULL;
}

/* Topic pattern t substituted level by level into out; false when it matches nothing (a value
 * missing, empty or holding '/', '+', '#', or starting with '$' as the first level) or is
 * not a filter. */
static bool substitute(const char *t, const struct rq_principal *p, const char *cid, char *out,
                       size_t cap)
{
    size_t n = strlen(t), o = 0;
    for (size_t i = 0; i <= n;) {
        const char *sl = memchr(t + i, '/', n - i);
        size_t e = sl ? (size_t)(sl - t) : n;
        const char *lv = t + i;
        size_t len = e - i;
        if (len && lv[0] == '{') {
            const char *v = value(lv, len, p, cid);
            if (!v || !*v || strpbrk(v, "/+#") || (i == 0 && v[0] == '$'))
                return false;
            lv = v;
            len = strlen(v);
        }
        if (o + len + 2 > cap)
            return false;
        memcpy(out + o, lv, len);
        o += len;
        if (e < n)
            out[o++] = '/';
        i = e + 1;
    }
    out[o] = '\0';
    const char *why;
    return rq_topic_filter_check((const uint8_t *)out, o, 0, &why) == 0 &&
           strncmp(out, "$share/", 7) != 0;
}

static bool reference(const struct rq_authz_resource *r, const struct rq_principal *p,
                      const char *cid, const char *topic)
{
    static char f[4096];
    for (size_t i = 0; i < r->n_patterns; i++)
        if (substitute(r->patterns[i], p, cid, f, sizeof f) &&
            rq_topic_match((const uint8_t *)f, strlen(f), (const uint8_t *)topic, strlen(topic)))
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct line ln[MAX_LINES];
    size_t n = 0;
    for (size_t i = 0; i <= size && n < MAX_LINES;) {
        const uint8_t *nl = i < size ? memchr(data + i, '\n', size - i) : NULL;
        size_t e = nl ? (size_t)(nl - data) : size;
        ln[n++] = (struct line){(const char *)data + i, e - i};
        i = e + 1;
    }
    struct rq_authz_resource res[3] = {
        {.method = RQ_AUTHZ_CONNECT}, {.method = RQ_AUTHZ_PUBLISH}, {.method = RQ_AUTHZ_SUBSCRIBE}};
    size_t k = 0;
    for (; k < n && ln[k].len; k++) {
        int m = ln[k].p[0] == 'C' ? 0 : ln[k].p[0] == 'P' ? 1 : 2;
        struct rq_authz_resource *r = &res[m];
        r->patterns = realloc(r->patterns, (r->n_patterns + 1) * sizeof *r->patterns);
        r->patterns[r->n_patterns++] = dup_line((struct line){ln[k].p + 1, ln[k].len - 1});
    }
    k++;
    struct rq_principal pr = {0};
    char *keys[MAX_LINES], *vals[MAX_LINES];
    if (k < n)
        pr.username = dup_line(ln[k++]);
    for (; k < n && ln[k].len; k++) {
        const char *eq = memchr(ln[k].p, '=', ln[k].len);
        if (!eq)
            continue;
        keys[pr.n_attrs] = dup_line((struct line){ln[k].p, (size_t)(eq - ln[k].p)});
        vals[pr.n_attrs++] =
            dup_line((struct line){eq + 1, ln[k].len - (size_t)(eq - ln[k].p) - 1});
    }
    pr.keys = keys;
    pr.values = vals;
    k++;
    char *cid = k < n ? dup_line(ln[k]) : strdup("cid");

    char *user_list[1] = {pr.username ? pr.username : (char *)"u"};
    struct rq_config_entry attrs[MAX_LINES];
    for (size_t i = 0; i < pr.n_attrs; i++)
        attrs[i] = (struct rq_config_entry){keys[i], vals[i], strlen(vals[i])};
    struct rq_authz_attrs set = {attrs, pr.n_attrs};
    struct rq_authz_rule rule = {.usernames = user_list,
                                 .n_usernames = 1,
                                 .attr_sets = &set,
                                 .n_attr_sets = pr.n_attrs ? 1 : 0,
                                 .resources = res,
                                 .n_resources = 3};
    struct rq_authz_cfg cfg = {.name = "fuzz", .rules = &rule, .n_rules = 1};
    char err[300];
    struct rq_authz *z = rq_authz_compile(&cfg, err, sizeof err);
    struct rq_access *a = NULL;
    char why[300];
    if (z && rq_authz_client(z, &pr, (const uint8_t *)cid, strlen(cid), &a, why, sizeof why) ==
                 RQ_AUTHZ_OK) {
        for (size_t i = k; i < n; i++) {
            char *t = dup_line(ln[i]);
            const char *w;
            size_t tl = strlen(t);
            if (tl == ln[i].len && rq_topic_name_valid((const uint8_t *)t, tl))
                FZ_ASSERT(a->ops->publish(a, (const uint8_t *)t, tl) ==
                          reference(&res[1], &pr, cid, t));
            if (tl == ln[i].len && rq_topic_filter_check((const uint8_t *)t, tl, 0, &w) == 0 &&
                strncmp(t, "$share/", 7) != 0 && a->ops->subscribe(a, (const uint8_t *)t, tl)) {
                for (size_t j = k; j < n; j++) {
                    char *u = dup_line(ln[j]);
                    size_t ul = strlen(u);
                    if (ul == ln[j].len && rq_topic_name_valid((const uint8_t *)u, ul) &&
                        rq_topic_match((const uint8_t *)t, tl, (const uint8_t *)u, ul))
                        FZ_ASSERT(reference(&res[2], &pr, cid, u));
                    free(u);
                }
            }
            free(t);
        }
    }
    rq_access_free(a);
    rq_authz_free(z);
    for (int m = 0; m < 3; m++) {
        for (size_t i = 0; i < res[m].n_patterns; i++)
            free(res[m].patterns[i]);
        free(res[m].patterns);
    }
    for (size_t i = 0; i < pr.n_attrs; i++) {
        free(keys[i]);
        free(vals[i]);
    }
    free(pr.username);
    free(cid);
    return 0;
}
