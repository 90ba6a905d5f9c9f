/* The metrics / health HTTP endpoint on libmicrohttpd in external-poll (epoll) mode (see
 * http.h): libmicrohttpd parses HTTP; this file maps paths to answers. */
#include "net/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/timer.h"
#include "net/metrics.h"

struct rq_http {
    struct MHD_Daemon *d;
    int fd;
};

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    rq_log(RQ_LOG_DEBUG, NULL, "metrics endpoint: %s", line);
}

static enum MHD_Result answer(struct MHD_Connection *con, unsigned status, const char *type,
                              void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(con, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result text(struct MHD_Connection *con, unsigned status, const char *msg)
{
    return answer(con, status, "text/plain; charset=utf-8", (void *)msg, strlen(msg),
                  MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result metrics(struct MHD_Connection *con)
{
    struct rq_buf b = {0};
    if (rq_metrics_render(&b) != 0) {
        rq_buf_free(&b);
        return text(con, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    /* the buffer moves to the response, which frees it */
    return answer(con, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len,
                  MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result healthz(struct MHD_Connection *con)
{
    uint64_t age = 0;
    int stuck = rq_metrics_stuck_shard(rq_now_ms(), &age);
    if (stuck < 0)
        return text(con, MHD_HTTP_OK, "ok\n");
    char msg[128];
    snprintf(msg, sizeof msg, "shard %d: its loop has not turned for %llu ms\n", stuck,
             (unsigned long long)age);
    return text(con, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
}

static enum MHD_Result readyz(struct MHD_Connection *con)
{
    const char *why = "";
    if (rq_metrics_ready(&why))
        return text(con, MHD_HTTP_OK, "ok\n");
    char msg[128];
    snprintf(msg, sizeof msg, "not ready: %s\n", why);
    return text(con, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    static int seen;
    (void)cls, (void)version, (void)upload_data;
    if (!*con_cls) { /* headers only so far: answer once the request is complete */
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*upload_data_size) { /* a body: nothing here takes one, it is discarded */
        *upload_data_size = 0;
        return MHD_YES;
    }
    enum MHD_Result (*fn)(struct MHD_Connection *) =
        strcmp(url, "/metrics") == 0   ? metrics
        : strcmp(url, "/healthz") == 0 ? healthz
        : strcmp(url, "/readyz") == 0  ? readyz
                                       : NULL;
    if (!fn)
        return text(con, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return text(con, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    return fn(con);
}

struct rq_http *rq_http_start(const char *addr, uint16_t port, char *err, size_t errlen)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "metrics endpoint: '%s' is not an IP address", addr);
        return NULL;
    }
    struct rq_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->d = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)RQ_HTTP_MAX_CONNS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)RQ_HTTP_MAX_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)RQ_HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)RQ_HTTP_MEMORY, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        h->d ? MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (!info) {
        snprintf(err, errlen, "metrics endpoint: cannot listen on %s%s%s:%u (in use, or not an "
                 "address of this host)", flags & MHD_USE_IPv6 ? "[" : "", addr,
                 flags & MHD_USE_IPv6 ? "]" : "", port);
        rq_http_stop(h);
        return NULL;
    }
    h->fd = info->epoll_fd;
    return h;
}

int rq_http_fd(const struct rq_http *h)
{
    return h->fd;
}

int rq_http_timeout_ms(struct rq_http *h)
{
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(h->d, &t) != MHD_YES)
        return -1;
    return t > 60000 ? 60000 : (int)t;
}

void rq_http_run(struct rq_http *h)
{
    MHD_run(h->d);
}

void rq_http_stop(struct rq_http *h)
{
    if (!h)
        return;
    if (h->d)
        MHD_stop_daemon(h->d);
    free(h);
}
