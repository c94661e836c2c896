"""The simulated `aws` command: parsing, output formats, errors and return codes, shell scripts.

A recording backend stands in for AWS; botocore's real service models drive parsing, so
operation and parameter names are checked against the same models the real CLI uses.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, CredentialRetrievalError, NoCredentialsError

from labkit.embedded.simulators.awscli.agent import ClientFactory
from labkit.embedded.simulators.awscli.cli import (
    CALL_S,
    EXIT_CONFIG,
    EXIT_OTHER,
    EXIT_SERVICE,
    EXIT_SYNTAX,
    NO_CREDENTIALS,
    NO_REGION,
    STARTUP_S,
    cli_version,
    kube_expand,
    run_aws,
    run_container,
)
from labkit.embedded.simulators.awscli.output import render

MODELS = ClientFactory(None)
IDENTITY = {
    "UserId": "AROAEXAMPLE:eks-demo-reader",
    "Account": "123456789012",
    "Arn": "arn:aws:sts::123456789012:assumed-role/reader/eks-demo-reader",
}
STAMP = dt.datetime(2025, 6, 15, 9, 30, 0, tzinfo=dt.UTC)


class Recorder:
    """A backend that answers from a table and records every call."""

    def __init__(
        self, answers: dict[str, Any] | None = None, error: Exception | None = None, region: str | None = None
    ) -> None:
        self.answers = answers or {}
        self.error = error
        self.region = region
        self.calls: list[tuple[str, str, dict[str, Any], str, bool]] = []

    def service_model(self, service: str) -> Any:
        return MODELS.service_model(service)

    def default_region(self) -> str | None:
        return self.region

    def call(self, service: str, operation: str, params: dict[str, Any], *, region: str, paginate: bool) -> Any:
        self.calls.append((service, operation, params, region, paginate))
        if self.error is not None:
            raise self.error
        return {**self.answers.get(operation, {}), "ResponseMetadata": {"HTTPStatusCode": 200}}


def lines(printed: Any) -> list[str]:
    return [line for _, line in printed.lines]


def test_get_caller_identity_prints_indented_json_in_response_order() -> None:
    backend = Recorder({"GetCallerIdentity": IDENTITY})
    printed = run_aws(["sts", "get-caller-identity"], backend, {})
    assert printed.exit_code == 0
    assert printed.text() == json.dumps(IDENTITY, indent=4)
    assert lines(printed)[1] == '    "UserId": "AROAEXAMPLE:eks-demo-reader",'
    # No region configured: STS is reachable anyway (us-east-1), as with the real CLI.
    assert backend.calls == [("sts", "GetCallerIdentity", {}, "us-east-1", True)]
    assert printed.seconds == pytest.approx(STARTUP_S + CALL_S)


def test_query_and_text_output() -> None:
    backend = Recorder({"GetCallerIdentity": IDENTITY})
    printed = run_aws(["sts", "get-caller-identity", "--query", "Arn", "--output", "text"], backend, {})
    assert lines(printed) == [IDENTITY["Arn"]]
    printed = run_aws(["--output=text", "sts", "get-caller-identity"], backend, {})
    assert lines(printed) == ["\t".join([IDENTITY["Account"], IDENTITY["Arn"], IDENTITY["UserId"]])]


def test_text_output_of_nested_lists_follows_the_cli() -> None:
    answer = {
        "Buckets": [{"Name": "logs", "CreationDate": STAMP}, {"Name": "models", "CreationDate": STAMP}],
        "Owner": {"DisplayName": "team", "ID": "abc"},
    }
    printed = run_aws(["s3api", "list-buckets", "--output", "text"], Recorder({"ListBuckets": answer}), {})
    stamp = "2025-06-15T09:30:00+00:00"
    assert lines(printed) == [f"BUCKETS\t{stamp}\tlogs", f"BUCKETS\t{stamp}\tmodels", "OWNER\tteam\tabc"]
    printed = run_aws(["s3api", "list-buckets", "--query", "Buckets[].Name"], Recorder({"ListBuckets": answer}), {})
    assert json.loads(printed.text()) == ["logs", "models"]
    assert render({}, "json") == []  # an empty response prints nothing


def test_parameters_follow_the_service_model() -> None:
    backend = Recorder()
    run_aws(["s3api", "list-objects-v2", "--bucket", "b", "--max-keys", "5", "--prefix=logs/"], backend, {})
    assert backend.calls[-1][:3] == ("s3", "ListObjectsV2", {"Bucket": "b", "MaxKeys": 5, "Prefix": "logs/"})
    region = {"AWS_DEFAULT_REGION": "us-west-2"}
    args = ["ec2", "describe-instances", "--instance-ids", "i-1", "i-2", "--dry-run", "--no-paginate"]
    run_aws(args, backend, region)
    assert backend.calls[-1][2] == {"InstanceIds": ["i-1", "i-2"], "DryRun": True}
    assert backend.calls[-1][4] is False
    filters = '[{"Name": "instance-type", "Values": ["g6.xlarge"]}]'
    run_aws(["ec2", "describe-instances", "--filters", filters, "--no-dry-run"], backend, {"AWS_REGION": "eu-west-1"})
    assert backend.calls[-1][2] == {"Filters": json.loads(filters), "DryRun": False}
    assert backend.calls[-1][3] == "eu-west-1"
    run_aws(["eks", "tag-resource", "--resource-arn", "arn:x", "--tags", "team=ml,env=dev"], backend, region)
    assert backend.calls[-1][2] == {"resourceArn": "arn:x", "tags": {"team": "ml", "env": "dev"}}


def test_syntax_errors_exit_252_without_calling_aws() -> None:
    backend = Recorder()
    missing = run_aws(["s3api", "list-objects-v2"], backend, {})
    assert missing.exit_code == EXIT_SYNTAX
    assert lines(missing)[-1] == "aws: error: the following arguments are required: --bucket"
    unknown = run_aws(["sts", "get-caller-identity", "--foo", "bar"], backend, {})
    assert (unknown.exit_code, lines(unknown)[-1]) == (EXIT_SYNTAX, "Unknown options: --foo, bar")
    assert run_aws(["sts", "get-caller-identityy"], backend, {}).exit_code == EXIT_SYNTAX
    assert run_aws(["nosuchservice", "list"], backend, {}).exit_code == EXIT_SYNTAX
    assert lines(run_aws([], backend, {}))[0].startswith("usage: aws [options]")
    bad_int = run_aws(["s3api", "list-objects-v2", "--bucket", "b", "--max-keys", "many"], backend, {})
    assert bad_int.exit_code == EXIT_SYNTAX and "--max-keys" in bad_int.text()
    assert backend.calls == []


def test_credentials_and_service_errors_read_like_the_cli() -> None:
    printed = run_aws(["sts", "get-caller-identity"], Recorder(error=NoCredentialsError()), {})
    assert (printed.exit_code, lines(printed)) == (EXIT_CONFIG, ["", NO_CREDENTIALS])
    assert NO_CREDENTIALS == 'Unable to locate credentials. You can configure credentials by running "aws configure".'
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "ListBuckets")
    printed = run_aws(["s3api", "list-buckets"], Recorder(error=denied), {})
    assert printed.exit_code == EXIT_SERVICE
    expected = "An error occurred (AccessDenied) when calling the ListBuckets operation: Access Denied"
    assert lines(printed)[-1] == expected
    broken = CredentialRetrievalError(provider="container-role", error_msg="agent said no")
    printed = run_aws(["sts", "get-caller-identity"], Recorder(error=broken), {})
    assert printed.exit_code == EXIT_OTHER
    assert "Error when retrieving credentials from container-role: agent said no" in printed.text()


def test_region_is_required_for_regional_services() -> None:
    printed = run_aws(["eks", "list-clusters"], Recorder(), {})
    assert (printed.exit_code, lines(printed)[-1]) == (EXIT_CONFIG, NO_REGION)
    backend = Recorder({"ListClusters": {"clusters": ["genai"]}}, region="us-west-2")
    printed = run_aws(["eks", "list-clusters", "--query", "clusters[0]", "--output", "text"], backend, {})
    assert lines(printed) == ["genai"]
    assert backend.calls[-1][3] == "us-west-2"
    run_aws(["--region", "eu-central-1", "eks", "list-clusters"], backend, {"AWS_REGION": "us-east-2"})
    assert backend.calls[-1][3] == "eu-central-1"  # --region wins over the environment


def test_version_profile_and_output_options() -> None:
    version = cli_version("public.ecr.aws/aws-cli/aws-cli:2.27.3")
    printed = run_aws(["--version"], Recorder(), {}, version=version)
    assert lines(printed)[0].startswith("aws-cli/2.27.3 Python/")
    assert cli_version("amazon/aws-cli:latest") == cli_version("amazon/aws-cli")
    assert run_aws(["--profile", "dev", "sts", "get-caller-identity"], Recorder(), {}).exit_code == EXIT_OTHER
    assert run_aws(["--output", "table", "sts", "get-caller-identity"], Recorder(), {}).exit_code == EXIT_SYNTAX


def test_s3_ls_lists_buckets_and_prefixes() -> None:
    buckets = {"Buckets": [{"Name": "models", "CreationDate": STAMP}]}
    assert lines(run_aws(["s3", "ls"], Recorder({"ListBuckets": buckets}), {})) == ["2025-06-15 09:30:00 models"]
    listing = {
        "CommonPrefixes": [{"Prefix": "runs/2025/"}],
        "Contents": [{"Key": "runs/report.json", "Size": 1234, "LastModified": STAMP}],
    }
    backend = Recorder({"ListObjectsV2": listing})
    printed = run_aws(["s3", "ls", "s3://models/runs/"], backend, {})
    assert lines(printed) == [" " * 27 + "PRE 2025/", "2025-06-15 09:30:00       1234 report.json"]
    assert backend.calls[-1][2] == {"Bucket": "models", "Prefix": "runs/", "Delimiter": "/"}
    run_aws(["s3", "ls", "s3://models", "--recursive"], backend, {})
    assert backend.calls[-1][2] == {"Bucket": "models", "Prefix": ""}
    assert run_aws(["s3", "cp", "a", "b"], backend, {}).exit_code == EXIT_SYNTAX


def test_container_command_lines() -> None:
    backend = Recorder({"GetCallerIdentity": IDENTITY})
    # The image's entrypoint is `aws`: args alone are the CLI's arguments.
    printed = run_container(["aws", "sts", "get-caller-identity", "--region", "$(REGION)"], lambda env: backend, {})
    assert printed.exit_code == 0 and backend.calls[-1][3] == "$(REGION)"
    assert kube_expand("--region=$(REGION)", {"REGION": "us-west-2"}) == "--region=us-west-2"
    script = (
        "aws sts get-caller-identity --query Account --output text && echo ok-$STAGE; "
        "aws sts nope || echo recovered\naws --version"
    )
    printed = run_container(["sh", "-c", script], lambda env: backend, {"STAGE": "dev"})
    shown = lines(printed)
    assert shown[:2] == ["123456789012", "ok-dev"]
    assert "recovered" in shown and shown[-1].startswith("aws-cli/2.")
    assert printed.exit_code == 0
    times = [at for at, _ in printed.lines]
    assert times == sorted(times) and printed.seconds >= 3 * STARTUP_S
    assert run_container(["sh", "-c", "aws sts get-caller-identity; false"], lambda env: backend, {}).exit_code == 1
    failing = run_container(["sh", "-c", "aws sts oops && echo never"], lambda env: backend, {})
    assert failing.exit_code == EXIT_SYNTAX and "never" not in failing.text()
    assert run_container(["python", "-c", "print(1)"], lambda env: backend, {}).exit_code == 127
