-- The log is append-only in the database, not only by convention: UPDATE,
-- DELETE and TRUNCATE of events are refused by triggers, whoever the
-- session's role is, and UPDATE, DELETE and TRUNCATE are revoked from
-- PUBLIC. Nothing in authledger changes or removes an event (a tombstone is
-- an event, 005; a projection rebuild reads the log and writes read models).
--
-- What this holds against: a statement that reaches the database by
-- mistake or by injection, from any role, including the owner. What it does
-- not: the table's owner can disable the triggers and a superuser can step
-- around them (session_replication_role = replica). In production the
-- service therefore connects as a role that does not own the table and has
-- only SELECT and INSERT on it (`authledger migrate -service-role ROLE`,
-- docs/database-roles.md); the keyed audit chain and exported heads
-- (`authledger audit verify`, docs/adr/0013-tamper-evident-log.md) detect what a
-- superuser or the owner does anyway.
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Per row for UPDATE and DELETE, as the audit trail's triggers are (003).
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_append_only_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON events FROM PUBLIC;

---- create above / drop below ----

DROP TRIGGER events_append_only_truncate ON events;
DROP TRIGGER events_append_only ON events;
DROP FUNCTION events_refuse_change();
