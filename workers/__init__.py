"""Celery workers: the app, the task base class that writes the lifecycle, and jobs."""
