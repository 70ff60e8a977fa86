"""gunicorn settings: threaded workers, so parked WaitOperation calls cost only a thread."""

from core.config import Settings

_settings = Settings.from_env()

bind = [f"{_settings.host}:{_settings.port}"]
workers = _settings.web_processes
worker_class = "gthread"
threads = _settings.web_threads
# WaitOperation holds a request up to max_wait_seconds; give it room before the worker timeout.
timeout = int(_settings.max_wait_seconds) + 30
graceful_timeout = 10
keepalive = 5
accesslog = "-"
# The path without its query string: page tokens (and anything a caller puts there) stay out
# of the logs; keys travel in headers, which are not logged.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
loglevel = _settings.log_level.lower()
