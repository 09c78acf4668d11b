package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// versionParam reads the :n of a version page; anything but a version
// number is a page that does not exist.
func versionParam(c echo.Context) (int, error) {
	n, err := strconv.Atoi(c.Param("n"))
	if err != nil || n < 1 {
		return 0, echo.ErrNotFound
	}
	return n, nil
}

// versionView reads what a version's page shows: version n compared with
// version against (0: the one before). A refused comparison (a bad
// "against") is shown beside its field, the page comparing with the
// version before.
func (con *console) versionView(c echo.Context, n int, against string) (views.VersionView, error) {
	ref := con.groupRef(c)
	v := views.VersionView{CSRF: csrfToken(c), Against: against}
	m := 0
	if against != "" {
		var err error
		if m, err = strconv.Atoi(strings.TrimSpace(against)); err != nil {
			m = -1 // the store names what a version is
		}
	}
	cmp, err := con.db.CompareVersions(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, n, m)
	if store.ErrorCode(err) == store.CodeInvalid {
		v.Errors, _ = views.ErrorsOf(err, "against")
		cmp, err = con.db.CompareVersions(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, n, 0)
	}
	if err != nil {
		return views.VersionView{}, err
	}
	v.Comparison = cmp
	if v.Against == "" && cmp.From.Version > 0 {
		v.Against = strconv.Itoa(cmp.From.Version)
	}
	return v, nil
}

// handleVersionPage handles "GET /security-groups/:id/versions/:n": the
// version, what changed from another (?against=m, by default the one
// before), and the form that reverts to it.
func (con *console) handleVersionPage(c echo.Context) error {
	n, err := versionParam(c)
	if err != nil {
		return err
	}
	v, err := con.versionView(c, n, c.QueryParam("against"))
	if err != nil {
		return err
	}
	p := con.page(c, fmt.Sprintf("Version %d of %s", n, v.Comparison.Group.Name), "groups")
	status := http.StatusOK
	if len(v.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return render(c, status, views.VersionPage(p, v))
}

// handleVersionRevertForm handles "POST /security-groups/:id/versions/:n/revert":
// the group's settings and rules as version n holds them, as a new version,
// optionally to be confirmed; a refusal (today's rules of the domain)
// shows on the version's page.
func (con *console) handleVersionRevertForm(c echo.Context) error {
	n, err := versionParam(c)
	if err != nil {
		return err
	}
	ref := con.groupRef(c)
	confirm, err := withConfirm(c, ref.ID)
	if err == nil {
		_, _, err = con.db.RevertGroup(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, n)
	}
	if refused(err) {
		v, verr := con.versionView(c, n, "")
		if verr != nil {
			return verr
		}
		v.Confirm = confirm
		v.Errors, v.Message = views.ErrorsOf(err, "confirm_within")
		if v.Message != "" {
			v.Message = "Version " + strconv.Itoa(n) + " cannot be restored: " + v.Message
		}
		p := con.page(c, fmt.Sprintf("Version %d of %s", n, v.Comparison.Group.Name), "groups")
		return render(c, formStatus(err), views.VersionPage(p, v))
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Reverted to version %d.", n)+confirmNote(confirm))
	return redirect(c, views.GroupURL(ref, ""))
}

// handleGroupConfirmForm handles "POST /security-groups/:id/confirm": the
// change awaiting confirmation stays.
func (con *console) handleGroupConfirmForm(c echo.Context) error {
	ref := con.groupRef(c)
	version, _ := strconv.Atoi(c.FormValue("version"))
	_, err := con.db.ConfirmGroup(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, version)
	if refused(err) {
		return con.refusedWithFlash(c, err)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Version %d confirmed: the group keeps it.", version))
	return redirect(c, views.GroupURL(ref, ""))
}

// handlePendingPartial handles "GET /security-groups/:id/pending?version=N",
// which the pending panel asks every 2 s: 204 while version N still awaits
// confirmation; otherwise the page reloads (HX-Refresh), with a message
// saying what became of it.
func (con *console) handlePendingPartial(c echo.Context) error {
	ref := con.groupRef(c)
	ctx, org := c.Request().Context(), consoleOrg(c)
	version, _ := strconv.Atoi(c.QueryParam("version"))
	g, err := con.db.Group(ctx, org, ref.Zone, ref.ID)
	if err != nil {
		return err
	}
	if !isHX(c) {
		return redirect(c, views.GroupURL(g, "")+"#pending")
	}
	if g.Pending != nil && g.Pending.Version == version {
		return c.NoContent(http.StatusNoContent)
	}
	latest, _, err := con.db.Versions(ctx, org, ref.Zone, ref.ID, store.Page{PerPage: 1})
	if err != nil {
		return err
	}
	switch {
	case len(latest) > 0 && strings.HasPrefix(latest[0].Summary, "rolled back") &&
		strings.Contains(latest[0].Summary, fmt.Sprintf("version %d was not confirmed", version)):
		con.flash(c, "error", fmt.Sprintf("Version %d was not confirmed in time: the server rolled the group back (%s).", version, latest[0].Summary))
	case g.Version == version:
		con.flash(c, "success", fmt.Sprintf("Version %d was confirmed.", version))
	default:
		con.flash(c, "info", fmt.Sprintf("Version %d no longer awaits confirmation.", version))
	}
	c.Response().Header().Set("HX-Refresh", "true")
	return c.NoContent(http.StatusOK)
}
