"""The NVIDIA device plugin DaemonSet for the ``standard`` profile.

EKS Auto Mode and Bottlerocket NVIDIA AMIs ship the plugin; the AL2023 NVIDIA AMI
that Karpenter launches does not, so without it a GPU node advertises no
``nvidia.com/gpu`` and GPU pods stay Pending.
"""

from __future__ import annotations

from typing import Any

IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"
NAMESPACE = "kube-system"
NAME = "nvidia-device-plugin-daemonset"


def daemonset(image: str = IMAGE, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The device plugin DaemonSet, scheduled only onto NVIDIA GPU nodes."""
    labels = {"app.kubernetes.io/name": "nvidia-device-plugin"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {
                                                "key": "karpenter.k8s.aws/instance-gpu-manufacturer",
                                                "operator": "In",
                                                "values": ["nvidia"],
                                            }
                                        ]
                                    },
                                    {
                                        "matchExpressions": [
                                            {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
                                        ]
                                    },
                                ]
                            }
                        }
                    },
                    "containers": [
                        {
                            "name": "nvidia-device-plugin-ctr",
                            "image": image,
                            "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                            "volumeMounts": [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}],
                        }
                    ],
                    "volumes": [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}],
                },
            },
        },
    }
