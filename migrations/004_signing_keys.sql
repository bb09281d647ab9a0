-- Sealed signing keys (auth/keys/pgstore). The private JWK is sealed with
-- AES-256-GCM under the master key from configuration; only its ciphertext
-- and nonce are stored. Rows are immutable: a key's lifecycle (added,
-- activated, retired) lives in the signing-keys event stream.
CREATE TABLE signing_keys (
    id            text PRIMARY KEY,
    algorithm     text NOT NULL,
    master_key_id text NOT NULL,
    nonce         bytea NOT NULL,
    ciphertext    bytea NOT NULL,
    created_at    timestamptz NOT NULL
);

---- create above / drop below ----

DROP TABLE signing_keys;
