// Package views renders Rampart's console: the layout, its pages and the
// htmx partials, as templ components. Each partial is also a part of its
// page, so that a page and its partial come from one source. Forms carry
// what was submitted and the store's field errors, shown beside their
// fields: the store is the only validator.
package views

import (
	"errors"
	"net/url"
	"strings"

	"github.com/rampart-fw/rampart/store"
)

// Page is what the layout needs on every page.
type Page struct {
	Title      string
	Section    string // "groups", "servers" or "tokens": the highlighted link
	Path       string // the current path, kept by the zone selector
	Org        string
	Email      string
	Zone       string
	Zones      []string
	Mode       string // "nftables" or "preview"
	ModeReason string
	CSRF       string
	Flash      Flash
	Operator   bool // shows the Operator area
	// Pending lists the organization's changes that await confirmation,
	// mentioned on every page.
	Pending []store.PendingNotice
}

// Flash is a one-time message shown at the top of a page or section.
type Flash struct {
	Kind    string // "success", "error" or "info"
	Message string
}

// FieldErrors maps a form field's name to the store's message for it.
type FieldErrors map[string]string

// Has reports whether field has an error.
func (e FieldErrors) Has(field string) bool { _, ok := e[field]; return ok }

// ErrorsOf splits a store error into the messages of the form's fields
// (names such as "servers[2]" folded to "servers") and a message for the
// rest: fields the form does not have, or an error that names none.
func ErrorsOf(err error, fields ...string) (FieldErrors, string) {
	var se *store.Error
	if !errors.As(err, &se) {
		return nil, ""
	}
	if len(se.Fields) == 0 {
		// A missing zone, or a binding not granted, is about one field.
		if (se.Code == store.CodeNotFound || se.Code == store.CodeForbidden) && se.Resource != "" && contains(fields, se.Resource) {
			return FieldErrors{se.Resource: se.Message}, ""
		}
		return nil, se.Message
	}
	fe := FieldErrors{}
	var loose []string
	for _, f := range se.Fields {
		name, _, _ := strings.Cut(f.Field, "[")
		switch {
		case !contains(fields, name):
			loose = append(loose, f.Message)
		case !fe.Has(name):
			fe[name] = f.Message
		}
	}
	return fe, strings.Join(loose, "; ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// GroupURL is the console path of a group's page, plus suffix (a sub-path
// such as "/rules"), with its zone: the one place console links to a
// group are built.
func GroupURL(g store.Group, suffix string) string {
	return "/security-groups/" + g.ID + suffix + "?zone=" + url.QueryEscape(g.Zone)
}

// ServerURL is the console path of a server's page, plus suffix.
func ServerURL(s store.Server, suffix string) string {
	return "/servers/" + s.ID + suffix + "?zone=" + url.QueryEscape(s.Zone)
}
