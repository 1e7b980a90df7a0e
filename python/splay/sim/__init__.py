"""Simulation: running an unchanged SPLAY application in virtual time (issue #12).

``clock`` switches the hub's timers to a virtual clock that jumps to the next deadline whenever
every thread is blocked, so an hour of ``events.sleep`` costs milliseconds.
"""
