-- The provider's tokens of external sessions (auth/vault). The access, ID
-- and refresh tokens of a session are sealed together with AES-256-GCM
-- under a key derived from the master key (HKDF); key_id names the master
-- key, so that keys can rotate: rows are resealed under the current key
-- whenever they are written. Only fingerprints (SHA-256) and the expiry
-- are in clear; they are what the log records (ARCHITECTURE.md rule 4).
-- One row per session; logout and session revocation delete it.
--
-- The refresher claims due rows in one short statement (FOR UPDATE SKIP
-- LOCKED sets claim_id and claimed_until), refreshes outside any
-- transaction, and writes the new tokens only while the claim is still
-- its own: a transaction held open across the HTTP call would hold back
-- every subscriber of the log (docs/adr/0019).
CREATE TABLE external_tokens (
    session_id          uuid PRIMARY KEY,
    user_id             uuid        NOT NULL,
    key_id              text        NOT NULL,
    nonce               bytea       NOT NULL,
    ciphertext          bytea       NOT NULL,
    access_fingerprint  text        NOT NULL,
    id_fingerprint      text        NOT NULL DEFAULT '',
    refresh_fingerprint text        NOT NULL DEFAULT '',
    expires_at          timestamptz NOT NULL,
    created_at          timestamptz NOT NULL,
    refreshed_at        timestamptz,
    version             bigint      NOT NULL DEFAULT 1,
    claim_id            uuid,
    claimed_until       timestamptz,
    failures            integer     NOT NULL DEFAULT 0,
    last_error          text,
    next_attempt_at     timestamptz
);

CREATE INDEX external_tokens_expires_at ON external_tokens (expires_at);
CREATE INDEX external_tokens_user_id ON external_tokens (user_id);

---- create above / drop below ----

DROP TABLE external_tokens;
