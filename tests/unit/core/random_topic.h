/* Random topic names and filters for the randomized tests of the subscription tree (test_topic)
 * and the retained store (test_retain): 1 to 4 levels from a small alphabet (an empty and a '$'
 * level among them) so that names collide often; a filter also gets '+' levels and a trailing
 * '#'. A linear congruential generator whose state each test keeps: runs are reproducible. */
#ifndef RQ_TEST_RANDOM_TOPIC_H
#define RQ_TEST_RANDOM_TOPIC_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* A number below n; *rng is the generator's state (the seed at first). */
static inline uint32_t random_below(uint32_t *rng, uint32_t n)
{
    *rng = *rng * 1103515245u + 12345u;
    return (*rng >> 8) % n;
}

/* out (32 bytes are enough): a topic name, or a filter when filter is true. */
static inline void random_name(uint32_t *rng, char *out, bool filter)
{
    static const char *lv[] = {"a", "b", "", "$x", "cc"};
    int levels = 1 + (int)random_below(rng, 4);
    out[0] = 0;
    for (int i = 0; i < levels; i++) {
        const char *l = lv[random_below(rng, 5)];
        if (filter && random_below(rng, 4) == 0)
            l = "+";
        if (filter && i == levels - 1 && random_below(rng, 5) == 0)
            l = "#";
        strcat(out, l);
        if (i < levels - 1)
            strcat(out, "/");
    }
}

#endif
