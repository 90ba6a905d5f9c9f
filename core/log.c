/* Log line formatting and output. Lines go to stderr with one write(2) each so that lines from
 * several threads never interleave. This module does no filtering of content: callers must never
 * pass passwords, tokens or authentication data. */
#include "core/log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int rq_log_level = RQ_LOG_INFO;
int rq_log_json = 0;

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

const char *rq_peer_format(const struct rq_peer *p, char *out, size_t len)
{
    char host[64];
    int af = p && p->family == 4 ? AF_INET : p && p->family == 6 ? AF_INET6 : 0;
    if (!af || !inet_ntop(af, p->addr, host, sizeof host)) {
        snprintf(out, len, "?");
        return out;
    }
    snprintf(out, len, af == AF_INET6 ? "[%s]:%u" : "%s:%u", host, p->port);
    return out;
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
    char msg[1024], line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000) % 1000);

    size_t off = 0;
    if (rq_log_json) {
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
    ssize_t w = write(STDERR_FILENO, line, off);
    (void)w;
}
