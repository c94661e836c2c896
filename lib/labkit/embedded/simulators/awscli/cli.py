"""The ``aws`` command, interpreted: parsed like AWS CLI v2, sent through botocore, printed like the CLI.

:func:`run_aws` runs one ``aws ...`` command line against a :class:`Backend` (the real
one calls the embedded AWS over HTTP with the container's credentials). It supports:

- every API operation as ``aws <service> <operation> [--param value ...]`` (the
  operation and parameter names come from botocore's service model, so
  ``aws sts get-caller-identity``, ``aws s3api list-buckets`` and
  ``aws eks list-clusters --query 'clusters[0]'`` all work), auto-paginated as the CLI
  does unless ``--no-paginate``;
- ``aws s3 ls`` (buckets) and ``aws s3 ls s3://bucket/prefix/ [--recursive]``;
- the global options ``--region``, ``--output json|text``, ``--query``, ``--no-paginate``,
  ``--version`` (and harmless ones such as ``--no-cli-pager``; ``--endpoint-url`` is accepted
  and ignored, since a pod here reaches only the embedded AWS);
- the CLI's error texts and return codes: 252 bad syntax, 253 no credentials or
  region, 254 an error from the service, 255 anything else.

:func:`run_container` interprets a container's ``command``/``args``: ``aws ...`` (the
image's entrypoint) or ``sh -c "aws ...; echo ...; aws ... && aws ..."``. Every line
carries the simulated second it is printed at, so the pod log fills in as it would.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore import xform_name
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    UnknownServiceError,
)

from labkit.embedded.simulators.awscli.output import OUTPUTS, apply_query, render

#: Simulated seconds for the CLI to start (Python interpreter and command table).
STARTUP_S = 0.8
#: Simulated seconds of one API round trip.
CALL_S = 0.15
#: Simulated seconds of a shell builtin such as ``echo``.
BUILTIN_S = 0.01

EXIT_OK = 0
EXIT_SYNTAX = 252
EXIT_CONFIG = 253
EXIT_SERVICE = 254
EXIT_OTHER = 255

NO_CREDENTIALS = 'Unable to locate credentials. You can configure credentials by running "aws configure".'
NO_REGION = 'You must specify a region. You can also configure your region by running "aws configure".'
USAGE = [
    "usage: aws [options] <command> <subcommand> [<subcommand> ...] [parameters]",
    "To see help text, you can run:",
    "",
    "  aws help",
    "  aws <command> help",
    "  aws <command> <subcommand> help",
    "",
]

# CLI command names that differ from botocore's service names.
_SERVICE_ALIASES = {"s3api": "s3", "configservice": "config"}
# Services the CLI reaches without a configured region (global endpoints, or us-east-1 by default).
_GLOBAL_SERVICES = {"s3", "sts", "iam", "organizations", "route53", "cloudfront", "budgets", "ce"}
_GLOBAL_WITH_VALUE = {
    "--region",
    "--output",
    "--query",
    "--profile",
    "--endpoint-url",
    "--color",
    "--ca-bundle",
    "--cli-read-timeout",
    "--cli-connect-timeout",
    "--cli-binary-format",
}
_GLOBAL_FLAGS = {
    "--debug",
    "--no-verify-ssl",
    "--no-paginate",
    "--no-sign-request",
    "--no-cli-pager",
    "--cli-auto-prompt",
    "--no-cli-auto-prompt",
}


class Backend(Protocol):
    """What the CLI reaches: botocore's service models and AWS itself."""

    def service_model(self, service: str) -> Any:
        """botocore's ``ServiceModel`` of ``service``; raises ``UnknownServiceError``."""

    def default_region(self) -> str | None:
        """The region the container's environment gives (``None``: none configured)."""

    def call(
        self, service: str, operation: str, params: dict[str, Any], *, region: str, paginate: bool
    ) -> dict[str, Any]:
        """Call ``operation`` (the API name, e.g. ``GetCallerIdentity``); raises botocore's exceptions."""


@dataclass
class Printed:
    """What a command line printed and how it ended.

    Attributes:
        lines: ``(simulated seconds after the start, text)`` in order; stdout and stderr together, as a pod log.
        exit_code: the process's exit status.
        seconds: simulated seconds it ran.
    """

    lines: list[tuple[float, str]] = field(default_factory=list)
    exit_code: int = EXIT_OK
    seconds: float = 0.0

    def text(self) -> str:
        """The printed lines, joined."""
        return "\n".join(line for _, line in self.lines)


class _Failure(Exception):
    def __init__(self, code: int, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.code = code
        self.lines = list(lines)


@dataclass
class _Options:
    region: str | None = None
    output: str = "json"
    query: str | None = None
    paginate: bool = True
    version: bool = False
    profile: str | None = None


def cli_version(image: str) -> str:
    """The CLI version an image reference implies (its tag, when it is a version)."""
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    return tag if re.fullmatch(r"2\.\d+\.\d+", tag) else DEFAULT_VERSION


#: The version ``aws --version`` reports when the image tag does not name one.
DEFAULT_VERSION = "2.27.0"


def version_line(version: str) -> str:
    return f"aws-cli/{version} Python/3.13.4 Linux/6.1.134-152.225.amzn2023.x86_64 exe/x86_64.amzn.2"


# --------------------------------------------------------------------------- one `aws` command


def run_aws(
    args: Sequence[str], backend: Backend, env: Mapping[str, str], *, version: str = DEFAULT_VERSION
) -> Printed:
    """Run ``aws <args>``: parse, call, print. Never raises for what the real CLI reports."""
    out = Printed(seconds=STARTUP_S)
    try:
        options, words = _split_globals(list(args))
        if options.version:
            out.lines.append((out.seconds, version_line(version)))
            return out
        if options.profile is not None:
            raise _Failure(EXIT_OTHER, ["", f"The config profile ({options.profile}) could not be found"])
        if options.output not in OUTPUTS:
            raise _Failure(
                EXIT_SYNTAX,
                [
                    *USAGE,
                    f"aws: error: argument --output: '{options.output}' is not supported here "
                    f"(labkit's simulated CLI prints {' or '.join(OUTPUTS)})",
                ],
            )
        if not words:
            raise _Failure(EXIT_SYNTAX, [*USAGE, "aws: error: the following arguments are required: command"])
        command, rest = words[0], words[1:]
        if command == "help" or "help" in rest[:2]:
            raise _Failure(EXIT_SYNTAX, [*USAGE, "aws: error: help is not available in labkit's simulated CLI"])
        region = options.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or backend.default_region()
        if command == "s3":
            lines = _s3(rest, backend, region, options)
        else:
            lines = _operation(command, rest, backend, region, options)
        out.seconds += CALL_S
        out.lines += [(out.seconds, line) for line in lines]
    except _Failure as failure:
        out.seconds += CALL_S if failure.code == EXIT_SERVICE else 0.0
        out.lines += [(out.seconds, line) for line in failure.lines]
        out.exit_code = failure.code
    return out


def _split_globals(args: list[str]) -> tuple[_Options, list[str]]:
    options = _Options()
    words: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=")
        if arg == "--version":
            options.version = True
        elif name in _GLOBAL_WITH_VALUE and arg.startswith("--"):
            if eq:
                value = inline
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                raise _Failure(EXIT_SYNTAX, [*USAGE, f"aws: error: argument {name}: expected one argument"])
            if name == "--region":
                options.region = value
            elif name == "--output":
                options.output = value
            elif name == "--query":
                options.query = value
            elif name == "--profile":
                options.profile = value
        elif arg in _GLOBAL_FLAGS:
            if arg == "--no-paginate":
                options.paginate = False
        else:
            words.append(arg)
        i += 1
    return options, words


def _region_for(service: str, region: str | None) -> str:
    if region:
        return region
    if service in _GLOBAL_SERVICES:
        return "us-east-1"
    raise _Failure(EXIT_CONFIG, ["", NO_REGION])


def _call(
    backend: Backend, service: str, operation: str, params: dict[str, Any], *, region: str | None, paginate: bool
) -> dict[str, Any]:
    """One API call, with botocore's failures turned into the CLI's messages and return codes."""
    try:
        response = backend.call(service, operation, params, region=_region_for(service, region), paginate=paginate)
    except NoCredentialsError:
        raise _Failure(EXIT_CONFIG, ["", NO_CREDENTIALS]) from None
    except NoRegionError:
        raise _Failure(EXIT_CONFIG, ["", NO_REGION]) from None
    except CredentialRetrievalError as exc:
        raise _Failure(EXIT_OTHER, ["", str(exc)]) from None
    except ClientError as exc:
        error = exc.response.get("Error") or {}
        raise _Failure(
            EXIT_SERVICE,
            [
                "",
                f"An error occurred ({error.get('Code', 'Unknown')}) when calling the {operation} operation: "
                f"{error.get('Message', '')}",
            ],
        ) from None
    except ParamValidationError as exc:
        raise _Failure(EXIT_SYNTAX, ["", str(exc)]) from None
    except EndpointConnectionError as exc:
        raise _Failure(EXIT_OTHER, ["", str(exc)]) from None
    response = dict(response)
    response.pop("ResponseMetadata", None)
    return response


# --------------------------------------------------------------------------- aws <service> <operation>


def _operation(command: str, rest: list[str], backend: Backend, region: str | None, options: _Options) -> list[str]:
    service = _SERVICE_ALIASES.get(command, command)
    try:
        model = backend.service_model(service)
    except UnknownServiceError:
        raise _Failure(
            EXIT_SYNTAX,
            [*USAGE, f"aws: error: argument command: Invalid choice, valid choices are: ... (no service '{command}')"],
        ) from None
    operations = {xform_name(name, "-"): name for name in model.operation_names}
    if not rest or rest[0].startswith("--"):
        raise _Failure(EXIT_SYNTAX, [*USAGE, "aws: error: the following arguments are required: operation"])
    if rest[0] not in operations:
        raise _Failure(
            EXIT_SYNTAX,
            [*USAGE, f"aws: error: argument operation: Invalid choice: '{rest[0]}' is not an operation of {command}"],
        )
    operation = operations[rest[0]]
    params = parse_parameters(model.operation_model(operation), rest[1:])
    response = _call(backend, service, operation, params, region=region, paginate=options.paginate)
    return render(apply_query(response, options.query), options.output)


def parse_parameters(operation_model: Any, tokens: Sequence[str]) -> dict[str, Any]:
    """The API parameters of ``--kebab-name value`` tokens for one operation (botocore shapes)."""
    shape = operation_model.input_shape
    members = dict(shape.members) if shape is not None else {}
    by_flag = {xform_name(name, "-"): name for name in members}
    params: dict[str, Any] = {}
    unknown: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--"):
            unknown.append(token)
            continue
        flag, eq, inline = token[2:].partition("=")
        negated = flag.startswith("no-") and flag[3:] in by_flag
        name = by_flag.get(flag[3:] if negated else flag)
        if name is None:
            unknown.append(token)
            continue
        member = members[name]
        if member.type_name == "boolean":
            params[name] = (inline.lower() != "false") if eq else not negated
            continue
        values = [inline] if eq else []
        while not eq and i < len(tokens) and not tokens[i].startswith("--"):
            values.append(tokens[i])
            i += 1
        if not values:
            raise _Failure(EXIT_SYNTAX, [*USAGE, f"aws: error: argument {token}: expected one argument"])
        if member.type_name != "list" and len(values) > 1:
            unknown += values[1:]
            values = values[:1]
        params[name] = _convert(member, values, token)
    if unknown:
        raise _Failure(EXIT_SYNTAX, [*USAGE, f"Unknown options: {', '.join(unknown)}"])
    missing = [
        f"--{xform_name(n, '-')}" for n in (shape.required_members if shape is not None else []) if n not in params
    ]
    if missing:
        raise _Failure(EXIT_SYNTAX, [*USAGE, f"aws: error: the following arguments are required: {', '.join(missing)}"])
    return params


def _convert(shape: Any, values: list[str], flag: str) -> Any:
    kind = shape.type_name
    try:
        if kind == "list":
            if len(values) == 1 and values[0].lstrip().startswith("["):
                return json.loads(values[0])
            return [_convert(shape.member, [v], flag) for v in values]
        text = values[0]
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
        if kind == "blob":
            return text.encode()
        if kind in ("structure", "map"):
            return json.loads(text) if text.lstrip().startswith("{") else _shorthand(text)
        return text
    except (ValueError, json.JSONDecodeError) as exc:
        raise _Failure(EXIT_SYNTAX, ["", f"Error parsing parameter '{flag}': {exc}"]) from None


def _shorthand(text: str) -> dict[str, str]:
    """``Key=Value,Key2=Value2`` (the CLI's shorthand syntax for flat structures and maps)."""
    out: dict[str, str] = {}
    for pair in text.split(","):
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"Expected: '=', received: '{pair}' for input: {text}")
        out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------- aws s3 ls


def _s3(rest: list[str], backend: Backend, region: str | None, options: _Options) -> list[str]:
    if not rest or rest[0] != "ls":
        got = rest[0] if rest else ""
        raise _Failure(
            EXIT_SYNTAX,
            [*USAGE, f"aws: error: argument subcommand: Invalid choice: '{got}' (labkit's simulated CLI runs s3 ls)"],
        )
    recursive = "--recursive" in rest
    paths = [a for a in rest[1:] if not a.startswith("--")]
    unknown = [
        a for a in rest[1:] if a.startswith("--") and a not in ("--recursive", "--human-readable", "--summarize")
    ]
    if unknown or len(paths) > 1:
        raise _Failure(EXIT_SYNTAX, [*USAGE, f"Unknown options: {', '.join(unknown + paths[1:])}"])
    if not paths or paths[0] in ("s3://", ""):
        buckets = _call(backend, "s3", "ListBuckets", {}, region=region, paginate=options.paginate).get("Buckets", [])
        return [f"{_local_time(b.get('CreationDate'))} {b['Name']}" for b in buckets]
    bucket, _, prefix = paths[0].removeprefix("s3://").partition("/")
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if not recursive:
        params["Delimiter"] = "/"
    listing = _call(backend, "s3", "ListObjectsV2", params, region=region, paginate=options.paginate)
    shown_from = 0 if recursive else prefix.rfind("/") + 1
    lines = [f"{'PRE':>30} {p['Prefix'][shown_from:]}" for p in listing.get("CommonPrefixes", [])]
    for obj in listing.get("Contents", []):
        lines.append(f"{_local_time(obj.get('LastModified'))} {obj.get('Size', 0):>10} {obj['Key'][shown_from:]}")
    return lines


def _local_time(stamp: Any) -> str:
    """A timestamp as ``aws s3 ls`` prints it (the container's time zone, UTC)."""
    if hasattr(stamp, "strftime"):
        return str(stamp.strftime("%Y-%m-%d %H:%M:%S"))
    return str(stamp or "")[:19].replace("T", " ")


# --------------------------------------------------------------------------- a container's command line


_KUBE_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_SHELL_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_SHELLS = ("sh", "bash", "ash", "dash")


def kube_expand(word: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in ``command``/``args`` (unknown variables stay as written)."""
    return _KUBE_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), word)


def run_container(
    argv: Sequence[str],
    backend_for: Callable[[Mapping[str, str]], Backend],
    env: Mapping[str, str],
    *,
    version: str = DEFAULT_VERSION,
) -> Printed:
    """Run the container's command line: ``aws ...`` or ``sh -c '...'`` with ``aws`` and ``echo`` in it.

    Args:
        argv: ``command + args`` as the container runs them (the image's entrypoint is ``aws``).
        backend_for: makes the backend for an environment (credentials and region come from it).
        env: the container's environment.
        version: what ``aws --version`` reports.
    """
    words = [kube_expand(str(w), env) for w in argv] or ["aws"]
    program = words[0].rsplit("/", 1)[-1]
    if program in _SHELLS and len(words) >= 3 and words[1] in ("-c", "-ec", "-ce", "-xc"):
        return _run_script(words[2], backend_for, env, version)
    if program == "aws":
        return run_aws(words[1:], backend_for(env), env, version=version)
    return Printed(
        [(0.0, f'exec: "{words[0]}": executable file not found in $PATH (the aws-cli image runs aws)')], 127, 0.0
    )


def _run_script(script: str, backend_for: Callable[[Mapping[str, str]], Backend], env: Mapping[str, str], version: str):
    """A small POSIX shell: ``;``, ``&&``, ``||`` and newlines between ``aws``, ``echo``, ``true``, ``exit``..."""
    out = Printed()
    status = 0
    for op, raw in _script_commands(script):
        if (op == "&&" and status != 0) or (op == "||" and status == 0):
            continue
        words = [_SHELL_VAR.sub(lambda m: env.get(m.group(1), ""), w) for w in raw]
        program = words[0].rsplit("/", 1)[-1]
        if program == "aws":
            printed = run_aws(words[1:], backend_for(env), env, version=version)
            out.lines += [(out.seconds + at, line) for at, line in printed.lines]
            out.seconds += printed.seconds
            status = printed.exit_code
        elif program == "echo":
            out.seconds += BUILTIN_S
            out.lines.append((out.seconds, " ".join(w for w in words[1:] if w not in ("-n", "-e"))))
            status = 0
        elif program in ("true", ":", "set"):
            status = 0
        elif program == "false":
            status = 1
        elif program == "exit":
            out.exit_code = int(words[1]) if len(words) > 1 and words[1].isdigit() else status
            return out
        else:
            out.lines.append((out.seconds, f"sh: {program}: command not found"))
            status = 127
    out.exit_code = status
    return out


def _script_commands(script: str) -> list[tuple[str, list[str]]]:
    """``(operator before it, words)`` per simple command of a shell script."""
    lexer = shlex.shlex(script.replace("\n", ";"), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands: list[tuple[str, list[str]]] = []
    op, words = ";", []
    for token in lexer:
        if token in (";", "&&", "||", "&", ";;"):
            if words:
                commands.append((op, words))
            op, words = (token if token in ("&&", "||") else ";"), []
        else:
            words.append(token)
    if words:
        commands.append((op, words))
    return commands
