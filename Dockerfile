# Accord's worker / web / intake / CLI image: the same code as the embedded stack, configured
# entirely by environment variables (see .env.example). docker-compose.yml runs it.
FROM python:3.11.10-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ACCORD_PLAYBOOK_DIR=/app/playbooks
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY accord ./accord
COPY activities ./activities
COPY intake ./intake
COPY models ./models
COPY notifications ./notifications
COPY workflows ./workflows
COPY web ./web
COPY playbooks ./playbooks
COPY worker.py ./
# The versions CI tested (requirements.lock), not whatever resolves on the day of the build.
RUN pip install --no-cache-dir -c requirements.lock . && useradd --system --home /app accord \
    && mkdir -p /app/state && chown accord /app/state
USER accord
ENV ACCORD_STATE_DIR=/app/state
CMD ["accord", "worker"]
