-- One name and one polarity for SMTP: smtp_enabled (false: the six SMTP
-- rules drop outbound mail) replaces enable_default_security (Scaleway's
-- name, true when blocked), which the API keeps on the wire.
ALTER TABLE security_groups ADD COLUMN smtp_enabled INTEGER NOT NULL DEFAULT 0;
UPDATE security_groups SET smtp_enabled = CASE enable_default_security WHEN 0 THEN 1 ELSE 0 END;
ALTER TABLE security_groups DROP COLUMN enable_default_security;

-- Checks on what the enforcer relies on, for every row written from now on.
-- SQLite cannot add a CHECK to an existing table without rebuilding it, and
-- a rebuild would fail on rows written before; triggers refuse new bad rows
-- and leave old ones to the readers, which mark them unreadable (their
-- groups fail closed) and report them when serve starts.
CREATE TRIGGER rules_check_insert BEFORE INSERT ON rules
WHEN NEW.ip_range = '' OR NEW.dest_port_from NOT BETWEEN 0 AND 65535 OR NEW.dest_port_to NOT BETWEEN 0 AND 65535
    OR (NEW.dest_port_to <> 0 AND NEW.dest_port_to < NEW.dest_port_from)
    OR (NEW.protocol NOT IN ('TCP', 'UDP') AND (NEW.dest_port_from <> 0 OR NEW.dest_port_to <> 0))
BEGIN
    SELECT RAISE(ABORT, 'rules: row refused by the schema');
END;
CREATE TRIGGER rules_check_update BEFORE UPDATE ON rules
WHEN NEW.ip_range = '' OR NEW.dest_port_from NOT BETWEEN 0 AND 65535 OR NEW.dest_port_to NOT BETWEEN 0 AND 65535
    OR (NEW.dest_port_to <> 0 AND NEW.dest_port_to < NEW.dest_port_from)
    OR (NEW.protocol NOT IN ('TCP', 'UDP') AND (NEW.dest_port_from <> 0 OR NEW.dest_port_to <> 0))
BEGIN
    SELECT RAISE(ABORT, 'rules: row refused by the schema');
END;
CREATE TRIGGER servers_check_insert BEFORE INSERT ON servers
WHEN length(NEW.interface) > 15 OR NEW.interface GLOB '*[^A-Za-z0-9._-]*' OR NEW.interface IN ('.', '..')
    OR NEW.local NOT IN (0, 1) OR (NEW.local = 1 AND NEW.interface <> '')
BEGIN
    SELECT RAISE(ABORT, 'servers: row refused by the schema');
END;
CREATE TRIGGER servers_check_update BEFORE UPDATE ON servers
WHEN length(NEW.interface) > 15 OR NEW.interface GLOB '*[^A-Za-z0-9._-]*' OR NEW.interface IN ('.', '..')
    OR NEW.local NOT IN (0, 1) OR (NEW.local = 1 AND NEW.interface <> '')
BEGIN
    SELECT RAISE(ABORT, 'servers: row refused by the schema');
END;
CREATE TRIGGER security_groups_check_insert BEFORE INSERT ON security_groups
WHEN NEW.stateful NOT IN (0, 1) OR NEW.smtp_enabled NOT IN (0, 1) OR NEW.organization_default NOT IN (0, 1)
BEGIN
    SELECT RAISE(ABORT, 'security_groups: row refused by the schema');
END;
CREATE TRIGGER security_groups_check_update BEFORE UPDATE ON security_groups
WHEN NEW.stateful NOT IN (0, 1) OR NEW.smtp_enabled NOT IN (0, 1) OR NEW.organization_default NOT IN (0, 1)
BEGIN
    SELECT RAISE(ABORT, 'security_groups: row refused by the schema');
END;
