"""deploy/alertmanager: the routing tree (`amtool`), the templates, and one finding
delivered for real by Alertmanager to a webhook on loopback.

Findings are the alerts `monitor.delivery.alertmanager` builds: the routes are
tested with their labels, so a label renamed there fails here. `amtool` and
`alertmanager` come from the Debian package `prometheus-alertmanager`
(0.25; the compose stack runs 0.28, which reads the same keys); the tests
needing them are skipped when absent.
"""

from __future__ import annotations

import asyncio
import glob
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from monitor.delivery.alertmanager import render_alertmanager, to_alertmanager
from monitor.delivery.model import SEVERITIES
from tests.deploy.test_deploy import (
    ALERTMANAGER,
    alert_rules,
    run,
    services,
    tool,
)
from tests.support.alert_sample import sample_alert
from tests.support.deploy import compose, load
from xborder_tools.embedded_broker import free_port

CONFIG = ALERTMANAGER / "alertmanager.yml"
PLACEHOLDER = "http://case-officers-webhook.invalid/alertmanager"
TOKEN_SECRET = "case_officers_token"
LINK = "https://cases.example.org/alerts/0eb004b4dbae4f6c9a1e2d3c4b5a6978"
FINDINGS_GROUP_BY = ["alertname", "rule_id", "platform", "dst_country"]


def finding_labels(**over: Any) -> dict[str, str]:
    [posted] = to_alertmanager(sample_alert(**over), link=LINK, resolve_after_s=3600)
    return posted["labels"]


def route_to(config: Path, labels: dict[str, str], receiver: str) -> None:
    amtool = tool("amtool")
    args = [f"{k}={v}" for k, v in labels.items()]
    out = run(
        [amtool, "config", "routes", "test", f"--config.file={config}",
         f"--verify.receivers={receiver}", *args]
    )  # fmt: skip
    assert out.returncode == 0, f"{labels}: {out.stdout}{out.stderr}"
    assert out.stdout.split() == [receiver]


def receivers() -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in load(CONFIG)["receivers"]}


def routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes", []):
        yield from routes(child)


# ---------------------------------------------------------------------------
# The routing tree


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        pytest.param(finding_labels(severity="critical"), "case-officers", id="critical"),
        # Storage in China, onward transfers, undisclosed destinations.
        pytest.param(finding_labels(severity="high"), "case-officers", id="high"),
        pytest.param(finding_labels(severity="medium"), "case-officers-digest", id="medium"),
        pytest.param(finding_labels(severity="low"), "case-officers-digest", id="low"),
        # A severity a new rule pack brings is delivered, not dropped.
        pytest.param(finding_labels(severity="catastrophic"), "case-officers", id="unknown"),
        pytest.param(
            {k: v for k, v in finding_labels().items() if k != "severity"},
            "case-officers",
            id="no-severity",
        ),
        pytest.param(
            finding_labels(platform=None, dst_country=None), "case-officers", id="ungrouped"
        ),
        # Only the notifier's findings reach case officers, whatever the severity.
        pytest.param(
            {"alertname": "SomethingElse", "severity": "critical"}, "operations", id="not-finding"
        ),
    ],
)
def test_amtool_routes_findings(labels: dict[str, str], receiver: str) -> None:
    route_to(CONFIG, labels, receiver)


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: str(r["alert"]))
def test_every_prometheus_alert_goes_to_operations(rule: dict[str, Any]) -> None:
    route_to(CONFIG, {"alertname": rule["alert"], **rule["labels"]}, "operations")


@pytest.mark.parametrize("severity", SEVERITIES)
def test_every_severity_of_finding_reaches_an_integration(severity: str) -> None:
    """Issue 9: high findings went to a receiver with nothing configured."""
    amtool = tool("amtool")
    labels = [f"{k}={v}" for k, v in finding_labels(severity=severity).items()]
    out = run([amtool, "config", "routes", "test", f"--config.file={CONFIG}", *labels])
    assert out.returncode == 0, out.stderr
    for name in out.stdout.split():
        [hook] = receivers()[name]["webhook_configs"]
        assert hook["url"] == PLACEHOLDER
        auth = hook["http_config"]["authorization"]
        assert auth == {"type": "Bearer", "credentials_file": f"/run/secrets/{TOKEN_SECRET}"}
        # A finding does not resolve, and none of a group is cut off.
        assert hook["send_resolved"] is False and hook["max_alerts"] == 0


def test_findings_route_groups_by_labels_findings_carry() -> None:
    route = load(CONFIG)["route"]
    assert route["receiver"] == "operations"
    [findings] = [r for r in route["routes"] if r["matchers"] == ['alertname="XborderFinding"']]
    assert findings["group_by"] == FINDINGS_GROUP_BY
    labels = set(finding_labels())
    for r in routes(findings):
        assert set(r.get("group_by", [])) <= labels, r["receiver"]
    # Longer than a finding stays active: a finding left alone is notified once.
    assert findings["repeat_interval"] == "48h"


def test_amtool_check_config() -> None:
    amtool = tool("amtool")
    out = run([amtool, "check-config", str(CONFIG)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 templates" in out.stdout


def test_compose_gives_alertmanager_the_token_the_config_reads() -> None:
    am = services()["alertmanager"]
    assert am["secrets"] == [TOKEN_SECRET]
    source = compose()["secrets"][TOKEN_SECRET]["file"]
    assert source.startswith("${CASE_OFFICERS_TOKEN_FILE:?"), source


# ---------------------------------------------------------------------------
# render.sh and the templates


def render(out: Path, url: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("sh") is None:
        pytest.skip("sh not installed")
    env = {
        "ALERTMANAGER_CONFIG": str(CONFIG),
        "ALERTMANAGER_RENDERED": str(out),
        "RENDER_ONLY": "1",
        "CASE_OFFICERS_WEBHOOK_URL": url,
    }
    return run(["sh", str(ALERTMANAGER / "render.sh")], env=env)


def test_render_substitutes_the_webhook_and_brings_the_templates(tmp_path: Path) -> None:
    url = "https://hooks.example.org/alertmanager?a=&b=|c/d"
    rendered = tmp_path / "config" / "alertmanager.yml"
    out = render(rendered, url)
    assert out.returncode == 0, out.stderr
    hooks = [h for r in load(rendered)["receivers"] for h in r.get("webhook_configs", [])]
    assert [h["url"] for h in hooks] == [url, url]
    assert PLACEHOLDER not in rendered.read_text(encoding="utf-8")
    assert (rendered.parent / "templates" / "xborder.tmpl").is_file()
    # Again over the first: a fresh copy of the templates.
    assert render(rendered, url).returncode == 0
    missing = render(tmp_path / "other.yml", "")
    assert missing.returncode != 0 and "CASE_OFFICERS_WEBHOOK_URL" in missing.stderr
    if shutil.which("amtool"):
        check = run(["amtool", "check-config", str(rendered)])
        assert check.returncode == 0, check.stdout + check.stderr


def test_template_globs_find_the_templates() -> None:
    """Alertmanager quietly loads nothing from a glob that matches nothing."""
    for pattern in load(CONFIG)["templates"]:
        assert glob.glob(str(ALERTMANAGER / pattern)), pattern


def template_data(receiver: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """What Alertmanager gives templates (and webhooks), for `amtool template render`."""
    firing = [{**a, "status": "firing", "fingerprint": str(i)} for i, a in enumerate(alerts)]

    def common(key: str) -> dict[str, str]:
        return dict(set.intersection(*(set(a[key].items()) for a in alerts)))

    return {
        "receiver": receiver,
        "status": "firing",
        "alerts": firing,
        "groupLabels": {k: v for k, v in common("labels").items() if k in FINDINGS_GROUP_BY},
        "commonLabels": common("labels"),
        "commonAnnotations": common("annotations"),
        "externalURL": "http://alertmanager.invalid",
    }


def render_template(data: dict[str, Any], tmp_path: Path) -> str:
    amtool = tool("amtool")
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    text = '{{ template "xborder.title" . }}\n---\n{{ template "xborder.text" . }}'
    out = run(
        [amtool, "template", "render", f"--template.glob={ALERTMANAGER}/templates/*.tmpl",
         f"--template.text={text}", f"--template.data={path}"]
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_template_text_of_a_finding(tmp_path: Path) -> None:
    posted = to_alertmanager(sample_alert(), link=LINK, resolve_after_s=3600)
    text = render_template(template_data("case-officers", [dict(a) for a in posted]), tmp_path)
    title, _, body = text.partition("\n---\n")
    assert title == "1 high finding(s) of pipa.xborder.stored_in_watch_country on aliexpress to CN"
    for expected in (
        "alert:     0eb004b4dbae4f6c9a1e2d3c4b5a6978",
        "rule:      pipa.xborder.stored_in_watch_country",
        "platform:  aliexpress",
        "countries: KR -> CN",
        "legal ref: PIPA Art. 28-8; PIPC inquiry on storage in China",
        "747 records",
        LINK,
    ):
        assert expected in body


def test_template_text_of_an_operational_alert(tmp_path: Path) -> None:
    alert = {
        "labels": {"alertname": "XborderWorkerDown", "severity": "warning", "instance": "w1"},
        "annotations": {"summary": "down", "description": "gone", "runbook": "restart"},
        "startsAt": "2026-06-17T01:02:03.004Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }
    text = render_template(template_data("operations", [alert]), tmp_path)
    assert text.startswith("[FIRING] XborderWorkerDown: down\n---\n")
    assert "[FIRING] XborderWorkerDown on w1: down\ngone\nrunbook: restart" in text


# ---------------------------------------------------------------------------
# A real Alertmanager delivering to a webhook on loopback


def alertmanager_binary() -> str:
    # Debian names it prometheus-alertmanager; the upstream tarball alertmanager.
    path = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
    if path is None:
        pytest.skip("alertmanager not installed (apt-get install -y prometheus-alertmanager)")
    return path


def live_config(tmp_path: Path, webhook: str, token_file: Path) -> Path:
    """The deployed config, rendered by render.sh, with waits cut to a second."""
    path = tmp_path / "config" / "alertmanager.yml"
    out = render(path, webhook)
    assert out.returncode == 0, out.stderr
    cfg = load(path)
    for r in routes(cfg["route"]):
        r["group_wait"] = "1s"
    for receiver in cfg["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@asynccontextmanager
async def webhook_server(token: str) -> AsyncIterator[tuple[str, asyncio.Queue[Any]]]:
    """The case officers' webhook: what Alertmanager posts with the right token."""
    received: asyncio.Queue[Any] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.Response(status=401)
        received.put_nowait(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/alertmanager", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/alertmanager", received
    finally:
        await runner.cleanup()


@asynccontextmanager
async def alertmanager(config: Path, storage: Path) -> AsyncIterator[str]:
    """Alertmanager on loopback, gossip off; its URL once it is ready."""
    url = f"http://127.0.0.1:{free_port()}"
    log = (storage.parent / "alertmanager.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        alertmanager_binary(),
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address={url.removeprefix('http://')}",
        "--cluster.listen-address=",
        stdout=log,
        stderr=log,
    )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                assert proc.returncode is None, (storage.parent / "alertmanager.log").read_text()
                try:
                    async with session.get(f"{url}/-/ready") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("alertmanager not ready in 10s")
        yield url
    finally:
        proc.terminate()
        await proc.wait()
        log.close()


async def post_and_collect(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """A high and a medium finding posted as the notifier does; the webhook's payloads."""
    token = "test-token-not-a-secret"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n", encoding="utf-8")
    async with webhook_server(token) as (hook_url, received):
        config = live_config(tmp_path, hook_url, token_file)
        async with alertmanager(config, tmp_path / "data") as am, aiohttp.ClientSession() as s:
            for alert in (
                sample_alert(),
                sample_alert(alert_id="medium-1", rule_id="pipa.xborder.bulk", severity="medium"),
            ):
                content_type, body = render_alertmanager(alert, LINK)
                headers = {"Content-Type": content_type}
                async with s.post(f"{am}/api/v2/alerts", data=body, headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
            got: dict[str, dict[str, Any]] = {}
            while len(got) < 2:
                payload = await asyncio.wait_for(received.get(), timeout=10)
                got[payload["receiver"]] = payload
            return got


def test_alertmanager_delivers_a_high_finding_to_the_case_officers(tmp_path: Path) -> None:
    tool("amtool")
    alertmanager_binary()
    got = asyncio.run(post_and_collect(tmp_path))
    assert set(got) == {"case-officers", "case-officers-digest"}
    payload = got["case-officers"]
    assert payload["status"] == "firing"
    assert payload["groupLabels"] == {
        "alertname": "XborderFinding",
        "rule_id": "pipa.xborder.stored_in_watch_country",
        "platform": "aliexpress",
        "dst_country": "CN",
    }
    [alert] = payload["alerts"]
    assert alert["labels"] == finding_labels()
    assert alert["labels"]["alert_id"] == "0eb004b4dbae4f6c9a1e2d3c4b5a6978"
    assert alert["annotations"]["link"] == LINK and alert["generatorURL"] == LINK
    assert alert["annotations"]["summary"].startswith("2 events, 747 records")
    assert alert["startsAt"].startswith("2026-06-17T01:02:03.004")
    [digest] = got["case-officers-digest"]["alerts"]
    assert digest["labels"]["alert_id"] == "medium-1"
    # The templates read the payload Alertmanager really sends.
    text = render_template(payload, tmp_path)
    assert "alert:     0eb004b4dbae4f6c9a1e2d3c4b5a6978" in text and LINK in text
