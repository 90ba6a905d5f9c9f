/* The authenticated principal and core's authentication verdict (see principal.h): allocation,
 * moves and release. No policy here. */
#include "core/principal.h"

#include <stdlib.h>
#include <string.h>

struct rq_principal *rq_principal_take(struct rq_principal *src)
{
    struct rq_principal *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    *p = *src;
    memset(src, 0, sizeof *src);
    return p;
}

void rq_principal_clear(struct rq_principal *p)
{
    free(p->username);
    for (size_t i = 0; i < p->n_attrs; i++) {
        free(p->keys[i]);
        free(p->values[i]);
    }
    free(p->keys);
    free(p->values);
    memset(p, 0, sizeof *p);
}

void rq_principal_free(struct rq_principal *p)
{
    if (!p)
        return;
    rq_principal_clear(p);
    free(p);
}

const char *rq_principal_attr(const struct rq_principal *p, const char *key)
{
    for (size_t i = 0; p && i < p->n_attrs; i++)
        if (strcmp(p->keys[i], key) == 0)
            return p->values[i];
    return NULL;
}

struct rq_auth_verdict *rq_auth_verdict_new(uint64_t conn, int result)
{
    struct rq_auth_verdict *v = calloc(1, sizeof *v);
    if (v) {
        v->conn = conn;
        v->result = result;
    }
    return v;
}

void rq_auth_verdict_free(struct rq_auth_verdict *v)
{
    if (!v)
        return;
    rq_principal_free(v->principal);
    free(v);
}
