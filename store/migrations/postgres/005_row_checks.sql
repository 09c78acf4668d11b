-- One name and one polarity for SMTP: smtp_enabled (false: the six SMTP
-- rules drop outbound mail) replaces enable_default_security (Scaleway's
-- name, true when blocked), which the API keeps on the wire.
ALTER TABLE security_groups ADD COLUMN smtp_enabled INTEGER NOT NULL DEFAULT 0;
UPDATE security_groups SET smtp_enabled = CASE enable_default_security WHEN 0 THEN 1 ELSE 0 END;
ALTER TABLE security_groups DROP COLUMN enable_default_security;

-- Checks on what the enforcer relies on, for every row written from now on:
-- NOT VALID leaves the rows written before to the readers, which mark them
-- unreadable (their groups fail closed), as SQLite's triggers do.
ALTER TABLE rules ADD CONSTRAINT rules_row_check CHECK (
    ip_range <> '' AND dest_port_from BETWEEN 0 AND 65535 AND dest_port_to BETWEEN 0 AND 65535
    AND (dest_port_to = 0 OR dest_port_to >= dest_port_from)
    AND (protocol IN ('TCP', 'UDP') OR (dest_port_from = 0 AND dest_port_to = 0))
) NOT VALID;
ALTER TABLE servers ADD CONSTRAINT servers_row_check CHECK (
    length(interface) <= 15 AND interface ~ '^[A-Za-z0-9._-]*$' AND interface NOT IN ('.', '..')
    AND local IN (0, 1) AND (local = 0 OR interface = '')
) NOT VALID;
ALTER TABLE security_groups ADD CONSTRAINT security_groups_row_check CHECK (
    stateful IN (0, 1) AND smtp_enabled IN (0, 1) AND organization_default IN (0, 1)
) NOT VALID;
