//go:build !linux

package enforcer

import (
	"fmt"
	"runtime"
)

// NFTables is the netlink backend; it only exists on Linux.
type NFTables struct{ Preview }

// NewNFTables always fails off Linux; the error wraps ErrUnavailable.
func NewNFTables(...Option) (*NFTables, error) {
	return nil, fmt.Errorf("%w: nftables needs Linux, this is %s", ErrUnavailable, runtime.GOOS)
}

// Detect always fails off Linux; the error wraps ErrUnavailable.
func Detect(opts ...Option) error {
	_, err := NewNFTables(opts...)
	return err
}

// Close does nothing off Linux.
func (n *NFTables) Close() error { return nil }
