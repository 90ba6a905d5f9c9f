/* libFuzzer harness for the YAML configuration loader: any bytes must give either a snapshot or
 * one "file:line:col: message" error, without crashes, leaks or undefined behaviour.
 * Seeds: tests/fuzz/corpus/config/. */
#include "config/config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct rq_config *c = rq_config_load_buffer("fuzz.yaml", (const char *)data, size, err,
                                                sizeof err);
    if (!c && strncmp(err, "fuzz.yaml:", 10) != 0)
        __builtin_trap(); /* every error names its position */
    rq_config_free(c);
    return 0;
}
