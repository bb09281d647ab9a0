-- The audit trail (projections/audit) is append-only at the database level.
-- Its tables (audit_log_g<N>, one per projection generation, served through
-- the view audit_log) are created by the projection runtime; each gets
-- BEFORE UPDATE OR DELETE (per row) and BEFORE TRUNCATE (per statement)
-- triggers that call this function, and UPDATE, DELETE and TRUNCATE are
-- revoked from PUBLIC. A superuser can still disable the triggers: the hash
-- chain (authledger audit verify) is what detects that.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

---- create above / drop below ----

DROP FUNCTION audit_log_refuse_change();
