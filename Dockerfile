# The infersight sidecar image: the core install only (the exporter; no UI, simulator or
# generators). Runs as a non-root user with a read-only root filesystem (the chart sets both).
# Expected size: about 160 MB (python:3.11-slim is ~130 MB; the core dependencies add ~25 MB).
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
# The bare wheel, no extras: prometheus-client, httpx, uvicorn+httptools, pydantic, PyYAML,
# nvidia-ml-py, bcrypt.
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 65532:65532
EXPOSE 9400
ENTRYPOINT ["infersight"]
CMD ["exporter", "--config", "/etc/infersight/exporter.yaml"]
