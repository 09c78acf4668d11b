package web

import "github.com/prometheus/client_golang/prometheus"

// enforcerCollector exposes the reconciler's totals at scrape time.
type enforcerCollector struct {
	src                                             statsSource
	applies, resyncs, errors, drift, duration, gens *prometheus.Desc
}

func newEnforcerCollector(src statsSource) *enforcerCollector {
	return &enforcerCollector{
		src:      src,
		applies:  prometheus.NewDesc("rampart_enforcer_applies_total", "Successful applies of the ruleset.", nil, nil),
		resyncs:  prometheus.NewDesc("rampart_enforcer_full_resyncs_total", "Applies that rewrote the whole table.", nil, nil),
		errors:   prometheus.NewDesc("rampart_enforcer_apply_errors_total", "Applies the kernel refused.", nil, nil),
		drift:    prometheus.NewDesc("rampart_enforcer_drift_repairs_total", "Times the kernel was found changed and restored.", nil, nil),
		duration: prometheus.NewDesc("rampart_enforcer_last_apply_seconds", "Compile and apply time of the last apply.", nil, nil),
		gens:     prometheus.NewDesc("rampart_enforcer_applied_generation", "Store generation the kernel holds.", nil, nil),
	}
}

func (c *enforcerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.applies, c.resyncs, c.errors, c.drift, c.duration, c.gens} {
		ch <- d
	}
}

func (c *enforcerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(c.applies, prometheus.CounterValue, float64(st.Applies))
	ch <- prometheus.MustNewConstMetric(c.resyncs, prometheus.CounterValue, float64(st.FullResyncs))
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(st.ApplyErrors))
	ch <- prometheus.MustNewConstMetric(c.drift, prometheus.CounterValue, float64(st.DriftRepairs))
	ch <- prometheus.MustNewConstMetric(c.duration, prometheus.GaugeValue, st.LastApplyDuration.Seconds())
	ch <- prometheus.MustNewConstMetric(c.gens, prometheus.GaugeValue, float64(st.AppliedGeneration))
}
