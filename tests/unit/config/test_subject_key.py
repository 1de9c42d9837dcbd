"""Subject state keys are a keyed hash; the secret comes from the environment or a file, never echoed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.config.settings import Settings
from monitor.config.subject_key import derive, subject_key
from monitor.engine.state import subject_hash
from monitor.errors import ConfigError


def test_state_key_depends_on_the_secret() -> None:
    plain = subject_hash("temu", "subject-1")
    one = subject_hash("temu", "subject-1", derive(b"first secret of 16+ bytes"))
    two = subject_hash("temu", "subject-1", derive(b"second secret, 16+ bytes"))
    assert len({plain, one, two}) == 3
    assert one == subject_hash("temu", "subject-1", derive(b"first secret of 16+ bytes"))


def test_secret_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert subject_key(Settings()) is None
    from_env = subject_key(Settings(subject_key="a secret of sixteen bytes"))
    file = tmp_path / "subject.key"
    file.write_bytes(b"a secret of sixteen bytes\n")
    assert subject_key(Settings(subject_key_file=file)) == from_env


@pytest.mark.parametrize("content", [b"short\n", b""])
def test_a_short_secret_is_refused_without_echoing_it(tmp_path: Path, content: bytes) -> None:
    file = tmp_path / "subject.key"
    file.write_bytes(content)
    with pytest.raises(ConfigError, match="too short") as err:
        subject_key(Settings(subject_key_file=file))
    assert str(file) in str(err.value)
    if content:
        assert "short\n" not in str(err.value).replace("too short", "")


def test_a_missing_or_special_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        subject_key(Settings(subject_key_file=tmp_path / "none"))
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        subject_key(Settings(subject_key_file=fifo))
