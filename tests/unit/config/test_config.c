/* Unit tests for config/: the embedded default, a full multi-document file, a directory of files,
 * listener TLS (v1 and v1beta1 shapes), BrokerAuthentication, Secret/ConfigMap references to
 * documents and to mounted directories (plain files and the kubelet's ..data symlink layout), and
 * every kind of bad input with its exact "file:line:col: message". */
#include "config/config.h"
#include "core/log.h"
#include "tests/unit/check.h"

#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Lines 1-4 of every Broker / BrokerListener test document. */
#define BROKER                                                                                     \
    "apiVersion: mqttbroker.iotoperations.azure.com/v1\n"                                          \
    "kind: Broker\n"                                                                               \
    "metadata:\n"                                                                                  \
    "  name: default\n"
#define LISTENER(name)                                                                             \
    "apiVersion: mqttbroker.iotoperations.azure.com/v1\n"                                          \
    "kind: BrokerListener\n"                                                                       \
    "metadata:\n"                                                                                  \
    "  name: " name "\n"
#define AUTHN(name)                                                                                \
    "apiVersion: mqttbroker.iotoperations.azure.com/v1\n"                                          \
    "kind: BrokerAuthentication\n"                                                                 \
    "metadata:\n"                                                                                  \
    "  name: " name "\n"
/* A five-line kubernetes.io/tls Secret and a five-line CA ConfigMap. */
#define TLS_SECRET(name)                                                                           \
    "apiVersion: v1\n"                                                                             \
    "kind: Secret\n"                                                                               \
    "metadata: {name: " name "}\n"                                                                 \
    "type: kubernetes.io/tls\n"                                                                    \
    "stringData: {tls.crt: CRT, tls.key: KEY}\n"
#define PEM "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
#define CA_CONFIGMAP(name)                                                                         \
    "apiVersion: v1\n"                                                                             \
    "kind: ConfigMap\n"                                                                            \
    "metadata: {name: " name "}\n"                                                                 \
    "data:\n"                                                                                      \
    "  ca.pem: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"\n"

static struct rq_config *load(const char *yaml, char *err, size_t errlen)
{
    return rq_config_load_buffer("x.yaml", yaml, strlen(yaml), err, errlen);
}

/* Loads yaml as "x.yaml", which must fail with exactly want. */
#define EXPECT_ERROR(yaml, want)                                                                   \
    do {                                                                                           \
        char err_[512];                                                                            \
        struct rq_config *c_ = load((yaml), err_, sizeof err_);                                    \
        CHECK(c_ == NULL);                                                                         \
        CHECK_STR(err_, (want));                                                                   \
        rq_config_free(c_);                                                                        \
    } while (0)

/* Metrics, health and $SYS keys: defaults, values, errors with their position. */
static void test_metrics_keys(void)
{
    struct rq_config *c = rq_config_default();
    CHECK(c != NULL);
    if (c) { /* the embedded default serves this host only */
        CHECK_EQ(c->metrics_port, 9600);
        CHECK(!c->metrics_port_set);
        CHECK_STR(c->metrics_bind, "127.0.0.1");
        CHECK(c->sys_topics);
        CHECK_EQ(c->sys_interval_s, 10);
        CHECK_EQ(c->shutdown_delay_s, 0);
    }
    rq_config_free(c);
    char err[512] = "";
    c = load(BROKER "spec:\n  ringmq:\n    threads: 1\n", err, sizeof err);
    CHECK(c != NULL);
    if (c) { /* with a configuration: every address, as the listeners */
        CHECK_STR(c->metrics_bind, "0.0.0.0");
        CHECK_EQ(c->metrics_port, 9600);
    }
    rq_config_free(c);
    c = load(BROKER "spec:\n  diagnostics:\n    metrics: {prometheusPort: 0}\n  ringmq:\n"
                    "    metrics: {bindAddress: \"::1\"}\n    sysTopics: false\n"
                    "    sysTopicsIntervalSeconds: 2\n    shutdownDelaySeconds: 7\n",
             err, sizeof err);
    CHECK_STR(err, "");
    if (c) {
        CHECK_EQ(c->metrics_port, 0);
        CHECK(c->metrics_port_set);
        CHECK_STR(c->metrics_bind, "::1");
        CHECK(!c->sys_topics);
        CHECK_EQ(c->sys_interval_s, 2);
        CHECK_EQ(c->shutdown_delay_s, 7);
    }
    rq_config_free(c);
    EXPECT_ERROR(BROKER "spec:\n  diagnostics:\n    metrics: {prometheusPort: 65536}\n",
                 "x.yaml:7:31: prometheusPort must be 0..65535, got 65536");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    metrics: {bindAddress: localhost}\n",
                 "x.yaml:7:28: bindAddress must be an IPv4 or IPv6 address literal, got "
                 "'localhost'");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    sysTopicsIntervalSeconds: 0\n",
                 "x.yaml:7:31: sysTopicsIntervalSeconds must be 1..86400, got 0");
    EXPECT_ERROR(BROKER "spec:\n  diagnostics:\n    metrics: {port: 1}\n",
                 "x.yaml:7:15: unknown key 'port' in Broker spec.diagnostics.metrics");
}

static void test_default(void)
{
    struct rq_config *c = rq_config_default();
    CHECK(c != NULL);
    CHECK_EQ(c->n_ports, 1);
    CHECK_EQ(c->ports[0].port, 1883);
    CHECK_STR(c->ports[0].bind_address, "127.0.0.1");
    CHECK_EQ(c->ports[0].protocol, RQ_PROTO_MQTT);
    CHECK_EQ(c->max_keepalive, 65535);
    CHECK_EQ(c->max_receive_max, 65535);
    CHECK_EQ(c->max_packet_size, 268435456);
    CHECK_EQ(c->max_session_expiry, 4294967295u);
    CHECK_EQ(c->max_message_expiry, 4294967295u);
    CHECK_EQ(c->queue_limit, 1000);
    CHECK_EQ(c->queue_strategy, RQ_QUEUE_NONE);
    CHECK_EQ(c->log_level, RQ_LOG_INFO);
    CHECK_EQ(c->threads, 0);
    CHECK_EQ(c->max_connections, 100000);
    CHECK_EQ(c->max_inflight, 100);
    CHECK_EQ(c->max_topic_levels, 200);
    CHECK_EQ(c->max_topic_alias, 64);
    CHECK_EQ(c->connect_timeout_ms, 10000);
    CHECK_EQ(c->preconnect_conns, 10000);
    CHECK_EQ(c->preconnect_bytes, 67108864);
    CHECK(!c->log_json);
    CHECK_STR(c->source, "(embedded default)");
    CHECK_EQ(c->n_objects, 0);
    CHECK_EQ(c->n_ignored, 0);
    rq_config_free(c);
    rq_config_free(NULL);
}

static const struct rq_config_object *find_object(const struct rq_config *c, int kind,
                                                  const char *name)
{
    for (size_t i = 0; i < c->n_objects; i++)
        if (c->objects[i].kind == kind && strcmp(c->objects[i].name, name) == 0)
            return &c->objects[i];
    return NULL;
}

static const struct rq_config_entry *find_entry(const struct rq_config_object *o, const char *k)
{
    for (size_t i = 0; o && i < o->n_entries; i++)
        if (strcmp(o->entries[i].key, k) == 0)
            return &o->entries[i];
    return NULL;
}

static void check_full_objects(const struct rq_config *c)
{
    CHECK_EQ(c->n_objects, 2);
    const struct rq_config_object *cm = find_object(c, RQ_CONFIG_CONFIGMAP, "client-ca");
    const struct rq_config_object *s = find_object(c, RQ_CONFIG_SECRET, "server-cert.tls");
    CHECK(cm != NULL && s != NULL);
    if (!cm || !s)
        return;
    const struct rq_config_entry *pem = find_entry(cm, "ca.pem"), *bin = find_entry(cm, "blob.bin");
    CHECK(pem && strcmp(pem->value, "-----BEGIN CERTIFICATE-----\nMIIB\n"
                                      "-----END CERTIFICATE-----\n") == 0);
    CHECK(bin && bin->len == 4 && memcmp(bin->value, "\x00\x01\x02\xff", 4) == 0);
    CHECK(!cm->immutable);
    CHECK_STR(s->type, "kubernetes.io/tls");
    CHECK(s->immutable);
    const struct rq_config_entry *key = find_entry(s, "tls.key"), *crt = find_entry(s, "tls.crt");
    CHECK(key && key->len == 5 && strcmp(key->value, "hello") == 0);
    CHECK(crt && strcmp(crt->value, "plain text") == 0);
}

static void check_full(const struct rq_config *c)
{
    CHECK_EQ(c->max_keepalive, 300);
    CHECK_EQ(c->max_receive_max, 500);
    CHECK_EQ(c->max_packet_size, 1048576);
    CHECK_EQ(c->max_session_expiry, 86400);
    CHECK_EQ(c->max_message_expiry, 3600);
    CHECK_EQ(c->queue_limit, 5000);
    CHECK_EQ(c->queue_strategy, RQ_QUEUE_DROP_OLDEST);
    CHECK_EQ(c->log_level, RQ_LOG_DEBUG);
    CHECK_EQ(c->threads, 4);
    CHECK_EQ(c->max_connections, 20000);
    CHECK_EQ(c->max_inflight, 32);
    CHECK_EQ(c->max_topic_levels, 16);
    CHECK_EQ(c->max_topic_alias, 10);
    CHECK_EQ(c->connect_timeout_ms, 5000);
    CHECK_EQ(c->preconnect_conns, 2000);
    CHECK_EQ(c->preconnect_bytes, 16777216);
    CHECK(c->log_json);
    CHECK_STR(c->broker_name, "default");
    CHECK_EQ(c->n_ports, 3);
    if (c->n_ports == 3) {
        CHECK_EQ(c->ports[0].port, 1883);
        CHECK_STR(c->ports[0].bind_address, "0.0.0.0");
        CHECK_STR(c->ports[0].listener, "plain");
        CHECK_EQ(c->ports[1].port, 1884);
        CHECK_STR(c->ports[1].bind_address, "::1");
        CHECK_STR(c->ports[1].listener, "plain");
        CHECK_EQ(c->ports[2].port, 8883);
        CHECK_STR(c->ports[2].bind_address, "127.0.0.1");
        CHECK_STR(c->ports[2].listener, "loopback");
    }
    check_full_objects(c);
}

static void test_full_file(const char *data_dir)
{
    char path[4300], err[512] = "";
    snprintf(path, sizeof path, "%s/full.yaml", data_dir);
    struct rq_config *c = rq_config_load(path, err, sizeof err);
    CHECK(c != NULL);
    CHECK_STR(err, "");
    if (!c)
        return;
    CHECK_STR(c->source, path);
    check_full(c);
    /* Ignored AIO keys, in file order, with the position of each key. */
    static const char *const keys[] = {"spec.cardinality", "spec.memoryProfile",
                                       "spec.advanced.encryptInternalTraffic"};
    static const char *const where[] = {"11:3", "14:3", "25:5"};
    CHECK_EQ(c->n_ignored, 3);
    CHECK_EQ(c->metrics_port, 9600);
    CHECK(c->metrics_port_set);
    CHECK_STR(c->metrics_bind, "0.0.0.0");
    for (size_t i = 0; i < 3 && i < c->n_ignored; i++) {
        char want[4400];
        snprintf(want, sizeof want, "%s:%s", path, where[i]);
        CHECK_STR(c->ignored[i].key, keys[i]);
        CHECK_STR(c->ignored[i].where, want);
    }
    rq_config_free(c);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
}

static void remove_tree(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
}

/* Files are read by name whatever order they were written in; other names, hidden files,
 * subfolders (secrets/, configmaps/) and folders named *.yaml are not read. */
static void test_directory(void)
{
    char dir[] = "/tmp/rq_config_test_XXXXXX", sub[4096], err[512] = "";
    CHECK(mkdtemp(dir) != NULL);
    write_file(dir, "30-more.yml", LISTENER("third") "spec:\n  ports:\n  - port: 3000\n"
                                                     "---\n" LISTENER("fourth") "spec:\n"
                                                     "  ports:\n  - port: 4000\n");
    write_file(dir, "20-listener.yaml", LISTENER("second") "spec:\n  ports:\n  - port: 2000\n");
    write_file(dir, "10-broker.yaml", BROKER "spec:\n  ringmq:\n    threads: 2\n");
    write_file(dir, "notes.txt", "not: yaml: at all: [");
    write_file(dir, ".hidden.yaml", "kind: Nonsense\n");
    snprintf(sub, sizeof sub, "%s/secrets", dir);
    CHECK_EQ(mkdir(sub, 0700), 0);
    write_file(sub, "x.yaml", "kind: Nonsense\n");
    snprintf(sub, sizeof sub, "%s/folder.yaml", dir);
    CHECK_EQ(mkdir(sub, 0700), 0);

    struct rq_config *c = rq_config_load(dir, err, sizeof err);
    CHECK(c != NULL);
    CHECK_STR(err, "");
    if (c) {
        CHECK_EQ(c->threads, 2);
        CHECK_EQ(c->n_ports, 3);
        for (size_t i = 0; i < 3 && i < c->n_ports; i++)
            CHECK_EQ(c->ports[i].port, 2000 + 1000 * i);
        CHECK_STR(c->ports[0].listener, "second");
        CHECK_STR(c->ports[2].listener, "fourth");
        CHECK_STR(c->source, dir);
    }
    rq_config_free(c);

    /* A port used in two files: the error is in the later file and names the earlier one. */
    write_file(dir, "40-dup.yaml", "\n" LISTENER("fifth") "spec:\n  ports:\n  - port: 2000\n");
    char want[4200];
    snprintf(want, sizeof want,
             "%s/40-dup.yaml:8:11: port 2000 is already used at %s/20-listener.yaml:7:11 (a port "
             "number may appear only once across all listeners)",
             dir, dir);
    c = rq_config_load(dir, err, sizeof err);
    CHECK(c == NULL);
    CHECK_STR(err, want);
    rq_config_free(c);

    /* A trailing slash does not double the separator in the names. */
    char slash[4200];
    snprintf(slash, sizeof slash, "%s/", dir);
    c = rq_config_load(slash, err, sizeof err);
    CHECK(c == NULL);
    CHECK_STR(err, want);
    rq_config_free(c);

    /* An empty directory loads: no listeners, the caller decides. */
    remove_tree(dir);
    strcpy(dir, "/tmp/rq_config_test_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    c = rq_config_load(dir, err, sizeof err);
    CHECK(c != NULL && c->n_ports == 0);
    rq_config_free(c);
    remove_tree(dir);

    c = rq_config_load("/nonexistent/ringmq.yaml", err, sizeof err);
    CHECK(c == NULL);
    CHECK_STR(err, "/nonexistent/ringmq.yaml: cannot open: No such file or directory");
}

static void test_empty_and_defaults(void)
{
    char err[512];
    struct rq_config *c = load("", err, sizeof err);
    CHECK(c != NULL && c->n_ports == 0 && c->max_inflight == 100);
    rq_config_free(c);
    c = load("# nothing here\n---\n---\n...\n", err, sizeof err);
    CHECK(c != NULL && c->n_ports == 0);
    rq_config_free(c);
    c = load(BROKER, err, sizeof err); /* a Broker without spec keeps every default */
    CHECK(c != NULL && c->max_keepalive == 65535 && c->queue_limit == 1000);
    CHECK(c != NULL && c->batch_wait_us == 200 && c->setup_batch_wait_us == 1000);
    CHECK(c != NULL && c->placement_enabled && c->placement_min_share_pct == 90 &&
          c->placement_max_moves == 100 && c->placement_min_resident_s == 10 &&
          c->placement_max_busy_pct == 50);
    rq_config_free(c);
    c = load(BROKER "spec:\n  ringmq:\n    placement: {enabled: false, minSharePercent: 50,\n"
                    "      maxMovesPerSecond: 0, minResidentSeconds: 3600,\n"
                    "      maxTargetBusyPercent: 100}\n",
             err, sizeof err);
    CHECK(c != NULL && !c->placement_enabled && c->placement_min_share_pct == 50 &&
          c->placement_max_moves == 0 && c->placement_min_resident_s == 3600 &&
          c->placement_max_busy_pct == 100);
    rq_config_free(c);
    /* Listeners without a Broker: defaults, any brokerRef. */
    c = load(LISTENER("only") "spec:\n  brokerRef: elsewhere\n  ports: [{port: 1}, {port: 65535}]\n",
             err, sizeof err);
    CHECK(c != NULL && c->n_ports == 2 && c->ports[1].port == 65535);
    CHECK(c != NULL && c->broker_name[0] == '\0');
    rq_config_free(c);
    /* Bounds are inclusive. */
    c = load(BROKER "spec:\n  advanced:\n    clients:\n      maxKeepAliveSeconds: 0\n"
                    "      maxSessionExpirySeconds: 4294967295\n"
                    "      maxPacketSizeBytes: 268435456\n  ringmq:\n    threads: 1024\n"
                    "    maxTopicAliases: 0\n    maxConnections: 10000000\n"
                    "    connectTimeoutSeconds: 3600\n    shardBacklogLimit: 16777216\n"
                    "    batchWaitMicroseconds: 10000\n    setupBatchWaitMicroseconds: 0\n"
                    "    preConnectLimit: {connections: 1, bytes: 1099511627776}\n",
             err, sizeof err);
    CHECK(c != NULL);
    if (c) {
        CHECK_EQ(c->max_keepalive, 0);
        CHECK_EQ(c->max_session_expiry, 4294967295u);
        CHECK_EQ(c->threads, 1024);
        CHECK_EQ(c->max_topic_alias, 0);
        CHECK_EQ(c->max_connections, 10000000);
        CHECK_EQ(c->connect_timeout_ms, 3600000);
        CHECK_EQ(c->shard_backlog, 16777216);
        CHECK_EQ(c->batch_wait_us, 10000);
        CHECK_EQ(c->setup_batch_wait_us, 0);
        CHECK_EQ(c->preconnect_conns, 1);
        CHECK_EQ(c->preconnect_bytes, 1099511627776ull);
    }
    rq_config_free(c);
    /* spec.ringmq.auth: defaults, values, and the default timeout lowered under a short
     * connect timeout */
    c = load(BROKER "spec: {}\n", err, sizeof err);
    CHECK(c && c->auth_threads == 2 && c->auth_max_pending == 10000 &&
          c->auth_request_timeout_ms == 5000);
    rq_config_free(c);
    c = load(BROKER "spec:\n  ringmq:\n    auth: {threads: 64, maxPending: 1, "
                    "requestTimeoutSeconds: 9}\n",
             err, sizeof err);
    CHECK(c && c->auth_threads == 64 && c->auth_max_pending == 1 &&
          c->auth_request_timeout_ms == 9000);
    rq_config_free(c);
    c = load(BROKER "spec:\n  ringmq:\n    connectTimeoutSeconds: 3\n", err, sizeof err);
    CHECK(c && c->auth_request_timeout_ms == 2000);
    rq_config_free(c);
}

static void test_enums_any_case(void)
{
    char err[512];
    struct rq_config *c = load(BROKER "spec:\n  advanced:\n    clients:\n"
                                      "      subscriberQueueLimit: {length: 1, strategy: DROPOLDEST}\n"
                                      "  diagnostics: {logs: {level: WARN}}\n"
                                      "  ringmq: {logFormat: Json}\n"
                                      "---\n" LISTENER("any-case") "spec:\n"
                                      "  serviceType: nodeport\n"
                                      "  ports: [{port: 1883, protocol: MQTT}]\n",
                               err, sizeof err);
    CHECK(c != NULL);
    if (c) {
        CHECK_EQ(c->queue_strategy, RQ_QUEUE_DROP_OLDEST);
        CHECK_EQ(c->queue_limit, 1);
        CHECK_EQ(c->log_level, RQ_LOG_WARN);
        CHECK(c->log_json);
        CHECK_EQ(c->ports[0].protocol, RQ_PROTO_MQTT);
    }
    rq_config_free(c);
    c = load(BROKER "spec:\n  advanced:\n    clients:\n"
                    "      subscriberQueueLimit: {strategy: none}\n"
                    "  diagnostics: {logs: {level: trace}}\n  ringmq: {logFormat: TEXT}\n",
             err, sizeof err);
    CHECK(c != NULL && c->queue_strategy == RQ_QUEUE_NONE && c->log_level == RQ_LOG_TRACE);
    CHECK(c != NULL && !c->log_json);
    rq_config_free(c);
}

static void test_ignored_keys(void)
{
    char err[512];
    struct rq_config *c = load(BROKER "spec:\n  generateResourceLimits: {cpu: Enabled}\n"
                                      "  persistence: {maxSize: 10G}\n"
                                      "  advanced:\n    internalCerts: {duration: 240h}\n"
                                      "  diagnostics:\n    selfCheck: {mode: Enabled}\n"
                                      "    traces:\n      mode: Enabled\n",
                               err, sizeof err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_EQ(c->n_ignored, 5);
    static const char *const keys[] = {
        "spec.generateResourceLimits", "spec.persistence", "spec.advanced.internalCerts",
        "spec.diagnostics.selfCheck", "spec.diagnostics.traces"};
    static const char *const where[] = {"x.yaml:6:3", "x.yaml:7:3", "x.yaml:9:5", "x.yaml:11:5",
                                        "x.yaml:12:5"};
    for (size_t i = 0; i < 5 && i < c->n_ignored; i++) {
        CHECK_STR(c->ignored[i].key, keys[i]);
        CHECK_STR(c->ignored[i].where, where[i]);
    }
    rq_config_free(c);
}

static void test_bad_keys_and_types(void)
{
    EXPECT_ERROR(BROKER "spec:\n  advanced:\n    clients:\n      maxKeepAlive: 10\n",
                 "x.yaml:8:7: unknown key 'maxKeepAlive' in Broker spec.advanced.clients");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    thread: 1\n",
                 "x.yaml:7:5: unknown key 'thread' in Broker spec.ringmq");
    EXPECT_ERROR(BROKER "status: {}\n", "x.yaml:5:1: unknown key 'status' in Broker");
    EXPECT_ERROR(BROKER "spec:\n  advanced:\n    clients:\n      maxReceiveMaximum: \"17\"\n",
                 "x.yaml:8:26: maxReceiveMaximum must be an integer, got \"17\" (a quoted "
                 "string)");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    threads: 1.5\n",
                 "x.yaml:7:14: threads must be an integer, got 1.5");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    threads: 010\n",
                 "x.yaml:7:14: threads must be an integer, got 010");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    threads:\n",
                 "x.yaml:7:13: threads must be an integer, got nothing (null)");
    EXPECT_ERROR(BROKER "spec:\n  advanced:\n    clients: [1, 2]\n",
                 "x.yaml:7:14: clients must be a mapping, got a list");
    EXPECT_ERROR(BROKER "spec: 5\n", "x.yaml:5:7: spec must be a mapping, got 5");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    maxInflight: {a: 1}\n",
                 "x.yaml:7:18: maxInflight must be an integer, got a mapping");
    EXPECT_ERROR("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nimmutable: yes\n",
                 "x.yaml:4:12: immutable must be true or false, got yes");
    EXPECT_ERROR("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nimmutable: \"true\"\n",
                 "x.yaml:4:12: immutable must be true or false, got \"true\" (a quoted string)");
    EXPECT_ERROR(BROKER "  labels:\n    app: [x]\n",
                 "x.yaml:6:10: labels['app'] must be a string, got a list");
    EXPECT_ERROR(BROKER "spec:\n  ? [a]\n  : 1\n", "x.yaml:6:5: keys must be strings, got a list");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  serviceName: \"\"\n  ports: [{port: 1}]\n",
                 "x.yaml:6:16: serviceName must not be empty");
}

static void test_bad_ranges(void)
{
    EXPECT_ERROR(BROKER "spec:\n  advanced:\n    clients:\n      maxReceiveMaximum: 0\n",
                 "x.yaml:8:26: maxReceiveMaximum must be 1..65535, got 0");
    EXPECT_ERROR(BROKER "spec:\n  advanced:\n    clients:\n      maxKeepAliveSeconds: -1\n",
                 "x.yaml:8:28: maxKeepAliveSeconds must be 0..65535, got -1");
    EXPECT_ERROR(BROKER "spec:\n  advanced:\n    clients:\n      maxPacketSizeBytes: 268435457\n",
                 "x.yaml:8:27: maxPacketSizeBytes must be 1..268435456, got 268435457");
    EXPECT_ERROR(BROKER "spec:\n  advanced:\n    clients:\n"
                        "      maxSessionExpirySeconds: 99999999999999999999999\n",
                 "x.yaml:8:32: maxSessionExpirySeconds must be 1..4294967295, got "
                 "99999999999999999999999");
    EXPECT_ERROR(BROKER "spec:\n  advanced:\n    clients:\n      maxMessageExpirySeconds: 0\n",
                 "x.yaml:8:32: maxMessageExpirySeconds must be 1..4294967295, got 0");
    EXPECT_ERROR(BROKER "spec:\n  advanced:\n    clients:\n"
                        "      subscriberQueueLimit:\n        length: 0\n",
                 "x.yaml:9:17: length must be 1..4294967295, got 0");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    threads: 1025\n",
                 "x.yaml:7:14: threads must be 0..1024, got 1025");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    maxConnections: 0\n",
                 "x.yaml:7:21: maxConnections must be 1..10000000, got 0");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    maxInflight: 65536\n",
                 "x.yaml:7:18: maxInflight must be 1..65535, got 65536");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    maxTopicLevels: 0\n",
                 "x.yaml:7:21: maxTopicLevels must be 1..1024, got 0");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    maxTopicAliases: 65536\n",
                 "x.yaml:7:22: maxTopicAliases must be 0..65535, got 65536");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    connectTimeoutSeconds: 3601\n",
                 "x.yaml:7:28: connectTimeoutSeconds must be 1..3600, got 3601");
    /* spec.ringmq.auth: bounds, and the request timeout below the connect timeout */
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    auth: {threads: 0}\n",
                 "x.yaml:7:21: threads must be 1..64, got 0");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    auth: {maxPending: 1000001}\n",
                 "x.yaml:7:24: maxPending must be 1..1000000, got 1000001");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    connectTimeoutSeconds: 5\n"
                        "    auth: {requestTimeoutSeconds: 5}\n",
                 "x.yaml:8:35: requestTimeoutSeconds (5) must be below connectTimeoutSeconds (5)");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    batchWaitMicroseconds: 10001\n",
                 "x.yaml:7:28: batchWaitMicroseconds must be 0..10000, got 10001");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    setupBatchWaitMicroseconds: 10001\n",
                 "x.yaml:7:33: setupBatchWaitMicroseconds must be 0..10000, got 10001");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    placement: {minSharePercent: 49}\n",
                 "x.yaml:7:34: minSharePercent must be 50..100, got 49");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    placement: {maxMovesPerSecond: 10001}\n",
                 "x.yaml:7:36: maxMovesPerSecond must be 0..10000, got 10001");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    placement: {minResidentSeconds: 0}\n",
                 "x.yaml:7:37: minResidentSeconds must be 1..3600, got 0");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    placement: {maxTargetBusyPercent: 0}\n",
                 "x.yaml:7:39: maxTargetBusyPercent must be 1..100, got 0");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    placement: {enabled: maybe}\n",
                 "x.yaml:7:26: enabled must be true or false, got maybe");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    shardBacklogLimit: 15\n",
                 "x.yaml:7:24: shardBacklogLimit must be 16..16777216, got 15");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    preConnectLimit: {connections: 0}\n",
                 "x.yaml:7:36: connections must be 1..10000000, got 0");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    preConnectLimit: {bytes: 65535}\n",
                 "x.yaml:7:30: bytes must be 65536..1099511627776, got 65535");
}

static void test_bad_enums(void)
{
    EXPECT_ERROR(BROKER "spec:\n  advanced:\n    clients:\n"
                        "      subscriberQueueLimit: {strategy: Drop}\n",
                 "x.yaml:8:40: strategy must be one of None|DropOldest, got 'Drop'");
    EXPECT_ERROR(BROKER "spec:\n  diagnostics:\n    logs:\n      level: verbose\n",
                 "x.yaml:8:14: level must be one of error|warn|info|debug|trace, got 'verbose'");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    logFormat: xml\n",
                 "x.yaml:7:16: logFormat must be one of text|json, got 'xml'");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  serviceType: ClusterIP2\n  ports: [{port: 1}]\n",
                 "x.yaml:6:16: serviceType must be one of ClusterIp|LoadBalancer|NodePort, got "
                 "'ClusterIP2'");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports: [{port: 1, protocol: [Mqtt]}]\n",
                 "x.yaml:6:31: protocol must be one of Mqtt|WebSockets, got a list");
}

static void test_bad_documents(void)
{
    EXPECT_ERROR("apiVersion: mqttbroker.iotoperations.azure.com/v1\nmetadata: {name: abc}\n",
                 "x.yaml:1:1: missing required key 'kind' (every document needs apiVersion and "
                 "kind)");
    EXPECT_ERROR("---\nkind: Broker\nmetadata: {name: abc}\n",
                 "x.yaml:2:1: missing required key 'apiVersion' in Broker");
    EXPECT_ERROR("apiVersion: v1\nkind: Broker\nmetadata: {name: abc}\n",
                 "x.yaml:1:13: apiVersion 'v1' is not valid for kind Broker (expected "
                 "mqttbroker.iotoperations.azure.com/v1 or "
                 "mqttbroker.iotoperations.azure.com/v1beta1)");
    EXPECT_ERROR("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Secret\n",
                 "x.yaml:1:13: apiVersion 'mqttbroker.iotoperations.azure.com/v1' is not valid "
                 "for kind Secret (expected v1)");
    EXPECT_ERROR("apiVersion: v1\nkind: Deployment\n",
                 "x.yaml:2:7: unknown kind 'Deployment' (expected Broker, BrokerListener, "
                 "BrokerAuthentication, BrokerAuthorization, ConfigMap or Secret)");
    EXPECT_ERROR("apiVersion: v1\nkind: brokerlistener\n",
                 "x.yaml:2:7: unknown kind 'brokerlistener' (did you mean BrokerListener?)");
    EXPECT_ERROR("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\n"
                 "metadata: {name: authn}\nspec: {}\n",
                 "x.yaml:4:7: missing required key 'authenticationMethods' in "
                 "BrokerAuthentication spec");
    EXPECT_ERROR("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthorization\n"
                 "metadata: {name: authz}\nspec: {}\n",
                 "x.yaml:4:7: missing required key 'authorizationPolicies' in "
                 "BrokerAuthorization spec");
    EXPECT_ERROR("- a\n- b\n",
                 "x.yaml:1:1: a document must be a mapping with apiVersion and kind, got a list");
    EXPECT_ERROR("just text\n", "x.yaml:1:1: a document must be a mapping with apiVersion and "
                                "kind, got just text");
    EXPECT_ERROR("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\nspec: {}\n",
                 "x.yaml:1:1: missing required key 'metadata' in Broker");
    EXPECT_ERROR(LISTENER("lst"), "x.yaml:1:1: missing required key 'spec' in BrokerListener");
    EXPECT_ERROR(BROKER "---\n" BROKER,
                 "x.yaml:7:7: only one Broker is allowed (another is defined at x.yaml:2:7)");
}

static void test_bad_names(void)
{
    EXPECT_ERROR("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\n"
                 "metadata:\n  name: Default\n",
                 "x.yaml:4:9: metadata.name 'Default' is not valid: use 3..63 lowercase letters, "
                 "digits and '-', starting and ending with a letter or digit");
    EXPECT_ERROR(LISTENER("ab") "spec: {ports: [{port: 1}]}\n",
                 "x.yaml:4:9: metadata.name 'ab' is not valid: use 3..63 lowercase letters, "
                 "digits and '-', starting and ending with a letter or digit");
    EXPECT_ERROR(LISTENER("-abc") "spec: {ports: [{port: 1}]}\n",
                 "x.yaml:4:9: metadata.name '-abc' is not valid: use 3..63 lowercase letters, "
                 "digits and '-', starting and ending with a letter or digit");
    EXPECT_ERROR(LISTENER("a234567890123456789012345678901234567890123456789012345678901234")
                 "spec: {ports: [{port: 1}]}\n",
                 "x.yaml:4:9: metadata.name 'a23456789012345678901234567890123456789012345678901"
                 "234567890...' is not valid: use 3..63 lowercase letters, digits and '-', "
                 "starting and ending with a letter or digit");
    EXPECT_ERROR(LISTENER("a.b.c") "spec: {ports: [{port: 1}]}\n",
                 "x.yaml:4:9: metadata.name 'a.b.c' is not valid: use 3..63 lowercase letters, "
                 "digits and '-', starting and ending with a letter or digit");
    EXPECT_ERROR("apiVersion: v1\nkind: Secret\nmetadata: {name: a..b}\n",
                 "x.yaml:3:18: metadata.name 'a..b' is not valid: use at most 253 lowercase "
                 "letters, digits, '-' and '.', each part starting and ending with a letter or "
                 "digit");
    EXPECT_ERROR("apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: x}\n",
                 "x.yaml:3:11: missing required key 'name' in ConfigMap metadata");
    EXPECT_ERROR(LISTENER("same") "spec: {ports: [{port: 1}]}\n---\n" LISTENER("same")
                 "spec: {ports: [{port: 2}]}\n",
                 "x.yaml:10:9: BrokerListener 'same' is defined twice (first at x.yaml:4:9)");
    EXPECT_ERROR("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n"
                 "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
                 "x.yaml:7:18: Secret 's' is defined twice (first at x.yaml:3:18)");
    EXPECT_ERROR(BROKER "---\n" LISTENER("lst") "spec:\n  brokerRef: other\n  ports: [{port: 1}]\n",
                 "x.yaml:11:14: brokerRef 'other' does not name the Broker 'default'");
    /* The Broker may come after the listener that refers to it. */
    char err[512];
    struct rq_config *c = load(LISTENER("lst") "spec:\n  brokerRef: default\n  ports: [{port: 1}]\n"
                                              "---\n" BROKER,
                               err, sizeof err);
    CHECK(c != NULL);
    rq_config_free(c);
    /* Same name in different kinds is fine. */
    c = load("apiVersion: v1\nkind: Secret\nmetadata: {name: abc}\n---\n"
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: abc}\n---\n" LISTENER("abc")
             "spec: {ports: [{port: 1}]}\n",
             err, sizeof err);
    CHECK(c != NULL && c->n_objects == 2);
    rq_config_free(c);
}

static void test_bad_listeners(void)
{
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - port: 1883\n  - port: 1883\n",
                 "x.yaml:8:11: port 1883 is already used at x.yaml:7:11 (a port number may appear "
                 "only once across all listeners)");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports: [{port: 1883}]\n---\n" LISTENER("ls2")
                 "spec:\n  ports:\n    - port: 1883\n",
                 "x.yaml:14:13: port 1883 is already used at x.yaml:6:18 (a port number may "
                 "appear only once across all listeners)");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - port: 1883\n    authenticationRef: default\n",
                 "x.yaml:8:24: authenticationRef 'default' does not name a BrokerAuthentication "
                 "document");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - port: 1883\n    authorizationRef: my-authz\n",
                 "x.yaml:8:23: authorizationRef 'my-authz' does not name a BrokerAuthorization "
                 "document");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - port: 0\n",
                 "x.yaml:7:11: port must be 1..65535, got 0 (ringmq needs a fixed port to listen "
                 "on; 0 would pick a random one)");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - port: \"0\"\n",
                 "x.yaml:7:11: port must be an integer, got \"0\" (a quoted string)");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - port: 65536\n",
                 "x.yaml:7:11: port must be 1..65535, got 65536");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - nodePort: 30000\n",
                 "x.yaml:7:5: missing required key 'port' in BrokerListener spec.ports[0]");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - port: 1\n  - port: 2\n    prot: Mqtt\n",
                 "x.yaml:9:5: unknown key 'prot' in BrokerListener spec.ports[1]");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports: []\n", "x.yaml:6:10: ports must not be empty");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - 1883\n",
                 "x.yaml:7:5: ports[0] must be a mapping, got 1883");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports: 1883\n",
                 "x.yaml:6:10: ports must be a list of ports, got 1883");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  serviceType: ClusterIp\n",
                 "x.yaml:6:3: missing required key 'ports' in BrokerListener spec");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - port: 1\n    bindAddress: localhost\n",
                 "x.yaml:8:18: bindAddress must be an IPv4 or IPv6 address literal, got "
                 "'localhost'");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - port: 1\n    bindAddress: 1.2.3.4.5\n",
                 "x.yaml:8:18: bindAddress must be an IPv4 or IPv6 address literal, got "
                 "'1.2.3.4.5'");
}

static void test_bad_yaml(void)
{
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    threads: 1\n    threads: 2\n",
                 "x.yaml:8:5: duplicate key 'threads' (first at 7:5)");
    EXPECT_ERROR("apiVersion: v1\nkind: ConfigMap\nkind: ConfigMap\n",
                 "x.yaml:3:1: duplicate key 'kind' (first at 2:1)");
    EXPECT_ERROR(BROKER "spec:\n  ringmq: {threads: 1\n",
                 "x.yaml:7:1: YAML syntax error: did not find expected ',' or '}' (while parsing "
                 "a flow mapping at 6:11)");
    EXPECT_ERROR(BROKER "spec:\n  ringmq:\n    threads: 1\n   bad: 2\n",
                 "x.yaml:8:4: YAML syntax error: did not find expected key (while parsing a block "
                 "mapping at 6:3)");
    EXPECT_ERROR("apiVersion: v1\n\tkind: x\n",
                 "x.yaml:2:1: YAML syntax error: found a tab character that violates indentation "
                 "(while scanning a plain scalar at 1:13)");
    EXPECT_ERROR("apiVersion: *nope\n",
                 "x.yaml:1:13: YAML syntax error: found undefined alias");
    EXPECT_ERROR("apiVersion: v1\nkind: \xff\n",
                 "x.yaml:2:7: invalid input: invalid leading UTF-8 octet");
}

static void test_configmaps_and_secrets(void)
{
    EXPECT_ERROR("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  k: \"not base64!\"\n",
                 "x.yaml:5:6: data['k'] is not valid base64");
    EXPECT_ERROR("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  k: QQ=\n",
                 "x.yaml:5:6: data['k'] is not valid base64");
    EXPECT_ERROR("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  a/b: x\n",
                 "x.yaml:5:3: key 'a/b' must be letters, digits, '-', '_' or '.'");
    EXPECT_ERROR("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: QQ==}\n"
                 "stringData: {k: A}\n",
                 "x.yaml:5:14: key 'k' is given twice in this Secret");
    EXPECT_ERROR("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: [a]\n",
                 "x.yaml:4:7: data must be a mapping of strings, got a list");
    char err[512];
    struct rq_config *c = load("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\n"
                               "data:\n  a: QQ==\n  b: QUI=\n  c: QUJD\n  d: \"\"\n  e:\n"
                               "  f: |\n    QUJD\n    REVG\n",
                               err, sizeof err);
    CHECK(c != NULL && c->n_objects == 1);
    if (c && c->n_objects == 1) {
        const struct rq_config_object *s = &c->objects[0];
        CHECK_EQ(s->kind, RQ_CONFIG_SECRET);
        CHECK_STR(s->name, "s");
        CHECK_STR(s->ns, "ns");
        CHECK_EQ(s->n_entries, 6);
        static const char *const want[] = {"A", "AB", "ABC", "", "", "ABCDEF"};
        for (size_t i = 0; i < 6 && i < s->n_entries; i++) {
            CHECK_STR(s->entries[i].value, want[i]);
            CHECK_EQ(s->entries[i].len, strlen(want[i]));
        }
    }
    rq_config_free(c);
}

/* ---- listener TLS, WebSockets ---------------------------------------------------------------- */

static void test_tls_v1(void)
{
    char err[512] = "";
    struct rq_config *c = load(
        LISTENER("tls") "spec:\n  ports:\n"
        "  - port: 8883\n"
        "    tls:\n      mode: automatic\n      certManagerCertificateSpec:\n"
        "        issuerRef: {group: example.org, kind: clusterissuer, name: my-issuer}\n"
        "        duration: 1h30m\n        renewBefore: 1.5m\n        secretName: my-cert\n"
        "        privateKey: {algorithm: rsa4096, rotationPolicy: NEVER}\n"
        "        san:\n          dns: [aio-broker, LOCALHOST, \"*.example.com\", aio-broker]\n"
        "          ip: [\"0:0:0:0:0:0:0:1\", 10.0.0.1]\n"
        "  - port: 8884\n    protocol: WebSockets\n"
        "    tls: {mode: Manual, manual: {secretRef: server-cert}}\n"
        "  - port: 8885\n    tls: {mode: AUTOMATIC}\n"
        "  - port: 8886\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n"
        "        issuerRef: {kind: Issuer, name: i}\n        duration: 24h\n"
        "        san: {ip: [127.0.0.1, \"::1\"]}\n"
        "  - port: 8080\n    protocol: websockets\n"
        "---\n" TLS_SECRET("server-cert"),
        err, sizeof err);
    CHECK(c != NULL);
    CHECK_STR(err, "");
    if (!c || c->n_ports != 5)
        return rq_config_free(c);
    const struct rq_tls_auto *a = &c->ports[0].tls.automatic;
    CHECK_EQ(c->ports[0].tls.mode, RQ_TLS_AUTOMATIC);
    CHECK_EQ(c->ports[0].protocol, RQ_PROTO_MQTT);
    CHECK_STR(a->issuer_group, "example.org");
    CHECK_EQ(a->issuer_kind, RQ_ISSUER_CLUSTER_ISSUER);
    CHECK_STR(a->issuer_name, "my-issuer");
    CHECK_EQ(a->duration_s, 5400);
    CHECK_EQ(a->renew_before_s, 90);
    CHECK_STR(a->secret_name, "my-cert");
    CHECK_EQ(a->key_algorithm, RQ_KEY_RSA4096);
    CHECK_EQ(a->rotation_policy, RQ_ROTATE_NEVER);
    /* Listed names first, repeats dropped (DNS names ignoring case); defaults only if missing. */
    CHECK_EQ(a->n_dns, 3);
    if (a->n_dns == 3) {
        CHECK_STR(a->dns[0], "aio-broker");
        CHECK_STR(a->dns[1], "LOCALHOST");
        CHECK_STR(a->dns[2], "*.example.com");
    }
    CHECK_EQ(a->n_ip, 3);
    if (a->n_ip == 3) {
        CHECK_STR(a->ip[0], "::1");
        CHECK_STR(a->ip[1], "10.0.0.1");
        CHECK_STR(a->ip[2], "127.0.0.1");
    }
    CHECK(c->ports[0].tls.secret == NULL && c->ports[0].authn == NULL);

    const struct rq_port_cfg *m = &c->ports[1];
    CHECK_EQ(m->protocol, RQ_PROTO_WEBSOCKETS);
    CHECK_EQ(m->tls.mode, RQ_TLS_MANUAL);
    CHECK_STR(m->tls.secret_name, "server-cert");
    CHECK(m->tls.secret != NULL && m->tls.secret == rq_config_find(c, RQ_CONFIG_SECRET, "server-cert"));
    const struct rq_config_entry *crt = rq_config_object_get(m->tls.secret, "tls.crt");
    CHECK(crt && strcmp(crt->value, "CRT") == 0 && crt->len == 3);
    CHECK(m->tls.secret && !m->tls.secret->mounted);
    CHECK_STR(m->tls.secret ? m->tls.secret->origin : NULL, "x.yaml:36:18");
    CHECK(m->tls.automatic.dns == NULL && m->tls.automatic.n_ip == 0);

    /* Automatic without a spec: every default. */
    a = &c->ports[2].tls.automatic;
    CHECK_EQ(c->ports[2].tls.mode, RQ_TLS_AUTOMATIC);
    CHECK_STR(a->issuer_group, "cert-manager.io");
    CHECK_STR(a->issuer_name, "");
    CHECK_EQ(a->duration_s, 7776000);
    CHECK_EQ(a->renew_before_s, 1296000);
    CHECK_STR(a->secret_name, "");
    CHECK_EQ(a->key_algorithm, RQ_KEY_EC256);
    CHECK_EQ(a->rotation_policy, RQ_ROTATE_ALWAYS);
    CHECK(a->n_dns == 1 && strcmp(a->dns[0], "localhost") == 0);
    CHECK(a->n_ip == 1 && strcmp(a->ip[0], "127.0.0.1") == 0);

    /* A short duration without renewBefore renews at two thirds of it. */
    a = &c->ports[3].tls.automatic;
    CHECK_STR(a->issuer_group, "cert-manager.io");
    CHECK_EQ(a->issuer_kind, RQ_ISSUER_ISSUER);
    CHECK_EQ(a->duration_s, 86400);
    CHECK_EQ(a->renew_before_s, 28800);
    CHECK(a->n_ip == 2 && strcmp(a->ip[0], "127.0.0.1") == 0 && strcmp(a->ip[1], "::1") == 0);

    CHECK_EQ(c->ports[4].protocol, RQ_PROTO_WEBSOCKETS);
    CHECK_EQ(c->ports[4].tls.mode, RQ_TLS_NONE);
    CHECK_EQ(c->n_ignored, 0);
    rq_config_free(c);
}

/* Go durations: units, fractions, sums; whole seconds rounded down. */
static void test_durations(void)
{
    static const struct {
        const char *text;
        uint64_t secs;
    } cases[] = {
        {"2160h", 7776000}, {"90m", 5400},  {"1h30m", 5400},      {"1.5h", 5400},
        {"3600s", 3600},    {"+2h", 7200},  {"1h0m0.9s", 3600},   {"10000ms", 10},
        {"1h1us", 3600},    {"1h1ns", 3600}, {"1h1\xc2\xb5s", 3600}, {".5h", 1800},
        {"1.h", 3600},      {"10s", 10},    {"2562047h", 9223369200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[512], err[512] = "";
        snprintf(yaml, sizeof yaml,
                 LISTENER("lst") "spec:\n  ports:\n  - port: 1\n    tls:\n      mode: Automatic\n"
                                 "      certManagerCertificateSpec:\n"
                                 "        issuerRef: {kind: Issuer, name: i}\n"
                                 "        duration: \"%s\"\n        renewBefore: 1s\n",
                 cases[i].text);
        struct rq_config *c = load(yaml, err, sizeof err);
        CHECK(c != NULL);
        if (!c) {
            fprintf(stderr, "  duration %s: %s\n", cases[i].text, err);
            continue;
        }
        CHECK_EQ(c->ports[0].tls.automatic.duration_s, cases[i].secs);
        rq_config_free(c);
    }
}

/* The v1beta1 shapes: tls.automatic and tls.manual.secretName, mode implied. */
static void test_tls_v1beta1(void)
{
    char err[512] = "";
    struct rq_config *c = load(
        "apiVersion: mqttbroker.iotoperations.azure.com/v1beta1\nkind: BrokerListener\n"
        "metadata: {name: beta}\nspec:\n  ports:\n"
        "  - port: 8883\n    tls:\n      automatic:\n"
        "        issuerRef: {apiGroup: cert-manager.io, kind: ClusterIssuer, name: ca,"
        " namespace: ns}\n"
        "        secretName: beta-cert\n        secretNamespace: azure-iot-operations\n"
        "        privateKey: {algorithm: Ed25519, rotationPolicy: Always}\n"
        "        san: {dns: [beta]}\n"
        "  - port: 8884\n    tls:\n      manual: {secretName: server-cert, secretNamespace: ns}\n"
        "  - port: 8885\n    tls: {mode: Manual, manual: {secretName: server-cert}}\n"
        "  - port: 8886\n    tls: {mode: Automatic, automatic: {issuerRef: {kind: Issuer, "
        "name: i}}}\n"
        "---\n" TLS_SECRET("server-cert"),
        err, sizeof err);
    CHECK(c != NULL);
    CHECK_STR(err, "");
    if (!c || c->n_ports != 4)
        return rq_config_free(c);
    const struct rq_tls_auto *a = &c->ports[0].tls.automatic;
    CHECK_EQ(c->ports[0].tls.mode, RQ_TLS_AUTOMATIC);
    CHECK_STR(a->issuer_group, "cert-manager.io");
    CHECK_EQ(a->issuer_kind, RQ_ISSUER_CLUSTER_ISSUER);
    CHECK_STR(a->issuer_name, "ca");
    CHECK_STR(a->secret_name, "beta-cert");
    CHECK_EQ(a->key_algorithm, RQ_KEY_ED25519);
    CHECK(a->n_dns == 2 && strcmp(a->dns[0], "beta") == 0 && strcmp(a->dns[1], "localhost") == 0);
    for (size_t i = 1; i < 3; i++) {
        CHECK_EQ(c->ports[i].tls.mode, RQ_TLS_MANUAL);
        CHECK_STR(c->ports[i].tls.secret_name, "server-cert");
        CHECK(c->ports[i].tls.secret == rq_config_find(c, RQ_CONFIG_SECRET, "server-cert"));
    }
    CHECK_EQ(c->ports[3].tls.mode, RQ_TLS_AUTOMATIC);
    /* Namespaces mean nothing to one broker: accepted, and listed for the log. */
    static const char *const keys[] = {"spec.ports[0].tls.automatic.issuerRef.namespace",
                                       "spec.ports[0].tls.automatic.secretNamespace",
                                       "spec.ports[1].tls.manual.secretNamespace"};
    static const char *const where[] = {"x.yaml:9:79", "x.yaml:11:9", "x.yaml:16:41"};
    CHECK_EQ(c->n_ignored, 3);
    for (size_t i = 0; i < 3 && i < c->n_ignored; i++) {
        CHECK_STR(c->ignored[i].key, keys[i]);
        CHECK_STR(c->ignored[i].where, where[i]);
    }
    rq_config_free(c);
}

/* ---- BrokerAuthentication -------------------------------------------------------------------- */

static void check_authn_v1(const struct rq_config *c)
{
    const struct rq_authn_cfg *x = rq_config_find_authn(c, "x509-only");
    const struct rq_authn_cfg *all = rq_config_find_authn(c, "all-methods");
    CHECK(x != NULL && all != NULL && rq_config_find_authn(c, "nope") == NULL);
    if (!x || !all || x->n_methods != 1 || all->n_methods != 3)
        return;
    CHECK(c->ports[0].authn == x);
    CHECK_STR(c->ports[0].authn_name, "x509-only");
    const struct rq_authn_x509 *m = &x->methods[0].x509;
    CHECK_EQ(x->methods[0].kind, RQ_AUTHN_X509);
    CHECK_STR(m->trusted_ca, "my-ca");
    CHECK(m->trusted_ca_obj == rq_config_find(c, RQ_CONFIG_CONFIGMAP, "my-ca"));
    CHECK_EQ(m->n_rules, 3);
    if (m->n_rules == 3) { /* config order, attribute values as text */
        CHECK_STR(m->rules[0].name, "root");
        CHECK_STR(m->rules[0].subject, "CN = Contoso Root CA Cert, OU = Engineering, C = US");
        CHECK(m->rules[0].n_attrs == 1 && strcmp(m->rules[0].attrs[0].key, "organization") == 0);
        CHECK_STR(m->rules[1].name, "intermediate");
        CHECK(m->rules[1].n_attrs == 2 && strcmp(m->rules[1].attrs[1].key, "foo") == 0 &&
              strcmp(m->rules[1].attrs[1].value, "bar") == 0);
        CHECK_STR(m->rules[2].name, "smart-fan");
        CHECK(m->rules[2].n_attrs == 1 && strcmp(m->rules[2].attrs[0].value, "17") == 0);
    }
    const struct rq_authn_custom *cu = &all->methods[0].custom;
    CHECK_EQ(all->methods[0].kind, RQ_AUTHN_CUSTOM);
    CHECK_STR(cu->endpoint, "https://auth-server-template");
    CHECK_STR(cu->ca_configmap, "my-ca");
    CHECK(cu->ca == m->trusted_ca_obj);
    CHECK_STR(cu->client_secret, "client-cert");
    CHECK(cu->client_cert == rq_config_find(c, RQ_CONFIG_SECRET, "client-cert"));
    CHECK_EQ(cu->n_headers, 2);
    if (cu->n_headers == 2) {
        CHECK_STR(cu->headers[0].key, "header_key");
        CHECK_STR(cu->headers[0].value, "header_value");
        CHECK_STR(cu->headers[1].key, "X-Count");
        CHECK_STR(cu->headers[1].value, "5");
    }
    const struct rq_authn_sat *sat = &all->methods[1].sat;
    CHECK_EQ(all->methods[1].kind, RQ_AUTHN_SAT);
    CHECK(sat->n_audiences == 2 && strcmp(sat->audiences[0], "aio-internal") == 0 &&
          strcmp(sat->audiences[1], "my-audience") == 0);
    /* x509Settings: {} trusts ConfigMap client-ca. */
    CHECK_EQ(all->methods[2].kind, RQ_AUTHN_X509);
    CHECK_STR(all->methods[2].x509.trusted_ca, "client-ca");
    CHECK(all->methods[2].x509.trusted_ca_obj ==
          rq_config_find(c, RQ_CONFIG_CONFIGMAP, "client-ca"));
    CHECK_EQ(all->methods[2].x509.n_rules, 0);
}

/* A chain with every method parses; only X509 may be used by a port for now. */
static void test_authn_v1(void)
{
    char err[512] = "";
    struct rq_config *c = load(
        LISTENER("tls") "spec:\n  ports:\n  - port: 8883\n    authenticationRef: x509-only\n"
        "    tls: {mode: Automatic}\n"
        "  - port: 1883\n"
        "---\n" AUTHN("x509-only") "spec:\n  authenticationMethods:\n  - method: X509\n"
        "    x509Settings:\n      trustedClientCaCert: my-ca\n      authorizationAttributes:\n"
        "        root:\n          subject: \"CN = Contoso Root CA Cert, OU = Engineering, "
        "C = US\"\n          attributes:\n            organization: contoso\n"
        "        intermediate:\n          subject: \"CN = Contoso Intermediate CA\"\n"
        "          attributes: {city: seattle, foo: bar}\n"
        "        smart-fan: {subject: \"CN = smart-fan\", attributes: {building: \"17\"}}\n"
        "---\n" AUTHN("all-methods") "spec:\n  authenticationMethods:\n  - method: custom\n"
        "    customSettings:\n      endpoint: https://auth-server-template\n"
        "      caCertConfigMap: my-ca\n"
        "      auth:\n        x509:\n          secretRef: client-cert\n"
        "          namespace: azure-iot-operations\n"
        "      headers: {header_key: header_value, X-Count: \"5\"}\n"
        "  - method: serviceaccounttoken\n"
        "    serviceAccountTokenSettings:\n      audiences: [aio-internal, my-audience]\n"
        "  - method: x509\n    x509Settings: {}\n"
        "---\n" CA_CONFIGMAP("my-ca") "---\n" CA_CONFIGMAP("client-ca") "---\n" TLS_SECRET(
            "client-cert"),
        err, sizeof err);
    CHECK(c != NULL);
    CHECK_STR(err, "");
    if (!c)
        return;
    CHECK_EQ(c->n_authns, 2);
    CHECK(c->n_ports == 2 && c->ports[1].authn == NULL && c->ports[1].authn_name[0] == '\0');
    check_authn_v1(c);
    CHECK_EQ(c->n_ignored, 1);
    if (c->n_ignored == 1) {
        CHECK_STR(c->ignored[0].key,
                  "spec.authenticationMethods[0].customSettings.auth.x509.namespace");
        CHECK_STR(c->ignored[0].where, "x.yaml:44:11");
    }
    rq_config_free(c);
}

/* v1beta1: settings keys custom / serviceAccountToken / x509Credentials, method value
 * x509Credentials, custom.auth.x509.secretName; ARM preview's secretRef {name, namespace}. */
static void test_authn_v1beta1(void)
{
    char err[512] = "";
    struct rq_config *c = load(
        "apiVersion: mqttbroker.iotoperations.azure.com/v1beta1\nkind: BrokerAuthentication\n"
        "metadata: {name: beta}\nspec:\n  authenticationMethods:\n"
        "  - method: Custom\n    custom:\n      endpoint: https://auth.example:8443/x\n"
        "      auth: {x509: {secretName: client-cert, secretNamespace: ns}}\n"
        "  - method: ServiceAccountToken\n    serviceAccountToken: {audiences: [aio-mq]}\n"
        "  - method: x509Credentials\n    x509Credentials:\n      trustedClientCaCert: client-ca\n"
        "      authorizationAttributes:\n        fan: {subject: CN = fan, attributes: {}}\n"
        "  - method: Custom\n    customSettings:\n      endpoint: https://a\n"
        "      auth: {x509: {secretRef: {name: client-cert, namespace: ns}}}\n"
        "---\n" CA_CONFIGMAP("client-ca") "---\n" TLS_SECRET("client-cert"),
        err, sizeof err);
    CHECK(c != NULL);
    CHECK_STR(err, "");
    if (!c)
        return;
    const struct rq_authn_cfg *a = rq_config_find_authn(c, "beta");
    CHECK(a != NULL && a->n_methods == 4);
    if (a && a->n_methods == 4) {
        CHECK_EQ(a->methods[0].kind, RQ_AUTHN_CUSTOM);
        CHECK_STR(a->methods[0].custom.client_secret, "client-cert");
        CHECK(a->methods[0].custom.client_cert != NULL && a->methods[0].custom.ca == NULL);
        CHECK_EQ(a->methods[1].kind, RQ_AUTHN_SAT);
        CHECK(a->methods[1].sat.n_audiences == 1);
        CHECK_EQ(a->methods[2].kind, RQ_AUTHN_X509);
        CHECK(a->methods[2].x509.n_rules == 1 && a->methods[2].x509.rules[0].n_attrs == 0);
        CHECK_STR(a->methods[2].x509.rules[0].subject, "CN = fan");
        CHECK_STR(a->methods[3].custom.client_secret, "client-cert");
    }
    CHECK_EQ(c->n_ignored, 2);
    rq_config_free(c);
}

/* ---- mounted Secrets and ConfigMaps ---------------------------------------------------------- */

static void make_dir(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_EQ(mkdir(path, 0700), 0);
}

static void make_link(const char *dir, const char *name, const char *target)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_EQ(symlink(target, path), 0);
}

/* What the kubelet writes for a mounted volume: the files in a timestamped directory, ..data
 * pointing at it, and one symlink per key through ..data. */
static void kubelet_layout(const char *dir, const char *sub, const char *k1, const char *v1,
                           const char *k2, const char *v2)
{
    char d[4200], target[4300];
    snprintf(d, sizeof d, "%s/%s", dir, sub);
    make_dir(d, "");
    make_dir(d, "..2024_05_01_10_00_00.123456789");
    snprintf(target, sizeof target, "%s/..2024_05_01_10_00_00.123456789", d);
    write_file(target, k1, v1);
    if (k2)
        write_file(target, k2, v2);
    make_link(d, "..data", "..2024_05_01_10_00_00.123456789");
    snprintf(target, sizeof target, "..data/%s", k1);
    make_link(d, k1, target);
    if (k2) {
        snprintf(target, sizeof target, "..data/%s", k2);
        make_link(d, k2, target);
    }
}

static void check_mounted(const struct rq_config *c, const char *dir)
{
    char want[4200];
    CHECK_EQ(c->n_objects, 3); /* srv, kube, client-ca; never the unused ones */
    const struct rq_config_object *srv = rq_config_find(c, RQ_CONFIG_SECRET, "srv");
    const struct rq_config_object *kube = rq_config_find(c, RQ_CONFIG_SECRET, "kube");
    const struct rq_config_object *ca = rq_config_find(c, RQ_CONFIG_CONFIGMAP, "client-ca");
    CHECK(srv && kube && ca);
    CHECK(rq_config_find(c, RQ_CONFIG_SECRET, "unused") == NULL);
    CHECK(rq_config_find(c, RQ_CONFIG_CONFIGMAP, "srv") == NULL);
    if (!srv || !kube || !ca || c->n_ports != 2)
        return;
    CHECK(srv->mounted && kube->mounted && ca->mounted);
    snprintf(want, sizeof want, "%s/secrets/srv", dir);
    CHECK_STR(srv->origin, want);
    snprintf(want, sizeof want, "%s/configmaps/client-ca", dir);
    CHECK_STR(ca->origin, want);
    /* Plain files, by name; dotfiles and subdirectories skipped. */
    CHECK_EQ(srv->n_entries, 2);
    CHECK(srv->n_entries == 2 && strcmp(srv->entries[0].key, "tls.crt") == 0);
    const struct rq_config_entry *key = rq_config_object_get(srv, "tls.key");
    CHECK(key && key->len == 4 && strcmp(key->value, "KEY\n") == 0);
    CHECK(rq_config_object_get(srv, ".hidden") == NULL);
    CHECK(rq_config_object_get(srv, "missing") == NULL && rq_config_object_get(NULL, "x") == NULL);
    /* The kubelet's symlinks followed, its ..data entries skipped. */
    CHECK_EQ(kube->n_entries, 2);
    CHECK(rq_config_object_get(kube, "tls.crt") &&
          strcmp(rq_config_object_get(kube, "tls.crt")->value, "KUBE-CRT") == 0);
    CHECK(ca->n_entries == 1 && strcmp(ca->entries[0].key, "ca.crt") == 0);
    CHECK(c->ports[0].tls.secret == srv && c->ports[1].tls.secret == kube);
    CHECK(c->ports[0].authn && c->ports[0].authn->methods[0].x509.trusted_ca_obj == ca);
}

/* References resolve to mounted directories next to the configuration: for a directory given with
 * -c, and for a file given with -c (its directory). A document of the same name wins. */
static void test_mounted(void)
{
    char dir[] = "/tmp/rq_config_mount_XXXXXX", sub[4200], path[4200], err[4600] = "";
    CHECK(mkdtemp(dir) != NULL);
    write_file(dir, "l.yaml",
               LISTENER("tls") "spec:\n  ports:\n  - port: 8883\n    authenticationRef: x509\n"
                               "    tls: {mode: Manual, manual: {secretRef: srv}}\n"
                               "  - port: 8884\n    tls: {mode: Manual, manual: {secretRef: kube}}\n"
                               "---\n" AUTHN("x509") "spec:\n  authenticationMethods:\n"
                               "  - {method: X509, x509Settings: {}}\n");
    make_dir(dir, "secrets");
    make_dir(dir, "configmaps");
    snprintf(sub, sizeof sub, "%s/secrets/srv", dir);
    make_dir(dir, "secrets/srv");
    write_file(sub, "tls.crt", "CRT\n");
    write_file(sub, "tls.key", "KEY\n");
    write_file(sub, ".hidden", "x");
    make_dir(sub, "subdir");
    kubelet_layout(dir, "secrets/kube", "tls.crt", "KUBE-CRT", "tls.key", "KUBE-KEY");
    kubelet_layout(dir, "configmaps/client-ca", "ca.crt", PEM, NULL, NULL);
    kubelet_layout(dir, "secrets/unused", "tls.crt", "x", NULL, NULL);

    struct rq_config *c = rq_config_load(dir, err, sizeof err);
    CHECK(c != NULL);
    CHECK_STR(err, "");
    if (c)
        check_mounted(c, dir);
    rq_config_free(c);

    snprintf(path, sizeof path, "%s/l.yaml", dir);
    c = rq_config_load(path, err, sizeof err);
    CHECK(c != NULL);
    CHECK_STR(err, "");
    if (c)
        check_mounted(c, dir);
    rq_config_free(c);

    /* An in-stream Secret of the same name wins; the mount is not read. */
    write_file(dir, "s.yaml", TLS_SECRET("srv"));
    c = rq_config_load(dir, err, sizeof err);
    CHECK(c != NULL);
    if (c) {
        const struct rq_config_object *srv = rq_config_find(c, RQ_CONFIG_SECRET, "srv");
        CHECK(srv && !srv->mounted && c->ports[0].tls.secret == srv);
        CHECK(srv && strcmp(rq_config_object_get(srv, "tls.key")->value, "KEY") == 0);
        CHECK_EQ(c->n_objects, 3);
    }
    rq_config_free(c);
    remove_tree(dir);
}

/* Loads dir/name (written with text first), which must fail with want; "%s" in want is dir. */
static void expect_file_error(const char *dir, const char *name, const char *text,
                              const char *want)
{
    char path[4200], err[4600] = "", w[9000];
    write_file(dir, name, text);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(w, sizeof w, want, dir, dir, dir);
    struct rq_config *c = rq_config_load(path, err, sizeof err);
    CHECK(c == NULL);
    CHECK_STR(err, w);
    rq_config_free(c);
}

#define MANUAL_PORT(secret)                                                                        \
    LISTENER("lst") "spec:\n  ports:\n  - port: 1\n    tls: {mode: Manual, manual: {secretRef: " \
                    secret "}}\n"

static void test_mounted_errors(void)
{
    char dir[] = "/tmp/rq_config_mount_XXXXXX", sub[4200];
    CHECK(mkdtemp(dir) != NULL);
    make_dir(dir, "secrets");
    make_dir(dir, "configmaps");
    expect_file_error(dir, "a.yaml", MANUAL_PORT("missing"),
                      "%s/a.yaml:8:45: secret 'missing' not found: no Secret document named "
                      "missing and no directory %s/secrets/missing/");
    /* A file where the directory should be is not a mount. */
    write_file(dir, "secrets/afile", "x");
    expect_file_error(dir, "a.yaml", MANUAL_PORT("afile"),
                      "%s/a.yaml:8:45: secret 'afile' not found: no Secret document named afile "
                      "and no directory %s/secrets/afile/");
    kubelet_layout(dir, "secrets/nokey", "tls.crt", "x", NULL, NULL);
    expect_file_error(dir, "a.yaml", MANUAL_PORT("nokey"),
                      "%s/a.yaml:8:45: secret 'nokey' (mounted at %s/secrets/nokey) has no key "
                      "tls.key (a TLS secret needs tls.crt and tls.key)");
    snprintf(sub, sizeof sub, "%s/secrets/badname", dir);
    make_dir(dir, "secrets/badname");
    write_file(sub, "tls.crt", "x");
    write_file(sub, "tls key", "x");
    expect_file_error(dir, "a.yaml", MANUAL_PORT("badname"),
                      "%s/a.yaml:8:45: %s/secrets/badname/tls key: the file name is not a valid "
                      "key (letters, digits, '-', '_' and '.')");
    snprintf(sub, sizeof sub, "%s/secrets/dangling", dir);
    make_dir(dir, "secrets/dangling");
    make_link(sub, "tls.crt", "..data/tls.crt");
    expect_file_error(dir, "a.yaml", MANUAL_PORT("dangling"),
                      "%s/a.yaml:8:45: cannot read %s/secrets/dangling/tls.crt: No such file or "
                      "directory");
    kubelet_layout(dir, "configmaps/nopem", "ca.crt", "not a certificate", NULL, NULL);
    expect_file_error(dir, "b.yaml",
                      AUTHN("authn") "spec:\n  authenticationMethods:\n  - method: X509\n"
                                     "    x509Settings: {trustedClientCaCert: nopem}\n",
                      "%s/b.yaml:8:41: configmap 'nopem' (mounted at %s/configmaps/nopem) holds "
                      "no PEM certificate (no value contains -----BEGIN CERTIFICATE-----)");
    expect_file_error(dir, "b.yaml",
                      AUTHN("authn") "spec:\n  authenticationMethods:\n  - method: X509\n"
                                     "    x509Settings:\n      authorizationAttributes: {}\n",
                      "%s/b.yaml:9:7: configmap 'client-ca' not found: no ConfigMap document "
                      "named client-ca and no directory %s/configmaps/client-ca/ "
                      "(trustedClientCaCert defaults to client-ca)");
    remove_tree(dir);
}

/* ---- bad TLS --------------------------------------------------------------------------------- */

#define TLS_PORT LISTENER("lst") "spec:\n  ports:\n  - port: 1\n    tls:\n"
/* Line 10 onwards: inside certManagerCertificateSpec. */
#define AUTO_SPEC TLS_PORT "      mode: Automatic\n      certManagerCertificateSpec:\n"
#define ISSUER "        issuerRef: {kind: Issuer, name: i}\n"

static void test_bad_tls(void)
{
    EXPECT_ERROR(TLS_PORT "      manual: {secretRef: s}\n",
                 "x.yaml:9:7: missing required key 'mode' in BrokerListener spec.ports[0].tls");
    EXPECT_ERROR(TLS_PORT "      mode: Auto\n",
                 "x.yaml:9:13: mode must be one of Manual|Automatic, got 'Auto'");
    EXPECT_ERROR(TLS_PORT "      mode: Manual\n",
                 "x.yaml:9:13: mode Manual needs manual.secretRef (the name of a kubernetes.io/tls "
                 "Secret)");
    EXPECT_ERROR(TLS_PORT "      mode: Manual\n      manual: {secretRef: s}\n"
                          "      certManagerCertificateSpec: {}\n",
                 "x.yaml:11:7: certManagerCertificateSpec is only used with mode Automatic");
    EXPECT_ERROR(TLS_PORT "      mode: Automatic\n      manual: {secretRef: s}\n",
                 "x.yaml:10:7: manual is only used with mode Manual");
    EXPECT_ERROR(TLS_PORT "      certManagerCertificateSpec: {issuerRef: {kind: Issuer, name: i}}\n"
                          "      automatic: {issuerRef: {kind: Issuer, name: i}}\n",
                 "x.yaml:10:7: give certManagerCertificateSpec or automatic (its v1beta1 name), "
                 "not both");
    EXPECT_ERROR(TLS_PORT "      mode: Manual\n      manual: {}\n",
                 "x.yaml:10:15: missing required key 'secretRef' in BrokerListener "
                 "spec.ports[0].tls.manual");
    EXPECT_ERROR(TLS_PORT "      mode: Manual\n      manual: {secretRef: s, secretName: s}\n",
                 "x.yaml:10:42: give secretRef or secretName (its v1beta1 name), not both (one is "
                 "at 10:27)");
    EXPECT_ERROR(TLS_PORT "      mode: Manual\n      manual: {secretRef: ../etc}\n",
                 "x.yaml:10:27: secretRef '../etc' is not a valid Secret name: use at most 253 "
                 "lowercase letters, digits, '-' and '.'");
    EXPECT_ERROR(TLS_PORT "      mode: Manual\n      manual: {secretRef: nope}\n",
                 "x.yaml:10:27: secret 'nope' not found: no Secret document named nope (a "
                 "configuration read from memory has no directory for secrets/nope/)");
    EXPECT_ERROR(TLS_PORT "      mode: Manual\n      manual: {secretRef: s}\n---\n"
                          "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
                          "data: {tls.crt: QUJD}\n",
                 "x.yaml:10:27: secret 's' (defined at x.yaml:14:18) has no key tls.key (a TLS "
                 "secret needs tls.crt and tls.key)");
    EXPECT_ERROR(TLS_PORT "      mode: Manual\n      manual: {secretRef: s}\n      extra: 1\n",
                 "x.yaml:11:7: unknown key 'extra' in BrokerListener spec.ports[0].tls");
    EXPECT_ERROR(TLS_PORT "      [mode]\n", "x.yaml:9:7: tls must be a mapping, got a list");
    EXPECT_ERROR(AUTO_SPEC "        duration: 24h\n",
                 "x.yaml:11:9: missing required key 'issuerRef' in BrokerListener "
                 "spec.ports[0].tls.certManagerCertificateSpec");
    EXPECT_ERROR(AUTO_SPEC "        issuerRef: {kind: Cluster, name: i}\n",
                 "x.yaml:11:27: kind must be one of Issuer|ClusterIssuer, got 'Cluster'");
    EXPECT_ERROR(AUTO_SPEC "        issuerRef: {kind: Issuer}\n",
                 "x.yaml:11:20: missing required key 'name' in BrokerListener "
                 "spec.ports[0].tls.certManagerCertificateSpec.issuerRef");
    EXPECT_ERROR(AUTO_SPEC "        issuerRef: {kind: Issuer, name: i, group: a, apiGroup: b}\n",
                 "x.yaml:11:64: give group or apiGroup, not both (one is at 11:51)");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        duration: 90 days\n",
                 "x.yaml:12:19: duration must be a Go duration such as 2160h, 90m or 1h30m, got "
                 "'90 days'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        duration: 2160\n",
                 "x.yaml:12:19: duration must be a Go duration such as 2160h, 90m or 1h30m, got "
                 "'2160'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        duration: 1d\n",
                 "x.yaml:12:19: duration must be a Go duration such as 2160h, 90m or 1h30m, got "
                 "'1d'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        duration: h\n",
                 "x.yaml:12:19: duration must be a Go duration such as 2160h, 90m or 1h30m, got "
                 "'h'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        duration: 2562048h\n",
                 "x.yaml:12:19: duration must be a Go duration such as 2160h, 90m or 1h30m, got "
                 "'2562048h'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        duration: 99999999999999999999999h\n",
                 "x.yaml:12:19: duration must be a Go duration such as 2160h, 90m or 1h30m, got "
                 "'99999999999999999999999h'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        duration: -24h\n",
                 "x.yaml:12:19: duration must be at least 10s, got '-24h'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        duration: 9s\n",
                 "x.yaml:12:19: duration must be at least 10s, got '9s'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        duration: [1h]\n",
                 "x.yaml:12:19: duration must be a string, got a list");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        renewBefore: 0s\n",
                 "x.yaml:12:22: renewBefore must be at least 1s, got '0s'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        renewBefore: 2160h\n",
                 "x.yaml:12:22: renewBefore (2160h) must be shorter than the certificate's "
                 "duration (2160h)");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        renewBefore: 48h\n        duration: 24h\n",
                 "x.yaml:12:22: renewBefore (48h) must be shorter than the certificate's duration "
                 "(24h)");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        privateKey: {algorithm: Ec256}\n",
                 "x.yaml:12:21: missing required key 'rotationPolicy' in BrokerListener "
                 "spec.ports[0].tls.certManagerCertificateSpec.privateKey");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        privateKey: {algorithm: Rsa1024, rotationPolicy: Never}\n",
                 "x.yaml:12:33: algorithm must be one of "
                 "Ec256|Ec384|Ec521|Ed25519|Rsa2048|Rsa4096|Rsa8192, got 'Rsa1024'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        privateKey: {algorithm: Ec384, rotationPolicy: Sometimes}\n",
                 "x.yaml:12:56: rotationPolicy must be one of Always|Never, got 'Sometimes'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        san: {ip: [127.0.0.1, 256.1.1.1]}\n",
                 "x.yaml:12:31: ip[1] must be an IPv4 or IPv6 address, got '256.1.1.1'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        san: {ip: [localhost]}\n",
                 "x.yaml:12:20: ip[0] must be an IPv4 or IPv6 address, got 'localhost'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        san: {ip: [\"fe80::1%eth0\"]}\n",
                 "x.yaml:12:20: ip[0] must be an IPv4 or IPv6 address, got 'fe80::1%eth0'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        san: {dns: [ok.example, bad_name.example]}\n",
                 "x.yaml:12:33: dns[1] must be a DNS name (letters, digits, '-' and '.', "
                 "optionally starting with '*.'), got 'bad_name.example'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        san: {dns: [-a.example]}\n",
                 "x.yaml:12:21: dns[0] must be a DNS name (letters, digits, '-' and '.', "
                 "optionally starting with '*.'), got '-a.example'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        san: {dns: a.example}\n",
                 "x.yaml:12:20: dns must be a list of DNS names, got a.example");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        san: {uri: [x]}\n",
                 "x.yaml:12:15: unknown key 'uri' in BrokerListener "
                 "spec.ports[0].tls.certManagerCertificateSpec.san");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        secretName: My_Cert\n",
                 "x.yaml:12:21: secretName 'My_Cert' is not a valid Secret name: use at most 253 "
                 "lowercase letters, digits, '-' and '.'");
    EXPECT_ERROR(AUTO_SPEC ISSUER "        secretNamespace: x\n",
                 "x.yaml:12:9: unknown key 'secretNamespace' in BrokerListener "
                 "spec.ports[0].tls.certManagerCertificateSpec");
    EXPECT_ERROR(TLS_PORT "      automatic: {issuerRef: {kind: Issuer, name: i}, bogus: 1}\n",
                 "x.yaml:9:55: unknown key 'bogus' in BrokerListener spec.ports[0].tls.automatic");
}

/* ---- bad BrokerAuthentication ---------------------------------------------------------------- */

#define METHODS AUTHN("authn") "spec:\n  authenticationMethods:\n"

static void test_bad_authn(void)
{
    EXPECT_ERROR(AUTHN("authn") "spec:\n  authenticationMethods: []\n",
                 "x.yaml:6:26: authenticationMethods must not be empty");
    EXPECT_ERROR(AUTHN("authn") "spec:\n  authenticationMethods: {method: X509}\n",
                 "x.yaml:6:26: authenticationMethods must be a list of methods, got a mapping");
    EXPECT_ERROR(METHODS "  - x509Settings: {}\n",
                 "x.yaml:7:5: missing required key 'method' in BrokerAuthentication "
                 "spec.authenticationMethods[0]");
    EXPECT_ERROR(METHODS "  - method: Sat\n    serviceAccountTokenSettings: {audiences: [a]}\n",
                 "x.yaml:7:13: method must be one of Custom|ServiceAccountToken|X509, got 'Sat'");
    EXPECT_ERROR(METHODS "  - method: X509\n",
                 "x.yaml:7:5: missing required key 'x509Settings' in BrokerAuthentication "
                 "spec.authenticationMethods[0] (method X509)");
    EXPECT_ERROR(METHODS "  - method: X509\n    serviceAccountTokenSettings: {audiences: [a]}\n",
                 "x.yaml:8:5: serviceAccountTokenSettings does not go with method X509 (use "
                 "x509Settings)");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings: {}\n    x509Credentials: {}\n",
                 "x.yaml:9:5: a method has exactly one settings object (x509Settings is at 8:5)");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings: {}\n    extra: {}\n",
                 "x.yaml:9:5: unknown key 'extra' in BrokerAuthentication "
                 "spec.authenticationMethods[0]");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings: {trustedClientCA: a}\n",
                 "x.yaml:8:20: unknown key 'trustedClientCA' in BrokerAuthentication "
                 "spec.authenticationMethods[0].x509Settings");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings: {trustedClientCaCert: missing-ca}\n",
                 "x.yaml:8:41: configmap 'missing-ca' not found: no ConfigMap document named "
                 "missing-ca (a configuration read from memory has no directory for "
                 "configmaps/missing-ca/)");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings: {}\n",
                 "x.yaml:8:19: configmap 'client-ca' not found: no ConfigMap document named "
                 "client-ca (a configuration read from memory has no directory for "
                 "configmaps/client-ca/) (trustedClientCaCert defaults to client-ca)");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings: {}\n---\n"
                         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: client-ca}\n"
                         "data: {ca.pem: nothing}\n",
                 "x.yaml:8:19: configmap 'client-ca' (defined at x.yaml:12:18) holds no PEM "
                 "certificate (no value contains -----BEGIN CERTIFICATE-----) "
                 "(trustedClientCaCert defaults to client-ca)");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings:\n      authorizationAttributes:\n"
                         "        fan: {subject: CN = fan}\n",
                 "x.yaml:10:14: missing required key 'attributes' in BrokerAuthentication "
                 "spec.authenticationMethods[0].x509Settings.authorizationAttributes.fan");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings:\n      authorizationAttributes:\n"
                         "        fan: {attributes: {}}\n",
                 "x.yaml:10:14: missing required key 'subject' in BrokerAuthentication "
                 "spec.authenticationMethods[0].x509Settings.authorizationAttributes.fan");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings:\n      authorizationAttributes:\n"
                         "        fan: {subject: CN = fan, attributes: {building: 17}}\n",
                 "x.yaml:10:57: attributes['building'] must be a string, got 17 (quote it: "
                 "\"17\")");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings:\n      authorizationAttributes:\n"
                         "        fan: {subject: CN = fan, attributes: {on: yes}}\n",
                 "x.yaml:10:51: attributes['on'] must be a string, got yes (quote it: \"yes\")");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings:\n      authorizationAttributes:\n"
                         "        fan: {subject: CN = fan, attributes: {a: }}\n",
                 "x.yaml:10:50: attributes['a'] must be a string, got nothing (null)");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings:\n      authorizationAttributes:\n"
                         "        fan: {subject: 1.5e3, attributes: {}}\n",
                 "x.yaml:10:24: subject must be a string, got 1.5e3 (quote it: \"1.5e3\")");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings:\n      authorizationAttributes:\n"
                         "        fan: [CN = fan]\n",
                 "x.yaml:10:14: fan must be a mapping, got a list");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings:\n"
                         "      authorizationAttributes: [fan]\n",
                 "x.yaml:9:32: authorizationAttributes must be a mapping of names to {subject, "
                 "attributes}, got a list");
    EXPECT_ERROR(METHODS "  - method: ServiceAccountToken\n    serviceAccountTokenSettings: {}\n",
                 "x.yaml:8:34: missing required key 'audiences' in BrokerAuthentication "
                 "spec.authenticationMethods[0].serviceAccountTokenSettings");
    EXPECT_ERROR(METHODS "  - method: ServiceAccountToken\n"
                         "    serviceAccountTokenSettings: {audiences: []}\n",
                 "x.yaml:8:46: audiences must not be empty");
    EXPECT_ERROR(METHODS "  - method: ServiceAccountToken\n"
                         "    serviceAccountTokenSettings: {audiences: [a, \"\"]}\n",
                 "x.yaml:8:50: audiences[1] must not be empty");
    EXPECT_ERROR(METHODS "  - method: ServiceAccountToken\n"
                         "    serviceAccountTokenSettings: {audiences: aio-internal}\n",
                 "x.yaml:8:46: audiences must be a list of strings, got aio-internal");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings: {caCertConfigMap: x}\n",
                 "x.yaml:8:21: missing required key 'endpoint' in BrokerAuthentication "
                 "spec.authenticationMethods[0].customSettings");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings: {endpoint: http://auth}\n",
                 "x.yaml:8:32: endpoint must be an https:// URL without spaces, got 'http://auth' "
                 "(the custom authentication server is only reached over TLS)");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings: {endpoint: \"https://\"}\n",
                 "x.yaml:8:32: endpoint must be an https:// URL without spaces, got 'https://' "
                 "(the custom authentication server is only reached over TLS)");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings: {endpoint: \"https://a b\"}\n",
                 "x.yaml:8:32: endpoint must be an https:// URL without spaces, got 'https://a b' "
                 "(the custom authentication server is only reached over TLS)");
    EXPECT_ERROR(METHODS "  - method: Custom\n"
                         "    customSettings: {endpoint: https://a, caCertConfigMap: ca}\n",
                 "x.yaml:8:60: configmap 'ca' not found: no ConfigMap document named ca (a "
                 "configuration read from memory has no directory for configmaps/ca/)");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings: {endpoint: https://a, auth: {}}\n",
                 "x.yaml:8:49: missing required key 'x509' in BrokerAuthentication "
                 "spec.authenticationMethods[0].customSettings.auth");
    EXPECT_ERROR(METHODS "  - method: Custom\n"
                         "    customSettings: {endpoint: https://a, auth: {x509: {}}}\n",
                 "x.yaml:8:56: missing required key 'secretRef' in BrokerAuthentication "
                 "spec.authenticationMethods[0].customSettings.auth.x509");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings:\n      endpoint: https://a\n"
                         "      auth: {x509: {secretRef: {namespace: ns}}}\n",
                 "x.yaml:10:32: missing required key 'name' in BrokerAuthentication "
                 "spec.authenticationMethods[0].customSettings.auth.x509.secretRef");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings:\n      endpoint: https://a\n"
                         "      auth: {x509: {secretRef: {name: Bad}}}\n",
                 "x.yaml:10:39: secretRef.name 'Bad' is not a valid Secret name: use at most 253 "
                 "lowercase letters, digits, '-' and '.'");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings:\n      endpoint: https://a\n"
                         "      auth: {x509: {secretRef: c, secretName: c}}\n",
                 "x.yaml:10:47: give secretRef or secretName (its v1beta1 name), not both (one is "
                 "at 10:32)");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings:\n      endpoint: https://a\n"
                         "      auth: {x509: {secretRef: c}}\n---\n"
                         "apiVersion: v1\nkind: Secret\nmetadata: {name: c}\n"
                         "stringData: {tls.key: k}\n",
                 "x.yaml:10:32: secret 'c' (defined at x.yaml:14:18) has no key tls.crt (a TLS "
                 "secret needs tls.crt and tls.key)");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings:\n      endpoint: https://a\n"
                         "      headers: {\"bad header\": x}\n",
                 "x.yaml:10:17: header name 'bad header' must be letters, digits and "
                 "!#$%&'*+-.^_`|~");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings:\n      endpoint: https://a\n"
                         "      headers: {X-Count: 5}\n",
                 "x.yaml:10:26: headers['X-Count'] must be a string, got 5 (quote it: \"5\")");
    EXPECT_ERROR(METHODS "  - method: Custom\n    customSettings:\n      endpoint: https://a\n"
                         "      headers: {X-A: \"a\\r\\nX-B: b\"}\n",
                 "x.yaml:10:22: headers['X-A'] must not contain line breaks");
    EXPECT_ERROR(METHODS "  - method: X509\n    x509Settings: {}\n---\n" CA_CONFIGMAP("client-ca")
                 "---\n" METHODS "  - method: X509\n    x509Settings: {}\n",
                 "x.yaml:19:9: BrokerAuthentication 'authn' is defined twice (first at x.yaml:4:9)");
}

/* ---- ports and their BrokerAuthentication ---------------------------------------------------- */

static void test_port_authn(void)
{
    /* Custom is built: X509 then Custom on a TLS port, Custom alone on a plain one. */
    {
        char e2[512] = "";
        struct rq_config *cc = load(
            LISTENER("lst") "spec:\n  ports:\n  - port: 8883\n    authenticationRef: chain\n"
            "    tls: {mode: Automatic}\n  - port: 1883\n    authenticationRef: chain2\n"
            "---\n" AUTHN("chain") "spec:\n  authenticationMethods:\n"
            "  - method: X509\n    x509Settings: {}\n"
            "  - method: Custom\n    customSettings: {endpoint: \"https://auth:8443\"}\n"
            "---\n" AUTHN("chain2") "spec:\n  authenticationMethods:\n"
            "  - method: Custom\n    customSettings: {endpoint: \"https://auth:8443\"}\n"
            "---\n" CA_CONFIGMAP("client-ca"),
            e2, sizeof e2);
        CHECK(cc != NULL);
        CHECK_STR(e2, "");
        rq_config_free(cc);
    }
    /* X509 needs TLS on the port. */
    EXPECT_ERROR(AUTHN("x509") "spec:\n  authenticationMethods:\n"
                 "  - {method: X509, x509Settings: {}}\n"
                 "---\n" CA_CONFIGMAP("client-ca") "---\n" LISTENER("lst")
                 "spec:\n  ports:\n  - port: 8883\n    tls: {mode: Automatic}\n"
                 "    authenticationRef: x509\n  - port: 1883\n    authenticationRef: x509\n",
                 "x.yaml:25:24: X509 authentication requires tls on port 1883 "
                 "(BrokerAuthentication 'x509' has method X509 at x.yaml:7:14)");
    EXPECT_ERROR(LISTENER("lst") "spec:\n  ports:\n  - port: 1883\n    authenticationRef: nope\n"
                 "---\n" AUTHN("other") "spec:\n  authenticationMethods:\n"
                 "  - {method: X509, x509Settings: {}}\n---\n" CA_CONFIGMAP("client-ca"),
                 "x.yaml:8:24: authenticationRef 'nope' does not name a BrokerAuthentication "
                 "document");
    /* An unused chain with any methods is fine; the listener may come first or last. */
    char err[512] = "";
    struct rq_config *c = load(
        AUTHN("sat") "spec:\n  authenticationMethods:\n"
        "  - {method: ServiceAccountToken, serviceAccountTokenSettings: {audiences: [a]}}\n"
        "---\n" LISTENER("lst") "spec:\n  ports:\n  - port: 8883\n    authenticationRef: x509\n"
        "    protocol: WebSockets\n    tls: {mode: Manual, manual: {secretRef: srv}}\n"
        "---\n" AUTHN("x509") "spec:\n  authenticationMethods:\n"
        "  - {method: X509, x509Settings: {trustedClientCaCert: ca}}\n"
        "---\n" CA_CONFIGMAP("ca") "---\n" TLS_SECRET("srv"),
        err, sizeof err);
    CHECK(c != NULL);
    CHECK_STR(err, "");
    if (c && c->n_ports == 1) {
        CHECK(c->ports[0].authn == rq_config_find_authn(c, "x509"));
        CHECK(c->ports[0].authn && c->ports[0].authn->n_methods == 1);
        CHECK_EQ(c->ports[0].protocol, RQ_PROTO_WEBSOCKETS);
    }
    rq_config_free(c);
}

/* Values that YAML reads as numbers, booleans or null are not strings in string maps. */
static void test_text_values(void)
{
    static const char *const not_text[] = {"17", "-1", "+0", "0x1F", "0o17", "0b101", "1_000",
                                           "1.5", ".5", "1e3", "1.5E-3", ".inf", "-.Inf", ".NaN",
                                           "true", "False", "yes", "NO", "on", "Off", "y", "~"};
    static const char *const text[] = {"seattle", "1.2.3", "17a", "0x", "_1", "1e", "e3",
                                       "-", ".", "True1", "CN = x", "0xZZ", "10.0.0.1"};
    char yaml[512], err[512];
    for (size_t i = 0; i < sizeof not_text / sizeof not_text[0]; i++) {
        snprintf(yaml, sizeof yaml,
                 METHODS "  - method: X509\n    x509Settings:\n      authorizationAttributes:\n"
                         "        fan: {subject: CN = fan, attributes: {a: %s}}\n---\n"
                         CA_CONFIGMAP("client-ca"),
                 not_text[i]);
        struct rq_config *c = load(yaml, err, sizeof err);
        CHECK(c == NULL);
        if (c)
            fprintf(stderr, "  '%s' was read as text\n", not_text[i]);
        rq_config_free(c);
    }
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++) {
        snprintf(yaml, sizeof yaml,
                 METHODS "  - method: X509\n    x509Settings:\n      authorizationAttributes:\n"
                         "        fan: {subject: CN = fan, attributes: {a: %s}}\n---\n"
                         CA_CONFIGMAP("client-ca"),
                 text[i]);
        struct rq_config *c = load(yaml, err, sizeof err);
        CHECK(c != NULL);
        if (!c)
            fprintf(stderr, "  '%s': %s\n", text[i], err);
        if (c && c->authns[0].methods[0].x509.rules[0].n_attrs == 1)
            CHECK_STR(c->authns[0].methods[0].x509.rules[0].attrs[0].value, text[i]);
        rq_config_free(c);
    }
}

int main(void)
{
    char here[4096];
    snprintf(here, sizeof here, "%s", __FILE__);
    char data_dir[4200];
    snprintf(data_dir, sizeof data_dir, "%s/data", dirname(here));

    test_default();
    test_metrics_keys();
    test_full_file(data_dir);
    test_directory();
    test_empty_and_defaults();
    test_enums_any_case();
    test_ignored_keys();
    test_bad_keys_and_types();
    test_bad_ranges();
    test_bad_enums();
    test_bad_documents();
    test_bad_names();
    test_bad_listeners();
    test_bad_yaml();
    test_configmaps_and_secrets();
    test_tls_v1();
    test_durations();
    test_tls_v1beta1();
    test_authn_v1();
    test_authn_v1beta1();
    test_mounted();
    test_mounted_errors();
    test_bad_tls();
    test_bad_authn();
    test_port_authn();
    test_text_values();
    return check_exit("test_config");
}
