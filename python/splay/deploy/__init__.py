"""Deployment of SPLAY applications onto many hosts.

- ``splay-controller`` (:mod:`splay.deploy.controller`): keeps daemons, jobs, instances and logs in a
  database (:mod:`splay.deploy.db`), schedules jobs (:mod:`splay.deploy.scheduler`) and serves the
  HTTP JSON API (:mod:`splay.deploy.api`) used by the ``splay`` command (:mod:`splay.deploy.cli`).
- ``splayd`` (:mod:`splay.deploy.daemon`): runs job instances as processes
  (:mod:`splay.deploy.instances`) and forwards their output.
- :mod:`splay.deploy.protocol`: the daemon <-> controller messages.
- :mod:`splay.deploy.testbed`: a controller and daemons on this machine.
"""
