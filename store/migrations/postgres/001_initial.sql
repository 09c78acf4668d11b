-- PostgreSQL's schema follows SQLite's number for number, with the same
-- tables, columns and meaning: text is COLLATE "C", so that it compares
-- and sorts byte by byte as in SQLite; booleans stay 0/1 integers and
-- dates RFC 3339 text; counters are BIGINT, as SQLite's INTEGER is 64-bit.

-- The generation counts committed changes; the enforcer compares it with
-- what it applied.
CREATE TABLE generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO generation (id, value) VALUES (1, 0);

CREATE TABLE organizations (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE users (
    id              TEXT COLLATE "C" PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           TEXT COLLATE "C" NOT NULL,
    password_hash   TEXT COLLATE "C" NOT NULL,
    created_at      TEXT COLLATE "C" NOT NULL
);
-- SQLite's email is UNIQUE COLLATE NOCASE: unique whatever the case of
-- its ASCII letters (lower() of "C" text folds those only).
CREATE UNIQUE INDEX users_email_fold ON users (lower(email COLLATE "C"));

CREATE TABLE tokens (
    access_key      TEXT COLLATE "C" PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    secret_hash     TEXT COLLATE "C" NOT NULL UNIQUE,
    description     TEXT COLLATE "C" NOT NULL DEFAULT '',
    created_at      TEXT COLLATE "C" NOT NULL
);

CREATE TABLE security_groups (
    id                      TEXT COLLATE "C" PRIMARY KEY,
    organization_id         TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    project_id              TEXT COLLATE "C" NOT NULL,
    zone                    TEXT COLLATE "C" NOT NULL,
    name                    TEXT COLLATE "C" NOT NULL,
    description             TEXT COLLATE "C" NOT NULL DEFAULT '',
    tags                    TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    stateful                INTEGER NOT NULL,
    inbound_default_policy  TEXT COLLATE "C" NOT NULL CHECK (inbound_default_policy IN ('accept', 'drop')),
    outbound_default_policy TEXT COLLATE "C" NOT NULL CHECK (outbound_default_policy IN ('accept', 'drop')),
    organization_default    INTEGER NOT NULL DEFAULT 0,
    enable_default_security INTEGER NOT NULL,
    created_at              TEXT COLLATE "C" NOT NULL,
    modified_at             TEXT COLLATE "C" NOT NULL,
    generation              BIGINT NOT NULL
);
CREATE INDEX security_groups_org_zone ON security_groups (organization_id, zone);
-- At most one organization default per organization and zone.
CREATE UNIQUE INDEX security_groups_one_default
    ON security_groups (organization_id, zone) WHERE organization_default = 1;

CREATE TABLE rules (
    id             TEXT COLLATE "C" PRIMARY KEY,
    group_id       TEXT COLLATE "C" NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    direction      TEXT COLLATE "C" NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    protocol       TEXT COLLATE "C" NOT NULL CHECK (protocol IN ('TCP', 'UDP', 'ICMP', 'ANY')),
    action         TEXT COLLATE "C" NOT NULL CHECK (action IN ('accept', 'drop')),
    ip_range       TEXT COLLATE "C" NOT NULL,
    dest_ip_range  TEXT COLLATE "C" NOT NULL DEFAULT '',
    dest_port_from INTEGER NOT NULL DEFAULT 0,
    dest_port_to   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX rules_group ON rules (group_id, position);

CREATE TABLE servers (
    id                TEXT COLLATE "C" PRIMARY KEY,
    organization_id   TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    project_id        TEXT COLLATE "C" NOT NULL,
    zone              TEXT COLLATE "C" NOT NULL,
    name              TEXT COLLATE "C" NOT NULL,
    type              TEXT COLLATE "C" NOT NULL CHECK (type IN ('instance', 'baremetal')),
    interface         TEXT COLLATE "C" NOT NULL DEFAULT '',
    addresses         TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    local             INTEGER NOT NULL DEFAULT 0,
    tags              TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    security_group_id TEXT COLLATE "C" NOT NULL REFERENCES security_groups (id),
    created_at        TEXT COLLATE "C" NOT NULL,
    modified_at       TEXT COLLATE "C" NOT NULL
);
CREATE INDEX servers_org_zone ON servers (organization_id, zone);
CREATE INDEX servers_group ON servers (security_group_id);
-- One host interface carries one server; one server is the host itself.
CREATE UNIQUE INDEX servers_interface ON servers (interface) WHERE interface <> '';
CREATE UNIQUE INDEX servers_one_local ON servers (local) WHERE local = 1;
