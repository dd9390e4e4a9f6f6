"""Every aiokafka client the project builds takes its connection from `kafka_client_params`.

A consumer, producer or admin client made with `bootstrap_servers=` alone would connect in
plaintext whatever `KAFKA_SECURITY_PROTOCOL` says, and fail (or worse, succeed against a
plaintext listener) only where security is on. This reads the source of the `worker` package
(the worker, its commands, the client kit), the demo and the benchmark and fails for any
construction that does not unpack `kafka_client_params(...)` (directly, or through the
settings' `to_consumer_params` / `to_producer_params`, which are checked to use it)."""

import ast
from pathlib import Path

import pytest

from session_client.connection import kafka_client_params
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("worker", "session_client", "devenv", "bench")  # both packages, demo, benchmark
CLIENTS = frozenset({"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient"})
ADAPTERS = frozenset({"kafka_client_params", "to_consumer_params", "to_producer_params"})
CONNECTION_KEYWORDS = frozenset(
    {
        "bootstrap_servers",
        "security_protocol",
        "ssl_context",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_oauth_token_provider",
    }
)


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def construction_sites(source: str, filename: str) -> list[tuple[str, int, str | None]]:
    """(client, line, problem or None) for every aiokafka client constructed in `source`."""
    sites = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call) or _name(node.func) not in CLIENTS:
            continue
        unpacked = [k.value for k in node.keywords if k.arg is None]
        through_adapter = any(
            isinstance(value, ast.Call) and _name(value.func) in ADAPTERS for value in unpacked
        )
        explicit = sorted(k.arg for k in node.keywords if k.arg in CONNECTION_KEYWORDS)
        problem = None
        if explicit:
            problem = f"sets {', '.join(explicit)} itself"
        elif not through_adapter:
            problem = "does not unpack kafka_client_params(...)"
        sites.append((str(_name(node.func)), node.lineno, problem))
    return sites


def project_sites() -> dict[str, list[tuple[str, int, str | None]]]:
    found = {}
    paths = [p for folder in SCANNED for p in (ROOT / folder).rglob("*.py")]
    for path in sorted(paths):
        sites = construction_sites(path.read_text(), str(path))
        if sites:
            found[str(path.relative_to(ROOT))] = sites
    return found


def test_every_aiokafka_client_takes_its_connection_from_the_adapter() -> None:
    found = project_sites()
    bad = [
        f"{path}:{line}: {client} {problem}"
        for path, sites in found.items()
        for client, line, problem in sites
        if problem is not None
    ]
    assert not bad, "\n".join(bad)
    # The places the issue names: the worker (run), topics and --check, check --deep, tail,
    # publish, dlq list/replay, the demo, the benchmark, the client kit and its example view.
    expected_files = {
        "worker/app.py",
        "worker/ops/topics.py",
        "worker/ops/check.py",
        "worker/ops/tail.py",
        "worker/ops/publish.py",
        "worker/ops/dlq.py",
        "devenv/demo.py",
        "bench/kafkaio.py",
        "bench/offered.py",
        "bench/baselines.py",
        "bench/runner.py",
        "session_client/publisher.py",
        "session_client/example_view.py",
    }
    assert expected_files <= found.keys(), f"no client found in {expected_files - found.keys()}"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers)", "sets"),
        ("aiokafka.AIOKafkaConsumer(**options)", "does not unpack"),
        ("AIOKafkaAdminClient(**kafka_client_params(c), security_protocol='SSL')", "sets"),
        ("AIOKafkaConsumer(**kafka_client_params(c), group_id='g')", None),
        ("AIOKafkaProducer(**s.to_producer_params())", None),
    ],
)
def test_the_check_tells_a_bypass_from_the_adapter(source: str, problem: str | None) -> None:
    ((_, _, found),) = construction_sites(source, "<test>")
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)


def test_the_settings_params_come_from_the_adapter() -> None:
    settings = Settings(
        kafka_bootstrap_servers="b:9096",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="u",
        kafka_sasl_password="p",  # type: ignore[arg-type]  # a str becomes a Secret
    )
    connection = kafka_client_params(settings.kafka)
    for params in (settings.to_consumer_params(), settings.to_producer_params()):
        assert {k: params[k] for k in connection} == connection
