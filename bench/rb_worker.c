/* ringbench workers: one thread per worker, one epoll loop each, owning its connections.
 *
 * Does: non-blocking TCP connects to the broker (loopback only, checked by main), the MQTT
 * client side of CONNECT / SUBSCRIBE / PUBLISH at QoS 0, 1, 2 (PUBACK, PUBREC/PUBREL/PUBCOMP in
 * both directions), paced publishing (open loop) or window-limited publishing (closed loop),
 * and the bookkeeping of what subscribers receive: counts, sequence checks, latency.
 * Packets going out are encoded with core/codec (a PUBLISH is encoded once per publisher as a
 * template, then copied with the packet id and the payload header patched in); packets coming
 * back are framed and decoded with rq_codec_frame / rq_codec_decode.
 * With --tls, a connection makes its TLS handshake (rb_tls.c) between the TCP connect and
 * CONNECT, driven by the same loop; then plaintext goes through SSL_write into a ciphertext
 * buffer sent like `out` is over TCP, and comes from SSL_read in large chunks.
 *
 * Does not: decide phases or rates (main does, through struct rb_ctl), print, or retry a
 * failed connection (a failure is counted and its first error kept for the report). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/codec.h"
#include "rb.h"
#include "rb_tls.h"

enum { RB_ROLE_SUB, RB_ROLE_PUB, RB_ROLE_IDLE };
enum { CS_NONE, CS_CONNECTING, CS_TLS, CS_CONNACK, CS_SUBACK, CS_READY, CS_CLOSED };

#define RB_BURST 4096               /* publishes per publisher per tick, at most */
#define RB_OUT_MAX (1u << 20)       /* bytes waiting in a publisher's buffer before it holds back */
#define RB_READ_SUB (128u << 10)    /* read size of subscribers */
#define RB_READ_SMALL (16u << 10)   /* publishers read acks only */
#define RB_READ_IDLE 256u           /* connect mode: CONNACK only */
#define RB_MAX_PACKET (16u << 20)
#define RB_TLS_CHUNK (256u << 10)   /* plaintext encrypted at once; bounds the ciphertext queue */

struct rb_conn {
    int fd;
    uint8_t role;
    uint8_t state;
    bool dirty;
    bool pollout; /* EPOLLOUT armed */
    uint32_t idx; /* publisher, subscriber or connection number */
    uint64_t t0;  /* connect started */
    struct rq_buf in, out;
    size_t out_off; /* bytes of `out` already sent (TLS: already encrypted into tout) */
    struct ssl_st *ssl; /* --tls: the session; NULL over plain TCP */
    struct rq_buf tout; /* --tls: ciphertext to send */
    size_t tout_off;    /* bytes of `tout` already sent */
    /* publishers */
    uint32_t next_seq;
    uint64_t sent_trial;
    uint32_t inflight, inflight_max;
    struct rq_buf tmpl;
    uint32_t pid_off, pay_off;
};

static struct rb_bench *B; /* set once by rb_workers_start, read-only afterwards */

/* ---------------------------------------------------------------------------------------- */
/* small helpers */

static void set_err(struct rb_worker *w, const struct rb_conn *c, const char *what, int err)
{
    if (w->err[0])
        return;
    static const char *const roles[] = {"subscriber", "publisher", "connection"};
    snprintf(w->err, sizeof w->err, "%s %u: %s%s%s", roles[c->role], c->idx, what,
             err ? ": " : "", err ? strerror(err) : "");
}

static void mark_dirty(struct rb_worker *w, struct rb_conn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        w->dirty[w->ndirty++] = c;
    }
}

static void set_pollout(struct rb_worker *w, struct rb_conn *c, bool on)
{
    if (c->pollout == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->pollout = on;
}

static void conn_close(struct rb_worker *w, struct rb_conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->ssl) {
        rb_tls_free(c->ssl);
        c->ssl = NULL;
    }
    rq_buf_free(&c->in);
    rq_buf_free(&c->out);
    rq_buf_free(&c->tout);
    c->out_off = c->tout_off = 0;
    c->state = CS_CLOSED;
}

/* A connection that failed or that the broker closed: counted, first error kept. */
static void conn_fail(struct rb_worker *w, struct rb_conn *c, const char *what, int err)
{
    if (c->state == CS_CLOSED)
        return;
    if (c->role == RB_ROLE_IDLE && c->state != CS_READY)
        w->inprog--;
    set_err(w, c, what, err);
    conn_close(w, c);
    atomic_fetch_add_explicit(&w->failed, 1, memory_order_relaxed);
}

/* Sends b from *off on. 1 when all of it is sent (b emptied), 0 when the socket is full
 * (EPOLLOUT armed), -1 when the connection failed (and is closed). */
static int send_buf(struct rb_worker *w, struct rb_conn *c, struct rq_buf *b, size_t *off)
{
    while (*off < b->len) {
        ssize_t n = send(c->fd, b->data + *off, b->len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            *off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_pollout(w, c, true);
            return 0;
        }
        conn_fail(w, c, "send", n < 0 ? errno : EPIPE);
        return -1;
    }
    b->len = 0;
    *off = 0;
    return 1;
}

static void tls_fail(struct rb_worker *w, struct rb_conn *c, long rc, const char *err)
{
    if (rc == RB_TLS_EOF)
        conn_fail(w, c, c->state == CS_TLS ? "TLS handshake: closed by the broker"
                                           : "closed by the broker", 0);
    else
        conn_fail(w, c, rc == RB_TLS_FAIL ? err : "TLS: unexpected want-write", 0);
}

/* TLS: encrypts the plaintext of `out` (RB_TLS_CHUNK at a time, each chunk becoming records in
 * `tout`) and sends `tout`. A chunk is encrypted only once the previous one is sent, so that
 * plaintext, not ciphertext, queues up when the broker reads slowly, and the publishers' limit
 * on pending output (RB_OUT_MAX) applies as over TCP. 1, 0 or -1 as send_buf. */
static int tls_flush(struct rb_worker *w, struct rb_conn *c)
{
    for (;;) {
        int rc = send_buf(w, c, &c->tout, &c->tout_off);
        if (rc <= 0)
            return rc;
        size_t pending = c->out.len - c->out_off;
        if (pending == 0)
            return 1;
        char err[160];
        long n = rb_tls_write(c->ssl, c->out.data + c->out_off,
                              pending < RB_TLS_CHUNK ? pending : RB_TLS_CHUNK, err, sizeof err);
        if (n == RB_TLS_WANT_READ)
            return 0; /* a handshake message must be read first: the next EPOLLIN flushes */
        if (n < 0) {
            tls_fail(w, c, n, err);
            return -1;
        }
        c->out_off += (size_t)n;
    }
}

/* Sends what is buffered. 0, or -1 when the connection failed (and is closed). */
static int conn_flush(struct rb_worker *w, struct rb_conn *c)
{
    int rc = c->ssl ? tls_flush(w, c) : send_buf(w, c, &c->out, &c->out_off);
    if (rc <= 0)
        return rc;
    c->out.len = 0;
    c->out_off = 0;
    if (c->role == RB_ROLE_IDLE) {
        rq_buf_free(&c->out);
        rq_buf_free(&c->tout);
    }
    set_pollout(w, c, false);
    return 0;
}

static void flush_dirty(struct rb_worker *w)
{
    for (uint32_t i = 0; i < w->ndirty; i++) {
        struct rb_conn *c = w->dirty[i];
        c->dirty = false;
        if (c->state != CS_CLOSED && !c->pollout)
            conn_flush(w, c);
    }
    w->ndirty = 0;
}

/* Makes room for n more output bytes, dropping what was already sent first. */
static int out_reserve(struct rb_conn *c, size_t n)
{
    if (c->out_off > 0 && c->out_off >= c->out.len / 2) {
        rq_buf_consume(&c->out, c->out_off);
        c->out_off = 0;
    }
    return rq_buf_reserve(&c->out, n);
}

/* ---------------------------------------------------------------------------------------- */
/* connecting */

static void client_id(char *buf, size_t cap, const struct rb_conn *c)
{
    static const char roles[] = {'s', 'p', 'c'};
    snprintf(buf, cap, "rb-%s-%c%u", B->run_id, roles[c->role], c->idx);
}

static int send_connect(struct rb_worker *w, struct rb_conn *c)
{
    char id[64];
    client_id(id, sizeof id, c);
    struct rq_connect cc = {
        .version = (uint8_t)B->o->version,
        .clean_start = true,
        .keepalive = B->o->keepalive,
        .client_id = {(const uint8_t *)id, (uint32_t)strlen(id)},
    };
    const struct rb_opts *o = B->o;
    if (o->username) {
        cc.has_username = true;
        cc.username = (struct rq_str){(const uint8_t *)o->username, (uint32_t)strlen(o->username)};
    }
    if (o->password) {
        cc.has_password = true;
        cc.password = (struct rq_str){(const uint8_t *)o->password, (uint32_t)strlen(o->password)};
    }
    if (o->version == 5) {
        /* let the broker's own limit decide how many QoS 1/2 messages it sends unacknowledged */
        cc.props.present = RQ_PROP_BIT(RQ_PROP_RECEIVE_MAX);
        cc.props.receive_max = 65535;
        if (o->auth_method) {
            cc.props.present |= RQ_PROP_BIT(RQ_PROP_AUTH_METHOD);
            cc.props.auth_method = (struct rq_str){(const uint8_t *)o->auth_method,
                                                   (uint32_t)strlen(o->auth_method)};
        }
        if (o->auth_data) {
            const char *d = o->n_auth_datas ? o->auth_datas[c->idx % o->n_auth_datas]
                                            : o->auth_data;
            cc.props.present |= RQ_PROP_BIT(RQ_PROP_AUTH_DATA);
            cc.props.auth_data = (struct rq_str){(const uint8_t *)d, (uint32_t)strlen(d)};
        }
    }
    /* exactly what this CONNECT needs (its own line of --auth-data-file included): a larger
     * reservation took a 16-32 KiB block per connection from malloc, whose free() then trimmed
     * and re-grew the generator's heap on every connection */
    size_t need = 128 + cc.username.len + cc.password.len + cc.props.auth_method.len +
                  cc.props.auth_data.len;
    if (out_reserve(c, need) || rq_codec_encode_connect(&c->out, &cc)) {
        conn_fail(w, c, "encode CONNECT", ENOMEM);
        return -1;
    }
    mark_dirty(w, c);
    return 0;
}

/* Connection idx's source address (rb_opts.source_addrs); the port is left to connect(), which
 * picks it for the whole 4-tuple (IP_BIND_ADDRESS_NO_PORT). */
static int bind_source(int fd, uint32_t idx)
{
    uint32_t n = B->o->source_addrs;
    if (!n)
        return 0;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(0x7f000002u + idx % n)};
    return bind(fd, (const struct sockaddr *)&a, sizeof a);
}

static void conn_open(struct rb_worker *w, struct rb_conn *c)
{
    c->t0 = rb_now_ns();
    c->state = CS_CONNECTING;
    if (c->role == RB_ROLE_IDLE)
        w->inprog++; /* until CONNACK or failure */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_fail(w, c, "socket", errno);
        return;
    }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind_source(fd, c->idx) < 0) {
        conn_fail(w, c, "bind source address", errno);
        return;
    }
    if (connect(fd, (const struct sockaddr *)B->addr, sizeof *B->addr) < 0 &&
        errno != EINPROGRESS) {
        conn_fail(w, c, "connect", errno);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        conn_fail(w, c, "epoll_ctl", errno);
        return;
    }
    c->pollout = true;
}

/* A TLS connection in its handshake became readable or writable (or was just connected):
 * sends what the handshake queued, advances it, and once it is complete queues CONNECT (which
 * conn_flush then sends after the handshake's last flight). */
static void on_tls_event(struct rb_worker *w, struct rb_conn *c)
{
    if (send_buf(w, c, &c->tout, &c->tout_off) <= 0)
        return; /* EPOLLOUT armed (we come back here), or failed */
    char err[160];
    int hs = rb_tls_handshake(c->ssl, err, sizeof err);
    if (hs == 1) {
        if (!w->tls.version[0])
            rb_tls_describe(c->ssl, &w->tls);
        c->state = CS_CONNACK;
        send_connect(w, c);
        return;
    }
    if (hs != RB_TLS_WANT_READ) {
        tls_fail(w, c, hs, err);
        return;
    }
    if (send_buf(w, c, &c->tout, &c->tout_off) > 0)
        set_pollout(w, c, false); /* the broker's turn */
}

static void on_connected(struct rb_worker *w, struct rb_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        conn_fail(w, c, "connect", err);
        return;
    }
    if (B->o->tls) {
        char msg[160];
        c->ssl = rb_tls_new(c->fd, &c->tout, c->role == RB_ROLE_IDLE ? RB_TLS_IDLE : RB_TLS_BULK,
                            msg, sizeof msg);
        if (!c->ssl) {
            conn_fail(w, c, msg, 0);
            return;
        }
        c->state = CS_TLS;
        on_tls_event(w, c);
        return;
    }
    c->state = CS_CONNACK;
    set_pollout(w, c, false);
    send_connect(w, c);
}

static void set_ready(struct rb_worker *w, struct rb_conn *c, uint64_t now)
{
    c->state = CS_READY;
    if (c->role == RB_ROLE_IDLE) {
        w->inprog--;
        rb_hist_add(&w->conn_lat, now - c->t0);
        atomic_store_explicit(&w->last_connack_ns, now, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&w->ready, 1, memory_order_release);
}

static void sub_filter(char *buf, size_t cap, const struct rb_conn *c)
{
    if (B->o->pattern == RB_PAIRWISE)
        snprintf(buf, cap, B->o->client_topics ? "%s/%u/+" : "%s/%u", B->filter, c->idx);
    else
        snprintf(buf, cap, "%s", B->filter);
}

static void on_connack(struct rb_worker *w, struct rb_conn *c, const struct rq_connack *ca,
                       uint64_t now)
{
    if (ca->rc != 0) {
        char what[64];
        snprintf(what, sizeof what, "CONNACK refused (code 0x%02X)", ca->rc);
        conn_fail(w, c, what, 0);
        return;
    }
    if (B->o->version == 5 && RQ_PROP_HAS(&ca->props, RQ_PROP_RECEIVE_MAX) &&
        ca->props.receive_max < c->inflight_max)
        c->inflight_max = ca->props.receive_max;
    if (c->role != RB_ROLE_SUB) {
        set_ready(w, c, now);
        return;
    }
    char f[256];
    sub_filter(f, sizeof f, c);
    struct rq_str fs = {(const uint8_t *)f, (uint32_t)strlen(f)};
    uint8_t opt = (uint8_t)B->o->qos;
    struct rq_props none = {0};
    if (out_reserve(c, 256) ||
        rq_codec_encode_subscribe(&c->out, B->o->version, 1, &none, &fs, &opt, 1)) {
        conn_fail(w, c, "encode SUBSCRIBE", ENOMEM);
        return;
    }
    mark_dirty(w, c);
    c->state = CS_SUBACK;
}

static void on_suback(struct rb_worker *w, struct rb_conn *c, const struct rq_subacklist *sa,
                      uint64_t now)
{
    if (sa->codes.len < 1 || sa->codes.p[0] >= 0x80) {
        char what[64];
        snprintf(what, sizeof what, "SUBSCRIBE refused (code 0x%02X)",
                 sa->codes.len ? sa->codes.p[0] : 0);
        conn_fail(w, c, what, 0);
        return;
    }
    set_ready(w, c, now);
}

/* ---------------------------------------------------------------------------------------- */
/* receiving */

static void send_ack(struct rb_worker *w, struct rb_conn *c, int type, uint16_t pid)
{
    struct rq_ack a = {.packet_id = pid};
    if (out_reserve(c, 16) || rq_codec_encode_ack(&c->out, B->o->version, type, &a)) {
        conn_fail(w, c, "encode ack", ENOMEM);
        return;
    }
    mark_dirty(w, c);
}

/* Loss, order and latency bookkeeping of one delivery to subscriber c. */
static void on_message(struct rb_worker *w, struct rb_conn *c, const struct rq_publish *p,
                       const struct rb_ctl *ctl, uint64_t now)
{
    struct rb_hdr h;
    if (p->payload.len < RB_HDR_SIZE) {
        rb_inc(&w->st.bad, 1);
        return;
    }
    memcpy(&h, p->payload.p, sizeof h);
    if (h.magic != RB_MAGIC || h.pub >= B->o->pubs) {
        rb_inc(&w->st.bad, 1);
        return;
    }
    _Atomic uint32_t *cell = &B->seen[(size_t)c->idx * B->o->pubs + h.pub];
    uint32_t last1 = atomic_load_explicit(cell, memory_order_relaxed);
    uint32_t s1 = h.seq + 1;
    if (last1 != 0 && s1 <= last1) {
        rb_inc(&w->st.reordered, 1);
    } else {
        /* shared subscriptions spread one publisher over the group: gaps are expected there */
        if (B->o->pattern != RB_SHARED && s1 != last1 + 1)
            rb_inc(&w->st.gaps, s1 - last1 - 1);
        atomic_store_explicit(cell, s1, memory_order_relaxed);
    }
    bool counting = ctl->phase == RB_PH_RUN || ctl->phase == RB_PH_DRAIN;
    if (counting && h.trial == ctl->trial) {
        rb_inc(&w->st.recv, 1);
        if (h.ts_ns >= ctl->t_warm_ns && now >= h.ts_ns)
            rb_hist_add(&w->st.lat, now - h.ts_ns);
        atomic_store_explicit(&w->st.last_recv_ns, now, memory_order_relaxed);
    } else {
        rb_inc(&w->st.late, 1);
    }
}

static void pub_acked(struct rb_worker *w, struct rb_conn *c, uint8_t reason)
{
    if (c->inflight > 0)
        c->inflight--;
    rb_inc(&w->st.acked, 1);
    if (reason >= 0x80)
        rb_inc(&w->st.ack_errors, 1);
}

static void on_packet(struct rb_worker *w, struct rb_conn *c, const struct rq_packet *pkt,
                      const struct rb_ctl *ctl, uint64_t now)
{
    switch (pkt->type) {
    case RQ_CONNACK:
        if (c->state == CS_CONNACK)
            on_connack(w, c, &pkt->u.connack, now);
        break;
    case RQ_SUBACK:
        if (c->state == CS_SUBACK)
            on_suback(w, c, &pkt->u.suback, now);
        break;
    case RQ_PUBLISH:
        if (c->role == RB_ROLE_SUB)
            on_message(w, c, &pkt->u.publish, ctl, now);
        else
            rb_inc(&w->st.bad, 1);
        if (pkt->u.publish.qos == 1)
            send_ack(w, c, RQ_PUBACK, pkt->u.publish.packet_id);
        else if (pkt->u.publish.qos == 2)
            send_ack(w, c, RQ_PUBREC, pkt->u.publish.packet_id);
        break;
    case RQ_PUBREL:
        send_ack(w, c, RQ_PUBCOMP, pkt->u.ack.packet_id);
        break;
    case RQ_PUBACK:
    case RQ_PUBCOMP:
        pub_acked(w, c, pkt->u.ack.reason);
        break;
    case RQ_PUBREC:
        if (pkt->u.ack.reason >= 0x80)
            pub_acked(w, c, pkt->u.ack.reason); /* the flow ends here [MQTT-4.3.3] */
        else
            send_ack(w, c, RQ_PUBREL, pkt->u.ack.packet_id);
        break;
    case RQ_DISCONNECT: {
        char what[64];
        snprintf(what, sizeof what, "DISCONNECT from the broker (reason 0x%02X)",
                 pkt->u.reason.reason);
        conn_fail(w, c, what, 0);
        break;
    }
    default: /* PINGRESP, UNSUBACK, AUTH: nothing to do */
        break;
    }
}

/* Handles every complete packet in c->in. -1 when the connection is gone. */
static int handle_input(struct rb_worker *w, struct rb_conn *c, const struct rb_ctl *ctl,
                        uint64_t now)
{
    size_t off = 0;
    while (c->state != CS_CLOSED) {
        size_t hdr;
        const char *why = NULL;
        long len = rq_codec_frame(c->in.data + off, c->in.len - off, RB_MAX_PACKET, &hdr, &why);
        if (len == RQ_INCOMPLETE || (len > 0 && (size_t)len > c->in.len - off))
            break;
        struct rq_packet pkt;
        if (len < 0 || rq_codec_decode(c->in.data + off, (size_t)len, B->o->version, &pkt,
                                       &why) != 0) {
            char what[160];
            snprintf(what, sizeof what, "bad packet from the broker: %s", why ? why : "?");
            conn_fail(w, c, what, 0);
            return -1;
        }
        on_packet(w, c, &pkt, ctl, now);
        off += (size_t)len;
    }
    if (c->state == CS_CLOSED)
        return -1;
    if (off)
        rq_buf_consume(&c->in, off);
    return 0;
}

/* TLS: decrypts until OpenSSL holds nothing more that was read from the socket (one read() of
 * up to 128 KB feeds many SSL_read calls), handling packets whenever the buffer fills. */
static int tls_read(struct rb_worker *w, struct rb_conn *c, const struct rb_ctl *ctl,
                    uint64_t now, size_t chunk)
{
    for (;;) {
        if (rq_buf_reserve(&c->in, chunk)) {
            conn_fail(w, c, "read buffer", ENOMEM);
            return -1;
        }
        bool more = false;
        while (c->in.len < c->in.cap) {
            char err[160];
            long n = rb_tls_read(c->ssl, c->in.data + c->in.len, c->in.cap - c->in.len, err,
                                 sizeof err);
            if (n == RB_TLS_WANT_READ) {
                more = false;
                break;
            }
            if (n < 0) {
                tls_fail(w, c, n, err);
                return -1;
            }
            c->in.len += (size_t)n;
            more = rb_tls_pending(c->ssl);
            if (!more)
                break;
        }
        if (handle_input(w, c, ctl, now) < 0)
            return -1;
        if (!more)
            break;
    }
    /* reading may have queued TLS output (an alert, a key update) or unblocked a write */
    if ((c->tout.len > c->tout_off || c->out.len > c->out_off) && !c->pollout)
        mark_dirty(w, c);
    return 0;
}

/* Reads once (TLS: what one read brought) and handles every complete packet. -1 when the
 * connection is gone. */
static int conn_read(struct rb_worker *w, struct rb_conn *c, const struct rb_ctl *ctl,
                     uint64_t now)
{
    size_t chunk = c->role == RB_ROLE_SUB    ? RB_READ_SUB
                   : c->role == RB_ROLE_PUB ? RB_READ_SMALL
                                             : RB_READ_IDLE;
    if (c->ssl) {
        if (tls_read(w, c, ctl, now, chunk) < 0)
            return -1;
    } else {
        if (rq_buf_reserve(&c->in, chunk)) {
            conn_fail(w, c, "read buffer", ENOMEM);
            return -1;
        }
        ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
        if (n == 0) {
            conn_fail(w, c, "closed by the broker", 0);
            return -1;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
            conn_fail(w, c, "read", errno);
            return -1;
        }
        c->in.len += (size_t)n;
        if (handle_input(w, c, ctl, now) < 0)
            return -1;
    }
    if (c->role == RB_ROLE_IDLE && c->state == CS_READY && c->in.len == 0)
        rq_buf_free(&c->in); /* idle connections keep no buffers: our memory stays flat */
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* publishing */

static int make_template(struct rb_conn *c)
{
    char topic[256], id[64];
    client_id(id, sizeof id, c);
    if (B->o->pattern == RB_PAIRWISE && B->o->client_topics)
        snprintf(topic, sizeof topic, "%s/%u/%s", B->topic, c->idx, id);
    else if (B->o->pattern == RB_PAIRWISE)
        snprintf(topic, sizeof topic, "%s/%u", B->topic, c->idx);
    else
        snprintf(topic, sizeof topic, "%s", B->topic);
    uint8_t *zero = calloc(1, B->o->size);
    if (!zero)
        return -ENOMEM;
    struct rq_pubout po = {
        .qos = (uint8_t)B->o->qos,
        .topic = {(const uint8_t *)topic, (uint32_t)strlen(topic)},
        .packet_id = B->o->qos ? 1 : 0,
        .payload = {zero, B->o->size},
    };
    int rc = rq_codec_encode_publish(&c->tmpl, B->o->version, &po);
    free(zero);
    if (rc)
        return rc;
    /* find where the payload and the packet id sit by decoding our own template */
    size_t hdr;
    const char *why;
    long len = rq_codec_frame(c->tmpl.data, c->tmpl.len, RB_MAX_PACKET, &hdr, &why);
    struct rq_packet pkt;
    if (len != (long)c->tmpl.len ||
        rq_codec_decode(c->tmpl.data, c->tmpl.len, B->o->version, &pkt, &why) != 0)
        return -EINVAL;
    c->pay_off = (uint32_t)(pkt.u.publish.payload.p - c->tmpl.data);
    c->pid_off = (uint32_t)(hdr + 2 + strlen(topic));
    if (B->o->qos && (c->tmpl.data[c->pid_off] != 0 || c->tmpl.data[c->pid_off + 1] != 1))
        return -EINVAL;
    return 0;
}

/* Last sequence number + 1 that every subscriber that should get publisher p's messages has
 * seen (for shared subscriptions: that any member has seen). Closed loop uses it as an ack. */
static uint32_t delivered_upto(uint32_t p)
{
    const struct rb_opts *o = B->o;
    if (o->pattern == RB_PAIRWISE)
        return atomic_load_explicit(&B->seen[(size_t)p * o->pubs + p], memory_order_relaxed);
    uint32_t v = o->pattern == RB_SHARED ? 0 : UINT32_MAX;
    for (uint32_t s = 0; s < o->subs; s++) {
        uint32_t x = atomic_load_explicit(&B->seen[(size_t)s * o->pubs + p], memory_order_relaxed);
        if (o->pattern == RB_SHARED ? x > v : x < v)
            v = x;
    }
    return v;
}

static void emit(struct rb_worker *w, struct rb_conn *c, uint32_t n, const struct rb_ctl *ctl,
                 uint64_t now)
{
    size_t tl = c->tmpl.len;
    if (out_reserve(c, (size_t)n * tl)) {
        conn_fail(w, c, "output buffer", ENOMEM);
        return;
    }
    uint8_t *p = c->out.data + c->out.len;
    struct rb_hdr h = {.magic = RB_MAGIC, .pub = c->idx, .trial = ctl->trial, .ts_ns = now};
    for (uint32_t k = 0; k < n; k++, p += tl) {
        memcpy(p, c->tmpl.data, tl);
        h.seq = c->next_seq++;
        if (B->o->qos) {
            uint16_t pid = (uint16_t)(h.seq % 65535u + 1u);
            p[c->pid_off] = (uint8_t)(pid >> 8);
            p[c->pid_off + 1] = (uint8_t)pid;
        }
        memcpy(p + c->pay_off, &h, sizeof h);
    }
    c->out.len += (size_t)n * tl;
    c->sent_trial += n;
    if (B->o->qos)
        c->inflight += n;
    rb_inc(&w->st.sent, n);
    mark_dirty(w, c);
}

/* One pacing tick of every publisher of this worker. Returns when the next publish is due
 * (absolute ns): the loop sleeps until then instead of waking every tick at low rates. */
static uint64_t publish_tick(struct rb_worker *w, const struct rb_ctl *ctl, uint64_t now)
{
    bool closed = ctl->rate_per_pub <= 0;
    uint64_t next = closed ? now : UINT64_MAX;
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct rb_conn *c = &w->conns[i];
        if (c->role != RB_ROLE_PUB || c->state != CS_READY)
            continue;
        uint64_t want = RB_BURST;
        if (!closed) {
            if (now < ctl->t_start_ns)
                continue;
            double el = (double)(now - ctl->t_start_ns) * 1e-9;
            uint64_t due = (uint64_t)(el * ctl->rate_per_pub) + 1; /* the first one at t=0 */
            if (due <= c->sent_trial) {
                uint64_t at = ctl->t_start_ns +
                              (uint64_t)((double)c->sent_trial / ctl->rate_per_pub * 1e9);
                next = at < next ? at : next;
                continue;
            }
            want = due - c->sent_trial;
            uint64_t sched =
                ctl->t_start_ns + (uint64_t)((double)c->sent_trial / ctl->rate_per_pub * 1e9);
            if (now > sched && now - sched > rb_get(&w->st.max_lag_ns))
                atomic_store_explicit(&w->st.max_lag_ns, now - sched, memory_order_relaxed);
        }
        uint64_t lim = want < RB_BURST ? want : RB_BURST;
        if (B->o->qos) {
            uint64_t room = c->inflight < c->inflight_max ? c->inflight_max - c->inflight : 0;
            lim = lim < room ? lim : room;
        }
        if (closed) {
            uint32_t undelivered = c->next_seq - delivered_upto(c->idx);
            uint64_t room = undelivered < B->o->window ? B->o->window - undelivered : 0;
            lim = lim < room ? lim : room;
        }
        size_t pending = c->out.len - c->out_off;
        uint64_t room = pending >= RB_OUT_MAX ? 0 : (RB_OUT_MAX - pending) / c->tmpl.len + 1;
        lim = lim < room ? lim : room;
        if (lim < want && !closed) {
            rb_inc(&w->st.blocked, 1);
            next = now; /* held back: look again after one tick */
        }
        if (lim > 0)
            emit(w, c, (uint32_t)lim, ctl, now);
        if (!closed && lim == want) { /* on schedule: the next one is due at */
            uint64_t at = ctl->t_start_ns +
                          (uint64_t)((double)c->sent_trial / ctl->rate_per_pub * 1e9);
            next = at < next ? at : next;
        }
    }
    return next;
}

/* ---------------------------------------------------------------------------------------- */
/* the loop */

static void on_phase(struct rb_worker *w, const struct rb_ctl *ctl)
{
    if (ctl->phase != RB_PH_RUN)
        return;
    struct rb_wstats *s = &w->st;
    _Atomic uint64_t *ctrs[] = {&s->sent,   &s->recv,       &s->late,    &s->reordered,
                                &s->gaps,   &s->bad,        &s->acked,   &s->ack_errors,
                                &s->blocked, &s->last_recv_ns, &s->max_lag_ns};
    for (size_t i = 0; i < sizeof ctrs / sizeof ctrs[0]; i++)
        atomic_store_explicit(ctrs[i], 0, memory_order_relaxed);
    memset(&s->lat, 0, sizeof s->lat);
    for (uint32_t i = 0; i < w->nconns; i++)
        w->conns[i].sent_trial = 0;
}

/* Applies a new control generation if there is one. Returns the phase in force. */
static enum rb_phase poll_ctl(struct rb_worker *w, struct rb_ctl *ctl, uint32_t *gen)
{
    uint32_t g = atomic_load_explicit(&B->ctl.gen, memory_order_acquire);
    if (g != *gen) {
        *gen = g;
        ctl->phase = B->ctl.phase;
        ctl->trial = B->ctl.trial;
        ctl->rate_per_pub = B->ctl.rate_per_pub;
        ctl->t_start_ns = B->ctl.t_start_ns;
        ctl->t_warm_ns = B->ctl.t_warm_ns;
        on_phase(w, ctl);
        atomic_store_explicit(&w->ack_gen, g, memory_order_release);
    }
    return ctl->phase;
}

static void open_more(struct rb_worker *w)
{
    uint32_t conc = (B->o->concurrency + B->nw - 1) / B->nw;
    while (w->inprog < conc && w->opened < w->nconns)
        conn_open(w, &w->conns[w->opened++]);
}

static void disconnect_all(struct rb_worker *w)
{
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct rb_conn *c = &w->conns[i];
        if (c->state == CS_READY && c->fd >= 0) {
            c->out.len = c->out_off = 0;
            struct rq_props none = {0};
            if (rq_codec_encode_reason(&c->out, B->o->version, RQ_DISCONNECT, 0, &none) == 0) {
                if (c->ssl) { /* DISCONNECT and close_notify, in one send */
                    char err[160];
                    if (rb_tls_write(c->ssl, c->out.data, c->out.len, err, sizeof err) > 0)
                        rb_tls_shutdown(c->ssl);
                    (void)!send(c->fd, c->tout.data + c->tout_off, c->tout.len - c->tout_off,
                                MSG_NOSIGNAL | MSG_DONTWAIT);
                } else {
                    (void)!send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
                }
            }
        }
        if (c->state != CS_NONE && c->state != CS_CLOSED)
            conn_close(w, c);
        rq_buf_free(&c->tmpl);
    }
}

static void *worker_main(void *arg)
{
    struct rb_worker *w = arg;
    struct rb_ctl ctl = {.phase = RB_PH_SETUP};
    uint32_t gen = UINT32_MAX;
    struct epoll_event evs[256];
    bool connect_mode = B->o->mode == RB_MODE_CONNECT;
    long tick_ns = (long)(B->o->tick_us * 1000.0);

    poll_ctl(w, &ctl, &gen);
    if (!connect_mode)
        for (uint32_t i = 0; i < w->nconns; i++)
            conn_open(w, &w->conns[i]);
    for (;;) {
        enum rb_phase ph = poll_ctl(w, &ctl, &gen);
        if (ph == RB_PH_STOP)
            break;
        uint64_t now = rb_now_ns();
        long wait_ns = 50000000L; /* idle phases: the eventfd wakes us on a phase change */
        if (ph == RB_PH_RUN) {
            if (connect_mode) {
                open_more(w);
            } else {
                uint64_t next = publish_tick(w, &ctl, now);
                wait_ns = next <= now + (uint64_t)tick_ns ? tick_ns
                          : next - now > (uint64_t)wait_ns ? wait_ns
                                                            : (long)(next - now);
            }
        }
        flush_dirty(w);
        struct timespec ts = {0, wait_ns};
        int n = epoll_pwait2(w->ep, evs, 256, &ts, NULL);
        if (n < 0 && errno != EINTR) {
            snprintf(w->err, sizeof w->err, "epoll_wait: %s", strerror(errno));
            break;
        }
        /* a publisher may already be in the new trial: see its phase before its messages */
        poll_ctl(w, &ctl, &gen);
        now = rb_now_ns();
        for (int i = 0; i < n; i++) {
            struct rb_conn *c = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (!c) { /* the wake-up eventfd */
                uint64_t v;
                (void)!read(w->evfd, &v, sizeof v);
                continue;
            }
            if (c->state == CS_CLOSED)
                continue;
            if (c->state == CS_CONNECTING) {
                on_connected(w, c);
                continue;
            }
            if (c->state == CS_TLS) {
                on_tls_event(w, c);
                continue;
            }
            if ((e & EPOLLIN) && conn_read(w, c, &ctl, now) < 0)
                continue;
            if (!(e & EPOLLIN) && (e & (EPOLLERR | EPOLLHUP))) {
                conn_fail(w, c, "socket error", ECONNRESET);
                continue;
            }
            if ((e & EPOLLOUT) && c->state != CS_CLOSED)
                conn_flush(w, c);
        }
        flush_dirty(w);
    }
    disconnect_all(w);
    atomic_store_explicit(&w->running, 0, memory_order_release);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */

int rb_workers_start(struct rb_bench *b)
{
    B = b;
    const struct rb_opts *o = b->o;
    uint32_t nw = b->nw;
    uint32_t total = o->mode == RB_MODE_CONNECT ? o->conns : o->subs + o->pubs;
    for (uint32_t k = 0; k < nw; k++) {
        struct rb_worker *w = &b->w[k];
        w->id = k;
        uint32_t mine = total / nw + (k < total % nw ? 1 : 0);
        w->conns = calloc(mine ? mine : 1, sizeof *w->conns);
        w->dirty = calloc(mine ? mine : 1, sizeof *w->dirty);
        if (!w->conns || !w->dirty)
            return -ENOMEM;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->ep < 0 || w->evfd < 0)
            return -errno;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->evfd, &ev) < 0)
            return -errno;
    }
    /* connection i of a role goes to worker i % nw */
    for (uint32_t i = 0; i < total; i++) {
        uint8_t role;
        uint32_t idx;
        if (o->mode == RB_MODE_CONNECT) {
            role = RB_ROLE_IDLE;
            idx = i;
        } else if (i < o->subs) {
            role = RB_ROLE_SUB;
            idx = i;
        } else {
            role = RB_ROLE_PUB;
            idx = i - o->subs;
        }
        struct rb_worker *w = &b->w[i % nw];
        struct rb_conn *c = &w->conns[w->nconns++];
        c->fd = -1;
        c->role = role;
        c->idx = idx;
        c->inflight_max = o->inflight;
        if (role == RB_ROLE_PUB && make_template(c) != 0)
            return -EINVAL;
    }
    for (uint32_t k = 0; k < nw; k++) {
        struct rb_worker *w = &b->w[k];
        atomic_store(&w->running, 1);
        int rc = pthread_create(&w->th, NULL, worker_main, w);
        if (rc)
            return -rc;
    }
    return 0;
}

void rb_workers_wake(struct rb_bench *b)
{
    uint64_t one = 1;
    for (uint32_t k = 0; k < b->nw; k++)
        (void)!write(b->w[k].evfd, &one, sizeof one);
}

void rb_workers_join(struct rb_bench *b)
{
    for (uint32_t k = 0; k < b->nw; k++) {
        pthread_join(b->w[k].th, NULL);
        close(b->w[k].ep);
        close(b->w[k].evfd);
        free(b->w[k].conns);
        free(b->w[k].dirty);
    }
}
