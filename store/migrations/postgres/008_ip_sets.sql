-- IP sets: named lists of addresses and ranges, per organization and zone,
-- that rules match as one (an nftables set each), without using up the
-- rule quota. Entries are kept merged, one canonical prefix a line.
CREATE TABLE ip_sets (
    id              TEXT COLLATE "C" PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    project_id      TEXT COLLATE "C" NOT NULL,
    zone            TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C" NOT NULL,
    description     TEXT COLLATE "C" NOT NULL DEFAULT '',
    entries         TEXT COLLATE "C" NOT NULL DEFAULT '',
    created_at      TEXT COLLATE "C" NOT NULL,
    modified_at     TEXT COLLATE "C" NOT NULL,
    generation      BIGINT NOT NULL
);
CREATE INDEX ip_sets_list ON ip_sets (organization_id, zone, created_at, id);
