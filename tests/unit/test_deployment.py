"""Deployment files match the code: docker-compose.yml, the Dockerfile and k8s/.

No Docker engine and no cluster here, and no network at test time: the Compose
file is validated against the vendored Compose Specification schema
(tests/data/compose-spec.json) and every command, variable and port it names is
checked against the project (the CLI's argparse, Settings, the services' ports).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import streamscore.libs.contracts.registry as contracts_registry
import streamscore.services.scorer as scorer_module
from streamscore.libs.config import Settings
from streamscore.services.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
METRICS_PORT = 9100
API_PORT = 8080
#: Subcommands that manage a local stack or are interactive: never a container's command.
NOT_A_SERVICE = {"up", "down", "env", "status", "demo", "bench"}


def project_env_vars() -> set[str]:
    """Every environment variable Settings reads (STREAMSCORE_<field> and aliases)."""
    names: set[str] = set()
    prefix = Settings.model_config.get("env_prefix", "")
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names.update(str(c).upper() for c in choices)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def streamscore_services() -> dict[str, dict[str, Any]]:
    """Compose services that run the project's image."""
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if str(svc.get("image", "")).startswith("streamscore:")
    }


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


# --- docker-compose.yml ----------------------------------------------------------


def test_compose_file_validates_against_the_compose_spec() -> None:
    schema = json.loads((DATA / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_compose_runs_infrastructure_observability_and_every_service() -> None:
    services = compose()["services"]
    for infra in ("kafka", "redis", "topics", "prometheus", "grafana", "mlflow", "producer"):
        assert infra in services, infra
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    commands = {svc["command"][0] for svc in streamscore_services().values()}
    # Every long-running service of the CLI has a container (monitor/joiner/retrainer when
    # they exist).
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    expected = {"pipeline", "processor", "scorer", "scored-sink", "api", "produce", "topics"}
    expected |= {"monitor", "joiner", "retrainer"} & subcommands
    assert expected <= commands, sorted(expected - commands)


@pytest.mark.parametrize("name", sorted(streamscore_services()))
def test_every_service_command_is_a_real_subcommand(name: str) -> None:
    svc = streamscore_services()[name]
    command = svc["command"]
    assert isinstance(command, list), "exec form, so that no shell parses it"
    args = build_parser().parse_args(command)  # SystemExit on an unknown command or option
    assert callable(args.func)
    assert command[0] not in NOT_A_SERVICE
    if hasattr(args, "stream"):
        # Container names use dashes; the stream name must be in the container name.
        assert args.stream.replace("_", "-") in name


@pytest.mark.parametrize("name", sorted(streamscore_services()))
def test_every_service_variable_is_one_the_project_reads(name: str) -> None:
    env = _env(streamscore_services()[name])
    unknown = set(env) - project_env_vars()
    assert not unknown, f"{name} sets variables no Settings field reads: {sorted(unknown)}"


def test_service_values_parse_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, svc in streamscore_services().items():
        with monkeypatch.context() as m:
            for key in project_env_vars():
                m.delenv(key, raising=False)
            for key, value in _env(svc).items():
                m.setenv(key, value)
            s = Settings(_env_file=None)
            assert s.kafka_bootstrap == "kafka:19092", name
            assert s.redis_url == "redis://redis:6379/0", name
            if svc["command"][0] not in {"topics", "produce"}:
                assert s.metrics_port == METRICS_PORT, name


def test_no_literal_secret_and_secrets_come_from_an_env_file() -> None:
    secretish = re.compile(r"KEY|SECRET|PASSWORD|TOKEN", re.IGNORECASE)
    for name, svc in compose()["services"].items():
        literal = [k for k in _env(svc) if secretish.search(k)]
        assert not literal, f"{name} sets a secret in the file: {literal}"
    for svc in streamscore_services().values():
        files = [f["path"] if isinstance(f, dict) else f for f in svc["env_file"]]
        assert "./streamscore.env" in files
    example = (ROOT / "streamscore.env.example").read_text()
    names = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    assert "STREAMSCORE_API_SIGNING_KEY" in names
    assert names - {"GF_SECURITY_ADMIN_PASSWORD"} <= project_env_vars()
    assert "streamscore.env" in (ROOT / ".gitignore").read_text().split()


def test_ports_are_published_on_loopback_only_and_match_the_services() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    api = services["api"]
    args = build_parser().parse_args(api["command"])
    assert f"127.0.0.1:{args.port}:{args.port}" in api["ports"]
    assert f"127.0.0.1:{args.port}/readyz" in " ".join(api["healthcheck"]["test"])


def test_prometheus_scrapes_every_service_on_its_metrics_port() -> None:
    prom = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    expected = set()
    for name, svc in streamscore_services().items():
        if svc["command"][0] in {"topics", "produce"}:
            continue
        port = API_PORT if svc["command"][0] == "api" else _env(svc)["STREAMSCORE_METRICS_PORT"]
        expected.add(f"{name}:{port}")
    assert targets == expected
    volumes = compose()["services"]["prometheus"]["volumes"]
    for rule_file in prom["rule_files"]:
        assert any(v.endswith(f":/etc/prometheus/{rule_file}:ro") for v in volumes)


def test_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing (scripts/setup.sh installs it)")
    out = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=ROOT / "ops" / "prometheus",
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_mounts_point_at_files_in_the_repo() -> None:
    for name, svc in compose()["services"].items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts a missing {source}"


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboards() -> None:
    prov = ROOT / "ops" / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in compose()["services"]["prometheus"]["ports"]
    providers = yaml.safe_load((prov / "dashboards" / "streamscore.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./ops/grafana:{path}:ro" in mounts
    dashboards = list((ROOT / "ops" / "grafana").glob("*.json"))
    assert dashboards
    for board in dashboards:
        assert json.loads(board.read_text())["uid"]


# --- Dockerfile ------------------------------------------------------------------


def test_dockerfile_is_slim_pinned_non_root_and_runs_the_entry_point() -> None:
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", b) for b in bases), bases
    assert "pip install -c constraints.txt ." in text
    assert re.search(r"^USER 10001", text, re.MULTILINE)
    assert 'ENTRYPOINT ["streamscore"]' in text
    assert not re.search(r"apt-get install|build-essential|gcc", text)
    ignore = (ROOT / ".dockerignore").read_text().split()
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for src in copied.split():
            assert f"!{src.rstrip('/')}/" in ignore or f"!{src}" in ignore, src
            assert (ROOT / src).exists(), src


def _installed_path(module_file: str, repo_path: Path) -> Path:
    """Where ``Path(module.__file__).parents[n] / x`` lands once installed in /opt/venv."""
    rel = Path(module_file).resolve().relative_to(ROOT)
    assert repo_path.parent == ROOT
    depth = len(rel.parts) - 1  # the module's parents[depth] is the repository root
    site = Path("/opt/venv/lib/python3.11/site-packages")
    installed = site / Path(*rel.parts[1:])  # libs/ and services/ are the src roots
    return installed.parents[depth] / repo_path.name


def test_dockerfile_puts_policies_and_schemas_where_the_code_looks() -> None:
    text = DOCKERFILE.read_text()
    policies = _installed_path(scorer_module.__file__, scorer_module.REPO_POLICIES)
    assert scorer_module.REPO_POLICIES == ROOT / "policies"
    assert f"COPY policies {policies}" in text
    registry_root = ROOT / "schemas"
    assert 'parents[4] / "schemas"' in Path(contracts_registry.__file__).read_text()
    schemas = _installed_path(contracts_registry.__file__, registry_root)
    assert f"COPY schemas {schemas}" in text


def test_services_can_listen_beyond_loopback() -> None:
    """The listen address is a setting (STREAMSCORE_BIND_HOST), set by the deployment files."""
    sources = (ROOT / "services" / "streamscore" / "services").rglob("*.py")
    hard_coded = [
        p.name
        for p in sources
        if re.search(r"addr=\"127\.0\.0\.1\"|host=\"127\.0\.0\.1\"", p.read_text())
    ]
    assert not hard_coded, hard_coded


# --- k8s/ -------------------------------------------------------------------------
#
# The overlays are rendered here by a small kustomize subset (resources, namespace,
# images, replicas, patches with or without a target, strategic merge by container
# name), so no kubectl is needed; when kubectl is installed its `kubectl kustomize`
# output must equal ours. Every manifest then validates against the Kubernetes
# OpenAPI schemas (kubernetes-validate, strict: no unknown fields) and KEDA's
# ScaledObject against tests/data/keda-scaledobject.schema.json.

K8S = ROOT / "k8s"
K8S_VERSION = "1.32"
OVERLAYS = ("base", "overlays/local", "overlays/production")


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(x, dict) and "name" in x for x in base + patch)
    ):
        merged = {x["name"]: x for x in base}
        for item in patch:
            merged[item["name"]] = _merge(merged.get(item["name"], {}), item)
        return list(merged.values())
    return patch


def _selects(selector: str, found: dict[str, str]) -> bool:
    for term in re.split(r",(?![^()]*\))", selector):
        if m := re.fullmatch(r"\s*(\S+)\s+in\s+\(([^)]*)\)\s*", term):
            if found.get(m[1]) not in {v.strip() for v in m[2].split(",")}:
                return False
        else:
            key, value = term.split("=", 1)
            if found.get(key.strip()) != value.strip():
                return False
    return True


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in {"Deployment", "Job"}:
        spec: dict[str, Any] = doc["spec"]["template"]["spec"]
        return spec
    return None


def render(folder: Path) -> list[dict[str, Any]]:
    """The manifests of a kustomization folder."""
    kust = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for res in kust.get("resources", []):
        path = (folder / res).resolve()
        if path.is_dir():
            docs += render(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in kust.get("patches", []):
        target = patch.get("target")
        for p in yaml.safe_load_all((folder / patch["path"]).read_text()):
            for i, doc in enumerate(docs):
                if target:
                    hit = doc["kind"] == target["kind"] and _selects(
                        target.get("labelSelector", ""), doc["metadata"].get("labels", {})
                    )
                    named = {**p, "metadata": {**p["metadata"], "name": doc["metadata"]["name"]}}
                else:
                    named = p
                    hit = (doc["kind"], doc["metadata"]["name"]) == (
                        p["kind"],
                        p["metadata"]["name"],
                    )
                if hit:
                    docs[i] = _merge(doc, named)
    for rep in kust.get("replicas", []):
        for doc in docs:
            if doc["kind"] == "Deployment" and doc["metadata"]["name"] == rep["name"]:
                doc["spec"]["replicas"] = rep["count"]
    for image in kust.get("images", []):
        for doc in docs:
            pod = _pod_spec(doc)
            for c in pod["containers"] if pod else []:
                if c["image"].split(":")[0] in {image["name"], image.get("newName")}:
                    c["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    if "namespace" in kust:
        for doc in docs:
            doc["metadata"]["namespace"] = kust["namespace"]
    return docs


def rendered(overlay: str) -> list[dict[str, Any]]:
    return render(K8S / overlay)


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_our_rendering_equals_kubectl_kustomize(overlay: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: our rendering is the only one")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / overlay)], capture_output=True, text=True, check=True
    )
    theirs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out.stdout)}
    ours = {(d["kind"], d["metadata"]["name"]): d for d in rendered(overlay)}
    assert set(theirs) == set(ours)
    for key, doc in ours.items():
        assert doc == theirs[key], key


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    import kubernetes_validate

    keda = json.loads((DATA / "keda-scaledobject.schema.json").read_text())
    for doc in rendered(overlay):
        if doc["kind"] == "ScaledObject":
            jsonschema.Draft7Validator(keda).validate(doc)
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_base_file_validates_on_its_own() -> None:
    import kubernetes_validate

    for path in sorted((K8S / "base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] not in {"Kustomization", "ScaledObject"}:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_keda_schema_rejects_a_scaled_object_without_its_target() -> None:
    keda = json.loads((DATA / "keda-scaledobject.schema.json").read_text())
    so = _by_kind(rendered("base"), "ScaledObject")["pipeline-transactions"]
    broken = {**so, "spec": {k: v for k, v in so["spec"].items() if k != "scaleTargetRef"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(keda).validate(broken)


def _settings_map(docs: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = _by_kind(docs, "ConfigMap")["streamscore-settings"]["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_run_real_commands_with_project_settings(overlay: str) -> None:
    docs = rendered(overlay)
    settings = _settings_map(docs)
    assert set(settings) <= project_env_vars(), sorted(set(settings) - project_env_vars())
    for doc in docs:
        pod = _pod_spec(doc)
        if pod is None:
            continue
        for c in pod["containers"]:
            args = build_parser().parse_args(c["args"])
            assert c["args"][0] not in NOT_A_SERVICE
            assert {e["name"] for e in c.get("env", [])} <= project_env_vars()
            key = next(e for e in c["env"] if e["name"] == "STREAMSCORE_API_SIGNING_KEY")
            assert key["valueFrom"]["secretKeyRef"]["name"] == "streamscore-api-signing-key"
            assert "value" not in key, "a Secret reference, never a literal"
            res = c["resources"]
            assert set(res["requests"]) == set(res["limits"]) == {"cpu", "memory"}
            if hasattr(args, "stream"):
                assert args.stream.replace("_", "-") in doc["metadata"]["name"]
    assert not _by_kind(docs, "Secret"), "the signing key Secret is created out of band"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_point_at_endpoints_that_exist(overlay: str) -> None:
    docs = rendered(overlay)
    metrics_port = int(_settings_map(docs)["STREAMSCORE_METRICS_PORT"])
    api_routes = {
        r.strip('"')
        for r in re.findall(
            r"@app\.get\((\"[^\"]+\")",
            (ROOT / "services/streamscore/services/api/app.py").read_text(),
        )
    }
    for name, dep in _by_kind(docs, "Deployment").items():
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        args = build_parser().parse_args(c["args"])
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            if kind == "startupProbe" and kind not in c:
                continue  # optional: for services with a slow start (the monitor's Numba warmup)
            get = c[kind]["httpGet"]
            port = ports[get["port"]]
            if args.func.__name__ == "cmd_api":
                assert port == args.port, name
                assert get["path"] in api_routes, (name, get["path"])
                expected = "/readyz" if kind == "readinessProbe" else "/healthz"
                assert get["path"] == expected
            else:
                # Stream services serve only prometheus_client's /metrics.
                assert (get["path"], port) == ("/metrics", metrics_port), name
                labels = dep["spec"]["template"]["metadata"]["labels"]
                assert labels["streamscore.io/metrics"] == "true"


#: Services that run as exactly one replica, never autoscaled, with strategy Recreate (an
#: old and a new pod never overlap), because one process must own their state:
#: the scored-event sink (one writer per Parquet folder, on a ReadWriteOnce claim), the
#: retrainer (its SQLite MLflow registry), the drift monitor (one watch over every partition
#: of its stream, snapshotted to one Redis key per stream: two group members would each see
#: part of the stream and overwrite each other's snapshot) and the label joiner (it assigns
#: itself every partition; its transactional id, Redis epoch and folder lock admit one per
#: stream). Every other Deployment is autoscaled: the pipelines by KEDA, the API by an HPA.
SINGLETON_COMMANDS = frozenset({"scored-sink", "retrainer", "monitor", "joiner"})


def test_the_singletons_state_is_owned_per_stream_in_the_code() -> None:
    """What makes the monitor and the joiner singletons, as the code has it today."""
    services = ROOT / "services/streamscore/services"
    monitor_state = (services / "monitor_state.py").read_text()
    assert 'base = f"ss:monitor:{{{topic_prefix}{stream}}}"' in monitor_state
    assert 'self.state_key = f"{base}:state"' in monitor_state  # no partition in the key
    joiner = (services / "label_joiner.py").read_text()
    assert "transactional_id=group" in joiner
    assert "self.consumer.assign(" in joiner and ".subscribe(" not in joiner
    assert "One joiner per stream" in joiner


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_pdb_and_autoscaling(overlay: str) -> None:
    docs = rendered(overlay)
    pdbs = _by_kind(docs, "PodDisruptionBudget")
    scaled = _by_kind(docs, "ScaledObject")
    hpas = _by_kind(docs, "HorizontalPodAutoscaler")
    autoscaled = {so["spec"]["scaleTargetRef"]["name"] for so in scaled.values()}
    autoscaled |= {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()}
    partitions = int(_settings_map(docs)["STREAMSCORE_TOPIC_PARTITIONS"])
    for name, dep in _by_kind(docs, "Deployment").items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert any(
            set(p["spec"]["selector"]["matchLabels"].items()) <= set(labels.items())
            for p in pdbs.values()
        ), f"{name} has no PodDisruptionBudget"
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        args = build_parser().parse_args(c["args"])
        if c["args"][0] in SINGLETON_COMMANDS:
            assert name not in autoscaled, f"{name} is a singleton (SINGLETON_COMMANDS)"
            assert dep["spec"]["replicas"] == 1, name
            assert dep["spec"]["strategy"] == {"type": "Recreate"}, name
        else:
            assert name in autoscaled, f"{name}: neither autoscaled nor a listed singleton"
        if c["args"][0] == "pipeline":
            so = scaled[name]
            assert so["spec"]["scaleTargetRef"]["name"] == name
            assert so["spec"]["maxReplicaCount"] <= partitions
            (trigger,) = so["spec"]["triggers"]
            meta = trigger["metadata"]
            assert trigger["type"] == "kafka"
            # The consumer group and topic the pipeline really uses (pipeline.py).
            assert meta["consumerGroup"] == f"streamscore-pipeline-{args.stream}"
            pipeline_src = (ROOT / "services/streamscore/services/pipeline.py").read_text()
            assert 'group_id=f"{topic_prefix}streamscore-pipeline-{stream}"' in pipeline_src
            assert meta["topic"] == f"events.{args.stream}"
            assert meta["bootstrapServersFromEnv"] in {e["name"] for e in c.get("env", [])} | set(
                _settings_map(docs)
            )
    hpa = _by_kind(docs, "HorizontalPodAutoscaler")["api"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "api",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_k8s_runs_every_long_running_compose_service_with_the_same_arguments() -> None:
    """Both deployments agree: each default-profile compose service of the project's image
    is a k8s Deployment (or the topics Job) of the same name and arguments. Not deployed on
    k8s: the simulator (``produce``) and the two-stage variant (compose profile)."""
    workloads = {
        d["metadata"]["name"]: d for d in rendered("base") if d["kind"] in {"Deployment", "Job"}
    }
    for name, svc in streamscore_services().items():
        if svc["command"][0] == "produce" or svc.get("profiles"):
            continue
        assert name in workloads, f"{name} runs in docker-compose.yml but not on k8s"
        pod = _pod_spec(workloads[name])
        assert pod is not None
        (c,) = pod["containers"]
        assert c["args"] == svc["command"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_data_folders_are_on_claims_and_the_retrainer_reads_the_joiners(overlay: str) -> None:
    """``--out`` / ``--examples`` folders outlive the pod (a claim, not an emptyDir), and each
    retrainer mounts the very claim its stream's joiner writes."""
    docs = rendered(overlay)
    claims = _by_kind(docs, "PersistentVolumeClaim")
    folder_claim: dict[tuple[str, str], str] = {}  # (command, stream) -> claim
    for name, dep in _by_kind(docs, "Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        args = build_parser().parse_args(c["args"])
        folder = getattr(args, "out", None) or getattr(args, "examples", None)
        if folder is None:
            continue
        (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == folder]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        claim = volume["persistentVolumeClaim"]["claimName"]
        assert claim in claims, (name, claim)
        folder_claim[(c["args"][0], args.stream)] = claim
        if c["args"][0] == "retrainer":
            assert mount.get("readOnly") is True, name
    for (command, stream), claim in folder_claim.items():
        if command == "retrainer":
            assert folder_claim[("joiner", stream)] == claim
            # Mounted by the joiner's pod and the retrainer's at once, maybe on two nodes.
            assert claims[claim]["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_only_the_needed_traffic(overlay: str) -> None:
    docs = rendered(overlay)
    policies = _by_kind(docs, "NetworkPolicy")
    deny = policies["streamscore-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    egress_ports = {
        p["port"]
        for rule in policies["streamscore-egress-kafka-redis-dns"]["spec"]["egress"]
        for p in rule["ports"]
    }
    settings = _settings_map(docs)
    kafka_port = int(settings["KAFKA_BOOTSTRAP"].rsplit(":", 1)[1])
    redis_port = int(settings["REDIS_URL"].split("://", 1)[1].split("/")[0].rsplit(":", 1)[1])
    assert egress_ports == {53, kafka_port, redis_port}
    api = policies["streamscore-ingress-api"]["spec"]
    assert [p["port"] for p in api["ingress"][0]["ports"]] == [API_PORT]
    metrics = policies["streamscore-ingress-metrics"]["spec"]
    assert [p["port"] for p in metrics["ingress"][0]["ports"]] == [
        int(settings["STREAMSCORE_METRICS_PORT"])
    ]
    services = _by_kind(docs, "Service")
    assert services["api"]["spec"]["ports"][0]["port"] == API_PORT
    assert services["streamscore-metrics"]["spec"]["ports"][0]["port"] == int(
        settings["STREAMSCORE_METRICS_PORT"]
    )


def test_overlays_differ_where_they_should() -> None:
    local, prod = rendered("overlays/local"), rendered("overlays/production")
    assert _settings_map(local)["STREAMSCORE_PROFILE"] == "local"
    assert _settings_map(prod)["STREAMSCORE_PROFILE"] == "prod"
    assert _by_kind(local, "Deployment")["api"]["spec"]["replicas"] == 1
    assert _by_kind(prod, "Deployment")["api"]["spec"]["replicas"] == 3
    images = {c["image"] for d in prod if (pod := _pod_spec(d)) for c in pod["containers"]}
    assert images == {"registry.example.com/streamscore/streamscore:0.1.0"}
    assert all(d["metadata"]["namespace"] == "streamscore" for d in prod)
