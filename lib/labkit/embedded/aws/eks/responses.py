"""Wire format of the embedded EKS additions (rest-json).

Cluster and node group calls go to moto and come back with what moto leaves out
(Auto Mode fields, status timing, the embedded Kubernetes endpoint); add-ons, access
entries and Pod Identity are answered here. ``eks-auth`` AssumeRoleForPodIdentity
turns a service account token into the associated role's credentials.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

from labkit.embedded.aws.eks.models import (
    POD_IDENTITY_PRINCIPAL,
    EksShimBackend,
    access_policy_arns,
    addon_catalog,
    eks_shim_backends,
    trusts,
)
from labkit.embedded.aws.runtime import EksEvent, ShimRuntime
from labkit.embedded.aws.wire import (
    Forward,
    ShimError,
    ShimRequest,
    ShimResponse,
    b64,
    invalid_parameter,
    json_response,
    not_found,
    paginate,
)


def _page(items: list[Any], params: dict[str, Any], key: str) -> dict[str, Any]:
    page, token = paginate(items, params.get("maxResults"), params.get("nextToken"))
    out: dict[str, Any] = {key: page}
    if token:
        out["nextToken"] = token
    return out


class EksResponses:
    """Handlers for the EKS operations the shim answers or completes."""

    def __init__(self, runtime: ShimRuntime) -> None:
        self.runtime = runtime

    def backend(self, request: ShimRequest) -> EksShimBackend:
        return eks_shim_backends[request.account_id][request.region]

    def now(self) -> float:
        return self.runtime.now()

    def _endpoint(self, name: str) -> tuple[str, str] | None:
        found = self.runtime.endpoint_for(name)
        return None if found is None else (found.url, b64(found.ca_pem))

    def _caller_arn(self, request: ShimRequest) -> str:
        from moto.sts.models import sts_backends
        from moto.utilities.utils import get_partition

        backend = sts_backends[request.account_id][get_partition(request.region)]
        _, arn, _ = backend.get_caller_identity(request.access_key, request.region)
        return str(arn)

    def _emit_later(self, delay: float, event: EksEvent, still: Any = None) -> None:
        def fire() -> None:
            if still is None or still():
                self.runtime.emit(event)

        self.runtime.later(delay, fire)

    # --- clusters ------------------------------------------------------------------------------

    def create_cluster(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        backend = self.backend(request)
        body = backend.validate_cluster_request(dict(request.json))
        response = forward(body=json.dumps(body).encode())
        if not response.ok:
            return response
        now = self.now()
        delay = self.runtime.timings.cluster_create_s
        with self.runtime.lock:
            state = backend.register_cluster(
                body, now, self.runtime.clock.wall_seconds(delay), self._caller_arn(request)
            )
        cluster = backend.render_cluster(response.json()["cluster"], now, self._endpoint(state.name))
        self.runtime.later(delay, lambda: backend.clusters.get(state.name) is state and self._activate(request, state))
        return json_response({"cluster": cluster})

    def _activate(self, request: ShimRequest, state: Any) -> None:
        """Tell listeners the cluster is ACTIVE, once (from the timer or a DescribeCluster, whichever is first)."""
        detail = {
            "profile": state.profile,
            "version": state.version,
            "nodePools": list((state.compute_config or {}).get("nodePools") or []),
        }
        # Held while listeners run, so a concurrent DescribeCluster waits for the endpoint they provide.
        with self.runtime.lock:
            if state.activated:
                return
            state.activated = True
            self.runtime.emit(EksEvent("cluster-active", request.account_id, request.region, state.name, None, detail))

    def describe_cluster(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        response = forward()
        if not response.ok:
            return response
        cluster = response.json()["cluster"]
        backend = self.backend(request)
        state = backend.clusters.get(cluster["name"])
        now = self.now()
        if state is not None and now >= state.ready_at and self.runtime.endpoint_provider is not None:
            # ACTIVE by the clock: make sure listeners were told (once; this waits while another thread
            # is telling them), so an ACTIVE cluster always reports its real endpoint.
            self._activate(request, state)
        rendered = backend.render_cluster(cluster, now, self._endpoint(cluster["name"]))
        return json_response({"cluster": rendered})

    def delete_cluster(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        backend = self.backend(request)
        name = params["name"]
        before = forward(method="GET")
        response = forward()
        if not response.ok:
            return response
        cluster = backend.render_cluster(before.json()["cluster"], self.now(), None) if before.ok else {}
        with self.runtime.lock:
            state = backend.forget_cluster(name)
        cluster["status"] = "DELETING"
        self.runtime.emit(
            EksEvent(
                "cluster-deleted",
                request.account_id,
                request.region,
                name,
                None,
                {"profile": state.profile if state else "standard"},
            )
        )
        return json_response({"cluster": cluster or response.json().get("cluster", {})})

    # --- node groups ---------------------------------------------------------------------------

    def create_nodegroup(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        backend = self.backend(request)
        cluster = params["clusterName"]
        now = self.now()
        backend.require_cluster(cluster, now)
        body = dict(request.json)
        role = backend.role(str(body.get("nodeRole", "")), "Node role")
        if not trusts(role.assume_role_policy_document, "ec2.amazonaws.com", ("sts:AssumeRole",)):
            raise invalid_parameter(f"Node role {body.get('nodeRole')} must trust ec2.amazonaws.com")
        backend.validate_subnets(list(body.get("subnets") or []))
        known = {t["InstanceType"] for t in backend.ec2.describe_instance_types()}
        unknown = [t for t in body.get("instanceTypes") or [] if t not in known]
        if unknown:
            raise invalid_parameter(f"Instance types {unknown} are not valid")
        response = forward()
        if not response.ok:
            return response
        delay = self.runtime.timings.nodegroup_create_s
        with self.runtime.lock:
            state = backend.register_nodegroup(cluster, body, now, self.runtime.clock.wall_seconds(delay))
        nodegroup = backend.render_nodegroup(response.json()["nodegroup"], now)
        detail = {
            k: nodegroup.get(k)
            for k in ("instanceTypes", "scalingConfig", "capacityType", "labels", "taints", "amiType", "subnets")
        }
        event = EksEvent("nodegroup-active", request.account_id, request.region, cluster, state.name, detail)
        self._emit_later(delay, event, lambda: backend.nodegroups.get((cluster, state.name)) is state)
        return json_response({"nodegroup": nodegroup})

    def describe_nodegroup(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        response = forward()
        if not response.ok:
            return response
        nodegroup = self.backend(request).render_nodegroup(response.json()["nodegroup"], self.now())
        return json_response({"nodegroup": nodegroup})

    def delete_nodegroup(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        backend = self.backend(request)
        cluster, name = params["clusterName"], params["nodegroupName"]
        described = forward(method="GET")
        if not described.ok:
            return described
        delay = self.runtime.timings.nodegroup_delete_s
        state = backend.nodegroups.get((cluster, name))

        def finish() -> None:
            with self.runtime.lock:
                if cluster in backend.moto.clusters and name in backend.moto.clusters[cluster].nodegroups:
                    backend.moto.delete_nodegroup(cluster_name=cluster, nodegroup_name=name)
                backend.nodegroups.pop((cluster, name), None)
            self.runtime.emit(EksEvent("nodegroup-deleted", request.account_id, request.region, cluster, name))

        if state is not None:
            state.deleting = True
        nodegroup = backend.render_nodegroup(described.json()["nodegroup"], self.now())
        nodegroup["status"] = "DELETING"
        if delay <= 0 or state is None:
            response = forward()
            if not response.ok:
                return response
            backend.nodegroups.pop((cluster, name), None)
            self.runtime.emit(EksEvent("nodegroup-deleted", request.account_id, request.region, cluster, name))
        else:
            self.runtime.later(delay, finish)
        return json_response({"nodegroup": nodegroup})

    # --- tags ----------------------------------------------------------------------------------

    @staticmethod
    def _is_cluster_arn(arn: str) -> bool:
        return ":cluster/" in arn

    def tag_resource(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        if self._is_cluster_arn(params["resourceArn"]):
            return forward()
        with self.runtime.lock:
            self.backend(request).tag_resource(params["resourceArn"], dict(params.get("tags") or {}))
        return json_response({})

    def untag_resource(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        if self._is_cluster_arn(params["resourceArn"]):
            return forward()
        with self.runtime.lock:
            self.backend(request).untag_resource(params["resourceArn"], list(params.get("tagKeys") or []))
        return json_response({})

    def list_tags_for_resource(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        if self._is_cluster_arn(params["resourceArn"]):
            return forward()
        tags = self.backend(request).tags_of(params["resourceArn"])
        if tags is None:
            raise not_found(f"Resource was not found: {params['resourceArn']}")
        return json_response({"tags": dict(tags)})

    # --- add-ons -------------------------------------------------------------------------------

    def create_addon(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        backend = self.backend(request)
        cluster = params["clusterName"]
        now = self.now()
        delay = self.runtime.timings.addon_create_s
        with self.runtime.lock:
            addon = backend.create_addon(cluster, params, now, self.runtime.clock.wall_seconds(delay))
        event = EksEvent(
            "addon-active", request.account_id, request.region, cluster, addon.name, {"version": addon.version}
        )
        self._emit_later(delay, event, lambda: backend.addons.get((cluster, addon.name)) is addon)
        return json_response({"addon": addon.describe(now)})

    def describe_addon(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        addon = self.backend(request).addon(params["clusterName"], params["addonName"])
        return json_response({"addon": addon.describe(self.now())})

    def list_addons(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        backend = self.backend(request)
        backend.require_cluster(params["clusterName"], self.now(), active=False)
        names = sorted(name for cluster, name in backend.addons if cluster == params["clusterName"])
        return json_response(_page(names, params, "addons"))

    def update_addon(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        now = self.now()
        with self.runtime.lock:
            addon = self.backend(request).update_addon(params["clusterName"], params["addonName"], params, now)
        update = {
            "id": uuid.uuid4().hex,
            "status": "Successful",
            "type": "AddonUpdate",
            "params": [{"type": "AddonVersion", "value": addon.version}],
            "createdAt": now,
            "errors": [],
        }
        return json_response({"update": update})

    def delete_addon(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        backend = self.backend(request)
        cluster, name = params["clusterName"], params["addonName"]
        now = self.now()
        with self.runtime.lock:
            addon = backend.addon(cluster, name)
            addon.deleting = True
            description = addon.describe(now)
        delay = self.runtime.timings.addon_delete_s

        def finish() -> None:
            with self.runtime.lock:
                if backend.addons.get((cluster, name)) is addon:
                    backend.remove_addon(cluster, name)
            self.runtime.emit(EksEvent("addon-deleted", request.account_id, request.region, cluster, name))

        self.runtime.later(delay, finish)
        return json_response({"addon": description})

    def describe_addon_versions(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        wanted_k8s = params.get("kubernetesVersion")
        wanted_types = set(params.get("types") or [])
        out = []
        for name, spec in sorted(addon_catalog().items()):
            if params.get("addonName") and params["addonName"] != name:
                continue
            if wanted_types and spec["type"] not in wanted_types:
                continue
            versions = []
            for entry in spec["versions"]:
                k8s = [v for v in entry["kubernetes"] if not wanted_k8s or v == wanted_k8s]
                if not k8s:
                    continue
                versions.append(
                    {
                        "addonVersion": entry["version"],
                        "architecture": ["amd64", "arm64"],
                        "computeTypes": ["ec2", "auto", "hybrid"],
                        "compatibilities": [
                            {
                                "clusterVersion": v,
                                "platformVersions": ["*"],
                                "defaultVersion": v in entry.get("default_for", []),
                            }
                            for v in k8s
                        ],
                        "requiresConfiguration": False,
                        "requiresIamPermissions": name in ("vpc-cni", "aws-ebs-csi-driver"),
                    }
                )
            if versions:
                out.append(
                    {
                        "addonName": name,
                        "type": spec["type"],
                        "addonVersions": versions,
                        "owner": "aws",
                        "publisher": "eks",
                    }
                )
        return json_response(_page(out, params, "addons"))

    # --- access entries ------------------------------------------------------------------------

    def create_access_entry(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        with self.runtime.lock:
            entry = self.backend(request).create_access_entry(
                params["clusterName"],
                str(params.get("principalArn", "")),
                entry_type=params.get("type"),
                username=params.get("username"),
                groups=list(params.get("kubernetesGroups") or []),
                tags=dict(params.get("tags") or {}),
                now=self.now(),
            )
        return json_response({"accessEntry": entry.describe()})

    def describe_access_entry(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        entry = self.backend(request).access_entry(params["clusterName"], params["principalArn"])
        return json_response({"accessEntry": entry.describe()})

    def list_access_entries(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        backend = self.backend(request)
        cluster = params["clusterName"]
        backend.require_cluster(cluster, self.now(), active=False)
        policy = params.get("associatedPolicyArn")
        arns = sorted(
            entry.principal_arn
            for (c, _), entry in backend.access_entries.items()
            if c == cluster and (not policy or policy in entry.policies)
        )
        return json_response(_page(arns, params, "accessEntries"))

    def update_access_entry(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        with self.runtime.lock:
            entry = self.backend(request).access_entry(params["clusterName"], params["principalArn"])
            if "kubernetesGroups" in params:
                if entry.type != "STANDARD" and params["kubernetesGroups"]:
                    raise invalid_parameter("kubernetesGroups can only be set on STANDARD access entries")
                entry.kubernetes_groups = list(params["kubernetesGroups"])
            if params.get("username"):
                entry.username = params["username"]
            entry.modified_at = self.now()
        return json_response({"accessEntry": entry.describe()})

    def delete_access_entry(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        backend = self.backend(request)
        with self.runtime.lock:
            backend.access_entry(params["clusterName"], params["principalArn"])
            backend.access_entries.pop((params["clusterName"], params["principalArn"]))
        return json_response({})

    def associate_access_policy(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        cluster, principal = params["clusterName"], params["principalArn"]
        with self.runtime.lock:
            associated = self.backend(request).associate_access_policy(
                cluster, principal, str(params.get("policyArn", "")), dict(params.get("accessScope") or {}), self.now()
            )
        return json_response(
            {"clusterName": cluster, "principalArn": principal, "associatedAccessPolicy": associated.describe()}
        )

    def disassociate_access_policy(
        self, request: ShimRequest, params: dict[str, Any], forward: Forward
    ) -> ShimResponse:
        with self.runtime.lock:
            entry = self.backend(request).access_entry(params["clusterName"], params["principalArn"])
            if params["policyArn"] not in entry.policies:
                raise not_found(
                    f"The specified policy {params['policyArn']} is not associated with {entry.principal_arn}"
                )
            entry.policies.pop(params["policyArn"])
        return json_response({})

    def list_associated_access_policies(
        self, request: ShimRequest, params: dict[str, Any], forward: Forward
    ) -> ShimResponse:
        entry = self.backend(request).access_entry(params["clusterName"], params["principalArn"])
        out = _page([p.describe() for p in entry.policies.values()], params, "associatedAccessPolicies")
        out.update({"clusterName": entry.cluster, "principalArn": entry.principal_arn})
        return json_response(out)

    def list_access_policies(self, request: ShimRequest, params: dict[str, Any], forward: Forward) -> ShimResponse:
        policies = [{"name": arn.rsplit("/", 1)[1], "arn": arn} for arn in access_policy_arns()]
        return json_response(_page(policies, params, "accessPolicies"))

    # --- Pod Identity --------------------------------------------------------------------------

    def create_pod_identity_association(
        self, request: ShimRequest, params: dict[str, Any], forward: Forward
    ) -> ShimResponse:
        with self.runtime.lock:
            assoc = self.backend(request).create_pod_identity(
                params["clusterName"],
                namespace=str(params.get("namespace", "")),
                service_account=str(params.get("serviceAccount", "")),
                role_arn=str(params.get("roleArn", "")),
                tags=dict(params.get("tags") or {}),
                now=self.now(),
                disable_session_tags=bool(params.get("disableSessionTags", False)),
                target_role_arn=params.get("targetRoleArn"),
            )
        return json_response({"association": assoc.describe()})

    def describe_pod_identity_association(
        self, request: ShimRequest, params: dict[str, Any], forward: Forward
    ) -> ShimResponse:
        assoc = self.backend(request).pod_identity(params["clusterName"], params["associationId"])
        return json_response({"association": assoc.describe()})

    def list_pod_identity_associations(
        self, request: ShimRequest, params: dict[str, Any], forward: Forward
    ) -> ShimResponse:
        backend = self.backend(request)
        cluster = params["clusterName"]
        backend.require_cluster(cluster, self.now(), active=False)
        found = [
            a.summary()
            for (c, _), a in sorted(backend.pod_identities.items())
            if c == cluster
            and (not params.get("namespace") or a.namespace == params["namespace"])
            and (not params.get("serviceAccount") or a.service_account == params["serviceAccount"])
        ]
        return json_response(_page(found, params, "associations"))

    def update_pod_identity_association(
        self, request: ShimRequest, params: dict[str, Any], forward: Forward
    ) -> ShimResponse:
        backend = self.backend(request)
        with self.runtime.lock:
            assoc = backend.pod_identity(params["clusterName"], params["associationId"])
            if params.get("roleArn"):
                backend.role(params["roleArn"], "Role")
                assoc.role_arn = params["roleArn"]
            if "disableSessionTags" in params:
                assoc.disable_session_tags = bool(params["disableSessionTags"])
            assoc.modified_at = self.now()
        return json_response({"association": assoc.describe()})

    def delete_pod_identity_association(
        self, request: ShimRequest, params: dict[str, Any], forward: Forward
    ) -> ShimResponse:
        backend = self.backend(request)
        with self.runtime.lock:
            assoc = backend.pod_identity(params["clusterName"], params["associationId"])
            backend.pod_identities.pop((assoc.cluster, assoc.association_id))
        return json_response({"association": assoc.describe()})

    # --- eks-auth --------------------------------------------------------------------------------

    def assume_role_for_pod_identity(
        self, request: ShimRequest, params: dict[str, Any], forward: Forward
    ) -> ShimResponse:
        namespace, service_account = service_account_of(str(params.get("token", "")))
        creds = pod_identity_credentials(
            request.account_id, request.region, params["clusterName"], namespace, service_account
        )
        return json_response(creds)


def service_account_of(token: str) -> tuple[str, str]:
    """Namespace and name of the service account a projected token was issued to.

    The embedded AWS reads the token's claims without checking its signature: the
    embedded Kubernetes API server is the only issuer on 127.0.0.1.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise ShimError("InvalidTokenException", "The token is not a valid service account token") from exc
    k8s = claims.get("kubernetes.io") or {}
    if k8s.get("namespace") and (k8s.get("serviceaccount") or {}).get("name"):
        return str(k8s["namespace"]), str(k8s["serviceaccount"]["name"])
    subject = str(claims.get("sub", ""))
    parts = subject.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return parts[2], parts[3]
    raise ShimError("InvalidTokenException", "The token does not name a service account")


def pod_identity_credentials(
    account_id: str, region: str, cluster: str, namespace: str, service_account: str
) -> dict[str, Any]:
    """What AssumeRoleForPodIdentity returns for a service account (raises ShimError otherwise)."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    backend = eks_shim_backends[account_id][region]
    if cluster not in backend.clusters:
        raise not_found(f"No cluster found for name: {cluster}.")
    assoc = backend.pod_identity_for(cluster, namespace, service_account)
    if assoc is None:
        raise not_found(f"No Pod Identity Association for service account {namespace}/{service_account}")
    partition = get_partition(region)
    try:
        role = iam_backends[account_id][partition].get_role_by_arn(assoc.role_arn)
    except Exception:
        raise ShimError("AccessDeniedException", f"Role {assoc.role_arn} does not exist", 403) from None
    if not trusts(role.assume_role_policy_document, POD_IDENTITY_PRINCIPAL, ("sts:AssumeRole", "sts:TagSession")):
        raise ShimError(
            "AccessDeniedException",
            f"Role {assoc.role_arn} does not trust {POD_IDENTITY_PRINCIPAL} with sts:AssumeRole and sts:TagSession",
            403,
        )
    session = f"eks-{cluster}-{service_account}"[:64]
    assumed = sts_backends[account_id][partition].assume_role(
        region_name=region,
        role_session_name=session,
        role_arn=assoc.role_arn,
        policy="",
        duration=21600,
        external_id="",
    )
    expiration = assumed.expiration
    if isinstance(expiration, dt.datetime) and expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=dt.UTC)
    return {
        "subject": {"namespace": namespace, "serviceAccount": service_account},
        "audience": POD_IDENTITY_PRINCIPAL,
        "podIdentityAssociation": {"associationArn": assoc.arn, "associationId": assoc.association_id},
        "assumedRoleUser": {"arn": assumed.arn, "assumeRoleId": assumed.user_id},
        "credentials": {
            "sessionToken": assumed.session_token,
            "secretAccessKey": assumed.secret_access_key,
            "accessKeyId": assumed.access_key_id,
            "expiration": expiration,
        },
    }
