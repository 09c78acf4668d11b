package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// handleGroups handles "GET /security-groups".
func (con *console) handleGroups(c echo.Context) error {
	p := con.page(c, "Security groups", "groups")
	groups, err := con.allGroups(c.Request().Context(), consoleOrg(c), p.Zone)
	if err != nil {
		return err
	}
	rows := make([]views.GroupRow, len(groups))
	for i, g := range groups {
		state, reason := con.enf.GroupState(g.ID, g.Generation)
		rows[i] = views.GroupRow{Group: g, State: state, Reason: reason}
	}
	return con.renderHTML(c, http.StatusOK, views.GroupsPage(p, rows))
}

// handleGroupState handles "GET /security-groups/:id/state": the sync state
// badge, which polls itself.
func (con *console) handleGroupState(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	state, reason := con.enf.GroupState(g.ID, g.Generation)
	return con.renderHTML(c, http.StatusOK, views.StateBadge(g, state, reason))
}

// handleGroupNew handles "GET /security-groups/new".
func (con *console) handleGroupNew(c echo.Context) error {
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
	return con.renderHTML(c, status, views.CreateGroupPage(p, f, servers))
}

// handleGroupCreate handles "POST /security-groups/new" (and "POST
// /security-groups"): 303 to the new group, or the form again with the
// errors beside their fields.
func (con *console) handleGroupCreate(c echo.Context) error {
	p := con.page(c, "Create a security group", "groups")
	form, err := c.FormParams()
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "unreadable form")
	}
	f := views.GroupForm{
		Name: form.Get("name"), Description: form.Get("description"), Zone: form.Get("zone"),
		Inbound: form.Get("inbound_default_policy"), Outbound: form.Get("outbound_default_policy"),
		Stateful: checked(c, "stateful"), SMTPBlocked: checked(c, "smtp_blocked"), ServerIDs: form["servers"],
	}
	if !f.Validate(con.db.Zones) {
		return con.renderCreateGroup(c, http.StatusUnprocessableEntity, p, f)
	}
	g, err := con.db.CreateGroup(c.Request().Context(), consoleOrg(c), f.Zone, store.GroupInput{
		Name: f.Name, Description: f.Description, Stateful: f.Stateful,
		InboundDefaultPolicy: store.Policy(f.Inbound), OutboundDefaultPolicy: store.Policy(f.Outbound),
		EnableDefaultSecurity: f.SMTPBlocked, ServerIDs: f.ServerIDs,
	})
	if status, ok := refusal(err); ok {
		f.SetStoreError(err)
		return con.renderCreateGroup(c, status, p, f)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Security group “%s” created.", g.Name))
	return redirect(c, groupURL(g))
}

// groupDetail gathers the detail page of g.
func (con *console) groupDetail(c echo.Context, g store.Group) (views.GroupDetail, error) {
	ctx := c.Request().Context()
	state, reason := con.enf.GroupState(g.ID, g.Generation)
	servers, err := con.allServers(ctx, consoleOrg(c), g.Zone)
	if err != nil {
		return views.GroupDetail{}, err
	}
	d := views.GroupDetail{Group: g, State: state, Reason: reason, Overview: views.OverviewFormOf(g), NFT: con.enf.GroupText(g.ID)}
	for _, s := range servers {
		if s.SecurityGroup.ID == g.ID {
			d.Members = append(d.Members, s)
		} else {
			d.Candidates = append(d.Candidates, s)
		}
	}
	if d.Rules, err = con.rulesView(c, g); err != nil {
		return views.GroupDetail{}, err
	}
	if d.Events, err = con.db.Events(ctx, consoleOrg(c), g.Zone, g.ID, 50); err != nil {
		return views.GroupDetail{}, err
	}
	return d, nil
}

func (con *console) renderGroup(c echo.Context, status int, d views.GroupDetail) error {
	p := con.page(c, d.Group.Name, "groups")
	return con.renderHTML(c, status, views.GroupPage(p, d))
}

// handleGroupPage handles "GET /security-groups/:id".
func (con *console) handleGroupPage(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	d, err := con.groupDetail(c, g)
	if err != nil {
		return err
	}
	return con.renderGroup(c, http.StatusOK, d)
}

// handleGroupOverview handles "POST /security-groups/:id": name,
// description, stateful, default policies and Enable SMTP.
func (con *console) handleGroupOverview(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	f := views.OverviewForm{
		Name: c.FormValue("name"), Description: c.FormValue("description"),
		Inbound: c.FormValue("inbound_default_policy"), Outbound: c.FormValue("outbound_default_policy"),
		Stateful: checked(c, "stateful"), SMTPEnabled: checked(c, "smtp_enabled"),
	}
	status := http.StatusUnprocessableEntity
	if f.Validate() {
		in, out, smtpBlocked := store.Policy(f.Inbound), store.Policy(f.Outbound), !f.SMTPEnabled
		_, err = con.db.UpdateGroup(c.Request().Context(), consoleOrg(c), g.Zone, g.ID, store.GroupPatch{
			Name: &f.Name, Description: &f.Description, Stateful: &f.Stateful,
			InboundDefaultPolicy: &in, OutboundDefaultPolicy: &out, EnableDefaultSecurity: &smtpBlocked,
		})
		var ok bool
		if status, ok = refusal(err); !ok {
			if err != nil {
				return err
			}
			con.flash(c, "success", "Changes saved.")
			return redirect(c, groupURL(g))
		}
		f.SetStoreError(err)
	}
	d, err := con.groupDetail(c, g)
	if err != nil {
		return err
	}
	d.Overview = f
	return con.renderGroup(c, status, d)
}

// handleGroupDefault handles "POST /security-groups/:id/default".
func (con *console) handleGroupDefault(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	yes := true
	_, err = con.db.UpdateGroup(c.Request().Context(), consoleOrg(c), g.Zone, g.ID, store.GroupPatch{OrganizationDefault: &yes})
	if err != nil {
		return con.groupRefusal(c, g, err)
	}
	con.flash(c, "success", fmt.Sprintf("“%s” is now the organization default of %s: servers registered without a group get it.", g.Name, g.Zone))
	return redirect(c, groupURL(g))
}

// groupRefusal shows a refused change on the detail page; other errors go
// to the error handler.
func (con *console) groupRefusal(c echo.Context, g store.Group, err error) error {
	status, ok := refusal(err)
	if !ok {
		return err
	}
	d, derr := con.groupDetail(c, g)
	if derr != nil {
		return derr
	}
	p := con.page(c, g.Name, "groups")
	p.Flash = views.Flash{Kind: "error", Message: storeMessage(err)}
	return con.renderHTML(c, status, views.GroupPage(p, d))
}

// handleGroupDelete handles "POST /security-groups/:id/delete".
func (con *console) handleGroupDelete(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	err = con.db.DeleteGroup(c.Request().Context(), consoleOrg(c), g.Zone, g.ID)
	if status, ok := refusal(err); ok {
		d, derr := con.groupDetail(c, g)
		if derr != nil {
			return derr
		}
		d.DeleteMessage = storeMessage(err) + " Nothing was changed."
		return con.renderGroup(c, status, d)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Security group “%s” deleted.", g.Name))
	return redirect(c, "/security-groups?zone="+url.QueryEscape(g.Zone))
}

// handleGroupAddServer handles "POST /security-groups/:id/servers".
func (con *console) handleGroupAddServer(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	sid := strings.TrimSpace(c.FormValue("server_id"))
	status, msg := http.StatusUnprocessableEntity, "choose a server"
	if sid != "" {
		var s store.Server
		s, err = con.db.UpdateServer(c.Request().Context(), consoleOrg(c), g.Zone, sid, store.ServerPatch{SecurityGroupID: &g.ID})
		switch {
		case err == nil:
			con.flash(c, "success", fmt.Sprintf("Server “%s” now uses this group.", s.Name))
			return redirect(c, groupURL(g)+"#servers")
		case store.ErrorCode(err) == store.CodeNotFound:
			msg = "this server does not exist in " + g.Zone
		default:
			var ok bool
			if status, ok = refusal(err); !ok {
				return err
			}
			msg = storeMessage(err)
		}
	}
	d, err := con.groupDetail(c, g)
	if err != nil {
		return err
	}
	d.AddServerID, d.AddServerError = sid, msg
	return con.renderGroup(c, status, d)
}

// handleGroupUnlink handles "POST /security-groups/:id/servers/:server/unlink":
// the server moves to the organization default group.
func (con *console) handleGroupUnlink(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	ctx, org := c.Request().Context(), consoleOrg(c)
	cur, err := con.db.Server(ctx, org, g.Zone, c.Param("server"))
	if err != nil {
		return err
	}
	if cur.SecurityGroup.ID != g.ID {
		return con.groupRefusal(c, g, &store.Error{Code: store.CodeConflict,
			Message: fmt.Sprintf("Server “%s” is not in this group.", cur.Name)})
	}
	s, err := con.db.UnlinkServer(ctx, org, g.Zone, cur.ID)
	if err != nil {
		return con.groupRefusal(c, g, err)
	}
	con.flash(c, "info", fmt.Sprintf("Server “%s” was unlinked: it now uses the organization default group “%s”.",
		s.Name, s.SecurityGroup.Name))
	return redirect(c, groupURL(g)+"#servers")
}

// handleGroupNFT handles "GET /security-groups/:id/nft": the nftables
// preview section, which reloads itself after a rule change.
func (con *console) handleGroupNFT(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	if !isHX(c) {
		return redirect(c, groupURL(g)+"#nft")
	}
	return con.renderHTML(c, http.StatusOK, views.NFTSection(g, con.enf.GroupText(g.ID)))
}
