/* Resource schemas as field tables: Broker (AIO names plus the spec.ringmq extension block),
 * BrokerListener, ConfigMap and Secret, and the table of kinds. A table row says key, type, range
 * and where the value goes; the few values that need more than that have a setter here. Port TLS
 * and BrokerAuthentication have their own files (schema_tls.c, schema_authn.c). The walking
 * itself, the error format and the defaults are elsewhere (walk.c, config.c); references are
 * only recorded here and resolved in refs.c. */
#include "config/config_int.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CFG(field)                                                                                 \
    .off = offsetof(struct rq_config, field), .size = sizeof(((struct rq_config *)0)->field)
#define DOC(field) .off = offsetof(struct rq_doc, field), .size = sizeof(((struct rq_doc *)0)->field)
#define OBJ(field)                                                                                 \
    .off = offsetof(struct rq_config_object, field),                                               \
    .size = sizeof(((struct rq_config_object *)0)->field)
#define UINT(k, field, lo, hi) {.key = k, .type = RQ_F_UINT, .min = lo, .max = hi, CFG(field)}
#define PORT(field)                                                                                \
    .off = offsetof(struct port_item, cfg.field), .size = sizeof(((struct rq_port_cfg *)0)->field)
#define SECTION(k, table) {.key = k, .type = RQ_F_SECTION, .sub = table}
#define CUSTOM(k, fn) {.key = k, .type = RQ_F_CUSTOM, .set = fn}
#define IGNORE(k) {.key = k, .type = RQ_F_IGNORE}
#define REFUSE(k, reason) {.key = k, .type = RQ_F_REFUSE, .why = reason}
#define END {.key = NULL}

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* ---- Broker ---------------------------------------------------------------------------------- */

static int set_log_level(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    static const char levels[] = "error|warn|info|debug|trace";
    char t[80];
    if (v->type != YAML_SCALAR_NODE || rq_walk_is_null(v))
        return rq_walk_type_error(ld, v, "one of error|warn|info|debug|trace");
    int level = rq_log_parse_level(sval(v));
    if (level < 0 || strlen(sval(v)) != v->data.scalar.length)
        return rq_walk_error(ld, v, "level must be one of %s, got '%s'", levels,
                             rq_walk_text(v, t, sizeof t));
    ((struct rq_config *)obj)->log_level = level;
    return 0;
}

static int set_connect_timeout(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    uint64_t s;
    if (rq_walk_uint(ld, v, 1, 3600, &s) < 0)
        return -1;
    ((struct rq_config *)obj)->connect_timeout_ms = (uint32_t)(s * 1000);
    return 0;
}

static int set_auth_timeout(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    uint64_t s;
    if (rq_walk_uint(ld, v, 1, 3599, &s) < 0)
        return -1;
    ((struct rq_config *)obj)->auth_request_timeout_ms = (uint32_t)(s * 1000);
    ld->auth_timeout_pos = rq_walk_pos(ld, v);
    ld->auth_timeout_set = true;
    return 0;
}

/* The authentication service pool (Custom method requests). */
static const struct rq_field auth_fields[] = {
    UINT("threads", auth_threads, 1, 64),
    UINT("maxPending", auth_max_pending, 1, 1000000),
    CUSTOM("requestTimeoutSeconds", set_auth_timeout),
    UINT("cacheEntries", auth_cache_entries, 1, 10000000),
    UINT("negativeCacheSeconds", auth_negative_cache_s, 0, 3600),
    UINT("annotationCacheSeconds", auth_sa_cache_s, 1, 3600),
    END,
};

/* How ServiceAccountToken reaches the Kubernetes API (overrides of the detected source). */
#define KSTR(k, field) {.key = k, .type = RQ_F_STR, CFG(kube.field)}
static const struct rq_field kube_fields[] = {
    KSTR("server", server),
    KSTR("certificateAuthority", ca_file),
    KSTR("tokenFile", token_file),
    KSTR("clientCertificate", client_cert),
    KSTR("clientKey", client_key),
    KSTR("kubeconfig", kubeconfig),
    KSTR("context", context),
    KSTR("serviceAccountDir", in_cluster_dir),
    END,
};

static const struct rq_field queue_limit_fields[] = {
    UINT("length", queue_limit, 1, UINT32_MAX),
    {.key = "strategy", .type = RQ_F_ENUM, .choices = "None|DropOldest", CFG(queue_strategy)},
    END,
};

static const struct rq_field clients_fields[] = {
    UINT("maxKeepAliveSeconds", max_keepalive, 0, 65535),
    UINT("maxReceiveMaximum", max_receive_max, 1, 65535),
    UINT("maxPacketSizeBytes", max_packet_size, 1, 268435456),
    UINT("maxSessionExpirySeconds", max_session_expiry, 1, UINT32_MAX),
    UINT("maxMessageExpirySeconds", max_message_expiry, 1, UINT32_MAX),
    SECTION("subscriberQueueLimit", queue_limit_fields),
    END,
};

static const struct rq_field advanced_fields[] = {
    SECTION("clients", clients_fields),
    IGNORE("encryptInternalTraffic"),
    IGNORE("internalCerts"),
    END,
};

static const struct rq_field logs_fields[] = {
    CUSTOM("level", set_log_level),
    END,
};

static int set_prometheus_port(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    uint64_t port;
    if (rq_walk_uint(ld, v, 0, 65535, &port) < 0)
        return -1;
    ((struct rq_config *)obj)->metrics_port = (uint16_t)port;
    ((struct rq_config *)obj)->metrics_port_set = true;
    return 0;
}

static const struct rq_field metrics_fields[] = {
    CUSTOM("prometheusPort", set_prometheus_port),
    END,
};

static const struct rq_field diagnostics_fields[] = {
    SECTION("logs", logs_fields),
    SECTION("metrics", metrics_fields),
    IGNORE("selfCheck"),
    IGNORE("traces"),
    END,
};

/* Before CONNECT a peer is anonymous: these bound what all of them together may hold. */
static const struct rq_field preconnect_fields[] = {
    UINT("connections", preconnect_conns, 1, 10000000),
    UINT("bytes", preconnect_bytes, 65536, 1ull << 40),
    END,
};

static int set_metrics_bind(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_config *c = obj;
    unsigned char addr[16];
    char t[80];
    if (rq_walk_string(ld, v, c->metrics_bind, sizeof c->metrics_bind) < 0)
        return -1;
    if (inet_pton(AF_INET, c->metrics_bind, addr) != 1 &&
        inet_pton(AF_INET6, c->metrics_bind, addr) != 1)
        return rq_walk_error(ld, v, "bindAddress must be an IPv4 or IPv6 address literal, got '%s'",
                             rq_walk_text(v, t, sizeof t));
    return 0;
}

/* spec.ringmq.metrics: where the metrics / health endpoint listens (its port is AIO's
 * spec.diagnostics.metrics.prometheusPort). */
static const struct rq_field ringmq_metrics_fields[] = {
    CUSTOM("bindAddress", set_metrics_bind),
    END,
};

/* spec.ringmq.placement: moving connected publishers to their messages' shard. */
static const struct rq_field placement_fields[] = {
    {.key = "enabled", .type = RQ_F_BOOL, CFG(placement_enabled)},
    UINT("minSharePercent", placement_min_share_pct, 50, 100),
    UINT("maxMovesPerSecond", placement_max_moves, 0, 10000),
    UINT("minResidentSeconds", placement_min_resident_s, 1, 3600),
    UINT("maxTargetBusyPercent", placement_max_busy_pct, 1, 100),
    END,
};

static const struct rq_field ringmq_fields[] = {
    UINT("threads", threads, 0, 1024),
    UINT("maxConnections", max_connections, 1, 10000000),
    UINT("maxInflight", max_inflight, 1, 65535),
    UINT("maxTopicLevels", max_topic_levels, 1, 1024),
    UINT("maxTopicAliases", max_topic_alias, 0, 65535),
    UINT("shardBacklogLimit", shard_backlog, 16, 16777216),
    UINT("batchWaitMicroseconds", batch_wait_us, 0, 10000),
    UINT("setupBatchWaitMicroseconds", setup_batch_wait_us, 0, 10000),
    CUSTOM("connectTimeoutSeconds", set_connect_timeout),
    SECTION("preConnectLimit", preconnect_fields),
    SECTION("auth", auth_fields),
    SECTION("kubernetes", kube_fields),
    {.key = "logFormat", .type = RQ_F_ENUM, .choices = "text|json", CFG(log_json)},
    {.key = "dataDir", .type = RQ_F_STR, CFG(data_dir)},
    SECTION("metrics", ringmq_metrics_fields),
    SECTION("placement", placement_fields),
    {.key = "sysTopics", .type = RQ_F_BOOL, CFG(sys_topics)},
    UINT("sysTopicsIntervalSeconds", sys_interval_s, 1, 86400),
    UINT("shutdownDelaySeconds", shutdown_delay_s, 0, 300),
    END,
};

static const struct rq_field broker_spec_fields[] = {
    SECTION("advanced", advanced_fields),
    SECTION("diagnostics", diagnostics_fields),
    SECTION("ringmq", ringmq_fields),
    IGNORE("cardinality"),
    IGNORE("memoryProfile"),
    IGNORE("generateResourceLimits"),
    IGNORE("persistence"),
    END,
};

static int set_broker_spec(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_walk_map(ld, v, broker_spec_fields, ld->cfg);
}

/* ---- BrokerListener -------------------------------------------------------------------------- */

/* A port entry while it is walked: the snapshot part and where its number was written. */
struct port_item {
    struct rq_port_cfg cfg;
    struct rq_pos pos;
};

static int set_port(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct port_item *pi = obj;
    uint64_t port;
    if (v->type == YAML_SCALAR_NODE && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        strcmp(sval(v), "0") == 0)
        return rq_walk_error(ld, v,
                             "port must be 1..65535, got 0 (ringmq needs a fixed port to listen "
                             "on; 0 would pick a random one)");
    if (rq_walk_uint(ld, v, 1, 65535, &port) < 0)
        return -1;
    pi->cfg.port = (uint16_t)port;
    pi->pos = rq_walk_pos(ld, v);
    return 0;
}

static int set_tls(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_schema_tls(ld, v, &((struct port_item *)obj)->cfg.tls);
}

/* Resolved once every document is read: the port index is the one this port is about to get. */
static int set_authn_ref(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct port_item *pi = obj;
    if (rq_walk_string(ld, v, pi->cfg.authn_name, sizeof pi->cfg.authn_name) < 0)
        return -1;
    return rq_refs_add(ld, RQ_REF_AUTHN, pi->cfg.authn_name, rq_walk_pos(ld, v), NULL);
}

/* Resolved like authenticationRef; refs.c also checks that the port has one. */
static int set_authz_ref(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct port_item *pi = obj;
    if (rq_walk_string(ld, v, pi->cfg.authz_name, sizeof pi->cfg.authz_name) < 0)
        return -1;
    return rq_refs_add(ld, RQ_REF_AUTHZ, pi->cfg.authz_name, rq_walk_pos(ld, v), NULL);
}

static int set_bind_address(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct port_item *pi = obj;
    unsigned char addr[16];
    char t[80];
    if (rq_walk_string(ld, v, pi->cfg.bind_address, sizeof pi->cfg.bind_address) < 0)
        return -1;
    if (inet_pton(AF_INET, pi->cfg.bind_address, addr) != 1 &&
        inet_pton(AF_INET6, pi->cfg.bind_address, addr) != 1)
        return rq_walk_error(ld, v, "bindAddress must be an IPv4 or IPv6 address literal, got '%s'",
                             rq_walk_text(v, t, sizeof t));
    return 0;
}

static const struct rq_field port_fields[] = {
    {.key = "port", .type = RQ_F_CUSTOM, .required = true, .set = set_port},
    {.key = "nodePort", .type = RQ_F_UINT, .min = 0, .max = 65535}, /* Kubernetes only */
    {.key = "protocol", .type = RQ_F_ENUM, .choices = "Mqtt|WebSockets", PORT(protocol)},
    CUSTOM("bindAddress", set_bind_address),
    CUSTOM("tls", set_tls),
    CUSTOM("authenticationRef", set_authn_ref),
    CUSTOM("authorizationRef", set_authz_ref),
    END,
};

static int set_ports(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return rq_walk_type_error(ld, v, "a list of ports");
    yaml_node_item_t *items = v->data.sequence.items.start;
    size_t n = (size_t)(v->data.sequence.items.top - items);
    if (n == 0)
        return rq_walk_error(ld, v, "ports must not be empty");
    for (size_t i = 0; i < n; i++) {
        struct port_item pi = {.cfg = {.bind_address = "0.0.0.0", .protocol = RQ_PROTO_MQTT}};
        size_t mark = rq_walk_push(ld, "[%zu]", i);
        snprintf(ld->key, sizeof ld->key, "ports[%zu]", i);
        int rc = rq_walk_map(ld, rq_walk_node(ld, items[i]), port_fields, &pi);
        rq_walk_pop(ld, mark);
        if (rc < 0 || rq_ld_add_port(ld, &pi.cfg, pi.pos) < 0) {
            rq_ld_clear_tls(&pi.cfg.tls); /* not moved into the snapshot */
            return -1;
        }
    }
    return 0;
}

static int set_broker_ref(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_doc *d = obj;
    if (rq_walk_string(ld, v, d->broker_ref, sizeof d->broker_ref) < 0)
        return -1;
    d->ref_pos = rq_walk_pos(ld, v);
    return 0;
}

static const struct rq_field listener_spec_fields[] = {
    CUSTOM("brokerRef", set_broker_ref),
    {.key = "serviceName", .type = RQ_F_STR},
    {.key = "serviceType", .type = RQ_F_ENUM, .choices = "ClusterIp|LoadBalancer|NodePort"},
    {.key = "ports", .type = RQ_F_CUSTOM, .required = true, .set = set_ports},
    END,
};

static int set_listener_spec(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_walk_map(ld, v, listener_spec_fields, &ld->doc);
}

/* ---- metadata -------------------------------------------------------------------------------- */

static bool alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One DNS label of 1..max characters: [a-z0-9]([a-z0-9-]*[a-z0-9])? */
static bool valid_label(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max || !alnum_lower(s[0]) || !alnum_lower(s[len - 1]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!alnum_lower(s[i]) && s[i] != '-')
            return false;
    return true;
}

bool rq_schema_valid_name(const char *s, bool dns_subdomain)
{
    size_t len = strlen(s);
    if (!dns_subdomain)
        return len >= 3 && valid_label(s, len, 63);
    if (len > 253)
        return false;
    for (;;) {
        size_t l = strcspn(s, ".");
        if (!valid_label(s, l, 253))
            return false;
        if (s[l] == '\0')
            return true;
        s += l + 1;
    }
}

static int set_name(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_doc *d = obj;
    char t[80];
    if (rq_walk_string(ld, v, d->name, sizeof d->name) < 0)
        return -1;
    d->name_pos = rq_walk_pos(ld, v);
    if (rq_schema_valid_name(d->name, d->kind->dns_subdomain))
        return 0;
    if (d->kind->dns_subdomain)
        return rq_walk_error(ld, v,
                             "metadata.name '%s' is not valid: use at most 253 lowercase letters, "
                             "digits, '-' and '.', each part starting and ending with a letter or "
                             "digit",
                             rq_walk_text(v, t, sizeof t));
    return rq_walk_error(ld, v,
                         "metadata.name '%s' is not valid: use 3..63 lowercase letters, digits "
                         "and '-', starting and ending with a letter or digit",
                         rq_walk_text(v, t, sizeof t));
}

static int set_strmap(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_walk_strmap(ld, v, NULL, NULL);
}

int rq_schema_object_ref(struct rq_ld *ld, yaml_node_t *v, const char *what, enum rq_ref_use use,
                         char *out)
{
    char t[80];
    if (rq_walk_string(ld, v, out, 254) < 0)
        return -1;
    if (!rq_schema_valid_name(out, true))
        return rq_walk_error(ld, v,
                             "%s '%s' is not a valid %s name: use at most 253 lowercase letters, "
                             "digits, '-' and '.'",
                             ld->key, rq_walk_text(v, t, sizeof t), what);
    return rq_refs_add(ld, use, out, rq_walk_pos(ld, v), NULL);
}

static const struct rq_field metadata_fields[] = {
    {.key = "name", .type = RQ_F_CUSTOM, .required = true, .set = set_name},
    {.key = "namespace", .type = RQ_F_STR, DOC(ns)},
    CUSTOM("labels", set_strmap),
    CUSTOM("annotations", set_strmap),
    END,
};

static int set_metadata(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_walk_map(ld, v, metadata_fields, &ld->doc);
}

/* ---- ConfigMap / Secret ---------------------------------------------------------------------- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 with padding; line breaks and spaces (block scalars) are skipped.
 * out needs len * 3 / 4 + 1 bytes. Returns the decoded length or -1. */
static long b64_decode(const char *s, size_t len, char *out)
{
    uint32_t acc = 0;
    size_t data = 0, pad = 0, o = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad)
            return -1;
        data++;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)(acc >> bits & 0xff);
        }
    }
    if ((data + pad) % 4 || pad > 2 || data % 4 == 1)
        return -1;
    return (long)o;
}

bool rq_schema_valid_key(const char *k)
{
    if (!*k || strlen(k) > 253)
        return false;
    for (; *k; k++)
        if (!alnum_lower(*k) && !(*k >= 'A' && *k <= 'Z') && !strchr("-._", *k))
            return false;
    return true;
}

static int add_entry(struct rq_ld *ld, yaml_node_t *k, yaml_node_t *v, bool base64)
{
    struct rq_config_object *o = ld->doc.obj;
    char t[80];
    if (!rq_schema_valid_key(sval(k)))
        return rq_walk_error(ld, k, "key '%s' must be letters, digits, '-', '_' or '.'",
                             rq_walk_text(k, t, sizeof t));
    for (size_t i = 0; i < o->n_entries; i++)
        if (strcmp(o->entries[i].key, sval(k)) == 0)
            return rq_walk_error(ld, k, "key '%s' is given twice in this %s", sval(k),
                                 ld->doc.kind->name);
    size_t used = o->n_entries; /* capacity is 4, then doubles: grow when used reaches it */
    if (used == 0 || (used >= 4 && (used & (used - 1)) == 0)) {
        void *p = realloc(o->entries, (used ? used * 2 : 4) * sizeof *o->entries);
        if (!p)
            return rq_ld_oom(ld);
        o->entries = p;
    }
    struct rq_config_entry *e = &o->entries[o->n_entries];
    size_t len = rq_walk_is_null(v) ? 0 : v->data.scalar.length;
    e->key = strdup(sval(k));
    e->value = malloc(len + 1);
    if (!e->key || !e->value) {
        free(e->key);
        free(e->value);
        return rq_ld_oom(ld);
    }
    o->n_entries++;
    long n = base64 ? b64_decode(sval(v), len, e->value) : (long)len;
    if (n < 0)
        return rq_walk_error(ld, v, "%s is not valid base64", ld->key);
    if (!base64)
        memcpy(e->value, sval(v), len);
    e->value[n] = '\0';
    e->len = (size_t)n;
    return 0;
}

static int text_entry(struct rq_ld *ld, yaml_node_t *k, yaml_node_t *v, void *obj)
{
    return add_entry(ld, k, v, false);
}

static int base64_entry(struct rq_ld *ld, yaml_node_t *k, yaml_node_t *v, void *obj)
{
    return add_entry(ld, k, v, true);
}

static int set_text_data(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_walk_strmap(ld, v, text_entry, NULL);
}

static int set_base64_data(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_walk_strmap(ld, v, base64_entry, NULL);
}

static int begin_configmap(struct rq_ld *ld)
{
    return rq_ld_add_object(ld, RQ_CONFIG_CONFIGMAP) ? 0 : -1;
}

static int begin_secret(struct rq_ld *ld)
{
    return rq_ld_add_object(ld, RQ_CONFIG_SECRET) ? 0 : -1;
}

/* ---- documents ------------------------------------------------------------------------------- */

#define HEADER                                                                                     \
    {.key = "apiVersion", .type = RQ_F_SKIP, .required = true},                                    \
        {.key = "kind", .type = RQ_F_SKIP, .required = true},                                      \
        {.key = "metadata", .type = RQ_F_CUSTOM, .required = true, .set = set_metadata}

static const struct rq_field broker_doc[] = {
    HEADER,
    CUSTOM("spec", set_broker_spec),
    END,
};

static const struct rq_field authn_doc[] = {
    HEADER,
    {.key = "spec", .type = RQ_F_CUSTOM, .required = true, .set = rq_schema_authn_spec},
    END,
};

static const struct rq_field authz_doc[] = {
    HEADER,
    {.key = "spec", .type = RQ_F_CUSTOM, .required = true, .set = rq_schema_authz_spec},
    END,
};

static const struct rq_field listener_doc[] = {
    HEADER,
    {.key = "spec", .type = RQ_F_CUSTOM, .required = true, .set = set_listener_spec},
    END,
};

static const struct rq_field configmap_doc[] = {
    HEADER,
    CUSTOM("data", set_text_data),
    CUSTOM("binaryData", set_base64_data),
    {.key = "immutable", .type = RQ_F_BOOL, OBJ(immutable)},
    END,
};

static const struct rq_field secret_doc[] = {
    HEADER,
    CUSTOM("data", set_base64_data),
    CUSTOM("stringData", set_text_data),
    {.key = "type", .type = RQ_F_STR, OBJ(type)},
    {.key = "immutable", .type = RQ_F_BOOL, OBJ(immutable)},
    END,
};

static const struct rq_kind kinds[] = {
    {RQ_KIND_BROKER, "Broker", false, false, broker_doc, NULL},
    {RQ_KIND_LISTENER, "BrokerListener", false, false, listener_doc, NULL},
    {RQ_KIND_AUTHN, "BrokerAuthentication", false, false, authn_doc, rq_schema_authn_begin},
    {RQ_KIND_AUTHZ, "BrokerAuthorization", false, false, authz_doc, rq_schema_authz_begin},
    {RQ_KIND_CONFIGMAP, "ConfigMap", true, true, configmap_doc, begin_configmap},
    {RQ_KIND_SECRET, "Secret", true, true, secret_doc, begin_secret},
};

const struct rq_kind *rq_schema_kind(const char *name, bool any_case)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if ((any_case ? strcasecmp : strcmp)(kinds[i].name, name) == 0)
            return &kinds[i];
    return NULL;
}

const char *rq_schema_unsupported(const char *name)
{
    (void)name; /* every AIO kind ringmq knows is built now */
    return NULL;
}

const char *rq_schema_kind_list(void)
{
    return "Broker, BrokerListener, BrokerAuthentication, BrokerAuthorization, ConfigMap or "
           "Secret";
}
