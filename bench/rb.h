/* ringbench: definitions shared by the load generator's modules (bench/).
 *
 * ringbench is a separate program that never links into the broker, so its symbols carry the
 * prefix `rb_` (not `rq_`): a reader sees at once that the code belongs to the bench.
 *
 * Threads: the main thread parses options, drives phases (connect, trials, drain) and prints;
 * each worker thread owns a set of connections and one epoll loop. They share only:
 *   - struct rb_ctl, written by main and published by bumping `gen` (release); workers
 *     acknowledge a phase by storing that gen in their `ack_gen` (release);
 *   - per-worker counters (single writer, relaxed atomics, read by main for progress);
 *   - the `seen` matrix: per (subscriber, publisher) the last sequence number + 1 received,
 *     written by the subscriber's worker and read by publishers' workers in closed loop;
 *   - histograms, read by main only while the workers are acknowledged in an idle phase. */
#ifndef RB_H
#define RB_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

/* ---- options ---- */

enum rb_pattern { RB_FANIN, RB_FANOUT, RB_PAIRWISE, RB_SHARED };
enum rb_mode { RB_MODE_RATE, RB_MODE_MAX, RB_MODE_CONNECT };

struct rb_opts {
    char host[64];
    uint16_t port;
    int broker_pid;      /* 0: unknown, no broker CPU/RSS */
    int version;         /* 4 (3.1.1) or 5 */
    int qos;             /* publish and subscription QoS */
    uint32_t size;       /* payload bytes, >= RB_HDR_SIZE */
    uint32_t pubs, subs;
    enum rb_pattern pattern;
    enum rb_mode mode;
    double rate;         /* open loop: total publishes per second */
    double duration;     /* seconds of one run / one trial */
    double warmup;       /* seconds at the start of a trial left out of the latency */
    double drain;        /* max seconds to wait for deliveries after publishing stops */
    uint32_t threads;    /* worker threads */
    uint32_t inflight;   /* QoS 1/2 unacknowledged publishes per publisher */
    uint32_t window;     /* closed loop: publishes per publisher not yet delivered */
    uint32_t trials;     /* max-rate search: open-loop trials after the probe */
    double probe;        /* max-rate search: seconds of the closed-loop probe */
    double slo_p99_ms;   /* a trial is sustainable only if p99 latency stays under this */
    uint32_t conns;      /* connect mode: connections to open */
    uint32_t concurrency;/* connect mode: handshakes in progress at once */
    /* connections bind to 127.0.0.2 .. 127.0.0.(1+n) in turn (0: the kernel's choice): a
     * storm's closed connections stay in TIME_WAIT for 60 s, and with tens of thousands of
     * them the kernel's search for a free local port in connect() became the generator's main
     * cost (storms later in a run measured more of that than of the broker) */
    uint32_t source_addrs;
    double hold;         /* connect mode: seconds to hold them before reading the broker RSS */
    double tick_us;      /* publisher pacing tick */
    double timeout;      /* hard limit for the whole run (seconds) */
    uint16_t keepalive;
    const char *username, *password;  /* CONNECT credentials (every connection) */
    const char *auth_method, *auth_data; /* MQTT 5 enhanced authentication in CONNECT */
    /* --auth-data-file: one Authentication Data per line; connection idx uses line idx % n
     * (a storm with distinct credentials, e.g. one SAT per client: a cold cache) */
    char **auth_datas;
    unsigned n_auth_datas;
    const char *json_path;
    const char *label;
    bool quiet;
    bool check;          /* exit 1 unless delivered > 0, lost == 0, reordered == 0 */
    /* pairwise: publisher i publishes to <topic>/<i>/<its client id> and subscriber i takes
     * <topic>/<i>/+ (per-client topics, as authorization rules with {principal.clientId} want) */
    bool client_topics;
    /* TLS (rb_tls.c) */
    bool tls;            /* every connection is TLS */
    const char *cafile;  /* verify the server against these CAs; NULL: no verification */
    const char *cert, *key; /* client certificate (chain) and its key, for X.509 auth */
    const char *sni;     /* server name sent and verified; an IP literal is verified, not sent */
    int tls_version;     /* 0: 1.2 or 1.3, whichever negotiates; 12 or 13: only that one */
};

/* What a TLS handshake negotiated (the first one of a worker: every connection uses the same
 * context, so they all negotiate the same). Empty strings until then. */
struct rb_tls_info {
    char version[16];
    char cipher[64];
    char group[32];
};

/* ---- payload: every published message starts with this header (host byte order) ---- */

#define RB_MAGIC 0x31424d52u /* "RMB1" */
struct rb_hdr {
    uint32_t magic;
    uint32_t pub;   /* publisher index */
    uint32_t seq;   /* per publisher, from 0, across trials */
    uint32_t trial; /* which trial sent it; late arrivals from earlier trials are not counted */
    uint64_t ts_ns; /* CLOCK_MONOTONIC when it was written to the socket buffer */
};
#define RB_HDR_SIZE ((uint32_t)sizeof(struct rb_hdr))

/* ---- latency histogram: log-linear, 64 sub-buckets per power of two (< 1.6 % error) ---- */

#define RB_HIST_N 3776
struct rb_hist {
    uint64_t n, max;
    uint64_t b[RB_HIST_N];
};

void rb_hist_add(struct rb_hist *h, uint64_t v);
void rb_hist_merge(struct rb_hist *dst, const struct rb_hist *src);
uint64_t rb_hist_pct(const struct rb_hist *h, double p); /* p in [0,1]; 0 when empty */

/* ---- /proc readers: 0 or -errno ---- */

uint64_t rb_now_ns(void); /* CLOCK_MONOTONIC */
int rb_proc_cpu_us(int pid, uint64_t *us);     /* utime + stime of every thread */
int rb_proc_rss_kb(int pid, uint64_t *kb);     /* VmRSS */
int rb_machine_cpu(uint64_t *busy, uint64_t *total); /* /proc/stat, in ticks */
bool rb_proc_alive(int pid);

/* ---- control block ---- */

enum rb_phase {
    RB_PH_SETUP,   /* connect (and subscribe); publishers wait */
    RB_PH_IDLE,    /* connected, nothing sent */
    RB_PH_RUN,     /* publish (open loop at rate_per_pub, or closed loop when it is 0) */
    RB_PH_DRAIN,   /* stop publishing, keep receiving */
    RB_PH_STOP,    /* disconnect and leave */
};

struct rb_ctl {
    _Atomic uint32_t gen; /* bumped (release) after the fields below are written */
    enum rb_phase phase;
    uint32_t trial;
    double rate_per_pub;  /* messages/s per publisher; 0 = closed loop */
    uint64_t t_start_ns;  /* trial start */
    uint64_t t_warm_ns;   /* latency samples from messages sent before this are dropped */
};

/* Per-worker counters of the current trial (zeroed by the worker when it enters RUN). */
struct rb_wstats {
    _Atomic uint64_t sent;      /* publishes written this trial */
    _Atomic uint64_t recv;      /* deliveries of this trial's messages */
    _Atomic uint64_t late;      /* deliveries of earlier trials' messages */
    _Atomic uint64_t reordered; /* a sequence number not above the last one from that publisher */
    _Atomic uint64_t gaps;      /* sequence numbers skipped (non-shared patterns) */
    _Atomic uint64_t bad;       /* payload without our header, unknown publisher */
    _Atomic uint64_t acked;     /* QoS 1/2 flows completed */
    _Atomic uint64_t ack_errors;/* v5 acks with a reason >= 0x80 */
    _Atomic uint64_t blocked;   /* publisher ticks held back (window, inflight or socket full) */
    _Atomic uint64_t last_recv_ns;
    _Atomic uint64_t max_lag_ns;/* open loop: how far publishing fell behind schedule */
    struct rb_hist lat;
};

struct rb_conn;

struct rb_worker {
    uint32_t id;
    pthread_t th;
    int ep;
    int evfd; /* main writes it after a phase change so that idle workers wake at once */
    struct rb_conn *conns; /* owned */
    uint32_t nconns;
    struct rb_conn **dirty; /* connections with output to flush */
    uint32_t ndirty;
    _Atomic uint32_t ack_gen;
    _Atomic uint32_t ready;  /* connections that finished CONNECT (+ SUBSCRIBE) */
    _Atomic uint32_t failed; /* connections that failed or were closed by the broker */
    _Atomic uint32_t running;
    struct rb_wstats st;
    /* connect mode */
    uint32_t opened, inprog;
    _Atomic uint64_t last_connack_ns;
    struct rb_hist conn_lat;
    struct rb_tls_info tls; /* written before the first connection is counted ready */
    char err[200]; /* first error, for the report */
};

struct rb_bench {
    struct rb_opts *o;
    struct rb_ctl ctl;
    struct rb_worker *w;
    uint32_t nw;
    _Atomic uint32_t *seen; /* [subs][pubs]: last seq + 1 received, 0 = none */
    char topic[128];        /* publish topic (pairwise: prefix, "/<i>" appended) */
    char filter[192];       /* subscription filter (pairwise: prefix) */
    char run_id[24];
    uint32_t per_msg;       /* deliveries expected per publish */
    struct sockaddr_in *addr;
};

/* rb_worker.c */
int rb_workers_start(struct rb_bench *b);
void rb_workers_wake(struct rb_bench *b); /* after bumping ctl.gen */
void rb_workers_join(struct rb_bench *b);

/* relaxed single-writer counter helpers */
static inline void rb_inc(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
static inline uint64_t rb_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

#endif
