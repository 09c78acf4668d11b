package web

import (
	"context"
	"errors"
	"sync"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/store"
)

// The packet tester and the rule analysis (package explain) answer from a
// group's compiled chains, so that they cannot disagree with what the
// enforcer compiles. Every answer is about one stored generation of the
// group: the one read from the store, with its rules, in one transaction.
// The chains are the reconciler's when it compiled that very generation
// (GroupChains.Generation says which it compiled), and otherwise that
// generation's settings and rules compiled here by enforcer.Compile, the
// reconciler's own compiler: a group created or changed a moment ago, which
// the reconciler has not read yet, or one it read at a later generation
// than this request did. A group generation names one content (every
// change to a group's settings, rules or servers moves it), so the chains
// and the rules that give them IDs and positions always match.

// explainGroup returns the explainer's view of group g, with its rules as
// the store lists them (the SMTP rows included), both read at one
// generation.
func (s *Server) explainGroup(ctx context.Context, g store.Group, listed []store.Rule) (*explain.Group, error) {
	rules := editable(listed)
	if chains, ok := s.enf.Chains(g.ID); ok && chains.Generation == g.Generation {
		return explain.NewGroup(g, rules, chains, s.enf.GroupSets(g.ID)...)
	}
	// The contents of the sets and groups its rules name, read now: any
	// change to them moves the group's generation, so they are those of
	// g's unless g changed since it was read.
	remotes, err := s.db.RemotesOf(ctx, rules)
	if err != nil {
		return nil, err
	}
	gc, sets := compileGroup(g, rules, remotes)
	return explain.NewGroup(g, rules, gc, sets...)
}

// editable returns the group's own rules, without the SMTP rows, which the
// compiler adds itself.
func editable(listed []store.Rule) []store.Rule {
	out := make([]store.Rule, 0, len(listed))
	for _, r := range listed {
		if r.Editable {
			out = append(out, r)
		}
	}
	return out
}

// compileGroup compiles g alone. A group's chains depend on its settings
// and rules only, so a snapshot of that one group gives the chains the
// reconciler compiles for it from the whole store; a row that could not be
// read fails the group closed, as there. (A server row that could not be
// read fails its group too, in the reconciler; the store reads a group's
// rules without its servers' rows, and such damage shows as the group's
// sync error.)
func compileGroup(g store.Group, rules []store.Rule, remotes store.Remotes) (enforcer.GroupChains, []enforcer.Set) {
	rs := enforcer.Compile(oneGroup(g, rules, remotes))
	gc, _ := rs.Group(g.ID)
	return gc, rs.GroupSets(g.ID)
}

// oneGroup is a snapshot of group g alone, with rules and what they name.
func oneGroup(g store.Group, rules []store.Rule, remotes store.Remotes) store.Snapshot {
	snap := store.Snapshot{Generation: g.Generation, Groups: []store.Group{g},
		Rules: map[string][]store.Rule{g.ID: rules}, Unreadable: map[string][]string{},
		IPSets: remotes.IPSets, Members: remotes.Members}
	if g.Unreadable != "" {
		snap.Unreadable[g.ID] = append(snap.Unreadable[g.ID], "group "+g.ID+": "+g.Unreadable)
	}
	for _, r := range rules {
		if r.Unreadable != "" {
			snap.Unreadable[g.ID] = append(snap.Unreadable[g.ID], "rule "+r.ID+": "+r.Unreadable)
		}
	}
	return snap
}

// analysis returns the findings about group g's rules, read with it at one
// generation: computed once per generation, since they depend on nothing
// else. Its error wraps explain.ErrTooComplex for a group too complex to
// analyse.
func (s *Server) analysis(ctx context.Context, g store.Group, listed []store.Rule) (explain.Analysis, error) {
	if a, err, ok := s.analyses.get(g.ID, g.Generation); ok {
		return a, err
	}
	eg, err := s.explainGroup(ctx, g, listed)
	if err != nil {
		return explain.Analysis{}, err
	}
	a, err := s.analyze(eg)
	if err != nil && !errors.Is(err, explain.ErrTooComplex) {
		return explain.Analysis{}, err
	}
	s.analyses.put(g.ID, g.Generation, a, err)
	return a, err
}

// analysisCache keeps the last analysis of each group. An analysis takes
// up to a second for a large group, and the group list shows a count for
// every group on every load; the cache holds each group's last generation
// only, and empties when it holds maxCachedAnalyses, which the next loads
// refill: simpler than an LRU, for a bound that only a very large
// installation reaches.
type analysisCache struct {
	mu sync.Mutex
	m  map[string]cachedAnalysis
}

type cachedAnalysis struct {
	gen int64
	a   explain.Analysis
	err error
}

const maxCachedAnalyses = 10_000

func (c *analysisCache) get(groupID string, gen int64) (explain.Analysis, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[groupID]
	if !ok || e.gen != gen {
		return explain.Analysis{}, nil, false
	}
	return e.a, e.err, true
}

func (c *analysisCache) put(groupID string, gen int64, a explain.Analysis, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedAnalyses {
		c.m = map[string]cachedAnalysis{}
	}
	if e, ok := c.m[groupID]; ok && e.gen > gen {
		return // a slower request for an older generation
	}
	c.m[groupID] = cachedAnalysis{gen: gen, a: a, err: err}
}

// Field names. The explain package names a packet's fields from the
// protected server's side (remote_ip, dest_port; source_ip and dest_ip for
// a packet between two servers); the API and the console name them as the
// client sent them.
var (
	// packetFieldNames: a packet of a group or a server.
	packetFieldNames = map[string]string{"remote_ip": "ip", "dest_port": "port"}
	// flowFieldNames: a packet from server from_server to the server of
	// the request, whose address is local_ip; ip is the sender's.
	flowFieldNames = map[string]string{"source_ip": "ip", "dest_ip": "local_ip", "dest_port": "port"}
	// partNames names the part of a rule that did not match a packet.
	partNames = map[explain.Part]string{explain.PartRemoteIP: "ip", explain.PartPort: "port"}
)

// evaluateServer evaluates the packet that parse returns on server sg,
// which was read with its group and rules.
func (s *Server) evaluateServer(ctx context.Context, sg store.ServerGroup, parse func() (explain.Packet, error)) (explain.Decision, error) {
	eg, err := s.explainGroup(ctx, sg.Group, sg.Rules)
	if err != nil {
		return explain.Decision{}, err
	}
	p, err := parse()
	if err != nil {
		return explain.Decision{}, err
	}
	d, err := eg.EvaluateServer(sg.Server, p)
	return d, renameFields(err, packetFieldNames)
}

// serverPath is what happens to a packet from one server to another, with
// the servers as read.
type serverPath struct {
	explain.Path
	From, To store.ServerGroup
}

// evaluateBetween evaluates the packet that parse returns from server from
// to server to, in the organization and zone. The server to is the one the
// request is about: not found when missing. The server from is a field of
// the request (from_server): invalid when missing, as any other field.
func (s *Server) evaluateBetween(ctx context.Context, org, zone, to, from string, parse func() (explain.Flow, error)) (serverPath, error) {
	f, invalid := parse()
	ids := []string{to}
	if from == "" {
		invalid = joinInvalid(store.Invalid("from_server", "required", "the server the packet comes from is required"), invalid)
	} else {
		ids = append(ids, from)
	}
	sgs, err := s.db.ServerGroups(ctx, org, zone, ids...)
	var se *store.Error
	if errors.As(err, &se) && se.Code == store.CodeNotFound && se.Resource == store.ResourceServer && se.ResourceID == from && from != to {
		// Another organization's server reads as a missing one.
		invalid = joinInvalid(store.Invalid("from_server", "constraint", "server %s does not exist in zone %s", from, zone), invalid)
	} else if err != nil {
		return serverPath{}, err
	}
	if invalid != nil {
		return serverPath{}, invalid
	}
	p := serverPath{From: sgs[1], To: sgs[0]}
	src, err := s.explainGroup(ctx, p.From.Group, p.From.Rules)
	if err != nil {
		return serverPath{}, err
	}
	dst, err := s.explainGroup(ctx, p.To.Group, p.To.Rules)
	if err != nil {
		return serverPath{}, err
	}
	p.Path, err = explain.Between(p.From.Server, src, p.To.Server, dst, f)
	return p, renameFields(err, flowFieldNames)
}
