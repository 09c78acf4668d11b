package web

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-fw/rampart/fleet"
)

// trafficSource is implemented by a console that serves agents
// (fleet.Console).
type trafficSource interface {
	Traffic() fleet.Traffic
}

// agentsCollector exposes what the agents' endpoint carried: how many
// agents follow the console, and the bytes their views and reports cost.
type agentsCollector struct {
	src                                          trafficSource
	streams, frames, frameBytes, reports, rBytes *prometheus.Desc
}

func newAgentsCollector(src trafficSource) *agentsCollector {
	return &agentsCollector{
		src:        src,
		streams:    prometheus.NewDesc("rampart_agent_streams", "Agents' view streams open.", nil, nil),
		frames:     prometheus.NewDesc("rampart_agent_frames_total", "Frames written to the agents' view streams, heartbeats included.", nil, nil),
		frameBytes: prometheus.NewDesc("rampart_agent_frame_bytes_total", "Bytes of those frames (JSON lines, before TLS).", nil, nil),
		reports:    prometheus.NewDesc("rampart_agent_reports_total", "Reports received from agents.", nil, nil),
		rBytes:     prometheus.NewDesc("rampart_agent_report_bytes_total", "Bytes of the reports' bodies.", nil, nil),
	}
}

func (c *agentsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.streams, c.frames, c.frameBytes, c.reports, c.rBytes} {
		ch <- d
	}
}

func (c *agentsCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.src.Traffic()
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(t.Streams))
	ch <- prometheus.MustNewConstMetric(c.frames, prometheus.CounterValue, float64(t.Frames))
	ch <- prometheus.MustNewConstMetric(c.frameBytes, prometheus.CounterValue, float64(t.FrameBytes))
	ch <- prometheus.MustNewConstMetric(c.reports, prometheus.CounterValue, float64(t.Reports))
	ch <- prometheus.MustNewConstMetric(c.rBytes, prometheus.CounterValue, float64(t.ReportBytes))
}
