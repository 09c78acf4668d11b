package views

import "github.com/rampart-fw/rampart/store"

// Labels: how the console names the store's values to a person.

func stateLabel(state store.SyncState) string {
	switch state {
	case store.Available:
		return "In sync"
	case store.SyncingError:
		return "Sync error"
	default:
		return "Syncing"
	}
}

func policyLabel(p store.Policy) string {
	if p == store.Drop {
		return "Drop"
	}
	return "Accept"
}

func serverTypeLabel(t store.ServerType) string {
	if t == store.BareMetal {
		return "BareMetal"
	}
	return "Instance"
}

// eventLabel names an audit entry: "rule update", "server move".
func eventLabel(e store.Event) string {
	kind := map[string]string{store.ResourceGroup: "group", store.ResourceRule: "rule", store.ResourceServer: "server"}[e.Resource]
	if kind == "" {
		kind = e.Resource
	}
	switch e.Action {
	case "set_rules":
		return "all rules replaced"
	case "apply_draft":
		return "reviewed draft applied"
	case "revert":
		return "reverted to an earlier version"
	case "rollback":
		return "rolled back: not confirmed in time"
	case "confirm":
		return "change confirmed"
	case store.ActionResetCounters:
		return "counters reset"
	}
	return kind + " " + e.Action
}

// groupOptionLabel names a group in a select: "web (fr-par-1, stateful)".
func groupOptionLabel(g store.Group) string {
	mode := "stateless"
	if g.Stateful {
		mode = "stateful"
	}
	return g.Name + " (" + g.Zone + ", " + mode + ")"
}

func serverInterface(s store.Server) string {
	if s.Local {
		return "this host"
	}
	return s.Interface
}

func addressList(s store.Server) string {
	out := ""
	for i, a := range s.Addresses {
		if i > 0 {
			out += ", "
		}
		out += a.String()
	}
	return out
}

func orgName(orgs []store.Organization, id string) string {
	for _, o := range orgs {
		if o.ID == id {
			return o.Name
		}
	}
	return id
}

func joinComma(list []string) string {
	out := ""
	for i, s := range list {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

func hostLabel(name string) string {
	if name == "" {
		return "every host"
	}
	return name
}

// entryLines is an IP set's entries as the form shows them.
func entryLines(s store.IPSet) string {
	out := make([]byte, 0, 20*len(s.Entries))
	for _, p := range s.Entries {
		out = append(out, store.FormatIPRange(p)...)
		out = append(out, '\n')
	}
	return string(out)
}
