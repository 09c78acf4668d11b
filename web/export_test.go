package web

import "github.com/rampart-fw/rampart/explain"

// SetAnalyze replaces the analysis of s's groups, for tests that need a
// group too complex to analyse: a real one takes a second to build.
func SetAnalyze(s *Server, analyze func(*explain.Group) (explain.Analysis, error)) {
	s.analyze = analyze
}
