"""A simulated AWS CLI, the container runtime behind ``aws-cli`` pods in the embedded cluster.

It makes the Week 1 Pod Identity lesson real offline: a pod whose service account has
an EKS Pod Identity association gets its role's credentials the way the Pod Identity
agent gives them (``eks-auth`` ``AssumeRoleForPodIdentity`` on the embedded AWS), runs
``aws sts get-caller-identity`` (or any API operation, or ``aws s3 ls``), prints what
the real CLI prints and exits with its return code; a pod without an association says
``Unable to locate credentials``.

- :mod:`.cli`: the ``aws`` command line (parsing, calls, errors, return codes) and ``sh -c`` scripts.
- :mod:`.output`: ``--query`` and the ``json``/``text`` output formats.
- :mod:`.agent`: the Pod Identity agent, the projected token and the botocore backend.
- :mod:`.runtime`: the kubelet's container runtime and the platform binding (:func:`bind`).
"""

from __future__ import annotations

from labkit.embedded.simulators.awscli.runtime import RUNTIME, AwsCliRuntime, bind, is_aws_cli_image, register

__all__ = ["RUNTIME", "AwsCliRuntime", "bind", "is_aws_cli_image", "register"]
