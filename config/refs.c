/* References between documents, resolved once every document is read (DESIGN 4):
 * - a Secret or ConfigMap name resolves to a document of the loaded YAML, or else to a directory
 *   mounted the way a Pod sees one, <config dir>/secrets/<name>/ or configmaps/<name>/, one file
 *   per key; the files are read into the snapshot now so that it is self-contained;
 * - what each reference needs is checked: a TLS Secret has tls.crt and tls.key, a CA ConfigMap
 *   holds a PEM certificate;
 * - a port's authenticationRef names a BrokerAuthentication whose methods the port can use;
 * then ports and methods get pointers to what they name. Errors sit at the reference.
 * It parses no YAML and no certificate. */
#include "config/config_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MOUNT_FILE (1u << 20) /* Kubernetes' limit for a whole Secret or ConfigMap */

static const char PEM_CERT[] = "-----BEGIN CERTIFICATE-----";

int rq_refs_add(struct rq_ld *ld, enum rq_ref_use use, const char *name, struct rq_pos pos,
                const char *note)
{
    void *p = rq_ld_reserve(ld->xrefs, ld->n_xrefs, &ld->xrefs_cap, sizeof *ld->xrefs);
    if (!p)
        return rq_ld_oom(ld);
    ld->xrefs = p;
    struct rq_ref *r = &ld->xrefs[ld->n_xrefs++];
    r->use = use;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->pos = pos;
    r->port = ld->cfg->n_ports; /* the port being walked gets this index */
    r->note = note;
    return 0;
}

int rq_refs_add_method(struct rq_ld *ld, size_t authn, size_t method, struct rq_pos pos)
{
    void *p = rq_ld_reserve(ld->method_pos, ld->n_method_pos, &ld->method_pos_cap,
                            sizeof *ld->method_pos);
    if (!p)
        return rq_ld_oom(ld);
    ld->method_pos = p;
    ld->method_pos[ld->n_method_pos++] = (struct rq_method_pos){authn, method, pos};
    return 0;
}

void rq_refs_free(struct rq_ld *ld)
{
    free(ld->xrefs);
    free(ld->method_pos);
}

/* ---- mounted directories --------------------------------------------------------------------- */

/* Hidden names are skipped: dotfiles, and the ..data / ..<timestamp> entries of the symlink farm
 * that the kubelet writes (each key is a symlink through ..data, followed below). */
static int visible(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Reads path (symlinks followed) into a new entry key of o when it is a regular file; anything
 * else (a subdirectory) is skipped. */
static int read_key(struct rq_ld *ld, const struct rq_ref *r, struct rq_config_object *o,
                    const char *path, const char *key)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return rq_walk_error_pos(ld, r->pos, "cannot read %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return 0;
    }
    if (!rq_schema_valid_key(key)) {
        close(fd);
        return rq_walk_error_pos(ld, r->pos,
                                 "%s: the file name is not a valid key (letters, digits, '-', '_' "
                                 "and '.')",
                                 path);
    }
    if (st.st_size > MAX_MOUNT_FILE) {
        close(fd);
        return rq_walk_error_pos(ld, r->pos, "%s is larger than %u bytes", path, MAX_MOUNT_FILE);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = 0;
    ssize_t got = 1;
    while (buf && n < (size_t)st.st_size && (got = read(fd, buf + n, (size_t)st.st_size - n)) > 0)
        n += (size_t)got;
    int e = errno;
    close(fd);
    int rc = !buf      ? rq_ld_oom(ld)
             : got < 0 ? rq_walk_error_pos(ld, r->pos, "cannot read %s: %s", path, strerror(e))
                       : rq_ld_push_entry(ld, &o->entries, &o->n_entries, key, buf, n);
    free(buf);
    return rc;
}

/* Reads <dir>/<sub>/<name>/ into a new object. Returns it, or NULL with *missing set when there
 * is no such directory (no error written), or NULL after an error. */
static struct rq_config_object *load_mount(struct rq_ld *ld, const struct rq_ref *r, int kind,
                                           const char *sub, bool *missing)
{
    char *dir;
    struct dirent **list;
    *missing = false;
    if (asprintf(&dir, "%s/%s/%s", strcmp(ld->config_dir, "/") ? ld->config_dir : "", sub,
                 r->name) < 0) {
        rq_ld_oom(ld);
        return NULL;
    }
    int n = scandir(dir, &list, visible, by_name);
    if (n < 0) {
        int e = errno;
        *missing = e == ENOENT || e == ENOTDIR;
        if (!*missing)
            rq_walk_error_pos(ld, r->pos, "cannot list %s: %s", dir, strerror(e));
        free(dir);
        return NULL;
    }
    struct rq_config_object *o = rq_ld_add_object(ld, kind);
    int rc = o ? 0 : -1;
    if (o) {
        o->mounted = true;
        o->origin = dir; /* owned by the snapshot from here */
        snprintf(o->name, sizeof o->name, "%s", r->name);
    } else {
        free(dir);
    }
    for (int i = 0; i < n; i++) {
        char *path = NULL;
        if (rc == 0 && asprintf(&path, "%s/%s", o->origin, list[i]->d_name) < 0)
            rc = rq_ld_oom(ld);
        else if (rc == 0)
            rc = read_key(ld, r, o, path, list[i]->d_name);
        free(path);
        free(list[i]);
    }
    free(list);
    return rc == 0 ? o : NULL;
}

/* ---- resolving ------------------------------------------------------------------------------- */

/* "defined at x.yaml:3:18" or "mounted at dir/secrets/x" into buf. */
static const char *origin(const struct rq_config_object *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s at %s", o->mounted ? "mounted" : "defined", o->origin ? o->origin : "?");
    return buf;
}

/* The object r names: a document, a mount read earlier, or a mount read now. */
static const struct rq_config_object *need_object(struct rq_ld *ld, const struct rq_ref *r,
                                                  int kind)
{
    bool secret = kind == RQ_CONFIG_SECRET;
    const char *what = secret ? "secret" : "configmap", *sub = secret ? "secrets" : "configmaps";
    const char *kind_name = secret ? "Secret" : "ConfigMap";
    const char *sep = r->note ? " (" : "", *note = r->note ? r->note : "",
               *end = r->note ? ")" : "";
    const struct rq_config_object *o = rq_config_find(ld->cfg, kind, r->name);
    bool missing = true;
    if (o)
        return o;
    if (ld->config_dir && (o = load_mount(ld, r, kind, sub, &missing)))
        return o;
    if (!missing)
        return NULL;
    if (!ld->config_dir) {
        rq_walk_error_pos(ld, r->pos,
                          "%s '%s' not found: no %s document named %s (a configuration read "
                          "from memory has no directory for %s/%s/)%s%s%s",
                          what, r->name, kind_name, r->name, sub, r->name, sep, note, end);
        return NULL;
    }
    const char *dir = strcmp(ld->config_dir, "/") ? ld->config_dir : "";
    rq_walk_error_pos(ld, r->pos,
                      "%s '%s' not found: no %s document named %s and no directory %s/%s/%s/%s%s%s",
                      what, r->name, kind_name, r->name, dir, sub, r->name, sep, note, end);
    return NULL;
}

static int check_tls_secret(struct rq_ld *ld, const struct rq_ref *r)
{
    char where[4400];
    const struct rq_config_object *o = need_object(ld, r, RQ_CONFIG_SECRET);
    if (!o)
        return -1;
    static const char *const keys[] = {"tls.crt", "tls.key"};
    for (size_t i = 0; i < 2; i++)
        if (!rq_config_object_get(o, keys[i]))
            return rq_walk_error_pos(ld, r->pos,
                                     "secret '%s' (%s) has no key %s (a TLS secret needs tls.crt "
                                     "and tls.key)",
                                     r->name, origin(o, where, sizeof where), keys[i]);
    return 0;
}

static int check_ca_bundle(struct rq_ld *ld, const struct rq_ref *r)
{
    char where[4400];
    const struct rq_config_object *o = need_object(ld, r, RQ_CONFIG_CONFIGMAP);
    if (!o)
        return -1;
    for (size_t i = 0; i < o->n_entries; i++)
        if (memmem(o->entries[i].value, o->entries[i].len, PEM_CERT, sizeof PEM_CERT - 1))
            return 0;
    return rq_walk_error_pos(ld, r->pos,
                             "configmap '%s' (%s) holds no PEM certificate (no value contains "
                             "%s)%s%s%s",
                             r->name, origin(o, where, sizeof where), PEM_CERT, r->note ? " (" : "",
                             r->note ? r->note : "", r->note ? ")" : "");
}

static struct rq_pos method_pos(const struct rq_ld *ld, size_t authn, size_t method)
{
    for (size_t i = 0; i < ld->n_method_pos; i++)
        if (ld->method_pos[i].authn == authn && ld->method_pos[i].method == method)
            return ld->method_pos[i].pos;
    return (struct rq_pos){ld->file, 0, 0}; /* not reached: every method records its position */
}

/* The BrokerAuthentication exists, and ringmq builds each of its methods for this port: X509
 * needs TLS on the port; Custom and ServiceAccountToken need nothing of the port. */
static int check_port_authn(struct rq_ld *ld, const struct rq_ref *r)
{
    const struct rq_config *c = ld->cfg;
    const struct rq_port_cfg *port = &c->ports[r->port];
    const struct rq_authn_cfg *a = rq_config_find_authn(c, r->name);
    if (!a)
        return rq_walk_error_pos(ld, r->pos,
                                 "authenticationRef '%s' does not name a BrokerAuthentication "
                                 "document",
                                 r->name);
    for (size_t i = 0; i < a->n_methods; i++) {
        struct rq_pos at = method_pos(ld, (size_t)(a - c->authns), i);
        int kind = a->methods[i].kind;
        if (kind == RQ_AUTHN_CUSTOM || kind == RQ_AUTHN_SAT)
            continue;
        if (port->tls.mode == RQ_TLS_NONE)
            return rq_walk_error_pos(ld, r->pos,
                                     "X509 authentication requires tls on port %u "
                                     "(BrokerAuthentication '%s' has method X509 at %s:%u:%u)",
                                     port->port, a->name, at.file, at.line, at.col);
    }
    return 0;
}

/* AIO applies a port's authorizationRef only together with an authenticationRef; ringmq
 * refuses the other case rather than ignoring the rules silently. */
static int check_port_authz(struct rq_ld *ld, const struct rq_ref *r)
{
    const struct rq_port_cfg *port = &ld->cfg->ports[r->port];
    if (!rq_config_find_authz(ld->cfg, r->name))
        return rq_walk_error_pos(ld, r->pos,
                                 "authorizationRef '%s' does not name a BrokerAuthorization "
                                 "document",
                                 r->name);
    if (!port->authn_name[0])
        return rq_walk_error_pos(ld, r->pos,
                                 "authorizationRef on port %u needs an authenticationRef too "
                                 "(authorization applies to authenticated clients only)",
                                 port->port);
    return 0;
}

/* Pointers from ports and methods to what they name; c->objects and c->authns no longer move. */
static void bind(struct rq_config *c)
{
    for (size_t i = 0; i < c->n_ports; i++) {
        struct rq_port_cfg *p = &c->ports[i];
        if (p->tls.mode == RQ_TLS_MANUAL)
            p->tls.secret = rq_config_find(c, RQ_CONFIG_SECRET, p->tls.secret_name);
        if (p->authn_name[0])
            p->authn = rq_config_find_authn(c, p->authn_name);
        if (p->authz_name[0])
            p->authz = rq_config_find_authz(c, p->authz_name);
    }
    for (size_t i = 0; i < c->n_authns; i++)
        for (size_t j = 0; j < c->authns[i].n_methods; j++) {
            struct rq_authn_method *m = &c->authns[i].methods[j];
            if (m->kind == RQ_AUTHN_SAT)
                m->sat.kube = &c->kube;
            if (m->kind == RQ_AUTHN_X509)
                m->x509.trusted_ca_obj = rq_config_find(c, RQ_CONFIG_CONFIGMAP, m->x509.trusted_ca);
            if (m->kind == RQ_AUTHN_CUSTOM && m->custom.ca_configmap[0])
                m->custom.ca = rq_config_find(c, RQ_CONFIG_CONFIGMAP, m->custom.ca_configmap);
            if (m->kind == RQ_AUTHN_CUSTOM && m->custom.client_secret[0])
                m->custom.client_cert =
                    rq_config_find(c, RQ_CONFIG_SECRET, m->custom.client_secret);
        }
}

int rq_refs_resolve(struct rq_ld *ld)
{
    for (size_t i = 0; i < ld->n_xrefs; i++) {
        const struct rq_ref *r = &ld->xrefs[i];
        int rc = r->use == RQ_REF_TLS_SECRET  ? check_tls_secret(ld, r)
                 : r->use == RQ_REF_CA_BUNDLE ? check_ca_bundle(ld, r)
                 : r->use == RQ_REF_AUTHZ     ? check_port_authz(ld, r)
                                              : check_port_authn(ld, r);
        if (rc < 0)
            return -1;
    }
    bind(ld->cfg);
    return 0;
}
