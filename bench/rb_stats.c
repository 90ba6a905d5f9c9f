/* ringbench statistics: the latency histogram and the /proc readers for the broker's CPU time
 * and memory, and for the machine's CPU. No I/O besides reading /proc files. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rb.h"

/* Values below 128 have their own bucket; above, 64 sub-buckets per power of two: the bucket is
 * the top 7 bits of the value and the shift. Index of 2^63..: (57 + 1) * 64 + 63 = 3775. */
static unsigned hist_idx(uint64_t v)
{
    if (v < 128)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 6;
    return (shift + 1) * 64 + (unsigned)((v >> shift) - 64);
}

static uint64_t hist_mid(unsigned idx)
{
    if (idx < 128)
        return idx;
    unsigned shift = idx / 64 - 1;
    uint64_t lower = (uint64_t)(idx % 64 + 64) << shift;
    return lower + ((1ull << shift) >> 1);
}

void rb_hist_add(struct rb_hist *h, uint64_t v)
{
    h->b[hist_idx(v)]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

void rb_hist_merge(struct rb_hist *dst, const struct rb_hist *src)
{
    for (unsigned i = 0; i < RB_HIST_N; i++)
        dst->b[i] += src->b[i];
    dst->n += src->n;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t rb_hist_pct(const struct rb_hist *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(p * (double)h->n + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < RB_HIST_N; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = hist_mid(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

uint64_t rb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    buf[n] = 0;
    return 0;
}

int rb_proc_cpu_us(int pid, uint64_t *us)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int rc = read_small(path, buf, sizeof buf);
    if (rc)
        return rc;
    /* comm may hold spaces and parentheses: fields restart after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -EINVAL;
    p++;
    /* after ')': state(3) ppid(4) ... utime(14) stime(15) */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            ut = strtoull(tok, NULL, 10);
        else if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field != 15)
        return -EINVAL;
    long hz = sysconf(_SC_CLK_TCK);
    *us = (uint64_t)(ut + st) * 1000000ull / (uint64_t)(hz > 0 ? hz : 100);
    return 0;
}

int rb_proc_rss_kb(int pid, uint64_t *kb)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    int rc = read_small(path, buf, sizeof buf);
    if (rc)
        return rc;
    char *p = strstr(buf, "\nVmRSS:");
    if (!p)
        return -EINVAL;
    p += 7;
    while (isspace((unsigned char)*p))
        p++;
    *kb = strtoull(p, NULL, 10);
    return 0;
}

int rb_machine_cpu(uint64_t *busy, uint64_t *total)
{
    char buf[512];
    int rc = read_small("/proc/stat", buf, sizeof buf);
    if (rc)
        return rc;
    unsigned long long v[10] = {0};
    if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
               &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) < 4)
        return -EINVAL;
    uint64_t t = 0;
    for (int i = 0; i < 8; i++) /* guest time is already inside user */
        t += v[i];
    *total = t;
    *busy = t - v[3] - v[4]; /* minus idle and iowait */
    return 0;
}

bool rb_proc_alive(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    return access(path, R_OK) == 0;
}
