"""deploy/k8s/prometheusrule.yaml's alerts, checked by Prometheus' own `promtool` (Debian's
`prometheus` package; `make install` installs it): its rule groups (the PrometheusRule's `spec`,
which is a Prometheus rules file) pass `promtool check rules`, and the unit tests in
tests/ops/alerts/ (input series, each alert firing and not firing) pass `promtool test rules`.
Broken copies show that both checks reject what they should. Beside promtool: every alert has a
firing and a quiet case in the unit tests, the labels and annotations the on-call engineer
needs, a runbook entry in deploy/OPERATIONS.md, and names only metrics the worker exports.
"""

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.test_metrics import exposed_names
from worker.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULE = ROOT / "deploy" / "k8s" / "prometheusrule.yaml"
UNIT_TESTS = Path(__file__).parent / "alerts" / "session-worker-tests.yaml"
OPERATIONS = ROOT / "deploy" / "OPERATIONS.md"
RULES_FILE = "session-worker-rules.yaml"  # the name the unit tests' rule_files give

SEVERITIES = {"critical", "warning"}
# Metrics of Prometheus itself that the alerts may use.
PROMETHEUS_METRICS = {"up"}


@cache
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: `make install` (or `make system-deps`) installs it with "
            "Debian's `prometheus` package (apt-get install prometheus)",
            pytrace=False,
        )
    return found


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def prometheus_rule() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULE.read_text(encoding="utf-8"))
    assert loaded["kind"] == "PrometheusRule"
    return loaded


def alerts(rule: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    spec = (rule or prometheus_rule())["spec"]
    return [r for group in spec["groups"] for r in group["rules"] if "alert" in r]


def write_rules(spec: dict[str, Any], folder: Path) -> Path:
    """The PrometheusRule's `spec` (its `groups`) as a Prometheus rules file, with a copy of the
    unit tests beside it (they name the rules file relative to themselves)."""
    path = folder / RULES_FILE
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    shutil.copyfile(UNIT_TESTS, folder / UNIT_TESTS.name)
    return path


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    rules = write_rules(prometheus_rule()["spec"], tmp_path)
    result = run_promtool("check", "rules", rules.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout, result.stdout


def test_promtool_unit_tests_pass(tmp_path: Path) -> None:
    write_rules(prometheus_rule()["spec"], tmp_path)
    result = run_promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def _alert(rule: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [a for a in alerts(rule) if a["alert"] == name]
    return found


def _missing_range(rule: dict[str, Any]) -> None:
    a = _alert(rule, "SessionWorkerRedisErrors")
    a["expr"] = a["expr"].replace("session_worker_redis_errors_total[5m]", "x_total")


def _unbalanced_parenthesis(rule: dict[str, Any]) -> None:
    a = _alert(rule, "SessionWorkerExpiryOverdue")
    a["expr"] = a["expr"].replace("(session_worker_expiry_overdue_seconds)", "(x")


def _for_in_words(rule: dict[str, Any]) -> None:
    _alert(rule, "SessionWorkerKafkaErrors")["for"] = "ten minutes"


def _unknown_template_function(rule: dict[str, Any]) -> None:
    a = _alert(rule, "SessionWorkerConsumerLagGrowing")
    a["annotations"]["description"] = "{{ $value | humanise }} records wait"


def _label_name_invalid(rule: dict[str, Any]) -> None:
    _alert(rule, "SessionWorkerDeadLetters")["labels"]["team-name"] = "sessions"


def _alert_and_record(rule: dict[str, Any]) -> None:
    _alert(rule, "SessionWorkerStalled")["record"] = "session_worker:stalled"


BROKEN_RULES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "rate() of an instant vector": (_missing_range, "expected type range vector"),
    "unbalanced parenthesis": (_unbalanced_parenthesis, "unclosed left parenthesis"),
    "for: ten minutes": (_for_in_words, "not a valid duration string"),
    "unknown template function": (_unknown_template_function, 'function "humanise" not defined'),
    "invalid label name": (_label_name_invalid, "invalid label name"),
    "both alert and record": (_alert_and_record, "only one of 'record' and 'alert' must be set"),
}


@pytest.mark.parametrize("case", BROKEN_RULES)
def test_promtool_rejects_a_broken_rule(case: str, tmp_path: Path) -> None:
    breaks, expected = BROKEN_RULES[case]
    rule = copy.deepcopy(prometheus_rule())
    breaks(rule)
    rules = write_rules(rule["spec"], tmp_path)
    result = run_promtool("check", "rules", rules.name, cwd=tmp_path)
    assert result.returncode != 0, f"{case}: accepted\n{result.stdout}"
    assert expected in result.stdout + result.stderr, result.stdout + result.stderr


def _threshold_raised(rule: dict[str, Any]) -> None:
    a = _alert(rule, "SessionWorkerExpiryOverdue")
    a["expr"] = a["expr"].replace("> 10", "> 30")


def _for_lengthened(rule: dict[str, Any]) -> None:
    _alert(rule, "SessionWorkerReplicaIdle")["for"] = "30m"


def _severity_lowered(rule: dict[str, Any]) -> None:
    _alert(rule, "SessionWorkerRedisErrors")["labels"]["severity"] = "warning"


def _new_dead_letter_series_missed(rule: dict[str, Any]) -> None:
    a = _alert(rule, "SessionWorkerDeadLetters")
    a["expr"] = a["expr"].split("\nor\n")[0]  # increase() alone


def _aggregated_across_namespaces(rule: dict[str, Any]) -> None:
    a = _alert(rule, "SessionWorkerStalled")
    a["expr"] = a["expr"].replace("by (namespace, job)", "by (job)")


# Rules that promtool accepts but that no longer do what the unit tests expect.
WRONG_RULES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "expiry bound 30 s": (_threshold_raised, "alertname: SessionWorkerExpiryOverdue"),
    "idle for 30m": (_for_lengthened, "alertname: SessionWorkerReplicaIdle"),
    "redis errors a warning": (_severity_lowered, "alertname: SessionWorkerRedisErrors"),
    "first dead letters missed": (
        _new_dead_letter_series_missed,
        "alertname: SessionWorkerDeadLetters",
    ),
    "namespaces mixed": (_aggregated_across_namespaces, "alertname: SessionWorkerStalled"),
}


@pytest.mark.parametrize("case", WRONG_RULES)
def test_the_unit_tests_catch_a_wrong_rule(case: str, tmp_path: Path) -> None:
    breaks, expected = WRONG_RULES[case]
    rule = copy.deepcopy(prometheus_rule())
    breaks(rule)
    rules = write_rules(rule["spec"], tmp_path)
    checked = run_promtool("check", "rules", rules.name, cwd=tmp_path)
    assert checked.returncode == 0, f"{case}: meant to be valid\n{checked.stdout}"
    result = run_promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0, f"{case}: the unit tests passed"
    assert expected in result.stdout + result.stderr, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case_in_the_unit_tests() -> None:
    unit = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))
    assert unit["rule_files"] == [RULES_FILE]
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in unit["tests"]:
        for case in group["alert_rule_test"]:
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names == firing, "every alert, and only those, shown firing"
    assert names == quiet, "every alert shown quiet (not yet, or not at all)"


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation but `-` and `_` dropped,
    spaces as `-`."""
    return {
        re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        for m in re.finditer(r"^#{1,6} (.+)$", markdown, re.M)
    }


def test_every_alert_has_severity_annotations_and_a_runbook_entry() -> None:
    anchors = github_anchors(OPERATIONS.read_text(encoding="utf-8"))
    for a in alerts():
        name = a["alert"]
        assert re.fullmatch(r"SessionWorker[A-Z]\w+", name), name
        assert a.get("for"), f"{name}: no `for`"
        assert a["labels"]["severity"] in SEVERITIES, name
        assert set(a["annotations"]) == {"summary", "description", "runbook_url"}, name
        page, _, anchor = a["annotations"]["runbook_url"].partition("#")
        assert page == "deploy/OPERATIONS.md", name
        assert anchor == name.lower(), f"{name}: the anchor is the alert's name"
        assert anchor in anchors, f"{name}: no heading `{name}` in deploy/OPERATIONS.md"
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))


def test_the_alerts_use_only_metrics_the_worker_exports() -> None:
    exported = exposed_names(Metrics()) | PROMETHEUS_METRICS
    for a in alerts():
        expr = re.sub(r"\{[^}]*\}", "", a["expr"])  # label matchers hold no metric names
        words = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", expr))
        metrics = {
            w
            for w in words
            if w.startswith(("session_worker_", "process_")) or w in PROMETHEUS_METRICS
        }
        assert metrics, f"{a['alert']}: no metric"
        assert metrics <= exported, f"{a['alert']}: not exported: {metrics - exported}"
        # Every metric an annotation names is one the expression reads.
        for text in a["annotations"].values():
            named = set(re.findall(r"\bsession_worker_[a-z_]+", text))
            assert named <= metrics, f"{a['alert']}: annotation names {named - metrics}"


DASHBOARD = ROOT / "deploy" / "grafana" / "session-worker.json"
# Grafana's variables in the dashboard's queries, as values promtool can parse.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": ".*"}


def dashboard_queries() -> dict[str, str]:
    """Every query of the dashboard's panels, by panel id and refId, its variables filled."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = {}
    for panel in dashboard["panels"]:
        for t in panel["targets"]:
            expr = t["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"panel {panel['id']}: a variable not filled in {expr}"
            queries[f"panel_{panel['id']}_{t['refId']}"] = expr
    return queries


def test_the_dashboard_queries_parse_and_use_only_exported_metrics(tmp_path: Path) -> None:
    """promtool parses each of the dashboard's queries (as a recording rule), and the process
    metrics the panels show are the worker's (tests/ops/test_deploy.py checks the
    session_worker_* ones)."""
    queries = dashboard_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:{name}", "expr": e} for name, e in queries.items()
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = run_promtool("check", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    exported = exposed_names(Metrics()) | PROMETHEUS_METRICS
    used = {m for e in queries.values() for m in re.findall(r"\bprocess_[a-z_]+", e)}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= used
    assert used <= exported, f"not exported: {used - exported}"
