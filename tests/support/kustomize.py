"""Render a kustomization the way `kubectl kustomize` does, for the subset deploy/k8s uses.

The deployment tests must run where kubectl is not installed, so they render
with this; where it is, tests/deploy/test_k8s.py checks both give the same
objects. Anything outside the subset raises `Unsupported` rather than being
rendered differently: a new kustomize feature in deploy/k8s needs its
counterpart here (or the tests stop there and say so).

The subset: `resources` (files beside the kustomization), `labels` (metadata
labels only), `configMapGenerator` and `secretGenerator` (`files`,
`literals`, `envs`) with kustomize's name-suffix hash and the references to
the generated names in pod templates, `images`, and `namespace`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Unsupported", "config_map_hash", "render", "secret_hash"]

_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "labels",
    "configMapGenerator",
    "secretGenerator",
    "images",
    "namespace",
}
_LABEL_FIELDS = {"pairs", "includeSelectors", "includeTemplates"}
_GENERATOR_FIELDS = {"name", "files", "literals", "envs", "type"}
_IMAGE_FIELDS = {"name", "newName", "newTag", "digest"}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class Unsupported(Exception):
    """The kustomization uses something this renderer does not implement."""


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize directory` prints, in the order of the kustomization."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    _only(kustomization, _FIELDS, "kustomization")
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise Unsupported(f"kind {kustomization['kind']}")
    objects: list[dict[str, Any]] = []
    for name in kustomization.get("resources", []):
        path = directory / name
        if not path.is_file():
            raise Unsupported(f"resource {name}: only files beside the kustomization")
        text = path.read_text(encoding="utf-8")
        objects += [doc for doc in yaml.safe_load_all(text) if doc is not None]
    generated = [
        _config_map(directory, spec) for spec in kustomization.get("configMapGenerator", [])
    ]
    generated += [_secret(directory, spec) for spec in kustomization.get("secretGenerator", [])]
    objects += generated
    for entry in kustomization.get("labels", []):
        _only(entry, _LABEL_FIELDS, "labels")
        if entry.get("includeSelectors") or entry.get("includeTemplates"):
            raise Unsupported("labels: includeSelectors/includeTemplates")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])
    for image in kustomization.get("images", []):
        _only(image, _IMAGE_FIELDS, "images")
        for container in _containers(objects):
            _set_image(container, image)
    if "namespace" in kustomization:
        for obj in objects:
            obj["metadata"]["namespace"] = kustomization["namespace"]
    # The suffix comes last, over the final data; then every reference follows it.
    renamed: dict[str, dict[str, str]] = {"ConfigMap": {}, "Secret": {}}
    for obj in generated:
        meta = obj["metadata"]
        suffix = config_map_hash(obj) if obj["kind"] == "ConfigMap" else secret_hash(obj)
        renamed[obj["kind"]][meta["name"]] = meta["name"] = f"{meta['name']}-{suffix}"
    for spec in _pod_specs(objects):
        _rename_references(spec, renamed["ConfigMap"], renamed["Secret"])
    return objects


# kustomize's hashes (api/hasher: encodeConfigMap, encodeSecret, Encode). The
# name is always empty in them: kustomize looks it up as one field called
# "metadata/name", which no object has (kustomize v5.5.0, kubectl 1.32).


def config_map_hash(cm: dict[str, Any]) -> str:
    """kustomize's name suffix for a generated ConfigMap."""
    encoded: dict[str, Any] = {"kind": "ConfigMap", "name": "", "data": cm.get("data", "")}
    if cm.get("binaryData"):
        encoded["binaryData"] = cm["binaryData"]
    return _encode(encoded)


def secret_hash(secret: dict[str, Any]) -> str:
    """kustomize's name suffix for a generated Secret."""
    encoded: dict[str, Any] = {
        "kind": "Secret",
        "name": "",
        "type": secret.get("type", ""),
        "data": secret.get("data", ""),
    }
    if secret.get("stringData"):
        encoded["stringData"] = secret["stringData"]
    return _encode(encoded)


def _encode(encoded: dict[str, Any]) -> str:
    text = json.dumps(encoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Go's json.Marshal escapes these; Python's does not.
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escaped)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _only(mapping: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = set(mapping) - allowed
    if extra:
        raise Unsupported(f"{where}: {sorted(extra)}")


def _sources(directory: Path, spec: dict[str, Any], where: str) -> dict[str, str]:
    _only(spec, _GENERATOR_FIELDS, where)
    data: dict[str, str] = {}
    for entry in spec.get("envs", []):
        for line in _read(directory, entry).splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                data[key.strip()] = value
    for entry in spec.get("files", []):
        key, _, source = entry.rpartition("=")
        data[key or Path(source).name] = _read(directory, source)
    for entry in spec.get("literals", []):
        key, _, value = entry.partition("=")
        data[key] = value
    return data


def _read(directory: Path, name: str) -> str:
    path = directory / name
    if path.resolve().parent != directory.resolve():
        raise Unsupported(f"{name}: kustomize refuses files outside its directory")
    return path.read_text(encoding="utf-8")


def _config_map(directory: Path, spec: dict[str, Any]) -> dict[str, Any]:
    if "type" in spec:
        raise Unsupported("configMapGenerator: type")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": spec["name"]},
        "data": _sources(directory, spec, "configMapGenerator"),
    }


def _secret(directory: Path, spec: dict[str, Any]) -> dict[str, Any]:
    data = _sources(directory, spec, "secretGenerator")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": spec["name"]},
        "type": spec.get("type", "Opaque"),
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = []
    for obj in objects:
        if obj["kind"] in _WORKLOADS:
            specs.append(obj["spec"]["template"]["spec"])
        elif obj["kind"] == "CronJob":
            specs.append(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        elif obj["kind"] == "Pod":
            specs.append(obj["spec"])
    return specs


def _containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        c
        for spec in _pod_specs(objects)
        for c in spec.get("initContainers", []) + spec.get("containers", [])
    ]


def _set_image(container: dict[str, Any], image: dict[str, Any]) -> None:
    ref = container["image"]
    name, tag = ref.split("@")[0], ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    if name != image["name"]:
        return
    name = image.get("newName", name)
    if "digest" in image:
        container["image"] = f"{name}@{image['digest']}"
    else:
        tag = image.get("newTag", tag)
        container["image"] = f"{name}:{tag}" if tag else name


def _rename_references(
    spec: dict[str, Any], config_maps: dict[str, str], secrets: dict[str, str]
) -> None:
    def rename(ref: dict[str, Any] | None, names: dict[str, str], field: str = "name") -> None:
        if ref is not None and ref.get(field) in names:
            ref[field] = names[ref[field]]

    for volume in spec.get("volumes", []):
        rename(volume.get("configMap"), config_maps)
        rename(volume.get("secret"), secrets, "secretName")
        for source in volume.get("projected", {}).get("sources", []):
            rename(source.get("configMap"), config_maps)
            rename(source.get("secret"), secrets)
    for pull_secret in spec.get("imagePullSecrets", []):
        rename(pull_secret, secrets)
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        for env in container.get("env", []):
            rename(env.get("valueFrom", {}).get("configMapKeyRef"), config_maps)
            rename(env.get("valueFrom", {}).get("secretKeyRef"), secrets)
        for env_from in container.get("envFrom", []):
            rename(env_from.get("configMapRef"), config_maps)
            rename(env_from.get("secretRef"), secrets)
