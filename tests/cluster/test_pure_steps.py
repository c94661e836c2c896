"""Week 1 lab steps that need no AWS: the plan, the profile table, manifests, tokens, cost lines."""

from __future__ import annotations

import json

import boto3
import pytest

from labkit.aws.cost import CostLine, CostReport
from labkit.cluster import costs, planning, podidentity
from labkit.cluster.inventory import token_facts
from labkit.cluster.preview import Step, TeardownPreview
from labkit.targets import eks as eks_target


def test_the_plan_covers_week1_and_the_week3_gpu_pool() -> None:
    for profile in ("auto", "standard"):
        plan = planning.planned_launches(profile)
        assert {p.week for p in plan} == {1, 3}
        table = planning.launch_table(plan)
        quotas = dict(zip(table.column("INSTANCE-TYPE"), table.column("QUOTA"), strict=True))
        assert quotas == {"m7i.large": "L-1216C47A", "g6.xlarge": "L-DB2E81BA", "g6e.xlarge": "L-3819A6DF"}
    assert "Auto Mode" in planning.planned_launches("auto")[0].purpose
    assert "node group" in planning.planned_launches("standard")[0].purpose


def test_profile_comparison_states_the_cilium_trade_off() -> None:
    rows = {row[0]: row[1:] for row in planning.profile_comparison().rows}
    assert rows["Cilium as CNI (Week 2)"][0] == "no"
    assert rows["Cilium as CNI (Week 2)"][1].startswith("yes")
    assert "VPC CNI" in rows["pod networking (CNI)"][0]


def test_aws_cli_job_runs_once_under_the_service_account() -> None:
    job = podidentity.aws_cli_job("whoami", "demo", "reader", ["sts", "get-caller-identity"])
    spec = job["spec"]["template"]["spec"]
    assert job["kind"] == "Job" and job["metadata"]["namespace"] == "demo"
    assert job["spec"]["backoffLimit"] == 0 and spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == "reader"
    assert spec["containers"][0]["image"] == podidentity.AWS_CLI_IMAGE
    assert spec["containers"][0]["args"] == ["sts", "get-caller-identity"]
    assert "command" not in spec["containers"][0]  # the image's entrypoint is `aws`


def test_job_names_are_dns_labels() -> None:
    assert podidentity.job_name("s3-reader", ["sts", "get-caller-identity"]) == "aws-s3-reader-sts-get-caller-identity"
    name = podidentity.job_name("Team_A.Reader", ["s3", "ls", "--recursive", "s3://x"])
    assert name == "aws-team-a-reader-s3-ls"
    long = podidentity.job_name("a" * 80, ["sts", "get-caller-identity"])
    assert len(long) <= 52 and not long.endswith("-")


def test_the_demo_policy_only_lists_bucket_names() -> None:
    statements = podidentity.list_buckets_policy()["Statement"]
    assert [(s["Effect"], s["Action"]) for s in statements] == [("Allow", "s3:ListAllMyBuckets")]


def test_a_run_reads_the_identity_from_the_log() -> None:
    identity = {"UserId": "AROA:x", "Account": "123456789012", "Arn": "arn:aws:sts::1:assumed-role/r/s"}
    log = json.dumps(identity, indent=4) + "\n"
    run = podidentity.AwsCliRun("demo", "reader", ["sts", "get-caller-identity"], "j", "p", True, 0, log)
    assert run.identity == identity
    assert "-> succeeded" in str(run) and run.command == "aws sts get-caller-identity"
    failed = podidentity.AwsCliRun("demo", "x", ["s3", "ls"], "j", "p", False, 253, "Unable to locate credentials.")
    assert failed.identity is None and failed.output is None
    assert "FAILED (exit code 253)" in str(failed)


def test_token_facts_describe_the_token_without_its_secrets() -> None:
    session = boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1")
    token = eks_target.token(session, "genai", "eu-west-1")
    facts = token_facts(token, "genai")
    assert facts.host == "sts.eu-west-1.amazonaws.com"
    assert facts.action == "GetCallerIdentity"
    assert "x-k8s-aws-id" in facts.signed_headers and facts.cluster_header == "genai"
    assert facts.expires_s == eks_target.TOKEN_EXPIRES_S and facts.length == len(token)
    shown = str(facts)
    assert "AKIDEXAMPLE" not in shown and "Signature" not in shown and token[20:60] not in shown
    with pytest.raises(ValueError, match="k8s-aws-v1"):
        token_facts("Bearer abc", "genai")


def test_cost_view_splits_fixed_and_node_costs() -> None:
    report = CostReport(
        [
            CostLine("EKS control plane (standard support)", 1, 0.10, "fee table"),
            CostLine("m7i.large on-demand", 2, 0.1008, "pricing-api 2026-07-20"),
            CostLine("  EKS Auto Mode fee on m7i.large", 2, 0.0121, "12% of on-demand"),
            CostLine("NAT gateway", 1, 0.045, "fee table"),
            CostLine("application load balancer", 1, 0.0225, "fee table"),
            CostLine("c6i.large on-demand", 1, None, "no price"),
        ]
    )
    view = costs.CostView(report)
    assert view.fixed_usd_per_hour == pytest.approx(0.1675)
    assert view.nodes_usd_per_hour == pytest.approx(2 * 0.1008 + 2 * 0.0121)
    assert view.usd_per_month == pytest.approx(report.usd_per_hour * 730, abs=0.01)
    kinds = dict(zip(view.table().column("ITEM"), view.table().column("KIND"), strict=True))
    assert kinds["NAT gateway"] == "fixed" and kinds["EKS Auto Mode fee on m7i.large"] == "nodes"
    assert view.line("EKS Auto Mode fee") is report.lines[2]
    assert "c6i.large on-demand" in view._repr_html_()  # unknown prices are named, not hidden


def test_teardown_preview_reads_in_order() -> None:
    preview = TeardownPreview(
        "genai",
        [Step(1, "EKS add-ons", ("coredns",), "they run in the cluster"), Step(2, "the EKS cluster", ("genai",), "")],
        ["arn:aws:eks:us-west-2:1:cluster/genai"],
    )
    text = str(preview)
    assert preview.count == 2
    assert text.index("EKS add-ons") < text.index("the EKS cluster")
    assert "now: 1 resources" in text
    assert preview.table().column("STEP") == ["1", "2"]
