"""What the deployment tests share: the files' paths, YAML loading, settings names, image pins."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from monitor.config.settings import Settings
from tests.support.paths import ROOT

__all__ = [
    "COMPOSE",
    "DEPLOY",
    "K8S",
    "assert_pinned",
    "compose",
    "load",
    "load_all",
    "settings_names",
]

DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
K8S = DEPLOY / "k8s"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


@cache
def compose() -> dict[str, Any]:
    doc = load(COMPOSE)
    assert isinstance(doc, dict)
    return doc


class _Recorder(Mapping[str, str]):
    """An empty environment that remembers which names were asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@cache
def settings_names() -> frozenset[str]:
    """Every environment variable `Settings.from_env` reads."""
    recorder = _Recorder()
    Settings.from_env(recorder)
    return frozenset(recorder.asked)


def assert_pinned(image: str) -> None:
    name, _, tag = image.rpartition(":")
    assert name and tag, f"{image}: no tag"
    assert tag != "latest" and "@" not in name, f"{image}: tag must be pinned"
    first = name.split("/")[0]
    assert "." not in first and ":" not in first, f"{image}: names a registry host"
