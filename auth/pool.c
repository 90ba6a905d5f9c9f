/* The authentication service pool: see pool.h for the contract.
 *
 * What it does: moves jobs from any thread to K pool threads (one core/inbox each), runs them as
 * libcurl transfers on a per-thread multi handle with at most max_connections in flight, enforces
 * each job's deadline (also while it waits for a free connection), hands each outcome to done()
 * (holding it on its lane while done() says the lane is busy), and stops cleanly. What it does not do: know what a request means (the job's ops do), retry,
 * or post verdicts to shards (done() does).
 *
 * Why its own FIFO instead of CURLMOPT_MAX_HOST_CONNECTIONS: libcurl starts a transfer's timeout
 * clock only when it leaves its internal pending state, so a job could wait there far longer
 * than its timeout; here the wait counts.
 *
 * Stop protocol: submit increments `submitters`, then reads `stopping` (both seq_cst); stop sets
 * `stopping`, then waits until `submitters` is 0. Either a submit sees `stopping` and refuses, or
 * stop sees it in flight and waits for its push (and wake-up) to finish, so no job lands in an
 * inbox after its thread exited and no wake-up touches a closed eventfd. Only
 * then is `quit` set and are the threads woken; each drains its inbox, cancels its transfers and
 * completes every job before it exits. */
#include "auth/pool.h"

#include "core/inbox.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SHUTDOWN_WHY "authentication service pool shutting down"
#define MAX_POLL_MS 1000
/* While outcomes wait on a busy lane, poll at least this often: a shard drains its inbox in far
 * less, and a waiting verdict holds its client's CONNECT. */
#define RETRY_POLL_MS 2
/* libcurl's receive and send buffers per transfer (see start_job); 16 KiB is the smallest
 * upload buffer libcurl accepts. */
#define XFER_BUFFER 4096
#define XFER_UPLOAD_BUFFER 16384

/* What the thread knows about a descriptor (worker.fds): opened by on_open and not closed
 * since (through on_close), its epoll registration, and whether libcurl wants it watched. */
enum { FD_OWN = 1, FD_IN = 2, FD_OUT = 4, FD_WANTED = 8 };

/* An outcome done() could not take yet: its lane was busy. */
struct held {
    struct held *next;
    uint64_t tag;
    struct rq_authn_outcome *o;
    int64_t drop_at; /* from then on it is handed over with last = true */
};

struct lane {
    struct held *head, *tail;
};

struct worker {
    struct rq_auth_pool *pool;
    pthread_t tid;
    bool started;
    struct rq_inbox *inbox;
    CURLM *multi;
    CURLSH *share;
    struct rq_auth_job *wait_head, *wait_tail; /* accepted, waiting for a free connection */
    struct rq_auth_job *inflight; /* running transfers (linked by next and prev) */
    unsigned n_inflight;
    CURL **spare; /* reset easy handles, reused */
    unsigned n_spare;
    int epfd;           /* the transfers' sockets (libcurl's socket callback) and evfd */
    int evfd;           /* submit and stop wake the thread through it */
    int64_t timer_at;   /* libcurl's next timeout (CLOCK_MONOTONIC ms), -1: none */
    uint8_t *fds;       /* per descriptor number: FD_* flags of the sockets opened here */
    size_t n_fds;
    struct lane *lanes; /* RQ_AUTH_POOL_LANES; outcomes waiting for their lane */
    unsigned n_held;
    bool final; /* stopping: every done() call is the last one */
};

struct rq_auth_pool {
    struct rq_auth_pool_cfg cfg;
    rq_auth_pool_done_fn done;
    void *ctx;
    _Atomic uint32_t pending;
    _Atomic uint32_t waiting;     /* outcomes held on lanes, all threads */
    _Atomic uint64_t busy_total;  /* done() answered busy */
    _Atomic unsigned rr;
    _Atomic int stopping;
    _Atomic int submitters;
    _Atomic int quit; /* set after stopping once no submit is in progress: threads exit */
    bool stopped;     /* stop finished (only the stopping thread touches it) */
    unsigned n;
    struct worker w[];
};

struct entry {
    struct rq_auth_job *job;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void rq_auth_pool_cfg_default(struct rq_auth_pool_cfg *cfg)
{
    cfg->threads = 2;
    cfg->max_pending = 10000;
    cfg->request_timeout_ms = 5000;
    cfg->max_connections = 8;
    cfg->deliver_timeout_ms = 10000;
}

void rq_auth_outcome_release(struct rq_authn_outcome *o)
{
    if (!o)
        return;
    rq_authn_outcome_free(o);
    free(o);
}

uint32_t rq_auth_pool_pending(const struct rq_auth_pool *p)
{
    return atomic_load(&p->pending);
}

uint32_t rq_auth_pool_waiting(const struct rq_auth_pool *p)
{
    return atomic_load(&p->waiting);
}

uint64_t rq_auth_pool_busy_total(const struct rq_auth_pool *p)
{
    return atomic_load(&p->busy_total);
}

/* ---- completing jobs -------------------------------------------------------------------- */

static void not_relevant(struct rq_authn_outcome *o, const char *why)
{
    rq_authn_outcome_free(o);
    rq_authn_outcome_init(o);
    o->verdict = RQ_AUTHN_NOT_RELEVANT;
    snprintf(o->why, sizeof o->why, "%s", why);
}

/* Offers o to done(). 0: taken, and the job no longer counts as pending; otherwise done()'s
 * busy answer. A last call is always taken (the contract says done() must). */
static int deliver(struct worker *w, uint64_t tag, struct rq_authn_outcome *o, bool last)
{
    struct rq_auth_pool *p = w->pool;
    int rc = p->done(p->ctx, tag, o, last);
    if (rc == 0 || last) {
        atomic_fetch_sub(&p->pending, 1);
        return 0;
    }
    atomic_fetch_add(&p->busy_total, 1);
    return rc;
}

/* Keeps o on its lane until done() takes it (retry_held). */
static void hold(struct worker *w, int busy, uint64_t tag, struct rq_authn_outcome *o,
                 int64_t drop_at)
{
    struct held *h = malloc(sizeof *h);
    if (!h) {
        deliver(w, tag, o, true); /* nowhere to keep it: done() delivers now or drops it */
        return;
    }
    *h = (struct held){.tag = tag, .o = o, .drop_at = drop_at};
    struct lane *l = &w->lanes[(unsigned)(busy - 1) % RQ_AUTH_POOL_LANES];
    if (l->tail)
        l->tail->next = h;
    else
        l->head = h;
    l->tail = h;
    w->n_held++;
    atomic_fetch_add(&w->pool->waiting, 1);
}

/* Offers every held outcome again, oldest first per lane; a lane that is still busy is left
 * for the next turn, the others go on. */
static void retry_held(struct worker *w, int64_t now)
{
    for (unsigned i = 0; w->n_held && i < RQ_AUTH_POOL_LANES; i++) {
        struct lane *l = &w->lanes[i];
        struct held *h;
        while ((h = l->head)) {
            if (deliver(w, h->tag, h->o, w->final || now >= h->drop_at) != 0)
                break;
            l->head = h->next;
            if (!l->head)
                l->tail = NULL;
            w->n_held--;
            atomic_fetch_sub(&w->pool->waiting, 1);
            free(h);
        }
    }
}

/* Frees the job and hands its outcome over (or holds it). */
static void complete(struct worker *w, struct rq_auth_job *job)
{
    const struct rq_auth_pool_cfg *c = &w->pool->cfg;
    struct rq_authn_outcome *o = job->out;
    uint64_t tag = job->tag;
    int64_t drop_at = job->deadline_ms - c->request_timeout_ms + c->deliver_timeout_ms;
    job->out = NULL;
    job->ops->free(job);
    int rc = deliver(w, tag, o, w->final);
    if (rc != 0)
        hold(w, rc, tag, o, drop_at);
}

static void complete_with(struct worker *w, struct rq_auth_job *job, const char *why)
{
    not_relevant(job->out, why);
    complete(w, job);
}

/* ---- easy handles ------------------------------------------------------------------------ */

static CURL *easy_get(struct worker *w)
{
    if (w->n_spare)
        return w->spare[--w->n_spare];
    return curl_easy_init();
}

static void easy_put(struct worker *w, CURL *e)
{
    if (w->n_spare < w->pool->cfg.max_connections) {
        curl_easy_reset(e);
        w->spare[w->n_spare++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

/* ---- the FIFO and the transfers ------------------------------------------------------------ */

static void wait_push(struct worker *w, struct rq_auth_job *job)
{
    job->next = NULL;
    if (w->wait_tail)
        w->wait_tail->next = job;
    else
        w->wait_head = job;
    w->wait_tail = job;
}

static struct rq_auth_job *wait_pop(struct worker *w)
{
    struct rq_auth_job *job = w->wait_head;
    if (job) {
        w->wait_head = job->next;
        if (!w->wait_head)
            w->wait_tail = NULL;
        job->next = NULL;
    }
    return job;
}

static void drain_inbox(struct worker *w)
{
    struct entry e;
    while (rq_inbox_pop(w->inbox, &e))
        wait_push(w, e.job);
}

/* O(1): walking the list (one cache miss per transfer in flight, up to max_connections) was
 * most of the pool's own CPU per request. */
static void inflight_remove(struct worker *w, struct rq_auth_job *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        w->inflight = job->next;
    if (job->next)
        job->next->prev = job->prev;
    job->next = job->prev = NULL;
    w->n_inflight--;
}

static void inflight_add(struct worker *w, struct rq_auth_job *job)
{
    job->prev = NULL;
    job->next = w->inflight;
    if (w->inflight)
        w->inflight->prev = job;
    w->inflight = job;
    w->n_inflight++;
}

static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a);
static int on_close(void *clientp, curl_socket_t s);

/* Starts one job as a transfer. On failure the job is completed here. */
static void start_job(struct worker *w, struct rq_auth_job *job, int64_t now)
{
    char why[200] = "could not start the request";
    CURL *e = easy_get(w);
    if (!e) {
        complete_with(w, job, "out of memory starting the request");
        return;
    }
    if (job->ops->start(job, e, why, sizeof why) != 0) {
        easy_put(w, e);
        complete_with(w, job, why);
        return;
    }
    int64_t left = job->deadline_ms - now;
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(left > 0 ? left : 1));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, w->share);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)job);
    /* libcurl allocates these two buffers for every transfer and frees them when it ends: at
     * the defaults (16 KiB, 64 KiB) each request's free() consolidated the thread's malloc
     * arena (a chunk over glibc's 64 KiB FASTBIN_CONSOLIDATION_THRESHOLD) and often trimmed and
     * refaulted it. Requests and answers here are small; a bigger one still goes through, in
     * more pieces. */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)XFER_BUFFER);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, (long)XFER_UPLOAD_BUFFER);
    /* the sockets' life cycle, for the registrations kept across requests (own_socket); a
     * connection keeps the callbacks of the transfer that opened it */
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, (void *)w);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, (void *)w);
    if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
        easy_put(w, e);
        complete_with(w, job, "could not start the request (libcurl)");
        return;
    }
    job->easy = e;
    inflight_add(w, job);
}

/* Jobs whose deadline passed while they waited for a connection. The FIFO is in submit order
 * per thread, so only its head needs looking at. */
static void expire_waiting(struct worker *w, int64_t now)
{
    while (w->wait_head && w->wait_head->deadline_ms <= now)
        complete_with(w, wait_pop(w), "timed out waiting for a connection to the server");
}

static void start_waiting(struct worker *w, int64_t now)
{
    while (w->wait_head && w->n_inflight < w->pool->cfg.max_connections)
        start_job(w, wait_pop(w), now);
}

/* Ends a finished transfer: the job's outcome is filled, the job is out of the in-flight list
 * and returned for complete(). */
static struct rq_auth_job *finish_transfer(struct worker *w, CURL *e, CURLcode rc)
{
    struct rq_auth_job *job = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&job);
    curl_multi_remove_handle(w->multi, e);
    inflight_remove(w, job);
    job->ops->finish(job, e, rc, job->out);
    job->easy = NULL;
    easy_put(w, e);
    return job;
}

/* Completes every finished transfer; returns how many. The outcomes are handed over together
 * once every transfer of the turn has been read: a shard's inbox then gets them back to back
 * and one wake-up (posts to a non-empty inbox wake nobody), where handing each over between
 * the reading and parsing of the next let the shard wake and drain its inbox in between. */
static unsigned reap(struct worker *w)
{
    unsigned n = 0;
    int left;
    CURLMsg *m;
    struct rq_auth_job *done = NULL, **tail = &done;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct rq_auth_job *job = finish_transfer(w, m->easy_handle, m->data.result);
        job->next = NULL;
        *tail = job;
        tail = &job->next;
        n++;
    }
    while (done) {
        struct rq_auth_job *job = done;
        done = job->next;
        complete(w, job);
    }
    return n;
}

/* How long the thread may sleep: until the oldest waiting job's deadline, libcurl's next
 * timeout, or a retry of held outcomes, at most MAX_POLL_MS. */
static int poll_timeout(const struct worker *w, int64_t now)
{
    int64_t t = w->n_held ? RETRY_POLL_MS : MAX_POLL_MS;
    if (w->wait_head && w->wait_head->deadline_ms - now < t)
        t = w->wait_head->deadline_ms - now;
    if (w->timer_at >= 0 && w->timer_at - now < t)
        t = w->timer_at - now;
    return (int)(t < 0 ? 0 : t);
}

/* ---- events: epoll and libcurl's socket interface ------------------------------------------
 * Why not curl_multi_poll: it polls every socket of the thread on each turn (up to
 * max_connections kept-alive connections), and registering on and leaving that many wait queues
 * per turn cost more CPU than the requests themselves (measured: bench/README.md). With epoll
 * the sockets are registered once and a turn costs what is ready. */

static void wake_worker(struct worker *w)
{
    uint64_t one = 1;
    if (write(w->evfd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full, so a wake-up is pending anyway */
    }
}

/* Registers s (op: ADD or MOD as the caller believes; the other when the kernel disagrees,
 * e.g. a descriptor number reused after a close the thread did not see). */
static void epoll_set(struct worker *w, int op, curl_socket_t s, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.fd = s};
    if (epoll_ctl(w->epfd, op, s, &ev) != 0)
        epoll_ctl(w->epfd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev);
}

static bool fd_own(const struct worker *w, curl_socket_t s)
{
    return s >= 0 && (size_t)s < w->n_fds && (w->fds[s] & FD_OWN);
}

/* A connection socket opened here (on_open): its registration is kept while libcurl does not
 * want it (the connection idles in the cache between two requests) and changed only when the
 * events wanted differ, so a request on a kept-alive connection costs no epoll_ctl (it cost an
 * ADD and a DEL each). An idle socket that turns ready anyway (the server closed it) is
 * unregistered by wait_events; on_close forgets the descriptor. */
static void own_socket(struct worker *w, curl_socket_t s, int what)
{
    uint8_t have = w->fds[s] & (FD_IN | FD_OUT);
    if (what == CURL_POLL_REMOVE) {
        w->fds[s] &= (uint8_t)~FD_WANTED;
        return;
    }
    uint8_t want = (uint8_t)(((what & CURL_POLL_IN) ? FD_IN : 0) |
                             ((what & CURL_POLL_OUT) ? FD_OUT : 0));
    w->fds[s] = (uint8_t)(FD_OWN | FD_WANTED | want);
    if (want != have)
        epoll_set(w, have ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s,
                  ((want & FD_IN) ? EPOLLIN : 0u) | ((want & FD_OUT) ? EPOLLOUT : 0u));
}

/* libcurl: watch s for what (CURL_POLL_IN / OUT / INOUT), or no longer (CURL_POLL_REMOVE).
 * Sockets libcurl opened itself (a resolver's socket pair) are registered while wanted only. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    struct worker *w = userp;
    if (fd_own(w, s)) {
        own_socket(w, s, what);
        return 0;
    }
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, s, NULL);
        curl_multi_assign(w->multi, s, NULL);
        return 0;
    }
    epoll_set(w, socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s,
              ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u));
    curl_multi_assign(w->multi, s, (void *)w);
    return 0;
}

/* Room in fds for descriptor s. */
static bool fd_room(struct worker *w, curl_socket_t s)
{
    if ((size_t)s < w->n_fds)
        return true;
    size_t n = w->n_fds ? w->n_fds : 64;
    while (n <= (size_t)s)
        n *= 2;
    uint8_t *f = realloc(w->fds, n);
    if (!f)
        return false; /* the socket is handled as one libcurl opened itself */
    memset(f + w->n_fds, 0, n - w->n_fds);
    w->fds = f;
    w->n_fds = n;
    return true;
}

/* libcurl (CURLOPT_OPENSOCKETFUNCTION): a connection's socket, new and not registered. */
static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)purpose;
    struct worker *w = clientp;
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s >= 0 && fd_room(w, s))
        w->fds[s] = FD_OWN;
    return s;
}

/* libcurl (CURLOPT_CLOSESOCKETFUNCTION): the close ends the epoll registration (never dup'ed).
 * A connect attempt that never became the connection is closed without it: on_open resets. */
static int on_close(void *clientp, curl_socket_t s)
{
    struct worker *w = clientp;
    if (s >= 0 && (size_t)s < w->n_fds)
        w->fds[s] = 0;
    return close(s);
}

/* libcurl: call curl_multi_socket_action(CURL_SOCKET_TIMEOUT) in timeout_ms (-1: never). */
static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    struct worker *w = userp;
    w->timer_at = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    return 0;
}

static void run_timer(struct worker *w, int64_t now)
{
    if (w->timer_at < 0 || w->timer_at > now)
        return;
    int running;
    w->timer_at = -1; /* the action may set the next one */
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

/* Sleeps until a socket is ready, a wake-up, or timeout_ms; hands what is ready to libcurl. */
static void wait_events(struct worker *w, int timeout_ms)
{
    struct epoll_event ev[64];
    int n = epoll_wait(w->epfd, ev, 64, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd == w->evfd)
            continue; /* edge-triggered: nothing to read (worker_init) */
        int fd = ev[i].data.fd;
        if (fd_own(w, fd) && !(w->fds[fd] & FD_WANTED)) {
            /* an idle kept-alive connection turned ready (closed by the server, most likely):
             * no longer watched; libcurl finds out when it next checks the connection */
            epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);
            w->fds[fd] = FD_OWN;
            continue;
        }
        int flags = ((ev[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                    ((ev[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                    ((ev[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
        int running;
        curl_multi_socket_action(w->multi, fd, flags, &running);
    }
    run_timer(w, now_ms());
}

/* Stop: every job this thread holds or will find in its inbox ends "shutting down". */
static void worker_shutdown(struct worker *w)
{
    struct rq_auth_job *job;
    w->final = true;
    while ((job = w->inflight)) {
        inflight_remove(w, job);
        curl_multi_remove_handle(w->multi, job->easy);
        easy_put(w, job->easy);
        job->easy = NULL;
        complete_with(w, job, SHUTDOWN_WHY);
    }
    drain_inbox(w);
    while ((job = wait_pop(w)))
        complete_with(w, job, SHUTDOWN_WHY);
    retry_held(w, now_ms());
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!atomic_load(&w->pool->quit)) {
        int64_t now = now_ms();
        retry_held(w, now);
        drain_inbox(w);
        expire_waiting(w, now);
        do {
            start_waiting(w, now);
            run_timer(w, now); /* new transfers start from libcurl's timeout */
            now = now_ms();
        } while (reap(w) && w->wait_head);
        if (rq_inbox_sleep(w->inbox))
            continue; /* jobs raced in: no sleeping */
        wait_events(w, poll_timeout(w, now));
        reap(w);
    }
    worker_shutdown(w);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

static int worker_init(struct rq_auth_pool *p, struct worker *w)
{
    w->pool = p;
    w->inbox = rq_inbox_new(p->cfg.max_pending, sizeof(struct entry));
    w->multi = curl_multi_init();
    w->share = curl_share_init();
    w->spare = calloc(p->cfg.max_connections, sizeof *w->spare);
    w->lanes = calloc(RQ_AUTH_POOL_LANES, sizeof *w->lanes);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->timer_at = -1;
    if (!w->inbox || !w->multi || !w->share || !w->spare || !w->lanes || w->epfd < 0 ||
        w->evfd < 0)
        return -ENOMEM;
    /* Edge-triggered: every write to an eventfd is an edge (the kernel wakes its waiters on
     * each), so the wake-up needs no read() to rearm it; the counter it never drains cannot
     * reach its limit (2^64 - 2) at one increment per wake-up. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = w->evfd};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) != 0)
        return -ENOMEM;
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, (void *)w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, (void *)w);
    curl_share_setopt(w->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(w->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    /* idle connections kept for reuse: at least one per transfer that may run at once */
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)p->cfg.max_connections);
    return 0;
}

static void worker_cleanup(struct worker *w)
{
    for (unsigned i = 0; i < w->n_spare; i++)
        curl_easy_cleanup(w->spare[i]);
    free(w->spare);
    free(w->lanes); /* empty: worker_shutdown handed every outcome over */
    if (w->multi)
        curl_multi_cleanup(w->multi); /* closes the cached connections (on_close, on_socket) */
    free(w->fds);
    if (w->share)
        curl_share_cleanup(w->share);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->evfd >= 0)
        close(w->evfd);
    rq_inbox_free(w->inbox);
}

struct rq_auth_pool *rq_auth_pool_new(const struct rq_auth_pool_cfg *cfg, rq_auth_pool_done_fn done,
                                      void *ctx, char *err, size_t errlen)
{
    struct rq_auth_pool_cfg c;
    rq_auth_pool_cfg_default(&c);
    if (cfg->threads)
        c.threads = cfg->threads;
    if (cfg->max_pending)
        c.max_pending = cfg->max_pending;
    if (cfg->request_timeout_ms)
        c.request_timeout_ms = cfg->request_timeout_ms;
    if (cfg->max_connections)
        c.max_connections = cfg->max_connections;
    if (cfg->deliver_timeout_ms)
        c.deliver_timeout_ms = cfg->deliver_timeout_ms;
    /* bounds that keep the per-thread inboxes (max_pending cells each) and handle arrays sane */
    if (c.threads > 64 || c.max_pending > 1000000 || c.max_connections > 1024 || !done) {
        snprintf(err, errlen,
                 "auth pool: threads (1..64), maxPending (1..1000000) or "
                 "connections per thread (1..1024) out of range");
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "auth pool: libcurl initialisation failed: %s",
                 curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    struct rq_auth_pool *p = calloc(1, sizeof *p + c.threads * sizeof p->w[0]);
    if (!p) {
        snprintf(err, errlen, "auth pool: out of memory");
        return NULL;
    }
    p->cfg = c;
    p->done = done;
    p->ctx = ctx;
    p->n = c.threads;
    for (unsigned i = 0; i < p->n; i++)
        p->w[i].epfd = p->w[i].evfd = -1; /* a failed init cleans up every worker */
    for (unsigned i = 0; i < p->n; i++) {
        if (worker_init(p, &p->w[i]) != 0) {
            snprintf(err, errlen, "auth pool: out of memory");
            goto fail;
        }
    }
    for (unsigned i = 0; i < p->n; i++) {
        int rc = pthread_create(&p->w[i].tid, NULL, worker_main, &p->w[i]);
        if (rc != 0) {
            snprintf(err, errlen, "auth pool: cannot start a thread: %s", strerror(rc));
            goto fail;
        }
        p->w[i].started = true;
    }
    return p;
fail:
    rq_auth_pool_free(p);
    return NULL;
}

/* One more accepted job, unless max_pending are. A CAS loop rather than add-then-undo, so that
 * the counter never reads above max_pending, not even for an instant. */
static bool take_slot(struct rq_auth_pool *p)
{
    uint32_t n = atomic_load(&p->pending);
    do {
        if (n >= p->cfg.max_pending)
            return false;
    } while (!atomic_compare_exchange_weak(&p->pending, &n, n + 1));
    return true;
}

int rq_auth_pool_submit(struct rq_auth_pool *p, struct rq_auth_job *job, uint64_t tag)
{
    atomic_fetch_add(&p->submitters, 1);
    int rc = 0;
    if (atomic_load(&p->stopping)) {
        rc = -ESHUTDOWN;
        goto out;
    }
    if (!take_slot(p)) {
        rc = -EBUSY;
        goto out;
    }
    job->out = calloc(1, sizeof *job->out);
    if (!job->out) {
        atomic_fetch_sub(&p->pending, 1);
        rc = -ENOMEM;
        goto out;
    }
    job->tag = tag;
    job->deadline_ms = now_ms() + p->cfg.request_timeout_ms;
    job->next = job->prev = NULL;
    job->easy = NULL;
    /* pending <= max_pending <= each inbox's capacity: the push cannot find it full */
    struct worker *w = &p->w[atomic_fetch_add(&p->rr, 1) % p->n];
    struct entry e = {job};
    bool wake;
    if (!rq_inbox_push(w->inbox, &e, &wake)) {
        free(job->out);
        job->out = NULL;
        atomic_fetch_sub(&p->pending, 1);
        rc = -EBUSY;
        goto out;
    }
    if (wake)
        wake_worker(w);
out:
    atomic_fetch_sub(&p->submitters, 1);
    return rc;
}

void rq_auth_pool_stop(struct rq_auth_pool *p)
{
    if (!p || p->stopped)
        return;
    atomic_store(&p->stopping, 1);
    while (atomic_load(&p->submitters))
        sched_yield(); /* a submit in progress: it never blocks, so this is short */
    atomic_store(&p->quit, 1);
    for (unsigned i = 0; i < p->n; i++) {
        if (p->w[i].started) {
            wake_worker(&p->w[i]);
            pthread_join(p->w[i].tid, NULL);
            p->w[i].started = false;
        }
    }
    p->stopped = true;
}

void rq_auth_pool_free(struct rq_auth_pool *p)
{
    if (!p)
        return;
    rq_auth_pool_stop(p);
    for (unsigned i = 0; i < p->n; i++)
        worker_cleanup(&p->w[i]);
    free(p);
}
