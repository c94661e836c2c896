"""The ``labkit`` command line: doctor, run, build-labs, up, down, env, sweep, schemas, simulate, bench, eks-token."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from labkit import __version__
from labkit.errors import LabkitError


def _settings(args: argparse.Namespace):
    from labkit import settings

    return settings.load(
        {
            "target": getattr(args, "target", None),
            "cluster_name": getattr(args, "cluster", None),
            "region": getattr(args, "region", None),
        }
    )


def cmd_doctor(args: argparse.Namespace) -> int:
    from labkit import doctor

    report = doctor.diagnose(_settings(args))
    print(doctor.format_text(report))
    return 0 if report.default_ok else 1


def cmd_run(args: argparse.Namespace) -> int:
    from labkit.notebooks import runner

    settings = _settings(args)
    kind = "labs" if args.labs else "solutions"
    root = Path(args.root).resolve() if args.root else runner.REPO_ROOT
    notebooks = runner.resolve(args.lab, root, kind)
    options = runner.RunOptions(
        root=root, kind=kind, build_dir=Path(args.build) if args.build else None, cell_timeout_s=args.cell_timeout
    )
    print(
        f"Running {len(notebooks)} {kind} notebook(s) on target '{settings.target}' (cell timeout {args.cell_timeout}s)"
    )

    def show(result) -> None:
        mark = {"passed": "PASS", "failed": "FAIL", "exercise": "STUB"}[result.status]
        line = f"  {mark}  {result.name}  ({result.duration_s:.1f}s)"
        failed = result.failed_cell
        if result.status == "failed":
            line += f"\n        {'cell ' + str(failed.number) + ': ' + failed.error if failed else result.message}"
        print(line, flush=True)

    report = runner.run(
        notebooks,
        settings,
        parameters=runner.parse_parameters(args.param or []),
        seed=args.seed,
        options=options,
        on_result=show,
    )
    print(f"Report: {options.build / 'report.md'} and report.html ({report.duration_s:.1f}s in all)")
    return 0 if report.ok else 1


def cmd_build_labs(args: argparse.Namespace) -> int:
    from labkit.notebooks import runner, singlesource

    root = Path(args.root).resolve() if args.root else runner.REPO_ROOT
    result = singlesource.build_labs(root, check=args.check)
    for problem in result.problems:
        print(f"problem: {problem}")
    if args.check:
        for path in result.stale:
            print(f"out of date: {path.relative_to(root)}")
        for path in result.orphans:
            print(f"no solution for: {path.relative_to(root)}")
        if result.ok:
            print("labs/ is in sync with solutions/")
            return 0
        print("run `labkit build-labs` and commit the result")
        return 1
    for path in result.written:
        print(f"wrote {path.relative_to(root)}")
    for path in result.orphans:
        print(f"warning: {path.relative_to(root)} has no solution; delete it if the lab was removed")
    print(f"{len(result.written)} file(s) written")
    return 1 if result.problems else 0


def cmd_up(args: argparse.Namespace) -> int:
    from labkit import targets

    settings = _settings(args)
    platform = targets.up(settings)
    print(f"{settings.target} platform is up.")
    if platform.kubeconfig:
        print(f"  kubeconfig: {platform.kubeconfig}")
    print(
        '  shell: eval "$(labkit env' + ("" if settings.target == "embedded" else f" --target {settings.target}") + ')"'
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from labkit import targets

    removed = targets.down(_settings(args))
    print("removed: " + ", ".join(removed) if removed else "nothing was running")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from labkit import targets

    settings = _settings(args)
    platform = targets.get(settings.target).connect(settings)
    for key, value in sorted(platform.env().items()):
        print(f"export {key}={shlex.quote(value)}")
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from labkit import schemas

    settings = _settings(args)
    if args.action == "sync":
        written = schemas.sync(settings)
        print(f"{len(written)} schema file(s) fetched into {settings.home / 'schemas'}")
    folder = schemas.folder_for(settings)
    absent = schemas.missing(folder)
    print(f"schemas folder: {folder}")
    for source in schemas.sources()[0]:
        state = "missing" if source in absent else "ok"
        print(f"  {state:8} {source.relpath}  ({source.repo} {source.version})")
    if absent and args.action == "status":
        print("run `labkit schemas sync`, or set LABKIT_SCHEMAS_DIR to a folder with these files")
    return 1 if absent else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from labkit.aws import teardown

    settings = _settings(args)
    if args.owner:
        settings = settings.replace(owner=args.owner)
    older = teardown.parse_age(args.older_than) if args.older_than else None
    report = teardown.sweep(settings, older_than=older, dry_run=args.dry_run)
    print(report.to_text())
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from labkit.targets.embedded import simulate

    return simulate(args.engine, args.args)


def cmd_eks_token(args: argparse.Namespace) -> int:
    import json

    import boto3

    from labkit.targets import eks

    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    print(
        json.dumps(
            {
                "kind": "ExecCredential",
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "spec": {},
                "status": {"token": eks.token(session, args.cluster, args.region)},
            }
        )
    )
    return 0


def _target_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", "-t", help="embedded (default), kind or eks; overrides LABKIT_TARGET")
    p.add_argument("--cluster", help="cluster name (default from settings: genai-platform)")
    p.add_argument("--region", help="AWS region (default from settings)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="GenAI-on-EKS workshop lab kit.")
    parser.add_argument("--version", action="version", version=f"labkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="which targets work here, and how to fix the rest")
    _target_option(p)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("run", help="execute notebooks headlessly and write a report under build/")
    p.add_argument("lab", nargs="*", help="a week (week1), a notebook name, or a path; none = all")
    _target_option(p)
    p.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="notebook parameter (repeatable); values are YAML scalars",
    )
    p.add_argument("--labs", action="store_true", help="run the participant copies in labs/ instead of solutions/")
    p.add_argument("--seed", type=int, default=0, help="seed passed to every notebook (default 0)")
    p.add_argument("--cell-timeout", type=int, default=300, help="seconds one cell may run (default 300)")
    p.add_argument("--build", help="output folder (default build/)")
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("build-labs", help="generate labs/ from solutions/")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 listing out-of-date files")
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_build_labs)

    for name, func, text in (
        ("up", cmd_up, "bring a target's platform up (embedded: in the background)"),
        ("down", cmd_down, "tear a target's platform down"),
        ("env", cmd_env, 'print shell exports for a running platform: eval "$(labkit env)"'),
    ):
        p = sub.add_parser(name, help=text)
        _target_option(p)
        p.set_defaults(func=func)

    p = sub.add_parser("schemas", help="upstream CRD schemas used to validate manifests")
    p.add_argument("action", choices=["sync", "status"], help="sync: fetch the pinned files; status: list them")
    p.set_defaults(func=cmd_schemas)

    p = sub.add_parser("sweep", help="find and delete AWS resources left tagged by earlier runs (yours by default)")
    _target_option(p)
    p.add_argument("--owner", help="whose leftovers (default: your owner tag)")
    p.add_argument("--older-than", help="only resources older than this: 90m, 12h, 2d, 1w")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "simulate",
        help="run a simulated model server: labkit simulate vllm --model M --gpu G [--port P] [--seed S] [--fast]",
        add_help=False,
    )
    p.add_argument("engine", choices=["vllm"])
    p.add_argument("args", nargs=argparse.REMAINDER, help="vLLM server flags plus --gpu, --fast, --ttft-ms, --itl-ms")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("eks-token", help="print an EKS bearer token as an ExecCredential (used by kubeconfigs)")
    p.add_argument("--cluster", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--profile")
    p.set_defaults(func=cmd_eks_token)

    from labkit.bench.cli import add_parser as add_bench_parser

    add_bench_parser(sub)  # labkit bench run|sweep|compare
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``labkit`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LabkitError as exc:
        print(f"labkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labkit: interrupted", file=sys.stderr)
        return 130
