/* BrokerListener ports[].tls: the v1 shape (mode, manual.secretRef, certManagerCertificateSpec)
 * and the v1beta1 shapes (tls.automatic, tls.manual.secretName) into one struct rq_tls_cfg, with
 * the defaults of mode Automatic filled in (AIO-INTERFACES 2.1, 2.4, 5.4). Also Go durations and
 * SAN checks. It does not look at the Secret of mode Manual: the name is recorded, and refs.c
 * resolves it once every document is read. Nothing here makes keys or certificates. */
#include "config/config_int.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_DURATION_S 7776000u /* 2160h, 90 days */
#define DEFAULT_RENEW_S 1296000u    /* 360h, 15 days */
#define MIN_DURATION_S 10u          /* short enough to test renewal, long enough to be one */

#define AUTO(field)                                                                                \
    .off = offsetof(struct auto_walk, a.field), .size = sizeof(((struct rq_tls_auto *)0)->field)
#define END                                                                                        \
    {                                                                                              \
        .key = NULL                                                                                \
    }

/* The tls mapping while it is walked: which keys were given (their values). */
struct tls_walk {
    yaml_node_t *mode, *manual, *spec, *automatic;
};

/* certManagerCertificateSpec / automatic while it is walked. a moves into the port afterwards,
 * also on error, so that its SAN arrays are freed with the port. */
struct auto_walk {
    struct rq_tls_auto a;
    yaml_node_t *duration, *renew, *group;
};

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* ---- Go durations ---------------------------------------------------------------------------- */

static uint64_t unit_ns(const char *u, size_t len)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"ns", 1},           {"us", 1000},      {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000},                                         /* U+03BC Greek mu */
        {"ms", 1000000},     {"s", 1000000000}, {"m", 60000000000},  {"h", 3600000000000},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strlen(units[i].name) == len && memcmp(units[i].name, u, len) == 0)
            return units[i].ns;
    return 0;
}

/* Go's time.ParseDuration syntax, [-+]?([0-9]*(\.[0-9]*)?unit)+ or "0", into nanoseconds up to
 * INT64_MAX as Go allows. Returns 0, -1 on bad syntax or overflow, -2 when negative. */
static int parse_duration(const char *s, uint64_t *out)
{
    bool neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    uint64_t total = 0;
    if (!*s)
        return -1;
    while (*s) {
        uint64_t whole = 0, frac = 0, scale = 1;
        bool digits = false, over = false;
        for (; *s >= '0' && *s <= '9'; s++, digits = true) {
            if (whole > (UINT64_MAX - 9) / 10)
                over = true;
            else
                whole = whole * 10 + (uint64_t)(*s - '0');
        }
        if (*s == '.')
            for (s++; *s >= '0' && *s <= '9'; s++, digits = true)
                if (scale < 1000000000000000000u) { /* further digits cannot matter */
                    frac = frac * 10 + (uint64_t)(*s - '0');
                    scale *= 10;
                }
        size_t ul = strcspn(s, "0123456789.");
        uint64_t unit = unit_ns(s, ul);
        if (!digits || unit == 0)
            return -1;
        s += ul;
        if (over || whole > (uint64_t)INT64_MAX / unit)
            return -1;
        uint64_t v = whole * unit + (uint64_t)((double)frac * ((double)unit / (double)scale));
        if (v > (uint64_t)INT64_MAX - total)
            return -1;
        total += v;
    }
    if (neg && total)
        return -2;
    *out = total;
    return 0;
}

/* A duration in whole seconds (rounded down) of at least min. */
static int walk_duration(struct rq_ld *ld, yaml_node_t *v, uint64_t min, uint64_t *secs)
{
    char t[80];
    uint64_t ns = 0;
    if (rq_walk_string(ld, v, NULL, 0) < 0)
        return -1;
    int rc = parse_duration(sval(v), &ns);
    if (rc == -1)
        return rq_walk_error(ld, v,
                             "%s must be a Go duration such as 2160h, 90m or 1h30m, got '%s'",
                             ld->key, rq_walk_text(v, t, sizeof t));
    if (rc == -2 || ns / 1000000000u < min)
        return rq_walk_error(ld, v, "%s must be at least %" PRIu64 "s, got '%s'", ld->key, min,
                             rq_walk_text(v, t, sizeof t));
    *secs = ns / 1000000000u;
    return 0;
}

static int set_duration(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct auto_walk *aw = obj;
    aw->duration = v;
    return walk_duration(ld, v, MIN_DURATION_S, &aw->a.duration_s);
}

static int set_renew(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct auto_walk *aw = obj;
    aw->renew = v;
    return walk_duration(ld, v, 1, &aw->a.renew_before_s);
}

/* ---- SANs ------------------------------------------------------------------------------------ */

/* A host name, or a wildcard "*." in front of one: labels of 1..63 letters, digits and '-' not
 * at either end, 253 characters in all. */
static bool valid_dns(const char *s)
{
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    if (!*s || strlen(s) > 253)
        return false;
    for (;;) {
        size_t l = strcspn(s, ".");
        if (l == 0 || l > 63 || s[0] == '-' || s[l - 1] == '-')
            return false;
        for (size_t i = 0; i < l; i++)
            if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
                !(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
                return false;
        if (!s[l])
            return true;
        s += l + 1;
    }
}

static bool listed(char **list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(list[i], s) == 0)
            return true;
    return false;
}

/* san.dns or san.ip: each entry checked; IPs kept as inet_ntop writes them; repeats dropped. */
static int walk_sans(struct rq_ld *ld, yaml_node_t *v, bool ip, char ***list, size_t *n)
{
    char t[80], name[sizeof ld->key], text[INET6_ADDRSTRLEN];
    unsigned char addr[16];
    if (v->type != YAML_SEQUENCE_NODE)
        return rq_walk_type_error(ld, v, ip ? "a list of IP addresses" : "a list of DNS names");
    snprintf(name, sizeof name, "%s", ld->key);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *e = rq_walk_node(ld, *it);
        snprintf(ld->key, sizeof ld->key, "%.60s[%zu]", name,
                 (size_t)(it - v->data.sequence.items.start));
        if (rq_walk_string(ld, e, NULL, 0) < 0)
            return -1;
        const char *s = sval(e);
        if (ip) {
            int af = strchr(s, ':') ? AF_INET6 : AF_INET;
            if (inet_pton(af, s, addr) != 1 || !inet_ntop(af, addr, text, sizeof text))
                return rq_walk_error(ld, e, "%s must be an IPv4 or IPv6 address, got '%s'", ld->key,
                                     rq_walk_text(e, t, sizeof t));
            s = text;
        } else if (!valid_dns(s)) {
            return rq_walk_error(ld, e,
                                 "%s must be a DNS name (letters, digits, '-' and '.', "
                                 "optionally starting with '*.'), got '%s'",
                                 ld->key, rq_walk_text(e, t, sizeof t));
        }
        if (!listed(*list, *n, s) && rq_ld_push_str(ld, list, n, s) < 0)
            return -1;
    }
    return 0;
}

static int set_san_dns(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct auto_walk *aw = obj;
    return walk_sans(ld, v, false, &aw->a.dns, &aw->a.n_dns);
}

static int set_san_ip(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct auto_walk *aw = obj;
    return walk_sans(ld, v, true, &aw->a.ip, &aw->a.n_ip);
}

/* ---- certManagerCertificateSpec / automatic -------------------------------------------------- */

/* group (v1) and apiGroup (v1beta1) are the same value: one of them. */
static int set_group(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct auto_walk *aw = obj;
    if (aw->group) {
        struct rq_pos p = rq_walk_pos(ld, aw->group);
        return rq_walk_error(ld, v, "give group or apiGroup, not both (one is at %u:%u)", p.line,
                             p.col);
    }
    aw->group = v;
    return rq_walk_string(ld, v, aw->a.issuer_group, sizeof aw->a.issuer_group);
}

static int set_secret_name(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct auto_walk *aw = obj;
    char t[80];
    if (rq_walk_string(ld, v, aw->a.secret_name, sizeof aw->a.secret_name) < 0)
        return -1;
    if (!rq_schema_valid_name(aw->a.secret_name, true))
        return rq_walk_error(ld, v,
                             "secretName '%s' is not a valid Secret name: use at most 253 "
                             "lowercase letters, digits, '-' and '.'",
                             rq_walk_text(v, t, sizeof t));
    return 0;
}

static const struct rq_field issuer_fields[] = {
    {.key = "group", .type = RQ_F_CUSTOM, .set = set_group},
    {.key = "apiGroup", .type = RQ_F_CUSTOM, .set = set_group}, /* v1beta1 */
    {.key = "kind",
     .type = RQ_F_ENUM,
     .required = true,
     .choices = "Issuer|ClusterIssuer",
     AUTO(issuer_kind)},
    {.key = "name", .type = RQ_F_STR, .required = true, AUTO(issuer_name)},
    {.key = "namespace", .type = RQ_F_IGNORE}, /* v1beta1 */
    END,
};

static const struct rq_field private_key_fields[] = {
    {.key = "algorithm",
     .type = RQ_F_ENUM,
     .required = true,
     .choices = "Ec256|Ec384|Ec521|Ed25519|Rsa2048|Rsa4096|Rsa8192",
     AUTO(key_algorithm)},
    {.key = "rotationPolicy",
     .type = RQ_F_ENUM,
     .required = true,
     .choices = "Always|Never",
     AUTO(rotation_policy)},
    END,
};

static const struct rq_field san_fields[] = {
    {.key = "dns", .type = RQ_F_CUSTOM, .set = set_san_dns},
    {.key = "ip", .type = RQ_F_CUSTOM, .set = set_san_ip},
    END,
};

#define CERT_SPEC_ROWS                                                                             \
    {.key = "issuerRef", .type = RQ_F_SECTION, .required = true, .sub = issuer_fields},            \
        {.key = "duration", .type = RQ_F_CUSTOM, .set = set_duration},                             \
        {.key = "renewBefore", .type = RQ_F_CUSTOM, .set = set_renew},                             \
        {.key = "secretName", .type = RQ_F_CUSTOM, .set = set_secret_name},                        \
        {.key = "privateKey", .type = RQ_F_SECTION, .sub = private_key_fields},                    \
    {                                                                                              \
        .key = "san", .type = RQ_F_SECTION, .sub = san_fields                                      \
    }

static const struct rq_field cert_spec_fields[] = {CERT_SPEC_ROWS, END};

static const struct rq_field automatic_fields[] = {
    CERT_SPEC_ROWS,
    {.key = "secretNamespace", .type = RQ_F_IGNORE},
    END,
};

/* Walks spec (NULL: none given) under key, fills in the defaults and moves the result into t. */
static int walk_automatic(struct rq_ld *ld, yaml_node_t *spec, const char *key,
                          struct rq_tls_cfg *t)
{
    struct auto_walk aw = {.a = {.issuer_group = "cert-manager.io",
                                 .duration_s = DEFAULT_DURATION_S,
                                 .key_algorithm = RQ_KEY_EC256,
                                 .rotation_policy = RQ_ROTATE_ALWAYS}};
    int rc = 0;
    if (spec) {
        size_t mark = rq_walk_push(ld, "%s", key);
        rq_walk_set_key(ld, key);
        rc = rq_walk_map(ld, spec,
                         strcmp(key, "automatic") == 0 ? automatic_fields : cert_spec_fields, &aw);
        rq_walk_pop(ld, mark);
    }
    if (rc == 0 && !listed(aw.a.dns, aw.a.n_dns, "localhost"))
        rc = rq_ld_push_str(ld, &aw.a.dns, &aw.a.n_dns, "localhost");
    if (rc == 0 && !listed(aw.a.ip, aw.a.n_ip, "127.0.0.1"))
        rc = rq_ld_push_str(ld, &aw.a.ip, &aw.a.n_ip, "127.0.0.1");
    if (rc == 0 && !aw.renew) {
        aw.a.renew_before_s = aw.a.duration_s / 3;
        if (aw.a.renew_before_s > DEFAULT_RENEW_S)
            aw.a.renew_before_s = DEFAULT_RENEW_S;
    }
    if (rc == 0 && aw.renew && aw.a.renew_before_s >= aw.a.duration_s) {
        char r[80], d[80];
        rc = rq_walk_error(ld, aw.renew,
                           "renewBefore (%s) must be shorter than the certificate's duration (%s)",
                           rq_walk_text(aw.renew, r, sizeof r),
                           aw.duration ? rq_walk_text(aw.duration, d, sizeof d) : "2160h");
    }
    t->automatic = aw.a; /* also on error: the port owns the SAN arrays now */
    return rc;
}

/* ---- manual ---------------------------------------------------------------------------------- */

int rq_schema_secret_key(struct rq_ld *ld, yaml_node_t *v, struct rq_secret_walk *w, bool *beta)
{
    *beta = strcmp(ld->key, "secretName") == 0;
    yaml_node_t *other = *beta ? w->ref : w->name;
    if (other) {
        struct rq_pos p = rq_walk_pos(ld, other);
        return rq_walk_error(ld, v,
                             "give secretRef or secretName (its v1beta1 name), not both (one is "
                             "at %u:%u)",
                             p.line, p.col);
    }
    *(*beta ? &w->name : &w->ref) = v;
    return 0;
}

static int set_manual_ref(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    bool beta;
    if (rq_schema_secret_key(ld, v, obj, &beta) < 0)
        return -1;
    return rq_schema_object_ref(ld, v, "Secret", RQ_REF_TLS_SECRET,
                                ((struct rq_secret_walk *)obj)->secret);
}

static const struct rq_field manual_fields[] = {
    {.key = "secretRef", .type = RQ_F_CUSTOM, .set = set_manual_ref},
    {.key = "secretName", .type = RQ_F_CUSTOM, .set = set_manual_ref}, /* v1beta1 */
    {.key = "secretNamespace", .type = RQ_F_IGNORE},                   /* v1beta1 */
    END,
};

static int walk_manual(struct rq_ld *ld, yaml_node_t *manual, struct rq_tls_cfg *t)
{
    char c[300];
    struct rq_secret_walk mw = {.secret = t->secret_name};
    size_t mark = rq_walk_push(ld, "manual");
    rq_walk_set_key(ld, "manual");
    int rc = rq_walk_map(ld, manual, manual_fields, &mw);
    if (rc == 0 && !mw.ref && !mw.name) {
        snprintf(c, sizeof c, "%s", ld->path);
        rc = rq_walk_error(ld, manual, "missing required key 'secretRef' in BrokerListener %s", c);
    }
    rq_walk_pop(ld, mark);
    return rc;
}

/* ---- tls ------------------------------------------------------------------------------------- */

static int keep_node(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct tls_walk *tw = obj;
    yaml_node_t **slot = strcmp(ld->key, "mode") == 0        ? &tw->mode
                         : strcmp(ld->key, "manual") == 0    ? &tw->manual
                         : strcmp(ld->key, "automatic") == 0 ? &tw->automatic
                                                             : &tw->spec;
    *slot = v;
    return 0;
}

static const struct rq_field tls_fields[] = {
    {.key = "mode", .type = RQ_F_CUSTOM, .set = keep_node},
    {.key = "manual", .type = RQ_F_CUSTOM, .set = keep_node},
    {.key = "certManagerCertificateSpec", .type = RQ_F_CUSTOM, .set = keep_node},
    {.key = "automatic", .type = RQ_F_CUSTOM, .set = keep_node}, /* v1beta1 */
    END,
};

/* mode is required, except in the v1beta1 shapes where the key that is given says it. */
static int tls_mode(struct rq_ld *ld, yaml_node_t *v, const struct tls_walk *tw, int *mode)
{
    char c[300];
    if (tw->mode) {
        rq_walk_set_key(ld, "mode");
        if (rq_walk_enum(ld, tw->mode, "Manual|Automatic", mode) < 0)
            return -1;
        *mode = *mode == 0 ? RQ_TLS_MANUAL : RQ_TLS_AUTOMATIC;
    } else if (tw->automatic) {
        *mode = RQ_TLS_AUTOMATIC;
    } else if (tw->manual && tw->manual->type == YAML_MAPPING_NODE &&
               rq_walk_find(ld, tw->manual, "secretName")) {
        *mode = RQ_TLS_MANUAL;
    } else {
        snprintf(c, sizeof c, "%s", ld->path);
        return rq_walk_error(ld, v, "missing required key 'mode' in BrokerListener %s", c);
    }
    return 0;
}

/* A key that does not go with the mode, or certManagerCertificateSpec and automatic together. */
static int tls_conflicts(struct rq_ld *ld, yaml_node_t *v, const struct tls_walk *tw, int mode)
{
    yaml_node_t *spec = tw->spec ? tw->spec : tw->automatic;
    const char *spec_key = tw->spec ? "certManagerCertificateSpec" : "automatic";
    if (tw->spec && tw->automatic)
        return rq_walk_error(ld, rq_walk_key_of(ld, v, tw->automatic),
                             "give certManagerCertificateSpec or automatic (its v1beta1 name), "
                             "not both");
    if (mode == RQ_TLS_MANUAL && spec)
        return rq_walk_error(ld, rq_walk_key_of(ld, v, spec), "%s is only used with mode Automatic",
                             spec_key);
    if (mode == RQ_TLS_AUTOMATIC && tw->manual)
        return rq_walk_error(ld, rq_walk_key_of(ld, v, tw->manual),
                             "manual is only used with mode Manual");
    if (mode == RQ_TLS_MANUAL && !tw->manual)
        return rq_walk_error(ld, tw->mode,
                             "mode Manual needs manual.secretRef (the name of a kubernetes.io/tls "
                             "Secret)");
    return 0;
}

int rq_schema_tls(struct rq_ld *ld, yaml_node_t *v, struct rq_tls_cfg *t)
{
    struct tls_walk tw = {0};
    int mode = RQ_TLS_NONE;
    if (rq_walk_map(ld, v, tls_fields, &tw) < 0 || tls_mode(ld, v, &tw, &mode) < 0 ||
        tls_conflicts(ld, v, &tw, mode) < 0)
        return -1;
    t->mode = mode;
    if (mode == RQ_TLS_MANUAL)
        return walk_manual(ld, tw.manual, t);
    return walk_automatic(ld, tw.spec ? tw.spec : tw.automatic,
                          tw.spec ? "certManagerCertificateSpec" : "automatic", t);
}
