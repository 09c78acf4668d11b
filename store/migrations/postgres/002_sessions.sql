-- Console sessions (the scs session manager's store) and the server's own
-- long-lived secrets, so that restarts keep users signed in.
CREATE TABLE sessions (
    token  TEXT COLLATE "C" PRIMARY KEY,
    data   BYTEA NOT NULL,
    expiry DOUBLE PRECISION NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expiry);

CREATE TABLE secrets (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);
