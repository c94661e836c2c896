"""Settings: precedence, validation before anything is created, clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit import settings
from labkit.errors import ConfigError


def load(**overrides: object) -> settings.Settings:
    return settings.load(overrides, environ={}, use_files=False)


def test_defaults_are_the_embedded_target() -> None:
    s = load()
    assert (s.target, s.cluster_profile, s.region) == ("embedded", "auto", "us-west-2")
    assert s.time_scale == 60.0


def test_precedence_file_then_env_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "labkit.toml"
    config.write_text('target = "kind"\nregion = "eu-west-1"\ncluster_name = "from-file"\n')
    env = {"LABKIT_REGION": "eu-central-1", "LABKIT_TIME_SCALE": "120"}
    s = settings.load({"cluster_name": "override", "target": None}, path=config, environ=env)
    assert s.target == "kind"  # file (None override means "not given")
    assert s.region == "eu-central-1"  # env beats file
    assert s.cluster_name == "override"  # explicit beats all
    assert s.time_scale == 120.0  # env strings are coerced


def test_config_file_may_use_a_labkit_table(tmp_path: Path) -> None:
    config = tmp_path / "labkit.toml"
    config.write_text('[labkit]\ncluster_profile = "standard"\n')
    assert settings.load(path=config, environ={}).cluster_profile == "standard"


def test_config_file_is_found_in_a_parent_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "labkit.toml").write_text('owner = "alice"\n')
    nested = tmp_path / "solutions" / "week1"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert settings.find_config_file() == tmp_path / "labkit.toml"


@pytest.mark.parametrize(
    ("overrides", "message", "fix"),
    [
        ({"target": "ekss"}, "unknown target 'ekss'", "did you mean 'eks'?"),
        ({"target": "docker"}, "unknown target 'docker'", "choose one of: embedded, kind, eks"),
        ({"region": "us-west2"}, "malformed AWS region 'us-west2'", "us-west-2"),
        ({"region": "mars-north-1"}, "malformed AWS region", "region code"),
        ({"cluster_name": "-bad"}, "would be rejected by EKS", "starting with a letter or digit"),
        ({"cluster_name": "a" * 101}, "would be rejected by EKS", "1-100"),
        ({"cluster_name": "has space"}, "would be rejected by EKS", ""),
        ({"target": "kind", "cluster_name": "Upper_Case"}, "not valid for kind", "lowercase"),
        ({"cluster_profile": "fargate"}, "unknown cluster profile 'fargate'", "'standard'"),
        ({"owner": "bob smith"}, "owner 'bob smith'", "at most 63"),
        ({"time_scale": 0}, "time_scale must be in (0, 10000]", "wall time"),
        ({"time_scale": "fast"}, "time_scale must be a number", "time_scale = 60"),
        ({"regoin": "us-east-1"}, "unknown setting 'regoin'", "did you mean 'region'?"),
    ],
)
def test_invalid_settings_are_rejected_with_a_fix(overrides: dict, message: str, fix: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(**overrides)
    assert message in info.value.what
    assert fix in (info.value.fix or "")


def test_valid_names_and_regions_pass() -> None:
    assert load(region="us-gov-west-1").region == "us-gov-west-1"
    assert load(region="ap-southeast-4").region == "ap-southeast-4"
    assert load(cluster_name="Team_A-prod1").cluster_name == "Team_A-prod1"
    assert load(target="kind", cluster_name="genai-platform").target == "kind"


def test_bad_config_file_says_which_file(tmp_path: Path) -> None:
    config = tmp_path / "labkit.toml"
    config.write_text("target = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        settings.load(path=config, environ={})
    config.write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match=r"labkit.toml: unknown setting 'colour'"):
        settings.load(path=config, environ={})


def test_labkit_config_pointing_nowhere_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABKIT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        settings.find_config_file()


def test_tags_name_kit_owner_and_lab() -> None:
    tags = load(owner="alice").tags("week1-cluster")
    assert tags["labkit:owner"] == "alice"
    assert tags["labkit:lab"] == "week1-cluster"
    assert tags["labkit:kit"]


def test_replace_validates() -> None:
    with pytest.raises(ConfigError):
        load().replace(region="nowhere")
