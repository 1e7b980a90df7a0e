# cython: language_level=3
"""The simulated network: TCP and UDP between the nodes of one process, in virtual time.

While a :class:`Network` is installed (``splay.sim.network.install``, which needs the hub's virtual
clock), ``socket.tcp()``/``socket.udp()`` and the RPC layers' ``tcp_new()``/``udp_new()`` create
:class:`SimTCP` and :class:`SimUDP` sockets. They are the real socket types (subclasses of
``splayc.tcp.TCP`` and ``splayc.udp.UDP``) with the kernel replaced by this module: no file
descriptor, no libuv handle. Everything above -- the LuaSocket methods, receive patterns, the read
buffer that splayc/rpc_fast.pyx decodes in place, ``_wait_read``, timeouts, select, restricted
sockets -- is the real code.

* Addresses are ``(ip, port)`` keys; any IPv4 text is a host. A socket bound to ``"*"`` (or
  connecting unbound) takes its node's address (``node.job.me.ip``, else the network's
  ``default_ip``); port 0 takes the first free port from 49152; an outgoing connection takes
  the next port of that range without reserving it.
* What one end sends is an *event* for the other end, due when the link delivers it: the link is
  the connecting node's ``splayc.shaping.Link`` pair for the peer's ``(ip, port)`` (the emulation
  layer's, from a topology, with partitions cutting it), else the network's default link. Due
  time: ``link.pace(n)`` (its rate, on the virtual clock) plus its delay, never before what the
  same end sent earlier, so a byte stream stays in order.
* The events wait in one heap ordered by (due time, scheduling sequence number): a binary heap
  of C records (:class:`EventQueue`), not of Python tuples, as a simulation runs millions. When every thread
  is blocked, the hub jumps the virtual clock to the earliest of these events and its own timers
  (hub.pxd, set_event_source); at one virtual instant the network's events run first, in the
  order they were scheduled, then the threads whose timers are due, in arming order. Events run
  in the hub greenlet, like libuv callbacks: they fill read buffers and queues and wake threads,
  never switch.
* TCP: connect sends a SYN (one-way delay); a listener answers by queueing an accepted socket and a
  SYN-ACK (one more delay): connect returns after one round trip. Nobody listening (or a full
  backlog): a refusal, after one round trip. A down host, or a cut link, answers nothing: connect
  fails with "timeout" at the socket's timeout, at most ``connect_timeout`` (127 s, Linux's SYN
  retries). close sends a FIN: EOF at the peer after the delay. Data for a closed socket is answered
  by a reset. Sending over a cut link resets the connection at both ends.
* UDP: a datagram takes the sender's link to its destination, or (a reply to an ephemeral port)
  to the destination socket's node. Each datagram is lost with the link's loss probability (the Link's generator, seeded from
  the run's seed), or by a cut link, a down host, nobody bound to the port, or a full queue.
* ``node_down(ip)``: the host stops: its sockets close at once, the peers of its connections get a
  reset after the delay (as from a crashed process), datagrams to it are lost and connects to it
  time out until ``node_up(ip)``. ``crash(node)`` resets the sockets of one node object only
  (a process crash on a live host: its ports then refuse connections).
"""
from libc.stdint cimport uint64_t
from cpython.bytes cimport PyBytes_AS_STRING
from cpython.mem cimport PyMem_Realloc, PyMem_Free
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF

from splayc.uv cimport UV_ECONNRESET, UV_ECONNREFUSED, UV_EADDRINUSE, UV_ECANCELED
from splayc.hub cimport Hub, Task, get_hub, clock_ns, set_event_source, node_of_current
from splayc.tcp cimport (want_met, shutdown_mode, call_connection_hook, TCP, TCP_MASTER,
                         TCP_SERVER, TCP_CLIENT, TCP_CLOSED, R_WOKEN, R_TIMEOUT, WANT_BYTES,
                         WANT_LINE, WANT_ANY)
from splayc.udp cimport UDP
from splayc.sockbase cimport SocketBase, remaining, as_bytes
from splayc.shaping cimport Link
from splayc.accounting cimport NetPolicy, policy_for
from splayc.addr cimport error_message, ERR_RESTRICTED

from splay.node import address as _node_address

cdef enum:
    MIN_BACKLOG = 64              # accepted connections queued before accept (as splayc.tcp)
    MAX_QUEUED = 4096             # datagrams queued at a UDP socket (as splayc.udp)
    FIRST_EPHEMERAL = 49152

cdef enum EventKind:
    EV_SYN = 0          # target: the connecting SimTCP; payload: (ip, port, Link back)
    EV_SYNACK = 1       # target: the connecting SimTCP; payload: the accepted SimTCP
    EV_REFUSED = 2      # target: the connecting SimTCP
    EV_DATA = 3         # target: the receiving SimTCP; payload: bytes
    EV_FIN = 4          # target: the receiving SimTCP
    EV_RESET = 5        # target: the SimTCP whose connection is reset
    EV_DATAGRAM = 6     # target: None; payload: (ip, port, data, (source ip, source port))

_WILDCARDS = frozenset(("*", "0.0.0.0", "::", "", None))


cdef class Network
cdef Network _net = None          # the installed network

cdef class SimTCP(TCP)
cdef class SimUDP(UDP)


class NetworkError(RuntimeError):
    """The simulated network cannot do what was asked (not installed, no virtual time ...)."""


# ---------------------------------------------------------------------------- the event source

cdef bint _next_event(uint64_t* due) noexcept:
    if _net is None or _net.events.count == 0:
        return False
    due[0] = _net.events.items[0].due
    return True


cdef int _run_events(uint64_t now) except -1:
    cdef Network net = _net
    cdef EventQueue events = net.events
    cdef Pending ev
    cdef object target, payload
    while events.count and events.items[0].due <= now:
        ev = events.pop()
        # The queue's references to target and payload pass to these two variables.
        target = <object>ev.target
        payload = <object>ev.payload
        Py_XDECREF(ev.target)
        Py_XDECREF(ev.payload)
        net.n_events += 1
        net._dispatch(ev.kind, target, payload)
    return 0


# ---------------------------------------------------------------------------- pending events

cdef struct Pending:
    uint64_t due             # virtual ns when it happens
    uint64_t seq             # scheduling order: ties of ``due`` run in it
    int kind                 # an EventKind
    PyObject* target         # owned references
    PyObject* payload


cdef inline bint _before(Pending* a, Pending* b) noexcept nogil:
    return a.due < b.due or (a.due == b.due and a.seq < b.seq)


cdef class EventQueue:
    """The network's pending events: a binary min-heap on (due, seq) of C records. The order is
    that of a heap of ``(due, seq, ...)`` tuples (seq is unique), without a Python comparison,
    tuple or call per step."""
    cdef Pending* items
    cdef Py_ssize_t count, capacity

    def __len__(self):
        return self.count

    def __dealloc__(self):
        self.clear()
        PyMem_Free(self.items)

    cdef void clear(self):
        """Drop every pending event (and its references)."""
        cdef Py_ssize_t i
        for i in range(self.count):
            Py_XDECREF(self.items[i].target)
            Py_XDECREF(self.items[i].payload)
        self.count = 0

    cdef int push(self, uint64_t due, uint64_t seq, int kind, object target, object payload) noexcept:
        """Add an event; -1 (nothing raised) when there is no memory for it."""
        cdef Py_ssize_t i, parent
        cdef Pending* grown
        cdef Pending item
        if self.count == self.capacity:
            grown = <Pending*>PyMem_Realloc(self.items, (self.capacity * 2 + 64) * sizeof(Pending))
            if grown == NULL:
                return -1
            self.items = grown
            self.capacity = self.capacity * 2 + 64
        item.due, item.seq, item.kind = due, seq, kind
        item.target, item.payload = <PyObject*>target, <PyObject*>payload
        Py_INCREF(target)
        Py_INCREF(payload)
        i = self.count
        self.count += 1
        while i > 0:                                   # sift up
            parent = (i - 1) >> 1
            if not _before(&item, &self.items[parent]):
                break
            self.items[i] = self.items[parent]
            i = parent
        self.items[i] = item
        return 0

    cdef Pending pop(self) noexcept:
        """The earliest event (the caller owns its references); the queue must not be empty."""
        cdef Pending top = self.items[0]
        cdef Pending last
        cdef Py_ssize_t i = 0, child, n
        self.count -= 1
        n = self.count
        if n:
            last = self.items[n]
            while True:                                # sift the last record down from the root
                child = 2 * i + 1
                if child >= n:
                    break
                if child + 1 < n and _before(&self.items[child + 1], &self.items[child]):
                    child += 1
                if not _before(&self.items[child], &last):
                    break
                self.items[i] = self.items[child]
                i = child
            self.items[i] = last
        return top


cdef object _node_ip(object node, str default):
    """The IP of a node's job (``node.job.me.ip``), else ``default``."""
    job = getattr(node, "job", None)
    me = getattr(job, "me", None) if job is not None else None
    ip = getattr(me, "ip", None) if me is not None else None
    return ip if ip else default


cdef object _job_address(object node):
    """``(ip, port)`` of a node's job, or None."""
    job = getattr(node, "job", None)
    me = getattr(job, "me", None) if job is not None else None
    if me is None:
        return None
    return (getattr(me, "ip", None), getattr(me, "port", None))


cdef bint _sim_open(SocketBase s, object node, bint datagram) except -1:
    """What SocketBase._open does for a real handle: the node, its policy (max_sockets), tracking
    under the node (closed when it exits). False: refused by the policy."""
    cdef Hub hub = get_hub()
    s.hub = hub
    s.datagram = datagram
    s.node = node
    s.policy = policy_for(node)
    if s.policy is not None:
        if not s.policy.open_socket(datagram):
            s.refused = True
            s.error = "restricted"
            return False
        s.counted = True
    d = hub.tracked.get(node)
    if d is None:
        d = hub.tracked[node] = {}
    d[id(s)] = s
    s._splay_node = node
    return True


cdef object _current_node():
    cdef Hub hub = get_hub()
    return node_of_current(hub)


cdef Network _installed():
    if _net is None:
        raise NetworkError("no simulated network is installed: call splay.sim.network.install() "
                           "(with the virtual clock on) first")
    return _net


# ---------------------------------------------------------------------------- the network

cdef Py_ssize_t _crash_all(list socks) except -1:
    """Reset the TCP sockets (peers see a reset after the delay) and close the UDP ones, as a
    crashed process's; returns how many there were."""
    for s in socks:
        if isinstance(s, SimTCP):
            (<SimTCP>s)._crash()
        else:
            (<SocketBase>s).close_c()
    return len(socks)


cdef class Network:
    """The simulated network of this process: its addresses, hosts and pending deliveries."""
    cdef EventQueue events            # pending events, earliest (due ns, seq) first
    cdef uint64_t seq
    cdef readonly dict tcp_ports      # (ip, port) -> the SimTCP bound there
    cdef readonly dict udp_ports      # (ip, port) -> the SimUDP bound there
    cdef readonly set down            # IPs of hosts that are down
    cdef dict by_ip                   # ip -> {id: socket} open sockets with that local IP
    cdef dict next_port               # (ip, datagram) -> next ephemeral port to try
    cdef readonly Link default_link   # links of pairs the emulation layer does not shape
    cdef readonly double connect_timeout
    cdef readonly str default_ip
    cdef readonly unsigned long long n_events, n_connects, n_refused, n_resets
    cdef readonly unsigned long long n_datagrams, n_lost

    def __init__(self, double delay=0.0, double loss=0.0, double connect_timeout=127.0,
                 str default_ip="127.0.0.1"):
        if not (delay >= 0.0 and 0.0 <= loss <= 1.0 and connect_timeout > 0.0):
            raise ValueError(f"a network needs delay >= 0, 0 <= loss <= 1 and connect_timeout > 0, "
                             f"got {delay!r}, {loss!r}, {connect_timeout!r}")
        self.events = EventQueue()
        self.tcp_ports = {}
        self.udp_ports = {}
        self.down = set()
        self.by_ip = {}
        self.next_port = {}
        self.default_link = Link()
        self.default_link.set(delay, float("inf"), loss)      # (rate inf: unlimited)
        self.connect_timeout = connect_timeout
        self.default_ip = default_ip

    def pending(self):
        """The number of events (deliveries) not yet due."""
        return len(self.events)

    def stats(self):
        """Counters: events run, connects, refusals, resets, datagrams sent and lost."""
        return {"events": self.n_events, "connects": self.n_connects, "refused": self.n_refused,
                "resets": self.n_resets, "datagrams": self.n_datagrams, "lost": self.n_lost,
                "pending": len(self.events)}

    cdef void schedule(self, uint64_t due, int kind, object target, object payload) noexcept:
        cdef Hub hub
        if self.events.push(due, self.seq, kind, target, payload) < 0:
            # Out of memory: the simulation cannot go on faithfully; the hub's run raises this.
            hub = get_hub()
            if hub.callback_error is None:
                hub.callback_error = MemoryError("no memory for the simulated network's pending events")
            return
        self.seq += 1

    cdef object _host_ip(self, object ip, object node):
        """The local IP a bind to ``ip`` means: the node's own for a wildcard."""
        if ip in _WILDCARDS:
            return _node_ip(node, self.default_ip)
        if ip == "localhost":
            return "127.0.0.1"
        return ip

    cdef int _free_port(self, object ip, dict table, bint datagram) except -1:
        key = (ip, datagram)
        cdef int port = self.next_port.get(key, FIRST_EPHEMERAL)
        cdef int tries = 0
        while (ip, port) in table:
            port = port + 1 if port < 65535 else FIRST_EPHEMERAL
            tries += 1
            if tries > 65535 - FIRST_EPHEMERAL:
                return -1
        self.next_port[key] = port + 1 if port < 65535 else FIRST_EPHEMERAL
        return port

    cdef int _ephemeral_tcp(self, object ip) except -1:
        """The next port of ``ip``'s ephemeral range for an outgoing connection (cycling)."""
        key = (ip, None)
        cdef int port = self.next_port.get(key, FIRST_EPHEMERAL)
        self.next_port[key] = port + 1 if port < 65535 else FIRST_EPHEMERAL
        return port

    cdef void _register(self, object ip, object sock):
        d = self.by_ip.get(ip)
        if d is None:
            d = self.by_ip[ip] = {}
        d[id(sock)] = sock

    cdef void _unregister(self, object ip, object sock):
        d = self.by_ip.get(ip)
        if d is not None:
            d.pop(id(sock), None)
            if not d:
                del self.by_ip[ip]

    cdef Link _link_to(self, SocketBase s, object ip, int port, bint back):
        """The Link of ``s``'s node towards ``(ip, port)`` (``back``: from it), from the emulation
        layer's links, else the default link. A datagram to another port of a node (a reply to
        an ephemeral port) takes the link to that node's job address."""
        cdef NetPolicy policy = s.policy
        cdef SocketBase dest
        if policy is not None and policy.links is not None:
            pair = policy.link_pair((ip, port))
            if pair is None and s.datagram:
                dest = self.udp_ports.get((ip, port))
                if dest is not None:
                    pair = policy.link_pair(_job_address(dest.node))
            if pair is not None:
                return <Link>pair[1 if back else 0]
        return self.default_link

    # ------------------------------------------------------------------ event handlers

    cdef int _dispatch(self, int kind, object target, object payload) except -1:
        cdef SimTCP s
        if kind == EV_DATA:
            (<SimTCP>target)._arrive(<bytes>payload)
        elif kind == EV_DATAGRAM:
            self._datagram_arrives(payload)
        elif kind == EV_SYN:
            self._syn_arrives(<SimTCP>target, payload)
        elif kind == EV_SYNACK:
            (<SimTCP>target)._established(<SimTCP>payload)
        elif kind == EV_REFUSED:
            s = <SimTCP>target
            if s.connecting is not None:
                self.n_refused += 1
                s.hub.wake(s.connecting, s.connecting_token, UV_ECONNREFUSED)
        elif kind == EV_FIN:
            s = <SimTCP>target
            if s.state == TCP_CLIENT and not s.read_err:
                s.eof = True
                s._wake_reader()
                s._wake_select()
        elif kind == EV_RESET:
            (<SimTCP>target)._reset()
        return 0

    cdef int _syn_arrives(self, SimTCP client, tuple syn) except -1:
        cdef object ip = syn[0]
        cdef int port = syn[1]
        cdef Link back = <Link>syn[2]
        cdef SimTCP listener, server
        cdef uint64_t due = clock_ns() + back.delay_ns
        if ip in self.down or back.cut:
            return 0                        # nobody answers: the connect times out
        listener = self.tcp_ports.get((ip, port))
        if listener is None or listener.state != TCP_SERVER \
                or (listener.backlog is not None and len(listener.backlog) >= listener.backlog_cap):
            self.schedule(due, EV_REFUSED, client, None)
            return 0
        server = SimTCP.__new__(SimTCP)
        server.net = self
        _sim_open(server, listener.node, False)
        server.state = TCP_CLIENT
        server.local = listener.local
        server.remote = client.local
        server.peer = client
        server.link = back
        server.last_due = due               # what it sends comes after the SYN-ACK
        self._register(ip, server)
        if listener.backlog is None:
            listener.backlog = []
        listener.backlog.append(server)
        listener._wake_reader()
        listener._wake_select()
        if listener.connection_hook is not None and listener.reader is None:
            call_connection_hook(listener)      # accept on demand (TCP.on_connection), as tcp.pyx does
        self.schedule(due, EV_SYNACK, client, server)
        return 0

    cdef int _datagram_arrives(self, tuple d) except -1:
        cdef SimUDP s
        cdef bytes data = <bytes>d[2]
        cdef size_t n = len(data)
        if d[0] in self.down:
            self.n_lost += 1
            return 0
        s = self.udp_ports.get((d[0], d[1]))
        if s is None or s.closed or len(s.queue) >= MAX_QUEUED \
                or (s.peer is not None and s.peer != d[3]):
            self.n_lost += 1
            return 0
        if s.policy is not None and not s.policy.take_receive(n):
            s.recv_err = ERR_RESTRICTED      # past max_receive: dropped, the next receive says so
        else:
            s.queue.append((data,) + <tuple>d[3])
            s._count_received(n)
        s._wake_reader()
        if s.select_waiters:
            s._wake_select()
        return 0

    # ------------------------------------------------------------------ hosts going down

    def node_down(self, ip):
        """The host ``ip`` stops (see the module docstring); returns how many sockets it had."""
        self.down.add(ip)
        return _crash_all(list(self.by_ip.get(ip, {}).values()))

    def node_up(self, ip):
        """The host ``ip`` answers again (its node's application is started by the runner)."""
        self.down.discard(ip)

    def crash(self, node):
        """Reset every simulated socket of ``node`` (a ``Task.node`` object) as a crashed process:
        peers see a reset after the delay. Returns how many sockets it had."""
        cdef Hub hub = get_hub()
        return _crash_all([s for s in (hub.tracked.get(node) or {}).values()
                           if isinstance(s, (SimTCP, SimUDP))])


# ---------------------------------------------------------------------------- TCP

cdef class SimTCP(TCP):
    """A TCP socket of the simulated network (see the module docstring)."""
    cdef Network net
    cdef SimTCP peer                  # the other end (kept after close: data for us gets a reset)
    cdef Link link                    # what this end sends goes over this link
    cdef uint64_t last_due            # due time of the last thing this end sent (stream order)
    cdef readonly tuple local, remote
    cdef list backlog                 # listening: accepted connections not yet returned by accept
    cdef int backlog_cap
    cdef Task connecting              # the thread waiting in connect, and its wake token
    cdef unsigned long connecting_token
    cdef bint fin_sent
    cdef dict options

    def __init__(self):
        self.net = _installed()
        if not _sim_open(self, _current_node(), False):
            self.state = TCP_CLOSED

    def __repr__(self):
        kind = ("master", "server", "client", "closed")[<int>self.state]
        return f"<splay.socket.tcp {kind} (simulated) {self.local} {id(self):#x}>"

    # ------------------------------------------------------------------ what SocketBase asks for

    cdef object _address(self, bint peer):
        if self.state == TCP_CLOSED:
            return None
        if peer:
            return self.remote if self.state == TCP_CLIENT else None
        return self.local

    cdef int _bind_to(self, object ip, int port) except? -99999:
        cdef Network net = self.net
        ip = net._host_ip(ip, self.node)
        if port == 0:
            port = net._free_port(ip, net.tcp_ports, False)
            if port < 0:
                return UV_EADDRINUSE
        elif (ip, port) in net.tcp_ports:
            return UV_EADDRINUSE
        if self.local is not None:
            return UV_EADDRINUSE if self.local != (ip, port) else 0
        self.local = (ip, port)
        net.tcp_ports[self.local] = self
        net._register(ip, self)
        return 0

    cdef bint _close_handle(self):
        cdef Network net = self.net
        cdef SimTCP c
        cdef int was = <int>self.state
        if self.state == TCP_CLOSED:
            return False
        self.state = TCP_CLOSED
        self.rstart = self.rend = self.scan_from = 0
        if self.local is not None and net is not None:
            if net.tcp_ports.get(self.local) is self:
                del net.tcp_ports[self.local]
            net._unregister(self.local[0], self)
        if was == <int>TCP_SERVER and self.backlog:
            for c in self.backlog:             # never accepted: their clients get a reset
                c._crash()
            self.backlog = None
        elif was == <int>TCP_CLIENT:
            self._send_fin()
            if self.peer is not None and self.peer.state == TCP_CLOSED:
                self.peer.peer = None          # both ends closed: nothing more to say
                self.peer = None
        if self.connecting is not None:
            self.hub.wake(self.connecting, self.connecting_token, UV_ECANCELED)
        return True

    # ------------------------------------------------------------------ the simulated kernel

    cdef void _send_fin(self):
        """The end of what this end sends: EOF at the peer after the data before it."""
        cdef uint64_t due
        if self.fin_sent or self.peer is None or self.read_err == UV_ECONNRESET:
            return
        self.fin_sent = True
        due = clock_ns() + self.link.delay_ns
        if due < self.last_due:
            due = self.last_due
        self.last_due = due
        self.net.schedule(due, EV_FIN, self.peer, None)

    cdef void _crash(self):
        """Reset this connection (the peer sees it after the delay) and close this end at once."""
        cdef uint64_t due
        if self.state == TCP_CLIENT and self.peer is not None and self.read_err != UV_ECONNRESET:
            due = clock_ns() + self.link.delay_ns
            if due < self.last_due:
                due = self.last_due
            self.net.schedule(due, EV_RESET, self.peer, None)
            self.net.n_resets += 1
        self.read_err = UV_ECONNRESET
        self.peer = None
        self.close_c()

    cdef void _reset(self):
        """A reset arrives: receives fail once the buffer is drained, sends fail."""
        if self.read_err == UV_ECONNRESET:
            return
        self.read_err = UV_ECONNRESET
        self.peer = None
        if self.state == TCP_CLIENT:
            self._wake_reader()
            self._wake_select()

    cdef void _established(self, SimTCP server):
        """The SYN-ACK arrives: connected, unless connect gave up meanwhile (then: a reset)."""
        cdef Task t = self.connecting
        if t is None or self.state != TCP_MASTER:
            server._reset()
            return
        self.connecting = None
        self.peer = server
        self.remote = server.local
        self.state = TCP_CLIENT
        self.hub.wake(t, self.connecting_token, 0)

    cdef int _arrive(self, bytes data) except -1:
        """Data arrives from the peer."""
        cdef size_t n = len(data)
        cdef SimTCP sender
        if self.state != TCP_CLIENT or self.read_shut:
            sender = self.peer
            if sender is not None and self.read_err != UV_ECONNRESET:
                self.net.schedule(clock_ns() + self.link.delay_ns, EV_RESET, sender, None)
                self.net.n_resets += 1
                self.peer = None
            return 0
        if self.read_err:
            return 0
        if self.policy is not None and not self.policy.take_receive(n):
            self._end_reading(ERR_RESTRICTED)
            return 0
        self._append(PyBytes_AS_STRING(data), n)
        self._count_received(n)
        if self.reader is not None and want_met(self):
            self._wake_reader()
        if self.select_waiters:
            self._wake_select()
        return 0

    cdef void _start_reading(self):
        pass                                   # deliveries fill the buffer

    cdef void _end_reading(self, int err):
        self.read_err = err
        self._wake_reader()
        self._wake_select()

    cdef bint _readable(self):
        if self.state == TCP_CLIENT:
            return self.rend > self.rstart or self.eof or self.read_err != 0 or self.read_shut
        if self.state == TCP_SERVER:
            return bool(self.backlog)
        return self.state == TCP_CLOSED

    cdef bint _writable(self):
        return self.state == TCP_CLIENT or self.state == TCP_CLOSED

    cdef Py_ssize_t _send(self, object data, Py_ssize_t start, Py_ssize_t stop,
                          uint64_t deadline) except -2:
        cdef Py_ssize_t n = stop - start
        cdef Link link = self.link
        cdef uint64_t due
        cdef SimTCP peer = self.peer
        if self.state != TCP_CLIENT:
            self.error = self._closed_error() if self.state == TCP_CLOSED else "not connected"
            return 0
        if n <= 0:
            return 0
        if peer is None or self.fin_sent:
            self.error = "closed"
            return 0
        if self.policy is not None and not self.policy.reserve_send(<size_t>n):
            self.error = "restricted"
            return 0
        if link.cut:                           # a partition breaks the connection
            self._crash_both()
            self.error = "closed"
            return 0
        chunk = data if start == 0 and stop == len(data) and type(data) is bytes \
            else bytes(data[start:stop])
        due = link.pace(<size_t>n) + link.delay_ns
        if due < self.last_due:
            due = self.last_due
        self.last_due = due
        self.net.schedule(due, EV_DATA, peer, chunk)
        self._count_sent(<size_t>n)
        return n

    cdef void _crash_both(self):
        cdef SimTCP peer = self.peer
        if peer is not None:
            peer._reset()
            self.net.n_resets += 1
        self._reset()

    cdef bint connect_now(self, object ip, int port, bint nodelay=True) except -1:
        # (TCP's is for the kernel's handshake; the simulated one is connect_c's)
        return self.connect_c(ip, port)

    cdef bint connect_c(self, object ip, int port) except -1:
        cdef Network net = self.net
        cdef Link out, back
        cdef Task t
        cdef double timeout
        cdef uint64_t deadline = self._deadline()
        if self.state != TCP_MASTER:
            self.error = self._closed_error() if self.state == TCP_CLOSED else "already connected"
            return False
        if self._name_refused(ip):
            self.close_c()
            return False
        if not 0 < port < 65536:
            self.close_c()
            self.error = f"invalid port {port}: a port is in 1..65535"
            return False
        ip = net._host_ip(ip, self.node)
        if self.local is None:
            # Unbound: the node's IP and a port of the ephemeral range, not reserved (a kernel
            # reuses them across destinations; a connection is its two ends, not its port).
            local_ip = net._host_ip(None, self.node)
            self.local = (local_ip, net._ephemeral_tcp(local_ip))
            net._register(local_ip, self)
        out = net._link_to(self, ip, port, False)
        back = net._link_to(self, ip, port, True)
        self.link = out
        net.n_connects += 1
        t = self.hub.begin_block()
        self.connecting = t
        self.connecting_token = t.token
        if not (out.cut or ip in net.down or self.local[0] in net.down):
            self.last_due = clock_ns() + out.delay_ns
            net.schedule(self.last_due, EV_SYN, self, (ip, port, back))
        timeout = remaining(deadline)
        if timeout < 0.0 or timeout > net.connect_timeout:
            timeout = net.connect_timeout
        try:
            status = self.hub.block(t, timeout)
        except BaseException:
            self.connecting = None
            self.close_c()
            raise
        self.connecting = None
        if self.state == TCP_CLIENT:
            return True
        if self.state != TCP_MASTER:
            self.error = "closed"
            return False
        self.close_c()
        self.error = "timeout" if t.timed_out else error_message(<int>status)
        return False

    # ------------------------------------------------------------------ LuaSocket methods

    def listen(self, backlog=32):
        """Accept connections from now on (at most ``backlog`` waiting): True or None."""
        cdef int n = int(backlog)
        if self.state != TCP_MASTER:
            self.error = self._closed_error() if self.state == TCP_CLOSED else "already connected"
            return None
        if self.local is None:
            err = self._bind_allowed(None, 0)
            if err < 0:
                self.error = error_message(err)
                return None
        self.backlog_cap = n if n > MIN_BACKLOG else MIN_BACKLOG
        self.state = TCP_SERVER
        return True

    def accept(self):
        """Wait for a connection: a new connected socket, or None ("timeout", "closed" ...)."""
        cdef uint64_t deadline = self._deadline()
        cdef SimTCP c
        cdef int r
        if self.state != TCP_SERVER:
            self.error = "closed" if self.state == TCP_CLOSED else "not listening: call listen() first"
            return None
        while True:
            if self.backlog:
                c = self.backlog.pop(0)
                if c.refused:                  # max_sockets: the connection is reset at once
                    c._crash()
                    self.error = "restricted"
                    return None
                return c
            r = self._wait_read(WANT_ANY, 0, deadline)
            if r != R_WOKEN and not self.backlog:
                self._fail_read(r, False)
                return None

    def shutdown(self, mode="both"):
        """Shut down "send", "receive" or "both" directions of a connection: True."""
        mode = shutdown_mode(mode)
        if self.state != TCP_CLIENT:
            return True
        if mode in ("both", "receive") and not self.read_shut:
            self.read_shut = True
            self._wake_reader()
        if mode in ("both", "send"):
            self._send_fin()
        return True

    def setoption(self, name, value=None):
        """Options are remembered and have no effect in the simulated network: True."""
        if isinstance(name, bytes):
            name = name.decode()
        if name not in ("tcp-nodelay", "keepalive", "reuseaddr", "linger"):
            self.error = f"unsupported option {name!r}: use tcp-nodelay, keepalive, reuseaddr or linger"
            return None
        if self.options is None:
            self.options = {}
        self.options[name] = value
        return True

    def getoption(self, name):
        """The value last set for an option (tcp-nodelay is on by default), or None."""
        if isinstance(name, bytes):
            name = name.decode()
        if self.options and name in self.options:
            return self.options[name]
        if name == "tcp-nodelay":
            return True
        if name in ("keepalive", "reuseaddr"):
            return False
        if name == "linger":
            return {"on": False, "timeout": 0}
        self.error = f"unsupported option {name!r}"
        return None



# ---------------------------------------------------------------------------- UDP

cdef class SimUDP(UDP):
    """A UDP socket of the simulated network (see the module docstring)."""
    cdef Network net
    cdef readonly tuple local
    cdef readonly tuple peer          # set by setpeername: datagrams only from / to it

    def __init__(self):
        self.net = _installed()
        if not _sim_open(self, _current_node(), True):
            self.closed = True

    def __repr__(self):
        return f"<splay.socket.udp {'closed' if self.closed else 'open'} (simulated) {self.local}>"

    cdef object _address(self, bint peer):
        if self.closed:
            return None
        return self.peer if peer else self.local

    cdef int _bind_to(self, object ip, int port) except? -99999:
        cdef Network net = self.net
        ip = net._host_ip(ip, self.node)
        if self.local is not None:
            return UV_EADDRINUSE if self.local != (ip, port) or port == 0 else 0
        if port == 0:
            port = net._free_port(ip, net.udp_ports, True)
            if port < 0:
                return UV_EADDRINUSE
        elif (ip, port) in net.udp_ports:
            return UV_EADDRINUSE
        self.local = (ip, port)
        self.bound = True
        net.udp_ports[self.local] = self
        net._register(ip, self)
        return 0

    cdef bint _close_handle(self):
        cdef Network net = self.net
        if self.closed:
            return False
        self.closed = True
        if self.local is not None and net is not None:
            if net.udp_ports.get(self.local) is self:
                del net.udp_ports[self.local]
            net._unregister(self.local[0], self)
        return True

    cdef void _start_receiving(self):
        pass                                   # deliveries fill the queue

    cdef object _send_to(self, object data, object ip, int port):
        cdef Network net = self.net
        cdef NetPolicy policy = self.policy
        cdef size_t n = len(data)
        cdef Link link
        cdef uint64_t due
        if self.closed:
            self.error = self._closed_error()
            return None
        if not 0 < port < 65536:
            self.error = f"invalid port {port}: a port is in 1..65535"
            return None
        ip = net._host_ip(ip, self.node)
        if self.local is None and self._bind_to(None, 0) < 0:
            self.error = "address already in use"
            return None
        if policy is not None:
            if not policy.reserve_send(n):
                self.error = "restricted"
                return None
            if policy.drop_datagram():         # udp_drop_ratio
                self._count_sent(n)
                return True
        link = net._link_to(self, ip, port, False)
        self._count_sent(n)
        net.n_datagrams += 1
        if link.cut or link.lose() or ip in net.down or self.local[0] in net.down:
            net.n_lost += 1
            return True
        due = link.pace(n) + link.delay_ns
        if link.reorder > 0.0 and link.draw() < link.reorder:
            due += <uint64_t>((10.0 + 40.0 * link.draw()) * 1e6)    # held back 10-50 ms
        item = (ip, port, data, self.local)
        net.schedule(due, EV_DATAGRAM, None, item)
        if link.duplicate > 0.0 and link.draw() < link.duplicate:
            net.schedule(due, EV_DATAGRAM, None, item)
        return True

    def sendto(self, data, address, port=None):
        """Send one datagram to a node or ``ip, port``: True, or None with ``self.error``."""
        data = as_bytes(data, "a datagram")
        ip, p = _node_address(address, port)
        if self._name_refused(ip):
            return None
        return self._send_to(data, ip, p)

    def send(self, data):
        """Send one datagram to the peer set by setpeername: True, or None."""
        data = as_bytes(data, "a datagram")
        if self.peer is None:
            self.error = "not connected: call setpeername() first, or use sendto()"
            return None
        return self._send_to(data, self.peer[0], self.peer[1])

    def setpeername(self, address, port=None):
        """Fix the peer (``"*"``: go back to unconnected): True or None."""
        if self.closed:
            self.error = self._closed_error()
            return None
        if address in ("*", b"*") and port is None:
            self.peer = None
            return True
        ip, p = _node_address(address, port)
        if self._name_refused(ip):
            return None
        if self.local is None and self._bind_to(None, 0) < 0:
            self.error = "address already in use"
            return None
        self.peer = (self.net._host_ip(ip, self.node), p)
        return True

    def setoption(self, name, value=None):
        """"broadcast" and "reuseaddr" are accepted and have no effect: True."""
        if isinstance(name, bytes):
            name = name.decode()
        if name not in ("broadcast", "reuseaddr"):
            self.error = f"unsupported option {name!r}: use broadcast or reuseaddr"
            return None
        return True


# ---------------------------------------------------------------------------- install

def install(Network net):
    """Make ``net`` the network of this process: new sockets are simulated from now on, its
    deliveries run on the hub's virtual clock (which must be on)."""
    global _net
    from splayc import hub as _hub, tcp as _tcp, udp as _udp
    if _hub.virtual_time() is None:
        raise NetworkError("the simulated network runs on virtual time: call "
                           "splay.sim.clock.enable() before installing it")
    if _net is not None:
        raise NetworkError("a simulated network is installed already: uninstall() it first")
    _net = net
    _tcp.set_simulated(SimTCP)
    _udp.set_simulated(SimUDP)
    set_event_source(_next_event, _run_events)


def uninstall():
    """Real sockets again; the pending deliveries of the network are dropped. Returns it (None
    when none was installed)."""
    global _net
    from splayc import tcp as _tcp, udp as _udp
    cdef Network net = _net
    _net = None
    set_event_source(NULL, NULL)
    _tcp.set_simulated(None)
    _udp.set_simulated(None)
    if net is not None:
        net.events.clear()
    return net


def installed():
    """The installed :class:`Network`, or None."""
    return _net
