"""docker-compose.yml runs what the Procfile runs (and the integration tests run that)."""

import shlex
from typing import Any

import yaml

from core.config import Settings
from tests.stack import ROOT, procfile_command


def compose(name: str = "docker-compose.yml") -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return loaded


def test_compose_runs_the_procfile_commands() -> None:
    services = compose()["services"]
    for kind in ("web", "grpc", "worker"):
        assert procfile_command(kind) == yaml_command(services[kind]["command"])


def yaml_command(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else command


def test_compose_redis_keeps_its_data_append_only() -> None:
    redis = compose()["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_compose_workers_can_scale_and_all_services_share_one_redis() -> None:
    services = compose()["services"]
    worker = services["worker"]
    assert "container_name" not in worker  # --scale worker=N needs generated names
    assert "ports" not in worker
    for name in ("web", "grpc", "worker"):
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["web"]["environment"]["OPQUEUE_HOST"] == "0.0.0.0"
    assert services["grpc"]["environment"]["OPQUEUE_HOST"] == "0.0.0.0"


def test_the_image_installs_every_package_it_runs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("core", "workers", "app", "rpc", "opqueue"):
        assert f"COPY {package} {package}" in dockerfile
    assert 'pip install --no-cache-dir ".[server]"' in dockerfile  # the service, not the client


def test_make_installs_the_service_and_the_tools() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "python -m pip install \\\n\t\t--progress-bar on -e '.[server,dev]'" in makefile


def test_compose_publishes_the_anonymous_api_on_loopback_only() -> None:
    web = compose()["services"]["web"]
    assert web["environment"]["OPQUEUE_INSECURE_ALLOW_ANONYMOUS"] == "true"
    assert web["ports"] == ["127.0.0.1:8000:8000"]


def test_the_sentinel_overlay_points_the_service_at_its_sentinels() -> None:
    base, overlay = compose()["services"], compose("docker-compose.sentinel.yml")["services"]
    for name in ("web", "grpc", "worker"):
        settings = Settings.from_env(overlay[name]["environment"])
        assert settings.redis_mode == "sentinel"
        assert settings.broker_shares_store  # the Celery broker follows the primary too
        for address in settings.sentinels:
            host, _, port = address.partition(":")
            sentinel = " ".join(yaml_command(overlay[host]["command"]))
            assert f"port {port}" in sentinel
            assert "--sentinel" in sentinel
            assert f"sentinel monitor {settings.sentinel_master} redis 6379 2" in sentinel
    assert "redis" in base  # the base file's Redis is the first primary
    for replica in ("replica1", "replica2"):
        command = overlay[replica]["command"]
        assert command[command.index("--replicaof") + 1:][:2] == ["redis", "6379"]


def test_the_rabbitmq_compose_file_puts_web_and_workers_on_a_durable_rabbitmq() -> None:
    overlay: dict[str, Any] = yaml.safe_load(
        (ROOT / "docker-compose.rabbitmq.yml").read_text())
    services = overlay["services"]
    assert any(volume.endswith(":/var/lib/rabbitmq") for volume in services["rabbitmq"]["volumes"])
    for name in ("web", "grpc", "worker"):
        assert name in compose()["services"]  # what the overlay adds to
        url = services[name]["environment"]["OPQUEUE_BROKER_URL"]
        assert url.startswith("amqp://")
        assert "@rabbitmq:5672/" in url
        assert services[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
