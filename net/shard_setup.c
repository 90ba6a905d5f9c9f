/* A shard's lifecycle: the io_uring probe, listening sockets, ring, provided buffers and file
 * table set up on the shard's own thread, start, stop (woken from the control thread's ring)
 * and free. The loop itself is in shard.c. */
#include "net/shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "core/inbox.h"
#include "net/gen.h"
#include "net/post.h"
#include "net/shard_int.h"

struct rq_shard **rq_shards;
int rq_n_shards;

/* ---- io_uring probe and setup ---- */

static int ring_setup(struct io_uring *ring, const char **mode)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = RING_ENTRIES * 8;
    int rc = io_uring_queue_init_params(RING_ENTRIES, ring, &p);
    if (rc == 0) {
        *mode = "SINGLE_ISSUER+DEFER_TASKRUN";
        return 0;
    }
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = RING_ENTRIES * 8;
    rc = io_uring_queue_init_params(RING_ENTRIES, ring, &p);
    if (rc == 0)
        *mode = "COOP_TASKRUN";
    return rc;
}

int rq_net_probe(char *err, size_t errlen)
{
    struct io_uring ring;
    const char *mode;
    int rc = ring_setup(&ring, &mode);
    if (rc == -ENOSYS || rc == -EPERM || rc == -EACCES) {
        snprintf(err, errlen,
                 "io_uring is not available (%s). ringmq needs io_uring (Linux 6.1 or later). "
                 "If it runs in a container, the seccomp profile or the sysctl "
                 "kernel.io_uring_disabled probably blocks it: allow io_uring_setup, "
                 "io_uring_enter and io_uring_register (e.g. docker run --security-opt "
                 "seccomp=unconfined, or a profile that permits them) or set "
                 "kernel.io_uring_disabled=0",
                 strerror(-rc));
        return rc;
    }
    if (rc < 0) {
        snprintf(err, errlen, "io_uring_setup failed: %s (kernel too old? ringmq needs 6.1+)",
                 strerror(-rc));
        return rc;
    }
    struct io_uring_probe *pr = io_uring_get_probe_ring(&ring);
    int missing = 0;
    const char *what = "";
    if (!pr) {
        missing = 1;
        what = "opcode probe";
    } else {
        static const struct {
            int op;
            const char *name;
        } need[] = {{IORING_OP_ACCEPT, "ACCEPT"},
                    {IORING_OP_RECV, "RECV"},
                    {IORING_OP_SEND, "SEND"},
                    {IORING_OP_MSG_RING, "MSG_RING"}};
        for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
            if (!io_uring_opcode_supported(pr, need[i].op)) {
                missing = 1;
                what = need[i].name;
            }
        io_uring_free_probe(pr);
    }
    io_uring_queue_exit(&ring);
    if (missing) {
        snprintf(err, errlen, "this kernel's io_uring lacks %s; ringmq needs Linux 6.1 or later",
                 what);
        return -ENOTSUP;
    }
    return 0;
}

struct rq_shard *rq_shard_new(int id, struct rq_broker *b, const struct rq_config *cfg,
                              struct rq_gens *gens, char *err, size_t errlen)
{
    struct rq_shard *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->id = id;
    s->b = b;
    s->cfg = cfg;
    s->gens = gens;
    s->gen = rq_gens_current(gens);
    s->ring_fd = -1;
    sem_init(&s->ready, 0, 0);
    /* its listening sockets are the generations' (net/ports.c binds them, gen.h) */
    s->inbox = rq_inbox_new(INBOX_CAP, sizeof(struct rq_post));
    s->backlog = calloc((size_t)b->n_shards, sizeof *s->backlog);
    if (!s->inbox || !s->backlog) {
        snprintf(err, errlen, "out of memory");
        rq_shard_free(s);
        return NULL;
    }
    if (!rq_shards) {
        rq_shards = calloc((size_t)b->n_shards, sizeof *rq_shards);
        rq_n_shards = b->n_shards;
        rq_admit_init(cfg, b->n_shards, cfg->n_ports);
    }
    if (rq_shards)
        rq_shards[id] = s;
    return s;
}

static int setup_buffers(struct rq_shard *s)
{
    size_t ring_sz = BUF_COUNT * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, ring_sz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    s->br = mem;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)mem, .ring_entries = BUF_COUNT, .bgid = BUF_GROUP};
    int rc = io_uring_register_buf_ring(&s->ring, &reg, 0);
    if (rc)
        return rc;
    /* The receive buffers are a fixed per-shard cost: map them resident now (MAP_POPULATE), so
     * that the data path never takes a page fault on them and the process's RSS does not creep up
     * by 4 KiB per buffer as connections start using them. */
    void *bufs = mmap(NULL, (size_t)BUF_COUNT * BUF_SIZE, PROT_READ | PROT_WRITE,
                      MAP_ANONYMOUS | MAP_PRIVATE | MAP_POPULATE, -1, 0);
    if (bufs == MAP_FAILED)
        return -errno;
    s->bufs = bufs;
    io_uring_buf_ring_init(s->br);
    for (int i = 0; i < BUF_COUNT; i++)
        io_uring_buf_ring_add(s->br, s->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (uint16_t)i,
                              io_uring_buf_ring_mask(BUF_COUNT), i);
    io_uring_buf_ring_advance(s->br, BUF_COUNT);
    return 0;
}

/* The registered file table: one slot per connection this shard may hold. Descriptors are one
 * process-wide budget (admit.c, from RLIMIT_NOFILE) that the accepts of all shards draw from,
 * so a table larger than it would never fill; SO_REUSEPORT does not spread connections evenly
 * enough to split it, so each shard may hold all of it. Connected clients stop at
 * maxConnections and the others at preConnectLimit.connections, so that bounds it too. */
static int setup_files(struct rq_shard *s)
{
    uint64_t want = (uint64_t)s->cfg->max_connections + s->cfg->preconnect_conns + 64;
    if (want > rq_admit_fd_budget())
        want = rq_admit_fd_budget();
    if (want > 1u << 20)
        want = 1u << 20;
    int rc = io_uring_register_files_sparse(&s->ring, (unsigned)want);
    if (rc)
        return rc;
    s->n_slots = (uint32_t)want;
    s->slots = calloc(want, sizeof *s->slots);
    s->free_slots = malloc(want * sizeof *s->free_slots);
    s->slot_fd = malloc(want * sizeof *s->slot_fd);
    if (!s->slots || !s->free_slots || !s->slot_fd)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->n_slots; i++)
        s->free_slots[i] = s->n_slots - 1 - i;
    s->n_free = s->n_slots;
    return 0;
}

static void pin(struct rq_shard *s)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(s->id % n, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        rq_log(RQ_LOG_WARN, NULL, "shard %d: could not pin to CPU %ld", s->id, s->id % n);
}

/* The start gate (rq_shards_go): shards set up their rings, then wait here before looping. */
static pthread_mutex_t go_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_cond = PTHREAD_COND_INITIALIZER;
static bool go_open;

void rq_shards_go(void)
{
    pthread_mutex_lock(&go_lock);
    go_open = true;
    pthread_cond_broadcast(&go_cond);
    pthread_mutex_unlock(&go_lock);
}

static void wait_for_go(void)
{
    pthread_mutex_lock(&go_lock);
    while (!go_open)
        pthread_cond_wait(&go_cond, &go_lock);
    pthread_mutex_unlock(&go_lock);
}

static void *shard_main(void *arg)
{
    struct rq_shard *s = arg;
    rq_stats_bind(s->id); /* this thread's counters (core/stats.h) */
    pin(s);
    int rc = ring_setup(&s->ring, &s->ring_mode);
    if (rc == 0)
        rc = setup_buffers(s);
    if (rc == 0)
        rc = setup_files(s);
    if (rc == 0) {
        s->w = rq_worker_new(s->b, s->id, &rq_shard_worker_ops, s);
        if (!s->w)
            rc = -ENOMEM;
    }
    s->ring_fd = s->ring.ring_fd;
    s->min_wait = rc == 0 && (s->ring.features & RQ_FEAT_MIN_TIMEOUT);
    /* every io_uring_enter otherwise looks the ring's file up (fget: ~1.3 % of the CPU at
     * 10,000 msg/s); liburing's own calls use the registered index from now on */
    s->reg_ring = rc == 0 && io_uring_register_ring_fd(&s->ring) == 1;
    s->start_err = rc;
    if (rc)
        snprintf(s->start_msg, sizeof s->start_msg, "shard %d: io_uring setup failed: %s", s->id,
                 strerror(-rc));
    sem_post(&s->ready);
    if (rc)
        return NULL;
    rq_log(RQ_LOG_DEBUG, NULL, "shard %d: ring up (%s), %u connection slots, %s", s->id,
           s->ring_mode, s->n_slots,
           !s->cfg->batch_wait_us ? "waking on the first completion"
           : s->min_wait          ? "completions batched by min_wait"
                                  : "kernel without min_wait: batching only when busy");
    wait_for_go();
    rq_shard_loop(s);
    rq_gens_offline(s->gens, s->id); /* its connections still pin what they use */
    rq_worker_free(s->w);
    s->w = NULL;
    return NULL;
}

int rq_shard_start(struct rq_shard *s, char *err, size_t errlen)
{
    int rc = pthread_create(&s->thread, NULL, shard_main, s);
    if (rc) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        return -rc;
    }
    s->started = true;
    sem_wait(&s->ready);
    if (s->start_err) {
        snprintf(err, errlen, "%s", s->start_msg);
        return s->start_err;
    }
    return 0;
}

/* The control thread's own small ring: it has no shard, but MSG_RING needs a ring to send from. */
static struct io_uring ctl_ring;
static bool ctl_ring_up;
static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;

void rq_shard_wake(struct rq_shard *s)
{
    pthread_mutex_lock(&ctl_lock);
    if (!ctl_ring_up)
        ctl_ring_up = io_uring_queue_init(8, &ctl_ring, 0) == 0;
    if (ctl_ring_up && s->ring_fd >= 0) {
        /* always wake (a sleeping shard has no timeout): a stop flag or a new generation is
         * seen at the top of the shard's next iteration */
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ctl_ring);
        if (sqe) {
            io_uring_prep_msg_ring(sqe, s->ring_fd, 0, tag(OP_WAKE, 0, 0), 0);
            io_uring_sqe_set_data64(sqe, 0);
            io_uring_submit(&ctl_ring);
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&ctl_ring, &cqe) == 0)
                io_uring_cqe_seen(&ctl_ring, cqe);
        }
    }
    pthread_mutex_unlock(&ctl_lock);
}

void rq_shard_stop(struct rq_shard *s)
{
    atomic_store(&s->stop_requested, true);
    struct rq_post p = {.kind = RQ_POST_STOP};
    bool wake = false;
    rq_inbox_push(s->inbox, &p, &wake);
    rq_shard_wake(s);
}

void rq_shard_join(struct rq_shard *s)
{
    if (s->started) {
        pthread_join(s->thread, NULL);
        s->started = false;
    }
}

static void discard_post(struct rq_shard *s, const struct rq_post *p)
{
    if (p->kind == RQ_POST_MOVE_CONN) {
        rq_move_discard(s->b, p->ptr);
    } else if (p->kind == RQ_POST_DELIVER) {
        rq_batch_discard(p->ptr);
    } else if (p->kind == RQ_POST_ADOPT_CONN) {
        rq_handover_discard(p->ptr);
    } else if (p->kind == RQ_POST_AUTH_VERDICT) {
        rq_auth_verdict_free(p->ptr);
    } else if (p->kind == RQ_POST_AUTHN_REPLY) {
        rq_authn_reply_free(p->ptr);
    } else if (p->kind == RQ_POST_SYS) {
        free(p->ptr);
    }
}

void rq_shard_free(struct rq_shard *s)
{
    if (!s)
        return;
    if (s->ring_fd >= 0)
        io_uring_queue_exit(&s->ring);
    if (s->br)
        munmap(s->br, BUF_COUNT * sizeof(struct io_uring_buf));
    if (s->bufs)
        munmap(s->bufs, (size_t)BUF_COUNT * BUF_SIZE);
    free(s->slots);
    free(s->free_slots);
    free(s->slot_fd);
    for (int t = 0; s->backlog && t < s->b->n_shards; t++) {
        for (size_t i = 0; i < s->backlog[t].n; i++)
            discard_post(s, &s->backlog[t].v[i]);
        free(s->backlog[t].v);
    }
    free(s->backlog);
    free(s->paused);
    if (s->inbox) {
        /* Posts that arrived after this shard stopped (wills routed during shutdown). */
        struct rq_post p;
        while (rq_inbox_pop(s->inbox, &p))
            discard_post(s, &p);
        rq_inbox_free(s->inbox);
    }
    for (struct rq_authn_reply *r = atomic_exchange(&s->reply_overflow, NULL), *next; r;
         r = next) {
        next = r->next;
        rq_authn_reply_free(r);
    }
    if (rq_shards) {
        rq_shards[s->id] = NULL;
        bool any = false;
        for (int i = 0; i < rq_n_shards; i++)
            any |= rq_shards[i] != NULL;
        if (!any) {
            free(rq_shards);
            rq_shards = NULL;
        }
    }
    sem_destroy(&s->ready);
    free(s);
}
