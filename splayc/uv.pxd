# Declarations of the parts of libuv's C API (uv.h, Debian libuv1-dev) the core uses.
# Only the struct fields we touch are declared; sizes come from the real header, so
# malloc(sizeof(uv_tcp_t)) is right.
from libc.stdint cimport uint64_t, int64_t
from posix.types cimport off_t

cdef extern from "netinet/in.h" nogil:
    ctypedef unsigned short sa_family_t
    ctypedef unsigned short in_port_t
    ctypedef unsigned int socklen_t

cdef extern from "sys/socket.h" nogil:
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    int AF_INET
    int AF_INET6
    int AF_UNSPEC
    int SOCK_STREAM
    int SOCK_DGRAM
    int SOL_SOCKET
    int SO_REUSEADDR
    int SO_KEEPALIVE
    int SO_SNDBUF
    int SO_RCVBUF
    int SO_BROADCAST
    int setsockopt(int fd, int level, int optname, const void* optval, socklen_t optlen)
    int getsockopt(int fd, int level, int optname, void* optval, socklen_t* optlen)
    ssize_t recv(int fd, void* buf, size_t n, int flags)
    int SOCK_NONBLOCK
    int SOCK_CLOEXEC
    int socket(int domain, int type, int protocol)
    int connect(int fd, const sockaddr* addr, socklen_t addrlen)

cdef extern from "netinet/in.h" nogil:
    struct in_addr:
        unsigned int s_addr
    struct sockaddr_in:
        sa_family_t sin_family
        in_port_t sin_port
        in_addr sin_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in6:
        sa_family_t sin6_family
        in_port_t sin6_port
        in6_addr sin6_addr
    int IPPROTO_TCP
    unsigned short ntohs(unsigned short)
    unsigned short htons(unsigned short)

cdef extern from "netinet/tcp.h" nogil:
    int TCP_NODELAY
    int TCP_DEFER_ACCEPT

cdef extern from "netdb.h" nogil:
    struct addrinfo:
        int ai_flags
        int ai_family
        int ai_socktype
        int ai_protocol
        socklen_t ai_addrlen
        sockaddr* ai_addr
        char* ai_canonname
        addrinfo* ai_next

cdef extern from "uv.h" nogil:
    # --- errors
    int UV_EOF
    int UV_EAGAIN
    int UV_EINTR
    int UV_ECANCELED
    int UV_ETIMEDOUT
    int UV_ECONNREFUSED
    int UV_ECONNRESET
    int UV_EPIPE
    int UV_ENOBUFS
    int UV_EADDRINUSE
    int UV_EINVAL
    int UV_ENOTCONN
    const char* uv_strerror(int err)
    const char* uv_err_name(int err)
    unsigned int uv_version()

    # --- loop
    ctypedef enum uv_run_mode:
        UV_RUN_DEFAULT
        UV_RUN_ONCE
        UV_RUN_NOWAIT

    ctypedef struct uv_loop_t:
        void* data

    int uv_loop_init(uv_loop_t* loop)
    int uv_loop_close(uv_loop_t* loop)
    int uv_run(uv_loop_t* loop, uv_run_mode mode)
    void uv_stop(uv_loop_t* loop)
    int uv_loop_alive(const uv_loop_t* loop)
    int uv_loop_fork(uv_loop_t* loop)
    void uv_update_time(uv_loop_t* loop)
    uint64_t uv_now(const uv_loop_t* loop)
    uint64_t uv_hrtime()
    int uv_backend_timeout(const uv_loop_t* loop)

    # --- handles
    ctypedef enum uv_handle_type:
        UV_UNKNOWN_HANDLE
        UV_TCP
        UV_UDP
        UV_TIMER
        UV_POLL

    ctypedef struct uv_handle_t:
        void* data
        uv_loop_t* loop
        uv_handle_type type

    ctypedef void (*uv_close_cb)(uv_handle_t* handle) noexcept with gil
    ctypedef void (*uv_walk_cb)(uv_handle_t* handle, void* arg) noexcept with gil
    void uv_close(uv_handle_t* handle, uv_close_cb close_cb)
    int uv_is_closing(const uv_handle_t* handle)
    int uv_is_active(const uv_handle_t* handle)
    void uv_ref(uv_handle_t* handle)
    void uv_unref(uv_handle_t* handle)
    int uv_has_ref(const uv_handle_t* handle)
    void uv_walk(uv_loop_t* loop, uv_walk_cb walk_cb, void* arg)
    int uv_fileno(const uv_handle_t* handle, int* fd)
    int uv_send_buffer_size(uv_handle_t* handle, int* value)
    int uv_recv_buffer_size(uv_handle_t* handle, int* value)

    ctypedef struct uv_buf_t:
        char* base
        size_t len
    uv_buf_t uv_buf_init(char* base, unsigned int len)

    # --- timers
    ctypedef struct uv_timer_t:
        void* data
        uv_loop_t* loop
    ctypedef void (*uv_timer_cb)(uv_timer_t* handle) noexcept with gil
    int uv_timer_init(uv_loop_t* loop, uv_timer_t* handle)
    int uv_timer_start(uv_timer_t* handle, uv_timer_cb cb, uint64_t timeout, uint64_t repeat)
    int uv_timer_stop(uv_timer_t* handle)

    # --- prepare (callbacks run at each loop iteration, just before it polls)
    ctypedef struct uv_prepare_t:
        void* data
        uv_loop_t* loop
    ctypedef void (*uv_prepare_cb)(uv_prepare_t* handle) noexcept with gil
    int uv_prepare_init(uv_loop_t* loop, uv_prepare_t* prepare)
    int uv_prepare_start(uv_prepare_t* prepare, uv_prepare_cb cb)
    int uv_prepare_stop(uv_prepare_t* prepare)

    # --- poll (the signal wake-up fd)
    ctypedef struct uv_poll_t:
        void* data
        uv_loop_t* loop
    ctypedef void (*uv_poll_cb)(uv_poll_t* handle, int status, int events) noexcept with gil
    enum uv_poll_event:
        UV_READABLE
        UV_WRITABLE
    int uv_poll_init(uv_loop_t* loop, uv_poll_t* handle, int fd)
    int uv_poll_start(uv_poll_t* handle, int events, uv_poll_cb cb)
    int uv_poll_stop(uv_poll_t* handle)

    # --- streams
    ctypedef struct uv_stream_t:
        void* data
        uv_loop_t* loop
        size_t write_queue_size

    ctypedef struct uv_req_t:
        void* data

    ctypedef struct uv_write_t:
        void* data
        uv_stream_t* handle

    ctypedef struct uv_connect_t:
        void* data
        uv_stream_t* handle

    ctypedef struct uv_shutdown_t:
        void* data
        uv_stream_t* handle

    ctypedef void (*uv_alloc_cb)(uv_handle_t* handle, size_t suggested_size, uv_buf_t* buf) noexcept with gil
    ctypedef void (*uv_read_cb)(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept with gil
    ctypedef void (*uv_write_cb)(uv_write_t* req, int status) noexcept with gil
    ctypedef void (*uv_connect_cb)(uv_connect_t* req, int status) noexcept with gil
    ctypedef void (*uv_shutdown_cb)(uv_shutdown_t* req, int status) noexcept with gil
    ctypedef void (*uv_connection_cb)(uv_stream_t* server, int status) noexcept with gil

    int uv_listen(uv_stream_t* stream, int backlog, uv_connection_cb cb)
    int uv_accept(uv_stream_t* server, uv_stream_t* client)
    int uv_read_start(uv_stream_t* stream, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
    int uv_read_stop(uv_stream_t* stream)
    int uv_write(uv_write_t* req, uv_stream_t* handle, const uv_buf_t* bufs, unsigned int nbufs, uv_write_cb cb)
    int uv_try_write(uv_stream_t* handle, const uv_buf_t* bufs, unsigned int nbufs)
    int uv_shutdown(uv_shutdown_t* req, uv_stream_t* handle, uv_shutdown_cb cb)
    int uv_is_readable(const uv_stream_t* handle)
    int uv_is_writable(const uv_stream_t* handle)

    # --- tcp
    ctypedef struct uv_tcp_t:
        void* data
        uv_loop_t* loop
        size_t write_queue_size
    int uv_tcp_init(uv_loop_t* loop, uv_tcp_t* handle)
    int uv_tcp_init_ex(uv_loop_t* loop, uv_tcp_t* handle, unsigned int flags)
    int uv_tcp_open(uv_tcp_t* handle, int sock)
    int uv_tcp_nodelay(uv_tcp_t* handle, int enable)
    int uv_tcp_keepalive(uv_tcp_t* handle, int enable, unsigned int delay)
    int uv_tcp_bind(uv_tcp_t* handle, const sockaddr* addr, unsigned int flags)
    int uv_tcp_getsockname(const uv_tcp_t* handle, sockaddr* name, int* namelen)
    int uv_tcp_getpeername(const uv_tcp_t* handle, sockaddr* name, int* namelen)
    int uv_tcp_connect(uv_connect_t* req, uv_tcp_t* handle, const sockaddr* addr, uv_connect_cb cb)
    int uv_tcp_close_reset(uv_tcp_t* handle, uv_close_cb close_cb)
    enum uv_tcp_flags:
        UV_TCP_IPV6ONLY

    # --- udp
    ctypedef struct uv_udp_t:
        void* data
        uv_loop_t* loop
        size_t send_queue_size
        size_t send_queue_count
    ctypedef struct uv_udp_send_t:
        void* data
        uv_udp_t* handle
    ctypedef void (*uv_udp_send_cb)(uv_udp_send_t* req, int status) noexcept with gil
    ctypedef void (*uv_udp_recv_cb)(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
                                    const sockaddr* addr, unsigned flags) noexcept with gil
    enum uv_udp_flags:
        UV_UDP_IPV6ONLY
        UV_UDP_PARTIAL
        UV_UDP_REUSEADDR
    int uv_udp_init(uv_loop_t* loop, uv_udp_t* handle)
    int uv_udp_init_ex(uv_loop_t* loop, uv_udp_t* handle, unsigned int flags)
    int uv_udp_bind(uv_udp_t* handle, const sockaddr* addr, unsigned int flags)
    int uv_udp_connect(uv_udp_t* handle, const sockaddr* addr)
    int uv_udp_getsockname(const uv_udp_t* handle, sockaddr* name, int* namelen)
    int uv_udp_getpeername(const uv_udp_t* handle, sockaddr* name, int* namelen)
    int uv_udp_set_broadcast(uv_udp_t* handle, int on)
    int uv_udp_send(uv_udp_send_t* req, uv_udp_t* handle, const uv_buf_t* bufs, unsigned int nbufs,
                    const sockaddr* addr, uv_udp_send_cb send_cb)
    int uv_udp_try_send(uv_udp_t* handle, const uv_buf_t* bufs, unsigned int nbufs, const sockaddr* addr)
    int uv_udp_recv_start(uv_udp_t* handle, uv_alloc_cb alloc_cb, uv_udp_recv_cb recv_cb)
    int uv_udp_recv_stop(uv_udp_t* handle)

    # --- addresses and dns
    int uv_ip4_addr(const char* ip, int port, sockaddr_in* addr)
    int uv_ip6_addr(const char* ip, int port, sockaddr_in6* addr)
    int uv_ip4_name(const sockaddr_in* src, char* dst, size_t size)
    int uv_ip6_name(const sockaddr_in6* src, char* dst, size_t size)
    int uv_inet_pton(int af, const char* src, void* dst)
    ctypedef struct uv_getaddrinfo_t:
        void* data
    ctypedef void (*uv_getaddrinfo_cb)(uv_getaddrinfo_t* req, int status, addrinfo* res) noexcept with gil
    int uv_getaddrinfo(uv_loop_t* loop, uv_getaddrinfo_t* req, uv_getaddrinfo_cb getaddrinfo_cb,
                       const char* node, const char* service, const addrinfo* hints)
    void uv_freeaddrinfo(addrinfo* ai)

# --- appended for splayc.tcp / splayc.udp / splayc.addr (sockets and name resolution)
cdef extern from "uv.h" nogil:
    int UV_EACCES
    int UV_EISCONN
    int UV_ECONNABORTED
    int UV_EMSGSIZE
    int UV_EBADF
    int UV_ENOTSOCK
    int UV_EHOSTUNREACH
    int UV_ENETUNREACH
    int UV_EADDRNOTAVAIL
    int UV_EAI_NONAME
    int UV_EAI_AGAIN
    int UV_EAI_FAIL
    int UV_EAI_NODATA
    int UV_EAI_ADDRFAMILY
    int UV_EAI_FAMILY
    ctypedef struct uv_getnameinfo_t:
        void* data
    ctypedef void (*uv_getnameinfo_cb)(uv_getnameinfo_t* req, int status, const char* hostname,
                                       const char* service) noexcept with gil
    int uv_getnameinfo(uv_loop_t* loop, uv_getnameinfo_t* req, uv_getnameinfo_cb getnameinfo_cb,
                       const sockaddr* addr, int flags)

cdef extern from "sys/socket.h" nogil:
    int SO_LINGER
    struct linger:
        int l_onoff
        int l_linger
