-- Projection runtime (projections/runtime). One row per projection: the
-- generation of its serving tables, the log position it has applied up to
-- (eventstore.Position.String(): 32 hex digits, so text order is log
-- order), and the state a runner reports. The runner writes position and
-- counters in the same transaction as the read-model rows (exactly-once in
-- effect); state and errors are written outside batches.
--
-- The read-model tables themselves are created by the runtime per
-- generation (<base>_g<N>) and served through views named <base>, so that
-- a rebuild can fill generation N+1 while N keeps serving and then swap.
CREATE TABLE projection_checkpoints (
    name              text        PRIMARY KEY,
    generation        integer     NOT NULL DEFAULT 1,
    position          text        NOT NULL DEFAULT '00000000000000000000000000000000',
    events_applied    bigint      NOT NULL DEFAULT 0,
    last_event_id     uuid,
    last_recorded_at  timestamptz,
    state             text        NOT NULL DEFAULT 'idle',
    last_error        text,
    failed_event_id   uuid,
    failed_event_type text,
    failed_position   text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- A rebuild in progress: the generation being filled and how far it got.
-- The row is deleted by the swap.
CREATE TABLE projection_rebuilds (
    name             text        PRIMARY KEY,
    generation       integer     NOT NULL,
    position         text        NOT NULL DEFAULT '00000000000000000000000000000000',
    events_applied   bigint      NOT NULL DEFAULT 0,
    last_event_id    uuid,
    last_recorded_at timestamptz,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE projection_rebuilds;
DROP TABLE projection_checkpoints;
