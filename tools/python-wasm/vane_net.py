"""TCP sockets for Python jobs under WASI, through vane's network file.

WASI gives a guest no socket it can connect, so this module replaces the
socket module's socket class, create_connection and getaddrinfo with ones
that reach the outside through /script/_vane_net (runtime/netfile in vane):
each open of that file is one TCP connection that vane dials from the host
under the job's egress policy, and TLS (ssl.py here, which replaces the
stdlib's) is a handshake vane makes on it. vane_wrapper imports this module
in vane_init, so the snapshot holds the patched socket module and user code
(urllib.request, http.client, socket.create_connection) uses it unchanged.

Names are resolved by vane when connecting, where the policy checks the
address actually dialed: getaddrinfo answers the name itself, and
gethostbyname is not available.

A socket's descriptor is the virtual file, which WASI's poll reports ready
at once; select.select, select.poll and selectors' PollSelector are
replaced by ones that ask vane whether a vane socket has data (the P
command) and pass other descriptors on.
"""

import errno
import os
import select as _select_module
import selectors as _selectors_module
import socket as _socket_module
import sys
import time
import weakref

_NET_FILE = "/script/_vane_net"
_MAX_CHUNK = 64 << 10
_MAX_OPEN = 64  # netfile.MaxOpen
_ANSWER_SIZE = 64 << 10

_GLOBAL_DEFAULT_TIMEOUT = _socket_module._GLOBAL_DEFAULT_TIMEOUT
AF_INET = _socket_module.AF_INET
AF_INET6 = _socket_module.AF_INET6
AF_UNSPEC = _socket_module.AF_UNSPEC
SOCK_STREAM = _socket_module.SOCK_STREAM
IPPROTO_TCP = _socket_module.IPPROTO_TCP
_TYPE_FLAGS = getattr(_socket_module, "SOCK_NONBLOCK", 0) | getattr(_socket_module, "SOCK_CLOEXEC", 0)


def _fail(answer, ssl_errors=None):
    """Raises the exception of a failed answer (its kind byte, then the message)."""
    kind, msg = answer[:1], answer[1:].decode("utf-8", "replace")
    if kind == b"p":
        raise PermissionError(errno.EACCES, msg)
    if kind == b"c":
        raise ConnectionRefusedError(errno.ECONNREFUSED, msg)
    if kind == b"t":
        raise TimeoutError("timed out")
    if kind == b"r":
        raise ConnectionResetError(errno.ECONNRESET, msg)
    if kind == b"n":
        raise _socket_module.gaierror(_socket_module.EAI_NONAME, msg)
    if kind in (b"x", b"s"):
        import ssl
        if kind == b"x":
            raise ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: " + msg)
        raise ssl.SSLError(1, msg)
    if not answer:
        raise OSError(errno.EIO, "vane gave no answer to a network command")
    raise OSError(errno.EIO, msg)


def _timeout_ms(timeout):
    if timeout is None:
        return -1
    return max(int(timeout * 1000), 1)


class socket:
    """A TCP client socket whose connection vane holds in the host. It has
    what clients use: connect, send, sendall, recv, recv_into, makefile,
    timeouts, shutdown and close. It cannot bind, listen or accept, and has
    no UDP."""

    def __init__(self, family=AF_INET, type=SOCK_STREAM, proto=0, fileno=None):
        if fileno is not None:
            raise OSError(errno.ENOTSUP, "vane: a job's sockets cannot be made from a file descriptor")
        if family == -1:
            family = AF_INET
        if type == -1:
            type = SOCK_STREAM
        if family not in (AF_INET, AF_INET6, AF_UNSPEC):
            raise OSError(errno.EAFNOSUPPORT, "vane: jobs have TCP over IPv4 and IPv6 only (family %r)" % (family,))
        if type & ~_TYPE_FLAGS != SOCK_STREAM:
            raise OSError(errno.EPROTONOSUPPORT, "vane: jobs have TCP (SOCK_STREAM) sockets only")
        self.family = family
        self.type = SOCK_STREAM
        self.proto = proto or IPPROTO_TCP
        self._fd = -1
        self._timeout = _socket_module.getdefaulttimeout()
        if type & getattr(_socket_module, "SOCK_NONBLOCK", 0):
            self._timeout = 0.0
        self._peer = None
        self._io_refs = 0
        self._closed = False
        self._options = {}

    def __repr__(self):
        state = "closed" if self._closed else ("connected to %r" % (self._peer,) if self._peer else "unconnected")
        return "<vane socket %s>" % state

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()

    def __getstate__(self):
        raise TypeError("cannot pickle a socket")

    # -- the host's answers --

    def _command(self, line, payload=b""):
        if self._fd < 0:
            raise OSError(errno.EBADF if self._closed else errno.ENOTCONN,
                          "the socket is closed" if self._closed else "the socket is not connected")
        os.write(self._fd, line + payload)
        answer = os.read(self._fd, _ANSWER_SIZE)
        while len(answer) % _ANSWER_SIZE == 0 and answer:
            more = os.read(self._fd, _ANSWER_SIZE)
            if not more:
                break
            answer += more
        return answer

    def _blocking_failure(self, answer):
        if answer[:1] == b"t" and self._timeout == 0.0:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        _fail(answer)

    # -- connecting --

    def connect(self, address):
        if self._closed:
            raise OSError(errno.EBADF, "Bad file descriptor")
        if self._fd >= 0:
            raise OSError(errno.EISCONN, "Transport endpoint is already connected")
        host, port = address[0], address[1]
        if isinstance(host, bytes):
            host = host.decode("idna")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise OverflowError("connect(): port must be 0-65535.")
        if ":" in host and not host.startswith("["):
            target = "[%s]:%d" % (host, port)
        else:
            target = "%s:%d" % (host, port)
        if any(c.isspace() for c in target) or len(target) > 1024:
            raise OSError(errno.EINVAL, "invalid address %r" % (host,))
        try:
            self._fd = os.open(_NET_FILE, os.O_RDWR)
        except BlockingIOError:
            raise OSError(getattr(errno, "EMFILE", errno.EAGAIN),
                          "vane: a job may have at most %d connections open at once (close the others)" % _MAX_OPEN) from None
        # A non-blocking connect cannot be finished later (no select on
        # these sockets): it waits for the dial, as a blocking one does.
        timeout = None if self._timeout == 0.0 else self._timeout
        try:
            answer = self._command(b"C %d %s\n" % (_timeout_ms(timeout), target.encode()))
        except BaseException:
            self._release()
            raise
        if answer[:1] != b"+":
            self._release()
            self._blocking_failure(answer)
        self._peer = _parse_peer(answer[1:].decode(), host, port)
        _by_fd[self._fd] = self

    def connect_ex(self, address):
        try:
            self.connect(address)
        except OSError as exc:
            return exc.errno or errno.EIO
        return 0

    def bind(self, address):
        if address[1] == 0 and address[0] in ("", "0.0.0.0", "::"):
            return  # the host picks the source address, as with no bind
        raise OSError(errno.EADDRNOTAVAIL, "vane: a job's sockets cannot bind to an address")

    def listen(self, backlog=0):
        raise OSError(errno.EOPNOTSUPP, "vane: jobs cannot accept connections")

    def accept(self):
        raise OSError(errno.EOPNOTSUPP, "vane: jobs cannot accept connections")

    # -- data --

    def send(self, data, flags=0):
        if flags:
            raise OSError(errno.EOPNOTSUPP, "vane: send flags are not supported")
        data = memoryview(data).cast("B")[:_MAX_CHUNK]
        answer = self._command(b"W %d %d\n" % (_timeout_ms(self._timeout), len(data)), bytes(data))
        if answer[:1] != b"+":
            self._blocking_failure(answer)
        return int(answer[1:])

    def sendall(self, data, flags=0):
        view = memoryview(data).cast("B")
        while view:
            sent = self.send(view, flags)
            view = view[sent:]

    def recv(self, bufsize, flags=0):
        if flags:
            raise OSError(errno.EOPNOTSUPP, "vane: receive flags are not supported")
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        answer = self._command(b"R %d %d\n" % (_timeout_ms(self._timeout), min(bufsize, _MAX_CHUNK)))
        if answer[:1] != b"+":
            self._blocking_failure(answer)
        return answer[1:]

    def recv_into(self, buffer, nbytes=0, flags=0):
        view = memoryview(buffer).cast("B")
        if nbytes <= 0 or nbytes > len(view):
            nbytes = len(view)
        data = self.recv(nbytes, flags)
        view[:len(data)] = data
        return len(data)

    def sendto(self, *args):
        raise OSError(errno.EOPNOTSUPP, "vane: jobs have TCP sockets only")

    def recvfrom(self, bufsize, flags=0):
        return self.recv(bufsize, flags), self._peer

    makefile = _socket_module.socket.makefile
    sendfile = _socket_module.socket.sendfile
    _sendfile_use_send = _socket_module.socket._sendfile_use_send
    _check_sendfile_params = _socket_module.socket._check_sendfile_params
    _sendfile_use_sendfile = _socket_module.socket._sendfile_use_sendfile

    def _decref_socketios(self):
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    # -- state --

    def settimeout(self, value):
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self):
        return self._timeout

    def setblocking(self, flag):
        self._timeout = None if flag else 0.0

    def getblocking(self):
        return self._timeout != 0.0

    @property
    def timeout(self):
        return self._timeout

    def setsockopt(self, level, option, value, optlen=None):
        self._options[(level, option)] = value  # TCP_NODELAY, keep-alive: the host's defaults stand

    def getsockopt(self, level, option, buflen=0):
        return self._options.get((level, option), 0)

    def fileno(self):
        return self._fd

    def getpeername(self):
        if self._peer is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return self._peer

    def getsockname(self):
        return ("::", 0, 0, 0) if self.family == AF_INET6 else ("0.0.0.0", 0)

    def shutdown(self, how):
        answer = self._command(b"S %d\n" % how)
        if answer[:1] != b"+":
            _fail(answer)

    def detach(self):
        raise OSError(errno.EOPNOTSUPP, "vane: a job's socket cannot be detached from its connection")

    def dup(self):
        raise OSError(errno.EOPNOTSUPP, "vane: a job's socket cannot be duplicated")

    def _readable(self, timeout):
        """Whether a recv would not block, waiting at most timeout seconds
        (None: until it would not)."""
        if self._fd < 0:
            return True  # recv raises at once
        answer = self._command(b"P %d\n" % _timeout_ms(timeout))
        return answer != b"+0"

    def _release(self):
        fd, self._fd = self._fd, -1
        if fd >= 0:
            if _by_fd.get(fd) is self:
                del _by_fd[fd]
            os.close(fd)

    def close(self):
        self._closed = True
        if self._io_refs <= 0:
            self._release()

    def __del__(self):
        try:
            self._release()
        except Exception:
            pass


def _parse_peer(text, host, port):
    """The peer's address from vane's answer ("ip:port" or "[ip]:port")."""
    addr, sep, p = text.rpartition(":")
    if not sep:
        return (host, port)
    addr = addr.strip("[]")
    try:
        p = int(p)
    except ValueError:
        return (host, port)
    return (addr, p, 0, 0) if ":" in addr else (addr, p)


def create_connection(address, timeout=_GLOBAL_DEFAULT_TIMEOUT, source_address=None, *, all_errors=False):
    """socket.create_connection: vane resolves the name and tries its
    addresses in turn."""
    host, port = address
    sock = socket(AF_INET6 if ":" in str(host) else AF_INET, SOCK_STREAM)
    if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
        sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


_SERVICES = {"http": 80, "https": 443, "ftp": 21, "ssh": 22, "smtp": 25, "postgres": 5432, "postgresql": 5432,
             "mysql": 3306, "redis": 6379, "amqp": 5672, "ldap": 389, "ldaps": 636, "imap": 143, "imaps": 993}


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    """socket.getaddrinfo without a lookup: vane resolves a name when the
    socket connects (so the policy checks the address dialed). The answer
    carries the name itself as the address."""
    if host is None:
        raise _socket_module.gaierror(_socket_module.EAI_NONAME, "vane: jobs cannot listen, so a host is required")
    if isinstance(host, bytes):
        host = host.decode("idna")
    if port is None:
        port = 0
    elif isinstance(port, (str, bytes)):
        text = port.decode() if isinstance(port, bytes) else port
        if text.isdigit():
            port = int(text)
        elif text in _SERVICES:
            port = _SERVICES[text]
        else:
            raise _socket_module.gaierror(_socket_module.EAI_SERVICE, "Servname not supported for ai_socktype")
    if type not in (0, SOCK_STREAM):
        raise _socket_module.gaierror(_socket_module.EAI_SOCKTYPE, "vane: jobs have TCP sockets only")
    fam = AF_INET6 if ":" in host else AF_INET
    if family not in (0, AF_UNSPEC) and family != fam:
        fam = family
    addr = (host, port, 0, 0) if fam == AF_INET6 else (host, port)
    return [(_socket_module.AddressFamily(fam), _socket_module.SocketKind.SOCK_STREAM, IPPROTO_TCP, "", addr)]


def _no_lookup(*args, **kwargs):
    raise _socket_module.gaierror(_socket_module.EAI_FAIL,
                                  "vane: a job cannot look names up; connect by name and vane resolves it")


def _unsupported(*args, **kwargs):
    raise OSError(errno.EOPNOTSUPP, "vane: not available to jobs")


# The connected vane sockets by descriptor, for select and poll (which are
# given descriptors as often as sockets).
_by_fd = weakref.WeakValueDictionary()


def _vane_socket(obj):
    if isinstance(obj, socket):
        return obj
    try:
        fd = obj if isinstance(obj, int) else obj.fileno()
    except Exception:
        return None
    return _by_fd.get(fd)


_orig_select = _select_module.select
_orig_poll = _select_module.poll
_SLICE = 0.01  # seconds of one round of waits over several vane sockets


def _nothing():
    return False


def _wait(socks, others_ready, timeout):
    """Returns the vane sockets of socks that have data, waiting at most
    timeout seconds (None: no limit) unless others_ready() (a check of the
    other descriptors, which does not block) finds something first."""
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
    while True:
        ready = [s for s in socks if s._readable(0)]
        if ready or others_ready():
            return ready
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return []
        if len(socks) == 1 and others_ready is _nothing:
            return socks if socks[0]._readable(remaining) else []
        round_ = _SLICE if remaining is None else min(_SLICE, remaining)
        if not socks:
            time.sleep(round_)
            continue
        ready = [s for s in socks if s._readable(round_ / len(socks))]
        if ready:
            return ready


def select(rlist, wlist, xlist, timeout=None):
    """select.select with vane sockets: readable when vane says a recv
    would not block, always writable (a send waits in vane)."""
    rlist, wlist, xlist = list(rlist), list(wlist), list(xlist)
    vr = [o for o in rlist if _vane_socket(o) is not None]
    vw = [o for o in wlist if _vane_socket(o) is not None]
    vx = [o for o in xlist if _vane_socket(o) is not None]
    if not (vr or vw or vx):
        return _orig_select(rlist, wlist, xlist, timeout)
    orr = [o for o in rlist if _vane_socket(o) is None]
    ow = [o for o in wlist if _vane_socket(o) is None]
    ox = [o for o in xlist if _vane_socket(o) is None]
    found = [[], [], []]

    def others():
        if orr or ow or ox:
            found[:] = [list(x) for x in _orig_select(orr, ow, ox, 0)]
        return any(found)

    if vw:
        others()
        ready = [o for o in vr if _vane_socket(o)._readable(0)]
        return ready + found[0], vw + found[1], found[2]
    socks = [_vane_socket(o) for o in vr]
    ready = _wait(socks, others if (orr or ow or ox) else _nothing, timeout)
    return [o for o in vr if _vane_socket(o) in ready] + found[0], found[1], found[2]


class _Poll:
    """select.poll with vane sockets (see select)."""

    def __init__(self):
        self._other = _orig_poll()
        self._vane = {}

    @staticmethod
    def _fd(fd):
        return fd if isinstance(fd, int) else fd.fileno()

    def register(self, fd, eventmask=_select_module.POLLIN | _select_module.POLLPRI | _select_module.POLLOUT):
        fd = self._fd(fd)
        if _by_fd.get(fd) is not None:
            self._vane[fd] = eventmask
        else:
            self._other.register(fd, eventmask)

    def modify(self, fd, eventmask):
        fd = self._fd(fd)
        if fd in self._vane:
            self._vane[fd] = eventmask
        else:
            self._other.modify(fd, eventmask)

    def unregister(self, fd):
        fd = self._fd(fd)
        if fd in self._vane:
            del self._vane[fd]
        else:
            self._other.unregister(fd)

    def poll(self, timeout=None):
        if not self._vane:
            return self._other.poll(timeout)
        if timeout is not None and timeout < 0:
            timeout = None
        seconds = None if timeout is None else timeout / 1000
        found = []

        def others():
            found[:] = self._other.poll(0)
            return bool(found)

        out = {}
        for fd, mask in self._vane.items():
            if mask & _select_module.POLLOUT:
                out[fd] = _select_module.POLLOUT
        readers = {fd: _by_fd.get(fd) for fd, mask in self._vane.items()
                   if mask & (_select_module.POLLIN | _select_module.POLLPRI)}
        for fd in [fd for fd, s in readers.items() if s is None]:
            out[fd] = out.get(fd, 0) | _select_module.POLLNVAL
            del readers[fd]
        if out:
            others()
            ready = [s for s in readers.values() if s._readable(0)]
        else:
            ready = _wait(list(readers.values()), others, seconds)
        for fd, s in readers.items():
            if s in ready:
                out[fd] = out.get(fd, 0) | _select_module.POLLIN
        return list(out.items()) + [(fd, ev) for fd, ev in found if fd not in out]


def _patch():
    _select_module.select = select
    _select_module.poll = _Poll
    # Both took the originals when selectors was imported (asyncio's loop
    # uses SelectSelector).
    _selectors_module.SelectSelector._select = staticmethod(select)
    _selectors_module.PollSelector._selector_cls = _Poll
    s = _socket_module
    s.socket = socket
    s.SocketType = socket
    s.create_connection = create_connection
    s.getaddrinfo = getaddrinfo
    for name in ("gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
        setattr(s, name, _no_lookup)
    for name in ("socketpair", "fromfd", "create_server"):
        setattr(s, name, _unsupported)
    s.gethostname = lambda: "vane-job"
    s.getfqdn = lambda name="": name or "vane-job"
    s.has_dualstack_ipv6 = lambda: False
    if not hasattr(s, "SO_KEEPALIVE"):
        s.SO_KEEPALIVE = 9
    if not hasattr(s, "SO_REUSEADDR"):
        s.SO_REUSEADDR = 2


_patch()
