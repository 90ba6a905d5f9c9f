/* Generic walking of a libyaml document against schema tables (config_int.h): scalar typing
 * (plain integers, booleans, case-insensitive enums, strings), duplicate and unknown keys,
 * required keys, and errors that always read "file:line:col: what is wrong".
 * It knows no resource kinds: those are the tables in schema.c. */
#include "config/config_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static size_t slen(const yaml_node_t *n)
{
    return n->data.scalar.length;
}

static bool is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

yaml_node_t *rq_walk_node(const struct rq_ld *ld, int id)
{
    return yaml_document_get_node(ld->ydoc, id);
}

struct rq_pos rq_walk_pos(const struct rq_ld *ld, const yaml_node_t *n)
{
    struct rq_pos p = {ld->file, (unsigned)n->start_mark.line + 1,
                       (unsigned)n->start_mark.column + 1};
    return p;
}

static int verror(struct rq_ld *ld, struct rq_pos at, const char *fmt, va_list ap)
{
    if (ld->failed)
        return -1;
    ld->failed = true;
    if (!ld->err || ld->errlen == 0)
        return -1;
    int n = snprintf(ld->err, ld->errlen, "%s:%u:%u: ", at.file, at.line, at.col);
    if (n >= 0 && (size_t)n < ld->errlen)
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
    return -1;
}

int rq_walk_error_pos(struct rq_ld *ld, struct rq_pos at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(ld, at, fmt, ap);
    va_end(ap);
    return -1;
}

int rq_walk_error(struct rq_ld *ld, const yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(ld, rq_walk_pos(ld, at), fmt, ap);
    va_end(ap);
    return -1;
}

const char *rq_walk_text(const yaml_node_t *n, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)sval(n);
    size_t len = slen(n), o = 0;
    for (size_t i = 0; i < len && o + 8 < cap; i++) {
        if (o >= 60) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
            buf[o++] = (char)s[i];
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[s[i] >> 4];
            buf[o++] = hex[s[i] & 15];
        }
    }
    buf[o] = '\0';
    return buf;
}

bool rq_walk_is_null(const yaml_node_t *n)
{
    if (!is_plain(n))
        return false;
    return slen(n) == 0 || strcmp(sval(n), "~") == 0 || strcmp(sval(n), "null") == 0 ||
           strcmp(sval(n), "Null") == 0 || strcmp(sval(n), "NULL") == 0;
}

/* "a mapping", "a list", "nothing", "\"17\" (a quoted string)" or the plain text. */
static const char *describe(const yaml_node_t *n, char *buf, size_t cap)
{
    char t[80];
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (rq_walk_is_null(n))
        return "nothing (null)";
    rq_walk_text(n, t, sizeof t);
    snprintf(buf, cap, is_plain(n) ? "%s" : "\"%s\" (a quoted string)", t);
    return buf;
}

int rq_walk_type_error(struct rq_ld *ld, const yaml_node_t *n, const char *expected)
{
    char d[128];
    return rq_walk_error(ld, n, "%s must be %s, got %s", ld->key, expected,
                         describe(n, d, sizeof d));
}

void rq_walk_set_key(struct rq_ld *ld, const char *key)
{
    snprintf(ld->key, sizeof ld->key, "%s", key);
}

size_t rq_walk_push(struct rq_ld *ld, const char *fmt, ...)
{
    size_t mark = ld->path_len, cap = sizeof ld->path;
    if (mark > 0 && fmt[0] != '[' && mark + 1 < cap)
        ld->path[ld->path_len++] = '.';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(ld->path + ld->path_len, cap - ld->path_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        ld->path_len += (size_t)n < cap - ld->path_len ? (size_t)n : cap - ld->path_len - 1;
    return mark;
}

void rq_walk_pop(struct rq_ld *ld, size_t mark)
{
    ld->path_len = mark;
    ld->path[mark] = '\0';
}

/* Every key is a scalar without NUL bytes, and none appears twice. Quadratic, but mappings in
 * manifests are small and the fuzzer's inputs are bounded. */
int rq_walk_check_keys(struct rq_ld *ld, const yaml_node_t *map)
{
    char t[80];
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = rq_walk_node(ld, p->key);
        if (k->type != YAML_SCALAR_NODE) {
            char d[128];
            return rq_walk_error(ld, k, "keys must be strings, got %s", describe(k, d, sizeof d));
        }
        if (strlen(sval(k)) != slen(k))
            return rq_walk_error(ld, k, "key '%s' contains a NUL byte", rq_walk_text(k, t, 80));
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *e = rq_walk_node(ld, q->key);
            if (slen(e) == slen(k) && memcmp(sval(e), sval(k), slen(k)) == 0)
                return rq_walk_error(ld, k, "duplicate key '%s' (first at %u:%u)",
                                     rq_walk_text(k, t, sizeof t), rq_walk_pos(ld, e).line,
                                     rq_walk_pos(ld, e).col);
        }
    }
    return 0;
}

yaml_node_t *rq_walk_find(const struct rq_ld *ld, const yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = rq_walk_node(ld, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(sval(k), key) == 0)
            return rq_walk_node(ld, p->value);
    }
    return NULL;
}

yaml_node_t *rq_walk_key_of(const struct rq_ld *ld, const yaml_node_t *map, const yaml_node_t *v)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        if (rq_walk_node(ld, p->value) == v)
            return rq_walk_node(ld, p->key);
    return NULL;
}

/* [-+]?([0-9][0-9_]*(\.[0-9_]*)?|\.[0-9][0-9_]*)([eE][-+]?[0-9]+)?, or 0x / 0o / 0b forms:
 * what YAML 1.1 or 1.2 reads as a number. */
static bool looks_numeric(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (s[0] == '0' && s[1] && strchr("xXoObB", s[1])) {
        const char *digits = strchr("xX", s[1])   ? "0123456789abcdefABCDEF_"
                             : strchr("oO", s[1]) ? "01234567_"
                                                  : "01_";
        return s[2] && strspn(s + 2, digits) == strlen(s + 2);
    }
    if (!(*s >= '0' && *s <= '9') && !(*s == '.' && s[1] >= '0' && s[1] <= '9'))
        return false;
    size_t n = strspn(s, "0123456789_");
    if (s[n] == '.')
        n += 1 + strspn(s + n + 1, "0123456789_");
    if (s[n] == 'e' || s[n] == 'E') {
        n++;
        if (s[n] == '+' || s[n] == '-')
            n++;
        size_t e = strspn(s + n, "0123456789");
        if (e == 0)
            return false;
        n += e;
    }
    return s[n] == '\0';
}

bool rq_walk_is_text(const yaml_node_t *n)
{
    static const char *const words[] = {
        "y",     "Y",     "yes",   "Yes",   "YES",   "n",     "N",     "no",    "No",
        "NO",    "true",  "True",  "TRUE",  "false", "False", "FALSE", "on",    "On",
        "ON",    "off",   "Off",   "OFF",   ".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
        "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",  ".NaN",  ".NAN"};
    if (n->type != YAML_SCALAR_NODE || strlen(sval(n)) != slen(n))
        return false;
    if (!is_plain(n))
        return true;
    if (rq_walk_is_null(n))
        return false;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(sval(n), words[i]) == 0)
            return false;
    return !looks_numeric(sval(n));
}

int rq_walk_strlist(struct rq_ld *ld, yaml_node_t *list, size_t min, char ***out, size_t *n)
{
    char name[sizeof ld->key];
    if (list->type != YAML_SEQUENCE_NODE)
        return rq_walk_type_error(ld, list, "a list of strings");
    yaml_node_item_t *items = list->data.sequence.items.start;
    size_t count = (size_t)(list->data.sequence.items.top - items);
    if (count < min)
        return rq_walk_error(ld, list, "%s must not be empty", ld->key);
    snprintf(name, sizeof name, "%s", ld->key);
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *v = rq_walk_node(ld, items[i]);
        snprintf(ld->key, sizeof ld->key, "%.100s[%zu]", name, i);
        if (rq_walk_string(ld, v, NULL, 0) < 0 || rq_ld_push_str(ld, out, n, sval(v)) < 0)
            return -1;
    }
    return 0;
}

/* ^[-+]?(0|[1-9][0-9]*)$ as a plain scalar: a YAML integer that reads the same in YAML 1.1 and
 * 1.2 (no octal or hex ambiguity). */
static bool is_int(const yaml_node_t *n)
{
    if (!is_plain(n))
        return false;
    const char *s = sval(n);
    if (*s == '-' || *s == '+')
        s++;
    if (*s == '0')
        return s[1] == '\0';
    if (*s < '1' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9')
        s++;
    return *s == '\0' && (size_t)(s - sval(n)) == slen(n);
}

int rq_walk_uint(struct rq_ld *ld, const yaml_node_t *n, uint64_t min, uint64_t max,
                 uint64_t *out)
{
    if (!is_int(n))
        return rq_walk_type_error(ld, n, "an integer");
    const char *s = sval(n);
    bool neg = *s == '-', over = false;
    if (*s == '-' || *s == '+')
        s++;
    uint64_t v = 0;
    for (; *s; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            over = true;
        else
            v = v * 10 + (uint64_t)(*s - '0');
    }
    if ((neg && v != 0) || over || v < min || v > max) {
        char t[80];
        return rq_walk_error(ld, n, "%s must be %" PRIu64 "..%" PRIu64 ", got %s", ld->key, min,
                             max, rq_walk_text(n, t, sizeof t));
    }
    *out = v;
    return 0;
}

int rq_walk_bool(struct rq_ld *ld, const yaml_node_t *n, bool *out)
{
    if (is_plain(n) && strcasecmp(sval(n), "true") == 0)
        *out = true;
    else if (is_plain(n) && strcasecmp(sval(n), "false") == 0)
        *out = false;
    else
        return rq_walk_type_error(ld, n, "true or false");
    return 0;
}

int rq_walk_enum(struct rq_ld *ld, const yaml_node_t *n, const char *choices, int *out)
{
    char t[80];
    if (n->type != YAML_SCALAR_NODE || rq_walk_is_null(n)) {
        snprintf(t, sizeof t, "one of %s", choices);
        return rq_walk_type_error(ld, n, t);
    }
    int i = 0;
    for (const char *c = choices; *c; i++) {
        size_t l = strcspn(c, "|");
        if (l == slen(n) && strncasecmp(c, sval(n), l) == 0) {
            *out = i;
            return 0;
        }
        c += l + (c[l] == '|');
    }
    return rq_walk_error(ld, n, "%s must be one of %s, got '%s'", ld->key, choices,
                         rq_walk_text(n, t, sizeof t));
}

int rq_walk_string(struct rq_ld *ld, const yaml_node_t *n, char *out, size_t cap)
{
    if (n->type != YAML_SCALAR_NODE)
        return rq_walk_type_error(ld, n, "a string");
    if (rq_walk_is_null(n) || slen(n) == 0)
        return rq_walk_error(ld, n, "%s must not be empty", ld->key);
    if (strlen(sval(n)) != slen(n))
        return rq_walk_error(ld, n, "%s must not contain NUL bytes", ld->key);
    if (out && slen(n) >= cap)
        return rq_walk_error(ld, n, "%s is too long (at most %zu characters)", ld->key, cap - 1);
    if (out)
        memcpy(out, sval(n), slen(n) + 1);
    return 0;
}

static void store(void *obj, const struct rq_field *f, uint64_t v)
{
    char *p = (char *)obj + f->off;
    uint8_t u8 = (uint8_t)v;
    uint16_t u16 = (uint16_t)v;
    uint32_t u32 = (uint32_t)v;
    switch (f->size) {
    case 1: memcpy(p, &u8, 1); break;
    case 2: memcpy(p, &u16, 2); break;
    case 4: memcpy(p, &u32, 4); break;
    case 8: memcpy(p, &v, 8); break;
    default: break; /* size 0: validated only */
    }
}

static int apply_scalar(struct rq_ld *ld, const struct rq_field *f, yaml_node_t *v, void *obj)
{
    uint64_t u = 0;
    bool b = false;
    int e = 0;
    switch (f->type) {
    case RQ_F_UINT:
        if (rq_walk_uint(ld, v, f->min, f->max, &u) < 0)
            return -1;
        break;
    case RQ_F_BOOL:
        if (rq_walk_bool(ld, v, &b) < 0)
            return -1;
        u = b;
        break;
    case RQ_F_ENUM:
        if (rq_walk_enum(ld, v, f->choices, &e) < 0)
            return -1;
        u = (uint64_t)e;
        break;
    default:
        return rq_walk_string(ld, v, f->size ? (char *)obj + f->off : NULL, f->size);
    }
    store(obj, f, u);
    return 0;
}

static int apply(struct rq_ld *ld, const struct rq_field *f, yaml_node_t *k, yaml_node_t *v,
                 void *obj)
{
    rq_walk_set_key(ld, f->key);
    switch (f->type) {
    case RQ_F_SECTION:
        return rq_walk_map(ld, v, f->sub, obj);
    case RQ_F_CUSTOM:
        return f->set(ld, v, obj);
    case RQ_F_IGNORE:
        return rq_ld_add_ignored(ld, k);
    case RQ_F_REFUSE:
        return rq_walk_error(ld, k, "%s is not supported yet (%s)", f->key, f->why);
    case RQ_F_SKIP:
        return 0;
    default:
        return apply_scalar(ld, f, v, obj);
    }
}

static const char *context(const struct rq_ld *ld, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s", ld->doc.kind->name, ld->path_len ? " " : "", ld->path);
    return buf;
}

static int check_required(struct rq_ld *ld, const yaml_node_t *map, const struct rq_field *fields,
                          uint64_t seen)
{
    char c[300];
    for (size_t i = 0; fields[i].key; i++)
        if (fields[i].required && !(seen & (UINT64_C(1) << i)))
            return rq_walk_error(ld, map, "missing required key '%s' in %s", fields[i].key,
                                 context(ld, c, sizeof c));
    return 0;
}

int rq_walk_map(struct rq_ld *ld, yaml_node_t *map, const struct rq_field *fields, void *obj)
{
    char t[80], c[300];
    if (map->type != YAML_MAPPING_NODE)
        return rq_walk_type_error(ld, map, "a mapping");
    if (rq_walk_check_keys(ld, map) < 0)
        return -1;
    uint64_t seen = 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = rq_walk_node(ld, p->key), *v = rq_walk_node(ld, p->value);
        size_t i = 0;
        while (fields[i].key && strcmp(fields[i].key, sval(k)) != 0)
            i++;
        if (!fields[i].key)
            return rq_walk_error(ld, k, "unknown key '%s' in %s", rq_walk_text(k, t, sizeof t),
                                 context(ld, c, sizeof c));
        seen |= UINT64_C(1) << i;
        size_t mark = rq_walk_push(ld, "%s", fields[i].key);
        int rc = apply(ld, &fields[i], k, v, obj);
        rq_walk_pop(ld, mark);
        if (rc < 0)
            return -1;
    }
    return check_required(ld, map, fields, seen);
}

int rq_walk_strmap(struct rq_ld *ld, yaml_node_t *map, rq_entry_fn fn, void *obj)
{
    char name[sizeof ld->key], t[80];
    if (map->type != YAML_MAPPING_NODE)
        return rq_walk_type_error(ld, map, "a mapping of strings");
    if (rq_walk_check_keys(ld, map) < 0)
        return -1;
    snprintf(name, sizeof name, "%s", ld->key);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = rq_walk_node(ld, p->key), *v = rq_walk_node(ld, p->value);
        if (slen(k) == 0)
            return rq_walk_error(ld, k, "%s has an empty key", name);
        snprintf(ld->key, sizeof ld->key, "%.60s['%s']", name, rq_walk_text(k, t, sizeof t));
        if (v->type != YAML_SCALAR_NODE)
            return rq_walk_type_error(ld, v, "a string");
        if (fn && fn(ld, k, v, obj) < 0)
            return -1;
    }
    return 0;
}
