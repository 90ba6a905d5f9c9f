/* Logging: one line per event, text or JSON, level checked before any formatting.
 * Thread-safe (each line is written with one write(2)). Never pass secrets to it. */
#ifndef RQ_LOG_H
#define RQ_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* A peer's address, kept compact (every connection holds one) and turned into text only when a
 * line is written. family 0 = unknown. RQ_PEER_LAZY: not asked yet; the first rq_peer_format
 * asks the kernel (getpeername on fd) and keeps the answer: a connection that is never logged
 * costs no system call for its address (multishot accept does not return addresses). */
struct rq_peer {
    uint8_t family; /* 0, 4, 6 or RQ_PEER_LAZY */
    uint16_t port;
    uint8_t addr[16];
    int32_t fd; /* RQ_PEER_LAZY: the connected socket to ask */
};
#define RQ_PEER_LAZY 0xFF

/* Fills p in from the socket p->fd (getpeername); family 0 when that fails. */
void rq_peer_fetch(struct rq_peer *p);

#define RQ_PEER_STRLEN 56 /* "[ipv6]:port" and its NUL fit */

/* "1.2.3.4:5678", "[::1]:5678" or "?" into out; returns out. A RQ_PEER_LAZY peer is fetched
 * first (p is const for the callers' sake: the owner's object is written, on its thread). */
const char *rq_peer_format(const struct rq_peer *p, char *out, size_t len);

enum rq_log_level {
    RQ_LOG_ERROR = 0,
    RQ_LOG_WARN = 1,
    RQ_LOG_INFO = 2,
    RQ_LOG_DEBUG = 3,
    RQ_LOG_TRACE = 4,
};

/* Who a line is about. All fields optional (NULL / -1 when unknown). */
struct rq_log_ctx {
    int shard;
    int port;
    const struct rq_peer *peer;
    const char *client_id; /* NUL-terminated, already sanitised for printing */
    const char *phase;     /* what the connection was doing: "connect", "publish", ... */
};

extern int rq_log_level;
/* The level as of now: a reload may change it on the control thread while shards log (a
 * relaxed atomic load, a plain load on x86). Writers use __atomic_store_n. */
static inline int rq_log_level_now(void)
{
    return __atomic_load_n(&rq_log_level, __ATOMIC_RELAXED);
}
extern int rq_log_json;
/* Where lines go: standard error, or standard output with --log-stdout (set before any thread
 * starts, never changed after). */
extern int rq_log_fd;

#define rq_log(level, ctx, ...)                                                                    \
    do {                                                                                           \
        if ((level) <= rq_log_level_now())                                                         \
            rq_log_write((level), (ctx), __VA_ARGS__);                                             \
    } while (0)

void rq_log_write(int level, const struct rq_log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Peer-controlled text (client ids, user names, topics, certificate names) as it may appear in
 * a log line: control characters (C0, DEL, C1), backslash, double quote and bytes that are not
 * well-formed UTF-8 become \xNN; code points that change how a line reads (line and paragraph
 * separators, bidirectional overrides and isolates, zero-width characters, BOM) become \uNNNN.
 * The result is printable, valid UTF-8 and cannot end a log line or a quoted field. Writes at
 * most size bytes (size >= 4), NUL included; text that does not fit ends with "...". p may be
 * NULL when len is 0. Returns out. Any thread. */
const char *rq_log_escape(char *out, size_t size, const void *p, size_t len);
/* The same for a NUL-terminated string; NULL gives "". */
const char *rq_log_escape_str(char *out, size_t size, const char *s);

/* Parses "error|warn|info|debug|trace" (case-insensitive). Returns level or -1. */
int rq_log_parse_level(const char *s);
const char *rq_log_level_name(int level);

#endif
