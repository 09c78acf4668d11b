package store

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// GroupRef names a security group.
type GroupRef struct {
	ID   string
	Name string
}

// Columns of rules that name another object as their remote side. Their
// indexes are partial, holding only the rules that name one (the column
// not empty): a query repeats that condition, or SQLite, unable to prove
// it of a parameter, scans every rule.
const (
	colIPSet       = "ip_set_id"
	colRemoteGroup = "remote_security_group_id"
)

// referrers lists the groups with a rule whose column names id, but for
// the group except (a group may name itself), by name.
func referrers(ctx context.Context, tx *txn, column, id, except string) ([]GroupRef, error) {
	return queryAll(ctx, tx, func(sc scanner) (GroupRef, error) {
		var g GroupRef
		return g, sc.Scan(&g.ID, &g.Name)
	}, `SELECT DISTINCT g.id, g.name FROM rules r JOIN security_groups g ON g.id = r.group_id
		WHERE r.`+column+` = ? AND r.`+column+` <> '' AND r.group_id <> ? ORDER BY g.name, g.id`, id, except)
}

// inUse refuses to delete what rules of other groups name.
func inUse(what string, refs []GroupRef) error {
	if len(refs) == 0 {
		return nil
	}
	names := make([]string, len(refs))
	for i, g := range refs {
		names[i] = g.Name + " (" + g.ID + ")"
	}
	return conflict("%s is used by rules of security groups %s: change those rules first", what, strings.Join(names, ", "))
}

// touchReferrers moves to gen the generation of the groups with a rule
// whose column names id: what they enforce changed (the entries of a set,
// the servers of a group) though their rules did not, and their state
// must say so until it is applied. Their modification date stays.
func touchReferrers(ctx context.Context, tx *txn, gen int64, column, id string) error {
	_, err := tx.ExecContext(ctx, `UPDATE security_groups SET generation = ?
		WHERE id IN (SELECT group_id FROM rules WHERE `+column+` = ? AND `+column+` <> '')`, gen, id)
	return err
}

// fillRemotes fills snap.IPSets and snap.Members for the sets and groups
// that its rules name. Sets are read again only when their generation
// moved since prev (nil: all); unchanged sets and members keep prev's
// slices, so that the enforcer recognises them by identity. A set that
// cannot be read (or has gone) makes the groups using it unreadable: the
// marks are returned, by group, for markUnreadable's map.
func (snap *Snapshot) fillRemotes(ctx context.Context, tx *txn, prev *Snapshot) (map[string][]string, error) {
	sets, groups := map[string]bool{}, map[string]bool{}
	for _, rules := range snap.Rules {
		for _, r := range rules {
			if r.IPSetID != "" {
				sets[r.IPSetID] = true
			}
			if r.RemoteGroupID != "" {
				groups[r.RemoteGroupID] = true
			}
		}
	}
	snap.IPSets, snap.Members, snap.setGens = map[string][]netip.Prefix{}, map[string][]netip.Addr{}, map[string]int64{}
	bad := map[string]string{}
	if len(sets) > 0 {
		type idGen struct {
			id  string
			gen int64
		}
		ids := make([]any, 0, len(sets))
		for id := range sets {
			ids = append(ids, id)
		}
		var stale []any
		for i := 0; i < len(ids); i += 500 {
			chunk := ids[i:min(len(ids), i+500)]
			gens, err := queryAll(ctx, tx, func(sc scanner) (idGen, error) {
				var x idGen
				return x, sc.Scan(&x.id, &x.gen)
			}, `SELECT id, generation FROM ip_sets WHERE id IN (`+placeholders(len(chunk))+`)`, chunk...)
			if err != nil {
				return nil, err
			}
			for _, x := range gens {
				if prev != nil && prev.setGens[x.id] == x.gen {
					if entries, ok := prev.IPSets[x.id]; ok {
						snap.IPSets[x.id], snap.setGens[x.id] = entries, x.gen
						continue
					}
				}
				stale = append(stale, x.id)
			}
		}
		for i := 0; i < len(stale); i += 100 {
			chunk := stale[i:min(len(stale), i+100)]
			read, err := queryAll(ctx, tx, scanIPSet, `SELECT `+ipSetColumns+` FROM ip_sets WHERE id IN (`+placeholders(len(chunk))+`)`, chunk...)
			if err != nil {
				return nil, err
			}
			for _, s := range read {
				if s.Unreadable != "" {
					bad[s.ID] = s.Unreadable
					continue
				}
				snap.IPSets[s.ID], snap.setGens[s.ID] = s.Entries, s.Generation
			}
		}
		for id := range sets {
			if _, ok := snap.IPSets[id]; !ok && bad[id] == "" {
				bad[id] = "no such IP set"
			}
		}
	}
	if len(groups) > 0 {
		members := map[string][]netip.Addr{}
		for _, s := range snap.Servers {
			if groups[s.SecurityGroup.ID] {
				members[s.SecurityGroup.ID] = append(members[s.SecurityGroup.ID], s.Addresses...)
			}
		}
		for id := range groups {
			addrs := members[id]
			slices.SortFunc(addrs, netip.Addr.Compare) // IPv4 first
			addrs = slices.Compact(addrs)
			if addrs == nil {
				addrs = []netip.Addr{}
			}
			if prev != nil {
				if old, ok := prev.Members[id]; ok && slices.Equal(old, addrs) {
					addrs = old
				}
			}
			snap.Members[id] = addrs
		}
	}
	// Fail closed: a group whose rule names a set that cannot be read, or
	// a group that is gone, enforces nothing new.
	marks := map[string][]string{}
	known := make(map[string]bool, len(snap.Groups))
	for _, g := range snap.Groups {
		known[g.ID] = true
	}
	for gid, rules := range snap.Rules {
		for _, r := range rules {
			switch {
			case r.IPSetID != "" && bad[r.IPSetID] != "":
				marks[gid] = append(marks[gid], "rule "+r.ID+": IP set "+r.IPSetID+": "+bad[r.IPSetID])
			case r.RemoteGroupID != "" && !known[r.RemoteGroupID]:
				marks[gid] = append(marks[gid], "rule "+r.ID+": no such security group "+r.RemoteGroupID)
			}
		}
	}
	return marks, nil
}

// addMarks adds marks to snap.Unreadable without writing into slices it
// may share with an earlier snapshot.
func (snap *Snapshot) addMarks(marks map[string][]string) {
	snap.remoteMarks = marks
	for gid, m := range marks {
		snap.Unreadable[gid] = append(slices.Clip(snap.Unreadable[gid]), m...)
	}
}

// RemoteChoices are what the rules of a group may name: the
// organization's IP sets and groups of the zone, by name.
type RemoteChoices struct {
	IPSets []GroupRef // IDs and names of IP sets
	Groups []GroupRef
}

// Name returns the name of the set or group with id, or "".
func (c RemoteChoices) Name(id string) string {
	for _, list := range [][]GroupRef{c.IPSets, c.Groups} {
		for _, x := range list {
			if x.ID == id {
				return x.Name
			}
		}
	}
	return ""
}

func findRemoteChoices(ctx context.Context, tx *txn, orgID, zone string) (RemoteChoices, error) {
	scan := func(sc scanner) (GroupRef, error) {
		var g GroupRef
		return g, sc.Scan(&g.ID, &g.Name)
	}
	var c RemoteChoices
	var err error
	if c.IPSets, err = queryAll(ctx, tx, scan, `SELECT id, name FROM ip_sets WHERE organization_id = ? AND zone = ? ORDER BY name, id`, orgID, zone); err != nil {
		return c, err
	}
	c.Groups, err = queryAll(ctx, tx, scan, `SELECT id, name FROM security_groups WHERE organization_id = ? AND zone = ? ORDER BY name, id`, orgID, zone)
	return c, err
}

// Remotes are the contents of what rules name: the entries of IP sets and
// the addresses of the servers of groups, by ID, as in a Snapshot.
type Remotes struct {
	IPSets  map[string][]netip.Prefix
	Members map[string][]netip.Addr
}

// RemotesOf reads the contents of the IP sets and groups that rules name
// (rules read with their group; a set or group changed since moves the
// group's generation). A set that cannot be read, or is gone, is absent:
// its rules match nothing, as the enforcer fails such a group closed.
func (db *DB) RemotesOf(ctx context.Context, rules []Rule) (Remotes, error) {
	snap := Snapshot{Rules: map[string][]Rule{"": rules}}
	var groups []any
	seen := map[string]bool{}
	for _, r := range rules {
		if r.RemoteGroupID != "" && !seen[r.RemoteGroupID] {
			seen[r.RemoteGroupID] = true
			groups = append(groups, r.RemoteGroupID)
			snap.Groups = append(snap.Groups, Group{ID: r.RemoteGroupID})
		}
		if r.IPSetID != "" {
			seen[r.IPSetID] = true
		}
	}
	if len(seen) == 0 {
		return Remotes{IPSets: map[string][]netip.Prefix{}, Members: map[string][]netip.Addr{}}, nil
	}
	err := db.read(ctx, func(tx *txn) error {
		if len(groups) > 0 {
			var err error
			snap.Servers, err = queryAll(ctx, tx, scanServer, `SELECT `+serverColumns+serverFrom+`
				WHERE s.security_group_id IN (`+placeholders(len(groups))+`)`, groups...)
			if err != nil {
				return err
			}
		}
		_, err := snap.fillRemotes(ctx, tx, nil)
		return err
	})
	if err != nil {
		return Remotes{}, fmt.Errorf("contents of IP sets and groups: %w", err)
	}
	return Remotes{IPSets: snap.IPSets, Members: snap.Members}, nil
}
