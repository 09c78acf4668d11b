package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/uuid"
)

// ServerInput describes a server to register.
type ServerInput struct {
	Name            string
	ProjectID       string // optional; the organization's project
	Type            ServerType
	Interface       string
	Addresses       []string
	Local           bool
	Tags            []string
	SecurityGroupID string // "" gives the zone's organization default
	Host            string // a host's name; "" for the default host
}

// ServerPatch changes the fields that are not nil.
type ServerPatch struct {
	Name            *string
	Type            *ServerType
	Interface       *string
	Addresses       *[]string
	Local           *bool
	Tags            *[]string
	SecurityGroupID *string
	Host            *string // "" moves the server to the default host
}

// ServerFilter selects servers of one organization and zone.
type ServerFilter struct {
	Name string
	Tags []string
	Page
	All bool // every match, ignoring Page
}

const serverColumns = `s.id, s.organization_id, s.project_id, s.zone, s.name, s.type, s.interface, s.addresses, s.local,
	s.tags, s.security_group_id, g.name, s.created_at, s.modified_at, s.host_id, COALESCE(h.id, ''), COALESCE(h.name, '')`

// serverFrom joins a server's group and its host: its own, or the default
// host when it names none.
const serverFrom = ` FROM servers s JOIN security_groups g ON g.id = s.security_group_id
	LEFT JOIN hosts h ON h.id = CASE WHEN s.host_id <> '' THEN s.host_id ELSE (SELECT id FROM hosts WHERE is_default = 1) END`

// scanServer reads a server; what the enforcer relies on (type,
// interface, local, addresses) is checked as it was on the way in, and a
// row that fails is marked Unreadable rather than guessed at.
func scanServer(sc scanner) (Server, error) {
	var s Server
	var addrs, tags, created, modified string
	var local int
	err := sc.Scan(&s.ID, &s.OrganizationID, &s.ProjectID, &s.Zone, &s.Name, &s.Type, &s.Interface, &addrs, &local,
		&tags, &s.SecurityGroup.ID, &s.SecurityGroup.Name, &created, &modified, &s.PinnedHost, &s.HostID, &s.Host)
	if err != nil {
		return Server{}, err
	}
	s.Tags, s.Local = decodeTags(tags), local == 1
	s.CreatedAt, s.ModifiedAt = parseTime(created), parseTime(modified)
	var fe fieldErrors
	var list []string
	if err := json.Unmarshal([]byte(addrs), &list); err != nil {
		fe.add("addresses", "format", "stored addresses are not a list")
	}
	if local != 0 && local != 1 {
		fe.add("local", "format", "stored value %d is not a boolean", local)
	}
	checkEnforced(&fe, &s, s.Interface, list)
	s.Unreadable = fe.text()
	return s, nil
}

func findServer(ctx context.Context, tx *txn, orgID, zone, id string) (Server, error) {
	s, err := scanServer(tx.QueryRowContext(ctx, `SELECT `+serverColumns+serverFrom+`
		WHERE s.id = ? AND s.organization_id = ? AND s.zone = ?`, id, orgID, zone))
	if errors.Is(err, sql.ErrNoRows) {
		return Server{}, notFound(ResourceServer, id)
	}
	return s, err
}

// Server returns one server of the organization in the zone.
func (db *DB) Server(ctx context.Context, orgID, zone, id string) (Server, error) {
	if err := db.checkZone(zone); err != nil {
		return Server{}, err
	}
	var s Server
	err := db.read(ctx, func(tx *txn) error {
		var err error
		s, err = findServer(ctx, tx, orgID, zone, id)
		return err
	})
	if err != nil {
		return Server{}, fmt.Errorf("get server %s: %w", id, err)
	}
	return s, nil
}

// ServerGroup is a server with the group that protects it and that
// group's rules as ListRules lists them.
type ServerGroup struct {
	Server Server
	Group  Group
	Rules  []Rule
}

// ServerGroups reads servers of the organization in the zone, each with its
// group and the group's rules, in one transaction: each server is in the
// group read with it, and the rules are those of that group's generation.
// A missing server, or another organization's, gives a not-found error
// naming it.
func (db *DB) ServerGroups(ctx context.Context, orgID, zone string, ids ...string) ([]ServerGroup, error) {
	if err := db.checkZone(zone); err != nil {
		return nil, err
	}
	out := make([]ServerGroup, len(ids))
	err := db.read(ctx, func(tx *txn) error {
		for i, id := range ids {
			s, err := findServer(ctx, tx, orgID, zone, id)
			if err != nil {
				return err
			}
			g, err := findGroup(ctx, tx, orgID, zone, s.SecurityGroup.ID)
			if ErrorCode(err) == CodeNotFound {
				// The schema keeps a server's group in its organization
				// and zone: this is damage, not a request for a missing
				// group.
				return fmt.Errorf("server %s names group %s, which is not of its organization and zone", s.ID, s.SecurityGroup.ID)
			}
			if err != nil {
				return err
			}
			rules, err := listedRules(ctx, tx, g)
			if err != nil {
				return err
			}
			out[i] = ServerGroup{Server: s, Group: g, Rules: rules}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get servers %s: %w", strings.Join(ids, ", "), err)
	}
	return out, nil
}

// Servers lists the organization's servers in a zone, newest first, with
// the number matching across all pages.
func (db *DB) Servers(ctx context.Context, orgID, zone string, f ServerFilter) ([]Server, int, error) {
	if err := db.checkZone(zone); err != nil {
		return nil, 0, err
	}
	q := filter{e: db.e}
	q.and("s.organization_id = ? AND s.zone = ?", orgID, zone)
	q.nameContains("s.name", f.Name)
	q.hasTags("s.tags", f.Tags)
	servers, total, err := listPage(ctx, db, q, f.Page, f.All, serverColumns, serverFrom, "s.created_at DESC, s.id", scanServer, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("list servers: %w", err)
	}
	return servers, total, nil
}

func checkServerFields(fe *fieldErrors, s *Server, iface string, addrs []string) {
	checkName(fe, "name", s.Name)
	checkTags(fe, "tags", s.Tags)
	checkEnforced(fe, s, iface, addrs)
}

// checkEnforced checks the fields of a server that the enforcer relies on,
// and sets s.Interface and s.Addresses from them.
func checkEnforced(fe *fieldErrors, s *Server, iface string, addrs []string) {
	if s.Type != Instance && s.Type != BareMetal {
		fe.add("type", "format", "must be instance or baremetal (got %q)", string(s.Type))
	}
	s.Interface = strings.TrimSpace(iface)
	if s.Interface != "" && !ValidInterfaceName(s.Interface) {
		fe.add("interface", "format", "%q is not a valid interface name (1 to %d letters, digits, '.', '_' or '-')", s.Interface, MaxInterfaceName)
	}
	if s.Local && s.Interface != "" {
		fe.add("interface", "constraint", "the local host is protected on its own input and output: leave interface empty")
	}
	if len(addrs) > MaxAddresses {
		fe.add("addresses", "constraint", "at most %d addresses", MaxAddresses)
		return
	}
	s.Addresses = make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		ip, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil || ip.Zone() != "" {
			fe.add("addresses", "format", "%q is not an IPv4 or IPv6 address", a)
			return
		}
		s.Addresses = append(s.Addresses, ip.Unmap())
	}
}

// resolveHost returns the host a server names (name, "" for the default
// host): what to store (its ID, or "" for the default) and the host it is
// on (the default host's ID, or "" while no host exists). A host the
// organization has no grant on answers as one that does not exist.
func resolveHost(ctx context.Context, tx *txn, orgID, name string) (stored, effective string, err error) {
	if name == "" {
		err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT id FROM hosts WHERE is_default = 1), '')`).Scan(&effective)
		return "", effective, err
	}
	missing := invalid("host", "constraint", "there is no host called %s", name)
	h, err := findHostByName(ctx, tx, name)
	if ErrorCode(err) == CodeNotFound {
		return "", "", missing
	}
	if err != nil {
		return "", "", err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM grants WHERE organization_id = ? AND (host_id = '' OR host_id = ?)`,
		orgID, h.ID).Scan(&n); err != nil {
		return "", "", err
	}
	if n == 0 {
		return "", "", missing
	}
	return h.ID, h.ID, nil
}

// CreateServer registers a server. Without a group it gets the zone's
// organization default, created on first need.
func (db *DB) CreateServer(ctx context.Context, orgID, zone string, in ServerInput) (Server, error) {
	if err := db.checkZone(zone); err != nil {
		return Server{}, err
	}
	if err := db.checkProject(orgID, in.ProjectID); err != nil {
		return Server{}, err
	}
	if in.Type == "" {
		in.Type = Instance
	}
	now := db.Now().UTC()
	s := Server{
		ID: uuid.NewString(), OrganizationID: orgID, ProjectID: orgID, Zone: zone, Name: strings.TrimSpace(in.Name),
		Type: in.Type, Local: in.Local, Tags: in.Tags, CreatedAt: now, ModifiedAt: now,
	}
	if s.Tags == nil {
		s.Tags = []string{}
	}
	var fe fieldErrors
	checkServerFields(&fe, &s, in.Interface, in.Addresses)
	if err := fe.err(); err != nil {
		return Server{}, err
	}
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		if s.PinnedHost, s.HostID, err = resolveHost(ctx, tx, orgID, strings.TrimSpace(in.Host)); err != nil {
			return err
		}
		if err := checkBinding(ctx, tx, orgID, s.ID, s.HostID, s.Interface, s.Local); err != nil {
			return err
		}
		g, err := db.groupForServer(ctx, tx, gen, orgID, zone, in.SecurityGroupID, "security_group")
		if err != nil {
			return err
		}
		if err := checkBareMetal(s, g, "security_group"); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO servers (id, organization_id, project_id, zone, name, type, interface,
			addresses, local, tags, security_group_id, created_at, modified_at, host_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.OrganizationID, s.ProjectID, s.Zone, s.Name, s.Type, s.Interface, encodeList(s.Addresses),
			boolInt(s.Local), encodeList(s.Tags), g.ID, formatTime(now), formatTime(now), s.PinnedHost)
		if err != nil {
			return err
		}
		if s.Host, err = hostName(ctx, tx, s.HostID); err != nil {
			return err
		}
		s.SecurityGroup = ServerRef{ID: g.ID, Name: g.Name}
		if err := db.record(ctx, tx, gen, change{org: orgID, zone: zone, group: g.ID, resource: ResourceServer, id: s.ID, action: "create", after: s}); err != nil {
			return err
		}
		return db.touchGroup(ctx, tx, gen, g.ID)
	})
	if err != nil {
		return Server{}, fmt.Errorf("create server: %w", err)
	}
	return s, nil
}

// groupForServer finds the group a server is to join: the named one in the
// zone, or the zone's default.
func (db *DB) groupForServer(ctx context.Context, tx *txn, gen int64, orgID, zone, groupID, field string) (Group, error) {
	if groupID == "" {
		return db.ensureDefaultGroup(ctx, tx, gen, orgID, zone)
	}
	g, err := findGroup(ctx, tx, orgID, zone, groupID)
	if ErrorCode(err) == CodeNotFound {
		return Group{}, invalid(field, "constraint", "security group %s does not exist in zone %s", groupID, zone)
	}
	return g, err
}

func checkBareMetal(s Server, g Group, field string) error {
	if s.Type == BareMetal && g.Stateful {
		return invalid(field, "constraint",
			"a stateful security group cannot be attached to a BareMetal server: %q is stateful, choose a stateless group", g.Name)
	}
	return nil
}

// moveServer puts a server into a group of the same zone, refusing a
// stateful group for a BareMetal server.
func (db *DB) moveServer(ctx context.Context, tx *txn, gen int64, orgID, zone, serverID, groupID, field string) error {
	s, err := findServer(ctx, tx, orgID, zone, serverID)
	if ErrorCode(err) == CodeNotFound {
		return invalid(field, "constraint", "server %s does not exist in zone %s", serverID, zone)
	}
	if err != nil {
		return err
	}
	g, err := db.groupForServer(ctx, tx, gen, orgID, zone, groupID, field)
	if err != nil {
		return err
	}
	if err := checkBareMetal(s, g, field); err != nil {
		return err
	}
	if s.SecurityGroup.ID == g.ID {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE servers SET security_group_id = ?, modified_at = ? WHERE id = ?`,
		g.ID, formatTime(db.Now()), s.ID); err != nil {
		return err
	}
	if err := db.touchGroup(ctx, tx, gen, s.SecurityGroup.ID); err != nil {
		return err
	}
	after := s
	after.SecurityGroup = ServerRef{ID: g.ID, Name: g.Name}
	for _, gid := range []string{s.SecurityGroup.ID, g.ID} {
		if err := db.record(ctx, tx, gen, change{org: orgID, zone: zone, group: gid, resource: ResourceServer, id: s.ID, action: "move", before: s, after: after}); err != nil {
			return err
		}
	}
	return db.touchGroup(ctx, tx, gen, g.ID)
}

// UpdateServer changes the fields of a server that patch sets, including
// the group it belongs to.
func (db *DB) UpdateServer(ctx context.Context, orgID, zone, id string, p ServerPatch) (Server, error) {
	if err := db.checkZone(zone); err != nil {
		return Server{}, err
	}
	var s Server
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		s, err = findServer(ctx, tx, orgID, zone, id)
		if err != nil {
			return err
		}
		before := s
		if p.Name != nil {
			s.Name = strings.TrimSpace(*p.Name)
		}
		if p.Type != nil {
			s.Type = *p.Type
		}
		if p.Local != nil {
			s.Local = *p.Local
		}
		if p.Tags != nil {
			s.Tags = *p.Tags
		}
		iface := s.Interface
		if p.Interface != nil {
			iface = *p.Interface
		}
		addrs := make([]string, len(s.Addresses))
		for i, a := range s.Addresses {
			addrs[i] = a.String()
		}
		if p.Addresses != nil {
			addrs = *p.Addresses
		}
		var fe fieldErrors
		checkServerFields(&fe, &s, iface, addrs)
		if err := fe.err(); err != nil {
			return err
		}
		if p.Host != nil {
			if s.PinnedHost, s.HostID, err = resolveHost(ctx, tx, orgID, strings.TrimSpace(*p.Host)); err != nil {
				return err
			}
		}
		// A binding made before grants (or under a grant since removed)
		// stays as it is; changing it needs a grant.
		if s.Interface != before.Interface || s.Local != before.Local || s.HostID != before.HostID {
			if err := checkBinding(ctx, tx, orgID, s.ID, s.HostID, s.Interface, s.Local); err != nil {
				return err
			}
		}
		groupID := s.SecurityGroup.ID
		field := "type"
		if p.SecurityGroupID != nil {
			groupID, field = *p.SecurityGroupID, "security_group"
			if groupID == "" {
				return invalid("security_group", "required", "a server always has a security group")
			}
		}
		g, err := db.groupForServer(ctx, tx, gen, orgID, zone, groupID, "security_group")
		if err != nil {
			return err
		}
		if err := checkBareMetal(s, g, field); err != nil {
			return err
		}
		s.ModifiedAt = db.Now().UTC()
		_, err = tx.ExecContext(ctx, `UPDATE servers SET name = ?, type = ?, interface = ?, addresses = ?, local = ?,
			tags = ?, security_group_id = ?, modified_at = ?, host_id = ? WHERE id = ?`,
			s.Name, s.Type, s.Interface, encodeList(s.Addresses), boolInt(s.Local), encodeList(s.Tags), g.ID,
			formatTime(s.ModifiedAt), s.PinnedHost, s.ID)
		if err != nil {
			return err
		}
		if s.Host, err = hostName(ctx, tx, s.HostID); err != nil {
			return err
		}
		if err := db.touchGroup(ctx, tx, gen, s.SecurityGroup.ID); err != nil {
			return err
		}
		groups := []string{g.ID}
		if g.ID != s.SecurityGroup.ID {
			if err := db.touchGroup(ctx, tx, gen, g.ID); err != nil {
				return err
			}
			groups = append(groups, s.SecurityGroup.ID)
		}
		s.SecurityGroup = ServerRef{ID: g.ID, Name: g.Name}
		for _, gid := range groups {
			if err := db.record(ctx, tx, gen, change{org: orgID, zone: zone, group: gid, resource: ResourceServer, id: s.ID, action: "update", before: before, after: s}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Server{}, fmt.Errorf("update server %s: %w", id, err)
	}
	return s, nil
}

// AddServer moves a server into group groupID, as the console's "Add a
// server" does; the server is named by field server_id.
func (db *DB) AddServer(ctx context.Context, orgID, zone, groupID, serverID string) (Server, error) {
	if err := db.checkZone(zone); err != nil {
		return Server{}, err
	}
	if strings.TrimSpace(serverID) == "" {
		return Server{}, invalid("server_id", "required", "choose a server")
	}
	var s Server
	err := db.change(ctx, func(tx *txn, gen int64) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		if err := db.moveServer(ctx, tx, gen, orgID, zone, serverID, groupID, "server_id"); err != nil {
			return err
		}
		var err error
		s, err = findServer(ctx, tx, orgID, zone, serverID)
		return err
	})
	if err != nil {
		return Server{}, fmt.Errorf("add server %s to group %s: %w", serverID, groupID, err)
	}
	return s, nil
}

// UnlinkServer moves a server from group groupID to the zone's
// organization default; a server already in the default, or not in that
// group, cannot be unlinked from it.
func (db *DB) UnlinkServer(ctx context.Context, orgID, zone, groupID, id string) (Server, error) {
	if err := db.checkZone(zone); err != nil {
		return Server{}, err
	}
	var s Server
	err := db.change(ctx, func(tx *txn, gen int64) error {
		cur, err := findServer(ctx, tx, orgID, zone, id)
		if err != nil {
			return err
		}
		if cur.SecurityGroup.ID != groupID {
			if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
				return err
			}
			return conflict("Server “%s” is not in this group.", cur.Name)
		}
		def, err := db.ensureDefaultGroup(ctx, tx, gen, orgID, zone)
		if err != nil {
			return err
		}
		if cur.SecurityGroup.ID == def.ID {
			return conflict("server %q is in the organization default group already: link it to another group instead", cur.Name)
		}
		if err := checkBareMetal(cur, def, "security_group"); err != nil {
			return err
		}
		if err := db.moveServer(ctx, tx, gen, orgID, zone, id, def.ID, "security_group"); err != nil {
			return err
		}
		s, err = findServer(ctx, tx, orgID, zone, id)
		return err
	})
	if err != nil {
		return Server{}, fmt.Errorf("unlink server %s: %w", id, err)
	}
	return s, nil
}

// DeleteServer removes a server and returns it as it was.
func (db *DB) DeleteServer(ctx context.Context, orgID, zone, id string) (Server, error) {
	if err := db.checkZone(zone); err != nil {
		return Server{}, err
	}
	var s Server
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		s, err = findServer(ctx, tx, orgID, zone, id)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM servers WHERE id = ?`, id); err != nil {
			return err
		}
		if err := db.record(ctx, tx, gen, change{org: orgID, zone: zone, group: s.SecurityGroup.ID, resource: ResourceServer, id: id, action: "delete", before: s}); err != nil {
			return err
		}
		return db.touchGroup(ctx, tx, gen, s.SecurityGroup.ID)
	})
	if err != nil {
		return Server{}, fmt.Errorf("delete server %s: %w", id, err)
	}
	return s, nil
}
