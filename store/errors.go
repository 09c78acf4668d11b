package store

import (
	"errors"
	"fmt"
	"strings"
)

// Code classifies an Error so that the web layer can map it to a status in
// one place.
type Code string

// Error codes.
const (
	CodeInvalid      Code = "invalid"      // bad input; Fields names the culprits
	CodeNotFound     Code = "not_found"    // missing, or another organization's
	CodeConflict     Code = "conflict"     // refused by a rule of the domain
	CodeUnauthorized Code = "unauthorized" // unknown credentials
	CodeForbidden    Code = "forbidden"    // known credentials, not allowed
)

// Resource names used in not-found errors, as Scaleway names them.
const (
	ResourceGroup  = "instance_security_group"
	ResourceRule   = "instance_security_group_rule"
	ResourceServer = "instance_server"
	ResourceToken  = "token"
	ResourceHost   = "host"
	ResourceGrant  = "grant"
)

// FieldError says what is wrong with one field of a request.
type FieldError struct {
	Field   string // request field name, e.g. "dest_port_from"
	Reason  string // "required", "format" or "constraint"
	Message string // for a person
}

// Error is the store's error type: a user may read Message; internal errors
// are returned as plain wrapped errors instead.
type Error struct {
	Code       Code
	Message    string
	Fields     []FieldError
	Resource   string // with CodeNotFound
	ResourceID string // with CodeNotFound
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return e.Message + " (" + strings.Join(parts, "; ") + ")"
}

// ErrorCode returns the code of err if it is or wraps an *Error, and "" for
// any other error.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// FieldMessage returns the message for field in err, or "".
func FieldMessage(err error, field string) string {
	var e *Error
	if errors.As(err, &e) {
		for _, f := range e.Fields {
			if f.Field == field {
				return f.Message
			}
		}
	}
	return ""
}

func notFound(resource, id string) *Error {
	return &Error{Code: CodeNotFound, Message: "resource is not found", Resource: resource, ResourceID: id}
}

func conflict(format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// fieldErrors collects validation failures so that one answer names every
// bad field.
type fieldErrors []FieldError

func (fe *fieldErrors) add(field, reason, format string, args ...any) {
	*fe = append(*fe, FieldError{Field: field, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// text joins the errors as "field: message; field: message".
func (fe fieldErrors) text() string {
	parts := make([]string, len(fe))
	for i, f := range fe {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

func (fe fieldErrors) err() error {
	if len(fe) == 0 {
		return nil
	}
	return &Error{Code: CodeInvalid, Message: "invalid argument(s)", Fields: fe}
}

// Invalid returns an invalid-argument error naming one field; reason is
// "required", "format" or "constraint".
func Invalid(field, reason, format string, args ...any) *Error {
	return invalid(field, reason, format, args...)
}

func invalid(field, reason, format string, args ...any) *Error {
	var fe fieldErrors
	fe.add(field, reason, format, args...)
	return fe.err().(*Error)
}
