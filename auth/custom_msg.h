/* Messages of the Custom authentication HTTP API 0.5.0 (AIO-INTERFACES.md section 1,
 * ../shared/specs/aio-custom-auth/0.5.0.yaml): the JSON request bodies the broker POSTs for an
 * MQTT CONNECT or AUTH packet, the verdict read from the auth server's response (HTTP status,
 * Content-Type, body), RFC 3339 timestamps and the Cache-Control max-age of a response.
 *
 * Pure module: no I/O, no clock (callers pass `now`), no globals. JSON is built and parsed with
 * cJSON, base64 comes from wolfCrypt. Every function may be called from any thread.
 *
 * Secrets (password, authentication data) go into request bodies only; no `why` text produced
 * here ever holds a secret or any text of the server's response (the 403 `message` and the 422
 * `supportedVersions` are returned separately: peer text the caller escapes before logging). */
#ifndef RQ_CUSTOM_MSG_H
#define RQ_CUSTOM_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The API version sent as ?api-version= and the only one this module speaks. */
#define RQ_CUSTOM_API_VERSION "0.5.0"

/* Bounds on a response: a larger body, more attributes, or a longer attribute key or value makes
 * the response a failed one (not relevant). They keep one auth server from making the broker
 * hold megabytes per client. */
#define RQ_CUSTOM_MAX_BODY (64 * 1024)
#define RQ_CUSTOM_MAX_ATTRS 64
#define RQ_CUSTOM_MAX_ATTR_KEY 256
#define RQ_CUSTOM_MAX_ATTR_VALUE 1024
/* The 403 `message` and the 422 version list are cut to this many bytes (log text only). */
#define RQ_CUSTOM_MAX_LOG_TEXT 256
/* Longest RFC 3339 timestamp accepted (fractional seconds included). */
#define RQ_RFC3339_MAX_LEN 64

/* Credentials of one CONNECT. A NULL pointer = the field is absent and is omitted from the body;
 * a non-NULL pointer with length 0 is an empty value (e.g. an empty password), which is sent. */
struct rq_custom_creds {
    const char *username; /* CONNECT User Name: UTF-8 without NUL [MQTT-1.5.4-2] */
    size_t username_len;
    const uint8_t *password; /* CONNECT Password, any bytes: sent as standard base64 */
    size_t password_len;
    const char *certs; /* PEM chain the client presented in TLS, leaf first */
    size_t certs_len;
    const char *auth_method; /* v5 Authentication Method (plain string); NULL = no
                                enhancedAuthentication object at all */
    size_t auth_method_len;
    const uint8_t *auth_data; /* v5 Authentication Data, any bytes: sent as base64 */
    size_t auth_data_len;
};

/* Builds the body of a CONNECT request:
 *   {"type":"connect","username":..,"password":"<b64>","certs":..,
 *    "enhancedAuthentication":{"method":..,"data":"<b64>"}}
 * with absent fields omitted. Returns a malloc'd NUL-terminated JSON text and its length in *len,
 * or NULL with *why set (a text field is not valid UTF-8 or holds NUL, auth_data without
 * auth_method, out of memory). The text holds the secrets: wipe it (explicit_bzero) before
 * free() once sent; the intermediate encodings made here are wiped already. */
char *rq_custom_build_connect(const struct rq_custom_creds *c, size_t *len, const char **why);

/* Builds the body of a re-authentication request (MQTT v5 AUTH, reason 0x19):
 *   {"type":"auth","enhancedAuthentication":{"method":..,"data":"<b64>"}}
 * method is required (the AUTH packet's Authentication Method); data may be NULL (absent).
 * Same return convention as rq_custom_build_connect. */
char *rq_custom_build_auth(const char *method, size_t method_len, const uint8_t *data,
                           size_t data_len, size_t *len, const char **why);

enum rq_custom_outcome {
    RQ_CUSTOM_NOT_RELEVANT = 0, /* failed response: the chain goes on to the next method */
    RQ_CUSTOM_PASS,             /* 200: authenticated */
    RQ_CUSTOM_FAIL,             /* 403, or a 200 whose expiry has passed: denied */
};

struct rq_custom_attr {
    char *key;   /* owned, UTF-8, NUL-terminated, no NUL inside */
    char *value; /* owned, UTF-8, NUL-terminated, no NUL inside */
};

/* The verdict read from one response. Owns its strings: rq_custom_verdict_free. */
struct rq_custom_verdict {
    enum rq_custom_outcome outcome;
    /* PASS */
    bool has_expiry;
    int64_t expiry; /* unix seconds (fraction dropped: the expiry is never late) */
    struct rq_custom_attr *attrs;
    size_t n_attrs;
    /* FAIL */
    uint8_t reason; /* MQTT v5 CONNACK reason code, always >= 0x80 */
    uint8_t rc311;  /* MQTT 3.1.1 CONNACK return code: 4 for 0x86, else 5 */
    char *message;  /* 403 `message`, NULL if absent; server text, cut to RQ_CUSTOM_MAX_LOG_TEXT:
                       escape before logging */
    /* NOT_RELEVANT after a 422 */
    char *supported_versions; /* the server's supportedVersions joined with ", " (peer text,
                                 escape before logging), NULL if none could be read */
    /* Why the outcome (NOT_RELEVANT and FAIL; "" for a plain PASS). Fixed text plus numbers
     * only: never a credential and never response text. */
    char why[128];
};

/* Reads a response into *v (which need not be initialised; it is overwritten and must later be
 * released with rq_custom_verdict_free whatever the outcome).
 * status: the HTTP status; content_type: the Content-Type header value or NULL when absent;
 * body/len: the response body; now: the current unix time, to refuse an expiry that has passed.
 *  - 200: PASS with optional `expiry` (RFC 3339) and `attributes` (object of strings); an expiry
 *    <= now is a FAIL 0x87 / rc 5. A present Content-Type must be application/json.
 *  - 403: FAIL with `reason` (an integer 0..255; below 0x80 or not a CONNACK code -> 0x87) and
 *    the optional `message`.
 *  - 422: NOT_RELEVANT, with the server's supportedVersions for the log.
 *  - anything else, a body that is not one JSON object, a body over RQ_CUSTOM_MAX_BODY, a field
 *    of the wrong type or over the bounds: NOT_RELEVANT with the cause in v->why. */
void rq_custom_parse_response(int status, const char *content_type, const uint8_t *body, size_t len,
                              int64_t now, struct rq_custom_verdict *v);
void rq_custom_verdict_free(struct rq_custom_verdict *v);

/* The MQTT 3.1.1 return code for a v5 reason of a denied CONNECT: 0x86 -> 4 (bad user name or
 * password), anything else -> 5 (not authorized). */
uint8_t rq_custom_rc311(uint8_t reason);

/* Parses an RFC 3339 date-time ("2030-05-08T20:04:16Z", "...16.250+05:30", "...16-00:00"; 'T'
 * may be 't' or a space, 'Z' may be 'z') into unix seconds, the fraction dropped (floor).
 * Refuses impossible dates (Feb 29 outside leap years, Apr 31, hour 24, ...); second 60 (a leap
 * second) is accepted and counts as the next minute's second 0. Returns 0 or -1. */
int rq_rfc3339_parse(const char *s, size_t len, int64_t *out);

/* Formats unix seconds as "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes). Years 0..9999
 * only; returns the length, or -1 (buf untouched beyond a NUL) outside that range. */
int rq_rfc3339_format(int64_t t, char *buf, size_t size);

/* Reads one Cache-Control header value (RFC 9111 5.2). Returns 1 and sets *max_age when the
 * response may be cached: a valid max-age=N (or "N") with N > 0, no no-store / no-cache, and no
 * second, different max-age. Returns 0 otherwise (not cacheable). N is capped at 2^31. */
int rq_custom_max_age(const char *value, size_t len, uint32_t *max_age);

/* For a raw header line ("Name: value\r\n", as libcurl hands them over): when the name equals
 * `name` (case-insensitive), sets *value and *vlen to the value without surrounding blanks and CRLF
 * and returns 1; otherwise returns 0. */
int rq_custom_header_match(const char *line, size_t len, const char *name, const char **value,
                           size_t *vlen);

#endif
