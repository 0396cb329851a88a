-- PostgreSQL roles of the marketplace (docs/operations.md, "Database roles").
--
--   marketplace_owner  owns the schema and every table, trigger and function: migrations run as it
--                      (`marketplace db upgrade` with MKT_DATABASE_URL naming this role).
--   marketplace_app    what the CLI, the flows and the workers connect as: it reads and writes the catalog,
--                      but it can only INSERT into the books (journal_transactions, journal_entries,
--                      allocations) and the audit trail (audit_events): no UPDATE, DELETE or TRUNCATE there,
--                      and, not owning any table, it can never ALTER TABLE ... DISABLE TRIGGER, ALTER or DROP.
--
-- Run once per database as a superuser (or the database owner), in the marketplace database:
--   psql -v ON_ERROR_STOP=1 -d marketplace -f infra/postgres-roles.sql
-- then set the passwords interactively (never in a file):  \password marketplace_owner  and
-- \password marketplace_app. After every `marketplace db upgrade` run infra/postgres-grants.sql as the
-- owner, so the app role gets exactly its rights on new tables. The schema is the session's current
-- schema (public unless search_path says otherwise).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'marketplace_owner') THEN
        CREATE ROLE marketplace_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'marketplace_app') THEN
        CREATE ROLE marketplace_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
    -- Only the owner creates objects in the schema; the app role may use what is there.
    EXECUTE format('ALTER SCHEMA %I OWNER TO marketplace_owner', current_schema());
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO marketplace_app', current_schema());
    -- Tables that exist already (a database migrated before the roles) pass to the owner.
    EXECUTE (
        SELECT coalesce(string_agg(format('ALTER TABLE %I.%I OWNER TO marketplace_owner', schemaname, tablename),
                                   '; '), 'SELECT 1')
          FROM pg_tables WHERE schemaname = current_schema()
    );
END $$;
