"""The observatory: metrics, events and logs of a run, in one document (see README.md here).

- :mod:`splay.observatory.buckets` -- the fixed latency buckets shared by nodes, controller,
  Prometheus and plots; percentiles and merging of histograms.
- :mod:`splay.observatory.rundata` -- the run-data document: load, dump, validate.
"""
