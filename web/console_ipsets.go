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

// splitEntries reads the entries of the IP set form: one a line, or
// separated by commas or spaces, as lists are pasted.
func splitEntries(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' || r == ' ' || r == '\t' || r == ';' })
}

func (con *console) renderIPSets(c echo.Context, status int, f views.IPSetForm) error {
	p := con.page(c, "IP sets", "ip-sets")
	sets, _, err := con.db.IPSets(c.Request().Context(), consoleOrg(c), p.Zone, store.IPSetFilter{All: true})
	if err != nil {
		return err
	}
	return render(c, status, views.IPSetsPage(p, sets, f))
}

// handleIPSetsPage handles "GET /ip-sets".
func (con *console) handleIPSetsPage(c echo.Context) error {
	return con.renderIPSets(c, http.StatusOK, views.IPSetForm{Zone: con.zone(c)})
}

// handleIPSetCreateForm handles "POST /ip-sets".
func (con *console) handleIPSetCreateForm(c echo.Context) error {
	f := views.IPSetForm{Zone: con.zone(c), Name: c.FormValue("name"), Description: c.FormValue("description"), Entries: c.FormValue("entries")}
	s, err := con.db.CreateIPSet(c.Request().Context(), consoleOrg(c), f.Zone, store.IPSetInput{
		Name: f.Name, Description: f.Description, Entries: splitEntries(f.Entries),
	})
	if refused(err) {
		f.Errors, f.Message = views.ErrorsOf(err, views.IPSetFormFields...)
		return con.renderIPSets(c, formStatus(err), f)
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("IP set “%s” created with %d entries.", s.Name, len(s.Entries)))
	return redirect(c, views.IPSetURL(s, ""))
}

// handleIPSetPage handles "GET /ip-sets/:set".
func (con *console) handleIPSetPage(c echo.Context) error {
	id := c.Param("set")
	s, err := inZones(con, c, func(ctx context.Context, org, zone string) (store.IPSet, error) {
		return con.db.IPSet(ctx, org, zone, id)
	})
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.IPSetPage(con.page(c, s.Name, "ip-sets"), views.IPSetFormOf(s)))
}

// handleIPSetEditForm handles "POST /ip-sets/:set": the entries are
// replaced by the text posted.
func (con *console) handleIPSetEditForm(c echo.Context) error {
	f := views.IPSetForm{ID: c.Param("set"), Zone: con.zone(c), Name: c.FormValue("name"), Description: c.FormValue("description"),
		Entries: c.FormValue("entries")}
	entries := splitEntries(f.Entries)
	s, err := con.db.UpdateIPSet(c.Request().Context(), consoleOrg(c), f.Zone, f.ID, store.IPSetPatch{
		Name: &f.Name, Description: &f.Description, Entries: &entries,
	})
	if refused(err) {
		f.Errors, f.Message = views.ErrorsOf(err, views.IPSetFormFields...)
		if s, gerr := con.db.IPSet(c.Request().Context(), consoleOrg(c), f.Zone, f.ID); gerr == nil {
			f.UsedBy = s.UsedBy
		}
		return render(c, formStatus(err), views.IPSetPage(con.page(c, f.Name, "ip-sets"), f))
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("IP set “%s” saved: %d entries.", s.Name, len(s.Entries)))
	return redirect(c, views.IPSetURL(s, ""))
}

// handleIPSetDeleteForm handles "POST /ip-sets/:set/delete".
func (con *console) handleIPSetDeleteForm(c echo.Context) error {
	zone := con.zone(c)
	err := con.db.DeleteIPSet(c.Request().Context(), consoleOrg(c), zone, c.Param("set"))
	if refused(err) {
		s, gerr := con.db.IPSet(c.Request().Context(), consoleOrg(c), zone, c.Param("set"))
		if gerr != nil {
			return gerr
		}
		f := views.IPSetFormOf(s)
		f.Message = storeMessage(err)
		return render(c, formStatus(err), views.IPSetPage(con.page(c, s.Name, "ip-sets"), f))
	}
	if err != nil {
		return err
	}
	con.flash(c, "success", "IP set deleted.")
	return redirect(c, "/ip-sets?zone="+url.QueryEscape(zone))
}
