"""The Week 1 lab steps on the embedded platform: plan, build, inspect, Pod Identity, cost, teardown.

One platform (Auto Mode, fast clock) for the module; the tests run in file order, the
last one tears down and finds nothing tagged left.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from labkit import cluster
from labkit import settings as settings_mod
from labkit.aws import connect, eks, iam, preflight, teardown
from labkit.aws.session import AwsSession
from labkit.cluster import podidentity
from labkit.kube import Kube
from labkit.targets.embedded import start_in_process

pytestmark = pytest.mark.timeout(120)
LAB = "week1-test"


@dataclass
class Week1:
    services: Any
    settings: settings_mod.Settings
    session: AwsSession
    made: eks.PlatformResources
    kube: Kube


@pytest.fixture(scope="module")
def week1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Week1]:
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)  # connecting points this process's AWS SDK at the platform; undo that after
    # Scale 600, not higher: Auto Mode consolidates the finished Job's node 30 cluster-seconds after the
    # Job ends (50 ms of wall time here), and the Pod Identity test must read the pod's log before that.
    settings = settings_mod.load(
        {"target": "embedded", "home": home, "time_scale": 600, "cluster_name": "w1-steps", "owner": "w1-owner"},
        environ={},
        use_files=False,
    )
    services, handle = start_in_process(settings, home / "state.json")
    try:
        session = connect(settings, platform=handle)
        made = eks.create_platform(session, settings, LAB)
        yield Week1(services, settings, session, made, Kube.of(handle))
    finally:
        services.stop()
        os.environ.clear()
        os.environ.update(saved)


def test_quota_table_names_the_quota_to_raise_and_where(week1: Week1) -> None:
    plan = [p.launch for p in cluster.planned_launches("auto")]
    table = {row["QUOTA"]: row for row in cluster.quota_table(week1.session, plan).as_dicts()}
    assert set(table) == {"L-1216C47A", "L-DB2E81BA", "L-3819A6DF"}
    assert table["L-DB2E81BA"]["NEEDS-VCPU"] == "16"  # 4 x g6.xlarge, 4 vCPUs each
    assert table["L-DB2E81BA"]["VERDICT"] == "ok"
    assert table["L-DB2E81BA"]["WHERE-TO-RAISE"] == preflight.console_url("us-west-2", "L-DB2E81BA")
    aws = week1.services._aws
    aws.set_quota("L-DB2E81BA", 8)
    try:
        low = {r["QUOTA"]: r for r in cluster.quota_table(week1.session, plan).as_dicts()}
        assert low["L-DB2E81BA"]["VERDICT"] == "RAISE to >= 16"
        assert low["L-DB2E81BA"]["APPLIED"] == "8"
    finally:
        aws.reset_quotas()


def test_price_table_shows_sources_and_dates(week1: Week1) -> None:
    rows = {r["INSTANCE-TYPE"]: r for r in cluster.price_table(week1.session, ["g6.xlarge", "m7i.large"]).as_dicts()}
    assert rows["g6.xlarge"]["ON-DEMAND-$/H"] == "0.8048"
    assert rows["g6.xlarge"]["VCPU"] == "4"
    assert rows["g6.xlarge"]["ON-DEMAND-SOURCE"].split()[0] in ("pricing-api", "cached")
    assert float(rows["g6.xlarge"]["SPOT-$/H"]) < float(rows["g6.xlarge"]["ON-DEMAND-$/H"])
    assert rows["m7i.large"]["SPOT-SAVES"].endswith("%")


def test_inventory_tables_show_what_week1_built(week1: Week1) -> None:
    subnets = cluster.subnets_table(week1.session, week1.made.vpc).as_dicts()
    assert len(subnets) == 4 and len({s["ZONE"] for s in subnets}) == 2
    private = [s for s in subnets if s["TIER"] == "private"]
    assert all("karpenter.sh/discovery=w1-steps" in s["DISCOVERY-TAGS"] for s in private)
    assert all(s["DISCOVERY-TAGS"] == "kubernetes.io/role/elb=1" for s in subnets if s["TIER"] == "public")
    roles = {r["ROLE"]: r for r in cluster.roles_table(week1.session, week1.settings).as_dicts()}
    assert roles["labkit-w1-steps-cluster"]["TRUSTS"] == "eks.amazonaws.com"
    assert "AmazonEKSComputePolicy" in roles["labkit-w1-steps-cluster"]["POLICIES"]
    assert roles["labkit-w1-steps-node"]["TRUSTS"] == "ec2.amazonaws.com"
    access = {r["PRINCIPAL"]: r for r in cluster.access_table(week1.session, week1.settings).as_dicts()}
    admin = access[week1.made.admin_principal]
    assert admin["ACCESS-POLICIES"] == "AmazonEKSClusterAdminPolicy (cluster)"
    assert len(cluster.addons_table(week1.session, week1.settings)) == 0  # Auto Mode runs them itself
    tags = cluster.tags_table(week1.session, week1.settings).as_dicts()
    kinds = {t["TYPE"] for t in tags}
    assert {"eks:cluster", "cloudformation:stack", "ec2:vpc", "iam:role"} <= kinds
    assert all(t["LABKIT:OWNER"] == "w1-owner" and t["LABKIT:CLUSTER"] == "w1-steps" for t in tags)


def test_pod_identity_gives_the_pod_its_role_and_nothing_without(week1: Week1) -> None:
    trust = json.loads(iam.trust("trust-pod-identity"))
    role = podidentity.ensure_demo_role(week1.session, week1.settings, LAB, trust)
    association = podidentity.associate(
        week1.session, week1.settings, LAB, role.role_arn, namespace="identity-demo", service_account="s3-reader"
    )
    assert (association["namespace"], association["serviceAccount"]) == ("identity-demo", "s3-reader")
    rows = cluster.associations_table(week1.session, week1.settings).as_dicts()
    assert [(r["NAMESPACE"], r["SERVICE-ACCOUNT"], r["ROLE"]) for r in rows] == [
        ("identity-demo", "s3-reader", role.role_arn)
    ]
    run = cluster.run_aws_cli(["sts", "get-caller-identity"], service_account="s3-reader", kube=week1.kube)
    assert run.succeeded and run.exit_code == 0, run.log
    assert run.identity is not None
    assert f":assumed-role/{role.role_name}/" in run.identity["Arn"]
    again = cluster.run_aws_cli(["sts", "get-caller-identity"], service_account="s3-reader", kube=week1.kube)
    assert again.succeeded and again.pod != run.pod  # rerunnable: the Job is replaced
    anonymous = cluster.run_aws_cli(["sts", "get-caller-identity"], service_account="nobody", kube=week1.kube)
    assert not anonymous.succeeded and anonymous.exit_code == 253
    assert "Unable to locate credentials" in anonymous.log


def test_cost_now_prices_what_exists(week1: Week1) -> None:
    view = cluster.cost_now(week1.session, week1.settings, kube=week1.kube)
    control_plane = view.line("EKS control plane")
    nat = view.line("NAT gateway")
    assert control_plane is not None and control_plane.unit_usd_per_hour == pytest.approx(0.10)
    assert nat is not None and nat.quantity == 1
    assert view.fixed_usd_per_hour == pytest.approx(0.145)
    assert view.usd_per_month == pytest.approx(view.usd_per_hour * 730, abs=0.01)


def test_teardown_preview_then_teardown_leaves_nothing_tagged(week1: Week1) -> None:
    preview = cluster.teardown_preview(week1.session, week1.settings)
    steps = {s.what: s.items for s in preview.steps}
    assert steps["the EKS cluster"] == ("w1-steps",)
    assert steps["Pod Identity associations"] == ("identity-demo/s3-reader",)
    assert steps["the VPC stack (subnets, NAT gateway, internet gateway)"] == ("labkit-w1-steps-vpc",)
    order = [s.what for s in preview.steps]
    assert order.index("the EKS cluster") < order.index("IAM instance profiles, roles, policies") < len(order) - 1
    assert preview.tagged == teardown.preview(week1.session, week1.settings) and preview.tagged
    report = teardown.teardown(week1.session, week1.settings)
    assert report.clean, report.to_text()
    after = cluster.teardown_preview(week1.session, week1.settings)
    assert after.count == 0 and after.tagged == []
