#!/bin/sh
# First start of the PostgreSQL container only (docker-entrypoint-initdb.d): create the owner and the
# application roles (infra/postgres-roles.sql) with the passwords compose passes from infra/.env.
# The passwords travel as psql variables, never through a file in the image.
set -eu
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d marketplace -f /sql/postgres-roles.sql
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d marketplace \
     -v owner_password="$MKT_OWNER_DB_PASSWORD" -v app_password="$MKT_APP_DB_PASSWORD" <<'SQL'
ALTER ROLE marketplace_owner PASSWORD :'owner_password';
ALTER ROLE marketplace_app PASSWORD :'app_password';
SQL
