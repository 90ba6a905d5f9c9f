/* The metrics and health endpoint: a small HTTP server (libmicrohttpd) driven by the control
 * thread's poll loop, never by a thread of its own. GET (or HEAD) /metrics, /healthz and
 * /readyz (net/metrics.h); another method on those paths gets 405, any other path 404.
 * Bounded: at most RQ_HTTP_MAX_CONNS connections (RQ_HTTP_MAX_PER_IP from one address), each
 * closed after RQ_HTTP_TIMEOUT_S idle seconds, with RQ_HTTP_MEMORY bytes of request memory. */
#ifndef RQ_HTTP_H
#define RQ_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define RQ_HTTP_MAX_CONNS 32
#define RQ_HTTP_MAX_PER_IP 8
#define RQ_HTTP_TIMEOUT_S 10
#define RQ_HTTP_MEMORY (32 * 1024)

struct rq_http;

/* Listens on addr (an IPv4 or IPv6 literal) port port. NULL with err set (e.g. the port is in
 * use). */
struct rq_http *rq_http_start(const char *addr, uint16_t port, char *err, size_t errlen);
/* A descriptor that becomes readable when the server has work (for poll). */
int rq_http_fd(const struct rq_http *h);
/* How long the caller may wait before calling rq_http_run even without activity (ms), or -1. */
int rq_http_timeout_ms(struct rq_http *h);
/* Does what is due: accepts, reads requests, answers them. Never blocks. */
void rq_http_run(struct rq_http *h);
/* Closes the listener and every connection (NULL is fine). */
void rq_http_stop(struct rq_http *h);

#endif
