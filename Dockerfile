# Accord worker / web / CLI image. The production-grade stack is tracked separately; this image runs
# the same code as the embedded stack, configured entirely by environment variables.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY accord ./accord
COPY activities ./activities
COPY models ./models
COPY notifications ./notifications
COPY workflows ./workflows
COPY web ./web
COPY playbooks ./playbooks
COPY worker.py ./
RUN pip install --no-cache-dir .
ENV ACCORD_PLAYBOOK_DIR=/app/playbooks
CMD ["python", "worker.py"]
