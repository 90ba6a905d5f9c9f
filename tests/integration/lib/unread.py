"""A client that does not read what the broker sends it: fills the broker's socket buffer toward
it until a send to it waits (and cannot end until the client reads). Linux /proc/net/tcp."""

import time

from rqtest import check


def tcp_socket(local_port, remote_port):
    """(state, send queue, receive queue) of the IPv4 TCP socket 127.0.0.1:local_port ->
    :remote_port (state 1 is ESTABLISHED), or None."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            col = line.split()
            if (int(col[1].split(":")[1], 16) == local_port and
                    int(col[2].split(":")[1], 16) == remote_port):
                tx, rx = col[4].split(":")
                return int(col[3], 16), int(tx, 16), int(rx, 16)
    return None


def fill(port, sock, send, big, small, timeout=60.0):
    """send(n) makes the broker owe sock (a client socket connected to 127.0.0.1:port) n more
    answers. Sends until the broker's send queue toward sock is full: steps of big while it
    grows; then steps of small, each confirmed once the broker has read it (its receive queue
    empty) and its send queue has not changed for half a second after (a broker slowed down by
    a sanitizer or a loaded machine answers late, which looks full for a moment). Two such
    steps in a row: full, and the broker holds a send to sock that waits."""
    mine = sock.getsockname()[1]
    deadline = time.monotonic() + timeout

    def sample():
        q = tcp_socket(port, mine)
        check(q is not None, "no socket 127.0.0.1:%d -> :%d in /proc/net/tcp" % (port, mine))
        check(time.monotonic() < deadline, "the broker's send queue toward a client that does "
              "not read did not fill in %.0f s (%d bytes)" % (timeout, q[1]))
        return q

    last = -1
    while True:
        send(big)
        time.sleep(0.05)
        tx = sample()[1]
        if tx == 0 or tx != last:
            last = tx
            continue
        confirmed = 0
        while confirmed < 2:
            send(small)
            while sample()[2] > 0:  # not read yet
                time.sleep(0.01)
            grew, until = False, time.monotonic() + 0.5
            while time.monotonic() < until:
                tx = sample()[1]
                grew |= tx != last
                last = tx
                time.sleep(0.05)
            if grew:
                break
            confirmed += 1
        if confirmed == 2:
            return
