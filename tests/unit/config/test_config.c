/* Unit tests for config/: the embedded default, a full multi-document file, a directory of files,
 * and every kind of bad input with its exact "file:line:col: message". */
#include "config/config.h"
#include "core/log.h"
#include "tests/unit/check.h"

#include <libgen.h>
#include <stdint.h>
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
    CHECK_EQ(c->max_topic_levels, 64);
    CHECK_EQ(c->max_topic_alias, 64);
    CHECK_EQ(c->connect_timeout_ms, 10000);
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
                                       "spec.advanced.encryptInternalTraffic",
                                       "spec.diagnostics.metrics"};
    static const char *const where[] = {"11:3", "14:3", "25:5", "29:5"};
    CHECK_EQ(c->n_ignored, 4);
    for (size_t i = 0; i < 4 && i < c->n_ignored; i++) {
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
                    "    connectTimeoutSeconds: 3600\n",
             err, sizeof err);
    CHECK(c != NULL);
    if (c) {
        CHECK_EQ(c->max_keepalive, 0);
        CHECK_EQ(c->max_session_expiry, 4294967295u);
        CHECK_EQ(c->threads, 1024);
        CHECK_EQ(c->max_topic_alias, 0);
        CHECK_EQ(c->max_connections, 10000000);
        CHECK_EQ(c->connect_timeout_ms, 3600000);
    }
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
                 "BrokerAuthentication, ConfigMap or Secret)");
    EXPECT_ERROR("apiVersion: v1\nkind: brokerlistener\n",
                 "x.yaml:2:7: unknown kind 'brokerlistener' (did you mean BrokerListener?)");
    EXPECT_ERROR("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\n"
                 "metadata: {name: authn}\nspec: {}\n",
                 "x.yaml:4:7: missing required key 'authenticationMethods' in "
                 "BrokerAuthentication spec");
    EXPECT_ERROR("apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthorization\n",
                 "x.yaml:2:7: kind BrokerAuthorization is not supported yet");
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
                 "x.yaml:8:5: authorizationRef is not supported yet (authorization arrives with "
                 "the authorization issue)");
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

int main(void)
{
    char here[4096];
    snprintf(here, sizeof here, "%s", __FILE__);
    char data_dir[4200];
    snprintf(data_dir, sizeof data_dir, "%s/data", dirname(here));

    test_default();
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
    return check_exit("test_config");
}
