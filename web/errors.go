package web

import (
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// apiError is the JSON body of every API error, in Scaleway's shape so that
// the official SDK decodes it into its typed errors.
type apiError struct {
	Type        string           `json:"type"`
	Message     string           `json:"message"`
	Details     any              `json:"details,omitempty"`
	Resource    string           `json:"resource,omitempty"`
	ResourceID  string           `json:"resource_id,omitempty"`
	Method      string           `json:"method,omitempty"`
	Reason      string           `json:"reason,omitempty"`
	HelpMessage string           `json:"help_message,omitempty"`
	Fields      map[string][]any `json:"fields,omitempty"`
}

type argumentDetail struct {
	ArgumentName string `json:"argument_name"`
	Reason       string `json:"reason"`
	HelpMessage  string `json:"help_message"`
}

type permissionDetail struct {
	Resource string `json:"resource"`
	Action   string `json:"action"`
}

// statusOf maps an error to its HTTP status: the one table, for the API
// and the console alike. Errors that are neither the store's nor HTTP
// errors are internal.
func statusOf(err error) int {
	switch store.ErrorCode(err) {
	case store.CodeInvalid:
		return http.StatusBadRequest
	case store.CodeNotFound:
		return http.StatusNotFound
	case store.CodeConflict:
		return http.StatusConflict
	case store.CodeUnauthorized:
		return http.StatusUnauthorized
	case store.CodeForbidden:
		return http.StatusForbidden
	}
	if errors.Is(err, explain.ErrTooComplex) {
		// Nothing is wrong with the request or the group; what it asks
		// cannot be answered for this group as it stands.
		return http.StatusConflict
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return he.Code
	}
	return http.StatusInternalServerError
}

// tooComplexMessage answers a group whose analysis would take too long
// (explain.ErrTooComplex).
const tooComplexMessage = "The rules of this group cross each other's ranges too much to be analysed in reasonable time: " +
	"no findings can be given. Nothing is wrong with the rules for that; the packet tester still answers."

// formStatus is the status of a console form answered again with the
// store's refusal: 422 for bad input (the page is an answer to read, with
// the errors beside their fields), as statusOf for the rest.
func formStatus(err error) int {
	var se *store.Error
	if errors.As(err, &se) && se.Code == store.CodeNotFound && se.Resource == "zone" {
		return http.StatusUnprocessableEntity // a form's zone field: shown beside it
	}
	if s := statusOf(err); s != http.StatusBadRequest {
		return s
	}
	return http.StatusUnprocessableEntity
}

// refused reports whether err is a refusal a person should read beside the
// form (bad input, a rule of the domain, a missing permission); other
// errors (not found, internal) go to the error handler.
func refused(err error) bool {
	switch store.ErrorCode(err) {
	case store.CodeInvalid, store.CodeConflict, store.CodeForbidden:
		return true
	}
	return false
}

// toAPIError returns the status of err and its body in Scaleway's shape.
// The text of an internal error stays in the log.
func toAPIError(err error) (int, apiError) {
	status := statusOf(err)
	var se *store.Error
	if errors.As(err, &se) {
		switch se.Code {
		case store.CodeInvalid:
			details := make([]argumentDetail, len(se.Fields))
			for i, f := range se.Fields {
				details[i] = argumentDetail{ArgumentName: f.Field, Reason: f.Reason, HelpMessage: f.Message}
			}
			return status, apiError{Type: "invalid_arguments", Message: "invalid argument(s)", Details: details}
		case store.CodeNotFound:
			return status, apiError{Type: "not_found", Message: "resource is not found", Resource: se.Resource, ResourceID: se.ResourceID}
		case store.CodeConflict:
			return status, apiError{Type: "conflict", Message: se.Message}
		case store.CodeUnauthorized:
			return status, apiError{Type: "denied_authentication", Message: "authentication is denied",
				Method: "api_key", Reason: "invalid_argument"}
		case store.CodeForbidden:
			return status, apiError{Type: "permissions_denied", Message: se.Message,
				Details: []permissionDetail{{Resource: se.Resource, Action: "write"}}}
		}
	}
	if errors.Is(err, explain.ErrTooComplex) {
		return status, apiError{Type: "conflict", Message: tooComplexMessage}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && m != "" {
			msg = m
		}
		switch he.Code {
		case http.StatusBadRequest:
			return status, apiError{Type: "invalid_request_error", Message: msg}
		case http.StatusUnauthorized:
			return status, apiError{Type: "denied_authentication", Message: msg, Method: "api_key", Reason: "not_found"}
		case http.StatusNotFound:
			return status, apiError{Type: "not_found", Message: msg}
		case http.StatusRequestEntityTooLarge:
			return status, apiError{Type: "request_entity_too_large", Message: "the request body is too large (1 MiB; 8 MiB for IP sets)"}
		case http.StatusTooManyRequests:
			return status, apiError{Type: "too_many_requests", Message: msg}
		}
		if he.Code < 500 {
			return status, apiError{Type: "invalid_request_error", Message: msg}
		}
	}
	return http.StatusInternalServerError, apiError{Type: "internal_error", Message: "internal error"}
}

// handleError is the one place where errors become responses: JSON for the
// API, a page or an inline message for the console.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := toAPIError(err)
	if status >= 500 {
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	if isAPI(c) {
		if c.Request().Method == http.MethodHead {
			c.NoContent(status)
			return
		}
		c.JSON(status, body)
		return
	}
	s.renderConsoleError(c, status, err, body.Message)
}

// isAPI tells API requests, answered in JSON, from console ones.
func isAPI(c echo.Context) bool {
	p := c.Request().URL.Path
	return strings.HasPrefix(p, "/instance/") || p == "/organizations" ||
		p == "/security_groups" || strings.HasPrefix(p, "/security_groups/")
}

// renameField returns err with its field from called to, when err is a
// store error naming from.
func renameField(err error, from, to string) error {
	return renameFields(err, map[string]string{from: to})
}

// fieldWord is a field name within a message.
var fieldWord = regexp.MustCompile(`\b[a-z]+_[a-z_]+\b`)

// renameFields returns err with the fields it names renamed as names says,
// in its messages too ("must be of the same IP family as remote_ip"), when
// err is a store error.
func renameFields(err error, names map[string]string) error {
	var se *store.Error
	if !errors.As(err, &se) {
		return err
	}
	rename := func(s string) string {
		return fieldWord.ReplaceAllStringFunc(s, func(w string) string {
			if to, ok := names[w]; ok {
				return to
			}
			return w
		})
	}
	out := *se
	out.Message = rename(se.Message)
	out.Fields = make([]store.FieldError, len(se.Fields))
	for i, f := range se.Fields {
		out.Fields[i] = f
		if to, ok := names[f.Field]; ok {
			out.Fields[i].Field = to
		}
		out.Fields[i].Message = rename(f.Message)
	}
	return &out
}

// joinInvalid returns one invalid-argument error naming the fields of all
// the invalid-argument errors of errs (each field once, with its first
// problem), so that an answer names every bad field however many steps
// found them; or the first error of another kind; or nil.
func joinInvalid(errs ...error) error {
	var fields []store.FieldError
	for _, err := range errs {
		if err == nil {
			continue
		}
		var se *store.Error
		if !errors.As(err, &se) || se.Code != store.CodeInvalid {
			return err
		}
		for _, f := range se.Fields {
			if !slices.ContainsFunc(fields, func(g store.FieldError) bool { return g.Field == f.Field }) {
				fields = append(fields, f)
			}
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return &store.Error{Code: store.CodeInvalid, Message: "invalid argument(s)", Fields: fields}
}

// storeMessage is what a person reads of a refusal: its first field's
// message, or its own.
func storeMessage(err error) string {
	var se *store.Error
	if errors.As(err, &se) {
		if len(se.Fields) > 0 {
			return se.Fields[0].Message
		}
		return se.Message
	}
	return err.Error()
}

// renderConsoleError shows an error to a person: inline in the flash area
// for htmx, in the layout when signed in, on a bare page otherwise.
func (s *Server) renderConsoleError(c echo.Context, status int, err error, msg string) {
	setSecurityHeaders(c.Response().Header())
	title, text := "Something went wrong", "The console could not complete this request. It has been logged; try again."
	switch {
	case status == http.StatusNotFound:
		title, text = "Not found", "This page does not exist, or it belongs to another organization."
	case status == http.StatusForbidden:
		title, text = "Request refused", msg
	case status == http.StatusMethodNotAllowed:
		title, text = "Not allowed", "This address does not accept this kind of request."
	case status < 500:
		title, text = http.StatusText(status), msg
		var se *store.Error
		if errors.As(err, &se) {
			text = storeMessage(err)
		}
	}
	var rerr error
	switch p, signedIn := c.Get(ctxPage).(views.Page); {
	case isHX(c):
		c.Response().Header().Set("HX-Retarget", "#flash")
		c.Response().Header().Set("HX-Reswap", "innerHTML")
		rerr = render(c, status, views.InlineError(text))
	case signedIn:
		p.Title = title
		rerr = render(c, status, views.ErrorPage(p, status, title, text))
	default:
		rerr = render(c, status, views.BareErrorPage(status, title, text))
	}
	if rerr != nil {
		s.log.Error("render error page", "err", rerr)
	}
}
