//go:build !linux

package packetlog

import (
	"context"
	"errors"
)

// Reader reads one NFLOG group; it only exists on Linux.
type Reader struct{}

// Start always fails off Linux.
func Start(context.Context, Config) (*Reader, error) {
	return nil, errors.New("packet log: NFLOG needs Linux")
}

// SetIndex does nothing off Linux.
func (r *Reader) SetIndex(*Index) {}

// Stats returns nothing off Linux.
func (r *Reader) Stats() Stats { return Stats{} }

// Close does nothing off Linux.
func (r *Reader) Close() error { return nil }
