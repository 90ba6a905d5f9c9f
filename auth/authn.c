/* The authentication method chain (see authn.h): ordering, relevance, pending answers. The
 * methods themselves live in their own files (x509.c, later sat.c and custom.c). */
#include "auth/authn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct method {
    const struct rq_authn_method_ops *ops;
    void *state;
    bool reauth; /* its check() handles re-authentication (rq_authn_chain_add_reauth) */
};

struct rq_authn_chain {
    char name[64];
    struct method *m;
    size_t n, cap;
};

struct rq_authn_chain *rq_authn_chain_new(const char *name)
{
    struct rq_authn_chain *ch = calloc(1, sizeof *ch);
    if (ch)
        snprintf(ch->name, sizeof ch->name, "%s", name);
    return ch;
}

static int add(struct rq_authn_chain *ch, const struct rq_authn_method_ops *ops, void *state,
               bool reauth)
{
    if (ch->n == ch->cap) {
        size_t ncap = ch->cap ? ch->cap * 2 : 4;
        struct method *nm = realloc(ch->m, ncap * sizeof *nm);
        if (!nm) {
            ops->free(state);
            return -ENOMEM;
        }
        ch->m = nm;
        ch->cap = ncap;
    }
    ch->m[ch->n++] = (struct method){ops, state, reauth};
    return 0;
}

int rq_authn_chain_add(struct rq_authn_chain *ch, const struct rq_authn_method_ops *ops,
                       void *state)
{
    return add(ch, ops, state, false);
}

int rq_authn_chain_add_reauth(struct rq_authn_chain *ch, const struct rq_authn_method_ops *ops,
                              void *state)
{
    return add(ch, ops, state, true);
}

void rq_authn_chain_free(struct rq_authn_chain *ch)
{
    if (!ch)
        return;
    for (size_t i = 0; i < ch->n; i++)
        ch->m[i].ops->free(ch->m[i].state);
    free(ch->m);
    free(ch);
}

const char *rq_authn_chain_name(const struct rq_authn_chain *ch)
{
    return ch->name;
}

size_t rq_authn_chain_len(const struct rq_authn_chain *ch)
{
    return ch->n;
}

bool rq_authn_chain_has(const struct rq_authn_chain *ch, const char *method)
{
    for (size_t i = 0; i < ch->n; i++)
        if (strcmp(ch->m[i].ops->name, method) == 0)
            return true;
    return false;
}

void rq_authn_outcome_init(struct rq_authn_outcome *o)
{
    memset(o, 0, sizeof *o);
}

void rq_authn_outcome_free(struct rq_authn_outcome *o)
{
    struct rq_principal *p = &o->principal;
    free(p->username);
    for (size_t i = 0; i < p->n_attrs; i++) {
        free(p->keys[i]);
        free(p->values[i]);
    }
    free(p->keys);
    free(p->values);
    memset(p, 0, sizeof *p);
}

int rq_principal_add_attr(struct rq_principal *p, const char *key, const char *value)
{
    char **nk = realloc(p->keys, (p->n_attrs + 1) * sizeof *nk);
    if (!nk)
        return -ENOMEM;
    p->keys = nk;
    char **nv = realloc(p->values, (p->n_attrs + 1) * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    p->values = nv;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    p->keys[p->n_attrs] = k;
    p->values[p->n_attrs] = v;
    p->n_attrs++;
    return 0;
}

/* Decides after method i answered: the first relevant method ends the chain. */
static int settle(const struct rq_authn_chain *ch, size_t i, struct rq_authn_outcome *o)
{
    o->method = ch->m[i].ops->name;
    if (o->verdict == RQ_AUTHN_DENY && o->reason < 0x80)
        o->reason = 0x87; /* Not authorized unless the method named a better code */
    if (o->verdict == RQ_AUTHN_ALLOW)
        o->principal.chain_pos = (uint32_t)i + 1; /* re-authentication runs this one again */
    return o->verdict;
}

int rq_authn_chain_run(const struct rq_authn_chain *ch, size_t start,
                       const struct rq_authn_creds *c, struct rq_authn_outcome *o,
                       size_t *pending_at)
{
    for (size_t i = start; i < ch->n; i++) {
        rq_authn_outcome_free(o);
        rq_authn_outcome_init(o);
        ch->m[i].ops->check(ch->m[i].state, c, o);
        if (o->verdict == RQ_AUTHN_NOT_RELEVANT)
            continue;
        if (o->verdict == RQ_AUTHN_PENDING) {
            *pending_at = i;
            o->method = ch->m[i].ops->name;
            return RQ_AUTHN_PENDING;
        }
        return settle(ch, i, o);
    }
    rq_authn_outcome_free(o);
    rq_authn_outcome_init(o);
    o->verdict = RQ_AUTHN_DENY;
    o->reason = 0x87;
    snprintf(o->why, sizeof o->why,
             "no method of authentication '%s' found the client's credentials relevant",
             ch->name);
    return RQ_AUTHN_DENY;
}

int rq_authn_chain_resume(const struct rq_authn_chain *ch, size_t pending_at,
                          const struct rq_authn_creds *c, struct rq_authn_outcome *o,
                          size_t *next_pending)
{
    if (pending_at >= ch->n)
        return RQ_AUTHN_DENY;
    if (o->verdict == RQ_AUTHN_ALLOW || o->verdict == RQ_AUTHN_DENY)
        return settle(ch, pending_at, o);
    return rq_authn_chain_run(ch, pending_at + 1, c, o, next_pending);
}

/* ---- re-authentication (authn.h) ---- */

int rq_authn_chain_reauth_resume(const struct rq_authn_chain *ch, size_t at,
                                 struct rq_authn_outcome *o)
{
    if (at >= ch->n)
        return RQ_AUTHN_DENY;
    if (o->verdict == RQ_AUTHN_ALLOW || o->verdict == RQ_AUTHN_DENY)
        return settle(ch, at, o);
    /* Not relevant, or a method that answered pending twice: undecided, never another method
     * (the client keeps what it authenticated with and may try again later). */
    if (o->verdict != RQ_AUTHN_NOT_RELEVANT) {
        rq_authn_outcome_free(o);
        o->verdict = RQ_AUTHN_NOT_RELEVANT;
    }
    o->method = ch->m[at].ops->name;
    return RQ_AUTHN_NOT_RELEVANT;
}

int rq_authn_chain_reauth(const struct rq_authn_chain *ch, size_t at,
                          const struct rq_authn_creds *c, struct rq_authn_outcome *o)
{
    rq_authn_outcome_free(o);
    rq_authn_outcome_init(o);
    if (at >= ch->n || !ch->m[at].reauth) {
        o->verdict = RQ_AUTHN_DENY;
        o->reason = 0x8C; /* Bad authentication method */
        o->method = at < ch->n ? ch->m[at].ops->name : NULL;
        snprintf(o->why, sizeof o->why, "%s%s cannot re-authenticate a client",
                 at < ch->n ? "method " : "", at < ch->n ? ch->m[at].ops->name : "no method");
        return RQ_AUTHN_DENY;
    }
    ch->m[at].ops->check(ch->m[at].state, c, o);
    if (o->verdict == RQ_AUTHN_PENDING) {
        o->method = ch->m[at].ops->name;
        return RQ_AUTHN_PENDING;
    }
    return rq_authn_chain_reauth_resume(ch, at, o);
}
