package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
)

type ipSetJSON struct {
	ID               string   `json:"id"`
	Name             string   `json:"name"`
	Description      string   `json:"description"`
	Project          string   `json:"project"`
	Organization     string   `json:"organization"`
	Zone             string   `json:"zone"`
	Entries          []string `json:"entries"`
	CreationDate     string   `json:"creation_date"`
	ModificationDate string   `json:"modification_date"`
}

func ipSetToJSON(s store.IPSet) ipSetJSON {
	entries := make([]string, len(s.Entries))
	for i, p := range s.Entries {
		entries[i] = store.FormatIPRange(p)
	}
	return ipSetJSON{ID: s.ID, Name: s.Name, Description: s.Description, Project: s.ProjectID, Organization: s.OrganizationID,
		Zone: s.Zone, Entries: entries, CreationDate: scwTime(s.CreatedAt), ModificationDate: scwTime(s.ModifiedAt)}
}

type ipSetBody struct {
	Name         *string   `json:"name"`
	Description  *string   `json:"description"`
	Project      *string   `json:"project"`
	Organization *string   `json:"organization"`
	Entries      *[]string `json:"entries"`
	Add          []string  `json:"add"`
	Remove       []string  `json:"remove"`
}

// handleIPSetList handles "GET /instance/v1/zones/:zone/ip_sets".
func (s *Server) handleIPSetList(c echo.Context) error {
	f := store.IPSetFilter{Name: c.QueryParam("name")}
	var err error
	if f.Page, err = queryPage(c); err != nil {
		return err
	}
	if !s.db.HasZone(zoneOf(c)) {
		return list(c, "ip_sets", []ipSetJSON{}, 0)
	}
	sets, total, err := s.db.IPSets(c.Request().Context(), orgOf(c), zoneOf(c), f)
	if err != nil {
		return err
	}
	out := make([]ipSetJSON, len(sets))
	for i, set := range sets {
		out[i] = ipSetToJSON(set)
	}
	return list(c, "ip_sets", out, total)
}

// handleIPSetCreate handles "POST /instance/v1/zones/:zone/ip_sets".
func (s *Server) handleIPSetCreate(c echo.Context) error {
	var b ipSetBody
	if err := decodeJSONUpTo(c, &b, MaxIPSetBodyBytes); err != nil {
		return err
	}
	in := store.IPSetInput{Name: deref(b.Name), Description: deref(b.Description), Entries: deref(b.Entries)}
	if b.Project != nil {
		in.ProjectID = *b.Project
	} else if b.Organization != nil {
		in.ProjectID = *b.Organization
	}
	set, err := s.db.CreateIPSet(c.Request().Context(), orgOf(c), zoneOf(c), in)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/instance/v1/zones/"+set.Zone+"/ip_sets/"+set.ID)
	return c.JSON(http.StatusCreated, map[string]any{"ip_set": ipSetToJSON(set)})
}

// handleIPSetGet handles "GET /instance/v1/zones/:zone/ip_sets/:set".
func (s *Server) handleIPSetGet(c echo.Context) error {
	set, err := s.db.IPSet(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("set"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ip_set": ipSetToJSON(set)})
}

// handleIPSetPatch handles "PATCH /instance/v1/zones/:zone/ip_sets/:set":
// entries replaces them, add and remove edit them.
func (s *Server) handleIPSetPatch(c echo.Context) error {
	var b ipSetBody
	if err := decodeJSONUpTo(c, &b, MaxIPSetBodyBytes); err != nil {
		return err
	}
	set, err := s.db.UpdateIPSet(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("set"), store.IPSetPatch{
		Name: b.Name, Description: b.Description, Entries: b.Entries, Add: b.Add, Remove: b.Remove,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ip_set": ipSetToJSON(set)})
}

// handleIPSetDelete handles "DELETE /instance/v1/zones/:zone/ip_sets/:set".
func (s *Server) handleIPSetDelete(c echo.Context) error {
	if err := s.db.DeleteIPSet(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("set")); err != nil {
		return err
	}
	return noContent(c)
}
