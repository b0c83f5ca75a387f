"""TLS for Python jobs under WASI: vane's replacement of the ssl module.

CPython for WASI has no _ssl (no OpenSSL), so the stdlib's ssl.py cannot be
imported, and with it neither HTTPS in http.client nor in urllib.request.
build.sh installs this file as the stdlib's ssl.py. A handshake is made by
vane in the host, on the connection it already holds for the socket
(vane_net.py), with Go's crypto/tls: the peer's chain is verified against
the CAs a context trusts, as in CPython: vane's (the machine's and the
operator's --ca-file) once load_default_certs or set_default_verify_paths
ran (create_default_context runs it when given no CA of its own), and any
the job loads with load_verify_locations; its name against
server_hostname when check_hostname is on. Server-side TLS, client
certificates and memory BIOs are not available.
"""

import base64
import enum
import errno
import json
import os
from collections import namedtuple

import socket as _socket
import vane_net as _net

OPENSSL_VERSION = "OpenSSL 3.0.0 compatible (vane: Go crypto/tls in the host)"
OPENSSL_VERSION_INFO = (3, 0, 0, 0, 0)
OPENSSL_VERSION_NUMBER = 0x30000000
_OPENSSL_API_VERSION = OPENSSL_VERSION_INFO

HAS_SNI = True
HAS_ALPN = True
HAS_NPN = False
HAS_ECDH = True
HAS_NEVER_CHECK_COMMON_NAME = True
HAS_SSLv2 = HAS_SSLv3 = HAS_TLSv1 = HAS_TLSv1_1 = False
HAS_TLSv1_2 = HAS_TLSv1_3 = True
CHANNEL_BINDING_TYPES = []


class SSLError(OSError):
    """A TLS failure."""

    @property
    def library(self):
        return "SSL"

    @property
    def reason(self):
        return self.strerror


class SSLZeroReturnError(SSLError):
    pass


class SSLWantReadError(SSLError):
    pass


class SSLWantWriteError(SSLError):
    pass


class SSLSyscallError(SSLError):
    pass


class SSLEOFError(SSLError):
    pass


class SSLCertVerificationError(SSLError, ValueError):
    verify_code = 1
    verify_message = "certificate verify failed"


CertificateError = SSLCertVerificationError
socket_error = OSError


class _SSLMethod(enum.IntEnum):
    PROTOCOL_TLS = 2
    PROTOCOL_TLS_CLIENT = 16
    PROTOCOL_TLS_SERVER = 17


PROTOCOL_TLS = PROTOCOL_SSLv23 = _SSLMethod.PROTOCOL_TLS
PROTOCOL_TLS_CLIENT = _SSLMethod.PROTOCOL_TLS_CLIENT
PROTOCOL_TLS_SERVER = _SSLMethod.PROTOCOL_TLS_SERVER


class VerifyMode(enum.IntEnum):
    CERT_NONE = 0
    CERT_OPTIONAL = 1
    CERT_REQUIRED = 2


CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED = VerifyMode.CERT_NONE, VerifyMode.CERT_OPTIONAL, VerifyMode.CERT_REQUIRED


class VerifyFlags(enum.IntFlag):
    VERIFY_DEFAULT = 0
    VERIFY_CRL_CHECK_LEAF = 0x4
    VERIFY_CRL_CHECK_CHAIN = 0xC
    VERIFY_X509_STRICT = 0x20
    VERIFY_X509_PARTIAL_CHAIN = 0x80000
    VERIFY_ALLOW_PROXY_CERTS = 0x40
    VERIFY_X509_TRUSTED_FIRST = 0x8000


globals().update(VerifyFlags.__members__)


class Options(enum.IntFlag):
    OP_ALL = 0x80000054
    OP_NO_SSLv2 = 0
    OP_NO_SSLv3 = 0x2000000
    OP_NO_TLSv1 = 0x4000000
    OP_NO_TLSv1_1 = 0x10000000
    OP_NO_TLSv1_2 = 0x8000000
    OP_NO_TLSv1_3 = 0x20000000
    OP_NO_COMPRESSION = 0x20000
    OP_CIPHER_SERVER_PREFERENCE = 0x400000
    OP_SINGLE_DH_USE = 0
    OP_SINGLE_ECDH_USE = 0
    OP_NO_TICKET = 0x4000
    OP_NO_RENEGOTIATION = 0x40000000
    OP_ENABLE_MIDDLEBOX_COMPAT = 0x100000
    OP_IGNORE_UNEXPECTED_EOF = 0x80
    OP_LEGACY_SERVER_CONNECT = 0x4


globals().update(Options.__members__)


class TLSVersion(enum.IntEnum):
    MINIMUM_SUPPORTED = -2
    SSLv3 = 0x300
    TLSv1 = 0x301
    TLSv1_1 = 0x302
    TLSv1_2 = 0x303
    TLSv1_3 = 0x304
    MAXIMUM_SUPPORTED = -1


class _ASN1Object(namedtuple("_ASN1Object", "nid shortname longname oid")):
    pass


class Purpose(_ASN1Object, enum.Enum):
    SERVER_AUTH = _ASN1Object(129, "serverAuth", "TLS Web Server Authentication", "1.3.6.1.5.5.7.3.1")
    CLIENT_AUTH = _ASN1Object(130, "clientAuth", "TLS Web Client Authentication", "1.3.6.1.5.5.7.3.2")


DefaultVerifyPaths = namedtuple("DefaultVerifyPaths",
                                "cafile capath openssl_cafile_env openssl_cafile openssl_capath_env openssl_capath")


def get_default_verify_paths():
    return DefaultVerifyPaths(None, None, "SSL_CERT_FILE", None, "SSL_CERT_DIR", None)


PEM_HEADER = "-----BEGIN CERTIFICATE-----"
PEM_FOOTER = "-----END CERTIFICATE-----"


def DER_cert_to_PEM_cert(der_cert_bytes):
    f = base64.standard_b64encode(der_cert_bytes).decode("ascii")
    lines = [f[i:i + 64] for i in range(0, len(f), 64)]
    return PEM_HEADER + "\n" + "\n".join(lines) + "\n" + PEM_FOOTER + "\n"


def PEM_cert_to_DER_cert(pem_cert_string):
    if not pem_cert_string.startswith(PEM_HEADER):
        raise ValueError("Invalid PEM encoding; must start with %s" % PEM_HEADER)
    if not pem_cert_string.strip().endswith(PEM_FOOTER):
        raise ValueError("Invalid PEM encoding; must end with %s" % PEM_FOOTER)
    d = pem_cert_string.strip()[len(PEM_HEADER):-len(PEM_FOOTER)]
    return base64.decodebytes(d.encode("ASCII", "strict"))


def RAND_bytes(n):
    return os.urandom(n)


def RAND_status():
    return True


def RAND_add(string, entropy):
    pass


class SSLContext:
    """A client context. It trusts vane's CAs once load_default_certs ran,
    and what load_verify_locations adds."""

    sslsocket_class = None  # set below
    sslobject_class = None

    def __init__(self, protocol=None, *args, **kwargs):
        if protocol is None:
            protocol = PROTOCOL_TLS
        self.protocol = _SSLMethod(protocol)
        client = self.protocol == PROTOCOL_TLS_CLIENT
        self._verify_mode = CERT_REQUIRED if client else CERT_NONE
        self._check_hostname = client
        self.options = Options.OP_ALL | Options.OP_NO_SSLv3 | Options.OP_NO_COMPRESSION
        self.verify_flags = VerifyFlags.VERIFY_X509_TRUSTED_FIRST
        self.minimum_version = TLSVersion.MINIMUM_SUPPORTED
        self.maximum_version = TLSVersion.MAXIMUM_SUPPORTED
        self.post_handshake_auth = None
        self.keylog_filename = None
        self.sni_callback = None
        self.hostname_checks_common_name = False
        self.security_level = 2
        self._ca_pem = []
        self._default_certs = False
        self._alpn = []

    @property
    def verify_mode(self):
        return self._verify_mode

    @verify_mode.setter
    def verify_mode(self, value):
        value = VerifyMode(value)
        if value == CERT_NONE and self._check_hostname:
            raise ValueError("Cannot set verify_mode to CERT_NONE when check_hostname is enabled.")
        self._verify_mode = value

    @property
    def check_hostname(self):
        return self._check_hostname

    @check_hostname.setter
    def check_hostname(self, value):
        value = bool(value)
        if value and self._verify_mode == CERT_NONE:
            self._verify_mode = CERT_REQUIRED
        self._check_hostname = value

    def load_default_certs(self, purpose=Purpose.SERVER_AUTH):
        self._default_certs = True  # vane's trusted CAs

    def set_default_verify_paths(self):
        self._default_certs = True

    def load_verify_locations(self, cafile=None, capath=None, cadata=None):
        if cafile is None and capath is None and cadata is None:
            raise TypeError("cafile, capath and cadata cannot be all omitted")
        if cafile is not None:
            with open(cafile, "rb") as f:
                self._ca_pem.append(f.read().decode("ascii", "replace"))
        if capath is not None:
            for name in sorted(os.listdir(capath)):
                path = os.path.join(capath, name)
                if os.path.isfile(path):
                    with open(path, "rb") as f:
                        self._ca_pem.append(f.read().decode("ascii", "replace"))
        if cadata is not None:
            if isinstance(cadata, str):
                self._ca_pem.append(cadata)
            else:
                self._ca_pem.append(DER_cert_to_PEM_cert(bytes(cadata)))
        # The same file loaded again adds nothing (and must not grow the
        # handshake's CA data).
        self._ca_pem = list(dict.fromkeys(self._ca_pem))

    def load_cert_chain(self, certfile, keyfile=None, password=None):
        raise SSLError(errno.EOPNOTSUPP, "vane: client certificates are not available to jobs yet")

    def set_ciphers(self, ciphers):
        pass  # Go's crypto/tls chooses among its secure suites

    def get_ciphers(self):
        return []

    def set_alpn_protocols(self, protocols):
        for p in protocols:
            if not p or len(p) > 255 or "," in p or any(c.isspace() for c in p):
                raise SSLError(errno.EINVAL, "invalid ALPN protocol %r" % (p,))
        self._alpn = list(protocols)

    def set_npn_protocols(self, protocols):
        pass

    def set_ecdh_curve(self, name):
        pass

    def load_dh_params(self, path):
        pass

    def get_ca_certs(self, binary_form=False):
        return []

    def cert_store_stats(self):
        return {"x509_ca": 0, "crl": 0, "x509": 0}

    def session_stats(self):
        return {}

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, suppress_ragged_eofs=True,
                    server_hostname=None, session=None):
        if server_side or self.protocol == PROTOCOL_TLS_SERVER:
            raise SSLError(errno.EOPNOTSUPP, "vane: jobs cannot accept TLS connections")
        if not isinstance(sock, _net.socket):
            raise TypeError("vane: only a socket of this job can be wrapped")
        if self._check_hostname and not server_hostname:
            raise ValueError("check_hostname requires server_hostname")
        return SSLSocket._create(sock, self, server_hostname, do_handshake_on_connect, suppress_ragged_eofs)

    def wrap_bio(self, *args, **kwargs):
        raise SSLError(errno.EOPNOTSUPP, "vane: memory BIOs are not available to jobs")

    def _verify_level(self):
        if self._verify_mode == CERT_NONE:
            return 0
        return 2 if self._check_hostname else 1


class SSLSocket(_net.socket):
    """A socket whose connection vane has wrapped in TLS."""

    @classmethod
    def _create(cls, sock, context, server_hostname, do_handshake_on_connect, suppress_ragged_eofs):
        self = cls.__new__(cls)
        self.__dict__.update(sock.__dict__)
        self._io_refs = 0  # the plain socket's files (a proxy tunnel's) stay its own
        # The connection is now this object's: the plain socket must not
        # close it.
        sock._fd, sock._peer, sock._closed = -1, None, True
        if self._fd >= 0:
            _net._by_fd[self._fd] = self
        self._context = context
        self.server_hostname = server_hostname
        self.server_side = False
        self.do_handshake_on_connect = do_handshake_on_connect
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self._session = None
        self._sslobj = None
        if self._fd >= 0 and do_handshake_on_connect:
            try:
                self.do_handshake()
            except BaseException:
                self.close()
                raise
        return self

    @property
    def context(self):
        return self._context

    @property
    def session(self):
        return None

    @property
    def session_reused(self):
        return False

    def connect(self, address):
        super().connect(address)
        _net._by_fd[self._fd] = self
        if self.do_handshake_on_connect:
            self.do_handshake()

    def do_handshake(self, block=False):
        ctx = self._context
        name = self.server_hostname or "-"
        alpn = ",".join(ctx._alpn) or "-"
        ca = "".join(p if p.endswith("\n") else p + "\n" for p in ctx._ca_pem).encode("ascii", "replace")
        answer = self._command(b"T %d %d %d %s %s %d\n" % (_net._timeout_ms(self._timeout), ctx._verify_level(),
                                                            1 if ctx._default_certs else 0,
                                                            name.encode("idna"), alpn.encode(), len(ca)), ca)
        if answer[:1] != b"+":
            if answer[:1] == b"t":
                raise TimeoutError("_ssl.c:990: The handshake operation timed out")
            _net._fail(answer)
        self._sslobj = json.loads(answer[1:])

    def _check_connected(self):
        if self._sslobj is None:
            raise ValueError("the TLS handshake has not been done")

    def getpeercert(self, binary_form=False):
        self._check_connected()
        if binary_form:
            der = self._sslobj.get("der")
            return base64.b64decode(der) if der else None
        cert = self._sslobj.get("cert")
        if not cert:
            return {}
        return {
            "subject": tuple(((k, v),) for k, v in cert.get("subject") or []),
            "issuer": tuple(((k, v),) for k, v in cert.get("issuer") or []),
            "version": 3,
            "serialNumber": cert.get("serial", ""),
            "notBefore": cert.get("not_before", ""),
            "notAfter": cert.get("not_after", ""),
            "subjectAltName": tuple((k, v) for k, v in cert.get("san") or []),
        }

    def cipher(self):
        if self._sslobj is None:
            return None
        return (self._sslobj["cipher"], self._sslobj["version"], 128)

    def shared_ciphers(self):
        return None

    def version(self):
        return None if self._sslobj is None else self._sslobj["version"]

    def selected_alpn_protocol(self):
        return None if self._sslobj is None else (self._sslobj.get("alpn") or None)

    def selected_npn_protocol(self):
        return None

    def compression(self):
        return None

    def pending(self):
        return 0

    def get_channel_binding(self, cb_type="tls-unique"):
        raise ValueError("vane: channel bindings are not available")

    def read(self, len=1024, buffer=None):
        if buffer is not None:
            return self.recv_into(buffer, len)
        return self.recv(len)

    def write(self, data):
        return self.send(data)

    def unwrap(self):
        raise SSLError(errno.EOPNOTSUPP, "vane: a TLS connection cannot be unwrapped")

    def verify_client_post_handshake(self):
        raise SSLError(errno.EOPNOTSUPP, "vane: post-handshake authentication is not available")


SSLContext.sslsocket_class = SSLSocket


class SSLObject:
    def __init__(self, *args, **kwargs):
        raise TypeError("vane: memory BIOs are not available to jobs")


class MemoryBIO:
    def __init__(self, *args, **kwargs):
        raise TypeError("vane: memory BIOs are not available to jobs")


class SSLSession:
    pass


def create_default_context(purpose=Purpose.SERVER_AUTH, *, cafile=None, capath=None, cadata=None):
    if purpose != Purpose.SERVER_AUTH:
        raise SSLError(errno.EOPNOTSUPP, "vane: jobs cannot accept TLS connections")
    context = SSLContext(PROTOCOL_TLS_CLIENT)
    if cafile or capath or cadata:
        context.load_verify_locations(cafile, capath, cadata)
    else:
        context.load_default_certs(purpose)
    return context


def _create_unverified_context(protocol=None, *, cert_reqs=CERT_NONE, check_hostname=False,
                               purpose=Purpose.SERVER_AUTH, certfile=None, keyfile=None,
                               cafile=None, capath=None, cadata=None):
    context = SSLContext(protocol or PROTOCOL_TLS_CLIENT)
    context.check_hostname = check_hostname
    context.verify_mode = cert_reqs
    if certfile or keyfile:
        context.load_cert_chain(certfile, keyfile)
    if cafile or capath or cadata:
        context.load_verify_locations(cafile, capath, cadata)
    elif context.verify_mode != CERT_NONE:
        context.load_default_certs(purpose)
    return context


_create_default_https_context = create_default_context
_create_stdlib_context = _create_unverified_context


def wrap_socket(sock, keyfile=None, certfile=None, server_side=False, cert_reqs=CERT_NONE,
                ssl_version=PROTOCOL_TLS, ca_certs=None, do_handshake_on_connect=True,
                suppress_ragged_eofs=True, ciphers=None):
    context = SSLContext(ssl_version)
    context.check_hostname = False
    context.verify_mode = cert_reqs
    if ca_certs:
        context.load_verify_locations(ca_certs)
    else:
        context.load_default_certs()
    return context.wrap_socket(sock, server_side=server_side, do_handshake_on_connect=do_handshake_on_connect,
                               suppress_ragged_eofs=suppress_ragged_eofs)


def get_server_certificate(addr, ssl_version=PROTOCOL_TLS_CLIENT, ca_certs=None, timeout=_socket._GLOBAL_DEFAULT_TIMEOUT):
    host, port = addr
    context = _create_unverified_context(ssl_version, cafile=ca_certs)
    with _socket.create_connection(addr, timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=host) as ssock:
            return DER_cert_to_PEM_cert(ssock.getpeercert(True))
