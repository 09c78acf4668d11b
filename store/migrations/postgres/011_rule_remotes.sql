-- Rules whose remote side is an IP set or the servers of a security group
-- (issue 18): a rule names exactly one of ip_range, ip_set_id and
-- remote_security_group_id; the other two are ''. No foreign keys: the
-- store refuses to delete a set or group that rules name (409 naming
-- them), and a reader that finds a name without its object fails the
-- group closed.
ALTER TABLE rules ADD COLUMN ip_set_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE rules ADD COLUMN remote_security_group_id TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX rules_ip_set ON rules (ip_set_id) WHERE ip_set_id <> '';
CREATE INDEX rules_remote_group ON rules (remote_security_group_id) WHERE remote_security_group_id <> '';

-- The row check of 005, with "exactly one remote side" in place of
-- "ip_range is set".
ALTER TABLE rules DROP CONSTRAINT rules_row_check;
ALTER TABLE rules ADD CONSTRAINT rules_row_check CHECK (
    (ip_range <> '')::int + (ip_set_id <> '')::int + (remote_security_group_id <> '')::int = 1
    AND dest_port_from BETWEEN 0 AND 65535 AND dest_port_to BETWEEN 0 AND 65535
    AND (dest_port_to = 0 OR dest_port_to >= dest_port_from)
    AND (protocol IN ('TCP', 'UDP') OR (dest_port_from = 0 AND dest_port_to = 0))
) NOT VALID;
