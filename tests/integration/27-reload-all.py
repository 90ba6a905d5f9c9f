#!/usr/bin/python3
"""27 reload of everything (SIGHUP and changed files): a reload is all or nothing.

- A half-written file, an unreadable file, a removed Secret (mounted directory): nothing
  changes, one error line naming file:line:col (the file alone when it cannot be read at all),
  ringmq_config_reload_failures_total moves by one; the completed file applies.
- Mounted directories updated the way the kubelet does it (the `..data` symlink swap) are
  noticed without SIGHUP.
- The log level applies live; settings fixed at start are logged as needing a restart and the
  rest of the reload applies; advanced.clients limits apply to new connections.
- Listener ports added, removed (v5 clients get DISCONNECT 0x8B, 3.1.1 clients are closed) or
  changed live; a port that cannot be bound refuses the whole reload.
- A port's authentication (the chain's settings, its authenticationRef) applies to new CONNECTs;
  connected clients keep their connection and session.
ringmq only."""

import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

ONLY = "ringmq's configuration reload"
SETPRIV = shutil.which("setpriv")


# ---- helpers ------------------------------------------------------------------------------------

def listener_doc(name, ports):
    """A BrokerListener document; ports: list of (port, extra YAML lines for that port); an
    extra "bindAddress: X" replaces the default 127.0.0.1."""
    lines = ["---", "apiVersion: mqttbroker.iotoperations.azure.com/v1", "kind: BrokerListener",
             "metadata:", "  name: %s" % name, "spec:", "  ports:"]
    for port, extra in ports:
        lines += ["  - port: %d" % port]
        if not any(e.startswith("bindAddress:") for e in extra):
            lines += ["    bindAddress: 127.0.0.1"]
        lines += ["    " + e for e in extra]
    return "\n".join(lines) + "\n"


def broker_doc(mport, level="debug", clients=None, ringmq=None):
    y = rq.broker_yaml(port=1, clients=clients, ringmq=ringmq,
                       extra_spec={"diagnostics": {"logs": {"level": level},
                                                   "metrics": {"prometheusPort": mport}}})
    return y[:y.index("kind: BrokerListener")].rsplit("---", 1)[0]


class Setup:
    """A broker on a config directory: broker.yaml (Broker) + listeners.yaml; files = other
    files relative to the directory. drop_dac: run it without CAP_DAC_OVERRIDE (as root), so
    that a mode 000 file is unreadable to it."""

    def __init__(self, ports, files=None, level="debug", clients=None, ringmq=None,
                 drop_dac=False, prepare=None, mounted=False):
        self.mounted = mounted  # listeners.yaml through the kubelet's ..data symlinks
        self.stamp = 0
        self.dir = tempfile.mkdtemp(prefix="rqtest-")
        os.chmod(self.dir, 0o755)
        self.mport = rq.free_port()
        self.level, self.clients, self.ringmq = level, clients, ringmq
        for rel, content in (files or {}).items():
            self.put(rel, content)
        if prepare:
            prepare(self.dir)
        self.write_broker()
        self.write_listeners(ports)
        argv = [rq.broker_bin(), "-c", self.dir, "--threads", "2"]
        if drop_dac and os.geteuid() == 0:
            if not SETPRIV:
                raise rq.Skip("setpriv (util-linux) is missing: cannot drop CAP_DAC_OVERRIDE")
            argv = [SETPRIV, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search",
                    "--"] + argv
        self.b = rq.Broker(argv, ports[0][0], self.dir)
        self.b.mport = self.mport

    def put(self, rel, content):
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp~"
        with open(tmp, "wb") as fh:
            fh.write(content.encode() if isinstance(content, str) else content)
        os.replace(tmp, path)

    def write_broker(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)
        self.put("broker.yaml", broker_doc(self.mport, self.level, self.clients, self.ringmq))

    def write_listeners(self, ports, name="plain"):
        self.listeners = listener_doc(name, ports)
        if self.mounted:
            self.stamp += 1
            kubelet_mount(self.dir, {"listeners.yaml": self.listeners}, str(self.stamp))
        else:
            self.put("listeners.yaml", self.listeners)


metric = rq.metric


def failures(b):
    return metric(b, "ringmq_config_reload_failures_total")


def reload_ok(b, mark, what, timeout=10):
    check(b.wait_log(r"reload: generation \d+ in use", mark, timeout=timeout),
          "%s: the reload applied; log:\n%s" % (what, b.log_since(mark)[-2000:]))


def refused(b, mark, rx, what, before, timeout=10):
    """The reload was refused with one error line matching rx, counted once."""
    m = b.wait_log(r"reload refused, the running configuration stays: " + rx, mark, timeout)
    check(m, "%s: refusal logged; log:\n%s" % (what, b.log_since(mark)[-2000:]))
    # one line per refused reload (SIGHUP racing the file watcher's 2 s look may make two)
    lines = re.findall(r"reload refused.*", b.log_since(mark))
    check(all(re.search(rx, l) for l in lines), "%s: every refusal names the cause: %r"
          % (what, lines))
    check_eq(failures(b), before + len(lines), "%s: ringmq_config_reload_failures_total" % what)
    check(not re.search(r"reload: generation \d+ in use", b.log_since(mark)),
          "%s: nothing applied" % what)


def can_connect(port, version=5):
    c = rq.RawClient(port, version=version)
    check_eq(c.connect(client_id=rq.uniq("probe")).rc, 0, "CONNACK on port %d" % port)
    c.disconnect()


def port_refuses(port, timeout=10):
    """True once nothing accepts on port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not rq.port_open(port):
            return True
        time.sleep(0.1)
    return False


# ---- failed reloads -----------------------------------------------------------------------------

@case(ringmq_only=ONLY)
def half_written_file_refused_then_applies():
    """A listener file caught half-written by the file watcher (and by SIGHUP) is refused with
    its file:line:col; the port keeps serving; the completed file applies."""
    port, port2 = rq.free_port(), rq.free_port()
    s = Setup([(port, [])])
    with s.b as b:
        full = listener_doc("plain", [(port, []), (port2, [])])
        half = full[:full.index("name: plain") + 8]  # "name: pl" ... then the file ends
        half += "\nspec:\n  ports:\n  - port: [%d" % port2  # an unclosed flow sequence
        for how in ("watch", "SIGHUP"):
            before = failures(b)
            mark = b.log_mark()
            s.put("listeners.yaml", half)
            if how == "SIGHUP":
                b.signal(signal.SIGHUP)
            refused(b, mark, r".*listeners\.yaml:\d+:\d+: ", "half-written (%s)" % how, before)
            can_connect(port)
            check(not rq.port_open(port2), "the half-written port is not opened")
            mark = b.log_mark()
            s.put("listeners.yaml", s.listeners)  # back as it was, for the next round
            b.signal(signal.SIGHUP)
            reload_ok(b, mark, "restored")
        mark = b.log_mark()
        s.put("listeners.yaml", full)
        reload_ok(b, mark, "the completed file (noticed by the watcher)")


@case(ringmq_only=ONLY)
def unreadable_file_refused():
    """A YAML file the broker cannot read (mode 000, the broker without CAP_DAC_OVERRIDE) and a
    dangling *.yaml symlink: refused; nothing changes."""
    port = rq.free_port()
    s = Setup([(port, [])], drop_dac=True)
    with s.b as b:
        before = failures(b)
        mark = b.log_mark()
        os.chmod(os.path.join(s.dir, "listeners.yaml"), 0)
        b.signal(signal.SIGHUP)
        refused(b, mark, r".*listeners\.yaml: cannot open: Permission denied", "mode 000",
                before)
        can_connect(port)
        os.chmod(os.path.join(s.dir, "listeners.yaml"), 0o644)
        # a dangling symlink is an error too, not a file left out (that could drop a listener)
        before = failures(b)
        mark = b.log_mark()
        os.symlink("gone.yaml", os.path.join(s.dir, "more.yaml"))
        b.signal(signal.SIGHUP)
        refused(b, mark, r".*more\.yaml: cannot open: No such file", "dangling symlink", before)
        can_connect(port)


def kubelet_mount(dirpath, files, stamp):
    """Writes files the way the kubelet updates a Secret volume: a new timestamped directory,
    ..data switched to it by a rename, the keys symlinks through ..data."""
    os.makedirs(dirpath, exist_ok=True)
    ts = os.path.join(dirpath, "..%s" % stamp)
    os.mkdir(ts)
    for k, v in files.items():
        with open(os.path.join(ts, k), "w") as fh:
            fh.write(v)
    old = os.path.realpath(os.path.join(dirpath, "..data")) \
        if os.path.lexists(os.path.join(dirpath, "..data")) else None
    tmp = os.path.join(dirpath, "..data_tmp")
    os.symlink(os.path.basename(ts), tmp)
    os.rename(tmp, os.path.join(dirpath, "..data"))
    for k in files:
        link = os.path.join(dirpath, k)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", k), link)
    if old:
        shutil.rmtree(old)


@case(ringmq_only=ONLY)
def mounted_secret_data_swap_and_removal():
    """A TLS port's Secret mounted the kubelet's way: a ..data swap is served without SIGHUP;
    removing the Secret's directory is refused (the reference's file:line:col) and the old
    certificate stays, also for a client connecting afterwards."""
    import certs
    if not certs.openssl_available():
        raise rq.Skip("the openssl command line tool is missing (certificates are made with it)")
    f = certs.CertFactory()
    root = f.ca("/CN=ringmq 27 Root", name="r27-root")
    first, second = f.server(root, name="r27-a"), f.server(root, name="r27-b")
    port = rq.free_port()
    sdir = lambda d: os.path.join(d, "secrets", "server-cert")  # noqa: E731

    def prepare(d):
        kubelet_mount(sdir(d), {"tls.crt": first.chain_pem, "tls.key": first.key_pem}, "1")

    s = Setup([(port, ["tls: {mode: Manual, manual: {secretRef: server-cert}}"])],
              prepare=prepare)
    with s.b as b:
        check_eq(wait_serial(port, root, first), serial(first), "first certificate")
        c = rq.RawClient(port, tls=rq.tls_context(cafile=root.cert), server_hostname="localhost")
        check_eq(c.connect(client_id=rq.uniq("keep")).rc, 0, "CONNACK")
        kubelet_mount(sdir(s.dir), {"tls.crt": second.chain_pem, "tls.key": second.key_pem}, "2")
        check_eq(wait_serial(port, root, second, timeout=10), serial(second),
                 "served after the ..data swap (no SIGHUP)")
        # a TLS port added by a reload serves the same Secret
        tls2 = rq.free_port()
        mark = b.log_mark()
        tls_line = "tls: {mode: Manual, manual: {secretRef: server-cert}}"
        s.write_listeners([(port, [tls_line]), (tls2, [tls_line])])
        b.signal(signal.SIGHUP)
        reload_ok(b, mark, "TLS port added")
        check_eq(wait_serial(tls2, root, second, timeout=0), serial(second), "the added TLS port")
        before = failures(b)
        mark = b.log_mark()
        shutil.rmtree(sdir(s.dir))
        refused(b, mark, r".*listeners\.yaml:\d+:\d+: .*server-cert", "Secret removed", before)
        check_eq(wait_serial(port, root, second, timeout=0), serial(second), "still served")
        c.ping(3)
        c.disconnect()


# ---- what applies live, what needs a restart ------------------------------------------------------

@case(ringmq_only=ONLY)
def log_level_applies_live_restart_only_settings_logged():
    """spec.diagnostics.logs.level applies at once; threads and dataDir changed in the same
    reload are logged as needing a restart and the rest of the reload applies."""
    port = rq.free_port()
    s = Setup([(port, [])], level="info")
    with s.b as b:
        mark = b.log_mark()
        can_connect(port)
        time.sleep(0.3)
        check(not re.search(r"connected: MQTT", b.log_since(mark)), "no debug lines at info")
        ok_before = metric(b, "ringmq_config_reloads_total")
        mark = b.log_mark()
        s.write_broker(level="debug", ringmq={"threads": 4, "dataDir": "/nonexistent/x"})
        b.signal(signal.SIGHUP)
        reload_ok(b, mark, "level + restart-only keys")
        log = b.log_since(mark)
        check(re.search(r"reload: log level now debug", log), "log level change logged")
        check(re.search(r"reload: spec\.ringmq\.threads changed \(0 -> 4\): needs a restart",
                        log), "threads: needs a restart; log:\n" + log)
        check(re.search(r"reload: spec\.ringmq\.dataDir changed .*needs a restart", log),
              "dataDir: needs a restart")
        check(re.search(r"2 settings need a restart", log), "counted in the reload line")
        check_eq(metric(b, "ringmq_config_reloads_total"), ok_before + 1, "reloads_total")
        mark = b.log_mark()
        can_connect(port)
        check(b.wait_log(r"connected: MQTT", mark, timeout=5), "debug lines after the reload")
        shard_threads = len([t for t in os.listdir("/proc/%d/task" % b.pid)])
        mark = b.log_mark()
        s.write_broker(level="info", ringmq={"threads": 4, "dataDir": "/nonexistent/x"})
        b.signal(signal.SIGHUP)
        reload_ok(b, mark, "back to info")
        check(re.search(r"threads changed \(0 -> 4\)", b.log_since(mark)),
              "still not applied: said again")
        check_eq(len(os.listdir("/proc/%d/task" % b.pid)), shard_threads, "threads unchanged")


@case(ringmq_only=ONLY)
def client_limits_apply_to_new_connections():
    """advanced.clients (maxKeepAliveSeconds, maxReceiveMaximum, maxPacketSizeBytes,
    maxSessionExpirySeconds): a client connected before the reload keeps what its CONNACK said,
    its packet size limit too, and stays connected; one connecting after gets the new limits."""
    port = rq.free_port()
    old_limits = {"maxKeepAliveSeconds": 60, "maxReceiveMaximum": 100,
                  "maxPacketSizeBytes": 100000, "maxSessionExpirySeconds": 600}
    new_limits = {"maxKeepAliveSeconds": 30, "maxReceiveMaximum": 50,
                  "maxPacketSizeBytes": 50000, "maxSessionExpirySeconds": 300}
    s = Setup([(port, [])], clients=old_limits)

    def limits(ack):
        return tuple(ack.props.get(k) for k in ("server_keep_alive", "maximum_packet_size",
                                                "session_expiry_interval"))

    def connect(what):
        c = rq.RawClient(port)
        ack = c.connect(client_id=rq.uniq(what), keepalive=120,
                        props={"session_expiry_interval": 100000, "receive_maximum": 1000})
        check_eq(ack.rc, 0, what + " CONNACK")
        c.subscribe("limits/%s/#" % what, qos=1)
        return c, limits(ack)

    def in_flight(c, what, want):
        """QoS 1 messages the broker sends c without acknowledgements: its Receive Maximum
        capped by maxReceiveMaximum."""
        pub = rq.connected(port)
        for i in range(want + 20):
            pub.publish("limits/%s/%d" % (what, i), b"m", qos=1)
        pub.disconnect()
        got = c.collect(timeout=1.5, count=want, ack=False)
        check_eq(len(got), want, what + ": messages in flight")
        c.expect_nothing(1.0, "a message past maxReceiveMaximum (%s)" % what)
    with s.b as b:
        old, got = connect("old")
        check_eq(got, (60, 100000, 600), "CONNACK limits before")
        mark = b.log_mark()
        s.write_broker(clients=new_limits)
        b.signal(signal.SIGHUP)
        reload_ok(b, mark, "new client limits")
        new, got = connect("new")
        check_eq(got, (30, 50000, 300), "CONNACK limits after the reload")
        in_flight(old, "old", 100)
        in_flight(new, "new", 50)
        old.ping(3)
        big = b"x" * 80000  # between the new limit and the old one
        check(old.publish("limits/old", big, qos=1).rc in (0, 0x10),
              "the old connection keeps its maximum packet size")
        new.send_raw(rq.enc_publish(5, "limits/new", big, qos=1, pid=1))
        r = new.expect_closed(10)
        check(r and r.rc == 0x95, "the new connection: DISCONNECT 0x95 Packet too large: %r" % r)
        old.disconnect()


# ---- authentication and authorization -------------------------------------------------------------

@case(ringmq_only=ONLY)
def authentication_chain_applies_to_new_connects_only():
    """A port's BrokerAuthentication changed by a reload (another Custom server with other
    users, then no authentication at all: its authenticationRef removed): new CONNECTs get the
    new chain at once; a client connected before keeps its connection and its session (its
    subscription still delivers). Removing the reference used to close and reopen the port
    (its clients got DISCONNECT 0x8B)."""
    import authsrv
    import certs
    pw = "ch4in-pw"
    one = authsrv.AuthServer(certs.CertFactory(), {"alice": authsrv.user(pw)},
                             ca_subject="/CN=Chain One CA")
    two = authsrv.AuthServer(certs.CertFactory(), {"bob": authsrv.user(pw)},
                             ca_subject="/CN=Chain Two CA")
    cas = one.ca_configmap("ca-one") + two.ca_configmap("ca-two")

    def chain(srv, ca):
        return authsrv.authn("chain", authsrv.custom_method(srv.url, ca_configmap=ca)) + cas
    port = rq.free_port()
    s = Setup([(port, ["authenticationRef: chain"])], files={"auth.yaml": chain(one, "ca-one")})

    def connect(user, want):
        c = rq.RawClient(port, timeout=10)
        kw = {"username": user, "password": pw} if user else {}
        ack = c.connect(client_id=rq.uniq(user or "anon"), **kw)
        check_eq(ack.rc, want, "CONNACK for %s" % (user or "no credentials"))
        return c
    with s.b as b:
        alice = connect("alice", 0)
        check_eq(alice.subscribe("chain/#", qos=1).codes, [1], "SUBACK")
        connect("bob", 0x86).close()
        connect(None, 0x87).close()
        mark = b.log_mark()
        s.put("auth.yaml", chain(two, "ca-two"))
        b.signal(signal.SIGHUP)
        reload_ok(b, mark, "the chain's Custom server changed")
        connect("alice", 0x86).close()
        bob = connect("bob", 0)
        check_eq(bob.publish("chain/1", b"one", qos=1).rc, 0, "PUBACK")
        p = alice.recv_publish(timeout=5)
        check_eq((p.topic, p.payload), ("chain/1", b"one"), "alice, connected under the old "
                 "chain, still gets her subscription's messages")
        mark = b.log_mark()
        s.write_listeners([(port, [])])  # no authentication on the port any more
        b.signal(signal.SIGHUP)
        reload_ok(b, mark, "authentication removed")
        check(re.search(r"reload: port 127\.0\.0\.1:%d .*authentication disabled\) kept: its "
                        r"authentication changed" % port, b.log_since(mark)), "logged")
        anon = connect(None, 0)
        anon.publish("chain/2", b"two", qos=1)
        p = alice.recv_publish(timeout=5)
        check_eq((p.topic, p.payload), ("chain/2", b"two"), "alice after the second reload")
        alice.ping(3)
        for c in (anon, bob, alice):
            c.disconnect()


@case(ringmq_only=ONLY)
def refused_reload_is_never_more_permissive():
    """A reload that cannot be completed keeps the running authentication and authorization
    (mosquitto CVE-2017-7652 fell back to allowing everything): the file with the
    BrokerAuthentication unreadable, then the BrokerAuthorization file half-written, then the
    auth server's CA ConfigMap removed: each refused with its cause, counted, and a client
    without credentials is still refused, a denied topic still denied."""
    import authsrv
    import certs
    pw = "n0t-m0re-pw"
    srv = authsrv.AuthServer(certs.CertFactory(), {"alice": authsrv.user(pw)},
                             ca_subject="/CN=Never More CA")
    hdr = "---\napiVersion: mqttbroker.iotoperations.azure.com/v1\n"
    rules = (hdr + "kind: BrokerAuthorization\nmetadata: {name: rules}\nspec:\n"
             "  authorizationPolicies:\n    rules:\n"
             "    - principals: {usernames: [alice]}\n      brokerResources:\n"
             "      - method: Connect\n      - {method: Publish, topics: [\"ok/#\"]}\n")
    port = rq.free_port()
    s = Setup([(port, ["authenticationRef: chain", "authorizationRef: rules"])],
              files={"auth.yaml": authsrv.authn("chain", authsrv.custom_method(srv.url)),
                     "configmaps/auth-ca/ca.crt": srv.ca.pem, "rules.yaml": rules},
              drop_dac=True)

    def still_enforced(what):
        c = rq.RawClient(port, timeout=10)
        check_eq(c.connect(client_id=rq.uniq("anon")).rc, 0x87, what + ": no credentials")
        c.close()
        c = rq.RawClient(port, timeout=10)
        check_eq(c.connect(client_id=rq.uniq("a"), username="alice", password=pw).rc, 0,
                 what + ": alice")
        check(c.publish("ok/1", b"x", qos=1).rc in (0, 0x10), what + ": allowed topic")
        check_eq(c.publish("other/1", b"x", qos=1).rc, 0x87, what + ": denied topic")
        c.disconnect()
    with s.b as b:
        still_enforced("at start")
        path = os.path.join(s.dir, "auth.yaml")
        before, mark = failures(b), b.log_mark()
        os.chmod(path, 0)
        b.signal(signal.SIGHUP)
        refused(b, mark, r".*auth\.yaml: cannot open: Permission denied", "unreadable", before)
        still_enforced("authentication file unreadable")
        os.chmod(path, 0o644)
        before, mark = failures(b), b.log_mark()
        s.put("rules.yaml", rules[:rules.index("brokerResources")] + "brokerRes")
        b.signal(signal.SIGHUP)
        refused(b, mark, r".*rules\.yaml:\d+:\d+: ", "half-written authorization", before)
        still_enforced("authorization file half-written")
        s.put("rules.yaml", rules)
        before, mark = failures(b), b.log_mark()
        shutil.rmtree(os.path.join(s.dir, "configmaps"))
        b.signal(signal.SIGHUP)
        refused(b, mark, r".*auth\.yaml:\d+:\d+: .*auth-ca", "CA ConfigMap removed", before)
        still_enforced("the auth server's CA removed")


# ---- listener ports --------------------------------------------------------------------------------

def shards_seen(b, mark, port):
    return set(re.findall(r"\[shard (\d+)\] 127\.0\.0\.1:\d+ port=%d " % port,
                          b.log_since(mark)))


@case(ringmq_only=ONLY)
def port_added_then_removed():
    """A port added by a reload accepts on every shard; removed, it is closed: its v5 client
    gets DISCONNECT 0x8B, its 3.1.1 client is closed, a client of the other port stays."""
    a, bport = rq.free_port(), rq.free_port()
    s = Setup([(a, [])])
    with s.b as b:
        stay = rq.RawClient(a)
        check_eq(stay.connect(client_id=rq.uniq("stay")).rc, 0, "CONNACK on the kept port")
        check(not rq.port_open(bport), "the new port is not open before the reload")
        mark = b.log_mark()
        s.write_listeners([(a, []), (bport, [])])
        b.signal(signal.SIGHUP)
        reload_ok(b, mark, "port added")
        check(re.search(r"reload: port 127\.0\.0\.1:%d .* added" % bport, b.log_since(mark)),
              "the added port is logged")
        mark = b.log_mark()
        deadline = time.monotonic() + 20
        while len(shards_seen(b, mark, bport)) < 2 and time.monotonic() < deadline:
            can_connect(bport)  # SO_REUSEPORT spreads them by source port
        check_eq(shards_seen(b, mark, bport), {"0", "1"}, "shards accepting on the new port")
        v5, v3 = rq.RawClient(bport, version=5), rq.RawClient(bport, version=4)
        check_eq(v5.connect(client_id=rq.uniq("v5")).rc, 0, "v5 CONNACK")
        check_eq(v3.connect(client_id=rq.uniq("v3")).rc, 0, "3.1.1 CONNACK")
        mark = b.log_mark()
        s.write_listeners([(a, [])])
        b.signal(signal.SIGHUP)
        reload_ok(b, mark, "port removed")
        r5 = v5.expect_closed(10)
        check(r5, "v5 client closed: %r" % r5)
        check_eq(r5.rc, 0x8B, "v5 DISCONNECT reason")
        r3 = v3.expect_closed(10)
        check(r3 and r3.rc is None, "3.1.1 client closed without DISCONNECT: %r" % r3)
        check(port_refuses(bport), "the removed port no longer accepts")
        stay.ping(3)
        can_connect(a)
        stay.disconnect()


@case(ringmq_only=ONLY)
def port_changed_is_remove_and_add():
    """A port whose bind address changes is closed (its client disconnected) and opened on the
    new address; the same change back works too."""
    try:
        probe = socket.socket()
        probe.bind(("127.0.0.2", 0))
        probe.close()
    except OSError:
        raise rq.Skip("127.0.0.2 cannot be bound here")
    a, other = rq.free_port(), rq.free_port()
    s = Setup([(a, []), (other, [])])
    with s.b as b:
        c = rq.RawClient(a)
        check_eq(c.connect(client_id=rq.uniq("moved")).rc, 0, "CONNACK")
        mark = b.log_mark()
        s.write_listeners([(a, ["bindAddress: 127.0.0.2"]), (other, [])])
        b.signal(signal.SIGHUP)
        reload_ok(b, mark, "bind address changed")
        r = c.expect_closed(10)
        check(r and r.rc == 0x8B, "client of the changed port: %r" % r)
        check(port_refuses(a), "127.0.0.1:%d closed" % a)
        c2 = rq.RawClient(a, host="127.0.0.2")
        check_eq(c2.connect(client_id=rq.uniq("new-addr")).rc, 0, "CONNACK on 127.0.0.2")
        c2.disconnect()
        can_connect(other)


@case(ringmq_only=ONLY)
def port_in_use_refuses_the_whole_reload():
    """A new port that cannot be bound (another program holds it) refuses the reload: no other
    part of it applies (another new port is not opened, the log level stays), and it is
    counted."""
    a, taken, extra = rq.free_port(), rq.free_port(), rq.free_port()
    s = Setup([(a, [])], level="info")
    holder = socket.socket()
    holder.bind(("127.0.0.1", taken))
    holder.listen(1)
    rq.on_cleanup(holder.close)
    with s.b as b:
        before = failures(b)
        mark = b.log_mark()
        s.write_broker(level="debug")
        s.write_listeners([(a, []), (extra, []), (taken, [])])
        b.signal(signal.SIGHUP)
        refused(b, mark, r"port %d: cannot listen on 127\.0\.0\.1:%d: (in use by another "
                r"process|Address already in use)" % (taken, taken), "port in use", before)
        check(not rq.port_open(extra), "the other new port was not opened")
        check(not re.search(r"log level now", b.log_since(mark)), "log level not applied")
        can_connect(a)
        holder.close()
        mark = b.log_mark()
        b.signal(signal.SIGHUP)
        reload_ok(b, mark, "once the port is free")
        can_connect(taken)
        can_connect(extra)


@case(ringmq_only=ONLY)
def ports_toggled_while_clients_connect():
    """A port added and removed 30 times while clients keep connecting to it and to a kept port
    (the shards close and open sockets with accepts in flight): the kept port never fails, the
    toggled one ends closed, nothing crashes (the sanitizer build reports leaks and races at
    exit)."""
    import threading
    a, t = rq.free_port(), rq.free_port()
    s = Setup([(a, [])])
    stop = threading.Event()
    errors, done = [], {"a": 0, "t": 0}

    def hammer(port, key, must_work):
        while not stop.is_set():
            try:
                c = rq.RawClient(port, timeout=5)
                rc = c.connect(client_id=rq.uniq(key)).rc
                c.close()
                if rc == 0:
                    done[key] += 1
            except Exception as e:  # noqa: BLE001
                if must_work:
                    errors.append(repr(e))
                time.sleep(0.01)

    with s.b as b:
        th = [threading.Thread(target=hammer, args=(a, "a", True)),
              threading.Thread(target=hammer, args=(t, "t", False))]
        for x in th:
            x.start()
        try:
            for i in range(30):
                mark = b.log_mark()
                s.write_listeners([(a, []), (t, [])] if i % 2 == 0 else [(a, [])])
                b.signal(signal.SIGHUP)
                reload_ok(b, mark, "toggle %d" % i)
                time.sleep(0.05)
        finally:
            stop.set()
            for x in th:
                x.join(30)
        check(not errors, "the kept port failed: %s" % errors[:3])
        check(done["a"] > 0 and done["t"] > 0, "clients got through: %r" % done)
        check(port_refuses(t), "the toggled port ends closed")
        can_connect(a)


@case(ringmq_only=ONLY)
def reload_disconnects_the_clients_of_a_port():
    """The mechanism a changed BrokerAuthorization uses (here driven by the test hook
    RINGMQ_TEST_RELOAD_KICK=PORT): each reload disconnects the clients connected to that port
    before it, v5 with DISCONNECT 0x87 and a reason string, 3.1.1 closed; the other port's
    clients stay; clients connecting afterwards are let in."""
    a, other = rq.free_port(), rq.free_port()
    os.environ["RINGMQ_TEST_RELOAD_KICK"] = str(a)
    try:
        s = Setup([(a, []), (other, [])])
    finally:
        del os.environ["RINGMQ_TEST_RELOAD_KICK"]
    with s.b as b:
        clients = [rq.RawClient(a, version=5) for _ in range(6)]
        v3 = rq.RawClient(a, version=4)
        stay = rq.RawClient(other)
        for c in clients + [v3, stay]:
            check_eq(c.connect(client_id=rq.uniq("k")).rc, 0, "CONNACK")
        mark = b.log_mark()
        b.signal(signal.SIGHUP)
        reload_ok(b, mark, "kick")
        for c in clients:
            r = c.expect_closed(10)
            check(r and r.rc == 0x87, "v5 client of the port: %r" % r)
            why = r.disconnect.props.get("reason_string", "")
            check("authorization" in why, "reason string %r" % why)
        r = v3.expect_closed(10)
        check(r and r.rc is None, "3.1.1 client closed: %r" % r)
        stay.ping(3)
        after = rq.RawClient(a)
        check_eq(after.connect(client_id=rq.uniq("after")).rc, 0, "CONNACK after the reload")
        after.ping(3)
        stay.disconnect()
        after.disconnect()


@case(ringmq_only=ONLY)
def mounted_config_dir_data_swap_adds_a_port():
    """The configuration directory itself mounted from a ConfigMap (listeners.yaml a symlink
    through ..data): the kubelet's ..data swap is noticed without SIGHUP and its new port
    opens."""
    a, new = rq.free_port(), rq.free_port()
    s = Setup([(a, [])], mounted=True)
    with s.b as b:
        check(os.path.islink(os.path.join(s.dir, "listeners.yaml")), "mounted the kubelet's way")
        mark = b.log_mark()
        s.write_listeners([(a, []), (new, [])])
        reload_ok(b, mark, "..data swap of the config dir")
        can_connect(new)
        can_connect(a)


def serial(cert):
    return open(cert.cert, "rb").read()


def wait_serial(port, root, want, timeout=5.0):
    """The certificate (PEM bytes compared by DER) the port serves once it is want's."""
    import ssl
    deadline = time.monotonic() + timeout
    while True:
        ctx = rq.tls_context(cafile=root.cert)
        c = rq.RawClient(port, tls=ctx, server_hostname="localhost")
        der = c.sock.getpeercert(binary_form=True)
        c.close()
        got = ssl.DER_cert_to_PEM_cert(der).encode()
        if _der(got) == _der(serial(want)) or time.monotonic() > deadline:
            return serial(want) if _der(got) == _der(serial(want)) else got
        time.sleep(0.2)


def _der(pem):
    import ssl
    text = pem.decode()
    first = text[text.index("-----BEGIN"):text.index("-----END")]
    first += text[text.index("-----END"):].split("\n", 1)[0]
    return ssl.PEM_cert_to_DER_cert(first)


if __name__ == "__main__":
    rq.run(timeout=300)
