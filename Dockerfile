# CyberMesh node image: one image for the web (ASGI) and consensus-worker processes and the
# Celery workers; docker-compose.yml picks the command. Production dependencies only.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CYBERMESH_DATA_DIR=/var/lib/cybermesh

RUN groupadd --system cybermesh && useradd --system --gid cybermesh --home /app cybermesh \
    && mkdir -p /var/lib/cybermesh && chown cybermesh:cybermesh /var/lib/cybermesh

WORKDIR /app
COPY requirements/base.txt requirements/base.txt
RUN pip install --no-cache-dir -r requirements/base.txt
COPY . .
RUN CYBERMESH_ENV=development python manage.py collectstatic --noinput -v 0

USER cybermesh
EXPOSE 8000 7000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health/', timeout=2)" || exit 1
CMD ["python", "manage.py", "run_node", "--component", "web"]
