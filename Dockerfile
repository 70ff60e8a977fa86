# One image for every role: docker-compose.yml runs it as `web`, `grpc` and `worker`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/opqueue
COPY pyproject.toml README.md ./
COPY core core
COPY workers workers
COPY app app
COPY rpc rpc
COPY web web
COPY opqueue opqueue
RUN pip install --no-cache-dir ".[server]" && useradd --system --no-create-home opqueue
USER opqueue
EXPOSE 8000 50051
CMD ["python", "-m", "web"]
