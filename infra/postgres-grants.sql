-- The application role's rights on the marketplace tables (docs/operations.md, "Database roles").
-- Run as marketplace_owner after every `marketplace db upgrade` (idempotent):
--   psql -v ON_ERROR_STOP=1 -d marketplace -U marketplace_owner -f infra/postgres-grants.sql
--
-- marketplace_app reads and writes the catalog, labels, scores and runs; the books and the audit trail
-- are append-only for it (INSERT and SELECT only); pricing runs and accounts are never deleted by it; the
-- migration history is read-only. The database triggers refuse the same changes for every role; these
-- grants add that the app role cannot switch the triggers off (that needs ownership) nor delete.

DO $$
DECLARE
    s text := current_schema();
    t text;
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO marketplace_app', s);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO marketplace_app', s);
    FOREACH t IN ARRAY ARRAY['journal_transactions', 'journal_entries', 'allocations', 'audit_events'] LOOP
        IF to_regclass(format('%I.%I', s, t)) IS NOT NULL THEN
            EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON %I.%I FROM marketplace_app', s, t);
        END IF;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['pricing_runs', 'ledger_accounts'] LOOP
        IF to_regclass(format('%I.%I', s, t)) IS NOT NULL THEN
            EXECUTE format('REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER ON %I.%I FROM marketplace_app', s, t);
        END IF;
    END LOOP;
    IF to_regclass(format('%I.alembic_version', s)) IS NOT NULL THEN
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %I.alembic_version FROM marketplace_app', s);
    END IF;
END $$;
