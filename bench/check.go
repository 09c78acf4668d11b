package bench

import (
	"bytes"
	"fmt"
)

// Check inspects one answer of a timed request. A benchmark that times
// requests checks every answer and stops at the first wrong one: a figure
// measured on errors (a 500 is fast) would be a figure of something else.
type Check func(status int, body []byte) error

// ExpectJSON returns a Check that wants status, a body starting with
// prefix (the answer's top-level key, which Echo writes first), and, when
// count is not negative, exactly count occurrences of each.
func ExpectJSON(status int, prefix string, each string, count int) Check {
	p, e := []byte(prefix), []byte(each)
	return func(got int, body []byte) error {
		if got != status {
			return fmt.Errorf("status %d, want %d: %s", got, status, snippet(body))
		}
		if !bytes.HasPrefix(body, p) {
			return fmt.Errorf("body does not start with %s: %s", prefix, snippet(body))
		}
		if count >= 0 {
			if n := bytes.Count(body, e); n != count {
				return fmt.Errorf("body holds %s %d times, want %d: %s", each, n, count, snippet(body))
			}
		}
		return nil
	}
}

// snippet returns the start of a body, for error messages.
func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// Order returns the order in which to run n compared configurations in
// round r: forward in even rounds, backward in odd ones (A B, B A, A B, …),
// so that over the rounds no configuration always runs first, or always
// right after the same other one, and a drift of the machine during a
// round (a neighbour's build, a cache warming up) does not favour one side.
func Order(r, n int) []int {
	o := make([]int, n)
	for i := range o {
		if r%2 == 0 {
			o[i] = i
		} else {
			o[i] = n - 1 - i
		}
	}
	return o
}
