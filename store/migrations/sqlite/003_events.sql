-- The audit log: who changed what, when, with the object before and after.
-- Rows outlive the objects they describe, so there are no foreign keys.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL,
    zone            TEXT NOT NULL,
    group_id        TEXT NOT NULL DEFAULT '',
    resource        TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    action          TEXT NOT NULL,
    actor           TEXT NOT NULL,
    at              TEXT NOT NULL,
    before          TEXT NOT NULL DEFAULT 'null',
    after           TEXT NOT NULL DEFAULT 'null',
    generation      INTEGER NOT NULL
);
CREATE INDEX events_group ON events (organization_id, group_id, id);
