/* struct rq_buf: a plain growable byte array, with a small per-thread cache of freed buffers.
 *
 * Connection output lives in rq_bufs that net frees as soon as a connection has nothing more
 * to send (an idle connection holds no output buffer). At a moderate rate every message finds
 * its connections idle: each PUBACK, PUBREC, PUBCOMP and PUBLISH would cost a malloc and a free.
 * So rq_buf_free keeps small buffers in a per-thread cache, and a buffer that starts from
 * nothing takes one from there. Only the capacities a fresh buffer would get are cached (256
 * doubled up to CACHE_CLASSES times), so a buffer's capacity (net charges it against
 * preConnectLimit.bytes) does not change. Each class keeps at most 64 KiB (256 buffers of 256
 * bytes ... 16 of 4096): a thread holds at most 320 KiB. Many connections get output in the
 * same loop turn and give their buffers back together when their sends complete, so the
 * smallest class is deep. */
#include "core/buf.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define FIRST_CAP 256
#define CACHE_CLASSES 5 /* 256 .. 4096 */
#define CACHE_BYTES (64 * 1024) /* per class */
#define CACHE_DEPTH(k) (CACHE_BYTES / ((size_t)FIRST_CAP << (k)))

struct buf_cache {
    uint8_t *v[CACHE_CLASSES][CACHE_DEPTH(0)];
    uint16_t n[CACHE_CLASSES];
    bool keyed; /* registered for release at thread exit */
};

static _Thread_local struct buf_cache cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_release(void *arg)
{
    struct buf_cache *c = arg;
    c->keyed = false; /* a buffer freed later (another key's destructor) registers again */
    for (int k = 0; k < CACHE_CLASSES; k++) {
        while (c->n[k]) {
            uint8_t *p = c->v[k][--c->n[k]];
            UNPOISON(p, (size_t)FIRST_CAP << k);
            free(p);
        }
    }
}

static void cache_key_make(void)
{
    pthread_key_create(&cache_key, cache_release);
}

/* The class of a capacity a fresh buffer can have, or -1. */
static int cap_class(size_t cap)
{
    for (int k = 0; k < CACHE_CLASSES; k++)
        if (cap == (size_t)FIRST_CAP << k)
            return k;
    return -1;
}

void rq_buf_cache_release(void)
{
    cache_release(&cache);
}

/* The capacity a buffer growing from cap to hold want bytes gets (doubling from 256). */
static int grown_cap(size_t cap, size_t want, size_t *out)
{
    size_t ncap = cap ? cap : FIRST_CAP;
    while (ncap < want) {
        if (ncap > SIZE_MAX / 2)
            return -ENOMEM;
        ncap *= 2;
    }
    *out = ncap;
    return 0;
}

/* Keeps a freed buffer of a cached class, if there is room. */
static bool cache_put(uint8_t *p, size_t cap)
{
    int k = cap_class(cap);
    if (k < 0 || cache.n[k] >= CACHE_DEPTH(k))
        return false;
    if (!cache.keyed) {
        pthread_once(&cache_once, cache_key_make);
        pthread_setspecific(cache_key, &cache); /* freed at the thread's exit */
        cache.keyed = true;
    }
    POISON(p, cap);
    cache.v[k][cache.n[k]++] = p;
    return true;
}

int rq_buf_reserve(struct rq_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t ncap;
    if (grown_cap(b->cap, b->len + extra, &ncap) != 0)
        return -ENOMEM;
    int k = cap_class(ncap);
    if (k >= 0 && cache.n[k]) {
        /* a cached buffer of the capacity growth would give: the contents move over (as
         * realloc would copy them), the old buffer is cached in turn */
        uint8_t *p = cache.v[k][--cache.n[k]];
        UNPOISON(p, ncap);
        if (b->data) {
            memcpy(p, b->data, b->len);
            if (!cache_put(b->data, b->cap))
                free(b->data);
        }
        b->data = p;
        b->cap = ncap;
        return 0;
    }
    uint8_t *p = realloc(b->data, ncap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int rq_buf_append(struct rq_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = rq_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void rq_buf_consume(struct rq_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void rq_buf_free(struct rq_buf *b)
{
    if (b->data && !cache_put(b->data, b->cap))
        free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
