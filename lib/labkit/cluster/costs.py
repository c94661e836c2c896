"""The running cost of the platform, readable: per hour, per month, fixed part and node part.

:func:`cost_now` reads what exists (the EKS cluster, its nodes from EC2 and from
Kubernetes, NAT gateways, load balancers) through :func:`labkit.aws.cost.meter` and
returns a :class:`CostView` that prints as text and renders as a table in a notebook.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from labkit.aws import cost
from labkit.aws.cost import HOURS_PER_MONTH, CostLine, CostReport
from labkit.aws.session import AwsSession
from labkit.errors import LabkitError
from labkit.kube.client import resolve
from labkit.kube.tables import Table
from labkit.settings import Settings

_FIXED_PREFIXES = ("EKS control plane", "NAT gateway")


def is_fixed(line: CostLine) -> bool:
    """Whether a cost line is paid per cluster whatever runs on it (control plane, NAT, load balancers)."""
    return line.item.startswith(_FIXED_PREFIXES) or line.item.endswith("load balancer")


@dataclass
class CostView:
    """A :class:`~labkit.aws.cost.CostReport` with the views a lab needs."""

    report: CostReport

    @property
    def usd_per_hour(self) -> float:
        return self.report.usd_per_hour

    @property
    def usd_per_month(self) -> float:
        return self.report.usd_per_month

    @property
    def fixed_usd_per_hour(self) -> float:
        """What the cluster costs with no workload: control plane, NAT gateways, load balancers."""
        return round(sum(line.usd_per_hour for line in self.report.lines if is_fixed(line)), 6)

    @property
    def nodes_usd_per_hour(self) -> float:
        """What the nodes cost (instances and the Auto Mode fee on them)."""
        return round(self.usd_per_hour - self.fixed_usd_per_hour, 6)

    def line(self, prefix: str) -> CostLine | None:
        """The first cost line whose item starts with ``prefix``."""
        return next((line for line in self.report.lines if line.item.strip().startswith(prefix)), None)

    def table(self) -> Table:
        rows = []
        for line in self.report.lines:
            unit = "unknown" if line.unit_usd_per_hour is None else f"{line.unit_usd_per_hour:.4f}"
            rows.append(
                (
                    line.item.strip(),
                    str(line.quantity),
                    unit,
                    f"{line.usd_per_hour:.4f}",
                    f"{line.usd_per_hour * HOURS_PER_MONTH:.2f}",
                    "fixed" if is_fixed(line) else "nodes",
                    line.source,
                )
            )
        return Table(("ITEM", "QTY", "$/H-EACH", "$/H", "$/MONTH", "KIND", "SOURCE"), tuple(rows), "running cost")

    def summary(self) -> str:
        return (
            f"${self.usd_per_hour:.4f}/hour = ${self.report.usd_per_day:.2f}/day = ${self.usd_per_month:,.2f}/month "
            f"({HOURS_PER_MONTH} h); fixed ${self.fixed_usd_per_hour:.4f}/h, nodes ${self.nodes_usd_per_hour:.4f}/h"
        )

    def __str__(self) -> str:
        return f"{self.report.to_text()}\n{self.summary()}"

    def _repr_html_(self) -> str:
        unpriced = self.report.unpriced
        note = f"<p>Not in the total (price unknown): {html.escape(', '.join(unpriced))}</p>" if unpriced else ""
        return f"{self.table().to_html()}<p><b>{html.escape(self.summary())}</b></p>{note}"


def cost_now(session: AwsSession, settings: Settings, *, kube: Any = None) -> CostView:
    """The platform's hourly cost now, nodes counted from EC2 and (when reachable) from Kubernetes."""
    nodes: list[dict[str, Any]] = []
    try:
        nodes = resolve(kube).list("v1", "Node").items
    except LabkitError:
        nodes = []  # no cluster API (yet): EC2 alone tells what runs
    return CostView(cost.meter(session, settings, nodes))
