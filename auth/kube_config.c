/* The kubeconfig reader (kube_int.h rq_kube_from_kubeconfig): a YAML file with clusters, users
 * and contexts lists and a current-context (the format kubectl writes). Parsed with libyaml's
 * document API; only what reaching the API needs is read: cluster server and
 * certificate-authority(-data), user token / tokenFile / client-certificate(-data) /
 * client-key(-data). exec and auth-provider users are refused (ringmq runs no plugins). */
#include "auth/kube_int.h"

#include "config/config.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <yaml.h>

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct kc {
    yaml_document_t doc;
    const char *path;
    char dir[256];
};

static yaml_node_t *get(struct kc *c, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(&c->doc, p->value);
    }
    return NULL;
}

static const char *str(struct kc *c, yaml_node_t *map, const char *key)
{
    yaml_node_t *v = get(c, map, key);
    if (!v || v->type != YAML_SCALAR_NODE || v->data.scalar.length == 0)
        return NULL;
    return (const char *)v->data.scalar.value;
}

/* The `sub` mapping of the item called name in list `list` (clusters -> cluster, ...). */
static yaml_node_t *named(struct kc *c, const char *list, const char *name, const char *sub)
{
    yaml_node_t *seq = get(c, yaml_document_get_root_node(&c->doc), list);
    if (!seq || seq->type != YAML_SEQUENCE_NODE || !name)
        return NULL;
    for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top;
         i++) {
        yaml_node_t *item = yaml_document_get_node(&c->doc, *i);
        const char *n = str(c, item, "name");
        if (n && strcmp(n, name) == 0)
            return get(c, item, sub);
    }
    return NULL;
}

/* A path from the file: relative ones are relative to the kubeconfig's directory. */
static void full_path(struct kc *c, const char *p, char *out, size_t cap)
{
    if (p[0] == '/')
        snprintf(out, cap, "%s", p);
    else
        snprintf(out, cap, "%s/%s", c->dir, p);
}

/* base64 *-data field -> PEM text. */
static int from_data(const char *b64, char **dst, size_t *dlen, bool secret)
{
    size_t in = strlen(b64);
    word32 out = (word32)(in / 4 * 3 + 4);
    char *p = malloc(out + 1);
    if (!p)
        return -1;
    if (Base64_Decode((const byte *)b64, (word32)in, (byte *)p, &out) != 0) {
        rq_kube_wipe_free(p, in / 4 * 3 + 5);
        return -1;
    }
    p[out] = '\0';
    if (secret)
        rq_kube_wipe_free(*dst, *dlen);
    else
        free(*dst);
    *dst = p;
    *dlen = out;
    return 0;
}

/* field (a file) or field-data (base64) of map into *dst. */
static int material(struct kc *c, yaml_node_t *map, const char *field, char **dst, size_t *dlen,
                    bool secret, char *err, size_t errlen)
{
    char key[64], path[512];
    snprintf(key, sizeof key, "%s-data", field);
    const char *data = str(c, map, key);
    const char *file = str(c, map, field);
    if (data && from_data(data, dst, dlen, secret) != 0) {
        snprintf(err, errlen, "kubeconfig %s: %s is not valid base64", c->path, key);
        return -1;
    }
    if (!data && file) {
        full_path(c, file, path, sizeof path);
        return rq_kube_load_pem(path, dst, dlen, secret, err, errlen);
    }
    return 0;
}

static int read_user(struct kc *c, struct rq_kube *k, yaml_node_t *u, const char *uname, char *err,
                     size_t errlen)
{
    char path[512];
    if (material(c, u, "client-certificate", &k->cert, &k->cert_len, false, err, errlen) ||
        material(c, u, "client-key", &k->key, &k->key_len, true, err, errlen))
        return -1;
    const char *tok = str(c, u, "token");
    const char *tf = str(c, u, "tokenFile");
    if (tok) {
        if (!(k->token = strdup(tok)))
            return -1;
        k->token_len = strlen(tok);
    } else if (tf) {
        full_path(c, tf, path, sizeof path);
        if (!(k->token_path = strdup(path)))
            return -1;
    }
    if (!k->token && !k->token_path && !k->cert &&
        (get(c, u, "exec") || get(c, u, "auth-provider"))) {
        snprintf(err, errlen,
                 "kubeconfig %s: user '%s' gets its credentials from an exec or auth-provider "
                 "plugin, which ringmq does not run (give it a token, tokenFile or client "
                 "certificate, or set spec.ringmq.kubernetes.tokenFile)",
                 c->path, uname);
        return -1;
    }
    return 0;
}

static int read_context(struct kc *c, struct rq_kube *k, const char *want, char *err, size_t errlen)
{
    const char *ctx =
        want[0] ? want : str(c, yaml_document_get_root_node(&c->doc), "current-context");
    if (!ctx) {
        snprintf(err, errlen, "kubeconfig %s has no current-context", c->path);
        return -1;
    }
    yaml_node_t *cx = named(c, "contexts", ctx, "context");
    if (!cx) {
        snprintf(err, errlen, "kubeconfig %s has no context '%s'", c->path, ctx);
        return -1;
    }
    const char *cname = str(c, cx, "cluster"), *uname = str(c, cx, "user");
    yaml_node_t *cl = named(c, "clusters", cname, "cluster");
    const char *server = str(c, cl, "server");
    if (!cl || !server) {
        snprintf(err, errlen, "kubeconfig %s: context '%s' names no cluster with a server", c->path,
                 ctx);
        return -1;
    }
    if (!(k->server = strdup(server)) ||
        material(c, cl, "certificate-authority", &k->ca, &k->ca_len, false, err, errlen))
        return -1;
    yaml_node_t *u = uname ? named(c, "users", uname, "user") : NULL;
    if (uname && !u) {
        snprintf(err, errlen, "kubeconfig %s: context '%s' names user '%s', which is not there",
                 c->path, ctx, uname);
        return -1;
    }
    if (u && read_user(c, k, u, uname, err, errlen) != 0)
        return -1;
    snprintf(k->desc, sizeof k->desc, "kubeconfig %s, context %s (%s)", c->path, ctx, server);
    return 0;
}

/* Which file: the override, the first of $KUBECONFIG, ~/.kube/config. */
static void choose(const struct rq_kube_cfg *ov, char *path, size_t cap, bool *named_file)
{
    const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
    *named_file = true;
    if (ov->kubeconfig[0]) {
        snprintf(path, cap, "%s", ov->kubeconfig);
    } else if (env && *env) {
        size_t n = strcspn(env, ":");
        snprintf(path, cap, "%.*s", (int)n, env);
    } else {
        snprintf(path, cap, "%s/.kube/config", home && *home ? home : "/root");
        *named_file = false;
    }
}

int rq_kube_from_kubeconfig(struct rq_kube *k, const struct rq_kube_cfg *ov, char *looked,
                            size_t lookedlen, char *err, size_t errlen)
{
    char path[256], tmp[256];
    bool named_file;
    choose(ov, path, sizeof path, &named_file);
    size_t len = 0;
    char *text = rq_kube_read_file(path, 4u << 20, &len);
    if (!text) {
        if (errno == ENOENT && !named_file) {
            snprintf(looked, lookedlen, "no kubeconfig at %s", path);
            return 0;
        }
        snprintf(err, errlen, "kubeconfig %s: %s", path, strerror(errno));
        return -1;
    }
    struct kc c = {.path = path};
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(c.dir, sizeof c.dir, "%s", dirname(tmp));
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = -1;
    if (!yaml_parser_load(&p, &c.doc)) {
        snprintf(err, errlen, "kubeconfig %s:%zu:%zu: %s", path, p.problem_mark.line + 1,
                 p.problem_mark.column + 1, p.problem ? p.problem : "not YAML");
    } else {
        if (!yaml_document_get_root_node(&c.doc))
            snprintf(err, errlen, "kubeconfig %s is empty", path);
        else
            rc = read_context(&c, k, ov->context, err, errlen) == 0 ? 1 : -1;
        yaml_document_delete(&c.doc);
    }
    yaml_parser_delete(&p);
    rq_kube_wipe_free(text, len);
    if (rc < 0 && !err[0])
        snprintf(err, errlen, "out of memory");
    return rc;
}
