"""fixtures: helpers that several integration files had each a copy of.

    env = fixtures.once(Env)                   # env() makes Env() at its first call, then reuses it
    b = fixtures.start_listening(y, ports)     # a broker whose every port of ports listens
    fixtures.expect_log(b, mark, r"regex", "what")   # that log line appears after mark
    sat = fixtures.sibling("08-sat.py")        # another integration file's module, cases dropped
"""

import importlib.util
import os

import rqtest as rq

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/integration


def once(make):
    """A function that returns make() made at its first call and the same object afterwards
    (an environment the cases of a file share, made only when a case needs it)."""
    made = []

    def get():
        if not made:
            made.append(make())
        return made[0]
    return get


def expect_log(b, mark, pattern, what, timeout=5.0):
    """The match of the first log line of broker b after mark matching pattern, waited for up
    to timeout seconds; fails with the log written since mark when none came."""
    m = b.wait_log(pattern, mark, timeout)
    rq.check(m is not None, "%s: no log line matching %r; log since:\n%s"
             % (what, pattern, b.log_since(mark)[-2500:]))
    return m


def start_listening(yaml_text, ports, timeout=5.0, skip=(), **kw):
    """rq.start_broker(yaml_text, **kw), then every port of ports (name -> number; the names in
    skip aside: ports nothing should listen on) must accept connections within timeout. The
    broker is returned with b.ports = ports."""
    b = rq.start_broker(yaml_text, **kw)
    for k, port in ports.items():
        if k not in skip:
            rq.check(rq.port_open(port, timeout), "port %s (%d) not listening" % (k, port))
    b.ports = ports
    return b


def sibling(filename):
    """The module of another integration file (its environment and helpers); its cases are
    dropped from this run, which runs only the importing file's own cases."""
    spec = importlib.util.spec_from_file_location(
        os.path.splitext(filename)[0].replace("-", "_"), os.path.join(HERE, filename))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rq._cases.clear()
    return mod
