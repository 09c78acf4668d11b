package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"sync"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// logFlags are the packet log's settings: the kernel's rate limit per
// group (serve and agent), and serve's log file.
type logFlags struct {
	rate  uint64
	burst uint
	file  string
}

func (f *logFlags) register(fs *flag.FlagSet, withFile bool) error {
	var err error
	num := func(env string, def uint64) uint64 {
		v := os.Getenv(env)
		if v == "" {
			return def
		}
		n, perr := strconv.ParseUint(v, 10, 32)
		if (perr != nil || n == 0) && err == nil {
			err = fmt.Errorf("%s: want a whole number from 1 (got %q)", env, v)
		}
		return n
	}
	fs.Uint64Var(&f.rate, "log-rate", num("RAMPART_LOG_RATE", enforcer.DefaultLogRate),
		"packet log entries a second per group, beyond which the kernel counts packets without logging them (env RAMPART_LOG_RATE)")
	fs.UintVar(&f.burst, "log-burst", uint(num("RAMPART_LOG_BURST", uint64(enforcer.DefaultLogBurst))),
		"packet log entries per group allowed in a burst above the rate (env RAMPART_LOG_BURST)")
	if withFile {
		fs.StringVar(&f.file, "log-file", envOr("RAMPART_LOG_FILE", ""),
			"also append every packet log entry, of every host, to this file as a JSON line (created 0600; env RAMPART_LOG_FILE)")
	}
	return err
}

// config returns the enforcer's log configuration of the flags.
func (f *logFlags) config() (enforcer.LogConfig, error) {
	if f.rate == 0 || f.burst == 0 || f.burst > 1<<31 {
		return enforcer.LogConfig{}, fmt.Errorf("--log-rate and --log-burst are whole numbers from 1")
	}
	return enforcer.LogConfig{Limit: enforcer.LogLimit{Rate: f.rate, Burst: uint32(f.burst)}}, nil
}

// logFile appends entries to a file as JSON lines, for a log shipper.
type logFile struct {
	mu     sync.Mutex
	f      *os.File
	log    *slog.Logger
	failed bool // the last write failed: said once until one succeeds
}

// openLogFile opens path for appending, created readable by its owner
// only (entries name addresses of the servers); a file found readable by
// others is narrowed.
func openLogFile(path string, log *slog.Logger) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--log-file: %w", err)
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&fs.FileMode(0o077) != 0 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("--log-file: %w", err)
		}
	}
	return &logFile{f: f, log: log}, nil
}

// write appends entries, one JSON line each, in one write.
func (l *logFile) write(entries []store.LogEntry) {
	var b []byte
	for _, e := range entries {
		line, err := json.Marshal(e)
		if err != nil {
			continue
		}
		b = append(append(b, line...), '\n')
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(b); err != nil {
		if !l.failed {
			l.log.Error("write the packet log file", "file", l.f.Name(), "err", err)
		}
		l.failed = true
		return
	}
	l.failed = false
}

func (l *logFile) Close() error { return l.f.Close() }
