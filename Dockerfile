# Herald: a slim, non-root image. Configure with HERALD_* variables (see README).
# The build stage makes the wheel; the image installs it as any user would: the migrations
# ship inside it, so nothing else of the checkout is copied. tests/test_install.py runs
# these same steps (the build stage's COPY lines, the wheel, the HEALTHCHECK) without Docker.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HERALD_HOST=0.0.0.0 HERALD_PORT=8000 HERALD_DATA_DIR=/data
COPY --from=build /dist /dist
RUN pip install --no-cache-dir /dist/*.whl && rm -rf /dist \
 && useradd --system --uid 10001 --home-dir /data --create-home herald
USER herald
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('HERALD_PORT', '8000'), timeout=2)"]
CMD ["herald", "serve"]
