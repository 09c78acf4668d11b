package web

import (
	"context"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// logView reads the packet log section of g's page: the newest entries,
// filtered as the request's query asks (the section's GET form).
func (con *console) logView(c echo.Context, g store.Group, servers []store.Server) views.LogView {
	v := views.LogView{Group: g, Verdict: c.QueryParam("verdict"), IP: c.QueryParam("ip"), Servers: map[string]string{}}
	for _, s := range servers {
		v.Servers[s.ID] = s.Name
	}
	page, err := con.db.LogEntries(c.Request().Context(), consoleOrg(c), g.Zone, g.ID,
		store.LogQuery{Verdict: v.Verdict, IP: v.IP, PerPage: views.LogEntriesShown})
	switch {
	case refused(err):
		v.Errors, v.Message = views.ErrorsOf(err, views.LogFormFields...)
	case err != nil:
		con.srv.log.Error("console: read the packet log", "group", g.ID, "err", err)
		v.Message = "The packet log cannot be read now."
	default:
		v.Entries = page.Entries
		slices.Reverse(v.Entries) // newest first
	}
	return v
}

// handleLogPartial handles "GET /security-groups/:id/log": the packet
// log's rows, which poll themselves; without htmx, the page's section.
func (con *console) handleLogPartial(c echo.Context) error {
	ref := con.groupRef(c)
	if !isHX(c) {
		if _, err := con.db.Group(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID); err != nil {
			return err
		}
		q := c.Request().URL.Query()
		q.Del("zone")
		target := views.GroupURL(ref, "")
		if enc := q.Encode(); enc != "" {
			target += "&" + enc
		}
		return redirect(c, target+"#log")
	}
	g, err := con.db.Group(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID)
	if err != nil {
		return err
	}
	servers, err := con.allServers(c.Request().Context(), consoleOrg(c), g.Zone)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.LogEntries(con.logView(c, g, servers)))
}

// handleCountersPartial handles "GET /security-groups/:id/counters": the
// group's counters, which the Rules section polls and console.js copies
// into its cells; without htmx, the page's Rules section.
func (con *console) handleCountersPartial(c echo.Context) error {
	ref := con.groupRef(c)
	g, rules, counters, err := con.db.GroupRulesCounters(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID)
	if err != nil {
		return err
	}
	if !isHX(c) {
		return redirect(c, views.GroupURL(g, "")+"#rules")
	}
	ids := make([]string, len(rules))
	for i, r := range rules {
		ids[i] = r.ID
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, http.StatusOK, views.CountersData(views.CounterValues(counters, ids)))
}

// handleCountersResetForm handles "POST /security-groups/:id/counters/reset":
// the group's counters go back to zero on every host, audited.
func (con *console) handleCountersResetForm(c echo.Context) error {
	ref := con.groupRef(c)
	if err := con.srv.resetCounters(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID); err != nil {
		return err
	}
	con.flash(c, "success", "Counters reset: every rule of this group counts from zero again.")
	return redirect(c, views.GroupURL(ref, "")+"#rules")
}

// counterResetter is implemented by enforcers that hold kernels' counters
// (fleet.Console): they reset the kernel's they hold, and the store's.
type counterResetter interface {
	ResetGroupCounters(ctx context.Context, orgID, zone, groupID string) error
}

// resetCounters zeroes a group's counters on every host, audited: through
// the enforcer when it holds kernels' counters, else in the store alone.
func (s *Server) resetCounters(ctx context.Context, orgID, zone, groupID string) error {
	if r, ok := s.enf.(counterResetter); ok {
		return r.ResetGroupCounters(ctx, orgID, zone, groupID)
	}
	return s.db.ResetCounters(ctx, orgID, zone, groupID, "")
}
