"""Compute: GPU node pools (Karpenter or EKS Auto Mode), the NVIDIA device plugin, Karpenter install.

Pure builders live in :mod:`.nodepools`, :mod:`.device_plugin` and :mod:`.karpenter`; the lab steps
that apply them and watch the nodes come and go are in :mod:`.steps` and exported here.
"""

from labkit.compute.steps import (
    CostNow,
    GpuPoolSetup,
    KarpenterInstall,
    NodeWatch,
    PendingExplanation,
    Scaled,
    cost_now,
    create_gpu_pool,
    delete_gpu_pool,
    install_device_plugin,
    install_karpenter,
    nodes_table,
    scale,
    watch_nodes,
    why_pending,
)

__all__ = [
    "CostNow",
    "GpuPoolSetup",
    "KarpenterInstall",
    "NodeWatch",
    "PendingExplanation",
    "Scaled",
    "cost_now",
    "create_gpu_pool",
    "delete_gpu_pool",
    "install_device_plugin",
    "install_karpenter",
    "nodes_table",
    "scale",
    "watch_nodes",
    "why_pending",
]
