-- The PostgreSQL event store (eventstore/pg). See docs/adr and the package
-- documentation of eventstore/pg for why the log is ordered by transaction id.

-- events is the log. A row's position in $all is (tx_id, seq): tx_id is the
-- writing transaction's id (xid8 as bigint), seq orders rows inside it.
-- Readers of $all only read below the oldest running transaction id, so a
-- transaction that commits late can never be skipped.
CREATE TABLE events (
    tx_id       bigint      NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    event_id    uuid        NOT NULL UNIQUE,
    stream      text        NOT NULL,
    revision    bigint      NOT NULL CHECK (revision >= 0),
    type        text        NOT NULL,
    data        jsonb,
    metadata    jsonb,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tx_id, seq),
    UNIQUE (stream, revision)
);

-- streams holds one row per stream that has an event or a tombstone.
-- revision is -1 for a tombstoned stream that never had an event. last_tx is
-- the id of the last transaction that appended: the per-stream guard.
CREATE TABLE streams (
    name     text    PRIMARY KEY,
    revision bigint  NOT NULL,
    last_tx  bigint  NOT NULL,
    deleted  boolean NOT NULL DEFAULT false
);

-- eventstore_horizon is the exclusive upper bound of the tx_id a reader of
-- $all may deliver: the oldest transaction still running, or the next xid
-- when none is. Transactions that are positively known to run in another
-- database of the cluster are ignored (they cannot write this log), so that
-- tests or tenants sharing a cluster do not hold each other back; anything
-- not identified (prepared transactions, a backend that just finished) counts.
CREATE FUNCTION eventstore_horizon() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
    SELECT coalesce(
        (SELECT min(x::text::bigint)
           FROM pg_snapshot_xip(pg_current_snapshot()) AS x
          WHERE NOT EXISTS (
                SELECT 1 FROM pg_stat_get_activity(NULL) AS a
                 WHERE a.backend_xid IS NOT NULL
                   AND a.datid IS NOT NULL
                   AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND a.backend_xid::text::bigint = x::text::bigint % 4294967296)),
        pg_snapshot_xmax(pg_current_snapshot())::text::bigint)
$fn$;

-- eventstore_check_expected raises AL001 (wrong expected version, current
-- revision in DETAIL, -1 for no stream) unless the stream's current revision
-- p_current satisfies p_expected: >= 0 exact revision, -1 no stream, -2 any,
-- -3 stream exists.
CREATE FUNCTION eventstore_check_expected(p_stream text, p_expected bigint, p_current bigint) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    IF p_expected = -2
       OR (p_expected = -3 AND p_current >= 0)
       OR (p_expected >= -1 AND p_expected = p_current) THEN
        RETURN;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'AL001',
        MESSAGE = format('wrong expected version on stream %s', p_stream),
        DETAIL = p_current::text;
END
$fn$;

-- eventstore_append appends events to one stream in one statement (one round
-- trip). Per-stream exclusion is an advisory lock taken before anything
-- assigns this transaction an id: an autocommit append therefore always gets
-- an xid greater than that of every earlier writer of the stream, and the
-- guard (AL003) only fires for appends inside caller-held transactions that
-- already had an xid. Errors: AL001 wrong expected version (DETAIL: current
-- revision), AL002 stream deleted, AL003 retry in a new transaction.
CREATE FUNCTION eventstore_append(
    p_stream   text,
    p_expected bigint,
    p_ids      uuid[],
    p_types    text[],
    p_data     jsonb[],
    p_meta     jsonb[],
    OUT next_revision bigint,
    OUT commit_pos    bigint,
    OUT prepare_pos   bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    n         int := coalesce(cardinality(p_ids), 0);
    v_rev     bigint;
    v_last_tx bigint;
    v_deleted boolean;
    v_found   boolean;
    v_tx      bigint;
    v_first   bigint;
    v_ids     uuid[];
BEGIN
    PERFORM pg_advisory_xact_lock(1634496876, hashtext(p_stream));

    SELECT s.revision, s.last_tx, s.deleted INTO v_rev, v_last_tx, v_deleted
      FROM streams s WHERE s.name = p_stream;
    v_found := FOUND;
    IF NOT v_found THEN
        v_rev := -1; v_last_tx := 0; v_deleted := false;
    END IF;
    IF v_deleted THEN
        RAISE EXCEPTION USING ERRCODE = 'AL002', MESSAGE = format('stream %s is deleted', p_stream);
    END IF;

    -- Idempotency: the same ids already written where this append would
    -- have put them return the original result and write nothing.
    IF n > 0 THEN
        IF p_expected >= -1 AND v_rev > p_expected THEN
            v_first := p_expected + 1;
        ELSIF p_expected IN (-2, -3) THEN
            SELECT e.revision INTO v_first FROM events e
             WHERE e.event_id = p_ids[1] AND e.stream = p_stream;
        END IF;
        IF v_first IS NOT NULL THEN
            SELECT array_agg(e.event_id ORDER BY e.revision) INTO v_ids FROM events e
             WHERE e.stream = p_stream AND e.revision BETWEEN v_first AND v_first + n - 1;
            IF v_ids = p_ids THEN
                SELECT e.revision, e.tx_id, e.seq INTO next_revision, commit_pos, prepare_pos
                  FROM events e WHERE e.stream = p_stream AND e.revision = v_first + n - 1;
                RETURN;
            END IF;
        END IF;
    END IF;

    PERFORM eventstore_check_expected(p_stream, p_expected, v_rev);

    IF n = 0 THEN
        next_revision := v_rev;
        SELECT e.tx_id, e.seq INTO commit_pos, prepare_pos
          FROM events e WHERE e.stream = p_stream AND e.revision = v_rev;
        RETURN;
    END IF;

    -- The first write of the transaction assigns its xid, after the lock.
    v_tx := pg_current_xact_id()::text::bigint;
    IF v_last_tx > v_tx THEN
        RAISE EXCEPTION USING ERRCODE = 'AL003',
            MESSAGE = format('stream %s was written by a later transaction; retry in a new transaction', p_stream);
    END IF;

    IF n = 1 THEN
        INSERT INTO events (tx_id, event_id, stream, revision, type, data, metadata)
        VALUES (v_tx, p_ids[1], p_stream, v_rev + 1, p_types[1], p_data[1], p_meta[1])
        RETURNING seq INTO prepare_pos;
    ELSE
        WITH ins AS (
            INSERT INTO events (tx_id, event_id, stream, revision, type, data, metadata)
            SELECT v_tx, t.id, p_stream, v_rev + t.ord, t.typ, t.dat, t.met
              FROM unnest(p_ids, p_types, p_data, p_meta) WITH ORDINALITY AS t(id, typ, dat, met, ord)
             ORDER BY t.ord
            RETURNING seq)
        SELECT max(seq) INTO prepare_pos FROM ins;
    END IF;

    next_revision := v_rev + n;
    commit_pos := v_tx;
    IF v_found THEN
        UPDATE streams SET revision = next_revision, last_tx = v_tx WHERE name = p_stream;
    ELSE
        INSERT INTO streams (name, revision, last_tx) VALUES (p_stream, next_revision, v_tx);
    END IF;
END
$fn$;

-- eventstore_tombstone deletes a stream for good (its events stay in $all).
CREATE FUNCTION eventstore_tombstone(p_stream text, p_expected bigint) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_rev     bigint;
    v_deleted boolean;
BEGIN
    PERFORM pg_advisory_xact_lock(1634496876, hashtext(p_stream));
    SELECT s.revision, s.deleted INTO v_rev, v_deleted FROM streams s WHERE s.name = p_stream;
    IF NOT FOUND THEN
        v_rev := -1; v_deleted := false;
    END IF;
    IF v_deleted THEN
        RAISE EXCEPTION USING ERRCODE = 'AL002', MESSAGE = format('stream %s is deleted', p_stream);
    END IF;
    PERFORM eventstore_check_expected(p_stream, p_expected, v_rev);
    INSERT INTO streams (name, revision, last_tx, deleted)
    VALUES (p_stream, v_rev, pg_current_xact_id()::text::bigint, true)
    ON CONFLICT (name) DO UPDATE SET deleted = true;
END
$fn$;

---- create above / drop below ----

DROP FUNCTION eventstore_tombstone(text, bigint);
DROP FUNCTION eventstore_append(text, bigint, uuid[], text[], jsonb[], jsonb[]);
DROP FUNCTION eventstore_check_expected(text, bigint, bigint);
DROP FUNCTION eventstore_horizon();
DROP TABLE streams;
DROP TABLE events;
