package web

import (
	"time"

	"github.com/rampart-fw/rampart/explain"
)

// SetAnalyze replaces the analysis of s's groups, for tests that need a
// group too complex to analyse: a real one takes a second to build.
func SetAnalyze(s *Server, analyze func(*explain.Group) (explain.Analysis, error)) {
	s.analyze = analyze
}

// SetSSEHeartbeat sets how often a quiet event stream sends a comment,
// for tests that cannot wait 15 s; the returned function puts it back.
func SetSSEHeartbeat(d time.Duration) func() {
	old := sseHeartbeat
	sseHeartbeat = d
	return func() { sseHeartbeat = old }
}
