-- IP sets: named lists of addresses and ranges, per organization and zone,
-- that rules match as one (an nftables set each), without using up the
-- rule quota. Entries are kept merged, one canonical prefix a line.
CREATE TABLE ip_sets (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    project_id      TEXT NOT NULL,
    zone            TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    entries         TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    modified_at     TEXT NOT NULL,
    generation      INTEGER NOT NULL
);
CREATE INDEX ip_sets_list ON ip_sets (organization_id, zone, created_at, id);
