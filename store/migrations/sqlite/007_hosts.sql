-- Operators administer the whole install: hosts, organizations, users and
-- grants. On upgrade the oldest user becomes one.
ALTER TABLE users ADD COLUMN operator INTEGER NOT NULL DEFAULT 0;
UPDATE users SET operator = 1 WHERE id = (SELECT id FROM users ORDER BY created_at, id LIMIT 1);

-- Hosts are the machines whose kernels Rampart programs: the console's own
-- and every agent's. The default host is where a server without a host is.
CREATE TABLE hosts (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    is_default         INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    join_token_hash    TEXT NOT NULL DEFAULT '',
    join_token_expires TEXT NOT NULL DEFAULT '',
    enrolled_at        TEXT NOT NULL DEFAULT '',
    cert_serial        TEXT NOT NULL DEFAULT '',
    cert_not_after     TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX hosts_one_default ON hosts (is_default) WHERE is_default = 1;

-- What each host last reported. Reports are not changes: writing them
-- never moves the generation.
CREATE TABLE host_reports (
    host_id            TEXT PRIMARY KEY REFERENCES hosts (id) ON DELETE CASCADE,
    last_seen          TEXT NOT NULL,
    version            TEXT NOT NULL DEFAULT '',
    applied_generation INTEGER NOT NULL DEFAULT 0,
    drift_repairs      INTEGER NOT NULL DEFAULT 0,
    error              TEXT NOT NULL DEFAULT ''
);
CREATE TABLE host_groups (
    host_id            TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    group_id           TEXT NOT NULL,
    applied_generation INTEGER NOT NULL,
    error              TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (host_id, group_id)
);

-- A server is on a host: '' is the default host, whichever it is.
-- Interfaces are unique per host (checked by the store, which resolves the
-- default), no longer across the install.
ALTER TABLE servers ADD COLUMN host_id TEXT NOT NULL DEFAULT '';
DROP INDEX servers_interface;
DROP INDEX servers_one_local;
CREATE INDEX servers_host_interface ON servers (host_id, interface);

-- Grants let an organization bind servers to interfaces (shell globs) and
-- to the host itself (local), on one host or on every host (host_id '').
CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    host_id         TEXT NOT NULL DEFAULT '',
    interfaces      TEXT NOT NULL DEFAULT '[]',
    local           INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL
);
CREATE INDEX grants_org ON grants (organization_id);
-- On upgrade the oldest organization may bind what it could before: every
-- interface and the host itself, on every host.
INSERT INTO grants (id, organization_id, host_id, interfaces, local, created_at)
SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-a' ||
       substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
       id, '', '["*"]', 1, created_at
FROM organizations ORDER BY created_at, id LIMIT 1;
