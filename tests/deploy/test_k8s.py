"""deploy/k8s rendered as `kubectl apply -k` would apply it, and checked.

The kustomization is rendered by tests/support/kustomize.py (the subset it
uses), and by `kubectl kustomize` too where kubectl is installed: both must
give the same objects. Every rendered object is validated against the
Kubernetes JSON schemas of the pinned `kubernetes-validate` package (strict:
unknown fields are errors) for the oldest and the newest Kubernetes version
it ships; deliberately broken manifests show that validation fails. Then the
objects' wiring: probes, sizing, selectors, NetworkPolicy, the notifier and
its delivery configuration.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

# The `dev` extra pins it (`make install`); without it these tests cannot run.
import kubernetes_validate
import pytest
import yaml

from agents.ready import READY_PATH
from monitor.config.settings import Settings
from tests.support.deploy import K8S, assert_pinned, load, settings_names
from tests.support.kustomize import config_map_hash, render, secret_hash
from tests.support.paths import ROOT

# The oldest and newest Kubernetes schemas the pinned kubernetes-validate ships.
VERSIONS = ("1.25.0", "1.37.0")

# Worker memory (README, "Deploy and scale"): the process and its batches in
# flight, plus the resident memory one tracked item takes at most: 4.6 KB for
# an open alert group (RSS growth measured by benchmarks/state_size.py).
BASE_MIB = 256
BYTES_PER_ITEM = 4633
MIB = 1 << 20


@cache
def rendered() -> tuple[dict[str, Any], ...]:
    return tuple(render(K8S))


def objects() -> list[dict[str, Any]]:
    return [dict(o) for o in rendered()]


def by_key(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    keyed = {f"{o['kind']}/{o['metadata']['name']}": o for o in objs}
    assert len(keyed) == len(objs), "two objects of the same kind and name"
    return keyed


def one(kind: str, component: str | None = None) -> dict[str, Any]:
    found = [
        o
        for o in rendered()
        if o["kind"] == kind
        and (
            component is None or o["metadata"]["labels"]["app.kubernetes.io/component"] == component
        )
    ]
    assert len(found) == 1, f"{kind} {component}: {len(found)} objects"
    return found[0]


# ---------------------------------------------------------------------------
# Rendering


def test_kustomization_lists_every_file() -> None:
    kustomization = load(K8S / "kustomization.yaml")
    generated = {f for g in kustomization["configMapGenerator"] for f in g["files"]}
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) | generated == on_disk


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: rendered by tests/support/kustomize.py alone")
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


def test_kubectl_kustomize_renders_the_same_objects() -> None:
    assert by_key(kubectl_kustomize(K8S)) == by_key(objects())


def test_kubectl_kustomize_agrees_on_overrides_and_generated_secrets(tmp_path: Path) -> None:
    """What users set (namespace, image) and a generated Secret, rendered both ways."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    kustomization = load(copy / "kustomization.yaml")
    kustomization["namespace"] = "xborder"
    kustomization["images"] = [
        {
            "name": "xborder-monitor",
            "newName": "registry.invalid/xborder-monitor",
            "newTag": "0.1.1",
        }
    ]
    (copy / "sample.env").write_text("# a comment\nUSER=sample\nPASSWORD=not-a-secret\n")
    kustomization["secretGenerator"] = [
        {"name": "sample-credentials", "envs": ["sample.env"], "literals": ["MECHANISM=PLAIN"]}
    ]
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    deployment = load(copy / "deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"].append(
        {"secretRef": {"name": "sample-credentials"}}
    )
    (copy / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    ours = by_key(render(copy))
    assert by_key(kubectl_kustomize(copy)) == ours
    images = {c["image"] for o in ours.values() for c in containers(o)}
    assert images == {"registry.invalid/xborder-monitor:0.1.1"}
    [secret] = [o for o in ours.values() if o["kind"] == "Secret"]
    refs = ours["Deployment/xborder-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in refs["envFrom"]


def test_hashes_are_kustomizes() -> None:
    # Answers of kustomize v5.5.0 (`kubectl kustomize`), Go's HTML escapes included.
    cm = {"metadata": {"name": "x"}, "data": {"a.yaml": "a: 1\n"}}
    assert config_map_hash(cm) == "2f95kc4m9b"
    cm = {"metadata": {"name": "x"}, "data": {"k": "<&>"}}
    assert config_map_hash(cm) == "8gm4tgm94f"
    # And of its own tests (api/hasher/hasher_test.go).
    assert config_map_hash({"metadata": {"name": ""}, "data": {"one": ""}}) == "9g67k2htb6"
    secret = {"metadata": {"name": ""}, "type": "my-type", "data": {"one": ""}}
    assert secret_hash(secret) == "74bd68bm66"


# ---------------------------------------------------------------------------
# Schemas


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')} ({version})"
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{where}: {'.'.join(map(str, e.path))}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{where}: {e.message}"]
    return []


@pytest.mark.parametrize("version", VERSIONS)
def test_rendered_objects_match_the_kubernetes_schemas(version: str) -> None:
    problems = [p for obj in objects() for p in schema_errors(obj, version)]
    assert problems == []


def _edit(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(deployment: dict[str, Any]) -> None:
        node: Any = deployment
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return edit


_DELETE = object()
CONTAINER = "spec.template.spec.containers.0"

# Mistakes of each kind in the worker Deployment; each must fail validation.
BROKEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "misspelled field": lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
        readinesProbe=d["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    ),
    "wrong type": _edit("spec.replicas", "two"),
    "required field missing": _edit(f"{CONTAINER}.name", _DELETE),
    "list where a mapping belongs": _edit(f"{CONTAINER}.resources", ["1Gi"]),
    "API version the kind never had": _edit("apiVersion", "apps/v1beta9"),
}


@pytest.mark.parametrize("mistake", sorted(BROKEN))
def test_validation_fails_on_a_broken_manifest(mistake: str, tmp_path: Path) -> None:
    """Through the whole path: a broken file on disk, rendered, then validated."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    deployment = load(copy / "deployment.yaml")
    BROKEN[mistake](deployment)
    (copy / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    problems = [p for obj in render(copy) for p in schema_errors(obj, VERSIONS[-1])]
    assert problems, f"{mistake}: not caught"
    assert all("xborder-worker" in p for p in problems), problems


# ---------------------------------------------------------------------------
# What the objects say


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] != "Deployment":
        return []
    spec = obj["spec"]["template"]["spec"]
    found: list[dict[str, Any]] = spec.get("initContainers", []) + spec["containers"]
    return found


def mebibytes(quantity: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", quantity)
    assert m, quantity
    return float(m[1]) * (1024 if m[2] == "Gi" else 1)


def test_secrets_referred_to_are_rendered_or_documented() -> None:
    """A Secret the manifests use but do not hold is created by hand: kustomization.yaml says so."""
    text = (K8S / "kustomization.yaml").read_text(encoding="utf-8")
    rendered_secrets = {o["metadata"]["name"] for o in rendered() if o["kind"] == "Secret"}
    for obj in rendered():
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        names = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        names |= {
            e["valueFrom"]["secretKeyRef"]["name"]
            for c in containers(obj)
            for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        for name in names - rendered_secrets:
            assert name in text, f"{name}: say in kustomization.yaml that it must be created"


def test_worker_deployment() -> None:
    keyed = by_key(objects())
    deployment = one("Deployment", "worker")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    assert_pinned(container["image"])
    for ref in [e["configMapRef"]["name"] for e in container["envFrom"]]:
        assert f"ConfigMap/{ref}" in keyed, f"Deployment references missing ConfigMap {ref}"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9464}
    # Ready once partitions are assigned and recovered; alive while /metrics answers.
    assert container["readinessProbe"]["httpGet"] == {"path": READY_PATH, "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert mounts["geoip"]["mountPath"] == "/data/geoip" and mounts["geoip"]["readOnly"]
    claim = volumes["geoip"]["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim/{claim}" in keyed
    assert set(mounts) <= set(volumes)


def sizing_table() -> list[tuple[int, str, str, bool]]:
    """(tracked items per replica, request, limit, shipped) from README's sizing table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| ([\d,]+)( \(deploy/k8s\))? \| [^|]+ \| (\d+(?:Mi|Gi)) \| (\d+(?:Mi|Gi)) \|$",
        text,
        re.M,
    )
    return [(int(n.replace(",", "")), req, lim, bool(shipped)) for n, shipped, req, lim in rows]


def rounded_mib(items: int, copies: int) -> int:
    """BASE_MIB plus `copies` times the state, rounded up to 256 MiB."""
    need = BASE_MIB + copies * items * BYTES_PER_ITEM / MIB
    return -(-int(need) // 256) * 256 if need % 256 else int(need)


def test_sizing_table_follows_from_the_measured_state() -> None:
    table = sizing_table()
    assert len(table) >= 4 and sum(shipped for *_, shipped in table) == 1
    for items, request, limit, _ in table:
        # Request: this replica's share; limit: twice it (its peer's too, while that one is down).
        assert mebibytes(request) == rounded_mib(items, 1), (items, request)
        assert mebibytes(limit) == rounded_mib(items, 2), (items, limit)


def test_worker_memory_is_the_shipped_row_of_the_sizing_table() -> None:
    [(_, request, limit, _)] = [row for row in sizing_table() if row[3]]
    [container] = one("Deployment", "worker")["spec"]["template"]["spec"]["containers"]
    resources = container["resources"]
    assert resources["requests"]["memory"] == request
    assert resources["limits"]["memory"] == limit
    assert resources["requests"]["cpu"] == "1"  # a worker is one core (docs/performance.md)


def test_configmap_names_settings() -> None:
    config = by_key(objects())["ConfigMap/xborder-config"]["data"]
    assert set(config) <= settings_names(), sorted(set(config) - settings_names())
    s = Settings.from_env(config)
    assert s.geoip_country_path == Path("/data/geoip/country.mmdb")
    assert s.metrics_port == 9464


def test_services_and_pdb_select_their_pods() -> None:
    for component, port in (("worker", 9464), ("notify", 9465)):
        pod_labels = one("Deployment", component)["spec"]["template"]["metadata"]["labels"]
        service = one("Service", component)
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert service["spec"]["ports"] == [
            {"name": "metrics", "port": port, "targetPort": "metrics"}
        ]
        notes = service["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true"
        assert notes["prometheus.io/port"] == str(port)
        assert notes["prometheus.io/path"] == "/metrics"
    # Scraped whether ready or not: an unready worker is one to look at.
    assert one("Service", "worker")["spec"]["publishNotReadyAddresses"] is True
    worker = one("Deployment", "worker")
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["minAvailable"] < worker["spec"]["replicas"]


def test_worker_network_policy() -> None:
    """Ingress: the metrics port, from the monitoring namespace. Egress: DNS and Kafka only."""
    policy = one("NetworkPolicy", "worker")["spec"]
    worker = one("Deployment", "worker")
    assert policy["podSelector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    [ingress] = policy["ingress"]
    assert ingress["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    dns, kafka = policy["egress"]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert kafka["to"][0]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "kafka"}}
    bootstrap_port = int(
        by_key(objects())["ConfigMap/xborder-config"]["data"]["KAFKA_BOOTSTRAP_SERVERS"].rsplit(
            ":", 1
        )[1]
    )
    assert bootstrap_port in {p["port"] for p in kafka["ports"]}
    assert all("ipBlock" not in peer for rule in policy["egress"] for peer in rule["to"])


def test_notify_deployment_and_its_delivery_config(tmp_path: Path) -> None:
    from monitor.delivery.routing import load_delivery

    keyed = by_key(objects())
    notify = one("Deployment", "notify")
    assert notify["spec"]["replicas"] == 1 and notify["spec"]["strategy"] == {"type": "Recreate"}
    pod = notify["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["notify"]
    assert_pinned(container["image"])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert set(env) <= settings_names()
    assert container["ports"] == [{"name": "metrics", "containerPort": 9465}]
    assert int(env["XBORDER_NOTIFY_METRICS_PORT"]) == 9465
    assert [e["configMapRef"]["name"] for e in container["envFrom"]] == ["xborder-config"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # The generated ConfigMap (hashed name) holds delivery.yaml where the setting points.
    generated = volumes["delivery"]["configMap"]["name"]
    assert re.fullmatch(r"xborder-delivery-[a-z0-9]{10}", generated)
    config_path = Path(env["XBORDER_DELIVERY_CONFIG"])
    assert mounts["delivery"] == str(config_path.parent)
    text = keyed[f"ConfigMap/{generated}"]["data"][config_path.name]
    assert text == (K8S / "delivery.yaml").read_text(encoding="utf-8")
    (tmp_path / config_path.name).write_text(text)
    config = load_delivery(tmp_path / config_path.name, (tmp_path,), {}, resolve=False)
    assert set(config.receivers) == {"case-officers", "alertmanager"}
    # Every secret file it names is in the mounted Secret.
    secret = volumes["webhook-secret"]["secret"]
    files = {f"{mounts['webhook-secret']}/{item['path']}" for item in secret["items"]}
    named = {r["secret_file"] for r in yaml.safe_load(text)["receivers"] if "secret_file" in r}
    assert named and named <= files
    assert "history" in mounts
    claim = volumes["history"]["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim/{claim}" in keyed


def test_kafka_credentials_are_a_generated_secret_the_workers_mount() -> None:
    pod = one("Deployment", "worker")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    volume = next(v for v in pod["volumes"] if v["name"] == "kafka-credentials")
    assert volume["secret"]["secretName"].startswith("xborder-kafka-")  # the generated name
    assert volume["secret"]["optional"] is True  # PLAINTEXT needs none
    mount = next(m for m in container["volumeMounts"] if m["name"] == "kafka-credentials")
    assert mount["readOnly"] is True
    generated = load(K8S / "kustomization.yaml")["secretGenerator"]
    assert [g["name"] for g in generated] == ["xborder-kafka"]
    assert not {"files", "literals", "envs"} & set(generated[0])  # no secret in the repository
    # The settings the ConfigMap shows, commented out: valid together, their
    # files in the mounted Secret.
    shown = dict(
        re.findall(
            r'^\s*#\s*(XBORDER_KAFKA_\w+): "([^"]*)"',
            (K8S / "configmap.yaml").read_text(),
            re.MULTILINE,
        )
    )
    assert len(shown) == 7, shown
    s = Settings.from_env(shown)
    files = [s.kafka_sasl_password_file, s.kafka_ssl_cafile, s.kafka_ssl_certfile]
    files.append(s.kafka_ssl_keyfile)
    assert all(f is not None and f.parent == Path(mount["mountPath"]) for f in files), files
