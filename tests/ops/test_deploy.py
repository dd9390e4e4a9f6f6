"""The deployment files, checked statically: no Docker engine or cluster runs here, so they must
be right by construction. They parse, name only settings and metrics that exist, and agree with
each other and with the code."""

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from contracts import wire
from tests.ops.test_metrics import exposed_names
from worker import constants
from worker.cli import build_parser
from worker.metrics import Metrics
from worker.settings import ENV, SECRET_FIELDS, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SETTING_NAME = re.compile(r"\b((?:SW|KAFKA|REDIS)_[A-Z0-9_]+)\b")
# Read by the example token provider (session_client.oauth:FileTokenProvider), not by the settings.
PROVIDER_SETTINGS = {"KAFKA_SASL_OAUTH_TOKEN_FILE"}
# KEDA's Kafka scaler spells the SASL mechanisms its own way.
KEDA_SASL = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
    "OAUTHBEARER": "oauthbearer",
}
KEDA_KAFKA_AUTH_PARAMETERS = {
    "sasl",
    "saslTokenProvider",
    "username",
    "password",
    "tls",
    "ca",
    "cert",
    "key",
    "keyPassword",
    "oauthTokenEndpointUri",
    "scopes",
    "oauthExtensions",
    "awsRegion",
    "awsRoleArn",
}


def secret_env_names() -> set[str]:
    return {ENV[name] for name in SECRET_FIELDS}


def known_setting_names() -> set[str]:
    """Every environment name the worker reads: the settings, the `_FILE` form of each secret,
    and the example token provider's file."""
    return set(ENV.values()) | {f"{name}_FILE" for name in secret_env_names()} | PROVIDER_SETTINGS


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


def broker_settings() -> set[str]:
    """The Kafka image's own settings in compose.yaml (KAFKA_* too, but the broker's)."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return {
        name
        for service in compose["services"].values()
        if str(service.get("image", "")).startswith("apache/kafka")
        for name in service.get("environment", {})
    }


def test_every_setting_named_in_deploy_exists() -> None:
    known = known_setting_names()
    broker = broker_settings()
    for path in deploy_files():
        named = set(SETTING_NAME.findall(path.read_text())) - broker
        assert named <= known, f"{path.relative_to(ROOT)} names unknown settings {named - known}"


def readme_rows() -> dict[str, list[str]]:
    """Every README table row that starts with a setting's name, by name (a setting may be in
    the settings table and in the security section's)."""
    readme = (ROOT / "README.md").read_text()
    rows: dict[str, list[str]] = {}
    for m in re.finditer(r"^\| `([A-Z0-9_]+)` \|.*$", readme, re.M):
        rows.setdefault(m.group(1), []).append(m.group(0))
    return rows


def shown_default(default: Any) -> str:
    """How the README shows a default: `value`, or `none` for a setting unset by default."""
    default = getattr(default, "value", default)  # an enum
    reveal = getattr(default, "reveal", None)  # a secret's default is not secret
    default = reveal() if callable(reveal) else default
    return "none" if default is None or default == "" else f"`{default}`"


def test_every_setting_is_in_the_readme_table_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    flags = set(re.findall(r"--[a-z0-9-]+", capsys.readouterr().out))
    rows = readme_rows()
    for f in Settings.__dataclass_fields__.values():
        name = ENV[f.name]
        assert name in rows, f"{name} is missing from the README's settings tables"
        flag = f"--{f.name.replace('_', '-')}"
        if flag in flags:
            assert any(f"`{flag}`" in row for row in rows[name]), f"{name}: no row shows {flag}"
        else:
            # A secret is no flag (argv shows in `ps`); the README says how to give it.
            assert f.name in SECRET_FIELDS, f"{name} has no flag {flag}"
            assert all(f"`{flag}`" not in row for row in rows[name]), f"{name}: no {flag}"
        if f.name in SECRET_FIELDS:
            assert any(f"`{name}_FILE`" in row for row in rows[name]), f"{name}: no {name}_FILE"
        default = shown_default(f.default)
        assert any(default in row for row in rows[name]), (
            f"{name}: default {default} not in its row"
        )


def test_the_readme_marks_every_secret_and_only_secrets() -> None:
    rows = readme_rows()
    secrets = secret_env_names()
    for name, found in rows.items():
        if name not in known_setting_names() or not name.startswith(("KAFKA_", "REDIS_")):
            continue
        security_rows = [row for row in found if row.count("|") >= 6]  # the security table
        for row in security_rows:
            cells = [cell.strip() for cell in row.strip("|").split("|")]
            secret_cell = cells[-1]
            if name in secrets:
                assert secret_cell.startswith("yes"), row
                assert f"`{name}_FILE`" in secret_cell, row
            else:
                assert secret_cell.startswith("no"), row


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
    # Settings from the ConfigMap; the Secret arrives as files (test below), never as variables.
    assert worker["envFrom"] == [
        {"configMapRef": {"name": objects["ConfigMap"]["metadata"]["name"]}}
    ]


def secret_files(objects: dict[str, dict[str, Any]], kind: str) -> dict[str, str]:
    """`<NAME>_FILE` -> the Secret's key it names, for the container of `kind`, checking on the
    way that the file is on a read-only volume of the kustomization's Secret."""
    pod = objects[kind]["spec"]["template"]["spec"]
    box = container(objects, kind)
    secret = objects["Secret"]
    volumes = {
        v["name"]: v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v
    }
    mounts = {m["mountPath"]: m for m in box.get("volumeMounts", []) if m["name"] in volumes}
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    secrets = secret_env_names()
    files: dict[str, str] = {}
    for entry in box.get("env", []):
        name = entry["name"]
        assert name not in secrets, f"{kind}: {name} in the environment; use {name}_FILE"
        if not (name.endswith("_FILE") and name.removesuffix("_FILE") in secrets):
            continue
        assert set(entry) == {"name", "value"}, f"{kind}: {name} must be a plain path"
        path = PurePosixPath(entry["value"])
        mount = mounts.get(str(path.parent))
        assert mount is not None, f"{kind}: {name}={path} is on no mounted Secret volume"
        assert mount.get("readOnly") is True, f"{kind}: {mount['mountPath']} must be read-only"
        assert volumes[mount["name"]] == secret["metadata"]["name"]
        assert path.name in keys, f"{kind}: {name} names {path.name}, not a key of the Secret"
        files[name] = path.name
    assert pod["securityContext"].get("fsGroup") == pod["securityContext"]["runAsGroup"], (
        f"{kind}: the Secret's files must be readable by the worker's group"
    )
    return files


def test_secrets_reach_the_pod_only_as_files_of_the_mounted_secret(tmp_path: Path) -> None:
    objects = k8s_objects()
    config = objects["ConfigMap"]["data"]
    secret = objects["Secret"]
    values = {**secret.get("stringData", {})}
    secrets = secret_env_names()
    for name in config:
        assert name not in secrets, f"the ConfigMap holds the secret {name}"
        assert not name.endswith("_FILE"), f"{name}: set it beside its volume in deployment.yaml"
    for value in values.values():
        assert value not in config.values(), "a secret's value is in the ConfigMap"
    files = secret_files(objects, "Deployment")
    # What the settings in the ConfigMap need is there.
    assert "REDIS_URL_FILE" in files  # the default (localhost) would be wrong in a cluster
    if config.get("KAFKA_SASL_MECHANISM") in {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}:
        assert "KAFKA_SASL_PASSWORD_FILE" in files
    if "REDIS_USERNAME" in config:
        assert "REDIS_PASSWORD_FILE" in files
    # The topic Job connects the same way as the workers.
    assert secret_files(objects, "Job") == files
    assert container(objects, "Job")["envFrom"] == container(objects, "Deployment")["envFrom"]
    # The whole set is valid settings, with the Secret's files where the pod would see them.
    env = dict(config)
    for name, key in files.items():
        (tmp_path / key).write_text(values[key] + "\n")
        env[name] = str(tmp_path / key)
    Settings.from_env(env)


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
    assert meta["topic"] == config.get("SW_COMMANDS_TOPIC", wire.COMMANDS_TOPIC)
    pdb = objects["PodDisruptionBudget"]["spec"]
    assert pdb["selector"] == objects["Deployment"]["spec"]["selector"]


def test_the_autoscaler_reads_kafka_with_the_workers_security() -> None:
    objects = k8s_objects()
    config = objects["ConfigMap"]["data"]
    (trigger,) = objects["ScaledObject"]["spec"]["triggers"]
    meta = trigger["metadata"]
    protocol = config.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert meta.get("tls", "disable") == ("enable" if protocol.endswith("SSL") else "disable")
    if protocol.startswith("SASL_"):
        assert meta.get("sasl") == KEDA_SASL[config["KAFKA_SASL_MECHANISM"]]
    else:
        assert meta.get("sasl", "none") == "none"
    if protocol == "PLAINTEXT":
        return
    # The credentials come from a TriggerAuthentication of the kustomization.
    assert "authenticationRef" in trigger, "a secured Kafka needs the trigger's authenticationRef"
    ref = trigger["authenticationRef"]
    assert ref.get("kind", "TriggerAuthentication") == "TriggerAuthentication"
    auth = objects["TriggerAuthentication"]
    assert ref["name"] == auth["metadata"]["name"]
    spec = auth["spec"]
    parameters = [e["parameter"] for e in spec.get("secretTargetRef", []) + spec.get("env", [])]
    assert len(parameters) == len(set(parameters))
    assert set(parameters) <= KEDA_KAFKA_AUTH_PARAMETERS
    assert not {"sasl", "tls"} & set(parameters), "sasl and tls are in the trigger's metadata"
    if config.get("KAFKA_SASL_MECHANISM") in KEDA_SASL.keys() - {"OAUTHBEARER"}:
        assert {"username", "password"} <= set(parameters)
    secret = objects["Secret"]
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for entry in spec.get("secretTargetRef", []):
        assert entry["name"] == secret["metadata"]["name"]
        assert entry["key"] in keys, f"{entry['key']} is not a key of the Secret"
    worker = container(objects, "Deployment")
    for entry in spec.get("env", []):
        assert entry.get("containerName", worker["name"]) == worker["name"]
        assert entry["name"] in config or entry["name"] in {e["name"] for e in worker["env"]}
        assert entry["name"] not in secret_env_names()


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


def test_the_kustomization_deploys_the_image_of_the_version_file() -> None:
    # `make image` tags session-worker:<VERSION> (deploy/image/build.py); the kustomization must
    # deploy that tag, so a release changes VERSION and newTag together.
    release = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (image,) = [i for i in kustomization["images"] if i["name"] == "session-worker"]
    assert str(image["newTag"]) == release, (
        f"deploy/k8s/kustomization.yaml deploys session-worker:{image['newTag']}, "
        f"but VERSION says {release}"
    )


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
