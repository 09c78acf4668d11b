-- Observe (issue 17): rules that log, counters that last, the packet log.
--
-- A rule that logs sends the packets it decides to the packet log, within
-- its group's rate limit; a group that logs its default drops does the
-- same for the packets its default policies (and its SMTP rules) drop.
-- Both are Rampart fields: rules log nothing by default, groups log their
-- default drops out of the box. The schema refuses anything but 0 and 1,
-- as a second line behind the store.
ALTER TABLE rules ADD COLUMN log INTEGER NOT NULL DEFAULT 0 CHECK (log IN (0, 1));
ALTER TABLE security_groups ADD COLUMN log_default_drops INTEGER NOT NULL DEFAULT 1 CHECK (log_default_drops IN (0, 1));

-- The packet log: the entries of logged packets, written in batches and
-- bounded per group (the newest 10,000; each batch prunes what it pushes
-- out). Writing them is not a change: the generation does not move. The
-- id is the cursor clients resume from: it is taken from log_cursor while
-- the batch holds that row (locked until commit), so that ids grow in
-- commit order even with several consoles writing: a reader that saw id N
-- never later sees a new entry below N. A sequence would not: two
-- consoles' batches may commit in the other order than they took ids.
-- No foreign key: entries of a group go with the group's deletion, and
-- entries of groups that do not exist are not written. Text is compared
-- byte for byte (COLLATE "C"), as SQLite does.
CREATE TABLE log_entries (
    id               BIGINT PRIMARY KEY,
    group_id         TEXT COLLATE "C" NOT NULL,
    at               TEXT COLLATE "C" NOT NULL,
    host             TEXT COLLATE "C" NOT NULL DEFAULT '',
    server_id        TEXT COLLATE "C" NOT NULL DEFAULT '',
    direction        TEXT COLLATE "C" NOT NULL,
    protocol         TEXT COLLATE "C" NOT NULL,
    source           TEXT COLLATE "C" NOT NULL,
    source_port      INTEGER NOT NULL DEFAULT 0,
    destination      TEXT COLLATE "C" NOT NULL,
    destination_port INTEGER NOT NULL DEFAULT 0,
    verdict          TEXT COLLATE "C" NOT NULL,
    decided_kind     TEXT COLLATE "C" NOT NULL,
    decided_rule     TEXT COLLATE "C" NOT NULL DEFAULT '',
    decided_position INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX log_entries_group ON log_entries (group_id, id);
CREATE TABLE log_cursor (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO log_cursor (id, value) VALUES (1, 0);

-- Counters that last: per group, host and rule tag (a rule ID, an SMTP
-- rule ID, default_in, default_out, established_in, established_out,
-- log_limited), what the host's kernel counted when last read (kernel_*)
-- and what is added to it (base_*): the count shown is the sum over hosts
-- of base + kernel. A kernel count found below the last one (the kernel's
-- table was made anew) folds the last one into the base; a reset sets the
-- base to minus the kernel's count. last_matched is when the kernel's
-- packet count last moved. Not changes: the generation does not move.
CREATE TABLE rule_counters (
    group_id       TEXT COLLATE "C" NOT NULL,
    host_id        TEXT COLLATE "C" NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    tag            TEXT COLLATE "C" NOT NULL,
    base_packets   BIGINT NOT NULL DEFAULT 0,
    base_bytes     BIGINT NOT NULL DEFAULT 0,
    kernel_packets BIGINT NOT NULL DEFAULT 0,
    kernel_bytes   BIGINT NOT NULL DEFAULT 0,
    last_matched   TEXT COLLATE "C" NOT NULL DEFAULT '',
    PRIMARY KEY (group_id, host_id, tag)
);
