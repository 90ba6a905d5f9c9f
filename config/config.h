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

struct rq_port_cfg {
    uint16_t port;
    char bind_address[64]; /* "0.0.0.0" default; embedded default uses "127.0.0.1" */
    int protocol;          /* enum rq_listener_protocol */
    char listener[64];     /* metadata.name of the BrokerListener it came from */
};

/* One key of a ConfigMap or Secret. value holds len bytes and a NUL after them (so text values
 * are C strings too). Secret data and ConfigMap binaryData arrive base64-decoded. */
struct rq_config_entry {
    char *key;
    char *value;
    size_t len;
};

enum rq_config_object_kind {
    RQ_CONFIG_CONFIGMAP = 0,
    RQ_CONFIG_SECRET = 1,
};

/* A ConfigMap or Secret document, kept for the references (CA bundles, TLS secrets) that later
 * modules resolve by name. Names are unique per kind within one snapshot. */
struct rq_config_object {
    int kind;           /* enum rq_config_object_kind */
    char name[254];     /* metadata.name */
    char ns[64];        /* metadata.namespace, "" when absent */
    char type[128];     /* Secret type, e.g. "kubernetes.io/tls"; "" when absent */
    bool immutable;
    struct rq_config_entry *entries; /* data, binaryData and stringData together, file order */
    size_t n_entries;
};

/* An AIO key that a single-node broker has no use for: accepted and ignored. The caller logs
 * "<where>: ignored: <key> (not applicable)". */
struct rq_config_ignored {
    char *key;   /* key path in the Broker document, e.g. "spec.cardinality" */
    char *where; /* "broker.yaml:5:3" */
};

struct rq_config {
    /* Broker spec.advanced.clients (AIO names) */
    uint16_t max_keepalive;        /* maxKeepAliveSeconds; default 65535 (no cap below max) */
    uint16_t max_receive_max;      /* maxReceiveMaximum; default 65535 */
    uint32_t max_packet_size;      /* maxPacketSizeBytes; default 268435456 */
    uint32_t max_session_expiry;   /* maxSessionExpirySeconds; default 4294967295 */
    uint32_t max_message_expiry;   /* maxMessageExpirySeconds; default 4294967295 */
    uint32_t queue_limit;          /* subscriberQueueLimit.length; default 1000 */
    int queue_strategy;            /* subscriberQueueLimit.strategy; default RQ_QUEUE_NONE */
    /* Broker spec.diagnostics.logs.level */
    int log_level;                 /* enum rq_log_level; default info */
    /* ringmq extension block: Broker spec.ringmq */
    int threads;                   /* 0 = online CPUs */
    uint32_t max_connections;      /* default 100000 */
    uint16_t max_inflight;         /* our Receive Maximum toward clients' QoS>0 sends; default 100 */
    uint16_t max_topic_levels;     /* default 64 */
    uint16_t max_topic_alias;      /* Topic Alias Maximum we accept from clients; default 64 */
    uint32_t connect_timeout_ms;   /* default 10000 */
    bool log_json;                 /* default false */

    struct rq_port_cfg *ports;
    size_t n_ports;
    char source[256]; /* path loaded from, or "(embedded default)" */

    char broker_name[64];             /* metadata.name of the Broker document; "" when absent */
    struct rq_config_object *objects; /* ConfigMap and Secret documents, in load order */
    size_t n_objects;
    struct rq_config_ignored *ignored; /* AIO keys accepted but not applicable, in load order */
    size_t n_ignored;
};

/* The embedded default: plain MQTT on 127.0.0.1:1883, authentication disabled. */
struct rq_config *rq_config_default(void);

/* Loads a YAML file or a directory of *.yaml / *.yml files (sorted by name), each possibly holding
 * several documents. On error returns NULL and writes "file:line:col: what is wrong" to err.
 * Unknown keys, wrong types, out-of-range values and unsupported features (tls,
 * authenticationRef, authorizationRef, protocol WebSockets until they are built) are errors. */
struct rq_config *rq_config_load(const char *path, char *err, size_t errlen);

/* Same, from a memory buffer (name is used in error messages). For tests and fuzzing. */
struct rq_config *rq_config_load_buffer(const char *name, const char *data, size_t len, char *err,
                                        size_t errlen);

void rq_config_free(struct rq_config *c);

#endif
