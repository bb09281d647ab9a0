-- eventstore_horizon (001) was a SQL function. It calls a volatile function
-- (pg_stat_get_activity), so PostgreSQL never inlines it and plans its body
-- anew on every call; every read of $all paid that planning. In PL/pgSQL
-- the plans are kept for the session. Same result; the snapshot is taken
-- once, and a snapshot with no running transaction answers at once.
CREATE OR REPLACE FUNCTION eventstore_horizon() RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE
    snap pg_snapshot := pg_current_snapshot();
    h    bigint;
BEGIN
    IF pg_snapshot_xmin(snap) = pg_snapshot_xmax(snap) THEN
        RETURN pg_snapshot_xmax(snap)::text::bigint;
    END IF;
    SELECT min(x::text::bigint) INTO h
      FROM pg_snapshot_xip(snap) AS x
     WHERE NOT EXISTS (
           SELECT 1 FROM pg_stat_get_activity(NULL) AS a
            WHERE a.backend_xid IS NOT NULL
              AND a.datid IS NOT NULL
              AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
              AND a.backend_xid::text::bigint = x::text::bigint % 4294967296);
    RETURN coalesce(h, pg_snapshot_xmax(snap)::text::bigint);
END
$fn$;
