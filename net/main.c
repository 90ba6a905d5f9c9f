/* ringmq entry point: command line, configuration, shard start-up, and the control thread's
 * signal loop (SIGTERM/SIGINT stop, SIGHUP reload). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/broker.h"
#include "core/log.h"
#include "core/rc.h"
#include "net/authn_custom.h"
#include "net/authn_sat.h"
#include "auth/kube.h"
#include "net/gen.h"
#include "net/http.h"
#include "net/metrics.h"
#include "net/ports.h"
#include "net/reload.h"
#include "net/shard.h"
#include "net/tls_lib.h"
#include "net/xport.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ringmq [options]\n"
            "  -c, --config PATH   YAML file or directory of YAML manifests (Broker, BrokerListener)\n"
            "  -p, --port PORT     add a plain MQTT listener without authentication on PORT of\n"
            "                      127.0.0.1 and ::1 only (with no -c: instead of the embedded\n"
            "                      default 127.0.0.1:1883 and [::1]:1883)\n"
            "      --bind ADDRESS  listen on ADDRESS (e.g. 0.0.0.0 or ::) instead of loopback for\n"
            "                      -p or the embedded default: other hosts can then connect, and\n"
            "                      without authentication\n"
            "  -t, --threads N     shard threads (default: config, else online CPUs)\n"
            "      --auth-threads N  authentication service pool threads (Custom method; default:\n"
            "                      config spec.ringmq.auth.threads, else 2)\n"
            "  -d, --data-dir DIR  where broker-issued certificates live (tls mode Automatic)\n"
            "  -v, --verbose       debug logging (twice: trace)\n"
            "      --log-stdout    log to standard output instead of standard error\n"
            "      --check-config  validate the configuration and exit (0 = valid)\n"
            "      --version       print the version and exit\n"
            "  -h, --help          this text\n"
            "With no configuration ringmq serves plain MQTT on 127.0.0.1:1883 and [::1]:1883\n"
            "without authentication, to this host only.\n");
}

struct opts {
    const char *config;
    const char *data_dir;
    const char *bind; /* --bind: the -p / embedded default listener's address */
    int port;
    int threads;
    int auth_threads; /* --auth-threads; 0 = from the configuration */
    int verbose;
    int check;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"config", required_argument, 0, 'c'}, {"port", required_argument, 0, 'p'},
        {"threads", required_argument, 0, 't'}, {"verbose", no_argument, 0, 'v'},
        {"data-dir", required_argument, 0, 'd'}, {"bind", required_argument, 0, 'B'},
        {"check-config", no_argument, 0, 'C'}, {"version", no_argument, 0, 'V'},
        {"help", no_argument, 0, 'h'},         {"auth-threads", required_argument, 0, 'A'},
        {"log-stdout", no_argument, 0, 'L'},   {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:p:t:d:vh", lo, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 'L':
            rq_log_fd = STDOUT_FILENO; /* before anything is logged */
            break;
        case 'd':
            o->data_dir = optarg;
            break;
        case 'B': {
            unsigned char a[16];
            if (strlen(optarg) >= sizeof((struct rq_port_cfg *)0)->bind_address ||
                (inet_pton(AF_INET, optarg, a) != 1 && inet_pton(AF_INET6, optarg, a) != 1)) {
                fprintf(stderr, "ringmq: --bind must be an IPv4 or IPv6 address literal, got "
                                "'%s'\n", optarg);
                return 2;
            }
            o->bind = optarg;
            break;
        }
        case 'p':
            o->port = (int)strtol(optarg, &end, 10);
            if (*end || o->port < 1 || o->port > 65535) {
                fprintf(stderr, "ringmq: --port must be 1..65535, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 't':
            o->threads = (int)strtol(optarg, &end, 10);
            if (*end || o->threads < 1 || o->threads > 256) {
                fprintf(stderr, "ringmq: --threads must be 1..256, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'A':
            o->auth_threads = (int)strtol(optarg, &end, 10);
            if (*end || o->auth_threads < 1 || o->auth_threads > 64) {
                fprintf(stderr, "ringmq: --auth-threads must be 1..64, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'v':
            o->verbose++;
            break;
        case 'C':
            o->check = 1;
            break;
        case 'V':
            printf("ringmq %s\n", RINGMQ_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringmq: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->bind && o->config && !o->port) {
        fprintf(stderr, "ringmq: --bind applies to the -p listener; the listeners of -c take "
                        "their address from bindAddress\n");
        return 2;
    }
    return 0;
}

/* Whether [::1]:port can be bound here (IPv6 may be disabled, or the port taken on ::1 only):
 * the loopback listener on ::1 is then left out rather than failing the start. */
static bool ipv6_loopback_usable(int port)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                             .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int add_listener(struct rq_config *cfg, int port, const char *addr)
{
    struct rq_port_cfg *np = realloc(cfg->ports, (cfg->n_ports + 1) * sizeof *np);
    if (!np)
        return -ENOMEM;
    cfg->ports = np;
    struct rq_port_cfg *pc = &cfg->ports[cfg->n_ports++];
    memset(pc, 0, sizeof *pc);
    pc->port = (uint16_t)port;
    snprintf(pc->bind_address, sizeof pc->bind_address, "%s", addr);
    pc->protocol = RQ_PROTO_MQTT;
    snprintf(pc->listener, sizeof pc->listener, "command-line");
    return 0;
}

/* -p adds a listener without authentication (or, without -c, replaces the embedded default's).
 * Secure by default, as mosquitto 2.0's local-only mode: it listens on loopback (127.0.0.1 and,
 * when usable, ::1) unless --bind names the address. */
static int add_port(struct rq_config *cfg, int port, bool replace, const char *bind_addr)
{
    if (replace) {
        cfg->n_ports = 0;
    }
    for (size_t i = 0; i < cfg->n_ports; i++)
        if (cfg->ports[i].port == port)
            return 0;
    if (bind_addr)
        return add_listener(cfg, port, bind_addr);
    int rc = add_listener(cfg, port, "127.0.0.1");
    if (rc == 0 && ipv6_loopback_usable(port))
        rc = add_listener(cfg, port, "::1");
    else if (rc == 0)
        rq_log(RQ_LOG_INFO, NULL, "[::1]:%d cannot be bound here (no IPv6?): port %d listens on "
               "127.0.0.1 only", port, port);
    return rc;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* --data-dir, else spec.ringmq.dataDir, else /var/lib/ringmq as root, else the XDG state dir. */
static const char *data_dir_of(const struct opts *o, const struct rq_config *cfg, char *buf,
                               size_t len)
{
    if (o->data_dir)
        return o->data_dir;
    if (cfg->data_dir[0])
        return cfg->data_dir;
    if (geteuid() == 0)
        return "/var/lib/ringmq";
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0])
        snprintf(buf, len, "%s/ringmq", xdg);
    else
        snprintf(buf, len, "%s/.local/state/ringmq", home && home[0] ? home : ".");
    return buf;
}

/* What the control thread keeps while serving. */
struct ctl {
    const struct opts *o;
    const char *data_dir;
    struct rq_gens *gens;
    struct rq_shard **shards;
    int n_shards;
    int fast_polls; /* after a publish: look for freeable generations every 100 ms, this often */
    const struct rq_config *cfg; /* the startup configuration (shutdown delay, $SYS) */
    struct rq_http *http;        /* the metrics / health endpoint, NULL when off */
    int sfd;                     /* signalfd of the signals this thread handles */
    uint32_t stall_ms;           /* test hook RINGMQ_TEST_STALL_MS: SIGUSR2 stalls shard 0 */
    uint64_t wd_ms, wd_next;     /* systemd watchdog: WATCHDOG=1 every wd_ms (0 = off) */
    uint64_t sys_next;           /* $SYS: next publication (monotonic ms); 0 = off */
    uint64_t files;              /* files_print as the configuration was loaded */
};

static void reload_counted(bool ok)
{
    if (!ok) {
        atomic_fetch_add(&rq_metrics_ctl.reloads_failed, 1);
        return;
    }
    atomic_fetch_add(&rq_metrics_ctl.reloads_ok, 1);
    atomic_store(&rq_metrics_ctl.last_reload_ok, (int64_t)time(NULL));
}

/* g becomes the generation new connections get; the shards take it at their next loop turn
 * (woken now, so that an idle one passes its quiescent point and the old one can be freed). */
static void publish(struct ctl *c, struct rq_gen *g)
{
    rq_gens_publish(c->gens, g);
    for (int i = 0; i < c->n_shards; i++)
        rq_shard_wake(c->shards[i]);
    c->fast_polls = 10;
}

/* Test hook RINGMQ_TEST_RELOAD_KICK=PORT: every reload disconnects the clients of that port
 * (v5: DISCONNECT 0x87 with a reason string), the way a changed BrokerAuthorization will. */
static void test_kick(struct rq_gen *g)
{
    const char *v = getenv("RINGMQ_TEST_RELOAD_KICK");
    long port = v ? strtol(v, NULL, 10) : 0;
    for (size_t i = 0; port > 0 && i < g->n_ports; i++)
        if (g->ports[i].cfg->port == port)
            rq_ports_kick(g, i, RQ_RC_NOT_AUTHORIZED, "test hook RINGMQ_TEST_RELOAD_KICK: "
                          "authorization of this port changed");
}

/* A refused reload: one error line (the cause names file:line:col where there is one), the
 * failure counted, nothing changed. */
static void reload_refused(const char *what, const char *err)
{
    rq_log(RQ_LOG_ERROR, NULL, "reload refused, the running configuration stays: %s%s", what, err);
    reload_counted(false);
}

/* Re-reads the configuration and publishes a new runtime generation built from it: listeners
 * (added, removed, changed), every port's certificate and authentication chain, the log level
 * and the client limits for new connections. Settings fixed at start are logged as needing a
 * restart and keep their running values (net/reload.c). All or nothing: a bad file, a
 * certificate that does not load or a port that cannot be bound leaves everything as it was. */
static void reload(struct ctl *c)
{
    char err[1024] = "";
    struct rq_config *next = rq_config_load(c->o->config, err, sizeof err);
    if (next && c->o->port && add_port(next, c->o->port, false, c->o->bind) != 0) {
        rq_config_free(next);
        next = NULL;
        snprintf(err, sizeof err, "out of memory");
    }
    if (!next) {
        reload_refused("", err);
        return;
    }
    if (next->n_ports == 0) {
        reload_refused(next->source, ": no listener: a configuration without a BrokerListener "
                       "port would close every port");
        rq_config_free(next);
        return;
    }
    const struct rq_config *run = rq_ports_gen_config(rq_gens_current(c->gens));
    int kept = rq_reload_keep_restart_only(run, next);
    /* the first Custom method: its pool starts now (before a shard can run the new chain) */
    if (rq_authn_custom_needed(next) &&
        rq_authn_custom_pool_start(next, (unsigned)c->o->auth_threads, err, sizeof err) != 0) {
        reload_refused("authentication service pool: ", err);
        rq_config_free(next);
        return;
    }
    /* ServiceAccountToken: the Kubernetes API source of the new configuration (and the pool) */
    if (rq_authn_sat_start(next, (unsigned)c->o->auth_threads, err, sizeof err) != 0) {
        reload_refused("", err);
        rq_config_free(next);
        return;
    }
    int n = 0;
    struct rq_gen *g = rq_ports_reload(rq_gens_current(c->gens), next, c->data_dir, &n, err,
                                       sizeof err);
    if (!g) {
        reload_refused("", err);
        return;
    }
    test_kick(g);
    reload_counted(true);
    rq_reload_apply_logging(run, next, c->o->verbose > 0);
    size_t held = rq_gens_reclaim(c->gens); /* older ones that connections still use */
    publish(c, g); /* run may be freed from here on */
    rq_log(RQ_LOG_INFO, NULL, "reload: generation %llu in use (%zu port%s; %d certificate%s "
           "replaced; TLS, authentication and client limits of every port from the new "
           "configuration for new connections; %zu older generation%s still in use; %d "
           "setting%s need%s a restart)",
           (unsigned long long)g->serial, g->n_ports, g->n_ports == 1 ? "" : "s", n,
           n == 1 ? "" : "s", held, held == 1 ? "" : "s", kept, kept == 1 ? "" : "s",
           kept == 1 ? "s" : "");
}

/* Loads the configuration (or the embedded default) with -p applied. NULL with *rc set when the
 * process should exit now: an error (1), or --check done (0). */
/* Errors go where the log goes (--log-stdout: standard output, e.g. in the container). */
static struct rq_config *load_config(const struct opts *o, int *rc)
{
    char err[1024] = "";
    *rc = 1;
    struct rq_config *cfg =
        o->config ? rq_config_load(o->config, err, sizeof err) : rq_config_default();
    if (!cfg) {
        dprintf(rq_log_fd, "%s\n", err[0] ? err : "ringmq: cannot load configuration");
        return NULL;
    }
    /* Without -c the listener is -p's, else the embedded default's port, on loopback or
     * --bind. */
    int port = o->port ? o->port : !o->config ? cfg->ports[0].port : 0;
    if (port && add_port(cfg, port, !o->config, o->bind) != 0) {
        dprintf(rq_log_fd, "ringmq: out of memory\n");
        rq_config_free(cfg);
        return NULL;
    }
    if (cfg->n_ports == 0) {
        dprintf(rq_log_fd, "%s: no listener: add a BrokerListener document with at least one port "
                        "(or pass -p PORT)\n", cfg->source);
        rq_config_free(cfg);
        return NULL;
    }
    if (o->check && rq_authn_sat_needed(cfg)) {
        /* ServiceAccountToken: the Kubernetes API source is part of the configuration */
        struct rq_kube *k = rq_kube_resolve(&cfg->kube, err, sizeof err);
        if (!k) {
            dprintf(rq_log_fd, "%s: %s\n", cfg->source, err);
            rq_config_free(cfg);
            return NULL;
        }
        printf("%s: ServiceAccountToken: Kubernetes API from %s\n", cfg->source,
               rq_kube_describe(k));
        rq_kube_release(k);
    }
    if (o->check) {
        printf("%s: configuration is valid (%zu port%s)\n", cfg->source, cfg->n_ports,
               cfg->n_ports == 1 ? "" : "s");
        rq_config_free(cfg);
        *rc = 0;
        return NULL;
    }
    return cfg;
}

/* Shards: -t, else spec.ringmq threads, else one per online CPU; at most 256. */
static int shard_count(const struct opts *o, const struct rq_config *cfg)
{
    int n = o->threads ? o->threads : cfg->threads;
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    return n > 256 ? 256 : n;
}

/* Creates the n shards (their listening sockets are the first generation's, bound before) and
 * starts them; *started counts the running ones. 0, or 1 with the cause logged. */
static int start_shards(struct rq_broker *b, const struct rq_config *cfg, struct rq_gens *gens,
                        struct rq_shard **shards, int n, int *started)
{
    char err[1024];
    for (int i = 0; i < n; i++) {
        shards[i] = rq_shard_new(i, b, cfg, gens, err, sizeof err);
        if (!shards[i]) {
            rq_log(RQ_LOG_ERROR, NULL, "%s", err);
            return 1;
        }
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if (rq_shard_start(shards[i], err, sizeof err) != 0) {
            rq_log(RQ_LOG_ERROR, NULL, "%s", err);
            rc = 1;
        } else {
            (*started)++;
        }
    }
    rq_shards_go(); /* after every ring is up; on failure too, so started shards can stop */
    return rc;
}

/* Fingerprint of the files the running generation was loaded from. */
static uint64_t files_print(struct ctl *c)
{
    return c->o->config ? rq_ports_files_print(rq_ports_gen_config(rq_gens_current(c->gens)))
                        : 0;
}

/* The files changed (fingerprint now): whether they have stopped changing, i.e. the same a
 * short while later, so that a file being written is not loaded half-way (a prefix can be
 * valid YAML with fewer listeners or rules). A writer slower than that is caught by the next
 * tick's look, or ends in a refused reload that the completed file then fixes. */
static bool files_settled(struct ctl *c, uint64_t now)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 300 * 1000000L};
    nanosleep(&ts, NULL);
    return files_print(c) == now;
}

/* What is due on the control thread besides signals: the systemd watchdog (only while every
 * shard loop turns, so that systemd restarts a broker with a stuck shard) and $SYS. Returns the
 * ms until the next of them is due (or `limit`). */
static uint64_t periodic(struct ctl *c, uint64_t now, uint64_t limit)
{
    uint64_t age;
    if (c->wd_ms && now >= c->wd_next) {
        if (rq_metrics_stuck_shard(now, &age) < 0)
            rq_sd_notify("WATCHDOG=1");
        c->wd_next = now + c->wd_ms;
    }
    if (c->sys_next && now >= c->sys_next) {
        rq_sys_publish(c->shards, c->n_shards);
        c->sys_next = now + (uint64_t)c->cfg->sys_interval_s * 1000;
    }
    if (c->wd_ms && c->wd_next - now < limit)
        limit = c->wd_next - now;
    if (c->sys_next && c->sys_next - now < limit)
        limit = c->sys_next - now;
    return limit;
}

/* Waits up to ms for a signal while serving the HTTP endpoint and what periodic() does.
 * Returns the signal number, or 0 when ms passed. */
static int wait_event(struct ctl *c, uint64_t ms)
{
    uint64_t end = rq_now_ms() + ms;
    for (;;) {
        uint64_t now = rq_now_ms();
        uint64_t t = periodic(c, now, end > now ? end - now : 0);
        if (now >= end)
            return 0;
        int ht = c->http ? rq_http_timeout_ms(c->http) : -1;
        if (ht >= 0 && (uint64_t)ht < t)
            t = (uint64_t)ht;
        struct pollfd p[2] = {{.fd = c->sfd, .events = POLLIN},
                              {.fd = c->http ? rq_http_fd(c->http) : -1, .events = POLLIN}};
        int n = poll(p, 2, (int)t);
        if (c->http)
            rq_http_run(c->http);
        struct signalfd_siginfo si;
        if (n > 0 && (p[0].revents & POLLIN) && read(c->sfd, &si, sizeof si) == sizeof si)
            return (int)si.ssi_signo;
    }
}

/* SIGTERM / SIGINT: /readyz fails from now on, and the listeners stay open
 * spec.ringmq.shutdownDelaySeconds longer (load balancers that poll readiness stop sending
 * clients first), unless a second SIGTERM / SIGINT comes. */
static void drain(struct ctl *c, int sig)
{
    const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    atomic_store(&rq_metrics_ctl.stopping, true);
    rq_sd_notify("STOPPING=1");
    uint32_t d = c->cfg->shutdown_delay_s;
    if (!d) {
        rq_log(RQ_LOG_INFO, NULL, "%s: shutting down", name);
        return;
    }
    rq_log(RQ_LOG_INFO, NULL, "%s: shutting down in %u s (shutdownDelaySeconds: /readyz fails "
           "now, the listeners stay open until then; another SIGTERM stops at once)", name, d);
    for (uint64_t end = rq_now_ms() + (uint64_t)d * 1000, now; (now = rq_now_ms()) < end;) {
        int s = wait_event(c, end - now);
        if (s == SIGTERM || s == SIGINT) {
            rq_log(RQ_LOG_INFO, NULL, "%s again: shutting down now", s == SIGTERM ? "SIGTERM"
                                                                                  : "SIGINT");
            return;
        }
    }
    rq_log(RQ_LOG_INFO, NULL, "shutdown delay over: shutting down");
}

/* Test hook (RINGMQ_TEST_STALL_MS set at start): SIGUSR2 makes shard 0 stop turning its loop
 * for that long, once, as a stuck shard would (/healthz must fail). */
static void test_stall(struct ctl *c)
{
    rq_log(RQ_LOG_WARN, NULL, "SIGUSR2: test hook: shard 0 stalls for %u ms", c->stall_ms);
    atomic_store(&rq_metrics_ctl.stall_ms, c->stall_ms);
    atomic_store(&rq_metrics_ctl.stall_shard, 1);
    rq_shard_wake(c->shards[0]);
}

/* The control thread's loop until SIGTERM / SIGINT: SIGHUP reloads the configuration, and every
 * 2 s it renews generated certificates and notices changed configuration files or secrets. Old
 * generations are freed here once no shard and no connection can use them: looked at every
 * 100 ms for a second after a swap (the shards pass their quiescent points), then every tick
 * (a generation that long-lived connections still use). Between signals it serves the metrics
 * endpoint (wait_event). */
static void serve(struct ctl *c)
{
    uint64_t files = c->files;
    uint64_t last = rq_now_ms();
    for (;;) {
        bool fast = rq_gens_reclaim(c->gens) && c->fast_polls > 0 && c->fast_polls--;
        int sig = wait_event(c, fast ? 100 : 2000);
        uint64_t now = rq_now_ms();
        if (sig == 0 && now - last < 2000)
            continue; /* a reclaim poll, not the 2 s tick */
        if (sig == 0) {
            last = now;
            struct rq_gen *g = rq_ports_renew(rq_gens_current(c->gens), c->data_dir,
                                              (int64_t)time(NULL));
            if (g)
                publish(c, g);
            uint64_t now_files = files_print(c);
            if (now_files == files || !files_settled(c, now_files))
                continue;
            files = now_files;
            reload(c);
            files = files_print(c);
            continue;
        }
        if (sig == SIGHUP) {
            if (c->o->config) {
                reload(c);
                files = files_print(c); /* what it read is not reloaded again by the watcher */
            }
            else
                rq_log(RQ_LOG_INFO, NULL, "SIGHUP: nothing to reload (embedded default)");
            continue;
        }
        if (sig == SIGUSR2) {
            test_stall(c);
            continue;
        }
        drain(c, sig);
        return;
    }
}

static bool is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, addr, &a6) != 1)
        return false;
    return IN6_IS_ADDR_LOOPBACK(&a6) ||
           (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

/* The runtime generation of the startup configuration, published to the n shards. NULL with
 * the cause logged. */
static struct rq_gens *first_generation(struct rq_config *cfg, const char *data_dir, int n)
{
    char err[1024];
    struct rq_gen *g = rq_ports_first(cfg, data_dir, n, err, sizeof err);
    if (!g) {
        rq_log(RQ_LOG_ERROR, NULL, "%s", err);
        return NULL;
    }
    struct rq_gens *d = rq_gens_new(n, g, rq_ports_gen_free);
    if (!d) {
        rq_ports_gen_free(g);
        rq_log(RQ_LOG_ERROR, NULL, "out of memory");
    }
    return d;
}

/* RINGMQ_TEST_STALL_MS (1..600000): the test hook of test_stall is armed; 0 = off. */
static uint32_t test_stall_ms(void)
{
    const char *v = getenv("RINGMQ_TEST_STALL_MS");
    char *end;
    long ms = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || ms < 1 || ms > 600000)
        return 0;
    rq_log(RQ_LOG_WARN, NULL, "test hook armed (RINGMQ_TEST_STALL_MS=%ld): SIGUSR2 stalls shard "
           "0; not for production", ms);
    return (uint32_t)ms;
}

/* Signals are handled by the control thread only, through the returned signalfd: they are
 * blocked here, before any other thread starts, so every thread inherits the mask. SIGUSR2
 * only with the test hook (otherwise its default action, exit, stays). */
static int signals_fd(bool test_hook)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (test_hook)
        sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC);
}

static void metrics_init(struct rq_broker *b)
{
    rq_metrics_ctl.broker = b;
    rq_metrics_ctl.start_unix = (int64_t)time(NULL);
    rq_metrics_ctl.start_ms = rq_now_ms();
    atomic_store(&rq_metrics_ctl.last_reload_ok, rq_metrics_ctl.start_unix);
}

/* The metrics / health endpoint (before the listeners and the shards, so that a port in use
 * stops the start first). Not bindable: an error when prometheusPort was configured, else (the default port,
 * taken by another program) a warning and no endpoint. 0, or 1 with the cause logged. */
static int start_http(struct ctl *c)
{
    const struct rq_config *cfg = c->cfg;
    char err[256];
    /* Test hook: the integration tests' brokers leave the default endpoint (0.0.0.0:9600 with a
     * configuration file) closed, so that test servers listen on loopback only and parallel
     * tests do not race for the port; a configured prometheusPort still opens. */
    if (!cfg->metrics_port_set && getenv("RINGMQ_TEST_NO_DEFAULT_METRICS")) {
        rq_log(RQ_LOG_INFO, NULL, "metrics and health endpoint off (RINGMQ_TEST_NO_DEFAULT_METRICS "
               "and no prometheusPort configured)");
        return 0;
    }
    if (!cfg->metrics_port) {
        rq_log(RQ_LOG_INFO, NULL, "metrics and health endpoint off (prometheusPort 0)");
        return 0;
    }
    c->http = rq_http_start(cfg->metrics_bind, cfg->metrics_port, err, sizeof err);
    if (!c->http && cfg->metrics_port_set) {
        rq_log(RQ_LOG_ERROR, NULL, "%s (spec.diagnostics.metrics.prometheusPort)", err);
        return 1;
    }
    if (!c->http) {
        rq_log(RQ_LOG_WARN, NULL, "%s: running without metrics and health endpoint (set "
               "spec.diagnostics.metrics.prometheusPort to a free port, or 0)", err);
        return 0;
    }
    bool v6 = strchr(cfg->metrics_bind, ':') != NULL;
    rq_log(RQ_LOG_INFO, NULL, "metrics and health endpoint on http://%s%s%s:%u (/metrics, "
           "/healthz, /readyz)", v6 ? "[" : "", cfg->metrics_bind, v6 ? "]" : "",
           cfg->metrics_port);
    return 0;
}

/* Listeners bound, shards running: tell systemd (Type=notify), arm its watchdog and $SYS. */
static void announce_ready(struct ctl *c)
{
    rq_sd_notify("READY=1\nSTATUS=accepting connections");
    uint64_t wd = rq_sd_watchdog_usec();
    if (wd) {
        c->wd_ms = wd / 2000 ? wd / 2000 : 1; /* ping at half the interval */
        c->wd_next = rq_now_ms();
    }
    if (c->cfg->sys_topics)
        c->sys_next = rq_now_ms() + 1; /* the first at once, then every interval */
}

static void log_startup(const struct rq_config *cfg, int n)
{
    rq_log(RQ_LOG_INFO, NULL, "ringmq %s: %d shard%s, configuration %s", RINGMQ_VERSION, n,
           n == 1 ? "" : "s", cfg->source);
    rq_log(RQ_LOG_INFO, NULL, "TLS library: wolfSSL %s, AES-NI %s", rq_tls_lib_version(),
           rq_tls_lib_aesni() ? "in use" : "not in use (this CPU or this build lacks it)");
    for (size_t i = 0; i < cfg->n_ignored; i++)
        rq_log(RQ_LOG_INFO, NULL, "%s: ignored: %s (not applicable to ringmq)",
               cfg->ignored[i].where, cfg->ignored[i].key);
    /* Secure by default: say so loudly when a port is open to all without authentication. */
    for (size_t i = 0; i < cfg->n_ports; i++) {
        const struct rq_port_cfg *pc = &cfg->ports[i];
        if (!pc->authn && !is_loopback(pc->bind_address))
            rq_log(RQ_LOG_WARN, NULL, "port %u on %s (listener %s) accepts clients from other "
                   "hosts without authentication: give it an authenticationRef, or bind it to "
                   "127.0.0.1", pc->port, pc->bind_address, pc->listener);
    }
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    struct rq_config *cfg = load_config(&o, &rc);
    if (!cfg)
        return rc;
    /* taken now: a file that changes while the broker starts is reloaded at the first look */
    uint64_t files = o.config ? rq_ports_files_print(cfg) : 0;
    rq_log_level = cfg->log_level;
    rq_log_json = cfg->log_json;
    if (o.verbose)
        rq_log_level = o.verbose > 1 ? RQ_LOG_TRACE : RQ_LOG_DEBUG;

    char err[1024] = "";
    if (rq_net_probe(err, sizeof err) != 0) {
        rq_log(RQ_LOG_ERROR, NULL, "%s", err);
        rq_config_free(cfg);
        return 1;
    }
    raise_nofile();
    if (rq_tls_lib_init() != 0) {
        rq_log(RQ_LOG_ERROR, NULL, "wolfSSL failed to initialise");
        rq_config_free(cfg);
        return 1;
    }
    int n = shard_count(&o, cfg);
    uint32_t stall_ms = test_stall_ms();
    int sfd = signals_fd(stall_ms != 0);
    struct rq_broker *b = rq_broker_new(cfg, n);
    struct rq_shard **shards = calloc((size_t)n, sizeof *shards);
    if (!b || !shards || sfd < 0 || rq_stats_init(n) != 0) {
        rq_log(RQ_LOG_ERROR, NULL, "out of memory");
        return 1;
    }
    metrics_init(b);
    int started = 0;
    char dd_buf[512];
    struct ctl c = {.o = &o, .data_dir = data_dir_of(&o, cfg, dd_buf, sizeof dd_buf),
                    .shards = shards, .n_shards = n, .cfg = cfg, .sfd = sfd,
                    .stall_ms = stall_ms, .files = files};
    /* ServiceAccountToken: the Kubernetes API source (logged) before the chains are built */
    if (rq_authn_sat_start(cfg, (unsigned)o.auth_threads, err, sizeof err) != 0) {
        rq_log(RQ_LOG_ERROR, NULL, "%s", err);
        rq_authn_sat_pool_free();
        rq_broker_free(b);
        free(shards);
        rq_config_free(cfg);
        return 1;
    }
    /* The endpoint first: once an MQTT port accepts connections (its sockets listen from
     * first_generation on), /metrics and the probes answer too. */
    rc = start_http(&c);
    if (rc == 0 && !(c.gens = first_generation(cfg, c.data_dir, n)))
        rc = 1;
    /* The pool runs only when a port's chain has a Custom method (or a reload brings one). */
    if (rc == 0 && rq_authn_custom_needed(cfg) &&
        rq_authn_custom_pool_start(cfg, (unsigned)o.auth_threads, err, sizeof err) != 0) {
        rq_log(RQ_LOG_ERROR, NULL, "authentication service pool: %s", err);
        rc = 1;
    }
    if (rc == 0)
        rc = start_shards(b, cfg, c.gens, shards, n, &started);
    if (rc == 0) {
        atomic_store(&rq_metrics_ctl.listening, true);
        log_startup(cfg, n);
        announce_ready(&c);
        serve(&c);
    }
    rq_http_stop(c.http); /* probes now fail to connect: the broker is going */
    close(sfd);
    /* Pending authentication requests are answered (posted) while the shards still run; the
     * pool's threads are joined before any shard is freed (net/post.h). */
    rq_authn_custom_pool_stop();
    rq_authn_sat_pool_stop();
    for (int i = 0; i < started; i++)
        rq_shard_stop(shards[i]);
    for (int i = 0; i < started; i++)
        rq_shard_join(shards[i]);
    rq_authn_custom_pool_free();
    rq_authn_sat_pool_free();
    for (int i = 0; i < n; i++)
        rq_shard_free(shards[i]); /* may unpin generations (connections in flight) */
    free(shards);
    rq_gens_free(c.gens);
    rq_broker_free(b);
    rq_stats_free();
    rq_config_free(cfg);
    if (rc == 0)
        rq_log(RQ_LOG_INFO, NULL, "stopped");
    return rc;
}
