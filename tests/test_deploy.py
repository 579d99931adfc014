"""deploy/k8s without a cluster: every manifest against the Kubernetes API schema (the
official Python client's generated models, when installed: field names and types, like
kubeconform, which no package index here ships), and a structural check that the pieces
agree: selectors and pod labels, container ports, Service targetPorts and probe ports,
referenced ConfigMaps/Secrets, resources and probes, the PDB, the drain's grace period,
memory sized from bench/RESULTS.md, and the container's arguments parsed by serve's own
parser (the manifest cannot drift from the CLI). The TLS overlay is rendered by applying
its JSON 6902 patch here. ``kubectl kustomize`` renders the set too when kubectl is installed."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import ROOT

from vision_stream.cli.parser import build_parser
from vision_stream.server.cameras import load_cameras

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")

K8S = ROOT / "deploy" / "k8s"
RESULTS = ROOT / "bench" / "RESULTS.md"
# Secrets the operator creates (README, "Beyond one machine"): never shipped with values.
USER_SECRETS = {"vision-stream-gemini", "vision-stream-tokens", "vision-stream-cameras", "vision-stream-tls"}

Manifest = dict[str, Any]


def _load_dir(directory: Path) -> tuple[Manifest, list[Manifest]]:
    """The kustomization of ``directory`` and the manifests it renders (resources, then patches)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            docs += _load_dir(path)[1]
        else:
            docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        doc = next(d for d in docs if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"])
        for op in yaml.safe_load((directory / patch["path"]).read_text()):
            _apply_op(doc, op)
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = kustomization["namespace"]
    images = {image["name"]: f"{image['newName']}:{image['newTag']}" for image in kustomization.get("images", [])}
    for doc in docs:
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            container["image"] = images.get(container["image"], container["image"])
    return kustomization, docs


def _apply_op(doc: Manifest, op: dict[str, Any]) -> None:
    """One JSON 6902 (RFC 6902) ``add``/``replace`` operation; ``-`` appends to a list."""
    assert op["op"] in ("add", "replace"), op
    *parents, last = op["path"].lstrip("/").split("/")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    value = copy.deepcopy(op["value"])
    if isinstance(node, list):
        if last == "-":
            node.append(value)
        else:
            node[int(last)] = value
    else:
        assert op["op"] == "add" or last in node, f"replace of a missing {op['path']}"
        node[last] = value


@pytest.fixture(scope="module")
def base() -> list[Manifest]:
    return _load_dir(K8S)[1]


@pytest.fixture(scope="module")
def tls() -> list[Manifest]:
    return _load_dir(K8S / "tls")[1]


def _one(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _server(docs: list[Manifest]) -> Manifest:
    container = _one(docs, "StatefulSet", "vision-stream")["spec"]["template"]["spec"]["containers"][0]
    assert isinstance(container, dict)
    return container


# --- schema -----------------------------------------------------------------------------

def _check_model(value: Any, type_name: str, where: str) -> None:
    """``value`` fits the client's type string (``V1Probe``, ``List[V1Container]``, ``Dict[str, str]``, ``int``...)."""
    import kubernetes.client as models

    if type_name.startswith("List["):
        assert isinstance(value, list), f"{where}: a list expected"
        for index, item in enumerate(value):
            _check_model(item, type_name[5:-1], f"{where}[{index}]")
        return
    if type_name.startswith("Dict["):
        assert isinstance(value, dict), f"{where}: a map expected"
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            _check_model(item, inner, f"{where}.{key}")
        return
    primitives: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float)}
    if type_name in primitives:
        ok = isinstance(value, primitives[type_name]) and not (type_name == "int" and isinstance(value, bool))
        assert ok, f"{where}: {type_name} expected, got {value!r}"
        return
    if type_name in ("object", "datetime"):  # IntOrString, quantities, free-form
        return
    model = getattr(models, type_name)
    assert isinstance(value, dict), f"{where}: an object ({type_name}) expected"
    by_json = {json: py for py, json in model.attribute_map.items()}
    for key, item in value.items():
        assert key in by_json, f"{where}: {type_name} has no field {key!r}"
        _check_model(item, model.openapi_types[by_json[key]], f"{where}.{key}")


def _schema_check(docs: list[Manifest]) -> None:
    pytest.importorskip("kubernetes", reason="the schema check uses the Kubernetes client's models: "
                                             "pip install -e '.[test]'")
    for doc in docs:
        version = doc["apiVersion"].split("/")[-1]
        _check_model(doc, f"{version.capitalize()}{doc['kind']}", f"{doc['kind']}/{doc['metadata']['name']}")


def test_every_manifest_fits_the_kubernetes_schema(base: list[Manifest], tls: list[Manifest]) -> None:
    _schema_check(base)
    _schema_check(tls)


def test_the_schema_check_catches_a_misspelt_field(base: list[Manifest]) -> None:
    broken = copy.deepcopy(_one(base, "StatefulSet", "vision-stream"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(AssertionError, match="no field 'readinessProbes'"):
        _schema_check([broken])


# --- structure --------------------------------------------------------------------------

def test_kinds_names_and_namespace(base: list[Manifest]) -> None:
    assert _load_dir(K8S)[0]["resources"] == ["base"] and _load_dir(K8S / "tls")[0]["resources"] == ["../base"]
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in base)
    assert kinds == sorted([
        ("Namespace", "vision-stream"), ("Service", "nats"), ("Service", "nats-headless"),
        ("StatefulSet", "nats"), ("ConfigMap", "vision-stream-cameras"), ("StatefulSet", "vision-stream"),
        ("Service", "vision-stream"), ("Service", "vision-stream-headless"),
        ("PodDisruptionBudget", "vision-stream"),
    ])
    for doc in base:
        assert doc["apiVersion"] and doc["metadata"]["name"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "vision-stream"


def test_selectors_ports_and_probes_agree(base: list[Manifest]) -> None:
    for workload in (d for d in base if d["kind"] == "StatefulSet"):
        spec = workload["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        assert _one(base, "Service", spec["serviceName"])["spec"]["clusterIP"] == "None"
        pod = spec["template"]["spec"]
        for container in pod["containers"]:
            name = f"{workload['metadata']['name']}/{container['name']}"
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert container["resources"]["requests"] and container["resources"]["limits"], name
            assert "readinessProbe" in container and "livenessProbe" in container, name
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if probe is None:
                    continue
                if "grpc" in probe:  # Kubernetes' gRPC probe takes a port number, not a name
                    assert probe["grpc"]["port"] in ports.values(), f"{name} {kind}"
                else:
                    assert probe["httpGet"]["port"] in ports, f"{name} {kind}"
            # Every Service selecting these pods targets ports the container has.
            for service in (d for d in base if d["kind"] == "Service"):
                if service["spec"]["selector"].items() <= labels.items():
                    for port in service["spec"]["ports"]:
                        assert port["targetPort"] in ports, f"{service['metadata']['name']}: {port}"
                        assert ports[port["targetPort"]] == port["port"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                _one(base, "ConfigMap", volume["configMap"]["name"])
            if "secret" in volume:
                assert volume["secret"]["secretName"] in USER_SECRETS
        for container in pod["containers"]:
            mounted = {m["name"] for m in container.get("volumeMounts", [])}
            declared = {v["name"] for v in pod.get("volumes", [])}
            declared |= {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
            assert mounted <= declared


def test_the_server_is_probed_on_grpc_health_and_http(base: list[Manifest]) -> None:
    server = _server(base)
    assert server["readinessProbe"]["grpc"] == {"port": 50051}
    assert server["startupProbe"]["grpc"] == {"port": 50051}
    assert server["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    env = {e["name"]: e for e in server["env"]}
    key = env["GEMINI_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert key["name"] in USER_SECRETS and key["optional"] is True  # no key: the offline analyzer
    assert all(ref["secretRef"]["name"] in USER_SECRETS for ref in server["envFrom"])
    assert not any("value" in e for e in server["env"]), "no literal environment values (keys belong in Secrets)"


def test_the_arguments_are_ones_serve_accepts(base: list[Manifest]) -> None:
    server = _server(base)
    args = build_parser().parse_args(server["args"])
    assert args.command == "serve"
    assert (args.host, args.port, args.http_port) == ("0.0.0.0", 50051, 8080)
    assert args.events == "nats://nats:4222"
    nats_port = next(p["port"] for p in _one(base, "Service", "nats")["spec"]["ports"] if p["name"] == "client")
    assert args.events.endswith(f":{nats_port}")
    mounts = {m["name"]: Path(m["mountPath"]) for m in server["volumeMounts"]}
    assert args.config.parent == mounts["cameras"] and args.auth_tokens.parent == mounts["tokens"]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"grpc": args.port, "http": args.http_port}
    # The kubelet's SIGKILL comes after terminationGracePeriodSeconds: the drain (cameras
    # handed over, sessions ended within --grace) must fit with room to spare.
    pod = _one(base, "StatefulSet", "vision-stream")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 2 * args.grace


def test_tls_overlay_adds_certificates_and_moves_probes_to_https(tls: list[Manifest]) -> None:
    server = _server(tls)
    args = build_parser().parse_args(server["args"])
    mounts = {m["name"]: Path(m["mountPath"]) for m in server["volumeMounts"]}
    assert args.tls_cert.parent == mounts["tls"] == args.tls_key.parent
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[kind]["httpGet"]["scheme"] == "HTTPS", kind  # the gRPC probe cannot speak TLS


def test_pdb_keeps_all_but_one_replica(base: list[Manifest]) -> None:
    pdb = _one(base, "PodDisruptionBudget", "vision-stream")["spec"]
    replicas = _one(base, "StatefulSet", "vision-stream")["spec"]
    assert pdb["minAvailable"] == replicas["replicas"] - 1
    assert pdb["selector"]["matchLabels"].items() <= replicas["template"]["metadata"]["labels"].items()


def _mebibytes(quantity: str) -> float:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert match, quantity
    return int(match[1]) * (1024 if match[2] == "Gi" else 1)


def test_memory_is_sized_from_the_benchmark(base: list[Manifest]) -> None:
    """limit >= idle RSS + max sessions x (RSS per session + the evidence bound of 2 x --evidence-mb)."""
    text = RESULTS.read_text()
    per_session = float(re.search(r"^memory_rss_per_session_mib=([\d.]+)$", text, re.M)[1])  # type: ignore[index]
    row = re.search(r"^\| \d+ \| [\d.]+ \| ([\d.]+) \|", text, re.M)  # Memory table: RSS before, MiB
    assert row, "bench/RESULTS.md has no Memory table row"
    idle = float(row[1])
    server = _server(base)
    args = build_parser().parse_args(server["args"])
    need = idle + args.max_sessions * (per_session + 2 * args.evidence_mb)
    limit = _mebibytes(server["resources"]["limits"]["memory"])
    assert need <= limit <= 1.5 * need, f"limit {limit} MiB for {need:.0f} MiB"
    assert server["resources"]["requests"] == server["resources"]["limits"]
    assert server["resources"]["limits"]["cpu"] == "2"


def test_the_cameras_config_map_is_a_valid_cameras_file(base: list[Manifest], tmp_path: Path) -> None:
    data = _one(base, "ConfigMap", "vision-stream-cameras")["data"]
    path = tmp_path / build_parser().parse_args(_server(base)["args"]).config.name
    assert set(data) == {path.name}
    path.write_text(data[path.name])
    cameras = load_cameras(path, env={"DRIVEWAY_PASSWORD": "x"})
    assert [c.name for c in cameras] == ["driveway", "lobby"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl absent: its `kustomize` renders the set")
@pytest.mark.parametrize("directory", ["", "tls"])
def test_kubectl_kustomize_renders_what_these_tests_check(directory: str) -> None:
    """Kustomize itself (resources, namespace, images, the JSON 6902 patch) gives exactly the
    manifests this file renders and checks; it also refuses cycles and missing files."""
    out = subprocess.run(["kubectl", "kustomize", str(K8S / directory)], capture_output=True, text=True,
                         timeout=30, check=True)
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    rendered = sorted((d for d in yaml.safe_load_all(out.stdout) if d), key=key)
    assert rendered == sorted(_load_dir(K8S / directory)[1], key=key)
