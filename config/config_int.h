/* Private to config/: the loader state shared by the driver (config.c), the generic YAML walker
 * with positions and errors (walk.c) and the resource schemas as field tables (schema.c).
 * Nothing here is thread-safe or meant for other folders. */
#ifndef RQ_CONFIG_INT_H
#define RQ_CONFIG_INT_H

#include "config/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

/* A position in a loaded file, 1-based. file points at a name that lives until the load ends. */
struct rq_pos {
    const char *file;
    unsigned line, col;
};

enum rq_ftype {
    RQ_F_UINT,    /* plain YAML integer in [min, max], stored in size bytes at off */
    RQ_F_BOOL,    /* true | false, stored in size bytes at off */
    RQ_F_ENUM,    /* one of choices (case-insensitive), index stored in size bytes at off */
    RQ_F_STR,     /* non-empty scalar, copied into char[size] at off */
    RQ_F_SECTION, /* mapping walked with the sub table, same obj */
    RQ_F_CUSTOM,  /* set(ld, value, obj) does it all */
    RQ_F_IGNORE,  /* accepted AIO key without meaning here: recorded in cfg->ignored */
    RQ_F_REFUSE,  /* known but not built yet: an error naming why */
    RQ_F_SKIP,    /* handled before the walk (apiVersion, kind) */
};

struct rq_ld;
typedef int (*rq_field_set_fn)(struct rq_ld *ld, yaml_node_t *val, void *obj);

/* One row of a schema table; a table ends with a row whose key is NULL. size == 0 means the
 * value is validated but not stored. */
struct rq_field {
    const char *key;
    enum rq_ftype type;
    bool required;
    uint8_t size;
    size_t off;
    uint64_t min, max;
    const char *choices;        /* RQ_F_ENUM: "None|DropOldest" (index = stored value) */
    const struct rq_field *sub; /* RQ_F_SECTION */
    rq_field_set_fn set;        /* RQ_F_CUSTOM */
    const char *why;            /* RQ_F_REFUSE */
};

enum rq_kind_id {
    RQ_KIND_BROKER,
    RQ_KIND_LISTENER,
    RQ_KIND_CONFIGMAP,
    RQ_KIND_SECRET,
    RQ_KIND_AUTHN,
    RQ_KIND_AUTHZ,
};

/* A document kind: its apiVersion family and the table of its top-level keys. */
struct rq_kind {
    enum rq_kind_id id;
    const char *name;
    bool core_v1;               /* apiVersion v1 (ConfigMap, Secret) vs mqttbroker.../v1 */
    bool dns_subdomain;         /* metadata.name may hold dots, up to 253 characters */
    const struct rq_field *fields;
    int (*begin)(struct rq_ld *ld); /* before the walk, e.g. allocate the object */
};

/* State of the document being walked. */
struct rq_doc {
    const struct rq_kind *kind;
    struct rq_pos kind_pos;
    char name[254];
    struct rq_pos name_pos;
    char ns[64];
    char broker_ref[254]; /* BrokerListener spec.brokerRef, "" when absent */
    struct rq_pos ref_pos;
    struct rq_config_object *obj; /* ConfigMap / Secret being filled */
    struct rq_authn_cfg *authn;   /* BrokerAuthentication being filled */
    struct rq_authz_cfg *authz;   /* BrokerAuthorization being filled */
    size_t first_port;            /* ports added by this document start here */
};

/* What a reference must resolve to; checked once all documents are read (refs.c). */
enum rq_ref_use {
    RQ_REF_TLS_SECRET, /* a Secret holding tls.crt and tls.key */
    RQ_REF_CA_BUNDLE,  /* a ConfigMap holding at least one PEM certificate */
    RQ_REF_AUTHN,      /* a BrokerAuthentication whose methods the port can use */
    RQ_REF_AUTHZ,      /* a BrokerAuthorization, on a port with an authenticationRef */
};

struct rq_ref {
    enum rq_ref_use use;
    char name[254];
    struct rq_pos pos;
    size_t port;      /* RQ_REF_AUTHN: index in cfg->ports */
    const char *note; /* static text added to a not-found message, or NULL */
};

/* Where method m of cfg->authns[a] was named (its `method:` value). */
struct rq_method_pos {
    size_t authn, method;
    struct rq_pos pos;
};

/* A named document seen so far, to catch duplicates across files. */
struct rq_named {
    const struct rq_kind *kind;
    char name[254];
    struct rq_pos pos;
};

struct rq_ld {
    struct rq_config *cfg;
    char *err;
    size_t errlen;
    bool failed; /* the first error wins; later ones are not written */

    const char *file; /* current file name, for positions */
    const char *data; /* current buffer (reader errors give byte offsets) */
    size_t len;
    yaml_document_t *ydoc;

    struct rq_doc doc;
    char path[256]; /* key path inside the document: "spec.advanced.clients" */
    size_t path_len;
    char key[160]; /* name of the value being set, for messages: "maxReceiveMaximum" */

    struct rq_pos *port_pos; /* parallel to cfg->ports: where each port number was written */
    size_t ports_cap, port_pos_cap, objects_cap, ignored_cap, authns_cap, authzs_cap;
    struct rq_named *named;
    size_t n_named, named_cap;
    struct rq_named *refs; /* brokerRef values, checked once all documents are read */
    size_t n_refs, refs_cap;
    char **files; /* names of the files read (positions point into them) */
    size_t n_files, files_cap;
    char *config_dir; /* where secrets/ and configmaps/ are looked for; NULL for buffers */
    struct rq_ref *xrefs; /* Secret, ConfigMap and BrokerAuthentication references, in order */
    size_t n_xrefs, xrefs_cap;
    struct rq_method_pos *method_pos;
    size_t n_method_pos, method_pos_cap;
    /* spec.ringmq.auth.requestTimeoutSeconds: where it was written (checked against
     * connectTimeoutSeconds once the document is read); set = it was given */
    struct rq_pos auth_timeout_pos;
    bool auth_timeout_set;
};

/* walk.c: generic walking of libyaml nodes against field tables. All int functions return 0 or
 * -1 after writing "file:line:col: message" into ld->err. */
struct rq_pos rq_walk_pos(const struct rq_ld *ld, const yaml_node_t *n);
int rq_walk_error(struct rq_ld *ld, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int rq_walk_error_pos(struct rq_ld *ld, struct rq_pos at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int rq_walk_type_error(struct rq_ld *ld, const yaml_node_t *n, const char *expected);
yaml_node_t *rq_walk_node(const struct rq_ld *ld, int id);
/* The scalar printed for a message: control bytes escaped, long values cut. */
const char *rq_walk_text(const yaml_node_t *n, char *buf, size_t cap);
bool rq_walk_is_null(const yaml_node_t *n);
int rq_walk_check_keys(struct rq_ld *ld, const yaml_node_t *map);
yaml_node_t *rq_walk_find(const struct rq_ld *ld, const yaml_node_t *map, const char *key);
/* The key node whose value is v in map, or NULL. */
yaml_node_t *rq_walk_key_of(const struct rq_ld *ld, const yaml_node_t *map, const yaml_node_t *v);
size_t rq_walk_push(struct rq_ld *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rq_walk_pop(struct rq_ld *ld, size_t mark);
void rq_walk_set_key(struct rq_ld *ld, const char *key);

int rq_walk_map(struct rq_ld *ld, yaml_node_t *map, const struct rq_field *fields, void *obj);
int rq_walk_uint(struct rq_ld *ld, const yaml_node_t *n, uint64_t min, uint64_t max,
                 uint64_t *out);
int rq_walk_bool(struct rq_ld *ld, const yaml_node_t *n, bool *out);
int rq_walk_enum(struct rq_ld *ld, const yaml_node_t *n, const char *choices, int *out);
/* Non-empty scalar without NUL bytes; copied into out[cap] when out is not NULL. */
int rq_walk_string(struct rq_ld *ld, const yaml_node_t *n, char *out, size_t cap);

/* A scalar that YAML reads as a string: quoted, or plain but not null, a boolean (including
 * YAML 1.1 yes/no/on/off), an integer or a float. "17" is a string, 17 is not. */
bool rq_walk_is_text(const yaml_node_t *n);
/* A list of non-empty strings (at least min of them), copied into a new array at *out. On error
 * *out holds what was copied so far; the caller frees it either way. */
int rq_walk_strlist(struct rq_ld *ld, yaml_node_t *list, size_t min, char ***out, size_t *n);

typedef int (*rq_entry_fn)(struct rq_ld *ld, yaml_node_t *key, yaml_node_t *val, void *obj);
/* A map of string to string (labels, ConfigMap data): each pair goes to fn when not NULL. */
int rq_walk_strmap(struct rq_ld *ld, yaml_node_t *map, rq_entry_fn fn, void *obj);

/* schema.c */
/* Broker resources: one DNS label of 3..63; ConfigMap / Secret (dns_subdomain): up to 253. */
bool rq_schema_valid_name(const char *s, bool dns_subdomain);
/* Keys of ConfigMap and Secret data: [-._a-zA-Z0-9]{1,253}. */
bool rq_schema_valid_key(const char *k);
/* A reference to a Secret or ConfigMap (what: "Secret" or "ConfigMap"): a valid name, copied
 * into out[254], and recorded for resolution with its use. */
int rq_schema_object_ref(struct rq_ld *ld, yaml_node_t *v, const char *what, enum rq_ref_use use,
                         char *out);
/* A Secret named under secretRef (v1) or secretName (v1beta1), the same thing under two keys:
 * secret is where the name goes (254 bytes), ref/name the nodes seen for each key. */
struct rq_secret_walk {
    char *secret;
    yaml_node_t *ref, *name;
};
/* Called for either key (ld->key): records v, or refuses it (-1, error given) when the other
 * key was given too. *beta: the key was secretName. */
int rq_schema_secret_key(struct rq_ld *ld, yaml_node_t *v, struct rq_secret_walk *w, bool *beta);
/* The kind called name (any_case: ignoring case, for "did you mean" hints), or NULL. */
const struct rq_kind *rq_schema_kind(const char *name, bool any_case);
/* A known kind that is refused for now, or NULL. */
const char *rq_schema_unsupported(const char *name);
const char *rq_schema_kind_list(void);

/* schema_tls.c: ports[].tls into t (mode, Manual secret, Automatic spec with defaults). On error
 * t may hold allocations: rq_ld_clear_tls frees them. */
int rq_schema_tls(struct rq_ld *ld, yaml_node_t *v, struct rq_tls_cfg *t);

/* schema_authn.c: BrokerAuthentication */
int rq_schema_authn_begin(struct rq_ld *ld);
int rq_schema_authn_spec(struct rq_ld *ld, yaml_node_t *v, void *obj);

/* schema_authz.c: BrokerAuthorization */
int rq_schema_authz_begin(struct rq_ld *ld);
int rq_schema_authz_spec(struct rq_ld *ld, yaml_node_t *v, void *obj);
void rq_schema_authz_free(struct rq_authz_cfg *a);

/* refs.c */
int rq_refs_add(struct rq_ld *ld, enum rq_ref_use use, const char *name, struct rq_pos pos,
                const char *note);
int rq_refs_add_method(struct rq_ld *ld, size_t authn, size_t method, struct rq_pos pos);
/* Resolves every recorded reference (reading the mounts it needs into the snapshot), checks
 * what each must hold, then points ports and methods at what they name. */
int rq_refs_resolve(struct rq_ld *ld);
void rq_refs_free(struct rq_ld *ld);

/* config.c: used by the schemas */
int rq_ld_add_port(struct rq_ld *ld, const struct rq_port_cfg *p, struct rq_pos pos);
int rq_ld_add_ignored(struct rq_ld *ld, const yaml_node_t *key);
struct rq_config_object *rq_ld_add_object(struct rq_ld *ld, int kind);
/* Appends a copy of key and of value[0..len) (NUL-terminated) to *arr of *n entries (capacity
 * grows in powers of two from 4, so no separate count is kept). */
int rq_ld_push_entry(struct rq_ld *ld, struct rq_config_entry **arr, size_t *n, const char *key,
                     const char *value, size_t len);
/* Appends a copy of s to *arr of *n strings (same growth). */
int rq_ld_push_str(struct rq_ld *ld, char ***arr, size_t *n, const char *s);
void rq_ld_free_entries(struct rq_config_entry *e, size_t n);
void rq_ld_free_strs(char **s, size_t n);
void rq_ld_clear_tls(struct rq_tls_cfg *t);
/* Room for one more element in arr (n used, *cap allocated); returns arr, moved, or NULL. */
void *rq_ld_reserve(void *arr, size_t n, size_t *cap, size_t elem);
int rq_ld_oom(struct rq_ld *ld);

#endif
