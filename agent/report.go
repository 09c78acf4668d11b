package agent

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/rampart-fw/rampart/hostview"
)

// report sends the console what the host holds: in full after every apply
// and when a session starts, and a heartbeat (with the counters) at the
// console's interval.
func (a *Agent) report(ctx context.Context, applied <-chan struct{}) {
	tick := time.NewTimer(defaultHeartbeat)
	defer tick.Stop()
	var last hostview.Report // the last sent in full
	for {
		heartbeat, connected := false, false
		select {
		case <-ctx.Done():
			return
		case <-applied:
		case <-a.connected:
			connected = true
		case <-tick.C:
			heartbeat = true
		}
		a.mu.Lock()
		client, base, hb := a.client, a.base, a.heartbeat
		hostID := a.cred.cred.HostID
		a.mu.Unlock()
		tick.Reset(hb)
		if client == nil {
			continue // sent in full when a session starts
		}
		r := hostview.NewReport(hostID, a.cfg.Version, a.rec.Stats(), a.rec.Groups())
		switch {
		case heartbeat:
			r.Counters = a.counters(ctx, r.Groups)
			r.Heartbeat, r.Groups = true, nil
		case !connected && sameState(last, r):
			// Only the generation moved (a change elsewhere): the
			// heartbeat carries it.
			continue
		}
		body, _ := json.Marshal(r)
		err := post(ctx, client, base+hostview.ReportPath(hostID), body, nil)
		switch {
		case err == nil && !heartbeat:
			last = r
		case err != nil && ctx.Err() == nil:
			// The stream notices a console gone; the next session
			// reports again, in full.
			a.log.Warn("agent: report", "console", base, "err", err)
		}
	}
}

// counters reads the counters of every group the host holds.
func (a *Agent) counters(ctx context.Context, groups map[string]hostview.GroupReport) map[string]map[string]hostview.Counter {
	out := make(map[string]map[string]hostview.Counter, len(groups))
	for id := range groups {
		c := a.rec.Counters(ctx, id)
		m := make(map[string]hostview.Counter, len(c))
		for tag, v := range c {
			m[tag] = hostview.Counter{Packets: v.Packets, Bytes: v.Bytes}
		}
		out[id] = m
	}
	return out
}

// renewLoop renews the certificate when a third of its life is left, and
// retries until it succeeds; the session then starts again with the new
// one.
func (a *Agent) renewLoop(ctx context.Context, consoles []string) {
	for {
		a.mu.Lock()
		leaf := a.cred.leaf
		a.mu.Unlock()
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		wait := time.Until(leaf.NotAfter.Add(-life / 3))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		retry := max(min(life/20, 30*time.Second), 100*time.Millisecond)
		for ctx.Err() == nil {
			err := a.renew(ctx, consoles)
			if err == nil {
				break
			}
			if time.Now().After(leaf.NotAfter) {
				a.log.Error("agent: the certificate expired before it could be renewed: enrol again with a new join token (rampart host token)", "err", err)
			} else {
				a.log.Warn("agent: renew the certificate", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
		}
	}
}

// renew asks the connected console, or each in turn, for the next
// certificate.
func (a *Agent) renew(ctx context.Context, consoles []string) error {
	a.renewing.Lock()
	defer a.renewing.Unlock()
	a.mu.Lock()
	c := a.cred.cred
	base := a.base
	a.mu.Unlock()
	if c.PendingKey == nil {
		_, der, err := newKey()
		if err != nil {
			return err
		}
		c.PendingKey = der
		if err := writeJSON(a.cfg.StateDir, credentialFile, c); err != nil {
			return fmt.Errorf("keep the pending key: %w", err)
		}
		a.mu.Lock()
		a.cred.cred.PendingKey = der
		a.mu.Unlock()
	}
	key, err := x509.ParsePKCS8PrivateKey(c.PendingKey)
	if err != nil {
		return fmt.Errorf("pending key: %w", err)
	}
	csr, err := newCSR(key)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(hostview.RenewRequest{CSR: csr})
	order := consoles
	if base != "" {
		order = append([]string{base}, consoles...)
	}
	var errs []error
	for _, u := range order {
		tr := a.transport(nil)
		var resp hostview.RenewResponse
		err := post(ctx, &http.Client{Transport: tr}, u+hostview.CertificatePath(c.HostID), body, &resp)
		tr.CloseIdleConnections()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		return a.renewed(c, resp.Certificate)
	}
	return errors.Join(errs...)
}

// renewed keeps the new certificate with its key and starts the session
// again with them.
func (a *Agent) renewed(c credential, certDER []byte) error {
	next := c
	next.Key, next.Certificate, next.PendingKey = c.PendingKey, certDER, nil
	p, err := parseCredential(next)
	if err != nil {
		return err
	}
	if err := writeJSON(a.cfg.StateDir, credentialFile, next); err != nil {
		return fmt.Errorf("keep the new certificate: %w", err)
	}
	a.mu.Lock()
	a.cred = p
	reconnect := a.reconnect
	a.mu.Unlock()
	a.log.Info("agent: certificate renewed", "not_after", p.leaf.NotAfter)
	if reconnect != nil {
		reconnect(errNewCertificate) // the console ends streams of the old certificate anyway
	}
	return nil
}

// sameState reports whether two reports say the same of the groups, the
// last apply and drift.
func sameState(a, b hostview.Report) bool {
	return a.Error == b.Error && a.DriftRepairs == b.DriftRepairs && maps.Equal(a.Groups, b.Groups)
}
