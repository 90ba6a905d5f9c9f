/* ringbench: MQTT load generator for ringmq and other brokers on loopback.
 *
 * Does: parses the command line, refuses any target outside 127.0.0.0/8, starts the workers
 * (rb_worker.c), drives the phases of a run (connect and subscribe, open-loop trial at a fixed
 * rate, closed-loop probe plus open-loop search for the maximum sustainable rate, or a connect
 * storm that also measures the broker's memory per idle connection), reads the broker's and its
 * own CPU time, prints progress; the summary and the JSON are formatted by rb_report.c.
 *
 * With --tls every connection is TLS (OpenSSL, rb_tls.c); the handshake is part of connecting.
 *
 * Does not: start brokers (bench/compare.py does).
 *
 * Every run is bounded: each phase has a deadline and SIGALRM ends the process after --timeout. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "rb.h"
#include "rb_report.h"
#include "rb_tls.h"

static volatile sig_atomic_t g_stop;
static bool g_tty;

struct usage {
    uint64_t broker_cpu_us, broker_rss_kb;
    uint64_t mach_busy, mach_total;
    uint64_t self_cpu_ns;
    uint64_t *thread_cpu_ns; /* one per worker */
    uint64_t wall_ns;
};


/* ---------------------------------------------------------------------------------------- */
/* options */

static void usage(FILE *f)
{
    fputs(
        "usage: ringbench [options]   (MQTT load generator; targets 127.0.0.0/8 only)\n"
        "target:   --host 127.0.0.1 --port 1883 --pid BROKER_PID (for its CPU time and RSS)\n"
        "protocol: --mqtt 4|5 (3.1.1 or 5.0; 3 = 3.1)  --qos 0|1|2  --size PAYLOAD_BYTES (>= 24)\n"
        "          --inflight N (QoS 1/2 window per publisher, 100)\n"
        "          --username U --password P  --auth-method M --auth-data D (MQTT 5)\n"
        "          --auth-data-file F (one Authentication Data per line, connection i: line i%n)\n"
        "tls:      --tls (every connection)  --cafile CA.pem (verify the broker; without it, no\n"
        "          verification)  --cert CERT.pem --key KEY.pem (client certificate)\n"
        "          --tls-version 1.2|1.3 (default: either, 1.3 when both ends have it)\n"
        "          --sni NAME (sent and verified; default localhost)\n"
        "pattern:  --pattern fanin|fanout|pairwise|shared  --pubs N --subs N\n"
        "          --client-topics (pairwise: publisher i on <topic>/<i>/<its client id>)\n"
        "mode:     --rate MSGS_PER_S      open loop: total publishes per second for --duration\n"
        "          --max                  closed-loop probe, then open-loop trials that search\n"
        "                                 the highest rate with no loss and p99 <= --slo-p99-ms\n"
        "          --connect N            connect storm: N connections (--concurrency at once),\n"
        "                                 held --hold s, then the broker's RSS per connection\n"
        "          --source-addrs N       bind connections to 127.0.0.2..127.0.0.(N+1) in turn\n"
        "                                 (64; 0: one source address, the kernel's choice)\n"
        "timing:   --duration S --warmup S --drain S --probe S --trials N --window N\n"
        "          --slo-p99-ms MS --tick-us US (100; 1000 with --max) --timeout S --keepalive S\n"
        "output:   --json FILE|-  --label TEXT  --quiet  --check (exit 1 on loss, reordering or\n"
        "          nothing delivered)  --threads N (generator threads)\n",
        f);
}

static enum rb_pattern parse_pattern(const char *s)
{
    static const char *const names[] = {"fanin", "fanout", "pairwise", "shared"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return (enum rb_pattern)i;
    fprintf(stderr, "ringbench: unknown pattern '%s' (fanin, fanout, pairwise, shared)\n", s);
    exit(2);
}


static double num(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    double d = strtod(v, &end);
    if (*v == 0 || *end != 0 || !(d >= lo && d <= hi)) {
        fprintf(stderr, "ringbench: --%s %s: expected a number in [%g, %g]\n", opt, v, lo, hi);
        exit(2);
    }
    return d;
}

static void set_defaults(struct rb_opts *o)
{
    *o = (struct rb_opts){
        .host = "127.0.0.1", .port = 1883, .version = 4, .size = 64, .pubs = 8, .subs = 1,
        .pattern = RB_FANIN, .mode = RB_MODE_RATE, .rate = 10000, .duration = -1, .warmup = 0.5,
        .drain = 3, .threads = 1, .inflight = 100, .trials = 7, .probe = 2, .slo_p99_ms = 50,
        .concurrency = 64, .source_addrs = 64, .hold = 2, .tick_us = 0, .keepalive = 600,
    };
}

static void check_loopback(struct rb_opts *o)
{
    if (strcmp(o->host, "localhost") == 0)
        snprintf(o->host, sizeof o->host, "127.0.0.1");
    struct in_addr a;
    if (inet_pton(AF_INET, o->host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "ringbench: --host %s: only loopback IPv4 (127.0.0.0/8) may be a target\n",
                o->host);
        exit(2);
    }
}

/* The TLS options need --tls, and name files that exist (OpenSSL's own errors come later, at
 * rb_tls_init, which says what is wrong with a file's content). */
static void check_tls(struct rb_opts *o)
{
    const char *given = o->cafile ? "--cafile" : o->cert ? "--cert" : o->key ? "--key"
                        : o->tls_version ? "--tls-version" : o->sni ? "--sni" : NULL;
    if (!o->tls) {
        if (given) {
            fprintf(stderr, "ringbench: %s needs --tls\n", given);
            exit(2);
        }
        return;
    }
    if (!o->cert != !o->key) {
        fprintf(stderr, "ringbench: --cert and --key go together (a client certificate and its "
                        "private key)\n");
        exit(2);
    }
    const char *files[] = {o->cafile, o->cert, o->key};
    for (size_t i = 0; i < 3; i++)
        if (files[i] && access(files[i], R_OK) != 0) {
            fprintf(stderr, "ringbench: %s: %s\n", files[i], strerror(errno));
            exit(2);
        }
    if (!o->sni)
        o->sni = "localhost";
    if (!o->sni[0]) {
        fprintf(stderr, "ringbench: --sni needs a name\n");
        exit(2);
    }
}

/* --auth-data-file: every non-empty line (without its newline); exits on error. */
static void load_lines(const char *path, struct rb_opts *o)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (f && (n = getline(&line, &cap, f)) > 0) {
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (!n)
            continue;
        char **a = realloc(o->auth_datas, (o->n_auth_datas + 1) * sizeof *a);
        if (!a || !(a[o->n_auth_datas] = strdup(line))) {
            fprintf(stderr, "ringbench: out of memory\n");
            exit(2);
        }
        o->auth_datas = a;
        o->n_auth_datas++;
    }
    free(line);
    if (!f || !o->n_auth_datas) {
        fprintf(stderr, "ringbench: --auth-data-file %s: %s\n", path,
                f ? "no lines" : strerror(errno));
        exit(2);
    }
    fclose(f);
}

static void parse(int argc, char **argv, struct rb_opts *o)
{
    enum { O_HOST = 256, O_PORT, O_PID, O_MQTT, O_QOS, O_SIZE, O_PUBS, O_SUBS, O_PATTERN,
           O_RATE, O_MAX, O_CONNECT, O_DUR, O_WARM, O_DRAIN, O_THREADS, O_INFL, O_WIN,
           O_TRIALS, O_PROBE, O_SLO, O_CONC, O_HOLD, O_TICK, O_TIMEOUT, O_KA, O_JSON, O_LABEL,
           O_QUIET, O_CHECK, O_TLS, O_USER, O_PASS, O_AMETH, O_ADATA, O_ADFILE, O_CAFILE,
           O_CERT, O_KEY, O_TLSVER, O_SNI, O_CTOPICS, O_SRCADDRS, O_HELP };
    static const struct option lo[] = {
        {"host", 1, 0, O_HOST}, {"port", 1, 0, O_PORT}, {"pid", 1, 0, O_PID},
        {"mqtt", 1, 0, O_MQTT}, {"qos", 1, 0, O_QOS}, {"size", 1, 0, O_SIZE},
        {"pubs", 1, 0, O_PUBS}, {"subs", 1, 0, O_SUBS}, {"pattern", 1, 0, O_PATTERN},
        {"rate", 1, 0, O_RATE}, {"max", 0, 0, O_MAX}, {"connect", 1, 0, O_CONNECT},
        {"duration", 1, 0, O_DUR}, {"warmup", 1, 0, O_WARM}, {"drain", 1, 0, O_DRAIN},
        {"threads", 1, 0, O_THREADS}, {"inflight", 1, 0, O_INFL}, {"window", 1, 0, O_WIN},
        {"trials", 1, 0, O_TRIALS}, {"probe", 1, 0, O_PROBE}, {"slo-p99-ms", 1, 0, O_SLO},
        {"concurrency", 1, 0, O_CONC}, {"hold", 1, 0, O_HOLD}, {"tick-us", 1, 0, O_TICK},
        {"timeout", 1, 0, O_TIMEOUT}, {"keepalive", 1, 0, O_KA}, {"json", 1, 0, O_JSON},
        {"label", 1, 0, O_LABEL}, {"quiet", 0, 0, O_QUIET}, {"check", 0, 0, O_CHECK},
        {"tls", 0, 0, O_TLS}, {"username", 1, 0, O_USER}, {"password", 1, 0, O_PASS},
        {"auth-method", 1, 0, O_AMETH}, {"auth-data", 1, 0, O_ADATA}, {"auth-data-file", 1, 0, O_ADFILE},
        {"cafile", 1, 0, O_CAFILE},
        {"cert", 1, 0, O_CERT}, {"key", 1, 0, O_KEY}, {"tls-version", 1, 0, O_TLSVER},
        {"sni", 1, 0, O_SNI}, {"client-topics", 0, 0, O_CTOPICS},
        {"source-addrs", 1, 0, O_SRCADDRS}, {"help", 0, 0, O_HELP},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        const char *n = ch >= O_HOST && ch <= O_HELP ? lo[ch - O_HOST].name : "?";
        switch (ch) {
        case O_HOST: snprintf(o->host, sizeof o->host, "%s", optarg); break;
        case O_PORT: o->port = (uint16_t)num(n, optarg, 1, 65535); break;
        case O_PID: o->broker_pid = (int)num(n, optarg, 1, 4194304); break;
        case O_MQTT:
            o->version = strcmp(optarg, "311") == 0 ? 4 : strcmp(optarg, "31") == 0 ? 3
                                                        : (int)num(n, optarg, 3, 5);
            break;
        case O_QOS: o->qos = (int)num(n, optarg, 0, 2); break;
        case O_SIZE: o->size = (uint32_t)num(n, optarg, RB_HDR_SIZE, 1 << 24); break;
        case O_PUBS: o->pubs = (uint32_t)num(n, optarg, 1, 100000); break;
        case O_SUBS: o->subs = (uint32_t)num(n, optarg, 1, 100000); break;
        case O_PATTERN: o->pattern = parse_pattern(optarg); break;
        case O_RATE: o->mode = RB_MODE_RATE; o->rate = num(n, optarg, 1, 1e9); break;
        case O_MAX: o->mode = RB_MODE_MAX; break;
        case O_CONNECT: o->mode = RB_MODE_CONNECT; o->conns = (uint32_t)num(n, optarg, 1, 1e6);
            break;
        case O_DUR: o->duration = num(n, optarg, 0.1, 3600); break;
        case O_WARM: o->warmup = num(n, optarg, 0, 600); break;
        case O_DRAIN: o->drain = num(n, optarg, 0.1, 600); break;
        case O_THREADS: o->threads = (uint32_t)num(n, optarg, 1, 64); break;
        case O_INFL: o->inflight = (uint32_t)num(n, optarg, 1, 65535); break;
        case O_WIN: o->window = (uint32_t)num(n, optarg, 1, 1e6); break;
        case O_TRIALS: o->trials = (uint32_t)num(n, optarg, 1, 50); break;
        case O_PROBE: o->probe = num(n, optarg, 0.2, 600); break;
        case O_SLO: o->slo_p99_ms = num(n, optarg, 0.01, 1e6); break;
        case O_CONC: o->concurrency = (uint32_t)num(n, optarg, 1, 1e5); break;
        case O_SRCADDRS: o->source_addrs = (uint32_t)num(n, optarg, 0, 250); break;
        case O_HOLD: o->hold = num(n, optarg, 0, 3600); break;
        case O_TICK: o->tick_us = num(n, optarg, 10, 100000); break;
        case O_TIMEOUT: o->timeout = num(n, optarg, 1, 86400); break;
        case O_KA: o->keepalive = (uint16_t)num(n, optarg, 0, 65535); break;
        case O_JSON: o->json_path = optarg; break;
        case O_LABEL: o->label = optarg; break;
        case O_QUIET: o->quiet = true; break;
        case O_CHECK: o->check = true; break;
        case O_TLS: o->tls = true; break;
        case O_CAFILE: o->cafile = optarg; break;
        case O_CERT: o->cert = optarg; break;
        case O_KEY: o->key = optarg; break;
        case O_TLSVER:
            o->tls_version = strcmp(optarg, "1.2") == 0 ? 12 : strcmp(optarg, "1.3") == 0 ? 13 : -1;
            if (o->tls_version < 0) {
                fprintf(stderr, "ringbench: --tls-version %s: expected 1.2 or 1.3\n", optarg);
                exit(2);
            }
            break;
        case O_SNI: o->sni = optarg; break;
        case O_USER: o->username = optarg; break;
        case O_CTOPICS: o->client_topics = true; break;
        case O_PASS: o->password = optarg; break;
        case O_AMETH: o->auth_method = optarg; break;
        case O_ADATA: o->auth_data = optarg; break;
        case O_ADFILE:
            load_lines(optarg, o);
            if (!o->auth_data)
                o->auth_data = o->auth_datas[0];
            break;
        case 'h': case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringbench: unexpected argument '%s'\n", argv[optind]);
        exit(2);
    }
    check_loopback(o);
    check_tls(o);
    if ((o->auth_method || o->auth_data) && o->version != 5) {
        fprintf(stderr, "ringbench: --auth-method/--auth-data need --mqtt 5\n");
        exit(2);
    }
    if (o->password && !o->username && o->version != 5) {
        fprintf(stderr, "ringbench: MQTT 3.1.1 sends a password only with a username\n");
        exit(2);
    }
    if (o->client_topics && o->pattern != RB_PAIRWISE) {
        fprintf(stderr, "ringbench: --client-topics goes with --pattern pairwise\n");
        exit(2);
    }
    if (o->pattern == RB_PAIRWISE && o->pubs != o->subs) {
        fprintf(stderr, "ringbench: pairwise needs as many publishers as subscribers\n");
        exit(2);
    }
    if ((uint64_t)o->pubs * o->subs > (64u << 20)) {
        fprintf(stderr, "ringbench: --pubs x --subs is too large\n");
        exit(2);
    }
    if (o->duration < 0)
        o->duration = o->mode == RB_MODE_MAX ? 3 : o->mode == RB_MODE_CONNECT ? 60 : 5;
    if (o->tick_us == 0) /* fine pacing for latency runs; fewer, bigger sends when searching */
        o->tick_us = o->mode == RB_MODE_MAX ? 1000 : 100;
    if (o->warmup > o->duration / 2)
        o->warmup = o->duration / 2;
    if (o->window == 0) {
        /* closed loop: keep about 1000 messages per subscriber in flight in total */
        uint32_t into_one = o->pattern == RB_PAIRWISE ? 1 : o->pubs;
        o->window = 1000 / into_one < 8 ? 8 : 1000 / into_one;
    }
    if (o->timeout == 0) {
        /* every trial may first wait up to 20 s for an idle broker (settle) */
        double t = o->mode == RB_MODE_RATE    ? o->duration + o->drain + 20
                   : o->mode == RB_MODE_MAX ? o->probe + o->drain + 20 +
                                                  o->trials * (o->duration + o->drain + 21)
                                            : o->duration + o->hold;
        o->timeout = t + 60;
    }
    if (o->keepalive != 0 && o->timeout > o->keepalive)
        o->keepalive = 0; /* a run longer than the keep alive would need PINGREQs */
}

/* ---------------------------------------------------------------------------------------- */
/* phases and measurements */

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "ringbench: --timeout reached, giving up\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
}

static void on_int(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(fmod(ms, 1000) * 1e6)};
    nanosleep(&ts, NULL);
}

/* Waits (at most 10 s) until every running worker has applied control generation g. */
static void wait_acks(struct rb_bench *b, uint32_t g)
{
    uint64_t deadline = rb_now_ns() + 10000000000ull;
    for (uint32_t k = 0; k < b->nw; k++)
        while (atomic_load_explicit(&b->w[k].ack_gen, memory_order_acquire) != g &&
               atomic_load_explicit(&b->w[k].running, memory_order_acquire) &&
               rb_now_ns() < deadline)
            sleep_ms(0.2);
}

/* Publishes a new phase and waits until every worker has applied it. */
static void set_phase(struct rb_bench *b, enum rb_phase ph, double rate_per_pub, double warm_s)
{
    b->ctl.phase = ph;
    if (ph == RB_PH_RUN) {
        b->ctl.trial++;
        b->ctl.rate_per_pub = rate_per_pub;
        b->ctl.t_start_ns = rb_now_ns();
        b->ctl.t_warm_ns = b->ctl.t_start_ns + (uint64_t)(warm_s * 1e9);
    }
    uint32_t g = atomic_fetch_add_explicit(&b->ctl.gen, 1, memory_order_release) + 1;
    rb_workers_wake(b);
    wait_acks(b, g);
}

static uint64_t sum_ctr(struct rb_bench *b, size_t off)
{
    uint64_t s = 0;
    for (uint32_t k = 0; k < b->nw; k++)
        s += rb_get((_Atomic uint64_t *)((char *)&b->w[k].st + off));
    return s;
}
#define SUM(b, field) sum_ctr(b, offsetof(struct rb_wstats, field))

static uint32_t sum_u32(struct rb_bench *b, size_t off)
{
    uint32_t s = 0;
    for (uint32_t k = 0; k < b->nw; k++)
        s += atomic_load_explicit((_Atomic uint32_t *)((char *)&b->w[k] + off),
                                  memory_order_acquire);
    return s;
}
#define SUM32(b, field) sum_u32(b, offsetof(struct rb_worker, field))

static void usage_read(struct rb_bench *b, struct usage *u)
{
    u->wall_ns = rb_now_ns();
    if (b->o->broker_pid) {
        rb_proc_cpu_us(b->o->broker_pid, &u->broker_cpu_us);
        rb_proc_rss_kb(b->o->broker_pid, &u->broker_rss_kb);
    }
    rb_machine_cpu(&u->mach_busy, &u->mach_total);
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    u->self_cpu_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    for (uint32_t k = 0; k < b->nw; k++) {
        clockid_t cid;
        u->thread_cpu_ns[k] = 0;
        if (pthread_getcpuclockid(b->w[k].th, &cid) == 0 && clock_gettime(cid, &ts) == 0)
            u->thread_cpu_ns[k] = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
}

static void usage_diff(struct rb_bench *b, const struct usage *u0, const struct usage *u1,
                       struct rb_trial *t)
{
    double wall = (double)(u1->wall_ns - u0->wall_ns);
    t->broker_cpu_us = (double)(u1->broker_cpu_us - u0->broker_cpu_us);
    t->broker_cores = wall > 0 ? t->broker_cpu_us * 1000.0 / wall : 0;
    t->rss_before_kb = u0->broker_rss_kb;
    t->rss_after_kb = u1->broker_rss_kb;
    t->gen_cpu_pct = wall > 0 ? 100.0 * (double)(u1->self_cpu_ns - u0->self_cpu_ns) / wall : 0;
    t->gen_thread_max_pct = 0;
    for (uint32_t k = 0; k < b->nw; k++) {
        double p = wall > 0 ? 100.0 * (double)(u1->thread_cpu_ns[k] - u0->thread_cpu_ns[k]) / wall
                            : 0;
        if (p > t->gen_thread_max_pct)
            t->gen_thread_max_pct = p;
    }
    uint64_t dt = u1->mach_total - u0->mach_total;
    t->machine_busy_pct = dt ? 100.0 * (double)(u1->mach_busy - u0->mach_busy) / (double)dt : 0;
    /* /proc/stat is tick-sampled: with a tickless kernel, short bursts on a mostly idle machine
     * go unseen (idle shows up as iowait here). The broker's and our own CPU time are exact
     * (scaled from the scheduler's runtime), so they give a floor. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double ours = wall > 0 && ncpu > 0
                      ? 100.0 * (t->broker_cpu_us * 1000.0 +
                                 (double)(u1->self_cpu_ns - u0->self_cpu_ns)) / (wall * ncpu)
                      : 0;
    if (ours > t->machine_busy_pct)
        t->machine_busy_pct = ours > 100 ? 100 : ours;
}


static void progress(struct rb_bench *b, double el, double total, const char *what)
{
    char s[32], r[32];
    rb_fmt_count(s, sizeof s, (double)SUM(b, sent));
    rb_fmt_count(r, sizeof r, (double)SUM(b, recv));
    fprintf(stderr, "%s    [%5.1f/%.1f s] %s: sent %s, delivered %s%s", g_tty ? "\r" : "", el,
            total, what, s, r, g_tty ? "   " : "\n");
}

/* Waits for the run time of a trial, showing progress; false when interrupted. */
static bool wait_running(struct rb_bench *b, double dur, const char *what)
{
    uint64_t t0 = b->ctl.t_start_ns, end = t0 + (uint64_t)(dur * 1e9);
    double every = g_tty ? 0.5 : 5.0, next = every;
    bool shown = false;
    while (rb_now_ns() < end && !g_stop) {
        sleep_ms(20);
        double el = (double)(rb_now_ns() - t0) * 1e-9;
        if (!b->o->quiet && el >= next && dur >= 2.0) {
            progress(b, el, dur, what);
            shown = true;
            next += every;
        }
    }
    if (shown && g_tty)
        fputs("\r\033[K", stderr);
    return !g_stop;
}

static void fill_latency(struct rb_bench *b, struct rb_trial *t)
{
    static struct rb_hist h; /* 30 KB: not on the stack */
    memset(&h, 0, sizeof h);
    for (uint32_t k = 0; k < b->nw; k++)
        rb_hist_merge(&h, &b->w[k].st.lat);
    t->nlat = h.n;
    t->p50 = rb_hist_pct(&h, 0.50);
    t->p99 = rb_hist_pct(&h, 0.99);
    t->p999 = rb_hist_pct(&h, 0.999);
    t->max = h.max;
}

static void fill_counts(struct rb_bench *b, struct rb_trial *t, uint32_t failed0)
{
    t->sent = SUM(b, sent);
    t->expected = t->sent * b->per_msg;
    t->recv = SUM(b, recv);
    t->lost = t->expected > t->recv ? t->expected - t->recv : 0;
    t->late = SUM(b, late);
    t->reordered = SUM(b, reordered);
    t->gaps = SUM(b, gaps);
    t->bad = SUM(b, bad);
    t->acked = SUM(b, acked);
    t->ack_errors = SUM(b, ack_errors);
    t->blocked = SUM(b, blocked);
    t->failed = SUM32(b, failed) - failed0;
    t->max_lag_ns = 0;
    for (uint32_t k = 0; k < b->nw; k++)
        if (rb_get(&b->w[k].st.max_lag_ns) > t->max_lag_ns)
            t->max_lag_ns = rb_get(&b->w[k].st.max_lag_ns);
}

/* Hands what TLS negotiated (the first worker that completed a handshake) to the reports. */
static void note_tls(struct rb_bench *b)
{
    for (uint32_t k = 0; k < b->nw; k++)
        if (b->w[k].tls.version[0]) {
            rb_report_tls(&b->w[k].tls);
            return;
        }
}

static const char *first_error(struct rb_bench *b)
{
    for (uint32_t k = 0; k < b->nw; k++)
        if (b->w[k].err[0])
            return b->w[k].err;
    return "";
}

/* Waits (at most 20 s) until nothing more arrives and the broker is idle (under 10 % of a core
 * over 300 ms), so that a trial does not inherit the backlog of an overloaded one before it.
 * Returns the seconds waited. */
static double settle(struct rb_bench *b)
{
    uint64_t t0 = rb_now_ns(), deadline = t0 + 20000000000ull;
    uint64_t late = SUM(b, late), cpu = 0, cpu1 = 0;
    if (b->o->broker_pid)
        rb_proc_cpu_us(b->o->broker_pid, &cpu);
    while (!g_stop && rb_now_ns() < deadline) {
        sleep_ms(300);
        uint64_t late1 = SUM(b, late);
        bool quiet = late1 == late;
        if (b->o->broker_pid && rb_proc_cpu_us(b->o->broker_pid, &cpu1) == 0) {
            quiet = quiet && cpu1 - cpu <= 30000;
            cpu = cpu1;
        }
        late = late1;
        if (quiet)
            break;
    }
    return (double)(rb_now_ns() - t0) * 1e-9;
}

/* One trial: publish for dur seconds (open loop at `rate` publishes/s, or closed loop when
 * rate == 0), stop, wait for deliveries (at most --drain s), measure. */
static void run_trial(struct rb_bench *b, double rate, double dur, struct rb_trial *t)
{
    const struct rb_opts *o = b->o;
    uint64_t thr0[64], thr1[64];
    struct usage u0 = {.thread_cpu_ns = thr0}, u1 = {.thread_cpu_ns = thr1};
    memset(t, 0, sizeof *t);
    t->settle_s = settle(b);
    t->target = rate;
    t->dur = dur;
    uint32_t failed0 = SUM32(b, failed);
    usage_read(b, &u0);
    set_phase(b, RB_PH_RUN, rate > 0 ? rate / o->pubs : 0, o->warmup);
    uint64_t t0 = b->ctl.t_start_ns;
    wait_running(b, dur, rate > 0 ? "open loop" : "closed loop");
    set_phase(b, RB_PH_DRAIN, 0, 0);
    uint64_t t_pub_end = rb_now_ns();
    uint64_t deadline = t_pub_end + (uint64_t)(o->drain * 1e9);
    for (;;) {
        uint64_t sent = SUM(b, sent);
        t->drained = SUM(b, recv) >= sent * b->per_msg && (o->qos == 0 || SUM(b, acked) >= sent);
        if (t->drained || rb_now_ns() >= deadline || g_stop)
            break;
        sleep_ms(2);
    }
    set_phase(b, RB_PH_IDLE, 0, 0);
    usage_read(b, &u1);
    fill_counts(b, t, failed0);
    fill_latency(b, t);
    usage_diff(b, &u0, &u1, t);
    double pub_s = (double)(t_pub_end - t0) * 1e-9;
    uint64_t last = 0;
    for (uint32_t k = 0; k < b->nw; k++)
        if (rb_get(&b->w[k].st.last_recv_ns) > last)
            last = rb_get(&b->w[k].st.last_recv_ns);
    double deliv_s = last > t0 ? (double)(last - t0) * 1e-9 : pub_s;
    t->pub_rate = pub_s > 0 ? (double)t->sent / pub_s : 0;
    t->deliv_rate = deliv_s > 0 ? (double)t->recv / (deliv_s > pub_s ? deliv_s : pub_s) : 0;
}

/* Sustainable: everything delivered, no connection lost, the offered rate was sent, and the
 * p99 latency stayed under the SLO. */
static void judge(const struct rb_opts *o, struct rb_trial *t)
{
    t->ok = false;
    if (t->failed)
        snprintf(t->why, sizeof t->why, "%u connection(s) lost", t->failed);
    else if (t->lost)
        snprintf(t->why, sizeof t->why, "%llu lost", (unsigned long long)t->lost);
    else if (t->target > 0 && t->pub_rate < 0.97 * t->target)
        snprintf(t->why, sizeof t->why, "publishers held back (%.0f/s sent)", t->pub_rate);
    else if ((double)t->p99 > o->slo_p99_ms * 1e6)
        snprintf(t->why, sizeof t->why, "p99 %.1f ms > %.0f ms", (double)t->p99 / 1e6,
                 o->slo_p99_ms);
    else
        t->ok = true;
}


/* ---------------------------------------------------------------------------------------- */
/* modes */

/* Closed-loop probe, then open-loop trials from half the probe's rate: up by 30 % while
 * sustainable, down towards what was delivered when not, then bisection until the bracket is
 * within 6 %. Starting low matters: a broker pushed past its capacity may need a long time to
 * recover (or collapse), which would spoil every later trial. */
static int search_max(struct rb_bench *b, struct rb_trial *trials, uint32_t *ntr, int *best)
{
    const struct rb_opts *o = b->o;
    struct rb_trial *probe = &trials[0];
    run_trial(b, 0, o->probe, probe);
    rb_print_trial(o, "probe", probe);
    *ntr = 1;
    *best = -1;
    double r = 0.5 * probe->deliv_rate / b->per_msg, lo = 0, hi = 0;
    if (r < 10)
        r = 10;
    for (uint32_t i = 0; i < o->trials && !g_stop; i++) {
        struct rb_trial *t = &trials[*ntr];
        run_trial(b, r, o->duration, t);
        judge(o, t);
        char name[24];
        snprintf(name, sizeof name, "trial %u", i + 1);
        rb_print_trial(o, name, t);
        (*ntr)++;
        if (t->ok) {
            lo = r;
            *best = (int)*ntr - 1;
        } else {
            hi = r;
        }
        if (hi == 0)
            r *= 1.3;
        else if (lo == 0) {
            double d = 0.95 * t->deliv_rate / b->per_msg;
            r = fmax(r * 0.5, fmin(r * 0.8, d));
        } else if (hi / lo < 1.06)
            break;
        else
            r = sqrt(lo * hi);
        if (t->failed)
            break; /* connections are gone: later trials would measure nothing */
    }
    return 0;
}

static int wait_connected(struct rb_bench *b, uint32_t want, double secs)
{
    uint64_t deadline = rb_now_ns() + (uint64_t)(secs * 1e9);
    while (!g_stop && rb_now_ns() < deadline) {
        uint32_t ready = SUM32(b, ready), failed = SUM32(b, failed);
        if (ready + failed >= want)
            return failed ? -1 : 0;
        sleep_ms(5);
    }
    return -1;
}


static void run_connect(struct rb_bench *b, struct rb_storm *s)
{
    const struct rb_opts *o = b->o;
    uint64_t thr0[64], thrc[64], thr1[64];
    struct usage u0 = {.thread_cpu_ns = thr0}, uc = {.thread_cpu_ns = thrc},
                 u1 = {.thread_cpu_ns = thr1};
    struct rb_trial t = {0};
    sleep_ms(300); /* let the broker settle before the baseline */
    usage_read(b, &u0);
    set_phase(b, RB_PH_RUN, 0, 0);
    uint64_t t0 = b->ctl.t_start_ns, deadline = t0 + (uint64_t)(o->duration * 1e9);
    double next = g_tty ? 0.5 : 5;
    while (!g_stop && rb_now_ns() < deadline && SUM32(b, ready) + SUM32(b, failed) < o->conns) {
        sleep_ms(5);
        double el = (double)(rb_now_ns() - t0) * 1e-9;
        if (!o->quiet && el >= next) {
            fprintf(stderr, "%s    [%5.1f s] connected %u/%u%s", g_tty ? "\r" : "", el,
                    SUM32(b, ready), o->conns, g_tty ? "   " : "\n");
            next += g_tty ? 0.5 : 5;
        }
    }
    usage_read(b, &uc); /* the generator's and the machine's load while connecting */
    if (!o->quiet && g_tty)
        fputs("\r\033[K", stderr);
    uint64_t last = 0;
    for (uint32_t k = 0; k < b->nw; k++) {
        uint64_t l = atomic_load_explicit(&b->w[k].last_connack_ns, memory_order_relaxed);
        last = l > last ? l : last;
    }
    s->want = o->conns;
    s->ready = SUM32(b, ready);
    s->secs = last > t0 ? (double)(last - t0) * 1e-9 : 0;
    s->rate = s->secs > 0 ? s->ready / s->secs : 0;
    uint64_t hold_end = rb_now_ns() + (uint64_t)(o->hold * 1e9);
    while (!g_stop && rb_now_ns() < hold_end)
        sleep_ms(20);
    usage_read(b, &u1);
    usage_diff(b, &u0, &uc, &t);
    s->failed = SUM32(b, failed);
    s->rss0 = u0.broker_rss_kb;
    s->rss1 = u1.broker_rss_kb;
    s->cpu_us = u1.broker_cpu_us - u0.broker_cpu_us;
    s->rss_per_conn = s->ready ? ((double)s->rss1 - (double)s->rss0) * 1024.0 / s->ready : 0;
    s->gen_cpu_pct = t.gen_cpu_pct;
    s->gen_thread_max_pct = t.gen_thread_max_pct;
    s->machine_busy_pct = t.machine_busy_pct;
}

/* ---------------------------------------------------------------------------------------- */

static int run_pubsub(struct rb_bench *b)
{
    const struct rb_opts *o = b->o;
    uint32_t want = o->pubs + o->subs;
    uint64_t t0 = rb_now_ns();
    if (wait_connected(b, want, 60) != 0) {
        const char *e = first_error(b);
        fprintf(stderr, "ringbench: setup failed: %u/%u connected%s%s\n", SUM32(b, ready), want,
                e[0] ? "; " : "", e);
        char msg[sizeof b->w[0].err + 32];
        snprintf(msg, sizeof msg, "setup failed%s%s", e[0] ? ": " : "", e);
        rb_write_json_trials(b->o, NULL, 0, -1, msg);
        return 1;
    }
    if (!o->quiet)
        fprintf(stderr, "    %u connections ready in %.0f ms\n", want,
                (double)(rb_now_ns() - t0) / 1e6);
    set_phase(b, RB_PH_IDLE, 0, 0);
    static struct rb_trial trials[52];
    uint32_t n = 0;
    int best = -1;
    if (o->mode == RB_MODE_RATE) {
        run_trial(b, o->rate, o->duration, &trials[0]);
        judge(o, &trials[0]);
        n = 1;
        best = 0;
    } else {
        search_max(b, trials, &n, &best);
    }
    const struct rb_trial *res = best >= 0 ? &trials[best] : &trials[n - 1];
    note_tls(b);
    rb_summary(b->o, res, o->mode == RB_MODE_MAX);
    const char *e = first_error(b);
    if (e[0])
        printf("first error: %s\n", e);
    rb_write_json_trials(b->o, trials, n, best >= 0 ? best : (int)n - 1, e);
    if (o->check && (res->recv == 0 || res->lost || res->reordered || res->failed || res->bad)) {
        printf("check failed: delivered %llu, lost %llu, reordered %llu, bad %llu, "
               "connections lost %u\n", (unsigned long long)res->recv,
               (unsigned long long)res->lost, (unsigned long long)res->reordered,
               (unsigned long long)res->bad, res->failed);
        return 1;
    }
    return 0;
}

static int run_storm(struct rb_bench *b)
{
    const struct rb_opts *o = b->o;
    struct rb_storm s = {0};
    run_connect(b, &s);
    set_phase(b, RB_PH_STOP, 0, 0);
    rb_workers_join(b);
    static struct rb_hist h;
    for (uint32_t k = 0; k < b->nw; k++)
        rb_hist_merge(&h, &b->w[k].conn_lat);
    s.p50 = rb_hist_pct(&h, 0.5);
    s.p99 = rb_hist_pct(&h, 0.99);
    s.max = h.max;
    note_tls(b);
    const char *e = first_error(b);
    printf("%s%s%sconnect storm: %u/%u connected in %.3f s = %.0f conn/s (connect p50 %.2f p99 "
           "%.2f max %.2f ms), failed %u",
           o->label ? "[" : "", o->label ? o->label : "", o->label ? "] " : "", s.ready, s.want,
           s.secs, s.rate, (double)s.p50 / 1e6, (double)s.p99 / 1e6, (double)s.max / 1e6,
           s.failed);
    if (o->tls)
        printf("; %s", rb_tls_text(o));
    if (o->broker_pid)
        printf("; broker RSS %llu -> %llu kB = %.0f B per idle connection",
               (unsigned long long)s.rss0, (unsigned long long)s.rss1, s.rss_per_conn);
    printf("; while connecting: ringbench %.0f%% of a core (busiest thread %.0f%%, headroom "
           "%.0f%%), machine %.0f%% busy\n", s.gen_cpu_pct, s.gen_thread_max_pct,
           100 - s.gen_thread_max_pct, s.machine_busy_pct);
    if (s.gen_thread_max_pct > 85)
        printf("warning: a ringbench thread was %.0f%% busy: the generator may have limited this "
               "result (try --threads)\n", s.gen_thread_max_pct);
    if (e[0])
        printf("first error: %s\n", e);
    rb_write_json_storm(b->o, &s, e);
    return o->check && (s.ready < s.want || s.failed) ? 1 : 0;
}

static void raise_nofile(uint32_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need + 64)
        fprintf(stderr, "ringbench: warning: open files limit %llu < %u connections (raise "
                        "ulimit -n)\n", (unsigned long long)rl.rlim_cur, need);
}

int main(int argc, char **argv)
{
    static struct rb_opts o;
    set_defaults(&o);
    parse(argc, argv, &o);
    g_tty = isatty(2);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    signal(SIGINT, on_int);
    signal(SIGTERM, on_int);
    alarm((unsigned)ceil(o.timeout));

    static struct rb_bench b;
    b.o = &o;
    b.nw = o.threads;
    b.per_msg = o.pattern == RB_PAIRWISE || o.pattern == RB_SHARED ? 1 : o.subs;
    snprintf(b.run_id, sizeof b.run_id, "%x%04x", (unsigned)getpid(),
             (unsigned)(rb_now_ns() / 1000 & 0xffff));
    snprintf(b.topic, sizeof b.topic, "rb/%s/%s", b.run_id, rb_pattern_name(o.pattern));
    if (o.pattern == RB_SHARED)
        snprintf(b.filter, sizeof b.filter, "$share/rb%s/%s", b.run_id, b.topic);
    else
        snprintf(b.filter, sizeof b.filter, "%s", b.topic);
    static struct sockaddr_in addr;
    addr.sin_family = AF_INET;
    addr.sin_port = htons(o.port);
    inet_pton(AF_INET, o.host, &addr.sin_addr);
    b.addr = &addr;
    raise_nofile(o.mode == RB_MODE_CONNECT ? o.conns : o.pubs + o.subs);
    if (o.mode != RB_MODE_CONNECT) {
        b.seen = calloc((size_t)o.pubs * o.subs, sizeof *b.seen);
        if (!b.seen) {
            fprintf(stderr, "ringbench: out of memory\n");
            return 2;
        }
    }
    b.w = calloc(b.nw, sizeof *b.w);
    if (!b.w) {
        fprintf(stderr, "ringbench: out of memory\n");
        return 2;
    }
    if (o.broker_pid && !rb_proc_alive(o.broker_pid))
        fprintf(stderr, "ringbench: warning: no process %d: broker CPU and RSS not measured\n",
                o.broker_pid);
    rb_describe(&o);
    if (o.tls) {
        char err[256];
        if (rb_tls_init(&o, err, sizeof err) != 0) {
            fprintf(stderr, "ringbench: %s\n", err);
            return 2;
        }
    }
    atomic_store(&b.ctl.gen, 1); /* SETUP; workers start from "no generation seen" */
    int rc = rb_workers_start(&b);
    if (rc) {
        fprintf(stderr, "ringbench: cannot start: %s\n", strerror(-rc));
        return 2;
    }
    wait_acks(&b, 1); /* every worker has read the SETUP phase before main writes another */
    if (o.mode == RB_MODE_CONNECT) {
        rc = run_storm(&b);
    } else {
        rc = run_pubsub(&b);
        set_phase(&b, RB_PH_STOP, 0, 0);
        rb_workers_join(&b);
    }
    if (o.tls)
        rb_tls_done();
    return rc;
}
