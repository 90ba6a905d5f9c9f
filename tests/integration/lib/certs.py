"""certs: X.509 certificates for the TLS / X.509 integration tests, made at test time with the
openssl command line tool in a temporary directory.

    f = CertFactory()                             # rqtest.Skip when openssl is missing
    root = f.ca("/C=US/OU=Engineering/CN=Contoso Root CA Cert", alg="ec")
    inter = f.ca("/CN=Contoso Intermediate CA", issuer=root)
    leaf = f.client("/CN=smart-fan", issuer=inter, alg="rsa", not_after=time.time() + 5)
    server = f.server(inter)                            # CN=localhost, SANs localhost, 127.0.0.1

Every certificate is an X.509 v3 certificate signed with SHA-256. Subjects are given the way
`openssl -subj` takes them: least specific RDN first, as they are stored ("/C=US/.../CN=x").

Every signature is made by `openssl ca` with a generated minimal configuration, because it is the
tool of OpenSSL 3.0 (Debian 12) that takes an explicit -startdate / -enddate (`openssl x509`
has no -not_before / -not_after before 3.4); that is how expired, not yet valid and
about-to-expire certificates are made. Roots are self-signed by `openssl ca -selfsign`.

Extensions:
  - CA certificates carry basicConstraints=critical,CA:TRUE and
    keyUsage=critical,keyCertSign,cRLSign. wolfSSL refuses an intermediate CA whose keyUsage
    lacks keyCertSign (and a CA without basicConstraints CA:TRUE), so a chain built without them
    fails verification for a reason unrelated to what a test checks.
  - Leaves are v3 with basicConstraints=CA:FALSE, keyUsage and extendedKeyUsage (clientAuth or
    serverAuth): wolfSSL rejects v1 certificates.
"""

import calendar
import os
import shutil
import subprocess
import tempfile
import time

import rqtest as rq

OPENSSL = shutil.which("openssl")

_CA_EXT = """[ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

_CLIENT_EXT = """[ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

_SERVER_EXT = """[ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = %s
"""

# `openssl ca` needs a database, a serial file and a directory for copies of what it issues.
# policy_any + -preserveDN: every RDN of the request is kept, in the request's order.
_CA_CNF = """[ca]
default_ca = ca_any

[ca_any]
dir = {dir}
database = {dir}/index.txt
serial = {dir}/serial
new_certs_dir = {dir}/issued
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none

[policy_any]
commonName = optional

[req]
distinguished_name = req_dn
prompt = no

[req_dn]
CN = unused
"""


def openssl_available():
    return OPENSSL is not None


def asn1_time(t):
    """Unix time -> the YYMMDDHHMMSSZ form `openssl ca` takes (UTCTime, years 1950..2049)."""
    return time.strftime("%y%m%d%H%M%SZ", time.gmtime(int(t)))


class Cert:
    """One certificate and its key, as files and as PEM text.

    .cert   path of the certificate alone
    .key    path of the private key (PEM, PKCS#8)
    .chain  path of the certificate followed by its issuers up to, not including, the root
            (what a TLS peer sends, and what tls.crt holds)
    .issuer the issuing Cert (None for a root)
    .subject the -subj string, .cn its common name, .alg "ec" or "rsa"
    .not_before / .not_after Unix times (seconds) read back from the certificate"""

    def __init__(self, factory, name, subject, alg, issuer):
        self.factory = factory
        self.name = name
        self.subject = subject
        self.alg = alg
        self.issuer = issuer
        self.dir = os.path.join(factory.dir, name)
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.chain = os.path.join(self.dir, "chain.pem")
        self.cn = None
        for part in subject.strip("/").split("/"):
            k, _, v = part.partition("=")
            if k.strip().upper() == "CN":
                self.cn = v
        self.not_before = self.not_after = None

    @property
    def pem(self):
        return _read(self.cert)

    @property
    def key_pem(self):
        return _read(self.key)

    @property
    def chain_pem(self):
        return _read(self.chain)

    def __repr__(self):
        return "<Cert %s %s %s>" % (self.name, self.alg, self.subject)


def _read(path):
    with open(path) as f:
        return f.read()


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


class CertFactory:
    """Makes keys and certificates in one temporary directory (removed at the test's end)."""

    def __init__(self, base=None):
        if not openssl_available():
            raise rq.Skip("openssl command line tool not found")
        self.dir = tempfile.mkdtemp(prefix="rqcerts-", dir=base)
        rq.on_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self._names = set()
        self._serial = 0x1000

    # --- plumbing ----------------------------------------------------------------------------

    def _run(self, *args, stdin=None):
        r = subprocess.run([OPENSSL] + list(args), input=stdin, capture_output=True, timeout=60,
                           text=True)
        if r.returncode != 0:
            raise AssertionError("openssl %s failed (%d): %s" % (args[0], r.returncode,
                                                                 (r.stderr or r.stdout)[-1500:]))
        return r.stdout

    def _new(self, name, subject, alg, issuer):
        if name is None:
            name = "c%d" % len(self._names)
        if name in self._names:
            raise ValueError("certificate name %r used twice" % name)
        self._names.add(name)
        c = Cert(self, name, subject, alg, issuer)
        os.makedirs(os.path.join(c.dir, "issued"))
        _write(os.path.join(c.dir, "index.txt"), "")
        self._serial += 1
        _write(os.path.join(c.dir, "serial"), "%X\n" % self._serial)
        _write(os.path.join(c.dir, "ca.cnf"), _CA_CNF.format(dir=c.dir))
        return c

    def _genkey(self, c):
        if c.alg == "ec":
            self._run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", c.key)
        elif c.alg == "rsa":
            self._run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                      "-out", c.key)
        else:
            raise ValueError("alg must be 'ec' or 'rsa', not %r" % c.alg)

    def _sign(self, c, ext, not_before, not_after):
        """CSR for c, then `openssl ca` with c.issuer's key (or c's own for a root)."""
        csr = os.path.join(c.dir, "req.csr")
        self._run("req", "-new", "-config", os.path.join(c.dir, "ca.cnf"), "-key", c.key,
                  "-subj", c.subject, "-out", csr)
        extfile = _write(os.path.join(c.dir, "ext.cnf"), ext)
        if not_before is None:
            not_before = time.time() - 3600
        if not_after is None:
            not_after = time.time() + 30 * 86400
        signer = c.issuer or c
        args = ["ca", "-batch", "-notext", "-preserveDN", "-config",
                os.path.join(signer.dir, "ca.cnf"), "-keyfile", signer.key, "-in", csr,
                "-out", c.cert, "-extfile", extfile, "-extensions", "ext",
                "-startdate", asn1_time(not_before), "-enddate", asn1_time(not_after)]
        if c.issuer is None:
            args.append("-selfsign")
        else:
            args += ["-cert", signer.cert]
        self._run(*args)
        chain = _read(c.cert)
        up = c.issuer
        while up is not None and up.issuer is not None:  # intermediates, not the root
            chain += _read(up.cert)
            up = up.issuer
        _write(c.chain, chain)
        c.not_before = self._date(c.cert, "-startdate")
        c.not_after = self._date(c.cert, "-enddate")
        return c

    def _date(self, path, which):
        out = self._run("x509", "-in", path, "-noout", which).strip()
        value = out.split("=", 1)[1]  # e.g. "Jan  2 03:04:05 2025 GMT"
        return calendar.timegm(time.strptime(value, "%b %d %H:%M:%S %Y GMT"))

    # --- what tests use ----------------------------------------------------------------------

    def ca(self, subject, issuer=None, alg="ec", name=None, not_before=None, not_after=None):
        """A CA certificate: self-signed root when issuer is None, else an intermediate."""
        c = self._new(name, subject, alg, issuer)
        self._genkey(c)
        if not_after is None:
            not_after = time.time() + 365 * 86400
        return self._sign(c, _CA_EXT, not_before, not_after)

    def client(self, subject, issuer, alg="ec", name=None, not_before=None, not_after=None):
        """A client (TLS clientAuth) leaf. Default validity: from an hour ago for 30 days."""
        c = self._new(name, subject, alg, issuer)
        self._genkey(c)
        return self._sign(c, _CLIENT_EXT, not_before, not_after)

    def server(self, issuer, subject="/CN=localhost", alg="ec", name=None,
               san="DNS:localhost,IP:127.0.0.1"):
        """A server (TLS serverAuth) leaf for 127.0.0.1 / localhost."""
        c = self._new(name, subject, alg, issuer)
        self._genkey(c)
        return self._sign(c, _SERVER_EXT % san, None, None)

    def bundle(self, name, *certs):
        """A file holding the PEM of the given certificates, in order; returns its path."""
        return _write(os.path.join(self.dir, name), "".join(c.pem for c in certs))

    def combined(self, cert, name=None):
        """A file with cert's chain (cert + intermediates) followed by its key, as some clients
        want; returns its path."""
        return _write(os.path.join(self.dir, name or cert.name + "-combined.pem"),
                      cert.chain_pem + cert.key_pem)


# --- YAML documents holding certificates ---------------------------------------------------------

def _block(text, indent):
    pad = " " * indent
    return "\n".join(pad + line if line else "" for line in text.rstrip("\n").split("\n"))


def secret_yaml(name, cert_pem, key_pem):
    """A kubernetes.io/tls Secret document (stringData tls.crt / tls.key as block scalars)."""
    return ("---\napiVersion: v1\nkind: Secret\nmetadata: {name: %s}\ntype: kubernetes.io/tls\n"
            "stringData:\n  tls.crt: |\n%s\n  tls.key: |\n%s\n"
            % (name, _block(cert_pem, 4), _block(key_pem, 4)))


def configmap_yaml(name, entries):
    """A ConfigMap document; entries: {key: text}, each a block scalar under data."""
    out = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata:\n" % name
    for k, v in entries.items():
        out += "  %s: |\n%s\n" % (k, _block(v, 4))
    return out
