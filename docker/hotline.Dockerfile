# hotline: the wheel and its dependencies, built in one stage and installed into a clean one, so
# the running image has no compiler, no pip cache and no source tree. The wheel's call path is
# compiled with mypyc (setup.py), which type-checks against the installed dependencies: they go
# in first, and the wheel is built without isolation. Every dependency comes from the locks
# (scripts/lock.sh), hashes checked: the image runs what `make test` tested.
#   docker build -f docker/hotline.Dockerfile -t hotline .
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md requirements.lock requirements-build.lock ./
COPY hotline ./hotline
COPY hotline_core ./hotline_core
COPY agi ./agi
COPY ami_bridge ./ami_bridge
COPY ivr_flows ./ivr_flows
COPY tier_lookup ./tier_lookup
COPY asterisk_conf ./asterisk_conf
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-build.lock \
    && pip wheel --no-cache-dir --require-hashes --no-deps --wheel-dir /wheels -r requirements.lock \
    && HOTLINE_COMPILE=1 pip wheel --no-cache-dir --no-build-isolation --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --home-dir /var/lib/hotline --create-home hotline
USER hotline
# FastAGI and HTTP listen on every address inside the container; the compose file publishes
# them on the host's loopback only.
ENV HOTLINE_AGI_HOST=0.0.0.0 HOTLINE_HTTP_HOST=0.0.0.0 HOTLINE_LOG_FORMAT=json
EXPOSE 4573 8088
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8088/healthz').status != 200)"
ENTRYPOINT ["hotline"]
CMD ["serve"]
