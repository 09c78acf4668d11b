package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
)

// Request bodies are bounded; larger ones answer 413. IP sets, up to
// 100,000 entries, may be larger than the rest.
const (
	MaxBodyBytes      = 1 << 20
	MaxIPSetBodyBytes = 8 << 20
)

// decodeJSON reads a JSON body of at most MaxBodyBytes into v. Type
// mismatches become invalid-argument errors naming the field.
func decodeJSON(c echo.Context, v any) error { return decodeJSONUpTo(c, v, MaxBodyBytes) }

// decodeJSONUpTo is decodeJSON for a body of at most max bytes.
func decodeJSONUpTo(c echo.Context, v any, max int64) error {
	r := c.Request()
	if r.ContentLength > max {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "could not read the request body")
	}
	if int64(len(body)) > max {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge)
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
