"""Quota state: the dated EC2 quota table plus values set for tests or demonstrations."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from labkit.embedded.aws import catalog
from labkit.embedded.aws.wire import ShimError

EC2 = "ec2"


def no_such_quota(service_code: str, quota_code: str) -> ShimError:
    return ShimError(
        "NoSuchResourceException",
        f"The request failed because the specified quota {quota_code} for service {service_code} does not exist.",
        400,
    )


@dataclass
class QuotaBook:
    """Applied EC2 quota values: the table's, unless :meth:`set` changed them.

    Overrides are keyed by region; ``None`` applies to every region without its own.
    """

    _overrides: dict[tuple[str | None, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def table() -> dict[str, Any]:
        return catalog.quotas()

    def codes(self) -> list[str]:
        return [q["code"] for q in self.table()["quotas"]]

    def set(self, quota_code: str, value: float, region: str | None = None) -> None:
        if quota_code not in self.codes():
            raise KeyError(f"unknown EC2 quota code {quota_code}; known: {', '.join(self.codes())}")
        with self._lock:
            self._overrides[(region, quota_code)] = float(value)

    def reset(self) -> None:
        with self._lock:
            self._overrides.clear()

    def _entry(self, quota_code: str) -> dict[str, Any]:
        for entry in self.table()["quotas"]:
            if entry["code"] == quota_code:
                return entry
        raise no_such_quota(EC2, quota_code)

    def value(self, quota_code: str, region: str) -> float:
        entry = self._entry(quota_code)
        with self._lock:
            for key in ((region, quota_code), (None, quota_code)):
                if key in self._overrides:
                    return self._overrides[key]
        return float(entry["value"])

    def quota(self, quota_code: str, region: str, account_id: str, *, default: bool = False) -> dict[str, Any]:
        """The ``ServiceQuota`` structure of the API."""
        entry = self._entry(quota_code)
        table = self.table()
        klass, _, kind = entry["usage_class"].partition("/")
        return {
            "ServiceCode": EC2,
            "ServiceName": table["service_name"],
            "QuotaArn": f"arn:aws:servicequotas:{region}:{'' if default else account_id}:ec2/{quota_code}",
            "QuotaCode": quota_code,
            "QuotaName": entry["name"],
            "Value": float(entry["default"]) if default else self.value(quota_code, region),
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
            "UsageMetric": {
                "MetricNamespace": "AWS/Usage",
                "MetricName": "ResourceCount",
                "MetricDimensions": {
                    "Class": f"{klass}/{kind}",
                    "Resource": "vCPU",
                    "Service": "EC2",
                    "Type": "Resource",
                },
                "MetricStatisticRecommendation": "Maximum",
            },
            "QuotaAppliedAtLevel": "ACCOUNT",
            "Description": f"Maximum number of vCPUs assigned to the {entry['name']}",
        }
