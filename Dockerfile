# authledger, built from this repository.
#   docker build -t authledger .
#   docker compose up        (see docker-compose.yml and docs/esdb.md)
#
# Stage 1 compiles a static binary; stage 2 runs it on distroless as a
# non-root user, with nothing else in the image (no shell, no curl).

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/authledger ./cmd/authledger \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/authledger /usr/local/bin/authledger
# AUTHLEDGER_DATA_DIR (uploaded files and the like), writable by the
# nonroot user (65532); mount a volume here.
COPY --from=build --chown=65532:65532 /out/data /data
ENV AUTHLEDGER_DATA_DIR=/data \
    AUTHLEDGER_LISTEN=0.0.0.0:8080
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/authledger"]
CMD ["serve"]
