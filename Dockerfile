# Slim image for the worker, beat and Flower. Build: docker build -t llm-orchestrator .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY llm_orchestrator ./llm_orchestrator
COPY worker ./worker
COPY tasks ./tasks
COPY config ./config
RUN pip install --no-cache-dir ".[worker]" && useradd --create-home --uid 10001 llmorch
USER llmorch
CMD ["celery", "-A", "worker.app", "worker", "-P", "prefork", "-c", "4", "-Q", "llm.interactive"]
