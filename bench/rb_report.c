/* ringbench reports: one line per trial (stderr), the summary (stdout) and the JSON file.
 * Pure formatting of numbers the main thread has finished computing. */
#include <stdio.h>
#include <string.h>
#include <errno.h>

#include "rb_report.h"

static struct rb_tls_info g_tls; /* set by rb_report_tls; empty: no handshake completed */

void rb_report_tls(const struct rb_tls_info *info)
{
    g_tls = *info;
}

const char *rb_tls_text(const struct rb_opts *o)
{
    static char buf[160];
    if (!o->tls)
        return "";
    if (!g_tls.version[0])
        return "TLS, no handshake completed";
    snprintf(buf, sizeof buf, "TLS %s %s %s", g_tls.version, g_tls.cipher, g_tls.group);
    return buf;
}

const char *rb_pattern_name(enum rb_pattern p)
{
    static const char *const names[] = {"fanin", "fanout", "pairwise", "shared"};
    return names[p];
}

void rb_fmt_count(char *buf, size_t cap, double v)
{
    if (v >= 1e6)
        snprintf(buf, cap, "%.2fM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, cap, "%.1fk", v / 1e3);
    else
        snprintf(buf, cap, "%.0f", v);
}

void rb_print_trial(const struct rb_opts *o, const char *name, const struct rb_trial *t)
{
    if (o->quiet)
        return;
    char d[32];
    rb_fmt_count(d, sizeof d, t->deliv_rate);
    fprintf(stderr,
            "  %-9s %9.0f pub/s -> delivered %8s msg/s, lost %llu, p50 %.2f p99 %.2f ms, "
            "broker %.2f cores %.2f us/msg, ringbench %.0f%% cpu%s%s%s\n",
            name, t->target > 0 ? t->target : t->pub_rate, d, (unsigned long long)t->lost,
            (double)t->p50 / 1e6, (double)t->p99 / 1e6, t->broker_cores,
            t->recv ? t->broker_cpu_us / (double)t->recv : 0, t->gen_cpu_pct,
            t->settle_s >= 1 ? " (waited for an idle broker first)" : "",
            t->target > 0 ? (t->ok ? "  ok" : "  -- ") : "", t->target > 0 && !t->ok ? t->why : "");
}

/* Error texts may quote the broker or the codec: keep the JSON valid. */
static const char *json_safe(const char *in)
{
    static char out[256];
    size_t j = 0;
    for (size_t i = 0; in[i] && j + 1 < sizeof out; i++) {
        char ch = in[i];
        out[j++] = ch == '"' || ch == '\\' ? '\'' : (unsigned char)ch < 0x20 ? ' ' : ch;
    }
    out[j] = 0;
    return out;
}

static void json_params(FILE *f, const struct rb_opts *o)
{
    fprintf(f,
            "\"params\":{\"host\":\"%s\",\"port\":%u,\"pid\":%d,\"mqtt\":%d,\"qos\":%d,"
            "\"size\":%u,\"pattern\":\"%s\",\"pubs\":%u,\"subs\":%u,\"rate\":%.1f,"
            "\"duration\":%.2f,\"threads\":%u,\"inflight\":%u,\"window\":%u,\"conns\":%u,"
            "\"concurrency\":%u,\"source_addrs\":%u,\"slo_p99_ms\":%.2f}",
            o->host, o->port, o->broker_pid, o->version, o->qos, o->size,
            rb_pattern_name(o->pattern), o->pubs, o->subs, o->mode == RB_MODE_RATE ? o->rate : 0,
            o->duration, o->threads, o->inflight, o->window, o->conns, o->concurrency,
            o->source_addrs, o->slo_p99_ms);
}

static void json_trial(FILE *f, const struct rb_trial *t)
{
    fprintf(f,
            "{\"target_rate\":%.1f,\"duration_s\":%.3f,\"published\":%llu,\"expected\":%llu,"
            "\"delivered\":%llu,\"lost\":%llu,\"late\":%llu,\"reordered\":%llu,\"gaps\":%llu,"
            "\"bad\":%llu,\"acked\":%llu,\"ack_errors\":%llu,\"blocked_ticks\":%llu,"
            "\"conn_failed\":%u,\"drained\":%s,\"sustainable\":%s,\"why\":\"%s\","
            "\"pub_rate\":%.1f,\"delivered_rate\":%.1f,\"max_lag_ms\":%.3f,\"settle_s\":%.2f,"
            "\"latency_us\":{\"samples\":%llu,\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
            "\"max\":%.1f},\"broker\":{\"cpu_us\":%.0f,\"cores\":%.3f,\"cpu_us_per_msg\":%.4f,"
            "\"rss_before_kb\":%llu,\"rss_after_kb\":%llu},"
            "\"generator\":{\"cpu_pct\":%.1f,\"thread_max_pct\":%.1f,\"headroom_pct\":%.1f},"
            "\"machine_busy_pct\":%.1f}",
            t->target, t->dur, (unsigned long long)t->sent, (unsigned long long)t->expected,
            (unsigned long long)t->recv, (unsigned long long)t->lost,
            (unsigned long long)t->late, (unsigned long long)t->reordered,
            (unsigned long long)t->gaps, (unsigned long long)t->bad,
            (unsigned long long)t->acked, (unsigned long long)t->ack_errors,
            (unsigned long long)t->blocked, t->failed, t->drained ? "true" : "false",
            t->ok ? "true" : "false", json_safe(t->why), t->pub_rate, t->deliv_rate,
            (double)t->max_lag_ns / 1e6, t->settle_s, (unsigned long long)t->nlat, (double)t->p50 / 1e3,
            (double)t->p99 / 1e3, (double)t->p999 / 1e3, (double)t->max / 1e3,
            t->broker_cpu_us, t->broker_cores,
            t->recv ? t->broker_cpu_us / (double)t->recv : 0,
            (unsigned long long)t->rss_before_kb, (unsigned long long)t->rss_after_kb,
            t->gen_cpu_pct, t->gen_thread_max_pct, 100.0 - t->gen_thread_max_pct,
            t->machine_busy_pct);
}

static FILE *json_open(const struct rb_opts *o)
{
    if (!o->json_path)
        return NULL;
    if (strcmp(o->json_path, "-") == 0)
        return stdout;
    FILE *f = fopen(o->json_path, "w");
    if (!f)
        fprintf(stderr, "ringbench: %s: %s\n", o->json_path, strerror(errno));
    return f;
}

static void json_close(FILE *f)
{
    if (f && f != stdout)
        fclose(f);
    else if (f)
        fflush(f);
}

/* "tls": null over TCP, else what was asked for and what was negotiated ("" when no handshake
 * completed). */
static void json_tls(FILE *f, const struct rb_opts *o)
{
    if (!o->tls) {
        fputs(",\"tls\":null", f);
        return;
    }
    fprintf(f, ",\"tls\":{\"version\":\"%s\",\"cipher\":\"%s\",\"group\":\"%s\",",
            g_tls.version, g_tls.cipher, g_tls.group);
    fprintf(f, "\"asked_version\":\"%s\",\"server_verified\":%s,\"client_cert\":%s,",
            o->tls_version == 12 ? "1.2" : o->tls_version == 13 ? "1.3" : "any",
            o->cafile ? "true" : "false", o->cert ? "true" : "false");
    fprintf(f, "\"sni\":\"%s\"}", json_safe(o->sni));
}

static void json_head(FILE *f, const struct rb_opts *o, const char *mode)
{
    fprintf(f, "{\"tool\":\"ringbench\",\"version\":1,\"label\":\"%s\",\"mode\":\"%s\",",
            json_safe(o->label ? o->label : ""), mode);
    json_params(f, o);
    json_tls(f, o);
}

void rb_write_json_trials(const struct rb_opts *o, const struct rb_trial *tr, uint32_t n, int best,
                              const char *err)
{
    FILE *f = json_open(o);
    if (!f)
        return;
    json_head(f, o, o->mode == RB_MODE_MAX ? "max" : "rate");
    fprintf(f, ",\"error\":\"%s\",\"result\":", json_safe(err));
    if (best >= 0)
        json_trial(f, &tr[best]);
    else
        fputs("null", f);
    fputs(",\"trials\":[", f);
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        json_trial(f, &tr[i]);
    }
    fputs("]}\n", f);
    json_close(f);
}

void rb_write_json_storm(const struct rb_opts *o, const struct rb_storm *s, const char *err)
{
    FILE *f = json_open(o);
    if (!f)
        return;
    json_head(f, o, "connect");
    fprintf(f,
            ",\"error\":\"%s\",\"result\":{\"connections\":%u,\"connected\":%u,\"failed\":%u,"
            "\"seconds\":%.3f,\"conn_per_s\":%.1f,\"connect_latency_us\":{\"p50\":%.1f,"
            "\"p99\":%.1f,\"max\":%.1f},\"broker\":{\"cpu_us\":%llu,\"rss_before_kb\":%llu,"
            "\"rss_held_kb\":%llu,\"rss_per_conn_bytes\":%.1f},\"generator\":{\"cpu_pct\":%.1f,"
            "\"thread_max_pct\":%.1f,\"headroom_pct\":%.1f},\"machine_busy_pct\":%.1f}}\n",
            json_safe(err), s->want, s->ready, s->failed, s->secs, s->rate, (double)s->p50 / 1e3,
            (double)s->p99 / 1e3, (double)s->max / 1e3, (unsigned long long)s->cpu_us,
            (unsigned long long)s->rss0, (unsigned long long)s->rss1, s->rss_per_conn,
            s->gen_cpu_pct, s->gen_thread_max_pct, 100.0 - s->gen_thread_max_pct,
            s->machine_busy_pct);
    json_close(f);
}

/* ", TLS 1.3 (server verified against ca.pem as localhost), client certificate c.pem" */
static void describe_tls(const struct rb_opts *o, char *buf, size_t cap)
{
    buf[0] = 0;
    if (!o->tls)
        return;
    const char *ver = o->tls_version == 12 ? "TLS 1.2" : o->tls_version == 13 ? "TLS 1.3" : "TLS";
    if (o->cafile)
        snprintf(buf, cap, ", %s (server verified against %s as %s)%s%s", ver, o->cafile, o->sni,
                 o->cert ? ", client certificate " : "", o->cert ? o->cert : "");
    else
        snprintf(buf, cap, ", %s (server NOT verified: no --cafile; SNI %s)%s%s", ver, o->sni,
                 o->cert ? ", client certificate " : "", o->cert ? o->cert : "");
}

void rb_describe(const struct rb_opts *o)
{
    if (o->quiet)
        return;
    char tls[640];
    describe_tls(o, tls, sizeof tls);
    if (o->mode == RB_MODE_CONNECT) {
        fprintf(stderr, "ringbench %s: connect storm, %u connections (%u at once), MQTT %s, "
                        "127.0.0.1:%u%s\n", o->label ? o->label : "", o->conns, o->concurrency,
                o->version == 5 ? "5" : "3.1.1", o->port, tls);
        return;
    }
    char rate[48] = "max sustainable rate";
    if (o->mode == RB_MODE_RATE)
        snprintf(rate, sizeof rate, "%.0f msg/s", o->rate);
    fprintf(stderr, "ringbench %s: %s %u->%u, QoS %d, %u B, MQTT %s, %s, 127.0.0.1:%u%s\n",
            o->label ? o->label : "", rb_pattern_name(o->pattern), o->pubs, o->subs, o->qos,
            o->size, o->version == 5 ? "5" : o->version == 3 ? "3.1" : "3.1.1", rate, o->port,
            tls);
}

void rb_summary(const struct rb_opts *o, const struct rb_trial *t, bool max_mode)
{
    printf("%s%s%s %s %u->%u qos%d %uB: %s %.0f msg/s delivered (%.0f published/s), lost %llu, "
           "reordered %llu; latency p50 %.3f p99 %.3f p99.9 %.3f max %.3f ms; ",
           o->label ? "[" : "", o->label ? o->label : "", o->label ? "]" : "",
           rb_pattern_name(o->pattern), o->pubs, o->subs, o->qos, o->size,
           max_mode ? (t->ok ? "max sustainable" : "NOT sustainable at any tried rate,")
                    : "rate",
           t->deliv_rate, t->pub_rate, (unsigned long long)t->lost,
           (unsigned long long)t->reordered, (double)t->p50 / 1e6, (double)t->p99 / 1e6,
           (double)t->p999 / 1e6, (double)t->max / 1e6);
    if (o->broker_pid)
        printf("broker %.2f cores, %.3f us/msg, RSS %llu->%llu kB; ", t->broker_cores,
               t->recv ? t->broker_cpu_us / (double)t->recv : 0,
               (unsigned long long)t->rss_before_kb, (unsigned long long)t->rss_after_kb);
    if (o->tls)
        printf("%s; ", rb_tls_text(o));
    printf("ringbench %.0f%% of a core (busiest thread %.0f%%, headroom %.0f%%), machine %.0f%% "
           "busy\n",
           t->gen_cpu_pct, t->gen_thread_max_pct, 100 - t->gen_thread_max_pct,
           t->machine_busy_pct);
    if (t->gen_thread_max_pct > 85)
        printf("warning: a ringbench thread was %.0f%% busy: the generator may have limited this "
               "result (try --threads)\n", t->gen_thread_max_pct);
}

