/* Log line formatting and output. Lines go to stderr with one write(2) each so that lines from
 * several threads never interleave. This module does no filtering of content: callers must never
 * pass passwords, tokens or authentication data. */
#include "core/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int rq_log_level = RQ_LOG_INFO;
int rq_log_json = 0;
int rq_log_fd = STDERR_FILENO;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

const char *rq_log_level_name(int level)
{
    if (level < 0 || level > RQ_LOG_TRACE)
        return "?";
    return level_names[level];
}

int rq_log_parse_level(const char *s)
{
    for (int i = 0; i <= RQ_LOG_TRACE; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return RQ_LOG_WARN;
    return -1;
}

void rq_peer_fetch(struct rq_peer *p)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = p->fd;
    memset(p, 0, sizeof *p);
    p->fd = -1;
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        p->family = 4;
        memcpy(p->addr, &a->sin_addr, 4);
        p->port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        p->family = 6;
        memcpy(p->addr, &a->sin6_addr, 16);
        p->port = ntohs(a->sin6_port);
    }
}

const char *rq_peer_format(const struct rq_peer *p, char *out, size_t len)
{
    char host[64];
    if (p && p->family == RQ_PEER_LAZY)
        rq_peer_fetch((struct rq_peer *)p);
    int af = p && p->family == 4 ? AF_INET : p && p->family == 6 ? AF_INET6 : 0;
    if (!af || !inet_ntop(af, p->addr, host, sizeof host)) {
        snprintf(out, len, "?");
        return out;
    }
    snprintf(out, len, af == AF_INET6 ? "[%s]:%u" : "%s:%u", host, p->port);
    return out;
}

/* Length of the well-formed UTF-8 sequence at p (1..4) with its code point in *cp, or 0:
 * truncated, overlong, a surrogate, above U+10FFFF or a stray continuation byte. */
static size_t utf8_seq(const uint8_t *p, size_t len, uint32_t *cp)
{
    uint8_t c = p[0];
    size_t n = c < 0x80                 ? 1
               : c >= 0xC2 && c <= 0xDF ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    if (n == 0 || n > len)
        return 0;
    uint32_t v = n == 1 ? c : c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* Code points that would make a line read differently from what it holds. */
static bool ambiguous(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x200B && cp <= 0x200F) ||
           (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
}

/* The escaping behind rq_log_escape. peer = false is the safety net for whole messages, whose
 * quotes and backslashes are the format's own: only controls and bad bytes are escaped there. */
static const char *escape(char *out, size_t size, const uint8_t *p, size_t len, bool peer)
{
    size_t o = 0, cut = 0; /* cut: the last end of a whole piece that leaves room for "..." */
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = utf8_seq(p + i, len - i, &cp);
        char tmp[8];
        int tn;
        if (n == 0 || cp < 0x20 || cp == 0x7F || (peer && (cp == '\\' || cp == '"'))) {
            tn = snprintf(tmp, sizeof tmp, "\\x%02x", p[i]);
            n = 1;
        } else if (ambiguous(cp)) {
            tn = snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)cp);
        } else {
            memcpy(tmp, p + i, n);
            tn = (int)n;
        }
        if (o + (size_t)tn > size - 1) {
            memcpy(out + cut, "...", 3);
            o = cut + 3;
            break;
        }
        memcpy(out + o, tmp, (size_t)tn);
        o += (size_t)tn;
        i += n;
        if (o + 4 <= size)
            cut = o;
    }
    out[o] = 0;
    return out;
}

const char *rq_log_escape(char *out, size_t size, const void *p, size_t len)
{
    return escape(out, size, p, len, true);
}

const char *rq_log_escape_str(char *out, size_t size, const char *s)
{
    return escape(out, size, (const uint8_t *)(s ? s : ""), s ? strlen(s) : 0, true);
}

/* Appends s to buf as a JSON string body (without quotes). */
static size_t json_escape(char *buf, size_t cap, size_t off, const char *s)
{
    for (; *s && off + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[off++] = '\\';
            buf[off++] = (char)c;
        } else if (c < 0x20) {
            off += (size_t)snprintf(buf + off, cap - off, "\\u%04x", c);
        } else {
            buf[off++] = (char)c;
        }
    }
    return off;
}

void rq_log_write(int level, const struct rq_log_ctx *ctx, const char *fmt, ...)
{
    char raw[1024], msg[1024], line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* Safety net under the callers' rq_log_escape: whatever reaches a line, a control
     * character or a bad byte cannot end it early or make JSON invalid. */
    escape(msg, sizeof msg, (const uint8_t *)raw, strnlen(raw, sizeof raw), false);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000) % 1000);

    size_t off = 0;
    if (__atomic_load_n(&rq_log_json, __ATOMIC_RELAXED)) { /* a reload may switch it */
        off += (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\"", when,
                                rq_log_level_name(level));
        if (ctx) {
            if (ctx->shard >= 0)
                off += (size_t)snprintf(line + off, sizeof line - off, ",\"shard\":%d", ctx->shard);
            if (ctx->port > 0)
                off += (size_t)snprintf(line + off, sizeof line - off, ",\"port\":%d", ctx->port);
            const char *keys[] = {"peer", "client", "phase"};
            char peer[RQ_PEER_STRLEN];
            const char *vals[] = {ctx->peer ? rq_peer_format(ctx->peer, peer, sizeof peer) : NULL,
                                  ctx->client_id, ctx->phase};
            for (int i = 0; i < 3; i++) {
                if (!vals[i])
                    continue;
                off += (size_t)snprintf(line + off, sizeof line - off, ",\"%s\":\"", keys[i]);
                off = json_escape(line, sizeof line, off, vals[i]);
                off += (size_t)snprintf(line + off, sizeof line - off, "\"");
            }
        }
        off += (size_t)snprintf(line + off, sizeof line - off, ",\"msg\":\"");
        off = json_escape(line, sizeof line, off, msg);
        off += (size_t)snprintf(line + off, sizeof line - off, "\"}\n");
    } else {
        off += (size_t)snprintf(line, sizeof line, "%s %-5s ", when, rq_log_level_name(level));
        if (ctx) {
            if (ctx->shard >= 0)
                off += (size_t)snprintf(line + off, sizeof line - off, "[shard %d] ", ctx->shard);
            if (ctx->peer) {
                char peer[RQ_PEER_STRLEN];
                off += (size_t)snprintf(line + off, sizeof line - off, "%s ",
                                        rq_peer_format(ctx->peer, peer, sizeof peer));
            }
            if (ctx->port > 0)
                off += (size_t)snprintf(line + off, sizeof line - off, "port=%d ", ctx->port);
            if (ctx->client_id)
                off += (size_t)snprintf(line + off, sizeof line - off, "client=\"%s\" ",
                                        ctx->client_id);
            if (ctx->phase)
                off += (size_t)snprintf(line + off, sizeof line - off, "(%s) ", ctx->phase);
        }
        if (off < sizeof line)
            off += (size_t)snprintf(line + off, sizeof line - off, "%s\n", msg);
    }
    if (off >= sizeof line) {
        off = sizeof line;
        line[off - 1] = '\n';
    }
    ssize_t w = write(rq_log_fd, line, off);
    (void)w;
}
