package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

func serverForm(c echo.Context) views.ServerForm {
	return views.ServerForm{
		Name: c.FormValue("name"), Zone: c.FormValue("zone"), Type: c.FormValue("type"),
		Interface: strings.TrimSpace(c.FormValue("interface")), Addresses: c.FormValue("addresses"),
		Local: checked(c, "local"), SecurityGroup: c.FormValue("security_group"),
	}
}

// groupsOfZones lists the groups a server may join, from every zone (the
// store refuses a group of another zone, beside the field).
func (con *console) groupsOfZones(ctx context.Context, org string, zones ...string) ([]store.Group, error) {
	var all []store.Group
	for _, z := range zones {
		g, err := con.allGroups(ctx, org, z)
		if err != nil {
			return nil, err
		}
		all = append(all, g...)
	}
	return all, nil
}

func (con *console) renderServers(c echo.Context, status int, f views.ServerForm) error {
	p := con.page(c, "Servers", "servers")
	ctx, org := c.Request().Context(), consoleOrg(c)
	servers, err := con.allServers(ctx, org, p.Zone)
	if err != nil {
		return err
	}
	groups, err := con.groupsOfZones(ctx, org, con.db.Zones...)
	if err != nil {
		return err
	}
	return con.renderHTML(c, status, views.ServersPage(p, servers, f, groups))
}

// handleServers handles "GET /servers".
func (con *console) handleServers(c echo.Context) error {
	p, _ := c.Get(ctxPage).(views.Page)
	return con.renderServers(c, http.StatusOK, views.ServerForm{Zone: p.Zone, Type: string(store.Instance)})
}

// handleServerRegister handles "POST /servers".
func (con *console) handleServerRegister(c echo.Context) error {
	f := serverForm(c)
	if !f.Validate(con.db.Zones) {
		return con.renderServers(c, http.StatusUnprocessableEntity, f)
	}
	s, err := con.db.CreateServer(c.Request().Context(), consoleOrg(c), f.Zone, store.ServerInput{
		Name: f.Name, Type: store.ServerType(f.Type), Interface: f.Interface, Addresses: f.AddressList(),
		Local: f.Local, SecurityGroupID: f.SecurityGroup,
	})
	if status, ok := refusal(err); ok {
		f.SetStoreError(err)
		return con.renderServers(c, status, f)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Server “%s” registered in group “%s”.", s.Name, s.SecurityGroup.Name))
	return redirect(c, "/servers?zone="+url.QueryEscape(s.Zone))
}

func (con *console) server(c echo.Context) (store.Server, error) {
	id := c.Param("server")
	return inZones(con, c, func(ctx context.Context, org, zone string) (store.Server, error) {
		return con.db.Server(ctx, org, zone, id)
	})
}

func (con *console) renderServer(c echo.Context, status int, f views.ServerForm) error {
	p := con.page(c, f.Name, "servers")
	groups, err := con.groupsOfZones(c.Request().Context(), consoleOrg(c), f.Zone)
	if err != nil {
		return err
	}
	return con.renderHTML(c, status, views.ServerPage(p, f, groups))
}

// handleServerPage handles "GET /servers/:server".
func (con *console) handleServerPage(c echo.Context) error {
	s, err := con.server(c)
	if err != nil {
		return err
	}
	return con.renderServer(c, http.StatusOK, views.ServerFormOf(s))
}

// handleServerEdit handles "POST /servers/:server".
func (con *console) handleServerEdit(c echo.Context) error {
	s, err := con.server(c)
	if err != nil {
		return err
	}
	f := serverForm(c)
	f.ID, f.Zone = s.ID, s.Zone
	if !f.Validate(con.db.Zones) {
		return con.renderServer(c, http.StatusUnprocessableEntity, f)
	}
	typ, addrs := store.ServerType(f.Type), f.AddressList()
	patch := store.ServerPatch{Name: &f.Name, Type: &typ, Interface: &f.Interface, Addresses: &addrs, Local: &f.Local}
	if f.SecurityGroup != "" {
		patch.SecurityGroupID = &f.SecurityGroup
	}
	_, err = con.db.UpdateServer(c.Request().Context(), consoleOrg(c), s.Zone, s.ID, patch)
	if status, ok := refusal(err); ok {
		f.SetStoreError(err)
		return con.renderServer(c, status, f)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Server “%s” saved.", f.Name))
	return redirect(c, "/servers?zone="+url.QueryEscape(s.Zone))
}

// handleServerRemove handles "POST /servers/:server/delete".
func (con *console) handleServerRemove(c echo.Context) error {
	s, err := con.server(c)
	if err != nil {
		return err
	}
	if err := con.db.DeleteServer(c.Request().Context(), consoleOrg(c), s.Zone, s.ID); err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Server “%s” removed.", s.Name))
	return redirect(c, "/servers?zone="+url.QueryEscape(s.Zone))
}
