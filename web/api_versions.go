package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
)

// headerConfirmWithin asks that a change to a group roll back unless it is
// confirmed within that many seconds.
const headerConfirmWithin = "X-Rampart-Confirm-Within"

// ctxPending is where confirmWithin leaves the pending state its change
// writes.
const ctxPending = "api.pending"

// confirmable lists the routes whose change may carry
// X-Rampart-Confirm-Within: the changes of one existing group. A new group
// has nothing to roll back to, and a deleted one nothing to restore.
var confirmable = map[string]bool{
	http.MethodPatch + " /instance/v1/zones/:zone/security_groups/:id":                   true,
	http.MethodPut + " /instance/v1/zones/:zone/security_groups/:id":                     true,
	http.MethodPost + " /instance/v1/zones/:zone/security_groups/:id/rules":              true,
	http.MethodPut + " /instance/v1/zones/:zone/security_groups/:id/rules":               true,
	http.MethodPatch + " /instance/v1/zones/:zone/security_groups/:id/rules/:rule":       true,
	http.MethodDelete + " /instance/v1/zones/:zone/security_groups/:id/rules/:rule":      true,
	http.MethodPost + " /instance/v1/zones/:zone/security_groups/:id/versions/:n/revert": true,
	http.MethodPut + " /security_groups/:id":                                             true,
	http.MethodPatch + " /security_groups/:id":                                           true,
}

// confirmWithin reads X-Rampart-Confirm-Within: the change the request
// makes to its group then waits for POST …/confirm, and the server rolls
// it back past the deadline. The answer carries the pending version and
// its deadline in X-Rampart-Pending-Version and X-Rampart-Confirm-Deadline
// (and a group's answer in pending_confirmation). The header on a request
// that is not such a change is refused rather than ignored: a client that
// believes it has a way back must have one.
func (s *Server) confirmWithin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(headerConfirmWithin)
		if h == "" {
			return next(c)
		}
		if !confirmable[c.Request().Method+" "+c.Path()] {
			return renameField(store.ConfirmOutOfPlace(c.Request().Method+" "+c.Path()), "confirm_within", headerConfirmWithin)
		}
		within, err := store.ParseConfirmWithin(h)
		if err != nil {
			return renameField(err, "confirm_within", headerConfirmWithin)
		}
		ctx, p := store.WithConfirmation(c.Request().Context(), c.Param("id"), within)
		c.SetRequest(c.Request().WithContext(ctx))
		c.Set(ctxPending, p)
		c.Response().Before(func() {
			if p.Version != 0 {
				h := c.Response().Header()
				h.Set("X-Rampart-Pending-Version", strconv.Itoa(p.Version))
				h.Set("X-Rampart-Confirm-Deadline", p.Deadline.UTC().Format(time.RFC3339Nano))
			}
		})
		return next(c)
	}
}

// pendingOf is the pending state the request's change wrote, if any.
func pendingOf(c echo.Context) *store.PendingConfirmation {
	p, _ := c.Get(ctxPending).(*store.PendingConfirmation)
	if p == nil || p.Version == 0 {
		return nil
	}
	return p
}

type versionJSON struct {
	Version    int    `json:"version"`
	CreatedAt  string `json:"created_at"`
	Actor      string `json:"actor"`
	Summary    string `json:"summary"`
	Generation int64  `json:"generation"`
}

func versionToJSON(v store.VersionInfo) versionJSON {
	return versionJSON{Version: v.Version, CreatedAt: scwTime(v.CreatedAt), Actor: v.Actor, Summary: v.Summary, Generation: v.Generation}
}

// versionGroupJSON is a group's settings and servers as a version holds
// them, under the API's names.
type versionGroupJSON struct {
	ID                    string    `json:"id"`
	Name                  string    `json:"name"`
	Description           string    `json:"description"`
	Tags                  []string  `json:"tags"`
	Stateful              bool      `json:"stateful"`
	InboundDefaultPolicy  string    `json:"inbound_default_policy"`
	OutboundDefaultPolicy string    `json:"outbound_default_policy"`
	EnableDefaultSecurity bool      `json:"enable_default_security"`
	OrganizationDefault   bool      `json:"organization_default"`
	ProjectDefault        bool      `json:"project_default"`
	Servers               []refJSON `json:"servers"`
	Zone                  string    `json:"zone"`
}

func versionGroupToJSON(v store.GroupVersion, zone string) versionGroupJSON {
	st := v.Settings
	servers := make([]refJSON, len(v.Servers))
	for i, r := range v.Servers {
		servers[i] = refJSON(r)
	}
	return versionGroupJSON{ID: v.GroupID, Name: st.Name, Description: st.Description, Tags: st.Tags, Stateful: st.Stateful,
		InboundDefaultPolicy: string(st.InboundDefaultPolicy), OutboundDefaultPolicy: string(st.OutboundDefaultPolicy),
		EnableDefaultSecurity: !st.SMTPEnabled, OrganizationDefault: st.OrganizationDefault, ProjectDefault: st.OrganizationDefault,
		Servers: servers, Zone: zone}
}

func rulesToJSON(rules []store.Rule, zone string) []ruleJSON {
	out := make([]ruleJSON, len(rules))
	for i, r := range rules {
		out[i] = ruleToJSON(r, zone)
	}
	return out
}

// queryVersion reads the :n of a version route.
func queryVersion(c echo.Context) (int, error) {
	n, err := strconv.Atoi(c.Param("n"))
	if err != nil || n < 1 {
		return 0, &store.Error{Code: store.CodeNotFound, Message: "resource is not found", Resource: store.ResourceVersion, ResourceID: c.Param("n")}
	}
	return n, nil
}

// handleVersionList handles "GET /instance/v1/zones/:zone/security_groups/:id/versions":
// the group's versions, newest first.
func (s *Server) handleVersionList(c echo.Context) error {
	page, err := queryPage(c)
	if err != nil {
		return err
	}
	infos, total, err := s.db.Versions(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), page)
	if err != nil {
		return err
	}
	out := make([]versionJSON, len(infos))
	for i, v := range infos {
		out[i] = versionToJSON(v)
	}
	return list(c, "versions", out, total)
}

// handleVersionGet handles "GET /instance/v1/zones/:zone/security_groups/:id/versions/:n":
// the group and its rules as they were.
func (s *Server) handleVersionGet(c echo.Context) error {
	n, err := queryVersion(c)
	if err != nil {
		return err
	}
	v, err := s.db.Version(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), n)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"version": versionToJSON(v.VersionInfo), "security_group": versionGroupToJSON(v, zoneOf(c)),
		"rules": rulesToJSON(v.Rules, zoneOf(c)),
	})
}

type settingChangeJSON struct {
	Field  string `json:"field"`
	Before any    `json:"before"`
	After  any    `json:"after"`
}

type ruleChangeJSON struct {
	ID     string   `json:"id"`
	Fields []string `json:"fields"`
	Before ruleJSON `json:"before"`
	After  ruleJSON `json:"after"`
}

type ruleMoveJSON struct {
	ID   string `json:"id"`
	From int    `json:"from"`
	To   int    `json:"to"`
}

type diffLineJSON struct {
	Op   string `json:"op"` // " ", "-" or "+"
	Text string `json:"text"`
}

// settingToJSON names a setting change as the API names the field:
// Scaleway's enable_default_security is the opposite of smtp_enabled.
func settingToJSON(sc store.SettingChange) settingChangeJSON {
	if sc.Field == "smtp_enabled" {
		b, _ := sc.Before.(bool)
		a, _ := sc.After.(bool)
		return settingChangeJSON{Field: "enable_default_security", Before: !b, After: !a}
	}
	return settingChangeJSON{Field: sc.Field, Before: sc.Before, After: sc.After}
}

// handleVersionDiff handles "GET /instance/v1/zones/:zone/security_groups/:id/versions/:n/diff?against=m":
// what changed from version m (by default the one before n) to version n.
func (s *Server) handleVersionDiff(c echo.Context) error {
	n, err := queryVersion(c)
	if err != nil {
		return err
	}
	against := 0
	if v := c.QueryParam("against"); v != "" {
		if against, err = strconv.Atoi(v); err != nil {
			against = -1 // the store names what a version is
		}
	}
	cmp, err := s.db.CompareVersions(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), n, against)
	if err != nil {
		return err
	}
	d, zone := cmp.Diff, zoneOf(c)
	settings := make([]settingChangeJSON, len(d.Settings))
	for i, sc := range d.Settings {
		settings[i] = settingToJSON(sc)
	}
	changed := make([]ruleChangeJSON, len(d.Changed))
	for i, rc := range d.Changed {
		changed[i] = ruleChangeJSON{ID: rc.After.ID, Fields: rc.Fields, Before: ruleToJSON(rc.Before, zone), After: ruleToJSON(rc.After, zone)}
	}
	moved := make([]ruleMoveJSON, len(d.Moved))
	for i, m := range d.Moved {
		moved[i] = ruleMoveJSON{ID: m.Rule.ID, From: m.From, To: m.To}
	}
	refs := func(list []store.ServerRef) []refJSON {
		out := make([]refJSON, len(list))
		for i, r := range list {
			out[i] = refJSON(r)
		}
		return out
	}
	lines := make([]diffLineJSON, len(d.Lines))
	for i, l := range d.Lines {
		lines[i] = diffLineJSON{Op: string(l.Op), Text: l.Text}
	}
	return c.JSON(http.StatusOK, map[string]any{"diff": map[string]any{
		"from": cmp.From.Version, "to": cmp.To.Version, "settings": settings,
		"rules": map[string]any{
			"added": rulesToJSON(d.Added, zone), "removed": rulesToJSON(d.Removed, zone),
			"changed": changed, "moved": moved,
		},
		"servers": map[string]any{"joined": refs(d.Joined), "left": refs(d.Left)},
		"lines":   lines,
	}})
}

// handleVersionRevert handles "POST /instance/v1/zones/:zone/security_groups/:id/versions/:n/revert":
// the group's settings and rules as version n holds them, in one change.
func (s *Server) handleVersionRevert(c echo.Context) error {
	n, err := queryVersion(c)
	if err != nil {
		return err
	}
	g, rules, err := s.db.RevertGroup(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), n)
	if err != nil {
		return err
	}
	if p := pendingOf(c); p != nil {
		g.Pending = p
	}
	out, err := s.rulesJSON(c, rules)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"security_group": s.groupJSON(g), "rules": out})
}

// handleGroupConfirm handles "POST /instance/v1/zones/:zone/security_groups/:id/confirm":
// the change that awaits confirmation stays. An optional body
// {"version": N} makes sure it is that change.
func (s *Server) handleGroupConfirm(c echo.Context) error {
	var b struct {
		Version *int `json:"version"`
	}
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	g, err := s.db.ConfirmGroup(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), deref(b.Version))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"security_group": s.groupJSON(g)})
}
