"""Wire format of the embedded Service Quotas (json protocol); non-EC2 requests go to moto."""

from __future__ import annotations

from typing import Any

from labkit.embedded.aws.servicequotas.models import EC2, QuotaBook, no_such_quota
from labkit.embedded.aws.wire import Forward, ShimRequest, ShimResponse, amz_json_response, paginate


class ServiceQuotasResponses:
    def __init__(self, book: QuotaBook) -> None:
        self.book = book

    def _one(self, request: ShimRequest, params: dict[str, Any], forward: Forward, *, default: bool) -> ShimResponse:
        if params.get("ServiceCode") != EC2:
            return forward()
        code = params.get("QuotaCode", "")
        if code not in self.book.codes():
            raise no_such_quota(EC2, code)
        return amz_json_response({"Quota": self.book.quota(code, request.region, request.account_id, default=default)})

    def _list(self, request: ShimRequest, params: dict[str, Any], forward: Forward, *, default: bool) -> ShimResponse:
        if params.get("ServiceCode") != EC2:
            return forward()
        codes = self.book.codes()
        if params.get("QuotaCode"):
            codes = [c for c in codes if c == params["QuotaCode"]]
        quotas = [self.book.quota(c, request.region, request.account_id, default=default) for c in codes]
        page, token = paginate(quotas, params.get("MaxResults"), params.get("NextToken"))
        out: dict[str, Any] = {"Quotas": page}
        if token:
            out["NextToken"] = token
        return amz_json_response(out)

    def get_service_quota(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        return self._one(request, params, forward, default=False)

    def get_aws_default_service_quota(
        self, request: ShimRequest, params: dict[str, Any], forward: Forward
    ) -> ShimResponse:
        return self._one(request, params, forward, default=True)

    def list_service_quotas(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        return self._list(request, params, forward, default=False)

    def list_aws_default_service_quotas(
        self, request: ShimRequest, params: dict[str, Any], forward: Forward
    ) -> ShimResponse:
        return self._list(request, params, forward, default=True)
