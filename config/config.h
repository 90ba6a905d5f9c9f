/* Configuration: Kubernetes-style YAML manifests (Broker, BrokerListener, ...) -> one immutable
 * snapshot of plain structs. Loading is pure apart from reading the files: no sockets, no globals.
 * A reload builds a whole new snapshot; the old one stays in use if the new one fails. */
#ifndef RQ_CONFIG_H
#define RQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rq_listener_protocol {
    RQ_PROTO_MQTT = 0,
    RQ_PROTO_WEBSOCKETS = 1,
};

enum rq_queue_strategy {
    RQ_QUEUE_NONE = 0,        /* queue full: the new message is dropped (QoS 0 first) */
    RQ_QUEUE_DROP_OLDEST = 1, /* queue full: the oldest queued message is dropped (QoS 0 first) */
};

enum rq_tls_mode {
    RQ_TLS_NONE = 0,      /* plain TCP (no ports[].tls) */
    RQ_TLS_MANUAL = 1,    /* certificate and key from a kubernetes.io/tls Secret */
    RQ_TLS_AUTOMATIC = 2, /* the broker issues its own certificate (certManagerCertificateSpec) */
};

enum rq_issuer_kind { RQ_ISSUER_ISSUER = 0, RQ_ISSUER_CLUSTER_ISSUER = 1 };

enum rq_key_algorithm {
    RQ_KEY_EC256 = 0,
    RQ_KEY_EC384 = 1,
    RQ_KEY_EC521 = 2,
    RQ_KEY_ED25519 = 3,
    RQ_KEY_RSA2048 = 4,
    RQ_KEY_RSA4096 = 5,
    RQ_KEY_RSA8192 = 6,
};

enum rq_rotation_policy { RQ_ROTATE_ALWAYS = 0, RQ_ROTATE_NEVER = 1 };

/* mode Automatic: what the certificate the broker issues for itself looks like
 * (certManagerCertificateSpec, or tls.automatic in v1beta1). Defaults are filled in. */
struct rq_tls_auto {
    char issuer_group[254]; /* issuerRef.group (v1beta1 apiGroup); default "cert-manager.io" */
    int issuer_kind;        /* enum rq_issuer_kind; issuerRef.kind */
    char issuer_name[254];  /* issuerRef.name; "" when no spec was given */
    uint64_t duration_s;    /* certificate lifetime; default 7776000 (2160h, 90 days) */
    /* Renew this long before notAfter; default min(1296000 (360h), duration / 3); always less
     * than duration_s. */
    uint64_t renew_before_s;
    char secret_name[254]; /* secretName; "" when absent (a name for the stored key pair) */
    int key_algorithm;     /* enum rq_key_algorithm; default RQ_KEY_EC256 */
    int rotation_policy;   /* enum rq_rotation_policy; default RQ_ROTATE_ALWAYS */
    /* SANs: the DNS names listed, then "localhost" unless listed; the IPs listed (normalised
     * text, as inet_ntop writes them), then "127.0.0.1" unless listed. */
    char **dns;
    size_t n_dns;
    char **ip;
    size_t n_ip;
};

/* ports[].tls. Owned by the snapshot (the SAN arrays too). */
struct rq_tls_cfg {
    int mode;              /* enum rq_tls_mode */
    char secret_name[254]; /* Manual: manual.secretRef (v1beta1 manual.secretName) */
    /* Manual: the resolved Secret; it holds keys "tls.crt" (leaf first, then intermediates)
     * and "tls.key". Points into the same snapshot's objects. */
    const struct rq_config_object *secret;
    struct rq_tls_auto automatic; /* Automatic only; zero otherwise */
};

struct rq_authn_cfg;
struct rq_authz_cfg;

/* One listening socket. A port built by hand (memset to 0) is plain, unauthenticated MQTT. */
struct rq_port_cfg {
    uint16_t port;
    char bind_address[64]; /* "0.0.0.0" default; embedded default uses "127.0.0.1" */
    int protocol;          /* enum rq_listener_protocol */
    char listener[64];     /* metadata.name of the BrokerListener it came from */
    struct rq_tls_cfg tls; /* mode RQ_TLS_NONE: plain TCP */
    char authn_name[64];   /* authenticationRef; "" when absent */
    /* The BrokerAuthentication named by authn_name (points into the snapshot's authns), or NULL:
     * no authentication on this port. Every method of its chain is one ringmq builds. */
    const struct rq_authn_cfg *authn;
    char authz_name[64]; /* authorizationRef; "" when absent (needs an authenticationRef) */
    /* The BrokerAuthorization named by authz_name, or NULL: every authenticated client may do
     * everything on this port. */
    const struct rq_authz_cfg *authz;
};

/* One key of a ConfigMap or Secret, or of a string map (headers, attributes). value holds len
 * bytes and a NUL after them (so text values are C strings too). Secret data and ConfigMap
 * binaryData arrive base64-decoded. */
struct rq_config_entry {
    char *key;
    char *value;
    size_t len;
};

enum rq_config_object_kind {
    RQ_CONFIG_CONFIGMAP = 0,
    RQ_CONFIG_SECRET = 1,
};

/* A ConfigMap or Secret: a document of the loaded YAML, or a directory mounted the way a Pod
 * sees one (<config dir>/secrets/<name>/ or configmaps/<name>/, one file per key) that some
 * reference needed. Names are unique per kind within one snapshot; a document wins over a
 * mount of the same name (the mount is then not read). */
struct rq_config_object {
    int kind;       /* enum rq_config_object_kind */
    char name[254]; /* metadata.name, or the directory name */
    char ns[64];    /* metadata.namespace, "" when absent or mounted */
    char type[128]; /* Secret type, e.g. "kubernetes.io/tls"; "" when absent or mounted */
    bool immutable;
    bool mounted; /* read from a directory rather than a document */
    /* "file:line:col" of metadata.name, or the directory path (for messages, and for watching
     * the files of a mount). */
    char *origin;
    struct rq_config_entry *entries; /* data, binaryData and stringData together, file order;
                                        mounted: one per file, by file name */
    size_t n_entries;
};

enum rq_authn_kind {
    RQ_AUTHN_CUSTOM = 0,
    RQ_AUTHN_SAT = 1, /* ServiceAccountToken */
    RQ_AUTHN_X509 = 2,
};

/* One x509Settings.authorizationAttributes entry: a certificate in the client's chain whose
 * subject matches gets these attributes. */
struct rq_x509_attr_rule {
    char *name;                    /* the entry's key, e.g. "intermediate" */
    char *subject;                 /* as written, e.g. "CN = Contoso Intermediate CA" */
    struct rq_config_entry *attrs; /* attribute name -> value (text), config order */
    size_t n_attrs;
};

struct rq_authn_x509 {
    char trusted_ca[254]; /* trustedClientCaCert: ConfigMap name; default "client-ca" */
    /* The resolved ConfigMap: every PEM certificate under any key is a trust anchor (at least
     * one is there). */
    const struct rq_config_object *trusted_ca_obj;
    struct rq_x509_attr_rule *rules; /* authorizationAttributes, config order */
    size_t n_rules;
};

/* serviceAccountTokenSettings.ringmq.localVerification */
enum rq_sat_local {
    RQ_SAT_LOCAL_DISABLED = 0,
    RQ_SAT_LOCAL_FALLBACK = 1,
};

/* spec.ringmq.kubernetes: how the broker reaches the Kubernetes API (auth/kube.h). Each key
 * overrides what the detected source (in-cluster or kubeconfig) gives; "" = not set. */
struct rq_kube_cfg {
    char server[255];          /* https://host:port */
    char ca_file[255];         /* certificateAuthority: PEM file */
    char token_file[255];      /* tokenFile: bearer token file, re-read when it changes */
    char client_cert[255];     /* clientCertificate: PEM file */
    char client_key[255];      /* clientKey: PEM file */
    char kubeconfig[255];      /* kubeconfig: path (instead of $KUBECONFIG, ~/.kube/config) */
    char context[128];         /* context: kubeconfig context (instead of current-context) */
    char in_cluster_dir[255];  /* serviceAccountDir: default
                                  /var/run/secrets/kubernetes.io/serviceaccount */
};

struct rq_authn_sat {
    char **audiences; /* >= 1 */
    size_t n_audiences;
    int local_verification; /* enum rq_sat_local; default Disabled */
    const struct rq_kube_cfg *kube; /* the snapshot's spec.ringmq.kubernetes (bound at load) */
};

struct rq_authn_custom {
    char *endpoint;                    /* https://... */
    char ca_configmap[254];            /* caCertConfigMap; "" when absent */
    const struct rq_config_object *ca; /* resolved caCertConfigMap (holds a PEM), or NULL */
    char client_secret[254];           /* auth.x509.secretRef; "" when no auth */
    const struct rq_config_object *client_cert; /* resolved: has tls.crt and tls.key; or NULL */
    struct rq_config_entry *headers;            /* config order */
    size_t n_headers;
};

/* One entry of spec.authenticationMethods. Only the member matching kind is filled. */
struct rq_authn_method {
    int kind; /* enum rq_authn_kind */
    struct rq_authn_x509 x509;
    struct rq_authn_sat sat;
    struct rq_authn_custom custom;
};

/* A BrokerAuthentication document: an ordered chain of methods (AIO-INTERFACES 2.3). */
struct rq_authn_cfg {
    char name[64]; /* metadata.name */
    struct rq_authn_method *methods;
    size_t n_methods; /* >= 1 */
};

/* BrokerAuthorization (AIO-INTERFACES 3.1): allow-only rules. Patterns are kept as written and
 * were checked at load time (substitution tokens whole topic levels and known, valid MQTT
 * filters, no $share/ prefix, '*' only at the end of a Connect client id); auth/authz.c
 * compiles them. */
enum rq_authz_method { RQ_AUTHZ_CONNECT = 0, RQ_AUTHZ_PUBLISH = 1, RQ_AUTHZ_SUBSCRIBE = 2 };

struct rq_authz_resource {
    int method;      /* enum rq_authz_method */
    char **patterns; /* Connect: clientIds (may be none: any client id); else topics (>= 1) */
    size_t n_patterns;
};

/* principals.attributes[i]: every attribute of the map must hold (AND). */
struct rq_authz_attrs {
    struct rq_config_entry *attrs; /* name -> value (text), >= 1 */
    size_t n_attrs;
};

struct rq_authz_rule {
    char *origin; /* "file:line:col" of the rule, for messages */
    /* principals: the rule applies to a client that matches any listed item (OR); at least
     * one item in all */
    char **usernames;
    size_t n_usernames;
    char **client_ids;
    size_t n_client_ids;
    struct rq_authz_attrs *attr_sets;
    size_t n_attr_sets;
    struct rq_authz_resource *resources; /* brokerResources, >= 1 */
    size_t n_resources;
};

struct rq_authz_cfg {
    char name[64]; /* metadata.name */
    bool cache;    /* authorizationPolicies.cache (v1beta1 enableCache); default true */
    struct rq_authz_rule *rules; /* none (rules: [] or absent): everything is denied */
    size_t n_rules;
};

/* An AIO key that a single-node broker has no use for: accepted and ignored. The caller logs
 * "<where>: ignored: <key> (not applicable)". */
struct rq_config_ignored {
    char *key;   /* key path in its document, e.g. "spec.cardinality" */
    char *where; /* "broker.yaml:5:3" */
};

struct rq_config {
    /* Broker spec.advanced.clients (AIO names) */
    uint16_t max_keepalive;      /* maxKeepAliveSeconds; default 65535 (no cap below max) */
    uint16_t max_receive_max;    /* maxReceiveMaximum; default 65535 */
    uint32_t max_packet_size;    /* maxPacketSizeBytes; default 268435456 */
    uint32_t max_session_expiry; /* maxSessionExpirySeconds; default 4294967295 */
    uint32_t max_message_expiry; /* maxMessageExpirySeconds; default 4294967295 */
    uint32_t queue_limit;        /* subscriberQueueLimit.length; default 1000 */
    int queue_strategy;          /* subscriberQueueLimit.strategy; default RQ_QUEUE_NONE */
    /* Broker spec.diagnostics.logs.level */
    int log_level; /* enum rq_log_level; default info */
    /* ringmq extension block: Broker spec.ringmq */
    int threads;                 /* 0 = online CPUs */
    uint32_t max_connections;    /* default 100000 */
    uint16_t max_inflight;       /* our Receive Maximum toward clients' QoS>0 sends; default 100 */
    uint16_t max_topic_levels;   /* default 200 */
    uint16_t max_topic_alias;    /* Topic Alias Maximum we accept from clients; default 64 */
    uint32_t shard_backlog;      /* backpressure: messages waiting at a shard; default 32768 */
    /* batchWaitMicroseconds: how long a shard that has work in sight may let completions
     * gather before it wakes (io_uring min_wait, net/shard.c wait_events); 0 = wake on the
     * first one. Bounds the latency it adds. */
    uint32_t batch_wait_us;
    /* setupBatchWaitMicroseconds: the same wait while the shard has moved no PUBLISH for
     * RQ_SETUP_QUIET_MS (only connections opening and closing, as in a reconnect storm, whose
     * handshakes do not notice a millisecond); used only when above batch_wait_us. */
    uint32_t setup_batch_wait_us;
    /* spec.ringmq.placement (core/placement.h): moving a connected publisher to the shard its
     * messages go to. enabled: default true; minSharePercent 50..100, default 90;
     * maxMovesPerSecond per shard, 0 = none, default 100; minResidentSeconds after a move,
     * default 10; maxTargetBusyPercent, default 50. Read at each decision: a reload applies. */
    bool placement_enabled;
    uint8_t placement_min_share_pct;
    uint8_t placement_max_busy_pct;
    uint32_t placement_max_moves;
    uint32_t placement_min_resident_s;
    uint32_t connect_timeout_ms; /* default 10000 */
    /* spec.ringmq.auth: the authentication service pool (auth/pool.h) that runs the Custom
     * method's HTTPS requests. threads: default 2; max_pending: accepted and unanswered requests,
     * default 10000; request_timeout_ms: requestTimeoutSeconds, default 5000 and always below
     * connect_timeout_ms (given: an error otherwise; defaulted: lowered to fit). */
    uint32_t auth_threads;
    uint32_t auth_max_pending;
    uint32_t auth_request_timeout_ms;
    /* spec.ringmq.auth.cacheEntries: ServiceAccountToken results held (LRU), default 100000;
     * negativeCacheSeconds: how long a refused token stays refused without asking the API
     * again, default 10 (0 = not cached). */
    uint32_t auth_cache_entries;
    uint32_t auth_negative_cache_s;
    uint32_t auth_sa_cache_s; /* annotationCacheSeconds: ServiceAccount annotations, default 60 */
    struct rq_kube_cfg kube; /* spec.ringmq.kubernetes */
    /* preConnectLimit: what peers that have not completed CONNECT may hold, all shards
     * together. connections: accepted and not yet past CONNECT (more are closed at accept);
     * default 10000. bytes: of unfinished first packets; default 67108864 (64 MiB). */
    uint32_t preconnect_conns;
    uint64_t preconnect_bytes;
    bool log_json;               /* default false */
    /* Metrics and health over HTTP (net/http.h): Broker spec.diagnostics.metrics.prometheusPort
     * (default 9600, 0 = off; metrics_port_set: written in the configuration, so that a port
     * that cannot be bound is an error rather than a warning) on spec.ringmq.metrics.bindAddress
     * (default 0.0.0.0 with a configuration, 127.0.0.1 for the embedded default). */
    uint16_t metrics_port;
    bool metrics_port_set;
    char metrics_bind[64];
    /* spec.ringmq.sysTopics (default true): $SYS/broker/... every sysTopicsIntervalSeconds
     * (default 10). */
    bool sys_topics;
    uint32_t sys_interval_s;
    /* spec.ringmq.shutdownDelaySeconds (default 0): after SIGTERM, /readyz fails at once and
     * the listeners stay open this long before the broker stops. */
    uint32_t shutdown_delay_s;
    char data_dir[255];          /* dataDir: broker-issued certificates (tls mode Automatic);
                                    "" = the default chosen by the CLI (see README) */

    struct rq_port_cfg *ports;
    size_t n_ports;
    char source[256]; /* path loaded from, or "(embedded default)" */

    char broker_name[64];             /* metadata.name of the Broker document; "" when absent */
    struct rq_config_object *objects; /* ConfigMaps and Secrets: documents in load order, then
                                         the mounted ones that references needed */
    size_t n_objects;
    struct rq_authn_cfg *authns; /* BrokerAuthentication documents, in load order */
    size_t n_authns;
    struct rq_authz_cfg *authzs; /* BrokerAuthorization documents, in load order */
    size_t n_authzs;
    struct rq_config_ignored *ignored; /* AIO keys accepted but not applicable, in load order */
    size_t n_ignored;
};

/* The embedded default: plain MQTT on 127.0.0.1:1883, authentication disabled. */
struct rq_config *rq_config_default(void);

/* Loads a YAML file or a directory of *.yaml / *.yml files (sorted by name), each possibly holding
 * several documents. On error returns NULL and writes "file:line:col: what is wrong" to err.
 * Unknown keys, wrong types, out-of-range values and unsupported features (ServiceAccountToken
 * localVerification Fallback on a port) are errors. Secret and ConfigMap references resolve to a
 * document of the stream or else to a
 * mounted directory under the config directory (path itself when it is a directory, else the
 * directory holding the file): <dir>/secrets/<name>/, <dir>/configmaps/<name>/. Mounted objects
 * are read now, so the snapshot is self-contained. */
struct rq_config *rq_config_load(const char *path, char *err, size_t errlen);

/* Same, from a memory buffer (name is used in error messages). There is no config directory,
 * so references resolve only to documents in the buffer. For tests and fuzzing. */
struct rq_config *rq_config_load_buffer(const char *name, const char *data, size_t len, char *err,
                                        size_t errlen);

/* The ConfigMap or Secret (kind: enum rq_config_object_kind) called name in the snapshot: a
 * document, or a mount that a reference needed at load time; NULL when there is none. The
 * pointer lives as long as c. Any thread may call it on a snapshot it holds. */
const struct rq_config_object *rq_config_find(const struct rq_config *c, int kind,
                                              const char *name);

/* The entry called key of o, or NULL (also when o is NULL). */
const struct rq_config_entry *rq_config_object_get(const struct rq_config_object *o,
                                                   const char *key);

/* The BrokerAuthentication called name, or NULL. */
const struct rq_authn_cfg *rq_config_find_authn(const struct rq_config *c, const char *name);

/* The BrokerAuthorization called name, or NULL. */
const struct rq_authz_cfg *rq_config_find_authz(const struct rq_config *c, const char *name);

void rq_config_free(struct rq_config *c);

#endif
