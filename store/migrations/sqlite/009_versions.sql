-- Safe changes (issue 16).
--
-- Rule descriptions: a Rampart field, shown in the console and carried as
-- the comment of a line in the rules' text form.
ALTER TABLE rules ADD COLUMN description TEXT NOT NULL DEFAULT '';

-- Versions: every committed change to a group is a version of it, numbered
-- 1, 2, 3… per group without gaps, holding the group's full settings, rules
-- and servers (JSON) as they were after the change, so that any version can
-- be shown, compared and restored. security_groups.version is the group's
-- latest. Rows outlive the groups they describe, as the audit log's do, so
-- there is no foreign key. Groups that exist before this migration get
-- their version 1 when the store opens (the JSON is written by the store,
-- the same on every engine).
ALTER TABLE security_groups ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
CREATE TABLE group_versions (
    group_id        TEXT NOT NULL,
    version         INTEGER NOT NULL,
    organization_id TEXT NOT NULL,
    zone            TEXT NOT NULL,
    generation      INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    actor           TEXT NOT NULL,
    summary         TEXT NOT NULL,
    settings        TEXT NOT NULL,
    rules           TEXT NOT NULL,
    servers         TEXT NOT NULL,
    PRIMARY KEY (group_id, version)
);
-- A change finds the groups it versions from its audit entries.
CREATE INDEX events_generation ON events (generation);

-- Confirm or roll back: a change made with a deadline waits here for its
-- confirmation; past the deadline the server restores version base. One
-- row per group: while it exists, other changes to the group are refused.
-- No foreign key: a group cannot be deleted while its row exists (the
-- store refuses it), and the row must outlive a refused deletion's attempt.
CREATE TABLE pending_confirmations (
    group_id   TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    base       INTEGER NOT NULL,
    deadline   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX pending_confirmations_deadline ON pending_confirmations (deadline);

-- Review before apply: a person's draft of a group's rules, begun at
-- base_version, applied as one change or discarded. Drafts are not
-- changes: writing one never moves the generation.
CREATE TABLE rule_drafts (
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id     TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
    base_version INTEGER NOT NULL,
    rules        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (user_id, group_id)
);
