"""Routes of the embedded Service Quotas."""

from __future__ import annotations

from labkit.embedded.aws.servicequotas.models import QuotaBook
from labkit.embedded.aws.servicequotas.responses import ServiceQuotasResponses
from labkit.embedded.aws.wire import Route, target_route

SERVICE = "service-quotas"


def routes(book: QuotaBook) -> list[Route]:
    r = ServiceQuotasResponses(book)
    return [
        target_route(SERVICE, "GetServiceQuota", r.get_service_quota),
        target_route(SERVICE, "GetAWSDefaultServiceQuota", r.get_aws_default_service_quota),
        target_route(SERVICE, "ListServiceQuotas", r.list_service_quotas),
        target_route(SERVICE, "ListAWSDefaultServiceQuotas", r.list_aws_default_service_quotas),
    ]
