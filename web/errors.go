package web

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
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

// toAPIError maps any error to a status and a Scaleway error body. Errors
// that are neither store nor HTTP errors are internal: their text stays in
// the log.
func toAPIError(err error) (int, apiError) {
	var se *store.Error
	if errors.As(err, &se) {
		switch se.Code {
		case store.CodeInvalid:
			details := make([]argumentDetail, len(se.Fields))
			for i, f := range se.Fields {
				details[i] = argumentDetail{ArgumentName: f.Field, Reason: f.Reason, HelpMessage: f.Message}
			}
			return http.StatusBadRequest, apiError{Type: "invalid_arguments", Message: "invalid argument(s)", Details: details}
		case store.CodeNotFound:
			return http.StatusNotFound, apiError{Type: "not_found", Message: "resource is not found", Resource: se.Resource, ResourceID: se.ResourceID}
		case store.CodeConflict:
			return http.StatusConflict, apiError{Type: "conflict", Message: se.Message}
		case store.CodeUnauthorized:
			return http.StatusUnauthorized, apiError{Type: "denied_authentication", Message: "authentication is denied",
				Method: "api_key", Reason: "invalid_argument"}
		case store.CodeForbidden:
			return http.StatusForbidden, apiError{Type: "permissions_denied", Message: se.Message,
				Details: []permissionDetail{{Resource: se.Resource, Action: "write"}}}
		}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && m != "" {
			msg = m
		}
		switch he.Code {
		case http.StatusBadRequest:
			return he.Code, apiError{Type: "invalid_request_error", Message: msg}
		case http.StatusUnauthorized:
			return he.Code, apiError{Type: "denied_authentication", Message: msg, Method: "api_key", Reason: "not_found"}
		case http.StatusNotFound:
			return he.Code, apiError{Type: "not_found", Message: msg}
		case http.StatusRequestEntityTooLarge:
			return he.Code, apiError{Type: "request_entity_too_large", Message: "the request body is larger than 1 MiB"}
		case http.StatusTooManyRequests:
			return he.Code, apiError{Type: "too_many_requests", Message: msg}
		}
		if he.Code < 500 {
			return he.Code, apiError{Type: "invalid_request_error", Message: msg}
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
	var se *store.Error
	if !errors.As(err, &se) {
		return err
	}
	out := *se
	out.Fields = slices.Clone(se.Fields)
	for i := range out.Fields {
		if out.Fields[i].Field == from {
			out.Fields[i].Field = to
		}
	}
	return &out
}
