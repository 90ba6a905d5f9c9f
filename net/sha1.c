/* SHA-1 after FIPS 180-4 sections 5.1.1 (padding), 5.3.1 (initial hash value) and 6.1.2 (hash
 * computation). Byte-oriented, portable (no endianness assumptions), unoptimised: it hashes one
 * 60-byte string per WebSocket handshake. Not here: HMAC, or anything security-relevant. */
#include "net/sha1.h"

#include <string.h>

static uint32_t rol(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One 512-bit block: message schedule W[0..79] kept as a rolling 16-word window. */
static void compress(uint32_t h[5], const uint8_t *blk)
{
    uint32_t w[16];
    for (int t = 0; t < 16; t++)
        w[t] = load_be32(blk + 4 * t);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t >= 16) {
            uint32_t x = w[(t - 3) & 15] ^ w[(t - 8) & 15] ^ w[(t - 14) & 15] ^ w[t & 15];
            w[t & 15] = rol(x, 1);
        }
        if (t < 20) {
            f = (b & c) | (~b & d); /* Ch */
            k = 0x5a827999;
        } else if (t < 40) {
            f = b ^ c ^ d; /* Parity */
            k = 0x6ed9eba1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d); /* Maj */
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t tmp = rol(a, 5) + f + e + k + w[t & 15];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void rq_sha1_init(struct rq_sha1 *c)
{
    static const uint32_t h0[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    memcpy(c->h, h0, sizeof h0);
    c->bytes = 0;
    c->fill = 0;
}

void rq_sha1_update(struct rq_sha1 *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->bytes += len;
    while (len > 0) {
        if (c->fill == 0 && len >= 64) {
            compress(c->h, p);
            p += 64;
            len -= 64;
            continue;
        }
        size_t n = 64 - c->fill < len ? 64 - c->fill : len;
        memcpy(c->block + c->fill, p, n);
        c->fill += n;
        p += n;
        len -= n;
        if (c->fill == 64) {
            compress(c->h, c->block);
            c->fill = 0;
        }
    }
}

/* Padding (5.1.1): a 1 bit, zeros up to 448 mod 512 bits, then the bit length as 64-bit BE. */
void rq_sha1_final(struct rq_sha1 *c, uint8_t out[RQ_SHA1_LEN])
{
    uint64_t bits = c->bytes * 8;
    c->block[c->fill++] = 0x80;
    if (c->fill > 56) {
        memset(c->block + c->fill, 0, 64 - c->fill);
        compress(c->h, c->block);
        c->fill = 0;
    }
    memset(c->block + c->fill, 0, 56 - c->fill);
    for (int i = 0; i < 8; i++)
        c->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress(c->h, c->block);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void rq_sha1(const void *p, size_t len, uint8_t out[RQ_SHA1_LEN])
{
    struct rq_sha1 c;
    rq_sha1_init(&c);
    rq_sha1_update(&c, p, len);
    rq_sha1_final(&c, out);
}
