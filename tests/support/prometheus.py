"""A real Prometheus server (the Debian package's binary) on loopback, for tests that query it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from xborder_tools.embedded_broker import free_port, log_tail, orphan_guard, stop_process


def find_prometheus() -> str | None:
    return shutil.which("prometheus")


@dataclass
class Prometheus:
    """Scrapes `targets` (job name -> host:port list) every `interval`, evaluates `rule_files`.

    Storage is a folder of `workdir`: the server keeps nothing across tests.
    """

    binary: str
    workdir: Path
    targets: dict[str, list[str]]
    rule_files: list[Path]
    interval: str = "1s"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        rules = []
        for path in self.rule_files:
            # Beside the config: Prometheus resolves rule files relative to it.
            shutil.copy(path, self.workdir / path.name)
            rules.append(path.name)
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": rules,
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": hosts}]}
                for job, hosts in self.targets.items()
            ],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *orphan_guard(),
                    self.binary,
                    f"--config.file={self.workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(self.failure("Prometheus exited at start-up"))
            try:
                with urllib.request.urlopen(self.url("/-/ready"), timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(self.failure(f"Prometheus not ready within {timeout:.0f}s"))
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, 10.0)
            self.process = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path: str, **params: str) -> Any:
        """The `data` of an HTTP API answer; an error answer raises with Prometheus' message."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(self.url(f"{path}?{query}"), timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (vector or scalar, as a list of samples)."""
        data = self.api("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = (
            data["result"] if data["resultType"] in ("vector", "matrix") else [data]
        )
        return result

    def failure(self, what: str) -> str:
        return f"{what}\n--- prometheus log ({self.log_path}):\n{log_tail(self.log_path, 40)}"


class PromQLError(Exception):
    """Prometheus refused or failed a query."""
