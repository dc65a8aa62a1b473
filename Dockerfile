# Herald: a slim, non-root image. Configure with HERALD_* variables (see README).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HERALD_HOST=0.0.0.0 HERALD_PORT=8000 HERALD_DATA_DIR=/data \
    PYTHONPATH=/opt/herald
RUN useradd --system --uid 10001 --home-dir /data --create-home herald
COPY --from=build /install /usr/local
WORKDIR /opt/herald
# Migrations are read from beside the package (alembic.ini + migrations/).
COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
USER herald
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2).status == 200 else 1)"
CMD ["herald", "serve"]
