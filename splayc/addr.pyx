"""Addresses and name resolution for the cooperative sockets.

* :func:`error_message` turns a libuv error code into the message LuaSocket gives for it
  (``"closed"``, ``"timeout"``, ``"connection refused"``, ``"address already in use"`` ...), so
  SPLAY applications can compare ``sock.error`` with the strings they know.
* ``fill_sockaddr`` converts an ``(ip or host name, port)`` into a ``sockaddr``. IP literals are
  parsed in C; a host name is resolved with ``uv_getaddrinfo`` — cooperatively (the calling SPLAY
  thread yields) inside a thread, with the blocking resolver outside ``events.run()``.
* :func:`toip`, :func:`tohostname` are the bodies of ``socket.dns``.
"""
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from libc.stdlib cimport malloc, free
from libc.string cimport memset, memcpy

from splayc.uv cimport *
from splayc.hub cimport Hub, Task, get_hub

import socket as _pysocket


cdef str error_message(int err):
    """The LuaSocket message for a (negative) libuv error code (ERR_RESTRICTED: "restricted")."""
    if err == ERR_RESTRICTED:
        return "restricted"
    if err == UV_EOF or err == UV_ECONNRESET or err == UV_ECONNABORTED or err == UV_EPIPE \
            or err == UV_ECANCELED or err == UV_ENOTCONN or err == UV_EBADF:
        return "closed"
    if err == UV_ETIMEDOUT:
        return "timeout"
    if err == UV_ECONNREFUSED:
        return "connection refused"
    if err == UV_EADDRINUSE:
        return "address already in use"
    if err == UV_EISCONN:
        return "already connected"
    if err == UV_EACCES:
        return "permission denied"
    if err == UV_EAI_NONAME or err == UV_EAI_NODATA or err == UV_EAI_FAIL \
            or err == UV_EAI_ADDRFAMILY or err == UV_EAI_FAMILY:
        return "host not found"
    if err == UV_EAI_AGAIN:
        return "temporary failure in name resolution"
    return uv_strerror(err).decode("utf-8", "replace")


cdef int _parse_literal(bytes ip, int port, sockaddr_storage* out) noexcept:
    """0 when ``ip`` is an IPv4/IPv6 literal (``out`` filled), else a negative libuv error."""
    memset(out, 0, sizeof(sockaddr_storage))
    if uv_ip4_addr(ip, port, <sockaddr_in*>out) == 0:
        return 0
    return uv_ip6_addr(ip, port, <sockaddr_in6*>out)


cdef struct ResolveRequest:
    uv_getaddrinfo_t req      # first member: the request pointer is the context pointer
    PyObject* task            # owned reference, released in the callback
    unsigned long token


cdef void _resolved_cb(uv_getaddrinfo_t* req, int status, addrinfo* res) noexcept with gil:
    cdef ResolveRequest* ctx = <ResolveRequest*>req
    cdef Task t = <Task>ctx.task
    cdef list ips = []
    cdef addrinfo* ai = res
    try:
        if status == 0:
            while ai != NULL:
                if ai.ai_family == AF_INET or ai.ai_family == AF_INET6:
                    ips.append(sockaddr_to_tuple(ai.ai_addr)[0])
                ai = ai.ai_next
        t.hub.wake(t, ctx.token, (status, ips))
    finally:
        if res != NULL:
            uv_freeaddrinfo(res)
        Py_DECREF(t)
        free(ctx)


cdef list _resolve(str host):
    """Every address of ``host`` (IPv4 first), or raise LookupError("host not found")."""
    cdef Hub hub = get_hub()
    cdef Task t
    cdef ResolveRequest* ctx
    cdef addrinfo hints
    cdef int err
    cdef bytes bhost = host.encode("idna") if not host.isascii() else host.encode()
    if hub.current is None:
        # Outside events.run() nothing else can run anyway: use the blocking resolver.
        try:
            infos = _pysocket.getaddrinfo(host, None, 0, _pysocket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise LookupError("host not found")
        ips = [info[4][0] for info in infos]
    else:
        ctx = <ResolveRequest*>malloc(sizeof(ResolveRequest))
        if ctx == NULL:
            raise MemoryError()
        memset(&hints, 0, sizeof(hints))
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = SOCK_STREAM
        t = hub.begin_block()
        ctx.task = <PyObject*>t
        ctx.token = t.token
        err = uv_getaddrinfo(hub.loop, &ctx.req, _resolved_cb, bhost, NULL, &hints)
        if err < 0:
            free(ctx)
            raise LookupError(error_message(err))
        Py_INCREF(t)
        status, ips = hub.block(t, -1.0)
        if status < 0:
            raise LookupError(error_message(status))
    if not ips:
        raise LookupError("host not found")
    ips.sort(key=lambda ip: ":" in ip)      # IPv4 first: loopback peers listen on 127.0.0.1
    return ips


# The last IP literal parsed and its address: a node sends to the same peer again and again (urpc
# sends a call and its free message to one address; a reply goes back to the last sender), and
# parsing "127.0.0.1" costs ~450 instructions (encode, inet_pton) against a compare and a copy.
cdef object _last_ip = None
cdef int _last_port = -1
cdef sockaddr_storage _last_addr


cdef int fill_sockaddr(object ip, int port, sockaddr_storage* out) except? -99999:
    """Fill ``out`` for ``ip`` (literal or host name) and ``port``: 0, or a negative libuv error."""
    global _last_ip, _last_port
    cdef bytes bip
    if port == _last_port and (ip is _last_ip or (type(ip) is str and type(_last_ip) is str
                                                  and <str>ip == <str>_last_ip)):
        memcpy(out, &_last_addr, sizeof(sockaddr_storage))
        return 0
    if isinstance(ip, bytes):
        bip = ip
    else:
        bip = str(ip).encode()
    if _parse_literal(bip, port, out) == 0:
        if type(ip) is str or type(ip) is bytes:      # immutable: safe to recognise later
            memcpy(&_last_addr, out, sizeof(sockaddr_storage))
            _last_ip = ip
            _last_port = port
        return 0
    try:
        ips = _resolve(bip.decode())
    except LookupError:
        return UV_EAI_NONAME
    return _parse_literal(ips[0].encode(), port, out)


cdef tuple sockaddr_to_tuple(const sockaddr* sa):
    """``(ip, port)`` of an IPv4 or IPv6 socket address."""
    cdef char name[64]
    if sa.sa_family == AF_INET:
        uv_ip4_name(<const sockaddr_in*>sa, name, sizeof(name))
        return (name.decode(), ntohs((<const sockaddr_in*>sa).sin_port))
    if sa.sa_family == AF_INET6:
        uv_ip6_name(<const sockaddr_in6*>sa, name, sizeof(name))
        return (name.decode(), ntohs((<const sockaddr_in6*>sa).sin6_port))
    return (None, 0)


def toip(host):
    """The first IP address of ``host`` (an IP literal is returned as is), or None if unknown."""
    cdef sockaddr_storage ss
    bhost = host.encode() if isinstance(host, str) else bytes(host)
    if _parse_literal(bhost, 0, &ss) == 0:
        return bhost.decode()
    try:
        return _resolve(bhost.decode())[0]
    except LookupError:
        return None


cdef struct NameRequest:
    uv_getnameinfo_t req
    PyObject* task
    unsigned long token


cdef void _named_cb(uv_getnameinfo_t* req, int status, const char* hostname,
                    const char* service) noexcept with gil:
    cdef NameRequest* ctx = <NameRequest*>req
    cdef Task t = <Task>ctx.task
    try:
        name = hostname.decode("utf-8", "replace") if status == 0 and hostname != NULL else None
        t.hub.wake(t, ctx.token, (status, name))
    finally:
        Py_DECREF(t)
        free(ctx)


def tohostname(ip):
    """The host name of ``ip`` (reverse lookup; a name is resolved first), or None if unknown."""
    cdef sockaddr_storage ss
    cdef Hub hub = get_hub()
    cdef NameRequest* ctx
    cdef Task t
    cdef int err
    addr = toip(ip)
    if addr is None:
        return None
    _parse_literal(addr.encode(), 0, &ss)
    if hub.current is None:
        try:
            return _pysocket.gethostbyaddr(addr)[0]
        except OSError:
            return None
    ctx = <NameRequest*>malloc(sizeof(NameRequest))
    if ctx == NULL:
        raise MemoryError()
    t = hub.begin_block()
    ctx.task = <PyObject*>t
    ctx.token = t.token
    err = uv_getnameinfo(hub.loop, &ctx.req, _named_cb, <sockaddr*>&ss, 0)
    if err < 0:
        free(ctx)
        return None
    Py_INCREF(t)
    status, name = hub.block(t, -1.0)
    return name if status == 0 else None


def gethostname():
    """The name of this host."""
    return _pysocket.gethostname()
