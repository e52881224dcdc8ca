# syntax=docker/dockerfile:1
# One image for every streamscore service: the `streamscore` console script is the
# entry point and the service is its subcommand (docker-compose.yml, k8s/).
# Reproducible: the base image is pinned by tag and every Python dependency by
# constraints.txt; no compiler in either stage (all dependencies ship wheels).

# --- build stage: a virtualenv with the project and its pinned dependencies ---
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt README.md ./
COPY libs ./libs
COPY services ./services
RUN /opt/venv/bin/pip install -c constraints.txt . \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

# --- runtime stage: the virtualenv, the shipped policies and schemas, a non-root user ---
FROM python:3.11.13-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAMSCORE_HOME=/var/lib/streamscore/home
RUN groupadd --system --gid 10001 streamscore \
 && useradd --system --uid 10001 --gid streamscore --home-dir /var/lib/streamscore \
      --shell /usr/sbin/nologin streamscore \
 && mkdir -p /var/lib/streamscore/home /var/lib/streamscore/models /var/lib/streamscore/scored \
 && chown -R streamscore:streamscore /var/lib/streamscore
COPY --from=build /opt/venv /opt/venv
# The scorer reads policies/ and the contract registry reads schemas/ three and four
# levels above their modules; installed in site-packages that is /opt/venv/lib/python3.11
# (tests/unit/test_deployment.py checks these paths against the code).
COPY policies /opt/venv/lib/python3.11/policies
COPY schemas /opt/venv/lib/python3.11/schemas
# Working directory: faust's local table folders and relative models_root live here.
WORKDIR /var/lib/streamscore
USER 10001:10001
ENTRYPOINT ["streamscore"]
CMD ["--help"]
