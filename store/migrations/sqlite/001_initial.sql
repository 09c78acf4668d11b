-- The generation counts committed changes; the enforcer compares it with
-- what it applied.
CREATE TABLE generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO generation (id, value) VALUES (1, 0);

CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash   TEXT NOT NULL,
    created_at      TEXT NOT NULL
);

CREATE TABLE tokens (
    access_key      TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    secret_hash     TEXT NOT NULL UNIQUE,
    description     TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL
);

CREATE TABLE security_groups (
    id                      TEXT PRIMARY KEY,
    organization_id         TEXT NOT NULL REFERENCES organizations (id),
    project_id              TEXT NOT NULL,
    zone                    TEXT NOT NULL,
    name                    TEXT NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    tags                    TEXT NOT NULL DEFAULT '[]',
    stateful                INTEGER NOT NULL,
    inbound_default_policy  TEXT NOT NULL CHECK (inbound_default_policy IN ('accept', 'drop')),
    outbound_default_policy TEXT NOT NULL CHECK (outbound_default_policy IN ('accept', 'drop')),
    organization_default    INTEGER NOT NULL DEFAULT 0,
    enable_default_security INTEGER NOT NULL,
    created_at              TEXT NOT NULL,
    modified_at             TEXT NOT NULL,
    generation              INTEGER NOT NULL
);
CREATE INDEX security_groups_org_zone ON security_groups (organization_id, zone);
-- At most one organization default per organization and zone.
CREATE UNIQUE INDEX security_groups_one_default
    ON security_groups (organization_id, zone) WHERE organization_default = 1;

CREATE TABLE rules (
    id             TEXT PRIMARY KEY,
    group_id       TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    direction      TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    protocol       TEXT NOT NULL CHECK (protocol IN ('TCP', 'UDP', 'ICMP', 'ANY')),
    action         TEXT NOT NULL CHECK (action IN ('accept', 'drop')),
    ip_range       TEXT NOT NULL,
    dest_ip_range  TEXT NOT NULL DEFAULT '',
    dest_port_from INTEGER NOT NULL DEFAULT 0,
    dest_port_to   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX rules_group ON rules (group_id, position);

CREATE TABLE servers (
    id                TEXT PRIMARY KEY,
    organization_id   TEXT NOT NULL REFERENCES organizations (id),
    project_id        TEXT NOT NULL,
    zone              TEXT NOT NULL,
    name              TEXT NOT NULL,
    type              TEXT NOT NULL CHECK (type IN ('instance', 'baremetal')),
    interface         TEXT NOT NULL DEFAULT '',
    addresses         TEXT NOT NULL DEFAULT '[]',
    local             INTEGER NOT NULL DEFAULT 0,
    tags              TEXT NOT NULL DEFAULT '[]',
    security_group_id TEXT NOT NULL REFERENCES security_groups (id),
    created_at        TEXT NOT NULL,
    modified_at       TEXT NOT NULL
);
CREATE INDEX servers_org_zone ON servers (organization_id, zone);
CREATE INDEX servers_group ON servers (security_group_id);
-- One host interface carries one server; one server is the host itself.
CREATE UNIQUE INDEX servers_interface ON servers (interface) WHERE interface <> '';
CREATE UNIQUE INDEX servers_one_local ON servers (local) WHERE local = 1;
