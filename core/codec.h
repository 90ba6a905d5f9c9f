/* MQTT 3.1.1 / 5.0 packet codec. Pure: bytes in, struct out (or a negative reason code and a
 * static `why` string); struct in, bytes out. No I/O, no globals, no allocation while decoding.
 * Decoded strings point into the caller's input buffer, which must outlive the packet struct.
 *
 * Direction-agnostic: it decodes every packet type (the broker rejects the ones a client must
 * never send; the bench client decodes CONNACK/SUBACK/PUBLISH from the server).
 *
 * Protocol versions: 3 (MQTT 3.1, "MQIsdp"), 4 (MQTT 3.1.1), 5 (MQTT 5.0). Versions 3 and 4 share
 * one wire format except the CONNECT protocol name. */
#ifndef RQ_CODEC_H
#define RQ_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/rc.h"

enum rq_ptype {
    RQ_CONNECT = 1,
    RQ_CONNACK = 2,
    RQ_PUBLISH = 3,
    RQ_PUBACK = 4,
    RQ_PUBREC = 5,
    RQ_PUBREL = 6,
    RQ_PUBCOMP = 7,
    RQ_SUBSCRIBE = 8,
    RQ_SUBACK = 9,
    RQ_UNSUBSCRIBE = 10,
    RQ_UNSUBACK = 11,
    RQ_PINGREQ = 12,
    RQ_PINGRESP = 13,
    RQ_DISCONNECT = 14,
    RQ_AUTH = 15,
};

/* Property identifiers (MQTT 5.0 section 2.2.2.2). */
enum rq_prop_id {
    RQ_PROP_PAYLOAD_FORMAT = 0x01,
    RQ_PROP_MESSAGE_EXPIRY = 0x02,
    RQ_PROP_CONTENT_TYPE = 0x03,
    RQ_PROP_RESPONSE_TOPIC = 0x08,
    RQ_PROP_CORRELATION_DATA = 0x09,
    RQ_PROP_SUB_ID = 0x0B,
    RQ_PROP_SESSION_EXPIRY = 0x11,
    RQ_PROP_ASSIGNED_CLIENT_ID = 0x12,
    RQ_PROP_SERVER_KEEP_ALIVE = 0x13,
    RQ_PROP_AUTH_METHOD = 0x15,
    RQ_PROP_AUTH_DATA = 0x16,
    RQ_PROP_REQUEST_PROBLEM_INFO = 0x17,
    RQ_PROP_WILL_DELAY = 0x18,
    RQ_PROP_REQUEST_RESPONSE_INFO = 0x19,
    RQ_PROP_RESPONSE_INFO = 0x1A,
    RQ_PROP_SERVER_REFERENCE = 0x1C,
    RQ_PROP_REASON_STRING = 0x1F,
    RQ_PROP_RECEIVE_MAX = 0x21,
    RQ_PROP_TOPIC_ALIAS_MAX = 0x22,
    RQ_PROP_TOPIC_ALIAS = 0x23,
    RQ_PROP_MAXIMUM_QOS = 0x24,
    RQ_PROP_RETAIN_AVAILABLE = 0x25,
    RQ_PROP_USER_PROPERTY = 0x26,
    RQ_PROP_MAX_PACKET_SIZE = 0x27,
    RQ_PROP_WILDCARD_SUB_AVAIL = 0x28,
    RQ_PROP_SUB_ID_AVAIL = 0x29,
    RQ_PROP_SHARED_SUB_AVAIL = 0x2A,
};

/* A byte string inside someone else's buffer; not NUL-terminated. p == NULL when absent. */
struct rq_str {
    const uint8_t *p;
    uint32_t len;
};

#define RQ_PROP_BIT(id) (1ULL << (id))
#define RQ_PROP_HAS(props, id) (((props)->present & RQ_PROP_BIT(id)) != 0)

/* Decoded properties. `present` has RQ_PROP_BIT(id) set for each property seen (or, when
 * encoding, to be written). User properties are kept as the raw property block and walked with
 * rq_props_next_user(); when encoding, `user_props` holds already-encoded 0x26 entries (id byte
 * included) that are copied verbatim. */
struct rq_props {
    uint64_t present;
    uint8_t payload_format;
    uint32_t message_expiry;
    struct rq_str content_type;
    struct rq_str response_topic;
    struct rq_str correlation_data;
    uint32_t sub_id; /* SUBSCRIBE: the one identifier; PUBLISH (decode): the first one */
    uint32_t session_expiry;
    struct rq_str assigned_client_id;
    uint16_t server_keep_alive;
    struct rq_str auth_method;
    struct rq_str auth_data;
    uint8_t request_problem_info;
    uint32_t will_delay;
    uint8_t request_response_info;
    struct rq_str response_info;
    struct rq_str server_reference;
    struct rq_str reason_string;
    uint16_t receive_max;
    uint16_t topic_alias_max;
    uint16_t topic_alias;
    uint8_t maximum_qos;
    uint8_t retain_available;
    uint32_t max_packet_size;
    uint8_t wildcard_sub_avail;
    uint8_t sub_id_avail;
    uint8_t shared_sub_avail;
    uint32_t user_prop_count;
    struct rq_str raw;        /* decode: the whole property block (without its length) */
    struct rq_str user_props; /* encode only: pre-encoded user property entries */
};

/* Walks user properties of a decoded property block. *off starts at 0. Returns true and fills
 * key/value while there is one more; false at the end. Never fails on a block that decoded. */
bool rq_props_next_user(const struct rq_props *props, uint32_t *off, struct rq_str *key,
                        struct rq_str *value);

struct rq_connect {
    uint8_t version; /* set as soon as it is read, even when decoding fails later */
    bool clean_start;
    uint16_t keepalive;
    struct rq_props props;
    struct rq_str client_id; /* len 0 allowed */
    bool will;
    uint8_t will_qos;
    bool will_retain;
    struct rq_props will_props;
    struct rq_str will_topic;
    struct rq_str will_payload;
    bool has_username;
    bool has_password;
    struct rq_str username;
    struct rq_str password;
};

struct rq_connack {
    bool session_present;
    uint8_t rc; /* v5 reason code, or 3.1.1 return code */
    struct rq_props props;
};

struct rq_publish {
    uint8_t qos;
    bool dup;
    bool retain;
    struct rq_str topic; /* may be empty when a topic alias is present (v5) */
    uint16_t packet_id;  /* 0 for QoS 0 */
    struct rq_props props;
    struct rq_str payload;
    uint32_t n_sub_ids; /* decode: how many subscription identifiers (server->client) */
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. reason = 0 when absent. */
struct rq_ack {
    uint16_t packet_id;
    uint8_t reason;
    struct rq_props props;
};

/* SUBSCRIBE / UNSUBSCRIBE: entries validated by the decoder, walked with rq_codec_next_filter. */
struct rq_sublist {
    uint16_t packet_id;
    struct rq_props props;
    struct rq_str entries; /* the payload */
    uint32_t count;        /* >= 1 */
};

/* SUBACK / UNSUBACK: one reason code byte per entry. */
struct rq_subacklist {
    uint16_t packet_id;
    struct rq_props props;
    struct rq_str codes;
};

/* DISCONNECT and AUTH. */
struct rq_reason {
    uint8_t reason;
    struct rq_props props;
};

struct rq_packet {
    uint8_t type;  /* enum rq_ptype */
    uint8_t flags; /* low nibble of the first byte */
    union {
        struct rq_connect connect;
        struct rq_connack connack;
        struct rq_publish publish;
        struct rq_ack ack;
        struct rq_sublist sub; /* SUBSCRIBE and UNSUBSCRIBE */
        struct rq_subacklist suback;
        struct rq_reason reason; /* DISCONNECT and AUTH */
    } u;
};

/* Subscription options byte (v5 3.8.3.1; v3 uses only the QoS bits). */
#define RQ_SUBOPT_QOS(o) ((o)&0x03)
#define RQ_SUBOPT_NO_LOCAL 0x04
#define RQ_SUBOPT_RAP 0x08 /* retain as published */
#define RQ_SUBOPT_RH(o) (((o) >> 4) & 0x03)

/* Fixed header framing. Looks at the start of a byte stream and says how long the first packet
 * is, without needing the whole packet. Returns the total packet length (fixed header included)
 * when the fixed header is complete, RQ_INCOMPLETE when more bytes are needed, or:
 *   -RQ_RC_MALFORMED          remaining length uses more than 4 bytes [MQTT-1.5.5]
 *   -RQ_RC_PACKET_TOO_LARGE   total length > max_size (decided before any allocation)
 * *hdr_len receives the fixed header length (2..5). */
long rq_codec_frame(const uint8_t *p, size_t len, uint32_t max_size, size_t *hdr_len,
                    const char **why);

/* Decodes one complete packet p[0..len) (len = the value rq_codec_frame returned).
 * `version` is the connection's protocol version (4 or 5; 3 behaves like 4 except that a
 * resent PUBREL, SUBSCRIBE or UNSUBSCRIBE may carry DUP), ignored for CONNECT, which carries its
 * own. Returns 0, or -RQ_RC_* with *why set:
 *   MALFORMED for structural problems (truncation, trailing bytes, bad UTF-8 or U+0000,
 *     reserved flags, QoS 3, DUP on a QoS 0 PUBLISH, bad subscription options, a property not
 *     allowed in this packet, a property value out of its range, a v5 acknowledgement reason
 *     code its packet type does not define, empty SUBSCRIBE/UNSUBSCRIBE payload, an empty topic
 *     filter, '+' or '#' in a PUBLISH topic name [MQTT-3.3.2-2]),
 *   PROTOCOL_ERROR for a Response Topic with '+' or '#' [MQTT-3.3.2-14], a duplicate property (user property and, in PUBLISH, subscription
 *     identifier may repeat), packet id 0 where one is required, empty topic without a topic
 *     alias, receive maximum 0, maximum packet size 0, will flags inconsistent, password without
 *     username in 3.1.1,
 *   TOPIC_ALIAS_INVALID for a topic alias property of 0,
 *   UNSUPPORTED_PROTOCOL_VERSION for CONNECT with an unknown protocol name/level.
 * Wildcard placement inside topic filters is NOT checked here (see rq_topic_filter_check). */
int rq_codec_decode(const uint8_t *p, size_t len, int version, struct rq_packet *pkt,
                    const char **why);

/* Iterates SUBSCRIBE (opts filled) or UNSUBSCRIBE (opts may be NULL) entries of a decoded
 * packet. *off starts at 0. Returns true while there is another entry. */
bool rq_codec_next_filter(const struct rq_sublist *s, bool is_subscribe, uint32_t *off,
                          struct rq_str *filter, uint8_t *opts);

/* Checks a string for MQTT UTF-8 validity: well-formed UTF-8, no surrogates, no U+0000
 * [MQTT-1.5.4-1], [MQTT-1.5.4-2]. */
bool rq_utf8_valid(const uint8_t *p, size_t len);

/* ---- Encoding. Every encoder appends one whole packet to `out` and returns 0, or -ENOMEM
 * (out->len unchanged). Properties are written only for version 5. ---- */

/* Properties: every property with its bit set in props->present, plus props->user_props. */
size_t rq_props_size(const struct rq_props *props); /* encoded size, without the length varint */
int rq_props_encode(struct rq_buf *out, const struct rq_props *props); /* with length varint */

int rq_codec_encode_connect(struct rq_buf *out, const struct rq_connect *c);
int rq_codec_encode_connack(struct rq_buf *out, int version, const struct rq_connack *c);
/* type = RQ_PUBACK/PUBREC/PUBREL/PUBCOMP. v5: reason and properties omitted when 0/empty. */
int rq_codec_encode_ack(struct rq_buf *out, int version, int type, const struct rq_ack *a);
int rq_codec_encode_subscribe(struct rq_buf *out, int version, uint16_t packet_id,
                              const struct rq_props *props, const struct rq_str *filters,
                              const uint8_t *opts, size_t n);
int rq_codec_encode_unsubscribe(struct rq_buf *out, int version, uint16_t packet_id,
                                const struct rq_props *props, const struct rq_str *filters,
                                size_t n);
/* type = RQ_SUBACK or RQ_UNSUBACK (3.1.1 UNSUBACK has no codes: n ignored). */
int rq_codec_encode_suback(struct rq_buf *out, int version, int type, uint16_t packet_id,
                           const struct rq_props *props, const uint8_t *codes, size_t n);
/* PINGREQ, PINGRESP: two bytes. */
int rq_codec_encode_simple(struct rq_buf *out, int type);
/* type = RQ_DISCONNECT or RQ_AUTH. v3 DISCONNECT is two bytes; v5 omits reason+props when the
 * reason is 0 and there are no properties. */
int rq_codec_encode_reason(struct rq_buf *out, int version, int type, uint8_t reason,
                           const struct rq_props *props);

/* Outgoing PUBLISH, split so that the per-subscriber part is small: the message's shared
 * properties (payload format, content type, response topic, correlation data, user properties)
 * are encoded once by rq_codec_encode_shared_props() and passed in as `shared_props`. */
struct rq_pubout {
    uint8_t qos;
    bool dup;
    bool retain;
    struct rq_str topic; /* len 0 allowed only when topic_alias != 0 */
    uint16_t packet_id;  /* QoS > 0 */
    uint16_t topic_alias;   /* 0 = none */
    bool has_expiry;
    uint32_t expiry;        /* remaining Message Expiry Interval */
    const uint32_t *sub_ids;
    uint32_t n_sub_ids;
    struct rq_str shared_props; /* pre-encoded property entries, no length prefix */
    struct rq_str payload;
};

/* Encodes the shareable subset of a PUBLISH's properties (entries only, no length varint). */
int rq_codec_encode_shared_props(struct rq_buf *out, const struct rq_props *props);
/* Total encoded size of the PUBLISH for this version (to compare with Maximum Packet Size). */
size_t rq_codec_publish_size(int version, const struct rq_pubout *po);
int rq_codec_encode_publish(struct rq_buf *out, int version, const struct rq_pubout *po);

/* Variable byte integer helpers (exposed for tests and the bench client). */
size_t rq_varint_size(uint32_t v);
size_t rq_varint_encode(uint8_t *out, uint32_t v); /* v < 268435456; returns bytes written */

#endif
