"""Network emulation models: what traffic between two job nodes experiences.

- `splay.emulation.topology`: ModelNet-style XML topologies, shortest paths between job nodes.
- `splay.emulation.matrix`: latency matrix and uniform model files; `load_link_model(path)`.
- `splay.emulation.links`: `LinkModel` (``between(i, j)`` -> delay, bandwidth, loss) and
  partitions (``cut`` / ``heal``).

- `splay.emulation.apply`: ``apply(model, me, nodes)`` shapes a node's real traffic in the
  cooperative socket layer (delays, rates, loss, partitions). See docs/emulation.md.
- `splay.emulation.partitions`: partitions on a schedule (``splay run --partition``).
- `splay.emulation.kernel`: the same links installed in the kernel with ``tc`` (deployments).
"""
from .errors import TopologyError
from .links import UNREACHABLE, LinkModel, Partition, PathQuality
from .matrix import load_link_model, parse_link_model, parse_matrix, parse_uniform
from .topology import Link, Topology, parse_modelnet, read_modelnet
from .apply import Emulation, apply, apply_job, has_emulation, kernel_shaped
from .partitions import PartitionSchedule, PartitionSpec, parse_partition
from . import kernel
from .kernel import (KernelShaping, KernelShapingReport, KernelShapingUnavailable, TcError,
                     links_for_host)

__all__ = ["LinkModel", "Partition", "PathQuality", "UNREACHABLE", "TopologyError",
           "Topology", "Link", "parse_modelnet", "read_modelnet",
           "parse_matrix", "parse_uniform", "load_link_model", "parse_link_model",
           "apply", "apply_job", "has_emulation", "kernel_shaped", "Emulation",
           "PartitionSpec", "PartitionSchedule", "parse_partition",
           "kernel", "KernelShaping", "KernelShapingReport", "KernelShapingUnavailable",
           "TcError", "links_for_host"]
