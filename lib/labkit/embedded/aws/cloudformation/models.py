"""Delete support for EC2 resource types in moto's CloudFormation stacks.

moto 5.2 creates NAT gateways, Elastic IPs, internet gateways and their attachments,
route tables, routes and subnet associations from templates, but deleting a stack
leaves them behind, so the VPC cannot be deleted and the stack fails with
DependencyViolation. Deleting a stack really deletes these on AWS, in dependency
order; here each type gets the ``delete(account_id, region)`` method moto's stack
deletion calls, and moto's own retry loop finds the order (a resource whose
dependants still exist fails and is retried on the next pass).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

_installed = False
_lock = threading.Lock()


def _ec2(account_id: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account_id][region]


def _delete_nat_gateway(self: Any, account_id: str, region_name: str) -> None:
    ec2 = _ec2(account_id, region_name)
    eni = getattr(self, "_eni", None)
    if eni is not None:
        for address in list(ec2.addresses):
            if address.eni is eni:
                ec2.disassociate_address(address=address.public_ip)
        with contextlib.suppress(Exception):  # already gone
            ec2.delete_network_interface(eni.id)
    ec2.delete_nat_gateway(self.id)


def _delete_elastic_ip(self: Any, account_id: str, region_name: str) -> None:
    ec2 = _ec2(account_id, region_name)
    if self in ec2.addresses:
        ec2.release_address(address=self.public_ip)


def _delete_gateway_attachment(self: Any, account_id: str, region_name: str) -> None:
    ec2 = _ec2(account_id, region_name)
    gateway = str(self.gateway_id or "")
    if gateway.startswith("igw-"):
        igw = ec2.internet_gateways.get(gateway)
        if igw is not None and igw.vpc is not None:
            ec2.detach_internet_gateway(gateway, self.vpc_id)
    elif gateway.startswith("vgw-"):
        ec2.detach_vpn_gateway(gateway, self.vpc_id)


def _delete_internet_gateway(self: Any, account_id: str, region_name: str) -> None:
    ec2 = _ec2(account_id, region_name)
    if self.id in ec2.internet_gateways:
        ec2.delete_internet_gateway(self.id)


def _delete_route(self: Any, account_id: str, region_name: str) -> None:
    ec2 = _ec2(account_id, region_name)
    if self.route_table.id in ec2.route_tables and self.id in ec2.route_tables[self.route_table.id].routes:
        ec2.delete_route(self.route_table.id, self.destination_cidr_block)


def _delete_subnet_association(self: Any, account_id: str, region_name: str) -> None:
    ec2 = _ec2(account_id, region_name)
    table = ec2.route_tables.get(self.route_table_id)
    if table is None:
        return
    for association_id, subnet_id in list(table._associations.items()):
        if subnet_id == self.subnet_id:
            ec2.disassociate_route_table(association_id)


def _delete_route_table(self: Any, account_id: str, region_name: str) -> None:
    ec2 = _ec2(account_id, region_name)
    if self.id in ec2.route_tables:
        ec2.delete_route_table(self.id)


def install() -> None:
    """Give moto's EC2 CloudFormation models a ``delete`` (idempotent; process-wide, like moto's state)."""
    global _installed
    with _lock:
        if _installed:
            return
        from moto.ec2.models.elastic_ip_addresses import ElasticAddress
        from moto.ec2.models.internet_gateways import InternetGateway
        from moto.ec2.models.nat_gateways import NatGateway
        from moto.ec2.models.route_tables import Route, RouteTable
        from moto.ec2.models.subnets import SubnetRouteTableAssociation
        from moto.ec2.models.vpn_gateway import VPCGatewayAttachment

        for cls, fn in (
            (NatGateway, _delete_nat_gateway),
            (ElasticAddress, _delete_elastic_ip),
            (VPCGatewayAttachment, _delete_gateway_attachment),
            (InternetGateway, _delete_internet_gateway),
            (Route, _delete_route),
            (SubnetRouteTableAssociation, _delete_subnet_association),
            (RouteTable, _delete_route_table),
        ):
            if "delete" not in cls.__dict__:
                cls.delete = fn  # type: ignore[attr-defined]
        _installed = True
