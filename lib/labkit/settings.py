"""One settings object for every lab, command and target.

Values come, lowest precedence first, from built-in defaults, a TOML config file,
``LABKIT_*`` environment variables and explicit arguments (papermill parameters
or CLI flags). :func:`load` validates everything before any resource is created
and raises :class:`~labkit.errors.ConfigError` naming the bad value and the fix.

The config file is the first of: the ``path`` argument, ``$LABKIT_CONFIG``, a
``labkit.toml`` in the working directory or one of its parents, and
``~/.config/labkit/config.toml``. Keys are the field names of :class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import difflib
import getpass
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError

TARGETS: tuple[str, ...] = ("embedded", "kind", "eks")
CLUSTER_PROFILES: tuple[str, ...] = ("auto", "standard")

# Commercial, GovCloud and ISO-free partitions: us-west-2, eu-central-1, us-gov-west-1, ap-southeast-4, il-central-1 ...
_REGION = re.compile(
    r"^(us|eu|ap|sa|ca|me|af|il|mx)(-gov)?-"
    r"(north|south|east|west|central|northeast|southeast|northwest|southwest)-\d{1,2}$"
)
# EKS: 1-100 characters, starts with a letter or digit, then letters, digits, '-' or '_'.
_EKS_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
# kind: the name becomes Docker container and DNS names, so lowercase DNS labels only.
_KIND_CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
# The owner goes into AWS tags and Kubernetes labels, so it must be a valid label value.
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")

ENV_PREFIX = "LABKIT_"


def _default_owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "participant"
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", user).strip("-_.")[:63]
    return cleaned or "participant"


@dataclass(frozen=True)
class Settings:
    """Validated settings. Build with :func:`load`, not directly.

    Attributes:
        target: where the platform runs: ``embedded`` (default), ``kind`` or ``eks``.
        region: AWS region for AWS calls (the embedded AWS answers in any region).
        aws_profile: named AWS profile, or ``None`` for the default credential chain.
        cluster_name: the cluster's name on EKS and kind.
        cluster_profile: ``auto`` (EKS Auto Mode) or ``standard`` (managed node group + Karpenter).
        owner: the owner tag put on every resource so a sweeper can find leftovers.
        time_scale: how much faster than wall time the embedded target's clock runs.
        home: folder for the kit's state (running platforms, caches); ``~/.labkit``.
        schemas_dir: folder of upstream CRD schemas for manifest validation; ``None`` uses the
            cache that ``labkit schemas sync`` fills under ``home``.
    """

    target: str = "embedded"
    region: str = "us-west-2"
    aws_profile: str | None = None
    cluster_name: str = "genai-platform"
    cluster_profile: str = "auto"
    owner: str = dataclasses.field(default_factory=_default_owner)
    time_scale: float = 60.0
    home: Path = dataclasses.field(default_factory=lambda: Path.home() / ".labkit")
    schemas_dir: Path | None = None

    def replace(self, **changes: Any) -> Settings:
        """Return validated settings with ``changes`` applied."""
        return _validated(dataclasses.replace(self, **changes))

    def tags(self, lab: str) -> dict[str, str]:
        """Tags every AWS resource of ``lab`` carries (kit, owner, lab, cluster)."""
        return {
            "labkit:kit": "genai-eks-labkit",
            "labkit:owner": self.owner,
            "labkit:lab": lab,
            "labkit:cluster": self.cluster_name,
        }


FIELDS = {f.name for f in dataclasses.fields(Settings)}


def find_config_file(start: Path | None = None) -> Path | None:
    """Return the config file :func:`load` would read, or ``None``."""
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"LABKIT_CONFIG points at {path}, which is not a file", "create the file or unset LABKIT_CONFIG"
            )
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "labkit.toml"
        if candidate.is_file():
            return candidate
    user = Path.home() / ".config" / "labkit" / "config.toml"
    return user if user.is_file() else None


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file; unknown keys and bad TOML are :class:`ConfigError`."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}", "fix the syntax or remove the file") from exc
    section = data.get("labkit", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [labkit] must be a table", 'write keys as `target = "embedded"`')
    _reject_unknown(section, f"config file {path}")
    return dict(section)


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Collect ``LABKIT_<FIELD>`` variables (``LABKIT_CONFIG`` is the file, not a field)."""
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or value == "":
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in FIELDS:
            values[name] = value
    return values


def load(
    overrides: Mapping[str, Any] | None = None,
    *,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    use_files: bool = True,
) -> Settings:
    """Load and validate settings: defaults < config file < ``LABKIT_*`` env < ``overrides``.

    ``None`` values in ``overrides`` mean "not given" and are ignored, so CLI flags and
    notebook parameters can be passed straight through.
    """
    merged: dict[str, Any] = {}
    config = path if path is not None else (find_config_file() if use_files else None)
    if config is not None:
        merged.update(read_config_file(config))
    merged.update(from_env(environ))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _reject_unknown(given, "settings")
    merged.update(given)
    return _validated(Settings(**_coerce(merged)))


def _reject_unknown(values: Mapping[str, Any], where: str) -> None:
    for key in values:
        if key not in FIELDS:
            close = difflib.get_close_matches(key, sorted(FIELDS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(FIELDS))}"
            raise ConfigError(f"{where}: unknown setting '{key}'", hint)


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "time_scale" in out:
        try:
            out["time_scale"] = float(out["time_scale"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"time_scale must be a number, got {values['time_scale']!r}",
                "use e.g. time_scale = 60 (the embedded clock runs 60x wall time)",
            ) from exc
    for key in ("home", "schemas_dir"):
        if out.get(key) is not None:
            out[key] = Path(str(out[key])).expanduser()
    for key in ("target", "region", "cluster_name", "cluster_profile", "owner", "aws_profile"):
        if key in out and out[key] is not None:
            out[key] = str(out[key]).strip()
    return out


def _validated(s: Settings) -> Settings:
    if s.target not in TARGETS:
        close = difflib.get_close_matches(s.target, TARGETS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"unknown target '{s.target}'", f"{hint}choose one of: {', '.join(TARGETS)}")
    if not _REGION.match(s.region):
        raise ConfigError(
            f"malformed AWS region '{s.region}'", "use a region code such as us-west-2, eu-central-1 or ap-southeast-2"
        )
    if s.cluster_profile not in CLUSTER_PROFILES:
        raise ConfigError(
            f"unknown cluster profile '{s.cluster_profile}'",
            "use 'auto' (EKS Auto Mode) or 'standard' (managed nodes + Karpenter, Cilium-capable)",
        )
    if not _EKS_CLUSTER_NAME.match(s.cluster_name):
        raise ConfigError(
            f"cluster name '{s.cluster_name}' would be rejected by EKS",
            "use 1-100 letters, digits, '-' or '_', starting with a letter or digit",
        )
    if s.target == "kind" and not _KIND_CLUSTER_NAME.match(s.cluster_name):
        raise ConfigError(
            f"cluster name '{s.cluster_name}' is not valid for kind",
            "kind needs lowercase letters, digits and '-', at most 32 characters, e.g. genai-platform",
        )
    if not s.owner or not _LABEL_VALUE.match(s.owner):
        raise ConfigError(
            f"owner '{s.owner}' cannot be used as a tag and label value",
            "use at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric",
        )
    if not 0 < s.time_scale <= 10_000:
        raise ConfigError(
            f"time_scale must be in (0, 10000], got {s.time_scale}",
            "1 is wall time; 60 (default) makes a two-minute model load take two seconds",
        )
    return s
