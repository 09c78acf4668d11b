package web

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// invalidUTF8Field returns the path of the first JSON string of body
// ("name", "rules[2].ip_range", or a key itself) holding bytes that are not
// UTF-8, or "" when there is none. encoding/json replaces such bytes with
// U+FFFD without a word, which would store something the client never
// sent; the API refuses them instead, naming the field.
func invalidUTF8Field(body []byte) string {
	if utf8.Valid(body) {
		return ""
	}
	type frame struct {
		object bool
		key    string // object: the current key
		index  int    // array: the current index
		inKey  bool   // object: the next string is a key
	}
	var stack []frame
	path := func(last string) string {
		var b bytes.Buffer
		for _, f := range stack {
			if f.object {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		if last != "" {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(last)
		}
		if b.Len() == 0 {
			return "body"
		}
		return b.String()
	}
	// valueDone moves the innermost container past a value.
	valueDone := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].object {
				stack[n-1].inKey = true
			} else {
				stack[n-1].index++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	start := dec.InputOffset()
	for {
		tok, err := dec.Token()
		if err != nil {
			return "body" // malformed: the decoder proper will say so
		}
		end := dec.InputOffset()
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{object: true, inKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			raw := body[start:end]
			top := len(stack) - 1
			isKey := top >= 0 && stack[top].object && stack[top].inKey
			if !utf8.Valid(raw) {
				if isKey {
					return path(t)
				}
				return path("")
			}
			if isKey {
				stack[top].key, stack[top].inKey = t, false
			} else {
				valueDone()
			}
		default:
			valueDone()
		}
		start = end
		if len(stack) == 0 && !dec.More() {
			return "body"
		}
	}
}
