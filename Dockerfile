# authledger, built from this repository.
#   docker build -t authledger .
#   docker compose up        (see docker-compose.yml and docs/esdb.md)
#
# Stage 1 compiles a static binary; stage 2 runs it as a non-root user on
# Debian slim with tesseract-ocr, the OCR engine the embedded task worker
# runs (serve refuses to start without it unless AUTHLEDGER_WORKERS=0).

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/authledger ./cmd/authledger

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 65532 --home-dir /data --create-home authledger
COPY --from=build /out/authledger /usr/local/bin/authledger
# AUTHLEDGER_DATA_DIR holds uploaded files (blobs/) and, when no master key
# is configured, the development master key: mount a volume here, and set
# AUTHLEDGER_MASTER_KEY or AUTHLEDGER_MASTER_KEY_FILE in production.
ENV AUTHLEDGER_DATA_DIR=/data \
    AUTHLEDGER_LISTEN=0.0.0.0:8080
EXPOSE 8080
USER authledger
ENTRYPOINT ["/usr/local/bin/authledger"]
CMD ["serve"]
