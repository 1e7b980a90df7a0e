"""Pieces shared by splay.rpc, splay.rpcq and splay.urpc.

* :mod:`.names` — call names (``"a.b['k'][0]"``) parsed and resolved without ``eval``;
* :mod:`.namespace` — which namespace a server serves (per node);
* :mod:`.dispatch` — a request's call run against that namespace, errors captured;
* :mod:`.client_api` — ``acall``/``call``/``ecall``/``ping``/``proxy`` over any transport;
* :mod:`.server` — listening TCP servers, their registry and their teardown.
* :mod:`.module_api` — what each of the three modules builds its published functions from.

The byte-level fast paths are compiled: ``splayc.rpc_fast`` and ``splayc.rpcq_conn``.
"""
