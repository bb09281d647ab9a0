-- Appends no longer go through the streams table and the PL/pgSQL functions
-- of 001: eventstore/pg issues one statement that reads each stream's newest
-- event (current revision, last writing transaction, tombstone) and lets the
-- unique (stream, revision) index exclude concurrent writers of a stream.
-- Concurrent appends of one process share that statement and its commit.
-- See docs/adr/0004-appends-guarded-by-the-revision-index.md.

-- A tombstone becomes an event of the reserved type $tombstone after the
-- stream's last revision. Readers of $all skip it; the stream's newest row
-- says it is deleted.
INSERT INTO events (event_id, stream, revision, type)
SELECT gen_random_uuid(), name, revision + 1, '$tombstone'
  FROM streams WHERE deleted ORDER BY name;

DROP FUNCTION eventstore_tombstone(text, bigint);
DROP FUNCTION eventstore_append(text, bigint, uuid[], text[], jsonb[], jsonb[]);
DROP FUNCTION eventstore_check_expected(text, bigint, bigint);
DROP TABLE streams;
