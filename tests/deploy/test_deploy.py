"""Static checks of the deployment files (no Docker engine or cluster needed).

Compose files are parsed and their structure checked; settings named anywhere
are checked against what `Settings.from_env` really reads; the Prometheus
files go through `promtool` (Debian package `prometheus`), skipped when
absent. Elsewhere: the compose file against the Compose Specification schema
(test_compose_schema.py), the Kubernetes manifests rendered and checked
against the Kubernetes schemas (test_k8s.py), the Alertmanager files
(test_alertmanager_routes.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.config.settings import Settings, Topics
from monitor.delivery.metrics import DeliveryMetrics
from monitor.metrics import Metrics
from tests.support.deploy import (
    COMPOSE,
    DEPLOY,
    assert_pinned,
    compose,
    load,
    settings_names,
)
from tests.support.paths import ROOT

DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = DEPLOY / "xborder.env.example"
PROMETHEUS = DEPLOY / "prometheus"
ALERTMANAGER = DEPLOY / "alertmanager"

SETTING_NAME = re.compile(r"\b(?:XBORDER_[A-Z0-9_]+|KAFKA_BOOTSTRAP_SERVERS)\b")
EXPECTED_ALERTS = {
    "XborderWorkerDown",
    "XborderVersionsDiffer",
    "XborderConfigReloadFailed",
    "XborderDeadLettersHigh",
    "XborderCriticalTransfer",
    "XborderProcessingSlow",
    "XborderEventLagHigh",
    "XborderGeoIPMissesHigh",
    "XborderNoTelemetry",
}
THIRTY_DAYS_MS = str(30 * 24 * 3600 * 1000)


def run(
    cmd: list[str], *, cwd: Path = ROOT, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = "prometheus-alertmanager" if name == "amtool" else "prometheus"
        pytest.skip(f"{name} not installed (apt-get install -y {package})")
    return path


# ---------------------------------------------------------------------------
# What the code actually reads


@cache
def metric_sample_names() -> frozenset[str]:
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    registry = CollectorRegistry()
    DeliveryMetrics(registry)
    for family in Metrics(registry).registry.collect():
        names.update(family.name + s for s in suffixes[family.type])
    return frozenset(names)


def test_settings_names_are_found() -> None:
    names = settings_names()
    assert "KAFKA_BOOTSTRAP_SERVERS" in names
    assert {"XBORDER_RULES", "XBORDER_GEOIP_COUNTRY", "XBORDER_DATA_DIR"} <= names


# ---------------------------------------------------------------------------
# docker-compose.yml


def services() -> dict[str, dict[str, Any]]:
    s = compose()["services"]
    assert isinstance(s, dict) and s
    return s


def one_shot_services() -> set[str]:
    """Services others wait on to *finish*: they need no healthcheck."""
    found = set()
    for svc in services().values():
        for name, cond in (svc.get("depends_on") or {}).items():
            if cond.get("condition") == "service_completed_successfully":
                found.add(name)
    return found


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


STACK = (
    "kafka",
    "kafka-init",
    "geoip-init",
    "worker",
    "notify",
    "prometheus",
    "alertmanager",
    "grafana",
)


def test_compose_parses_and_has_the_stack() -> None:
    assert set(STACK) <= set(services())


@pytest.mark.parametrize("name", STACK)
def test_compose_service_has_pinned_image_or_build(name: str) -> None:
    svc = services()[name]
    assert "image" in svc or "build" in svc
    if "image" in svc:
        assert_pinned(svc["image"])


def test_every_compose_service_is_pinned_and_healthchecked() -> None:
    one_shot = one_shot_services()
    assert {"kafka-init", "geoip-init"} <= one_shot
    for name, svc in services().items():
        assert "image" in svc or "build" in svc, name
        if "image" in svc:
            assert_pinned(svc["image"])
        if name in one_shot:
            assert svc.get("restart") == "no", f"{name}: a one-shot service must not restart"
            continue
        check = svc.get("healthcheck")
        assert check and check.get("test"), f"{name}: no healthcheck"
        assert not check.get("disable"), name


def test_compose_depends_on_conditions() -> None:
    valid = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in services().items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: use the long depends_on form with conditions"
        for dep, cond in deps.items():
            assert dep in services(), f"{name} depends on unknown {dep}"
            assert cond.get("condition") in valid, f"{name} -> {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services()[dep], f"{dep} has no healthcheck"
    worker = services()["worker"]["depends_on"]
    assert worker["kafka-init"]["condition"] == "service_completed_successfully"
    assert worker["kafka"]["condition"] == "service_healthy"


def test_compose_bind_mounts_are_relative_and_exist() -> None:
    for name, svc in services().items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                # A fresh checkout has every bind-mounted file: nothing to make first.
                assert (ROOT / source).exists(), f"{name}: {source} missing"
            else:
                assert not source.startswith(("/", "~")), f"{name}: host path {source}"
                assert source in (compose().get("volumes") or {}), f"{name}: undeclared {source}"


def test_compose_has_no_credentials() -> None:
    for name, svc in services().items():
        for key, value in environment(svc).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|WEBHOOK_URL", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", value), (
                    f"{name}: {key} must come from the environment, not the file"
                )


def test_compose_worker() -> None:
    worker = services()["worker"]
    assert worker["build"] == {"context": ".", "target": "service"}
    assert worker["deploy"]["replicas"] == 2
    assert "container_name" not in worker and "ports" not in worker  # would break scaling
    env = environment(worker)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["XBORDER_GEOIP_COUNTRY"] == "/data/geoip/country.mmdb"
    assert env["XBORDER_DATA_DIR"] == "/data"
    assert "geoip:/data/geoip:ro" in worker["volumes"]
    assert services()["notify"]["image"] == worker["image"]


def test_compose_provisions_the_geoip_database() -> None:
    """geoip-init fills the named volume the workers mount, before they start."""
    init = services()["geoip-init"]
    assert init["build"] == {"context": ".", "target": "tools"}
    assert_pinned(init["image"])
    assert init["image"] != services()["worker"]["image"]
    words = init["command"]
    assert words[:2] == ["geoip", "fetch"]
    dest = words[words.index("--dest") + 1]
    assert f"geoip:{dest}" in init["volumes"]
    assert "geoip" in compose()["volumes"]
    worker = services()["worker"]
    assert worker["depends_on"]["geoip-init"] == {"condition": "service_completed_successfully"}
    # The database the worker opens is in the volume geoip-init wrote.
    mount = next(v for v in worker["volumes"] if v.startswith("geoip:"))
    target = mount.split(":")[1]
    assert environment(worker)["XBORDER_GEOIP_COUNTRY"] == f"{target}/country.mmdb"


def test_compose_setting_names_are_read_by_settings() -> None:
    for name, svc in services().items():
        if name not in ("worker", "notify"):
            continue
        unknown = {k for k in environment(svc) if SETTING_NAME.fullmatch(k)} - settings_names()
        assert not unknown, f"{name}: not read by Settings.from_env: {sorted(unknown)}"
        # The values parse (whole numbers, guarantee) and change what they name.
        Settings.from_env(environment(svc))


def test_compose_kafka_single_node_kraft() -> None:
    kafka = services()["kafka"]
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    init = services()["kafka-init"]
    assert init["image"] == kafka["image"]  # kafka-topics.sh of the same version
    assert "./deploy/kafka:/deploy/kafka:ro" in init["volumes"]
    assert "/deploy/kafka/create-topics.sh" in init["entrypoint"]


def test_compose_monitoring_mounts() -> None:
    prom = services()["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    am = services()["alertmanager"]
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in am["volumes"]
    grafana = services()["grafana"]
    assert grafana["image"] == "grafana/grafana:11.6.0"
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]


# ---------------------------------------------------------------------------
# Dockerfile and .dockerignore


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, with those of the stage it starts FROM before its own."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in dockerfile_instructions():
        if word == "FROM":
            image, _, name = rest.partition(" AS ")
            current = [*stages.get(image, []), (word, image)]
            stages[name.strip()] = current
        else:
            current.append((word, rest))
    return stages


def test_dockerfile_stages() -> None:
    stages = dockerfile_stages()
    assert list(stages) == ["base", "tools", "service"]  # service last: the default target
    assert [r for w, r in stages["base"] if w == "FROM"] == ["python:3.11-slim"]
    for name in ("tools", "service"):
        assert [r for w, r in stages[name] if w == "FROM"] == ["python:3.11-slim", "base"]


def test_dockerfile_service() -> None:
    ins = dockerfile_stages()["service"]
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "9464") in ins
    assert ("ENTRYPOINT", '["xborder"]') in ins
    assert [r for w, r in ins if w == "CMD"] == ['["worker"]']
    installs = [r for w, r in ins if w == "RUN" and "pip install" in r]
    assert len(installs) == 1 and "pip install . " in installs[0] + " "  # no extras
    assert any(w == "COPY" and r.startswith("rules/") for w, r in ins)
    # The service image holds no tooling (demo, simulator, embedded broker, GeoIP fetch).
    copied = [r.split()[0] for w, r in ins if w == "COPY"]
    assert all(not c.startswith(("xborder_tools", ".")) for c in copied), copied
    health = [r for w, r in ins if w == "HEALTHCHECK"]
    assert len(health) == 1 and "/metrics" in health[0] and "python" in health[0]
    assert "curl" not in health[0]


def test_dockerfile_tools() -> None:
    """The tools image runs `xborder geoip fetch` (npm) as the user the service reads as."""
    ins = dockerfile_stages()["tools"]
    assert any(w == "COPY" and r.startswith("xborder_tools/") for w, r in ins)
    assert any(w == "RUN" and "apt-get install" in r and " npm" in r for w, r in ins)
    users = [r for w, r in ins if w == "USER"]
    service_users = [r for w, r in dockerfile_stages()["service"] if w == "USER"]
    assert users and users[-1] == service_users[-1]
    cmd = json.loads(next(r for w, r in reversed(ins) if w == "CMD"))
    assert cmd == services()["geoip-init"]["command"]


def test_dockerfile_env_names_are_settings() -> None:
    env: dict[str, str] = {}
    for word, rest in dockerfile_stages()["service"]:
        if word == "ENV":
            env.update((m[1], m[2]) for m in re.finditer(r"(\w+)=(\S+)", rest))
    names = {k for k in env if SETTING_NAME.fullmatch(k)}
    assert names <= settings_names(), sorted(names - settings_names())
    assert env["XBORDER_GEOIP_COUNTRY"] == "/data/geoip/country.mmdb"
    assert env["XBORDER_DATA_DIR"] == "/data"
    assert env["XBORDER_METRICS_PORT"] == "9464"
    s = Settings.from_env({k: env[k] for k in names})
    assert s.geoip_country_path == Path("/data/geoip/country.mmdb")


def test_dockerignore_keeps_local_state_out() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    entries = {line.strip() for line in lines if not line.startswith("#")}
    assert {".git", ".venv", "demo-data", "**/.env"} <= entries
    assert "xborder_tools" not in entries  # the tools target copies it


# ---------------------------------------------------------------------------
# deploy/xborder.env.example


def env_example_entries() -> dict[str, str]:
    entries = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if m:
            entries[m.group(1)] = m.group(2).strip()
    return entries


def test_env_example_lists_every_setting_once() -> None:
    entries = env_example_entries()
    assert set(entries) == settings_names()
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    named = set(SETTING_NAME.findall(text))
    assert named <= settings_names(), sorted(named - settings_names())


def test_env_example_defaults_are_the_defaults() -> None:
    base = Settings.from_env({})
    for name, value in env_example_entries().items():
        if value:
            assert Settings.from_env({name: value}) == base, f"{name}={value} is not the default"


def test_every_setting_changes_something() -> None:
    """Each name in the example really reaches Settings (no silently ignored key)."""
    base = Settings.from_env({})
    numeric = (
        "_PORT",
        "_SIZE",
        "_MS",
        "_PARTITIONS",
        "_REPLICATION",
        "_TIMEOUT",
        "_INTERVAL",
        "_GRACE",
        "_SKEW",
    )
    for name in env_example_entries():
        value = "7" if name.endswith(numeric) else "/marker"
        if name.startswith("XBORDER_TOPIC_"):
            value = "marker"
        if name == "XBORDER_PROCESSING_GUARANTEE":
            value = "exactly_once"
        if name == "XBORDER_DEAD_LETTER_MASK":
            value = "1"
        if name == "XBORDER_LOG_LEVEL":
            value = "debug"
        if name == "XBORDER_DELIVERY_HISTORY_URL":
            value = "postgresql://marker"
        if name == "XBORDER_ALERT_LINK":
            value = "https://marker/{alert_id}"
        if name == "XBORDER_INPUT_FORMATS":
            value = "marker=vpc-flow"
        if name.startswith("XBORDER_KAFKA_"):
            continue  # below: they only count together
        assert Settings.from_env({name: value}) != base, name


# Kafka security settings are refused where the others make them unused: each
# is changed within a whole SASL_SSL configuration.
KAFKA_SECURED = {
    "XBORDER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "XBORDER_KAFKA_SASL_USERNAME": "user",
    "XBORDER_KAFKA_SASL_PASSWORD": "password",
    "XBORDER_KAFKA_SSL_CERTFILE": "/client.pem",
}
KAFKA_CHANGES = {
    "XBORDER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "XBORDER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "XBORDER_KAFKA_SSL_CHECK_HOSTNAME": "0",
}


def test_every_kafka_security_setting_changes_something() -> None:
    names = [name for name in env_example_entries() if name.startswith("XBORDER_KAFKA_")]
    assert len(names) == 9
    base = Settings.from_env(KAFKA_SECURED)
    for name in names:
        env = {**KAFKA_SECURED, name: KAFKA_CHANGES.get(name, "/marker")}
        if name == "XBORDER_KAFKA_SECURITY_PROTOCOL":  # no TLS: no client certificate
            del env["XBORDER_KAFKA_SSL_CERTFILE"]
        if name == "XBORDER_KAFKA_SASL_PASSWORD_FILE":  # one or the other
            del env["XBORDER_KAFKA_SASL_PASSWORD"]
        assert Settings.from_env(env) != base, name


# ---------------------------------------------------------------------------
# deploy/kafka


def topics_yaml() -> list[dict[str, Any]]:
    doc = load(DEPLOY / "kafka" / "topics.yaml")
    topics = doc["topics"]
    assert isinstance(topics, list)
    return topics


def test_topics_definitions() -> None:
    topics = {t["name"]: t for t in topics_yaml()}
    defaults = Topics()
    assert set(topics) == {
        *defaults.inputs,
        defaults.alerts,
        defaults.dead_letters,
        defaults.undelivered,
    }
    for t in topics.values():
        assert set(t) == {"name", "partitions", "replication", "configs"}
        assert all(isinstance(v, str) for v in t["configs"].values()), t["name"]
    for name in defaults.inputs:
        assert topics[name]["partitions"] == 6
    alerts = topics[defaults.alerts]
    assert alerts["partitions"] == 6
    assert alerts["configs"]["cleanup.policy"] == "compact,delete"
    assert alerts["configs"]["retention.ms"] == THIRTY_DAYS_MS
    dead = topics[defaults.dead_letters]
    assert dead["partitions"] == 3
    assert dead["configs"]["retention.ms"] == THIRTY_DAYS_MS
    worker_env = environment(services()["worker"])
    assert int(worker_env["XBORDER_PARTITIONS"]) == topics[defaults.egress]["partitions"]


def test_create_topics_script_follows_topics_yaml() -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash not installed")
    script = DEPLOY / "kafka" / "create-topics.sh"
    out = run(["bash", str(script)], env={"DRY_RUN": "1", "BOOTSTRAP_SERVERS": "kafka:9092"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    creates = [line.split() for line in lines if "--create" in line]
    expected = []
    for t in topics_yaml():
        args = ["--bootstrap-server", "kafka:9092", "--create", "--if-not-exists",
                "--topic", t["name"], "--partitions", str(t["partitions"]),
                "--replication-factor", str(t["replication"])]  # fmt: skip
        for k, v in t["configs"].items():
            args += ["--config", f"{k}={v}"]
        expected.append(["/opt/kafka/bin/kafka-topics.sh", *args])
    assert creates == expected
    over = run(["bash", str(script)], env={"DRY_RUN": "1", "REPLICATION_FACTOR": "3"})
    assert all(
        "--replication-factor 3" in line for line in over.stdout.splitlines() if "--create" in line
    )
    secured = run(["bash", str(script)], env={"DRY_RUN": "1", "COMMAND_CONFIG": "/c.properties"})
    called = secured.stdout.splitlines()
    assert called and all("--command-config /c.properties" in line for line in called)


# ---------------------------------------------------------------------------
# deploy/prometheus


def alert_rules() -> list[dict[str, Any]]:
    doc = load(PROMETHEUS / "alerts.yml")
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_prometheus_config_structure() -> None:
    cfg = load(PROMETHEUS / "prometheus.yml")
    assert cfg["rule_files"] == ["alerts.yml"]
    targets = [
        t
        for am in cfg["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert targets == ["alertmanager:9093"]
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    worker = jobs["xborder-worker"]
    dns = worker["dns_sd_configs"]
    assert dns == [{"names": ["worker"], "type": "A", "port": 9464, "refresh_interval": "15s"}]
    assert "worker" in services() and "alertmanager" in services()


def test_alert_rules_structure() -> None:
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    assert set(names) == EXPECTED_ALERTS
    for r in rules:
        assert {"summary", "description", "runbook"} <= set(r["annotations"]), r["alert"]
        # Critical is a finding's severity: findings reach case officers one
        # by one as XborderFinding, not as a Prometheus alert.
        assert r["labels"]["severity"] in ("warning", "info"), r["alert"]
    by_name = {r["alert"]: r for r in rules}
    assert by_name["XborderCriticalTransfer"]["labels"]["severity"] == "info"
    assert by_name["XborderWorkerDown"]["for"] == "2m"
    assert 'severity="critical",action="new"' in by_name["XborderCriticalTransfer"]["expr"]
    assert "rule_id" in by_name["XborderCriticalTransfer"]["expr"]


def test_alert_rules_use_exported_metrics() -> None:
    text = (PROMETHEUS / "alerts.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"\bxborder_[a-z_]+", text))
    assert used, "no metric referenced"
    assert used <= metric_sample_names(), sorted(used - metric_sample_names())


def test_promtool_check_config() -> None:
    promtool = tool("promtool")
    out = run([promtool, "check", "config", "prometheus.yml"], cwd=PROMETHEUS)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_check_rules() -> None:
    promtool = tool("promtool")
    out = run([promtool, "check", "rules", "alerts.yml"], cwd=PROMETHEUS)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_test_rules() -> None:
    promtool = tool("promtool")
    tested = {
        t.get("alertname")
        for case in load(PROMETHEUS / "alerts_test.yml")["tests"]
        for t in case.get("alert_rule_test", [])
    }
    assert {
        "XborderCriticalTransfer",
        "XborderWorkerDown",
        "XborderVersionsDiffer",
        "XborderConfigReloadFailed",
    } <= tested
    out = run([promtool, "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS)
    assert out.returncode == 0, out.stdout + out.stderr


# deploy/alertmanager: tests/deploy/test_alertmanager_routes.py


# ---------------------------------------------------------------------------
# deploy/grafana


def test_grafana_provisioning() -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    ds = load(prov / "datasources" / "prometheus.yml")["datasources"]
    assert [d["url"] for d in ds] == ["http://prometheus:9090"]
    providers = load(prov / "dashboards" / "xborder.yml")["providers"]
    path = providers[0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in services()["grafana"]["volumes"]
    dashboards = DEPLOY / "grafana" / "dashboards"
    # Generated from code (tests/deploy/test_dashboards.py holds them to it).
    boards = sorted(dashboards.glob("*.json"))
    assert [b.name for b in boards] == ["cross-border-transfers.json", "pipeline-health.json"]
    for board in boards:
        json.loads(board.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------
# Across every deployment file


def deploy_files() -> list[Path]:
    files = [COMPOSE, DOCKERFILE, ROOT / ".dockerignore"]
    files += [p for p in DEPLOY.rglob("*") if p.is_file() and p.name != ".gitkeep"]
    return files


def test_no_unpinned_images_or_machine_paths() -> None:
    for path in deploy_files():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"image:\s*\S+:latest\b|FROM\s+\S+:latest\b", text), path
        assert not re.search(r"/(?:home|Users|work)/\w", text), f"{path}: machine path"


def test_compose_delivery_file_is_valid_and_feeds_alertmanager() -> None:
    from monitor.delivery.routing import load_delivery
    from tests.support.alert_sample import sample_alert

    path = ROOT / "deploy" / "delivery.yaml"
    config = load_delivery(path, (path.parent,), {}, resolve=False)
    assert config.receivers["alertmanager"].format == "alertmanager"
    assert config.receivers["alertmanager"].url.endswith("/api/v2/alerts")
    high = [r.name for r in config.receivers_for(sample_alert(severity="high"))]
    low = [r.name for r in config.receivers_for(sample_alert(severity="low"))]
    assert high == ["alertmanager", "case-officers"] and low == ["case-officers"]
