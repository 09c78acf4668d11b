//go:build linux

package packetlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
	"golang.org/x/sys/unix"

	"github.com/rampart-fw/rampart/enforcer"
)

// Reader reads one NFLOG group. Its methods are safe for concurrent use.
type Reader struct {
	cfg    Config
	nf     *nflog.Nflog
	cancel context.CancelFunc
	ctx    context.Context
	index  atomic.Pointer[Index]
	ch     chan Entry
	done   chan struct{}

	// Written by the receiving goroutine only; read by Stats.
	received, drops, overruns, unparsed atomic.Uint64
	nextSeq                             uint32
	closeOnce                           sync.Once
}

// Start binds the group and reads it until ctx is done or Close is called.
func Start(ctx context.Context, cfg Config) (*Reader, error) {
	if cfg.Deliver == nil {
		return nil, errors.New("packet log: no Deliver function")
	}
	if cfg.Group == 0 {
		cfg.Group = enforcer.DefaultLogGroup
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = DefaultFlushTimeout
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	timeout := uint32(cfg.FlushTimeout / (10 * time.Millisecond))
	if timeout == 0 {
		timeout = 1
	}
	nf, err := nflog.Open(&nflog.Config{
		NetNS:    cfg.NetNS,
		Group:    cfg.Group,
		Copymode: nflog.CopyPacket,
		Bufsize:  copyRange,
		// Sequence numbers reveal the messages the kernel had to drop.
		Flags:   nflog.FlagSeq,
		QThresh: queueThreshold,
		Timeout: timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("packet log: open NFLOG group %d: %w", cfg.Group, err)
	}
	if err := setReadBuffer(nf, cfg.ReadBuffer); err != nil {
		nf.Close()
		return nil, fmt.Errorf("packet log: %w", err)
	}
	r := &Reader{cfg: cfg, nf: nf, ch: make(chan Entry, cfg.MaxBatch), done: make(chan struct{})}
	r.index.Store(cfg.Index)
	r.ctx, r.cancel = context.WithCancel(ctx)
	if err := nf.RegisterWithErrorFunc(r.ctx, r.receive, r.receiveError); err != nil {
		r.cancel()
		nf.Close()
		return nil, fmt.Errorf("packet log: bind NFLOG group %d: %w", cfg.Group, err)
	}
	go r.batch()
	return r, nil
}

// setReadBuffer sets the socket's receive buffer, beyond net.core.rmem_max
// when the process may (CAP_NET_ADMIN, which binding NFLOG needs anyway).
func setReadBuffer(nf *nflog.Nflog, size int) error {
	raw, err := nf.Con.SyscallConn()
	if err != nil {
		return fmt.Errorf("receive buffer: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	}); err != nil {
		return fmt.Errorf("receive buffer: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("receive buffer: %w", serr)
	}
	return nil
}

// SetIndex replaces the index that names groups and rules, e.g. after
// each apply of the enforcer.
func (r *Reader) SetIndex(ix *Index) { r.index.Store(ix) }

// Stats returns the totals so far.
func (r *Reader) Stats() Stats {
	return Stats{
		Received:    r.received.Load(),
		BufferDrops: r.drops.Load(),
		Overruns:    r.overruns.Load(),
		Unparsed:    r.unparsed.Load(),
	}
}

// Close stops reading and returns once the last batch was delivered. The
// kernel forgets the group's binding with the socket.
func (r *Reader) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.cancel()
		err = r.nf.Close()
		<-r.done
	})
	return err
}

// receive handles one message: it counts it, and the messages the kernel
// dropped before it, and queues its entry.
func (r *Reader) receive(a nflog.Attribute) int {
	r.received.Add(1)
	if a.Seq != nil {
		// The kernel numbers the messages of a group from 0 when it is
		// bound; one that is missing could not be delivered.
		if gap := *a.Seq - r.nextSeq; gap != 0 {
			r.drops.Add(uint64(gap))
		}
		r.nextSeq = *a.Seq + 1
	}
	if a.Prefix == nil || a.Payload == nil {
		r.unparsed.Add(1)
		return 0
	}
	at := time.Now()
	if a.Timestamp != nil {
		at = *a.Timestamp
	}
	e, err := r.index.Load().entry(*a.Prefix, *a.Payload, at)
	if err != nil {
		r.unparsed.Add(1)
		return 0
	}
	if a.InDev != nil {
		e.InIndex = *a.InDev
	}
	if a.OutDev != nil {
		e.OutIndex = *a.OutDev
	}
	select {
	case r.ch <- e:
		return 0
	case <-r.ctx.Done():
		return 1
	}
}

// receiveError handles an error of the socket: an overflow is counted
// (its losses show in the sequence numbers) and reading goes on.
func (r *Reader) receiveError(err error) int {
	if r.ctx.Err() != nil {
		return 1
	}
	if errors.Is(err, unix.ENOBUFS) {
		r.overruns.Add(1)
		return 0
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0
	}
	// Anything else (the socket closed under us): stop, rather than spin.
	return 1
}

// batch delivers the queued entries, MaxBatch at a time or after
// FlushTimeout, until the reader stops.
func (r *Reader) batch() {
	defer close(r.done)
	buf := make([]Entry, 0, r.cfg.MaxBatch)
	tick := time.NewTicker(r.cfg.FlushTimeout)
	defer tick.Stop()
	deliver := func() {
		if len(buf) > 0 {
			r.cfg.Deliver(buf, r.Stats())
			buf = buf[:0]
		}
	}
	for {
		select {
		case e := <-r.ch:
			buf = append(buf, e)
			if len(buf) == cap(buf) {
				deliver()
			}
		case <-tick.C:
			deliver()
		case <-r.ctx.Done():
			for {
				select {
				case e := <-r.ch:
					buf = append(buf, e)
					if len(buf) == cap(buf) {
						deliver()
					}
				default:
					deliver()
					return
				}
			}
		}
	}
}
