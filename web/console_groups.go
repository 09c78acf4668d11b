package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// handleGroupsPage handles "GET /security-groups".
func (con *console) handleGroupsPage(c echo.Context) error {
	p := con.page(c, "Security groups", "groups")
	groups, err := con.allGroups(c.Request().Context(), consoleOrg(c), p.Zone)
	if err != nil {
		return err
	}
	rows := make([]views.GroupRow, len(groups))
	for i, g := range groups {
		rows[i] = con.groupRow(g)
		rows[i].Findings, rows[i].FindingsNote = con.findingCount(c.Request().Context(), consoleOrg(c), g)
	}
	return render(c, http.StatusOK, views.GroupsPage(p, rows))
}

// handleGroupStatesPartial handles "GET /security-groups/states": the
// list's poll. It answers the badges of the groups that changed since the
// generation the list showed, of those that were not in sync, and of
// those that are not now, and the next poll's parameters.
func (con *console) handleGroupStatesPartial(c echo.Context) error {
	since, err := strconv.ParseInt(c.QueryParam("since"), 10, 64)
	if err != nil {
		return store.Invalid("since", "format", "since must be a generation")
	}
	pending := map[string]bool{}
	all := c.QueryParam("pending") == "*"
	for _, id := range strings.Split(c.QueryParam("pending"), ",") {
		pending[id] = true
	}
	groups, err := con.allGroups(c.Request().Context(), consoleOrg(c), con.zone(c))
	if err != nil {
		return err
	}
	rows := make([]views.GroupRow, len(groups))
	var changed []views.GroupRow
	for i, g := range groups {
		rows[i] = con.groupRow(g)
		if all || pending[g.ID] || g.Generation > since || rows[i].State != store.Available {
			changed = append(changed, rows[i])
		}
	}
	return render(c, http.StatusOK, views.GroupStates(con.zone(c), changed, rows))
}

// groupRow is g's line of the list, with its sync state.
func (con *console) groupRow(g store.Group) views.GroupRow {
	state, reason := con.enf.GroupState(g.ID, g.Generation)
	return views.GroupRow{Group: g, State: state, Reason: reason}
}

// handleGroupStatePartial handles "GET /security-groups/:id/state": the
// sync state badge, which polls itself.
func (con *console) handleGroupStatePartial(c echo.Context) error {
	g, err := con.db.Group(c.Request().Context(), consoleOrg(c), con.zone(c), c.Param("id"))
	if err != nil {
		return err
	}
	state, reason := con.enf.GroupState(g.ID, g.Generation)
	return render(c, http.StatusOK, views.StateBadge(g, state, reason))
}

// handleGroupNewPage handles "GET /security-groups/new".
func (con *console) handleGroupNewPage(c echo.Context) error {
	p := con.page(c, "Create a security group", "groups")
	return con.renderCreateGroup(c, http.StatusOK, p, views.NewGroupForm(p.Zone))
}

func (con *console) renderCreateGroup(c echo.Context, status int, p views.Page, f views.GroupForm) error {
	var servers []store.Server
	if con.db.HasZone(f.Zone) {
		var err error
		if servers, err = con.allServers(c.Request().Context(), consoleOrg(c), f.Zone); err != nil {
			return err
		}
	}
	return render(c, status, views.CreateGroupPage(p, f, servers))
}

// handleGroupNewForm handles "POST /security-groups/new" (and "POST
// /security-groups"): 303 to the new group, or the form again with the
// store's errors beside their fields.
func (con *console) handleGroupNewForm(c echo.Context) error {
	form, err := c.FormParams()
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "unreadable form")
	}
	f := views.GroupForm{
		Name: form.Get("name"), Description: form.Get("description"), Zone: form.Get("zone"),
		Inbound: form.Get("inbound_default_policy"), Outbound: form.Get("outbound_default_policy"),
		Stateful: checked(c, "stateful"), SMTPEnabled: checked(c, "smtp_enabled"), ServerIDs: form["servers"],
	}
	g, err := con.db.CreateGroup(c.Request().Context(), consoleOrg(c), f.Zone, store.GroupInput{
		Name: f.Name, Description: f.Description, Stateful: f.Stateful,
		InboundDefaultPolicy: store.Policy(f.Inbound), OutboundDefaultPolicy: store.Policy(f.Outbound),
		SMTPEnabled: f.SMTPEnabled, ServerIDs: f.ServerIDs,
	})
	if refused(err) || store.ErrorCode(err) == store.CodeNotFound {
		f.Errors, f.Message = views.ErrorsOf(err, views.GroupFormFields...)
		p := con.page(c, "Create a security group", "groups")
		return con.renderCreateGroup(c, formStatus(err), p, f)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Security group “%s” created.", g.Name))
	return redirect(c, views.GroupURL(g, ""))
}

// detail turns what the store read for a group's page into the page.
func (con *console) detail(c echo.Context, sd store.GroupDetail) views.GroupDetail {
	g := sd.Group
	state, reason := con.enf.GroupState(g.ID, g.Generation)
	d := views.GroupDetail{Group: g, State: state, Reason: reason, Overview: views.OverviewFormOf(g),
		NFT: con.enf.GroupText(g.ID), Events: sd.Events, Versions: sd.Versions}
	for _, s := range sd.Servers {
		if s.SecurityGroup.ID == g.ID {
			d.Members = append(d.Members, s)
		} else {
			d.Candidates = append(d.Candidates, s)
		}
	}
	d.Rules = con.rulesView(c, g, sd.Rules, sd.Choices, sd.Counters)
	if f := con.srv.cfg.Fleet; f != nil {
		d.Hosts = f.GroupHosts(g.ID, g.Generation)
	}
	d.Tester = views.GroupTester{Group: g, CSRF: csrfToken(c), Form: views.NewTesterForm()}
	d.Log = con.logView(c, g, sd.Servers)
	return d
}

// groupDetail reads the detail page of the group of the request's :id.
func (con *console) groupDetail(c echo.Context) (views.GroupDetail, error) {
	id := c.Param("id")
	sd, err := inZones(con, c, func(ctx context.Context, org, zone string) (store.GroupDetail, error) {
		return con.db.GroupDetail(ctx, org, zone, id, 50)
	})
	if err != nil {
		return views.GroupDetail{}, err
	}
	return con.detail(c, sd), nil
}

func (con *console) renderGroup(c echo.Context, status int, d views.GroupDetail) error {
	p := con.page(c, d.Group.Name, "groups")
	return render(c, status, views.GroupPage(p, d))
}

// handleGroupPage handles "GET /security-groups/:id".
func (con *console) handleGroupPage(c echo.Context) error {
	d, err := con.groupDetail(c)
	if err != nil {
		return err
	}
	return con.renderGroup(c, http.StatusOK, d)
}

// refusedOnPage answers a refused change with the group's page, its
// message where edit puts it.
func (con *console) refusedOnPage(c echo.Context, err error, edit func(*views.GroupDetail)) error {
	d, derr := con.groupDetail(c)
	if derr != nil {
		return derr
	}
	edit(&d)
	return con.renderGroup(c, formStatus(err), d)
}

// groupRef is the group a change is about, as the request names it.
func (con *console) groupRef(c echo.Context) store.Group {
	return store.Group{ID: c.Param("id"), Zone: con.zone(c)}
}

// handleGroupOverviewForm handles "POST /security-groups/:id": name,
// description, stateful, default policies and Enable SMTP.
func (con *console) handleGroupOverviewForm(c echo.Context) error {
	ref := con.groupRef(c)
	f := views.OverviewForm{
		Name: c.FormValue("name"), Description: c.FormValue("description"),
		Inbound: c.FormValue("inbound_default_policy"), Outbound: c.FormValue("outbound_default_policy"),
		Stateful: checked(c, "stateful"), SMTPEnabled: checked(c, "smtp_enabled"), LogDefaultDrops: checked(c, "log_default_drops"),
	}
	in, out := store.Policy(f.Inbound), store.Policy(f.Outbound)
	var err error
	f.Confirm, err = withConfirm(c, ref.ID)
	if err == nil {
		_, err = con.db.UpdateGroup(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, store.GroupPatch{
			Name: &f.Name, Description: &f.Description, Stateful: &f.Stateful,
			InboundDefaultPolicy: &in, OutboundDefaultPolicy: &out, SMTPEnabled: &f.SMTPEnabled,
			LogDefaultDrops: &f.LogDefaultDrops,
		})
	}
	if refused(err) {
		f.Errors, f.Message = views.ErrorsOf(err, views.OverviewFormFields...)
		return con.refusedOnPage(c, err, func(d *views.GroupDetail) { d.Overview = f })
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", "Changes saved."+confirmNote(f.Confirm))
	return redirect(c, views.GroupURL(ref, ""))
}

// handleGroupDefaultForm handles "POST /security-groups/:id/default".
func (con *console) handleGroupDefaultForm(c echo.Context) error {
	ref, yes := con.groupRef(c), true
	g, err := con.db.UpdateGroup(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, store.GroupPatch{OrganizationDefault: &yes})
	if refused(err) {
		return con.refusedWithFlash(c, err)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("“%s” is now the organization default of %s: servers registered without a group get it.", g.Name, g.Zone))
	return redirect(c, views.GroupURL(g, ""))
}

// refusedWithFlash shows a refused change on the group's page, at the top.
func (con *console) refusedWithFlash(c echo.Context, err error) error {
	d, derr := con.groupDetail(c)
	if derr != nil {
		return derr
	}
	p := con.page(c, d.Group.Name, "groups")
	p.Flash = views.Flash{Kind: "error", Message: storeMessage(err)}
	return render(c, formStatus(err), views.GroupPage(p, d))
}

// handleGroupDeleteForm handles "POST /security-groups/:id/delete".
func (con *console) handleGroupDeleteForm(c echo.Context) error {
	ref := con.groupRef(c)
	g, err := con.db.DeleteGroup(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID)
	if refused(err) {
		return con.refusedOnPage(c, err, func(d *views.GroupDetail) {
			d.DeleteMessage = storeMessage(err) + " Nothing was changed."
		})
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Security group “%s” deleted.", g.Name))
	return redirect(c, "/security-groups?zone="+url.QueryEscape(g.Zone))
}

// handleGroupAddServerForm handles "POST /security-groups/:id/servers".
func (con *console) handleGroupAddServerForm(c echo.Context) error {
	ref := con.groupRef(c)
	sid := strings.TrimSpace(c.FormValue("server_id"))
	s, err := con.db.AddServer(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, sid)
	if refused(err) {
		return con.refusedOnPage(c, err, func(d *views.GroupDetail) {
			d.AddServerID, d.AddServerError = sid, storeMessage(err)
		})
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Server “%s” now uses this group.", s.Name))
	return redirect(c, views.GroupURL(ref, "")+"#servers")
}

// handleGroupUnlinkForm handles "POST /security-groups/:id/servers/:server/unlink":
// the server moves to the organization default group.
func (con *console) handleGroupUnlinkForm(c echo.Context) error {
	ref := con.groupRef(c)
	s, err := con.db.UnlinkServer(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, c.Param("server"))
	if refused(err) {
		return con.refusedWithFlash(c, err)
	}
	if err != nil {
		return err
	}
	con.flash(c, "info", fmt.Sprintf("Server “%s” was unlinked: it now uses the organization default group “%s”.",
		s.Name, s.SecurityGroup.Name))
	return redirect(c, views.GroupURL(ref, "")+"#servers")
}

// handleGroupNFTPartial handles "GET /security-groups/:id/nft": the
// nftables preview section, which reloads itself after a rule change.
func (con *console) handleGroupNFTPartial(c echo.Context) error {
	ref := con.groupRef(c)
	g, err := con.db.Group(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID)
	if err != nil {
		return err
	}
	if !isHX(c) {
		return redirect(c, views.GroupURL(ref, "")+"#nft")
	}
	return render(c, http.StatusOK, views.NFTSection(g, con.enf.GroupText(g.ID)))
}
