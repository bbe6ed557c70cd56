# fleetserve runtime image: `docker build -t fleetserve:local .` (compose.yaml builds it too).
# No ENTRYPOINT: every compose service gives a full command, e.g. ["fleetserve", "worker"].
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Non-root at run time; a fixed uid so bind mounts and volumes have predictable owners.
RUN useradd --create-home --uid 10001 --user-group fleetserve

# Everything the build needs: the package (workers/) plus schemas/, topics/ and data/, which
# setup.py maps into it as package data. Non-editable install: the image runs from
# site-packages, not from this source tree. The benchmark harness (bench/) stays out.
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY workers/ workers/
COPY schemas/ schemas/
COPY topics/ topics/
COPY data/ data/
RUN pip install --no-cache-dir . \
    && rm -rf /src

WORKDIR /home/fleetserve
USER fleetserve

CMD ["fleetserve", "--help"]
