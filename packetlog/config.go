package packetlog

import "time"

// Defaults of Config.
const (
	DefaultMaxBatch     = 256
	DefaultFlushTimeout = 100 * time.Millisecond
	DefaultReadBuffer   = 1 << 20
	// copyRange is how much of each packet the kernel copies: enough for
	// an IPv6 header with a few extension headers and the ports.
	copyRange = 128
	// queueThreshold is how many entries the kernel queues before it
	// sends them in one message (or FlushTimeout passes): one wake-up of
	// the reader per batch rather than per packet.
	queueThreshold = 64
)

// Config configures a Reader.
type Config struct {
	// NetNS is an open network namespace (e.g. /run/netns/NAME) whose
	// NFLOG group to read, as enforcer.WithNetNS takes it; 0 is the
	// process's own.
	NetNS int
	// Group is the NFLOG group, as in the enforcer's LogConfig; 0 means
	// enforcer.DefaultLogGroup. One reader at a time may bind a group in
	// a namespace.
	Group uint16
	// Deliver receives the entries, in batches of at most MaxBatch, with
	// the totals at that time. It is called from one goroutine, never
	// concurrently; entries is reused once it returns. While it runs,
	// entries wait in the socket's buffer, and what does not fit there is
	// dropped by the kernel and counted (Stats.BufferDrops): a slow
	// Deliver bounds the reader's memory, not the kernel's.
	Deliver func(entries []Entry, st Stats)
	// MaxBatch bounds a batch; 0 means DefaultMaxBatch.
	MaxBatch int
	// FlushTimeout bounds how long an entry waits, in the kernel and
	// then in the reader, to join a batch; 0 means DefaultFlushTimeout.
	// The kernel counts it in hundredths of a second.
	FlushTimeout time.Duration
	// ReadBuffer is the socket's receive buffer, in bytes; 0 means
	// DefaultReadBuffer.
	ReadBuffer int
	// Index names the groups and rules; nil until SetIndex gives one.
	Index *Index
}
