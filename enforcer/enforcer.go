// Package enforcer turns the store's desired state into the nftables table
// `inet rampart` and keeps the kernel in step with it.
//
// The package is split by concern: compile.go builds a backend-neutral
// Ruleset from a store.Snapshot (pure), diff.go computes what changed between
// two Rulesets, preview.go renders a Ruleset as nft text, nftables_linux.go
// sends it to the kernel over netlink in one transaction, and reconciler.go
// drives it all from the store's change notifications.
//
// The enforcer owns the `inet rampart` table and nothing else: it never reads
// or writes other tables, and stopping it leaves the ruleset in place so that
// the host fails closed. Remove deletes the table on request.
package enforcer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// TableName is the name of the nftables table (family inet) the enforcer owns.
const TableName = "rampart"

// Modes reported by Backend.Mode and accepted by Open.
const (
	ModeAuto     = "auto"
	ModeNFTables = "nftables"
	ModePreview  = "preview"
)

// ErrUnavailable is returned (wrapped) by Open and Detect when nftables
// cannot be used by this process: no CAP_NET_ADMIN, no nf_tables, or a
// non-Linux system.
var ErrUnavailable = errors.New("nftables unavailable")

// Source is what the enforcer needs from the store. *store.DB implements it.
type Source interface {
	// Snapshot returns the whole desired state at one generation.
	Snapshot(ctx context.Context) (store.Snapshot, error)
	// Generation returns the store's current generation, cheaply.
	Generation(ctx context.Context) (int64, error)
	// Watch returns a channel that receives (non-blocking, capacity 1) after
	// every committed change, and a function that stops the notifications.
	Watch() (ch <-chan struct{}, cancel func())
}

// incrementalSource is a Source that can read only what changed since an
// earlier snapshot (*store.DB does); the reconciler uses it when present.
type incrementalSource interface {
	SnapshotSince(ctx context.Context, prev store.Snapshot) (store.Snapshot, error)
}

// Counter is the packet and byte count of one rule.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// Backend applies Rulesets somewhere: the kernel (nftables) or nowhere
// (preview). Implementations are safe for concurrent use.
type Backend interface {
	// Mode returns ModeNFTables or ModePreview, and for preview why.
	Mode() (mode, reason string)
	// Apply makes the backend hold next in one transaction. prev is what the
	// backend last held according to the caller; nil forces a full resync
	// (the table is replaced whole). On error the backend still holds
	// whatever it held before: the kernel never sees half a change.
	Apply(ctx context.Context, prev, next *Ruleset) error
	// Verify reports ErrDrift (wrapped) when what the backend holds differs
	// from rs, or another error when it cannot tell.
	Verify(ctx context.Context, rs *Ruleset) error
	// Counters returns the counters of the rules the named chains hold in
	// the backend, keyed by rule tag (rule ID, "default_in", ...): it
	// reads the chains' rules, then the counter objects they name.
	Counters(ctx context.Context, chains ...string) (map[string]Counter, error)
	// GroupCounters returns the counters of groups as applied, by group ID
	// and then by tag (rule ID, TagDefaultIn, ..., TagLogLimited), reading
	// only the objects the groups name. The counters are the table's
	// named counters: rewrites of the groups' chains and full resyncs
	// keep them; they start from zero when the table itself was deleted.
	// A counter the backend does not hold is left out.
	GroupCounters(ctx context.Context, groups ...GroupChains) (map[string]map[string]Counter, error)
	// ResetCounters sets the counters of groups to zero, in one request,
	// and returns what they held, as GroupCounters does.
	ResetCounters(ctx context.Context, groups ...GroupChains) (map[string]map[string]Counter, error)
	// Remove deletes the table, if present.
	Remove(ctx context.Context) error
}

// ErrDrift is wrapped by Backend.Verify when the kernel no longer holds what
// was applied: someone else changed or removed the table.
var ErrDrift = errors.New("ruleset drift")

// Option configures the nftables backend.
type Option func(*options)

type options struct {
	netnsFD int // -1: the calling process's network namespace
}

func buildOptions(opts []Option) options {
	o := options{netnsFD: -1}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithNetNS makes the backend talk to the nftables of the network namespace
// referenced by fd (e.g. an open /run/netns/NAME) instead of the process's.
// The caller keeps ownership of fd and must keep it open while the backend
// is in use.
func WithNetNS(fd int) Option {
	return func(o *options) { o.netnsFD = fd }
}

// Open returns the backend for mode: ModeNFTables fails (wrapping
// ErrUnavailable) when nftables cannot be used; ModePreview always succeeds;
// ModeAuto (or "") picks nftables when Detect succeeds and otherwise preview,
// with Detect's error as the reason.
func Open(mode string, opts ...Option) (Backend, error) {
	switch mode {
	case ModePreview:
		return NewPreview("preview mode requested"), nil
	case ModeNFTables:
		b, err := NewNFTables(opts...)
		if err != nil {
			return nil, err
		}
		return b, nil
	case ModeAuto, "":
		b, err := NewNFTables(opts...)
		if err != nil {
			return NewPreview(err.Error()), nil
		}
		return b, nil
	default:
		return nil, fmt.Errorf("enforcer mode %q: want auto, nftables or preview", mode)
	}
}

// Stats are the reconciler's running totals, for metrics.
type Stats struct {
	Applies           uint64        // successful applies (full or incremental)
	FullResyncs       uint64        // of which full resyncs
	ApplyErrors       uint64        // failed applies
	DriftRepairs      uint64        // times the kernel was found changed and restored
	LastApplyDuration time.Duration // compile + apply time of the last apply
	LastApply         time.Time     // when the last apply (successful or not) ended
	LastError         string        // error of the last apply, "" when it succeeded
	AppliedGeneration int64         // store generation the backend holds
}

// Remove deletes the `inet rampart` table (in the namespace given by
// WithNetNS, if any), leaving every other table alone. It succeeds when the
// table does not exist.
func Remove(ctx context.Context, opts ...Option) error {
	b, err := NewNFTables(opts...)
	if err != nil {
		return err
	}
	return b.Remove(ctx)
}
