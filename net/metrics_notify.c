/* systemd's notify protocol without libsystemd (see metrics.h): one datagram of "KEY=VALUE"
 * lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or '@' for the abstract
 * namespace), as sd_notify(3) documents it. */
#include "net/metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int rq_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0])
        return 0;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof a.sun_path)
        return -1;
    memcpy(a.sun_path, path, n);
    if (path[0] == '@')
        a.sun_path[0] = '\0'; /* abstract socket */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    /* never blocks: a reader that does not keep up loses datagrams, the broker goes on */
    ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT,
                          (struct sockaddr *)&a, len);
    close(fd);
    return sent < 0 ? -1 : 1;
}

uint64_t rq_sd_watchdog_usec(void)
{
    const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (!us || !getenv("NOTIFY_SOCKET"))
        return 0;
    if (pid && strtol(pid, NULL, 10) != (long)getpid())
        return 0; /* meant for another process */
    return strtoull(us, NULL, 10);
}
