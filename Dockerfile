# The infersight image: the exporter (and the rest of the CLI). Runs as a non-root user with a
# read-only root filesystem (the chart sets both).
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY dashboard ./dashboard
COPY simulator ./simulator
RUN pip install --no-cache-dir . && rm -rf /src
USER 65532:65532
EXPOSE 9400
ENTRYPOINT ["infersight"]
CMD ["exporter", "--config", "/etc/infersight/exporter.yaml"]
