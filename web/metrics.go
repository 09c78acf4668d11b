package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// metrics holds the server's Prometheus registry. Each Server has its own,
// so that tests can run several servers in one process.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.HistogramVec
	panics   prometheus.Counter
}

// statsSource is implemented by enforcers that keep apply statistics.
type statsSource interface {
	Stats() enforcer.Stats
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rampart_http_request_duration_seconds",
			Help:    "HTTP requests by route, method and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "status"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_http_panics_total", Help: "Handlers that panicked (answered 500).",
		}),
	}
	m.reg.MustRegister(m.requests, m.panics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rampart_store_generation", Help: "Changes committed to the store.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		g, _ := s.db.Generation(ctx)
		return float64(g)
	}))
	m.reg.MustRegister(&groupStateCollector{s: s, desc: prometheus.NewDesc("rampart_groups",
		"Security groups by sync state.", []string{"state"}, nil)})
	if src, ok := s.enf.(statsSource); ok {
		m.reg.MustRegister(newEnforcerCollector(src))
	}
	m.reg.MustRegister(newObserveCollector(s))
	if src, ok := s.cfg.Fleet.(trafficSource); ok {
		m.reg.MustRegister(newAgentsCollector(src))
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) observe(route, method string, status int, elapsed time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Observe(elapsed.Seconds())
}

// groupStateCollector counts groups by sync state at scrape time.
type groupStateCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func (c *groupStateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *groupStateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	gens, err := c.s.db.GroupGenerations(ctx)
	if err != nil {
		c.s.log.Error("metrics: group generations", "err", err)
		return
	}
	counts := map[store.SyncState]int{store.Available: 0, store.Syncing: 0, store.SyncingError: 0}
	for id, gen := range gens {
		state, _ := c.s.enf.GroupState(id, gen)
		counts[state]++
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(state))
	}
}
