package web

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/fleet"
	"github.com/rampart-fw/rampart/store"
)

// logStatser is implemented by enforcers that read packet logs
// (fleet.Console).
type logStatser interface {
	LogStats() fleet.LogStats
}

// observeCollector exposes, at scrape time, what the kernels counted per
// group (accepted and dropped packets, from the store's counters summed
// over hosts: one series per group and verdict, never per rule), the log
// entries refused by the kernels' rate limits, and with a fleet, the log's
// totals and the hosts by state.
type observeCollector struct {
	s                                    *Server
	packets, bytes, limited, logs, hosts *prometheus.Desc
}

func newObserveCollector(s *Server) *observeCollector {
	return &observeCollector{s: s,
		packets: prometheus.NewDesc("rampart_group_packets_total",
			"Packets the group decided, summed over the hosts holding it, by verdict (the rules it holds now, its default policies, SMTP rules and stateful replies). A reset of the group's counters starts it again.",
			[]string{"group", "verdict"}, nil),
		bytes: prometheus.NewDesc("rampart_group_bytes_total",
			"Bytes of the packets the group decided, as rampart_group_packets_total.", []string{"group", "verdict"}, nil),
		limited: prometheus.NewDesc("rampart_log_entries_rate_limited_total",
			"Packets that rules logging them decided but the group's log rate limit kept out of the log (every host, every group).", nil, nil),
		logs: prometheus.NewDesc("rampart_log_entries_total",
			"Packet log entries as this console knows them: received from the kernels (this host's, and each agent's as it last reported), dropped by a kernel for lack of buffer, dropped by a queue (an agent's while no console took them, or this console's to the store), stored.",
			[]string{"outcome"}, nil),
		hosts: prometheus.NewDesc("rampart_hosts", "Hosts by state.", []string{"state"}, nil),
	}
}

func (c *observeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.limited, c.logs, c.hosts} {
		ch <- d
	}
}

func (c *observeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if totals, err := c.s.db.CounterTotals(ctx); err != nil {
		c.s.log.Error("metrics: counter totals", "err", err)
	} else {
		c.collectTraffic(ch, totals)
	}
	if ls, ok := c.s.enf.(logStatser); ok {
		st := ls.LogStats()
		for outcome, v := range map[string]uint64{"received": st.Received, "dropped_buffer": st.BufferDrops,
			"dropped_queue": st.Dropped, "stored": st.Stored} {
			ch <- prometheus.MustNewConstMetric(c.logs, prometheus.CounterValue, float64(v), outcome)
		}
	}
	if f := c.s.cfg.Fleet; f != nil {
		hosts, err := f.Hosts(ctx)
		if err != nil {
			c.s.log.Error("metrics: hosts", "err", err)
			return
		}
		counts := map[store.HostState]int{store.HostPending: 0, store.HostReady: 0, store.HostSyncing: 0, store.HostError: 0, store.HostLost: 0}
		for _, h := range hosts {
			counts[h.State]++
		}
		for state, n := range counts {
			ch <- prometheus.MustNewConstMetric(c.hosts, prometheus.GaugeValue, float64(n), string(state))
		}
	}
}

// collectTraffic adds up each group's counters by the verdict of what
// counted them.
func (c *observeCollector) collectTraffic(ch chan<- prometheus.Metric, totals []store.CounterTotal) {
	type key struct {
		group   string
		verdict store.Policy
	}
	packets, bytes := map[key]uint64{}, map[key]uint64{}
	var limited uint64
	smtp := map[string]map[string]bool{}
	for _, t := range totals {
		var v store.Policy
		switch {
		case t.Tag == enforcer.TagLogLimited:
			// Counted again: each of these packets is also its rule's.
			limited += t.Packets
			continue
		case t.RuleAction != "":
			v = t.RuleAction
		case t.Tag == enforcer.TagDefaultIn:
			v = t.Inbound
		case t.Tag == enforcer.TagDefaultOut:
			v = t.Outbound
		case t.Tag == enforcer.TagEstablishedIn || t.Tag == enforcer.TagEstablishedOut:
			v = store.Accept
		case t.Tag == enforcer.TagCompileError:
			v = store.Drop
		default:
			ids := smtp[t.GroupID]
			if ids == nil {
				ids = map[string]bool{}
				for _, r := range store.SMTPRules(t.GroupID) {
					ids[r.ID] = true
				}
				smtp[t.GroupID] = ids
			}
			if !ids[t.Tag] {
				continue // a rule since deleted: what decided is not known any more
			}
			v = store.Drop
		}
		k := key{t.GroupID, v}
		packets[k] += t.Packets
		bytes[k] += t.Bytes
	}
	// Both verdicts of every group, so that a series does not appear only
	// once it moves.
	for _, t := range totals {
		for _, v := range []store.Policy{store.Accept, store.Drop} {
			k := key{t.GroupID, v}
			if _, ok := packets[k]; !ok {
				packets[k], bytes[k] = 0, 0
			}
		}
	}
	for k, n := range packets {
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(n), k.group, string(k.verdict))
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(bytes[k]), k.group, string(k.verdict))
	}
	ch <- prometheus.MustNewConstMetric(c.limited, prometheus.CounterValue, float64(limited))
}
