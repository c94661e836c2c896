"""The kit's AWS layer: boto3 only, the same code on every target.

- :mod:`~labkit.aws.session`: the session and the one choke point mapping botocore errors.
- :mod:`~labkit.aws.preflight`: identity, region and quota checks before anything is created.
- :mod:`~labkit.aws.vpc`, :mod:`~labkit.aws.iam`, :mod:`~labkit.aws.eks`, :mod:`~labkit.aws.karpenter`:
  the Week 1 platform (VPC, roles, cluster in the ``auto`` or ``standard`` profile).
- :mod:`~labkit.aws.prices`, :mod:`~labkit.aws.cost`: prices with provenance and the running cost meter.
- :mod:`~labkit.aws.teardown`: teardown in dependency order, the survivors check and the sweeper.
"""

from labkit.aws.session import AwsSession, connect

__all__ = ["AwsSession", "connect"]
