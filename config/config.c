/* Configuration loader: reads a YAML file or a directory of them with libyaml's document API,
 * checks each document's apiVersion and kind, walks it against its schema table (schema.c) and
 * builds one snapshot. Cross-document rules live here: one Broker, unique names per kind, each
 * port number once, brokerRef naming the Broker; references to Secrets, ConfigMaps and
 * BrokerAuthentications are resolved in refs.c. It opens no sockets and touches no globals; the
 * caller logs the ignored keys and decides what to do without listeners. Not thread-safe per load
 * (no shared state between loads, so loads on different threads are fine). */
#include "config/config_int.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE_BYTES (16u << 20)

static const char MQTTBROKER_V1[] = "mqttbroker.iotoperations.azure.com/v1";
static const char MQTTBROKER_V1BETA1[] = "mqttbroker.iotoperations.azure.com/v1beta1";

/* ---- snapshot -------------------------------------------------------------------------------- */

static struct rq_config *config_new(const char *source)
{
    struct rq_config *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->max_keepalive = 65535;
    c->max_receive_max = 65535;
    c->max_packet_size = 268435456;
    c->max_session_expiry = UINT32_MAX;
    c->max_message_expiry = UINT32_MAX;
    c->queue_limit = 1000;
    c->queue_strategy = RQ_QUEUE_NONE;
    c->log_level = RQ_LOG_INFO;
    c->threads = 0;
    c->max_connections = 100000;
    c->max_inflight = 100;
    c->max_topic_levels = 200; /* mosquitto's limit; matching is iterative at any depth */
    c->max_topic_alias = 64;
    c->shard_backlog = 32768;
    c->batch_wait_us = 200;
    c->setup_batch_wait_us = 1000;
    c->placement_enabled = true;
    c->placement_min_share_pct = 90;
    c->placement_max_moves = 100;
    c->placement_min_resident_s = 10;
    c->placement_max_busy_pct = 50;
    c->connect_timeout_ms = 10000;
    c->auth_threads = 2;
    c->auth_max_pending = 10000;
    c->auth_request_timeout_ms = 5000;
    c->auth_cache_entries = 100000;
    c->auth_negative_cache_s = 10;
    c->auth_sa_cache_s = 60;
    c->preconnect_conns = 10000;
    c->preconnect_bytes = 64u << 20;
    c->log_json = false;
    c->metrics_port = 9600;
    snprintf(c->metrics_bind, sizeof c->metrics_bind, "0.0.0.0");
    c->sys_topics = true;
    c->sys_interval_s = 10;
    snprintf(c->source, sizeof c->source, "%s", source);
    return c;
}

struct rq_config *rq_config_default(void)
{
    struct rq_config *c = config_new("(embedded default)");
    if (!c)
        return NULL;
    c->ports = calloc(1, sizeof *c->ports);
    if (!c->ports) {
        free(c);
        return NULL;
    }
    snprintf(c->metrics_bind, sizeof c->metrics_bind, "127.0.0.1"); /* this host only */
    c->ports[0] = (struct rq_port_cfg){.port = 1883, .bind_address = "127.0.0.1",
                                       .protocol = RQ_PROTO_MQTT, .listener = "default"};
    c->n_ports = 1;
    return c;
}

void rq_ld_free_entries(struct rq_config_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].key);
        free(e[i].value);
    }
    free(e);
}

void rq_ld_free_strs(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

void rq_ld_clear_tls(struct rq_tls_cfg *t)
{
    rq_ld_free_strs(t->automatic.dns, t->automatic.n_dns);
    rq_ld_free_strs(t->automatic.ip, t->automatic.n_ip);
    t->automatic.dns = t->automatic.ip = NULL;
    t->automatic.n_dns = t->automatic.n_ip = 0;
}

/* Every member is freed whatever the kind: unused ones are zero. */
static void free_method(struct rq_authn_method *m)
{
    for (size_t i = 0; i < m->x509.n_rules; i++) {
        free(m->x509.rules[i].name);
        free(m->x509.rules[i].subject);
        rq_ld_free_entries(m->x509.rules[i].attrs, m->x509.rules[i].n_attrs);
    }
    free(m->x509.rules);
    rq_ld_free_strs(m->sat.audiences, m->sat.n_audiences);
    free(m->custom.endpoint);
    rq_ld_free_entries(m->custom.headers, m->custom.n_headers);
}

void rq_config_free(struct rq_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_objects; i++) {
        rq_ld_free_entries(c->objects[i].entries, c->objects[i].n_entries);
        free(c->objects[i].origin);
    }
    for (size_t i = 0; i < c->n_ports; i++)
        rq_ld_clear_tls(&c->ports[i].tls);
    for (size_t i = 0; i < c->n_authns; i++) {
        for (size_t j = 0; j < c->authns[i].n_methods; j++)
            free_method(&c->authns[i].methods[j]);
        free(c->authns[i].methods);
    }
    free(c->authns);
    for (size_t i = 0; i < c->n_authzs; i++)
        rq_schema_authz_free(&c->authzs[i]);
    free(c->authzs);
    for (size_t i = 0; i < c->n_ignored; i++) {
        free(c->ignored[i].key);
        free(c->ignored[i].where);
    }
    free(c->objects);
    free(c->ignored);
    free(c->ports);
    free(c);
}

const struct rq_config_object *rq_config_find(const struct rq_config *c, int kind, const char *name)
{
    for (size_t i = 0; c && name && i < c->n_objects; i++)
        if (c->objects[i].kind == kind && strcmp(c->objects[i].name, name) == 0)
            return &c->objects[i];
    return NULL;
}

const struct rq_config_entry *rq_config_object_get(const struct rq_config_object *o,
                                                   const char *key)
{
    for (size_t i = 0; o && key && i < o->n_entries; i++)
        if (strcmp(o->entries[i].key, key) == 0)
            return &o->entries[i];
    return NULL;
}

const struct rq_authz_cfg *rq_config_find_authz(const struct rq_config *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->n_authzs; i++)
        if (strcmp(c->authzs[i].name, name) == 0)
            return &c->authzs[i];
    return NULL;
}

const struct rq_authn_cfg *rq_config_find_authn(const struct rq_config *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->n_authns; i++)
        if (strcmp(c->authns[i].name, name) == 0)
            return &c->authns[i];
    return NULL;
}

/* ---- helpers for the schemas ----------------------------------------------------------------- */

/* Growth without a capacity field: 4, then doubling whenever n reaches a power of two. */
static void *grow(void *arr, size_t n, size_t elem)
{
    if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
        return arr;
    return realloc(arr, (n ? n * 2 : 4) * elem);
}

int rq_ld_push_entry(struct rq_ld *ld, struct rq_config_entry **arr, size_t *n, const char *key,
                     const char *value, size_t len)
{
    struct rq_config_entry *a = grow(*arr, *n, sizeof **arr);
    if (!a)
        return rq_ld_oom(ld);
    *arr = a;
    struct rq_config_entry *e = &a[*n];
    e->key = strdup(key);
    e->value = malloc(len + 1);
    if (!e->key || !e->value) {
        free(e->key);
        free(e->value);
        return rq_ld_oom(ld);
    }
    if (len)
        memcpy(e->value, value, len);
    e->value[len] = '\0';
    e->len = len;
    (*n)++;
    return 0;
}

int rq_ld_push_str(struct rq_ld *ld, char ***arr, size_t *n, const char *s)
{
    char **a = grow(*arr, *n, sizeof **arr);
    if (!a)
        return rq_ld_oom(ld);
    *arr = a;
    if (!(a[*n] = strdup(s)))
        return rq_ld_oom(ld);
    (*n)++;
    return 0;
}

void *rq_ld_reserve(void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(arr, ncap * elem);
    if (p)
        *cap = ncap;
    return p;
}

static int plain_error(struct rq_ld *ld, const char *fmt, ...)
{
    if (ld->failed)
        return -1;
    ld->failed = true;
    if (ld->err && ld->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ld->err, ld->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int rq_ld_oom(struct rq_ld *ld)
{
    return plain_error(ld, "%s: out of memory", ld->file ? ld->file : ld->cfg->source);
}

int rq_ld_add_port(struct rq_ld *ld, const struct rq_port_cfg *p, struct rq_pos pos)
{
    struct rq_config *c = ld->cfg;
    for (size_t i = 0; i < c->n_ports; i++)
        if (c->ports[i].port == p->port)
            return rq_walk_error_pos(ld, pos,
                                     "port %u is already used at %s:%u:%u (a port number may "
                                     "appear only once across all listeners)",
                                     p->port, ld->port_pos[i].file, ld->port_pos[i].line,
                                     ld->port_pos[i].col);
    void *ports = rq_ld_reserve(c->ports, c->n_ports, &ld->ports_cap, sizeof *c->ports);
    if (ports)
        c->ports = ports;
    void *pp = rq_ld_reserve(ld->port_pos, c->n_ports, &ld->port_pos_cap, sizeof *ld->port_pos);
    if (pp)
        ld->port_pos = pp;
    if (!ports || !pp)
        return rq_ld_oom(ld);
    ld->port_pos[c->n_ports] = pos;
    c->ports[c->n_ports++] = *p;
    return 0;
}

int rq_ld_add_ignored(struct rq_ld *ld, const yaml_node_t *key)
{
    struct rq_config *c = ld->cfg;
    void *p = rq_ld_reserve(c->ignored, c->n_ignored, &ld->ignored_cap, sizeof *c->ignored);
    if (!p)
        return rq_ld_oom(ld);
    c->ignored = p;
    struct rq_pos pos = rq_walk_pos(ld, key);
    struct rq_config_ignored *ig = &c->ignored[c->n_ignored];
    ig->key = strdup(ld->path);
    if (asprintf(&ig->where, "%s:%u:%u", pos.file, pos.line, pos.col) < 0)
        ig->where = NULL;
    if (!ig->key || !ig->where) {
        free(ig->key);
        free(ig->where);
        return rq_ld_oom(ld);
    }
    c->n_ignored++;
    return 0;
}

struct rq_config_object *rq_ld_add_object(struct rq_ld *ld, int kind)
{
    struct rq_config *c = ld->cfg;
    void *p = rq_ld_reserve(c->objects, c->n_objects, &ld->objects_cap, sizeof *c->objects);
    if (!p) {
        rq_ld_oom(ld);
        return NULL;
    }
    c->objects = p;
    struct rq_config_object *o = &c->objects[c->n_objects++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    ld->doc.obj = o;
    return o;
}

/* ---- one document ---------------------------------------------------------------------------- */

static bool is_empty_document(const yaml_node_t *root)
{
    return root->type == YAML_SCALAR_NODE && rq_walk_is_null(root);
}

static int check_api_version(struct rq_ld *ld, const struct rq_kind *k, yaml_node_t *api)
{
    char t[80];
    rq_walk_set_key(ld, "apiVersion");
    if (rq_walk_string(ld, api, NULL, 0) < 0)
        return -1;
    const char *v = (const char *)api->data.scalar.value;
    if (k->core_v1 ? strcmp(v, "v1") == 0
                   : strcmp(v, MQTTBROKER_V1) == 0 || strcmp(v, MQTTBROKER_V1BETA1) == 0)
        return 0;
    if (k->core_v1)
        return rq_walk_error(ld, api, "apiVersion '%s' is not valid for kind %s (expected v1)",
                             rq_walk_text(api, t, sizeof t), k->name);
    return rq_walk_error(ld, api, "apiVersion '%s' is not valid for kind %s (expected %s or %s)",
                         rq_walk_text(api, t, sizeof t), k->name, MQTTBROKER_V1,
                         MQTTBROKER_V1BETA1);
}

/* Finds the kind of the document; errors name the kind node or the document. */
static const struct rq_kind *find_kind(struct rq_ld *ld, yaml_node_t *root)
{
    char t[80];
    yaml_node_t *kn = rq_walk_find(ld, root, "kind");
    if (!kn) {
        rq_walk_error(ld, root, "missing required key 'kind' (every document needs apiVersion "
                                "and kind)");
        return NULL;
    }
    rq_walk_set_key(ld, "kind");
    if (rq_walk_string(ld, kn, NULL, 0) < 0)
        return NULL;
    const char *name = (const char *)kn->data.scalar.value;
    const struct rq_kind *k = rq_schema_kind(name, false);
    if (k) {
        ld->doc.kind_pos = rq_walk_pos(ld, kn);
        return k;
    }
    const char *later = rq_schema_unsupported(name);
    const struct rq_kind *hint = rq_schema_kind(name, true);
    if (later)
        rq_walk_error(ld, kn, "kind %s is not supported yet", later);
    else if (hint)
        rq_walk_error(ld, kn, "unknown kind '%s' (did you mean %s?)", rq_walk_text(kn, t, 80),
                      hint->name);
    else
        rq_walk_error(ld, kn, "unknown kind '%s' (expected %s)", rq_walk_text(kn, t, sizeof t),
                      rq_schema_kind_list());
    return NULL;
}

/* Unique names per kind (one Broker at all), kept with positions for the messages. */
static int register_name(struct rq_ld *ld)
{
    struct rq_doc *d = &ld->doc;
    for (size_t i = 0; i < ld->n_named; i++) {
        struct rq_named *n = &ld->named[i];
        if (n->kind != d->kind)
            continue;
        if (d->kind->id == RQ_KIND_BROKER)
            return rq_walk_error_pos(ld, d->kind_pos,
                                     "only one Broker is allowed (another is defined at %s:%u:%u)",
                                     n->pos.file, n->pos.line, n->pos.col);
        if (strcmp(n->name, d->name) == 0)
            return rq_walk_error_pos(ld, d->name_pos,
                                     "%s '%s' is defined twice (first at %s:%u:%u)", d->kind->name,
                                     d->name, n->pos.file, n->pos.line, n->pos.col);
    }
    void *p = rq_ld_reserve(ld->named, ld->n_named, &ld->named_cap, sizeof *ld->named);
    if (!p)
        return rq_ld_oom(ld);
    ld->named = p;
    struct rq_named *n = &ld->named[ld->n_named++];
    n->kind = d->kind;
    memcpy(n->name, d->name, sizeof n->name);
    n->pos = d->kind->id == RQ_KIND_BROKER ? d->kind_pos : d->name_pos;
    return 0;
}

static int add_broker_ref(struct rq_ld *ld)
{
    void *p = rq_ld_reserve(ld->refs, ld->n_refs, &ld->refs_cap, sizeof *ld->refs);
    if (!p)
        return rq_ld_oom(ld);
    ld->refs = p;
    struct rq_named *r = &ld->refs[ld->n_refs++];
    r->kind = ld->doc.kind;
    memcpy(r->name, ld->doc.broker_ref, sizeof r->name);
    r->pos = ld->doc.ref_pos;
    return 0;
}

static int end_document(struct rq_ld *ld)
{
    struct rq_doc *d = &ld->doc;
    struct rq_config *c = ld->cfg;
    if (register_name(ld) < 0)
        return -1;
    switch (d->kind->id) {
    case RQ_KIND_BROKER:
        memcpy(c->broker_name, d->name, sizeof c->broker_name); /* names are <= 63 here */
        return 0;
    case RQ_KIND_LISTENER:
        for (size_t i = d->first_port; i < c->n_ports; i++)
            memcpy(c->ports[i].listener, d->name, sizeof c->ports[i].listener);
        return d->broker_ref[0] ? add_broker_ref(ld) : 0;
    case RQ_KIND_AUTHN:
        memcpy(d->authn->name, d->name, sizeof d->authn->name); /* names are <= 63 here */
        return 0;
    case RQ_KIND_AUTHZ:
        memcpy(d->authz->name, d->name, sizeof d->authz->name);
        return 0;
    default:
        memcpy(d->obj->name, d->name, sizeof d->obj->name);
        memcpy(d->obj->ns, d->ns, sizeof d->obj->ns);
        if (asprintf(&d->obj->origin, "%s:%u:%u", d->name_pos.file, d->name_pos.line,
                     d->name_pos.col) < 0) {
            d->obj->origin = NULL;
            return rq_ld_oom(ld);
        }
        return 0;
    }
}

static int load_document(struct rq_ld *ld, yaml_node_t *root)
{
    char d[80];
    if (is_empty_document(root))
        return 0;
    if (root->type != YAML_MAPPING_NODE)
        return rq_walk_error(ld, root, "a document must be a mapping with apiVersion and kind, "
                                       "got %s",
                             root->type == YAML_SEQUENCE_NODE ? "a list"
                                                              : rq_walk_text(root, d, sizeof d));
    memset(&ld->doc, 0, sizeof ld->doc);
    ld->path_len = 0;
    ld->path[0] = '\0';
    if (rq_walk_check_keys(ld, root) < 0)
        return -1;
    const struct rq_kind *k = find_kind(ld, root);
    if (!k)
        return -1;
    yaml_node_t *api = rq_walk_find(ld, root, "apiVersion");
    if (!api)
        return rq_walk_error(ld, root, "missing required key 'apiVersion' in %s", k->name);
    if (check_api_version(ld, k, api) < 0)
        return -1;
    ld->doc.kind = k;
    ld->doc.first_port = ld->cfg->n_ports;
    if (k->begin && k->begin(ld) < 0)
        return -1;
    if (rq_walk_map(ld, root, k->fields, ld->doc.obj) < 0)
        return -1;
    return end_document(ld);
}

/* ---- streams, files, directories ------------------------------------------------------------- */

static int syntax_error(struct rq_ld *ld, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return rq_ld_oom(ld);
    if (p->error == YAML_READER_ERROR) { /* only a byte offset: count lines up to it */
        unsigned line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < ld->len; i++, col++)
            if (ld->data[i] == '\n') {
                line++;
                col = 0;
            }
        return plain_error(ld, "%s:%u:%u: invalid input: %s", ld->file, line, col, p->problem);
    }
    struct rq_pos at = {ld->file, (unsigned)p->problem_mark.line + 1,
                        (unsigned)p->problem_mark.column + 1};
    if (!p->context)
        return rq_walk_error_pos(ld, at, "YAML syntax error: %s", p->problem);
    return rq_walk_error_pos(ld, at, "YAML syntax error: %s (%s at %u:%u)", p->problem,
                             p->context, (unsigned)p->context_mark.line + 1,
                             (unsigned)p->context_mark.column + 1);
}

/* Each '---' document in turn; the document is freed before the next is parsed. */
static int load_stream(struct rq_ld *ld, const char *name, const char *data, size_t len)
{
    yaml_parser_t p;
    ld->file = name;
    ld->data = data;
    ld->len = len;
    if (!yaml_parser_initialize(&p))
        return rq_ld_oom(ld);
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
    int rc = 0;
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&p, &doc)) {
            rc = syntax_error(ld, &p);
            break;
        }
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        ld->ydoc = &doc;
        rc = root ? load_document(ld, root) : 0;
        ld->ydoc = NULL;
        yaml_document_delete(&doc);
        if (!root || rc < 0)
            break;
    }
    yaml_parser_delete(&p);
    return rc;
}

/* Keeps name alive for the positions that point into it. */
static const char *keep_name(struct rq_ld *ld, char *name)
{
    void *p = rq_ld_reserve(ld->files, ld->n_files, &ld->files_cap, sizeof *ld->files);
    if (!p) {
        free(name);
        return NULL;
    }
    ld->files = p;
    ld->files[ld->n_files++] = name;
    return name;
}

static int read_all(struct rq_ld *ld, const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return plain_error(ld, "%s: cannot open: %s", path, strerror(e));
    }
    if (st.st_size > MAX_FILE_BYTES) {
        close(fd);
        return plain_error(ld, "%s: file too large (over %u bytes)", path, MAX_FILE_BYTES);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = 0;
    ssize_t r = 1;
    while (buf && n < (size_t)st.st_size && (r = read(fd, buf + n, (size_t)st.st_size - n)) > 0)
        n += (size_t)r;
    int e = errno;
    close(fd);
    if (!buf || r < 0) {
        free(buf);
        return buf ? plain_error(ld, "%s: cannot read: %s", path, strerror(e)) : rq_ld_oom(ld);
    }
    *out = buf;
    *len = n;
    return 0;
}

static int load_file(struct rq_ld *ld, const char *path)
{
    char *data = NULL;
    size_t len = 0;
    if (read_all(ld, path, &data, &len) < 0)
        return -1;
    int rc = load_stream(ld, path, data, len);
    free(data);
    return rc;
}

static int yaml_name(const struct dirent *e)
{
    size_t l = strlen(e->d_name);
    if (e->d_name[0] == '.')
        return 0;
    return (l > 5 && strcmp(e->d_name + l - 5, ".yaml") == 0) ||
           (l > 4 && strcmp(e->d_name + l - 4, ".yml") == 0);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* One directory entry; symlinks are followed (mounted ConfigMaps are symlinks), anything that
 * is not then a regular file is skipped. */
static int load_dir_entry(struct rq_ld *ld, const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    char *path;
    struct stat st;
    if (asprintf(&path, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name) < 0 ||
        !keep_name(ld, path))
        return rq_ld_oom(ld);
    /* A *.yaml name that leads nowhere (a dangling symlink, a file removed while listing) is an
     * error, not a skipped file: a document silently left out could drop a listener or an
     * authentication setting on reload. */
    if (stat(path, &st) < 0)
        return plain_error(ld, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return 0;
    return load_file(ld, path);
}

/* *.yaml and *.yml directly in dir, by name; subfolders (secrets/, configmaps/) are not read. */
static int load_dir(struct rq_ld *ld, const char *dir)
{
    struct dirent **list;
    int n = scandir(dir, &list, yaml_name, by_name);
    if (n < 0)
        return plain_error(ld, "%s: cannot list directory: %s", dir, strerror(errno));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            rc = load_dir_entry(ld, dir, list[i]->d_name);
        free(list[i]);
    }
    free(list);
    return rc;
}

/* Rules that need every document: a brokerRef must name the Broker when there is one; the
 * references to Secrets, ConfigMaps and BrokerAuthentications resolve (refs.c). */
/* An authentication request must end before the CONNECT it answers times out, so that its
 * verdict (or the fall-through to the next method) still reaches the client. */
static int check_auth_timeout(struct rq_ld *ld)
{
    struct rq_config *c = ld->cfg;
    if (c->auth_request_timeout_ms < c->connect_timeout_ms)
        return 0;
    if (ld->auth_timeout_set)
        return rq_walk_error_pos(ld, ld->auth_timeout_pos,
                                 "requestTimeoutSeconds (%u) must be below connectTimeoutSeconds "
                                 "(%u)",
                                 c->auth_request_timeout_ms / 1000, c->connect_timeout_ms / 1000);
    /* the default (5 s) with a short connect timeout: one second less, or half of it */
    c->auth_request_timeout_ms = c->connect_timeout_ms > 1000 ? c->connect_timeout_ms - 1000
                                                               : c->connect_timeout_ms / 2;
    return 0;
}

static int finalize(struct rq_ld *ld)
{
    if (check_auth_timeout(ld) != 0)
        return -1;
    const char *broker = ld->cfg->broker_name;
    for (size_t i = 0; broker[0] && i < ld->n_refs; i++)
        if (strcmp(ld->refs[i].name, broker) != 0)
            return rq_walk_error_pos(ld, ld->refs[i].pos,
                                     "brokerRef '%s' does not name the Broker '%s'",
                                     ld->refs[i].name, broker);
    return rq_refs_resolve(ld);
}

static struct rq_config *ld_end(struct rq_ld *ld, int rc)
{
    if (rc == 0)
        rc = finalize(ld);
    for (size_t i = 0; i < ld->n_files; i++)
        free(ld->files[i]);
    free(ld->files);
    free(ld->port_pos);
    free(ld->named);
    free(ld->refs);
    rq_refs_free(ld);
    free(ld->config_dir);
    if (rc == 0)
        return ld->cfg;
    rq_config_free(ld->cfg);
    return NULL;
}

/* The directory that holds secrets/ and configmaps/: path itself, or the directory of the file,
 * without a trailing slash ("/" stays "/"). */
static char *config_dir(const char *path, bool is_dir)
{
    char *d = strdup(path);
    if (!d)
        return NULL;
    if (!is_dir) {
        char *slash = strrchr(d, '/');
        if (!slash) {
            free(d);
            return strdup(".");
        }
        slash[slash == d] = '\0';
    }
    for (size_t l = strlen(d); l > 1 && d[l - 1] == '/'; l--)
        d[l - 1] = '\0';
    return d;
}

struct rq_config *rq_config_load(const char *path, char *err, size_t errlen)
{
    struct rq_ld ld = {.err = err, .errlen = errlen};
    struct stat st;
    if (err && errlen)
        err[0] = '\0';
    if (stat(path, &st) < 0) {
        plain_error(&ld, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    ld.cfg = config_new(path);
    ld.config_dir = config_dir(path, S_ISDIR(st.st_mode));
    if (!ld.cfg || !ld.config_dir) {
        plain_error(&ld, "%s: out of memory", path);
        free(ld.config_dir);
        rq_config_free(ld.cfg);
        return NULL;
    }
    int rc = S_ISDIR(st.st_mode) ? load_dir(&ld, path) : load_file(&ld, path);
    return ld_end(&ld, rc);
}

struct rq_config *rq_config_load_buffer(const char *name, const char *data, size_t len, char *err,
                                        size_t errlen)
{
    struct rq_ld ld = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    ld.cfg = config_new(name);
    if (!ld.cfg) {
        plain_error(&ld, "%s: out of memory", name);
        return NULL;
    }
    int rc = load_stream(&ld, name, data ? data : "", data ? len : 0);
    return ld_end(&ld, rc);
}
