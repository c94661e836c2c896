"""The embedded AWS: moto in server mode in-process, plus a shim for what moto lacks.

The shim completes moto where the kit needs more than moto offers: the Price List API
(EC2 products), Service Quotas for EC2, realistic spot price history, SSM parameters of
EKS-optimized AMIs, EKS Auto Mode fields, add-ons, access entries, Pod Identity
(including ``eks-auth``), and CloudFormation deletion of VPC resources. Each service is
split like moto: ``models`` (state), ``responses`` (wire format), ``urls`` (routes).
"""

from labkit.embedded.aws.runtime import ClusterEndpoint, EksEvent, Timings
from labkit.embedded.aws.server import EmbeddedAws

__all__ = ["ClusterEndpoint", "EksEvent", "EmbeddedAws", "Timings"]
