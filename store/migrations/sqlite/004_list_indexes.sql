-- Lists are read in creation order per organization and zone: an index in
-- that order lets a page be read without sorting the whole zone.
CREATE INDEX security_groups_list ON security_groups (organization_id, zone, created_at, id);
CREATE INDEX servers_list ON servers (organization_id, zone, created_at, id);
