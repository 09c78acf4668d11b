-- Rules whose remote side is an IP set or the servers of a security group
-- (issue 18): a rule names exactly one of ip_range, ip_set_id and
-- remote_security_group_id; the other two are ''. No foreign keys: the
-- store refuses to delete a set or group that rules name (409 naming
-- them), and a reader that finds a name without its object fails the
-- group closed.
ALTER TABLE rules ADD COLUMN ip_set_id TEXT NOT NULL DEFAULT '';
ALTER TABLE rules ADD COLUMN remote_security_group_id TEXT NOT NULL DEFAULT '';
CREATE INDEX rules_ip_set ON rules (ip_set_id) WHERE ip_set_id <> '';
CREATE INDEX rules_remote_group ON rules (remote_security_group_id) WHERE remote_security_group_id <> '';

-- The row checks of 005, with "exactly one remote side" in place of
-- "ip_range is set".
DROP TRIGGER rules_check_insert;
DROP TRIGGER rules_check_update;
CREATE TRIGGER rules_check_insert BEFORE INSERT ON rules
WHEN (NEW.ip_range <> '') + (NEW.ip_set_id <> '') + (NEW.remote_security_group_id <> '') <> 1
    OR NEW.dest_port_from NOT BETWEEN 0 AND 65535 OR NEW.dest_port_to NOT BETWEEN 0 AND 65535
    OR (NEW.dest_port_to <> 0 AND NEW.dest_port_to < NEW.dest_port_from)
    OR (NEW.protocol NOT IN ('TCP', 'UDP') AND (NEW.dest_port_from <> 0 OR NEW.dest_port_to <> 0))
BEGIN
    SELECT RAISE(ABORT, 'rules: row refused by the schema');
END;
CREATE TRIGGER rules_check_update BEFORE UPDATE ON rules
WHEN (NEW.ip_range <> '') + (NEW.ip_set_id <> '') + (NEW.remote_security_group_id <> '') <> 1
    OR NEW.dest_port_from NOT BETWEEN 0 AND 65535 OR NEW.dest_port_to NOT BETWEEN 0 AND 65535
    OR (NEW.dest_port_to <> 0 AND NEW.dest_port_to < NEW.dest_port_from)
    OR (NEW.protocol NOT IN ('TCP', 'UDP') AND (NEW.dest_port_from <> 0 OR NEW.dest_port_to <> 0))
BEGIN
    SELECT RAISE(ABORT, 'rules: row refused by the schema');
END;
