package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// ctxOperator marks a request of an operator.
const ctxOperator = "console.operator"

// requireOperator answers the Operator area to operators only; to anyone
// else it does not exist.
func (con *console) requireOperator(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if op, _ := c.Get(ctxOperator).(bool); !op {
			return echo.ErrNotFound
		}
		return next(c)
	}
}

// hostStatuses returns the hosts with their states: the fleet's when there
// is one, else what the store knows.
func (con *console) hostStatuses(ctx context.Context) ([]store.HostStatus, error) {
	if con.srv.cfg.Fleet != nil {
		return con.srv.cfg.Fleet.Hosts(ctx)
	}
	hosts, err := con.db.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]store.HostStatus, len(hosts))
	for i, h := range hosts {
		out[i] = store.HostStatus{Host: h, State: store.HostPending}
		if !h.Report.LastSeen.IsZero() {
			out[i].State = store.HostReady
		}
	}
	return out, nil
}

func (con *console) renderHosts(c echo.Context, status int, f views.HostForm, added *views.NewHost) error {
	hosts, err := con.hostStatuses(c.Request().Context())
	if err != nil {
		return err
	}
	return render(c, status, views.HostsPage(con.page(c, "Hosts", "hosts"), hosts, f, added))
}

// handleHostsPage handles "GET /operator/hosts".
func (con *console) handleHostsPage(c echo.Context) error {
	return con.renderHosts(c, http.StatusOK, views.HostForm{}, nil)
}

// handleHostAddForm handles "POST /operator/hosts": the answer shows the
// join token once, so it is a page rather than a redirect.
func (con *console) handleHostAddForm(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.HostForm{Name: strings.TrimSpace(c.FormValue("name"))}
	h, secret, err := con.db.CreateHost(ctx, f.Name, con.srv.cfg.JoinTokenTTL)
	if refused(err) {
		f.Errors, f.Message = views.ErrorsOf(err, views.HostFormFields...)
		return con.renderHosts(c, formStatus(err), f, nil)
	}
	if err != nil {
		return err
	}
	token := secret
	if join := con.srv.cfg.JoinToken; join != nil {
		if token, err = join(ctx, secret); err != nil {
			return err
		}
	}
	return con.renderHosts(c, http.StatusOK, views.HostForm{}, &views.NewHost{Host: h, Token: token})
}

// handleHostRemoveForm handles "POST /operator/hosts/:name/remove".
func (con *console) handleHostRemoveForm(c echo.Context) error {
	h, err := con.db.RemoveHost(c.Request().Context(), c.Param("name"))
	if refused(err) {
		return con.renderHosts(c, formStatus(err), views.HostForm{Message: storeMessage(err)}, nil)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Host %s removed: its agent is refused from now on.", h.Name))
	return redirect(c, "/operator/hosts")
}

// handleHostDefaultForm handles "POST /operator/hosts/:name/default".
func (con *console) handleHostDefaultForm(c echo.Context) error {
	h, err := con.db.SetDefaultHost(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("%s is now the default host: servers that name no host are on it.", h.Name))
	return redirect(c, "/operator/hosts")
}

// handleOrganizationsPage handles "GET /operator/organizations".
func (con *console) handleOrganizationsPage(c echo.Context) error {
	return con.renderOrganizations(c, http.StatusOK, views.HostForm{})
}

func (con *console) renderOrganizations(c echo.Context, status int, f views.HostForm) error {
	orgs, err := con.db.Organizations(c.Request().Context())
	if err != nil {
		return err
	}
	return render(c, status, views.OrganizationsPage(con.page(c, "Organizations", "organizations"), orgs, f))
}

// handleOrganizationAddForm handles "POST /operator/organizations".
func (con *console) handleOrganizationAddForm(c echo.Context) error {
	f := views.HostForm{Name: c.FormValue("org")}
	o, err := con.db.EnsureOrganization(c.Request().Context(), f.Name)
	if refused(err) {
		f.Errors, f.Message = views.ErrorsOf(err, "org")
		return con.renderOrganizations(c, formStatus(err), f)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Organization %s is there.", o.Name))
	return redirect(c, "/operator/organizations")
}

func (con *console) renderUsers(c echo.Context, status int, f views.UserForm) error {
	ctx := c.Request().Context()
	users, err := con.db.AllUsers(ctx)
	if err != nil {
		return err
	}
	orgs, err := con.db.Organizations(ctx)
	if err != nil {
		return err
	}
	return render(c, status, views.UsersPage(con.page(c, "Users", "users"), users, orgs, f))
}

// handleUsersPage handles "GET /operator/users".
func (con *console) handleUsersPage(c echo.Context) error {
	return con.renderUsers(c, http.StatusOK, views.UserForm{OrgID: consoleOrg(c)})
}

// handleUserAddForm handles "POST /operator/users".
func (con *console) handleUserAddForm(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.UserForm{Email: c.FormValue("email"), OrgID: c.FormValue("org"), Operator: checked(c, "operator")}
	u, err := con.db.CreateUser(ctx, f.OrgID, f.Email, c.FormValue("password"))
	if err == nil && f.Operator && !u.Operator {
		_, err = con.db.SetOperator(ctx, u.ID, true)
	}
	if refused(err) {
		f.Errors, f.Message = views.ErrorsOf(err, views.UserFormFields...)
		return con.renderUsers(c, formStatus(err), f)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("User %s added.", u.Email))
	return redirect(c, "/operator/users")
}

func (con *console) renderGrants(c echo.Context, status int, f views.GrantForm) error {
	ctx := c.Request().Context()
	grants, err := con.db.Grants(ctx, "")
	if err != nil {
		return err
	}
	orgs, err := con.db.Organizations(ctx)
	if err != nil {
		return err
	}
	hosts, err := con.hostStatuses(ctx)
	if err != nil {
		return err
	}
	return render(c, status, views.GrantsPage(con.page(c, "Grants", "grants"), grants, orgs, hosts, f))
}

// handleGrantsPage handles "GET /operator/grants".
func (con *console) handleGrantsPage(c echo.Context) error {
	return con.renderGrants(c, http.StatusOK, views.GrantForm{OrgID: consoleOrg(c)})
}

// handleGrantAddForm handles "POST /operator/grants".
func (con *console) handleGrantAddForm(c echo.Context) error {
	f := views.GrantForm{OrgID: c.FormValue("org"), Host: c.FormValue("host"), Interfaces: c.FormValue("interfaces"),
		Local: checked(c, "local")}
	_, err := con.db.CreateGrant(c.Request().Context(), f.OrgID, f.Host, splitComma(f.Interfaces), f.Local)
	if refused(err) || store.ErrorCode(err) == store.CodeNotFound {
		f.Errors, f.Message = views.ErrorsOf(err, views.GrantFormFields...)
		return con.renderGrants(c, formStatus(err), f)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", "Granted.")
	return redirect(c, "/operator/grants")
}

// handleGrantDeleteForm handles "POST /operator/grants/:id/delete".
func (con *console) handleGrantDeleteForm(c echo.Context) error {
	if err := con.db.DeleteGrant(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	con.flash(c, "success", "Grant removed. Bindings made under it stay; changing them needs a grant.")
	return redirect(c, "/operator/grants")
}
