-- State that consoles sharing one database share.

-- The sign-in throttle's token buckets, one per account and per client
-- address. A bucket that is full again (full_at has passed) says nothing
-- more than a missing row, and may be dropped.
CREATE TABLE throttle (
    key     TEXT COLLATE "C" PRIMARY KEY,
    tokens  DOUBLE PRECISION NOT NULL,
    at      TEXT COLLATE "C" NOT NULL, -- when tokens was last brought up to date
    full_at TEXT COLLATE "C" NOT NULL  -- when the bucket is full again
);
CREATE INDEX throttle_full ON throttle (full_at);

-- Counts revocations of credentials (deleted tokens): a console that keeps
-- tokens in memory reads it to forget them.
CREATE TABLE revocations (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revocations (id, value) VALUES (1, 0);
