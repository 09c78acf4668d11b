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
		Local: checked(c, "local"), SecurityGroup: c.FormValue("security_group"), Host: strings.TrimSpace(c.FormValue("host")),
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
	return render(c, status, views.ServersPage(p, servers, f, groups))
}

// handleServersPage handles "GET /servers".
func (con *console) handleServersPage(c echo.Context) error {
	return con.renderServers(c, http.StatusOK, views.ServerForm{Zone: con.zone(c), Type: string(store.Instance)})
}

// handleServerRegisterForm handles "POST /servers".
func (con *console) handleServerRegisterForm(c echo.Context) error {
	f := serverForm(c)
	s, err := con.db.CreateServer(c.Request().Context(), consoleOrg(c), f.Zone, store.ServerInput{
		Name: f.Name, Type: store.ServerType(f.Type), Interface: f.Interface, Addresses: f.AddressList(),
		Local: f.Local, SecurityGroupID: f.SecurityGroup, Host: f.Host,
	})
	if refused(err) || store.ErrorCode(err) == store.CodeNotFound {
		f.Errors, f.Message = views.ErrorsOf(err, views.ServerFormFields...)
		return con.renderServers(c, formStatus(err), f)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Server “%s” registered in group “%s”.", s.Name, s.SecurityGroup.Name))
	return redirect(c, "/servers?zone="+url.QueryEscape(s.Zone))
}

func (con *console) renderServer(c echo.Context, status int, f views.ServerForm, t views.ServerTester) error {
	p := con.page(c, f.Name, "servers")
	groups, err := con.groupsOfZones(c.Request().Context(), consoleOrg(c), f.Zone)
	if err != nil {
		return err
	}
	return render(c, status, views.ServerPage(p, f, groups, t))
}

// handleServerPage handles "GET /servers/:server".
func (con *console) handleServerPage(c echo.Context) error {
	id := c.Param("server")
	s, err := inZones(con, c, func(ctx context.Context, org, zone string) (store.Server, error) {
		return con.db.Server(ctx, org, zone, id)
	})
	if err != nil {
		return err
	}
	t, err := con.serverTester(c, s)
	if err != nil {
		return err
	}
	return con.renderServer(c, http.StatusOK, views.ServerFormOf(s), t)
}

// handleServerEditForm handles "POST /servers/:server".
func (con *console) handleServerEditForm(c echo.Context) error {
	f := serverForm(c)
	f.ID, f.Zone = c.Param("server"), con.zone(c)
	typ, addrs := store.ServerType(f.Type), f.AddressList()
	patch := store.ServerPatch{Name: &f.Name, Type: &typ, Interface: &f.Interface, Addresses: &addrs, Local: &f.Local, Host: &f.Host}
	if f.SecurityGroup != "" {
		patch.SecurityGroupID = &f.SecurityGroup
	}
	s, err := con.db.UpdateServer(c.Request().Context(), consoleOrg(c), f.Zone, f.ID, patch)
	if refused(err) {
		f.Errors, f.Message = views.ErrorsOf(err, views.ServerFormFields...)
		// The tester is about the server as stored, which the refused
		// change left as it was.
		stored, serr := con.db.Server(c.Request().Context(), consoleOrg(c), f.Zone, f.ID)
		if serr != nil {
			return serr
		}
		t, terr := con.serverTester(c, stored)
		if terr != nil {
			return terr
		}
		return con.renderServer(c, formStatus(err), f, t)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Server “%s” saved.", s.Name))
	return redirect(c, "/servers?zone="+url.QueryEscape(s.Zone))
}

// handleServerRemoveForm handles "POST /servers/:server/delete".
func (con *console) handleServerRemoveForm(c echo.Context) error {
	zone := con.zone(c)
	s, err := con.db.DeleteServer(c.Request().Context(), consoleOrg(c), zone, c.Param("server"))
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Server “%s” removed.", s.Name))
	return redirect(c, "/servers?zone="+url.QueryEscape(zone))
}
