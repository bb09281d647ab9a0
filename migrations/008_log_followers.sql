-- Local log followers (the revocation feed, the worker's wake-ups) keep
-- their position in memory; each serve or worker process records their
-- state here every few seconds so that `authledger projections status`,
-- run elsewhere, can show them beside the read models. A row that stops
-- being updated belongs to a process that is gone or cut off.
CREATE TABLE log_followers (
    instance    text        NOT NULL,
    name        text        NOT NULL,
    state       text        NOT NULL,
    position    text        NOT NULL,
    vouched_at  timestamptz,
    retries     integer     NOT NULL DEFAULT 0,
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, name)
);
