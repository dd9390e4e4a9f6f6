"""The deployment files, checked statically: no Docker engine or cluster runs here, so they must
be right by construction. They parse, name only settings and metrics that exist, and agree with
each other and with the code."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.test_metrics import exposed_names
from worker import constants
from worker.metrics import Metrics
from worker.settings import ENV, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SETTING_NAME = re.compile(r"\b(SW_[A-Z0-9_]+|KAFKA_BOOTSTRAP_SERVERS|REDIS_URL)\b")


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and DEPLOY / "kafka" not in p.parents)


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_objects() -> dict[str, dict[str, Any]]:
    """Every object of the kustomization, by kind."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    objects: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in load_all(K8S / name):
            assert doc["kind"] not in objects, f"two {doc['kind']} objects"
            objects[doc["kind"]] = doc
    return objects


def container(objects: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    spec = objects[kind]["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    return dict(only)


@pytest.mark.parametrize(
    "path", [p for p in deploy_files() if p.suffix in (".yaml", ".yml")], ids=str
)
def test_every_manifest_parses(path: Path) -> None:
    assert load_all(path), f"{path} is empty"


def test_every_setting_named_in_deploy_exists() -> None:
    known = set(ENV.values())
    for path in deploy_files():
        named = set(SETTING_NAME.findall(path.read_text()))
        assert named <= known, f"{path.relative_to(ROOT)} names unknown settings {named - known}"


def test_every_setting_is_in_the_readme_table_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([A-Z_]+)` \|.*$", readme, re.M)}
    for f in Settings.__dataclass_fields__.values():
        name = ENV[f.name]
        assert name in rows, f"{name} is missing from the README's settings table"
        assert f"`--{f.name.replace('_', '-')}`" in rows[name]
        assert f"`{f.default}`" in rows[name], f"{name}: default {f.default} not in its row"


def test_the_dashboard_uses_only_metrics_the_worker_exports() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "session-worker.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("type") == "query"]
    used = {name for e in exprs for name in re.findall(r"\bsession_worker_[a-z_]+", e)}
    unknown = used - exposed_names(Metrics())
    assert not unknown, f"the dashboard uses metrics the worker does not export: {unknown}"
    documented = {
        "session_worker_commands_total",
        "session_worker_consumer_lag",
        "session_worker_live_sessions",
        "session_worker_expiry_backlog",
        "session_worker_dead_letters_total",
        "session_worker_redis_errors_total",
        "session_worker_kafka_errors_total",
        "session_worker_rebalances_total",
    }
    assert documented <= used, f"no panel shows {documented - used}"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_the_deployment_has_probes_resources_and_a_safe_rollout() -> None:
    objects = k8s_objects()
    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    worker = container(objects, "Deployment")
    assert worker["args"] == ["run"]
    port = worker["ports"][0]["containerPort"]
    assert port == constants.HTTP_PORT
    assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert worker["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(worker["resources"]["requests"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert worker["securityContext"]["readOnlyRootFilesystem"] is True
    rollout = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rollout == {"maxSurge": 0, "maxUnavailable": 1}
    # The worker must finish its batch within the pod's grace period.
    config = objects["ConfigMap"]["data"]
    grace_s = float(config.get("SW_SHUTDOWN_GRACE_S", constants.SHUTDOWN_GRACE_S))
    assert grace_s < pod["terminationGracePeriodSeconds"]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(
        port
    )
    refs = [next(iter(ref.values()))["name"] for ref in worker["envFrom"]]
    assert refs == [objects["ConfigMap"]["metadata"]["name"], objects["Secret"]["metadata"]["name"]]
    assert "REDIS_URL" in objects["Secret"]["stringData"]
    assert "REDIS_URL" not in config  # credentials stay in the Secret


def test_autoscaling_is_capped_at_the_partition_count_and_matches_the_settings() -> None:
    objects = k8s_objects()
    args = container(objects, "Job")["args"]
    assert args[0] == "topics"
    partitions = int(args[args.index("--partitions") + 1])
    scaled = objects["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == objects["Deployment"]["metadata"]["name"]
    assert scaled["maxReplicaCount"] == partitions
    assert objects["Deployment"]["spec"]["replicas"] <= partitions
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["allowIdleConsumers"] == "false"
    config = objects["ConfigMap"]["data"]
    assert meta["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    assert meta["consumerGroup"] == config.get("SW_GROUP_ID", constants.GROUP_ID)
    assert meta["topic"] == config.get("SW_COMMANDS_TOPIC", constants.COMMANDS_TOPIC)
    pdb = objects["PodDisruptionBudget"]["spec"]
    assert pdb["selector"] == objects["Deployment"]["spec"]["selector"]
    # Every value in the ConfigMap is a valid setting value.
    Settings.from_env({**config, "REDIS_URL": objects["Secret"]["stringData"]["REDIS_URL"]})


def test_compose_runs_kraft_kafka_redis_topics_once_and_three_workers() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"]
    assert "healthcheck" in services["kafka"]
    assert "healthcheck" in services["redis"]
    topics, worker = services["topics"], services["worker"]
    assert topics["command"][0] == "topics"
    assert topics["restart"] == "no"
    partitions = int(topics["command"][topics["command"].index("--partitions") + 1])
    assert worker["deploy"]["replicas"] == 3 <= partitions
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()
    env = worker["environment"]
    Settings.from_env({k: str(v) for k, v in env.items()})
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]


def test_the_dockerfile_is_multi_stage_slim_non_root_and_copies_what_exists() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) >= 2
    assert any("slim" in line for line in lines if line.startswith("ARG PYTHON_IMAGE"))
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in ("0", "root")
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            sources = line.split()[1:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
    assert 'ENTRYPOINT ["session-worker"]' in lines
    assert f"EXPOSE {constants.HTTP_PORT}" in lines
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for needed in ("!pyproject.toml", "!README.md", "!constraints.txt", "!worker/", "!contracts/"):
        assert needed in ignore
