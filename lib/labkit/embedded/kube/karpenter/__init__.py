"""Karpenter (and EKS Auto Mode's compute) for the embedded cluster.

- :mod:`.catalog`: instance types and offerings (type x zone x capacity type) with prices;
- :mod:`.requirements`: Karpenter's label requirements and their algebra;
- :mod:`.nodepool`: NodePools as Karpenter reads them; Auto Mode's built-in pools;
- :mod:`.provisioner`: pending pods to NodeClaims, and :func:`explain` for pods no pool can serve;
- :mod:`.disruption` and :mod:`.cron`: budgets, drift, emptiness, consolidation;
- :mod:`.interruption`: Spot interruption warnings and unavailable offerings;
- :mod:`.objects`: the NodeClaim, Node and status objects it writes;
- :mod:`.crds`: the CRDs it serves;
- :mod:`.controller` (with :mod:`.base`, :mod:`.lifecycle` and :mod:`.disrupting`): :class:`KarpenterController`,
  which runs it all over the store on the simulated clock.
"""

from __future__ import annotations

from .controller import KarpenterController
from .provisioner import explain

__all__ = ["KarpenterController", "explain"]
