package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
)

// Request bodies are bounded; larger ones answer 413. IP sets, up to
// 100,000 entries, may be larger than the rest.
const (
	MaxBodyBytes      = 1 << 20
	MaxIPSetBodyBytes = 8 << 20
)

// Rampart fields. The API is Scaleway's, and Scaleway's clients (the SDK,
// the CLI, Terraform) send only Scaleway's fields, often by rewriting a
// whole object: the SDK's rule update lists the rules, edits one and sends
// them all back in a set-all. A field Rampart adds would be erased by every
// such client if absent meant empty. So, as a rule of decoding, every field
// a request body has beyond the Scaleway SDK's is a pointer tagged
// rampart:"keep", and absent (or null) keeps the stored value, in a set-all
// as in a PATCH; "" (or the field's zero) sets it empty. The store keeps
// them (store.KeptRuleFields); TestRampartFieldsKeptWhenAbsent finds every
// such field, now and later, and checks both halves.

// decodeJSON reads a JSON body of at most MaxBodyBytes into v. Type
// mismatches become invalid-argument errors naming the field.
func decodeJSON(c echo.Context, v any) error { return decodeJSONUpTo(c, v, MaxBodyBytes) }

// decodeJSONUpTo is decodeJSON for a body of at most max bytes.
func decodeJSONUpTo(c echo.Context, v any, max int64) error {
	body, err := readBody(c, max)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if field := invalidUTF8Field(body); field != "" {
		return store.Invalid(field, "format", "is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return store.Invalid(te.Field, "format", "expected %s, got JSON %s", jsonKind(te.Type.Kind().String()), te.Value)
		}
		return echo.NewHTTPError(http.StatusBadRequest, "malformed JSON body: "+err.Error())
	}
	if dec.More() {
		return echo.NewHTTPError(http.StatusBadRequest, "malformed JSON body: data after the JSON object")
	}
	return nil
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "a whole number"
	case k == "string":
		return "a string"
	case k == "bool":
		return "true or false"
	case k == "slice":
		return "a list"
	case k == "struct", k == "map", k == "ptr":
		return "an object"
	}
	return k
}

// readBody reads a body of at most max bytes.
func readBody(c echo.Context, max int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > max {
		return nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, echo.NewHTTPError(http.StatusBadRequest, "could not read the request body")
	}
	if int64(len(body)) > max {
		return nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge)
	}
	return body, nil
}

// isText reports whether a request's body is text/plain.
func isText(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	return err == nil && mt == "text/plain"
}

// readText reads a text/plain body, which must be UTF-8.
func readText(c echo.Context) (string, error) {
	body, err := readBody(c, MaxBodyBytes)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(body) {
		return "", store.Invalid("rules", "format", "the text is not valid UTF-8")
	}
	return string(body), nil
}

// acceptsText reports whether a client asks for text/plain rather than
// JSON: it names text/plain (exactly) with a weight above application/json's
// and no lower than any wildcard's. Anything else, */* included, gets JSON,
// so that clients that never heard of the text form see no change.
func acceptsText(r *http.Request) bool {
	var text, jsonQ, wild float64
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
				q = f
			}
		}
		switch mt {
		case "text/plain":
			text = max(text, q)
		case "application/json", "application/*":
			jsonQ = max(jsonQ, q)
		case "*/*", "text/*":
			wild = max(wild, q)
		}
	}
	return text > 0 && text > jsonQ && text >= wild
}

// queryPage reads the page and per_page query parameters.
func queryPage(c echo.Context) (store.Page, error) {
	var p store.Page
	var err error
	if p.Page, err = queryInt(c, "page"); err != nil {
		return p, err
	}
	p.PerPage, err = queryInt(c, "per_page")
	return p, err
}

// queryInt reads an optional positive integer query parameter.
func queryInt(c echo.Context, name string) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, store.Invalid(name, "format", "must be a whole number from 1")
	}
	return n, nil
}

func queryBool(c echo.Context, name string) (*bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, store.Invalid(name, "format", "must be true or false")
	}
	return &b, nil
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// list writes a list answer with its total in X-Total-Count, which the
// SDK's all-pages iteration reads.
func list(c echo.Context, key string, items any, total int) error {
	c.Response().Header().Set("X-Total-Count", strconv.Itoa(total))
	return c.JSON(http.StatusOK, map[string]any{key: items, "total_count": total})
}

// noContent answers 204 with an empty body; the JSON content type is kept
// as Scaleway sends it.
func noContent(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(http.StatusNoContent)
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
