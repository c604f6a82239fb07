#!/bin/sh
# PostgreSQL's first start (the postgres image runs this from /docker-entrypoint-initdb.d, on an
# empty data directory, as the superuser POSTGRES_USER): one role per application, each owning
# its own databases and nothing else. Accord's role cannot read Temporal's databases, Temporal's
# cannot read Accord's, neither can create roles or databases, and the superuser is left to
# the operator (backups, this script). The operator's guide runs it by hand for a server that
# is already initialised.
set -eu
: "${ACCORD_DATABASE_USER:?set ACCORD_DATABASE_USER}"
: "${ACCORD_DATABASE_PASSWORD:?set ACCORD_DATABASE_PASSWORD}"
: "${TEMPORAL_DATABASE_USER:?set TEMPORAL_DATABASE_USER}"
: "${TEMPORAL_DATABASE_PASSWORD:?set TEMPORAL_DATABASE_PASSWORD}"

# psql fills :"name" (an identifier) and :'name' (a literal) itself, quoted: no value is ever
# read as SQL, whatever characters a password holds.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v accord_user="$ACCORD_DATABASE_USER" -v accord_password="$ACCORD_DATABASE_PASSWORD" \
    -v accord_db="${ACCORD_DATABASE_NAME:-accord}" \
    -v temporal_user="$TEMPORAL_DATABASE_USER" -v temporal_password="$TEMPORAL_DATABASE_PASSWORD" \
    -v temporal_db="${TEMPORAL_DATABASE_NAME:-temporal}" \
    -v visibility_db="${TEMPORAL_VISIBILITY_DATABASE_NAME:-temporal_visibility}" <<'SQL'
-- Each step makes what is missing and leaves what is there: a first start killed midway, or a
-- run by hand on a server where part of it was done, is finished by running it again.
SELECT format('CREATE ROLE %I', role) FROM (VALUES (:'accord_user'), (:'temporal_user')) AS r(role)
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role) \gexec
-- The password given now, whatever the role had: the roles follow the settings.
ALTER ROLE :"accord_user" LOGIN PASSWORD :'accord_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE :"temporal_user" LOGIN PASSWORD :'temporal_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
SELECT format('CREATE DATABASE %I OWNER %I', db, owner)
FROM (VALUES (:'accord_db', :'accord_user'), (:'temporal_db', :'temporal_user'),
             (:'visibility_db', :'temporal_user')) AS d(db, owner)
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = db) \gexec
ALTER DATABASE :"accord_db" OWNER TO :"accord_user";
ALTER DATABASE :"temporal_db" OWNER TO :"temporal_user";
ALTER DATABASE :"visibility_db" OWNER TO :"temporal_user";
-- Only each database's owner (and the superuser) may connect to it.
REVOKE ALL ON DATABASE :"accord_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"temporal_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"visibility_db" FROM PUBLIC;
SQL
