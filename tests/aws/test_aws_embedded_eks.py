"""The embedded EKS: what moto lacks (Auto Mode fields, add-ons, access entries, Pod Identity, timing)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from wire_check import capture, check_all

from labkit.embedded.aws import EksEvent, EmbeddedAws, Timings

ADMIN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def _trust(service: str, actions: list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}],
        }
    )


@pytest.fixture
def world(session: Any, settings: Any) -> dict[str, Any]:
    """Two subnets in two zones and the roles a cluster needs, named after the test's cluster."""
    ec2, iam = session.client("ec2"), session.client("iam")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"us-west-2{z}")["Subnet"]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    name = settings.cluster_name
    roles = {
        "cluster": iam.create_role(
            RoleName=f"{name}-cl",
            AssumeRolePolicyDocument=_trust("eks.amazonaws.com", ["sts:AssumeRole", "sts:TagSession"]),
        )["Role"]["Arn"],
        "cluster_no_tag": iam.create_role(
            RoleName=f"{name}-cl2", AssumeRolePolicyDocument=_trust("eks.amazonaws.com", ["sts:AssumeRole"])
        )["Role"]["Arn"],
        "node": iam.create_role(
            RoleName=f"{name}-nd", AssumeRolePolicyDocument=_trust("ec2.amazonaws.com", ["sts:AssumeRole"])
        )["Role"]["Arn"],
        "pod": iam.create_role(
            RoleName=f"{name}-pd",
            AssumeRolePolicyDocument=_trust("pods.eks.amazonaws.com", ["sts:AssumeRole", "sts:TagSession"]),
        )["Role"]["Arn"],
        "pod_no_tag": iam.create_role(
            RoleName=f"{name}-pd2", AssumeRolePolicyDocument=_trust("pods.eks.amazonaws.com", ["sts:AssumeRole"])
        )["Role"]["Arn"],
    }
    return {"vpc": vpc, "subnets": subnets, "roles": roles, "name": name}


def _auto(world: dict[str, Any], **changes: Any) -> dict[str, Any]:
    request = {
        "name": world["name"],
        "version": "1.33",
        "roleArn": world["roles"]["cluster"],
        "resourcesVpcConfig": {"subnetIds": world["subnets"]},
        "accessConfig": {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False},
        "computeConfig": {
            "enabled": True,
            "nodePools": ["general-purpose", "system"],
            "nodeRoleArn": world["roles"]["node"],
        },
        "storageConfig": {"blockStorage": {"enabled": True}},
        "kubernetesNetworkConfig": {"elasticLoadBalancing": {"enabled": True}},
        "bootstrapSelfManagedAddons": False,
        "tags": {"purpose": "test"},
    }
    request.update(changes)
    return request


def _code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def test_auto_mode_fields_are_kept_and_echoed(session: Any, world: dict[str, Any], embedded_aws: EmbeddedAws) -> None:
    eks = session.client("eks")
    seen = capture(eks)
    embedded_aws.set_cluster_endpoint(lambda name: ("https://127.0.0.1:6443", "-----BEGIN CERTIFICATE-----\nAA\n"))
    try:
        created = eks.create_cluster(**_auto(world))["cluster"]
        described = eks.describe_cluster(name=world["name"])["cluster"]
    finally:
        embedded_aws.set_cluster_endpoint(None)
    for cluster in (created, described):
        assert cluster["computeConfig"] == _auto(world)["computeConfig"]
        assert cluster["storageConfig"] == {"blockStorage": {"enabled": True}}
        assert cluster["kubernetesNetworkConfig"]["elasticLoadBalancing"] == {"enabled": True}
        assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert described["endpoint"] == "https://127.0.0.1:6443"
    assert base64.b64decode(described["certificateAuthority"]["data"]).startswith(b"-----BEGIN CERTIFICATE-----")
    assert described["upgradePolicy"] == {"supportType": "EXTENDED"}, "EKS's default when none is asked for"
    group = described["resourcesVpcConfig"]["clusterSecurityGroupId"]
    assert (
        session.client("ec2").describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["VpcId"] == world["vpc"]
    )
    # EKS gives Auto Mode's node role an EC2 access entry with the Auto node policy
    entry = eks.describe_access_entry(clusterName=world["name"], principalArn=world["roles"]["node"])["accessEntry"]
    assert entry["type"] == "EC2"
    assert check_all(eks, seen) == []
    eks.delete_cluster(name=world["name"])
    with pytest.raises(ClientError):
        session.client("ec2").describe_security_groups(GroupIds=[group])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"storageConfig": {"blockStorage": {"enabled": False}}}, "all set to true"),
        ({"accessConfig": {"authenticationMode": "CONFIG_MAP"}}, "requires authenticationMode API"),
        ({"computeConfig": {"enabled": True, "nodePools": ["system"]}}, "nodeRoleArn is required"),
        ({"computeConfig": {"enabled": True, "nodePools": ["gpu"], "nodeRoleArn": "x"}}, "unknown built-in node pools"),
        ({"version": "1.20"}, "unsupported Kubernetes version"),
    ],
)
def test_create_cluster_rejects_what_eks_rejects(
    session: Any, world: dict[str, Any], change: Any, message: str
) -> None:
    with pytest.raises(ClientError, match=message) as err:
        session.client("eks").create_cluster(**_auto(world, **change))
    assert _code(err) == "InvalidParameterException"
    assert world["name"] not in session.client("eks").list_clusters()["clusters"]


def test_cluster_role_and_subnets_are_checked(session: Any, world: dict[str, Any]) -> None:
    eks = session.client("eks")
    with pytest.raises(ClientError, match="sts:TagSession"):
        eks.create_cluster(**_auto(world, roleArn=world["roles"]["cluster_no_tag"]))
    with pytest.raises(ClientError, match="at least 2 different AZs"):
        eks.create_cluster(**_auto(world, resourcesVpcConfig={"subnetIds": world["subnets"][:1]}))
    with pytest.raises(ClientError, match="does not exist"):
        eks.create_cluster(**_auto(world, resourcesVpcConfig={"subnetIds": ["subnet-0000", "subnet-0001"]}))
    # the standard profile does not need sts:TagSession
    standard = {
        k: v
        for k, v in _auto(world, roleArn=world["roles"]["cluster_no_tag"]).items()
        if k not in ("computeConfig", "storageConfig", "kubernetesNetworkConfig")
    }
    assert eks.create_cluster(**standard)["cluster"]["status"] == "ACTIVE"
    assert "computeConfig" not in eks.describe_cluster(name=world["name"])["cluster"]
    eks.delete_cluster(name=world["name"])


def _until(predicate: Any, what: str, timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


def test_status_follows_the_simulated_clock_and_events_fire(
    session: Any, world: dict[str, Any], embedded_aws: EmbeddedAws
) -> None:
    events: list[EksEvent] = []
    embedded_aws.add_eks_listener(events.append)
    # 1500 simulated seconds are 1.5 s of wall time at the test clock's scale of 1000
    embedded_aws.runtime.timings = Timings(cluster_create_s=1500.0, nodegroup_create_s=800.0, nodegroup_delete_s=800.0)
    eks = session.client("eks")
    name = world["name"]

    def kinds() -> list[str]:
        return [e.kind for e in events if e.cluster == name]

    try:
        assert eks.create_cluster(**_auto(world))["cluster"]["status"] == "CREATING"
        cluster = eks.describe_cluster(name=name)["cluster"]
        assert cluster["status"] == "CREATING"
        assert "endpoint" not in cluster
        with pytest.raises(ClientError, match="not in ACTIVE status"):
            eks.create_addon(clusterName=name, addonName="metrics-server")
        _until(lambda: eks.describe_cluster(name=name)["cluster"]["status"] == "ACTIVE", "cluster ACTIVE")
        _until(lambda: kinds() == ["cluster-active"], "cluster-active event")
        active = next(e for e in events if e.cluster == name)
        assert active.detail["profile"] == "auto"
        assert active.detail["nodePools"] == ["general-purpose", "system"]
        eks.create_nodegroup(
            clusterName=name,
            nodegroupName="sys",
            nodeRole=world["roles"]["node"],
            subnets=world["subnets"],
            instanceTypes=["m7i.large"],
            scalingConfig={"minSize": 1, "maxSize": 2, "desiredSize": 1},
        )
        assert eks.describe_nodegroup(clusterName=name, nodegroupName="sys")["nodegroup"]["status"] == "CREATING"
        nodegroup = _until(
            lambda: (
                (ng := eks.describe_nodegroup(clusterName=name, nodegroupName="sys")["nodegroup"])["status"] == "ACTIVE"
                and ng
            ),
            "node group ACTIVE",
        )
        assert "remoteAccess" not in nodegroup, "only node groups that ask for SSH access have it"
        assert eks.delete_nodegroup(clusterName=name, nodegroupName="sys")["nodegroup"]["status"] == "DELETING"
        with pytest.raises(ClientError) as err:
            eks.delete_cluster(name=name)
        assert _code(err) == "ResourceInUseException", "EKS refuses while a node group is still being deleted"
        _until(lambda: not eks.list_nodegroups(clusterName=name)["nodegroups"], "node group gone")
        _until(lambda: "nodegroup-deleted" in kinds(), "nodegroup-deleted event")
        eks.delete_cluster(name=name)
        assert kinds() == ["cluster-active", "nodegroup-active", "nodegroup-deleted", "cluster-deleted"]
        assert next(e for e in events if e.kind == "nodegroup-active").detail["instanceTypes"] == ["m7i.large"]
    finally:
        embedded_aws.remove_eks_listener(events.append)
        embedded_aws.runtime.timings = Timings.instant()


def test_access_entries_and_policies(session: Any, world: dict[str, Any]) -> None:
    eks = session.client("eks")
    seen = capture(eks)
    eks.create_cluster(**_auto(world))
    name = world["name"]
    person = "arn:aws:iam::123456789012:role/team/platform/Admin"
    entry = eks.create_access_entry(clusterName=name, principalArn=person, tags={"k": "v"})["accessEntry"]
    assert entry["type"] == "STANDARD"
    assert entry["username"] == "arn:aws:sts::123456789012:assumed-role/Admin/{{SessionName}}"
    with pytest.raises(ClientError) as err:
        eks.create_access_entry(clusterName=name, principalArn=person)
    assert _code(err) == "ResourceInUseException"
    associated = eks.associate_access_policy(
        clusterName=name, principalArn=person, policyArn=ADMIN, accessScope={"type": "cluster"}
    )["associatedAccessPolicy"]
    assert associated["policyArn"] == ADMIN
    assert eks.list_access_entries(clusterName=name, associatedPolicyArn=ADMIN)["accessEntries"] == [person]
    with pytest.raises(ClientError, match="namespaces is required"):
        eks.associate_access_policy(
            clusterName=name, principalArn=person, policyArn=ADMIN, accessScope={"type": "namespace"}
        )
    with pytest.raises(ClientError, match="policyArn is invalid"):
        eks.associate_access_policy(
            clusterName=name, principalArn=person, policyArn=ADMIN + "X", accessScope={"type": "cluster"}
        )
    node = eks.describe_access_entry(clusterName=name, principalArn=world["roles"]["node"])["accessEntry"]
    with pytest.raises(ClientError, match="type STANDARD"):
        eks.associate_access_policy(
            clusterName=name, principalArn=node["principalArn"], policyArn=ADMIN, accessScope={"type": "cluster"}
        )
    policies = [p["name"] for p in eks.list_access_policies()["accessPolicies"]]
    assert "AmazonEKSClusterAdminPolicy" in policies
    eks.disassociate_access_policy(clusterName=name, principalArn=person, policyArn=ADMIN)
    assert eks.list_associated_access_policies(clusterName=name, principalArn=person)["associatedAccessPolicies"] == []
    eks.delete_access_entry(clusterName=name, principalArn=person)
    with pytest.raises(ClientError) as err:
        eks.describe_access_entry(clusterName=name, principalArn=person)
    assert _code(err) == "ResourceNotFoundException"
    assert check_all(eks, seen) == []
    eks.delete_cluster(name=name)


def test_config_map_clusters_have_no_access_entries(session: Any, world: dict[str, Any]) -> None:
    eks = session.client("eks")
    request = {
        k: v
        for k, v in _auto(world).items()
        if k not in ("computeConfig", "storageConfig", "kubernetesNetworkConfig", "accessConfig")
    }
    eks.create_cluster(**request)
    with pytest.raises(ClientError, match="authentication mode"):
        eks.create_access_entry(clusterName=world["name"], principalArn="arn:aws:iam::123456789012:role/x")
    eks.delete_cluster(name=world["name"])


def test_creator_gets_admin_when_bootstrap_is_left_on(session: Any, world: dict[str, Any]) -> None:
    eks = session.client("eks")
    eks.create_cluster(**_auto(world, accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"}))
    creator = "arn:aws:iam::123456789012:user/moto"  # who moto says the dummy credentials are
    policies = eks.list_associated_access_policies(clusterName=world["name"], principalArn=creator)
    assert [p["policyArn"] for p in policies["associatedAccessPolicies"]] == [ADMIN]
    eks.delete_cluster(name=world["name"])


def _token(namespace: str, name: str) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": f"system:serviceaccount:{namespace}:{name}", "aud": ["pods.eks.amazonaws.com"]}
    return f"{part({'alg': 'RS256'})}.{part(claims)}.sig"


def test_pod_identity_associations_and_credentials(
    session: Any, world: dict[str, Any], embedded_aws: EmbeddedAws
) -> None:
    eks = session.client("eks")
    seen = capture(eks)
    name = world["name"]
    eks.create_cluster(**_auto(world))
    created = eks.create_pod_identity_association(
        clusterName=name, namespace="demo", serviceAccount="reader", roleArn=world["roles"]["pod"]
    )["association"]
    assert created["associationId"].startswith("a-")
    with pytest.raises(ClientError) as err:
        eks.create_pod_identity_association(
            clusterName=name, namespace="demo", serviceAccount="reader", roleArn=world["roles"]["pod"]
        )
    assert _code(err) == "ResourceInUseException"
    listed = eks.list_pod_identity_associations(clusterName=name, namespace="demo")["associations"]
    assert [a["associationId"] for a in listed] == [created["associationId"]]
    auth = session.client("eks-auth")
    answer = auth.assume_role_for_pod_identity(clusterName=name, token=_token("demo", "reader"))
    assert answer["assumedRoleUser"]["arn"].startswith(f"arn:aws:sts::123456789012:assumed-role/{name}-pd/")
    creds = answer["credentials"]
    sts = session.boto.client(
        "sts",
        aws_access_key_id=creds["accessKeyId"],
        aws_secret_access_key=creds["secretAccessKey"],
        aws_session_token=creds["sessionToken"],
    )
    assert sts.get_caller_identity()["Arn"] == answer["assumedRoleUser"]["arn"], "the pod really is the role"
    assert embedded_aws.pod_identity_credentials(name, "demo", "reader")["subject"] == {
        "namespace": "demo",
        "serviceAccount": "reader",
    }
    with pytest.raises(ClientError) as err:
        auth.assume_role_for_pod_identity(clusterName=name, token=_token("demo", "nobody"))
    assert _code(err) == "ResourceNotFoundException"
    eks.update_pod_identity_association(
        clusterName=name, associationId=created["associationId"], roleArn=world["roles"]["pod_no_tag"]
    )
    with pytest.raises(PermissionError, match="sts:TagSession"):
        embedded_aws.pod_identity_credentials(name, "demo", "reader")
    eks.delete_pod_identity_association(clusterName=name, associationId=created["associationId"])
    assert eks.list_pod_identity_associations(clusterName=name)["associations"] == []
    assert check_all(eks, seen) == []
    eks.delete_cluster(name=name)


def test_addons_versions_and_tags(session: Any, world: dict[str, Any]) -> None:
    eks = session.client("eks")
    seen = capture(eks)
    name = world["name"]
    eks.create_cluster(**_auto(world, version="1.32"))
    versions = eks.describe_addon_versions(addonName="coredns", kubernetesVersion="1.32")["addons"][0]["addonVersions"]
    default = next(v["addonVersion"] for v in versions if v["compatibilities"][0]["defaultVersion"])
    addon = eks.create_addon(clusterName=name, addonName="coredns", tags={"team": "a"})["addon"]
    assert addon["addonVersion"] == default
    with pytest.raises(ClientError, match="not supported"):
        eks.create_addon(clusterName=name, addonName="no-such-addon")
    with pytest.raises(ClientError, match=r"not supported on Kubernetes 1\.32"):
        eks.create_addon(clusterName=name, addonName="kube-proxy", addonVersion="v1.34.0-eksbuild.1")
    eks.tag_resource(resourceArn=addon["addonArn"], tags={"more": "yes"})
    assert eks.list_tags_for_resource(resourceArn=addon["addonArn"])["tags"] == {"team": "a", "more": "yes"}
    eks.untag_resource(resourceArn=addon["addonArn"], tagKeys=["team"])
    cluster_arn = eks.describe_cluster(name=name)["cluster"]["arn"]
    eks.tag_resource(resourceArn=cluster_arn, tags={"labkit:test": name})
    tagged = session.pages(
        "resourcegroupstaggingapi",
        "get_resources",
        "ResourceTagMappingList",
        TagFilters=[{"Key": "more", "Values": ["yes"]}],
    )
    assert [t["ResourceARN"] for t in tagged] == [addon["addonArn"]]
    tagged = session.pages(
        "resourcegroupstaggingapi",
        "get_resources",
        "ResourceTagMappingList",
        TagFilters=[{"Key": "labkit:test", "Values": [name]}],
    )
    assert [t["ResourceARN"] for t in tagged] == [cluster_arn]
    update = eks.update_addon(clusterName=name, addonName="coredns", addonVersion=default)["update"]
    assert update["status"] == "Successful"
    assert eks.delete_addon(clusterName=name, addonName="coredns")["addon"]["status"] == "DELETING"
    assert eks.list_addons(clusterName=name)["addons"] == []
    assert check_all(eks, seen) == []
    eks.delete_cluster(name=name)
