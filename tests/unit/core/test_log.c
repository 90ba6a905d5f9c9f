/* Unit tests for core/log.c: escaping of peer-controlled text (rq_log_escape) and whole lines,
 * text and JSON, read back from a pipe put in place of stderr: one record per line whatever the
 * message holds, and every JSON line valid UTF-8 with nothing unescaped below 0x20. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "tests/unit/check.h"

static char out[256];

#define ESC(lit) rq_log_escape(out, sizeof out, lit, sizeof(lit) - 1)

static void test_escape(void)
{
    CHECK_STR(ESC("plain-id_42"), "plain-id_42");
    CHECK_STR(ESC("a\nINFO forged"), "a\\x0aINFO forged");
    CHECK_STR(ESC("cr\r tab\t nul\0 del\x7f"), "cr\\x0d tab\\x09 nul\\x00 del\\x7f");
    CHECK_STR(ESC("back\\slash \"quote\""), "back\\x5cslash \\x22quote\\x22");
    CHECK_STR(ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
              "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* not UTF-8: a stray continuation, an overlong '/', a surrogate, a cut sequence */
    CHECK_STR(ESC("\x80\xc0\xaf\xed\xa0\x80\xe2\x82"), "\\x80\\xc0\\xaf\\xed\\xa0\\x80\\xe2\\x82");
    /* C1 control, line separator, right-to-left override, BOM */
    CHECK_STR(ESC("\xc2\x85|\xe2\x80\xa8|\xe2\x80\xae|\xef\xbb\xbf"),
              "\\u0085|\\u2028|\\u202e|\\ufeff");
    CHECK_STR(rq_log_escape(out, sizeof out, NULL, 0), "");
    CHECK_STR(rq_log_escape_str(out, sizeof out, NULL), "");
    CHECK_STR(rq_log_escape_str(out, sizeof out, "x\ny"), "x\\x0ay");

    /* truncation: never more than size bytes, "..." says so, no escape cut in half */
    char small[10];
    CHECK_STR(rq_log_escape(small, sizeof small, "abcdefghij", 10), "abcdef...");
    CHECK_STR(rq_log_escape(small, sizeof small, "abcdefghi", 9), "abcdefghi");
    CHECK_STR(rq_log_escape(small, sizeof small, "ab\ncdefgh", 9), "ab\\x0a...");
    CHECK_STR(rq_log_escape(small, sizeof small, "abcd\xe2\x82\xac!!", 9), "abcd\xe2\x82\xac!!");
    CHECK_STR(rq_log_escape(small, sizeof small, "abcd\xe2\x82\xac!!!", 10), "abcd...");
    char tiny[4];
    CHECK_STR(rq_log_escape(tiny, sizeof tiny, "abcdef", 6), "...");
}

/* Writes one line through rq_log_write with stderr on a pipe; returns what came out. */
static size_t capture(char *buf, size_t cap, const struct rq_log_ctx *ctx, const char *arg)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 0;
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    rq_log_write(RQ_LOG_INFO, ctx, "value [%s] end", arg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], buf, cap - 1);
    close(fds[0]);
    buf[n > 0 ? n : 0] = 0;
    return n > 0 ? (size_t)n : 0;
}

static bool valid_utf8(const char *s)
{
    for (const uint8_t *p = (const uint8_t *)s; *p;) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : 4;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

static void test_lines(void)
{
    char id[64], buf[4096];
    struct rq_log_ctx ctx = {.shard = 1, .port = 1883, .client_id = id, .phase = "connect"};
    rq_log_escape_str(id, sizeof id, "evil\n2026-01-01T00:00:00.000Z error forged \"x\"");
    /* a caller that forgot to escape: the line still holds one record */
    const char *raw = "raw\nsecond line\r\x01\xff";
    for (int json = 0; json <= 1; json++) {
        rq_log_json = json;
        size_t n = capture(buf, sizeof buf, &ctx, raw);
        CHECK(n > 0);
        CHECK(n > 0 && buf[n - 1] == '\n');
        CHECK(strchr(buf, '\n') == buf + n - 1); /* exactly one line */
        CHECK(strchr(buf, '\r') == NULL);
        CHECK(valid_utf8(buf));
        for (size_t i = 0; i + 1 < n; i++)
            CHECK((unsigned char)buf[i] >= 0x20);
        CHECK(strstr(buf, json ? "evil\\\\x0a2026" : "client=\"evil\\x0a2026") != NULL);
        CHECK(strstr(buf, json ? "raw\\\\x0asecond" : "raw\\x0asecond") != NULL);
        if (json)
            CHECK(strncmp(buf, "{\"ts\":", 6) == 0 && strstr(buf, "\"}\n") == buf + n - 3);
    }
    rq_log_json = 0;
}

int main(void)
{
    test_escape();
    test_lines();
    return check_exit("test_log");
}
