/* net/post.c with a real shard: a CONNECT whose authentication is pending stays suspended
 * (nothing parsed, nothing answered) until a verdict posted by a plain pthread (no shard ring)
 * resumes it; packets pipelined after the CONNECT are processed after CONNACK 0x00, in order,
 * and never after a refusal [MQTT-3.1.4-5]; verdicts for a connection that is gone, or naming
 * a live connection's slot with a stale serial, are dropped and counted; a pending CONNECT
 * that outlives the connect timeout is closed; an answer that finds the inbox full goes through
 * the overflow stack; a verdict left in the inbox at shutdown is freed (ASan). The port's chain
 * is one test method that answers "pending" and records the connection identity it was given,
 * then one that allows (reached through a "not relevant" reply). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../check.h"
#include "auth/authn.h"
#include "config/config.h"
#include "core/inbox.h"
#include "core/principal.h"
#include "net/gen.h"
#include "net/ports.h"
#include "net/post.h"
#include "net/shard.h"
#include "net/shard_int.h"
#include "net/xport.h"

/* ---- the pending method ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static uint64_t seen[64];
static int n_seen;
/* While set, the check holds the shard thread until it is cleared (section 8: a full inbox). */
static bool hold_shard, shard_held;

static void pending_check(const void *state, const struct rq_authn_creds *c,
                          struct rq_authn_outcome *o)
{
    (void)state;
    pthread_mutex_lock(&mu);
    if (n_seen < 64)
        seen[n_seen++] = c->conn_id;
    pthread_cond_broadcast(&cv);
    while (hold_shard) {
        shard_held = true;
        pthread_cond_broadcast(&cv);
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    o->verdict = RQ_AUTHN_PENDING;
}

static void no_free(void *state)
{
    (void)state;
}

static const struct rq_authn_method_ops pending_ops = {
    .name = "TestPending", .check = pending_check, .free = no_free};

/* The chain's second method: allows everyone as "bob" (reached when the first one answers
 * "not relevant" through a reply). */
static void allow_check(const void *state, const struct rq_authn_creds *c,
                        struct rq_authn_outcome *o)
{
    (void)state;
    (void)c;
    o->verdict = RQ_AUTHN_ALLOW;
    o->principal.username = strdup("bob");
    rq_principal_add_attr(&o->principal, "tier", "second");
}

static const struct rq_authn_method_ops allow_ops = {
    .name = "TestSync", .check = allow_check, .free = no_free};

/* The identity of the n-th CONNECT that reached the method (0 after 10 s). */
static uint64_t wait_pending(int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&mu);
    while (n_seen <= n && pthread_cond_timedwait(&cv, &mu, &until) == 0)
        ;
    uint64_t id = n_seen > n ? seen[n] : 0;
    pthread_mutex_unlock(&mu);
    return id;
}

/* ---- a plain thread that posts verdicts ---- */

struct job {
    uint64_t conn;
    int result;
    uint8_t reason;
    int rc;
};

static void *poster(void *arg)
{
    struct job *j = arg;
    struct rq_auth_verdict *v = rq_auth_verdict_new(j->conn, j->result);
    v->method = "TestPending";
    v->reason = j->reason;
    snprintf(v->why, sizeof v->why, "test verdict");
    if (j->result == RQ_AUTH_ALLOW) {
        struct rq_principal p = {.username = strdup("alice"), .expiry = 0};
        v->principal = rq_principal_take(&p);
    }
    j->rc = rq_shard_post_verdict(v);
    if (j->rc != 0)
        rq_auth_verdict_free(v);
    return NULL; /* the thread's posting ring is freed at exit */
}

/* A method-level reply (RQ_POST_AUTHN_REPLY) from a plain thread. */
struct reply_job {
    uint64_t conn;
    int verdict; /* enum rq_authn_verdict */
    uint8_t reason;
    int rc;
};

static void *replier(void *arg)
{
    struct reply_job *j = arg;
    struct rq_authn_reply *r = calloc(1, sizeof *r);
    r->conn = j->conn;
    r->pending_at = 0;
    rq_authn_outcome_init(&r->o);
    r->o.verdict = j->verdict;
    r->o.reason = j->reason;
    snprintf(r->o.why, sizeof r->o.why, "test reply");
    j->rc = rq_shard_post_authn_reply(r);
    if (j->rc != 0)
        rq_authn_reply_free(r);
    return NULL;
}

static int reply_from_thread(uint64_t conn, int verdict, uint8_t reason)
{
    struct reply_job j = {conn, verdict, reason, -1};
    pthread_t t;
    if (pthread_create(&t, NULL, replier, &j) != 0)
        return -1;
    pthread_join(t, NULL);
    return j.rc;
}

static int post_from_thread(uint64_t conn, int result, uint8_t reason)
{
    struct job j = {conn, result, reason, -1};
    pthread_t t;
    if (pthread_create(&t, NULL, poster, &j) != 0)
        return -1;
    pthread_join(t, NULL);
    return j.rc;
}

/* ---- raw MQTT client ---- */

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return;
        p += k;
        n -= (size_t)k;
    }
}

/* CONNECT (v5 or 3.1.1) with client id "cN", then `pings` PINGREQs in the same write. */
static int connect_client(uint16_t port, int version, int n, size_t pings)
{
    int fd = dial(port);
    if (fd < 0)
        return -1;
    size_t len = 0;
    uint8_t *b = malloc(64 + pings * 2);
    char cid[8];
    snprintf(cid, sizeof cid, "c%d", n);
    uint8_t vh[] = {0, 4, 'M', 'Q', 'T', 'T', (uint8_t)version, 0x02, 0, 60};
    size_t rl = sizeof vh + (version == 5 ? 1 : 0) + 2 + strlen(cid);
    b[len++] = 0x10;
    b[len++] = (uint8_t)rl;
    memcpy(b + len, vh, sizeof vh);
    len += sizeof vh;
    if (version == 5)
        b[len++] = 0; /* no properties */
    b[len++] = 0;
    b[len++] = (uint8_t)strlen(cid);
    memcpy(b + len, cid, strlen(cid));
    len += strlen(cid);
    for (size_t i = 0; i < pings; i++) {
        b[len++] = 0xC0;
        b[len++] = 0x00;
    }
    send_all(fd, b, len);
    free(b);
    return fd;
}

/* Reads until `want` bytes, EOF or `ms` without data. Returns bytes read; *eof on EOF. */
static size_t read_some(int fd, uint8_t *buf, size_t want, int ms, bool *eof)
{
    size_t got = 0;
    *eof = false;
    while (got < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, ms) <= 0)
            break;
        ssize_t k = recv(fd, buf + got, want - got, 0);
        if (k <= 0) {
            *eof = true;
            break;
        }
        got += (size_t)k;
    }
    return got;
}

/* A CONNACK then `pings` PINGRESPs, nothing else. Returns the CONNACK's reason byte or -1. */
static int expect_connack(int fd, int version, size_t pings, bool want_eof)
{
    size_t hdr = version == 5 ? 3 : 4; /* v5: 20 rl 00 rc props... (rl read first) */
    uint8_t b[8];
    bool eof;
    if (read_some(fd, b, 2, 10000, &eof) != 2 || b[0] != 0x20)
        return -1;
    size_t rl = b[1];
    uint8_t *rest = malloc(rl + pings * 2 + 1);
    size_t got = read_some(fd, rest, rl + pings * 2, 10000, &eof);
    (void)hdr;
    int rc = got >= 2 ? rest[1] : -1;
    CHECK_EQ(got, rl + pings * 2);
    size_t bad = 0;
    for (size_t i = 0; i < pings && rl + 2 * i + 1 < got; i++)
        bad += rest[rl + 2 * i] != 0xD0 || rest[rl + 2 * i + 1] != 0x00;
    CHECK_EQ(bad, 0);
    free(rest);
    if (want_eof) {
        uint8_t x;
        size_t more = read_some(fd, &x, 1, 10000, &eof);
        CHECK_EQ(more, 0);
        CHECK(eof);
    }
    return rc;
}

/* Nothing arrives within ms (the CONNECT is still suspended). */
static bool quiet(int fd, int ms)
{
    uint8_t x;
    bool eof;
    return read_some(fd, &x, 1, ms, &eof) == 0 && !eof;
}

int main(void)
{
    __atomic_store_n(&rq_log_level, RQ_LOG_DEBUG, __ATOMIC_RELAXED);
    char err[256] = "";
    struct rq_config *cfg = rq_config_default();
    cfg->ports[0].port = 0; /* one shard: the kernel picks a free port */
    cfg->connect_timeout_ms = 1500;
    struct rq_gen *g = rq_ports_first(cfg, NULL, 1, err, sizeof err);
    if (!g) {
        fprintf(stderr, "ports: %s\n", err);
        return 1;
    }
    struct rq_authn_chain *ch = rq_authn_chain_new("test");
    rq_authn_chain_add(ch, &pending_ops, NULL);
    rq_authn_chain_add(ch, &allow_ops, NULL);
    g->ports[0].authn = ch; /* freed with the generation */
    struct rq_gens *gens = rq_gens_new(1, g, rq_ports_gen_free);
    struct rq_broker *b = rq_broker_new(cfg, 1);
    struct rq_shard *sh = rq_shard_new(0, b, cfg, gens, err, sizeof err);
    if (!sh || rq_shard_start(sh, err, sizeof err) != 0) {
        fprintf(stderr, "shard: %s\n", err);
        if (strstr(err, "io_uring"))
            return 77;
        return 1;
    }
    rq_shards_go();
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    getsockname(g->lis[0]->fds[0], (struct sockaddr *)&a, &al);
    uint16_t port = ntohs(a.sin_port);
    int posted = 0;

    /* 1. live, allowed: CONNACK 0x00, then the 3 pipelined PINGREQs answered in order */
    int fa = connect_client(port, 5, 0, 3);
    uint64_t ida = wait_pending(0);
    CHECK(ida != 0);
    CHECK_EQ(rq_conn_id_shard(ida), 0);
    CHECK(quiet(fa, 300)); /* suspended: not even the PINGREQs are answered */
    CHECK_EQ(post_from_thread(ida, RQ_AUTH_ALLOW, 0), 0);
    posted++;
    CHECK_EQ(expect_connack(fa, 5, 3, false), 0x00);

    /* 2. live, denied (3.1.1): return code 4 for 0x86, closed, the PINGREQ never answered */
    int fb = connect_client(port, 4, 1, 1);
    uint64_t idb = wait_pending(1);
    CHECK(idb != 0 && idb != ida);
    CHECK_EQ(post_from_thread(idb, RQ_AUTH_DENY, 0x86), 0);
    posted++;
    CHECK_EQ(expect_connack(fb, 4, 0, true), 4);

    /* 2b. denied (3.1.1) with a reason other than 0x86: return code 5 */
    int fb2 = connect_client(port, 4, 4, 0);
    uint64_t idb2 = wait_pending(2);
    CHECK_EQ(post_from_thread(idb2, RQ_AUTH_DENY, 0x8A), 0);
    posted++;
    CHECK_EQ(expect_connack(fb2, 4, 0, true), 5);
    close(fb2);

    /* 2c. denied (3.1.1) as server busy (0x89, a full auth pool): return code 3 */
    int fb3 = connect_client(port, 4, 5, 0);
    uint64_t idb3 = wait_pending(3);
    CHECK_EQ(post_from_thread(idb3, RQ_AUTH_DENY, 0x89), 0);
    posted++;
    CHECK_EQ(expect_connack(fb3, 4, 0, true), 3);
    close(fb3);

    /* 3. pending past the connect timeout: closed without CONNACK; its late verdict is dropped */
    int fc = connect_client(port, 5, 2, 1);
    uint64_t idc = wait_pending(4);
    uint8_t x[4];
    bool eof;
    CHECK_EQ(read_some(fc, x, sizeof x, 10000, &eof), 0);
    CHECK(eof);
    CHECK_EQ(post_from_thread(idc, RQ_AUTH_ALLOW, 0), 0);
    posted++;

    /* 4. a verdict naming a live connection's slot with another (stale) serial does nothing to
     * it; its own verdict then resumes it. The pipelined input (more than IN_HOLD_MAX, so its
     * reading is held while it waits) is all processed, in order, after CONNACK. */
    size_t pings = 48 * 1024; /* 96 KiB of PINGREQs */
    int fd = connect_client(port, 5, 3, pings);
    uint64_t idd = wait_pending(5);
    CHECK(idd != 0);
    uint64_t stale = rq_conn_id(0, rq_conn_id_slot(idd), rq_conn_id_serial(idc));
    CHECK(stale != idd);
    fprintf(stderr, "slot of the timed-out connection %u, of the new one %u\n",
            rq_conn_id_slot(idc), rq_conn_id_slot(idd));
    CHECK_EQ(post_from_thread(stale, RQ_AUTH_ALLOW, 0), 0);
    posted++;
    CHECK(quiet(fd, 300));
    CHECK_EQ(post_from_thread(idd, RQ_AUTH_ALLOW, 0), 0);
    posted++;
    CHECK_EQ(expect_connack(fd, 5, pings, false), 0x00);
    /* a second verdict for a connection that no longer waits is dropped too */
    CHECK_EQ(post_from_thread(idd, RQ_AUTH_DENY, 0x87), 0);
    posted++;
    CHECK(quiet(fd, 300));

    /* 5. method-level replies: "not relevant" falls through to the chain's next method on the
     * shard (it allows), a deny ends the chain, a reply for a gone connection is dropped */
    int fe = connect_client(port, 5, 6, 2);
    uint64_t ide = wait_pending(6);
    CHECK(quiet(fe, 200));
    CHECK_EQ(reply_from_thread(ide, RQ_AUTHN_NOT_RELEVANT, 0), 0);
    posted++;
    CHECK_EQ(expect_connack(fe, 5, 2, false), 0x00);
    int ff = connect_client(port, 5, 7, 1);
    uint64_t idf = wait_pending(7);
    CHECK_EQ(reply_from_thread(idf, RQ_AUTHN_DENY, 0x8A), 0);
    posted++;
    CHECK_EQ(expect_connack(ff, 5, 0, true), 0x8A);
    CHECK_EQ(reply_from_thread(idc, RQ_AUTHN_ALLOW, 0), 0); /* the timed-out one */
    posted++;
    close(fe);
    close(ff);

    /* 6. a shard that does not exist */
    struct rq_post none = {.kind = RQ_POST_STOP};
    CHECK_EQ(rq_shard_post_external(7, &none), -ENOENT);

    /* 8. an answer that finds the shard's inbox full (a ServiceAccountToken answer fans out to
     * many connections and its thread must not wait): rq_shard_post_authn_reply_always puts it
     * on the overflow stack, and the shard applies it after draining the inbox. The shard is
     * held inside a check while the inbox is filled with replies for a gone connection. */
    int fg = connect_client(port, 5, 9, 1);
    uint64_t idg = wait_pending(8);
    CHECK(idg != 0);
    pthread_mutex_lock(&mu);
    hold_shard = true;
    pthread_mutex_unlock(&mu);
    int fh = connect_client(port, 5, 10, 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&mu);
    while (!shard_held && pthread_cond_timedwait(&cv, &mu, &until) == 0)
        ;
    bool held = shard_held;
    pthread_mutex_unlock(&mu);
    CHECK(held);
    __atomic_store_n(&rq_log_level, RQ_LOG_INFO, __ATOMIC_RELAXED); /* 65,536 "dropped" lines */
    int filler = 0;
    for (;;) {
        struct rq_authn_reply *r = calloc(1, sizeof *r);
        r->conn = idc; /* the timed-out connection: dropped */
        rq_authn_outcome_init(&r->o);
        r->o.verdict = RQ_AUTHN_ALLOW;
        if (rq_shard_post_authn_reply(r) != 0) {
            rq_authn_reply_free(r);
            break;
        }
        filler++;
    }
    CHECK_EQ(filler, INBOX_CAP);
    struct rq_authn_reply *rg = calloc(1, sizeof *rg);
    rg->conn = idg;
    rq_authn_outcome_init(&rg->o);
    rg->o.verdict = RQ_AUTHN_NOT_RELEVANT; /* -> the next method allows */
    CHECK_EQ(rq_shard_post_authn_reply_always(rg), 0);
    CHECK(atomic_load(&sh->reply_overflow) == rg);
    pthread_mutex_lock(&mu);
    hold_shard = false;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    CHECK_EQ(expect_connack(fg, 5, 1, false), 0x00);
    __atomic_store_n(&rq_log_level, RQ_LOG_DEBUG, __ATOMIC_RELAXED);
    posted += filler + 1;
    close(fg);
    close(fh);

    close(fa);
    close(fb);
    close(fc);
    close(fd);
    rq_shard_stop(sh);
    rq_shard_join(sh);
    CHECK_EQ(sh->verdicts_applied, 8);
    CHECK_EQ(sh->verdicts_dropped, 4 + (uint64_t)INBOX_CAP);
    CHECK_EQ(sh->overflow_replies, 1);
    CHECK_EQ(sh->verdicts_applied + sh->verdicts_dropped, (uint64_t)posted);
    /* 7. a verdict and a reply still in the inbox when the shard is freed are freed with it */
    struct rq_post late = {.kind = RQ_POST_AUTH_VERDICT,
                           .ptr = rq_auth_verdict_new(ida, RQ_AUTH_ALLOW)};
    struct rq_principal p = {.username = strdup("late")};
    ((struct rq_auth_verdict *)late.ptr)->principal = rq_principal_take(&p);
    bool wake;
    CHECK(rq_inbox_push(sh->inbox, &late, &wake));
    struct rq_authn_reply *lr = calloc(1, sizeof *lr);
    rq_authn_outcome_init(&lr->o);
    lr->o.verdict = RQ_AUTHN_ALLOW;
    lr->o.principal.username = strdup("late");
    struct rq_post late2 = {.kind = RQ_POST_AUTHN_REPLY, .ptr = lr};
    CHECK(rq_inbox_push(sh->inbox, &late2, &wake));
    struct rq_authn_reply *lr2 = calloc(1, sizeof *lr2); /* and one on the overflow stack */
    rq_authn_outcome_init(&lr2->o);
    lr2->o.principal.username = strdup("late");
    atomic_store(&sh->reply_overflow, lr2);
    rq_shard_free(sh);
    rq_broker_free(b);
    rq_gens_free(gens);
    rq_config_free(cfg);
    return check_exit("test_post");
}
